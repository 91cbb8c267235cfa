using RamPay.Core;
using RamPay.Fraud;

namespace RamPay.Engine.Tests;

/// <summary>
/// Rules version 4 through the engine's stage thread: an attacker's attempts to pay from accounts they do not own (refused by
/// the ledger, <c>not_account_owner</c>) and attempts naming accounts not yet opened leave every victim's features, scores and
/// decisions as they would have been without them (docs/fraud.md, "Who is counted"). Accounts are opened during the run, so
/// the stage must wait for the writer to learn of them (FraudStage.OwnerWaits); the writer checks the stage's rule on each
/// payment (an invariant in the ledger), and the journal replays to the same hash.
/// </summary>
public class FraudStageOwnershipEngineTests
{
    private const long Attacker = 999;

    private static EngineOptions Options(TempDataDir dir) => new()
    {
        // One timestamp for every command: the attacker's extra commands must not move the victims' clocks either.
        DataDirectory = dir.Path, Clock = new SteppingClock(stepMs: 0).Now, RulesVersion = 4, IdempotencyKeyBudget = 1 << 16,
        SnapshotEveryCommands = 0, SnapshotOnStop = false, TickIntervalMs = 0, MaxBatchSize = 64, RingSize = 1024,
        Fraud = new FraudConfiguration
        {
            Model = FraudModel.Default,
            Settings = new FraudSettings { Enabled = true, ReviewThresholdPpm = 300_000, DeclineThresholdPpm = 900_000, MaxPaymentsPerDay = 40 },
        },
        Ledger = new LedgerOptions { MaxAccounts = 64, MaxPayments = 1 << 16, InitialPaymentCapacity = 0, MaxOpenHolds = 1 << 12, IdempotencyMaxKeys = 1 << 14 },
    };

    /// <summary>
    /// Owners paying from their own wallets (OwnerOnly, as ingress sends them), a new wallet opened every 60 commands and
    /// used at once; with <paramref name="attack"/>, after each owner's payment the attacker tries twice to pay from the
    /// same wallet, and once from the next wallet to be opened.
    /// </summary>
    private static List<Command> Workload(bool attack)
    {
        var k = new Commands();
        var rng = new Random(5);
        var attackerRng = new Random(6); // its own, so that the owners' workload is the same with and without the attack
        var list = new List<Command> { k.Open(AccountFlags.Funding) };
        int wallets = 0;
        void OpenWallet()
        {
            wallets++;
            list.Add(k.Open(AccountFlags.DebitsMustNotExceedCredits, owner: 100 + wallets));
            list.Add(k.Move(CommandType.Deposit, 1, 1 + wallets, 50_000));
        }
        for (int i = 0; i < 4; i++) OpenWallet();
        for (int i = 0; i < 1_500; i++)
        {
            if (i % 60 == 59 && wallets < 40) OpenWallet();
            long from = 2 + (i % 7 == 0 ? wallets - 1 : rng.Next(wallets));
            long to = 2 + rng.Next(wallets);
            if (to == from) to = 2 + (to - 1) % wallets;
            var type = rng.Next(4) == 0 ? CommandType.Authorize : CommandType.Transfer;
            list.Add(k.Move(type, from, to, rng.Next(1, 2_000)) with { Flags = CommandFlags.OwnerOnly, ClientId = 100 + from - 1, Argument = type == CommandType.Authorize ? 60_000 : 0 });
            if (!attack) continue;
            list.Add(k.Move(CommandType.Transfer, from, to, 10) with { Flags = CommandFlags.OwnerOnly, ClientId = Attacker });
            list.Add(k.Move(CommandType.Authorize, from, 2 + attackerRng.Next(wallets), 10) with { Flags = CommandFlags.OwnerOnly, ClientId = Attacker, Argument = 60_000 });
            list.Add(k.Move(CommandType.Transfer, 2 + wallets, to, 10) with { Flags = CommandFlags.OwnerOnly, ClientId = Attacker });
        }
        return list;
    }

    private static (List<PaymentFraud?> Scores, List<PaymentStatus> Statuses, long OwnerWaits, string Hash) Run(TempDataDir dir, List<Command> workload)
    {
        using var engine = RamPayEngine.Start(Options(dir));
        FraudStageEngineTests.Run(engine, workload); // in chunks of varying size, so that the stage's run-ahead varies
        engine.Stop();
        var l = engine.LedgerAfterStop;
        Assert.Equal(0, l.FraudStagedInline); // the stage thread staged every command
        var ids = Enumerable.Range(1, (int)l.PaymentCount);
        return ([.. ids.Select(id => l.GetFraudScore(id))], [.. ids.Select(id => l.GetPayment(id).Status)], l.FraudStage.OwnerWaits, l.ComputeStateHash());
    }

    [Fact]
    public void Through_the_engine_an_attacker_s_refused_attempts_change_no_victim_s_score_and_the_journal_replays_to_the_same_hash()
    {
        using var controlDir = new TempDataDir();
        using var attackedDir = new TempDataDir();
        var control = Run(controlDir, Workload(attack: false));
        var attacked = Run(attackedDir, Workload(attack: true));

        // Refused attempts create no payment, so payment ids line up: every payment has the same score, reasons and status.
        Assert.True(control.Scores.Count > 1_400, $"{control.Scores.Count} payments");
        Assert.Equal(control.Scores, attacked.Scores);
        Assert.Equal(control.Statuses, attacked.Statuses);
        Assert.True(control.Scores.Count(s => s is not null) > 1_400);
        // New wallets were paid from before the stage had seen the writer open them: it waited for the writer, rarely.
        Assert.InRange(attacked.OwnerWaits, 1, 200);

        // Replay stages inline (no waits) and gives the live run's state.
        var options = new LedgerOptions { MaxAccounts = 64, MaxPayments = 1 << 16, InitialPaymentCapacity = 0, MaxOpenHolds = 1 << 12, IdempotencyMaxKeys = 1 << 14, FraudModels = FraudModelStore.Load(attackedDir.Path) };
        var (replayed, _, _, _) = EngineRecovery.Load(attackedDir.Snapshots, attackedDir.Journal, options, useSnapshot: false, []);
        Assert.Equal(attacked.Hash, replayed.ComputeStateHash());
    }
}
