using System.Runtime.CompilerServices;
using System.Text.Json;
using RamPay.Core;
using RamPay.Fraud;

namespace RamPay.Engine.Tests;

/// <summary>
/// A journal written by an earlier RamPay (rules version 1, before the cold tier), kept in the tests with the options
/// it was written with and the state hash and counters its replay reached then. Whatever later versions change in the
/// ledger's rules, this journal must replay to that same hash: a rule change takes effect only from a journaled
/// upgrade point, never retroactively.
/// </summary>
/// <remarks>
/// The files under Golden/v1 were written once by <see cref="Write_the_golden_journal"/> with the code of commit cf4bb0f
/// (RAMPAY_WRITE_GOLDEN=1 dotnet test --filter Write_the_golden_journal) and must never be rewritten: a new golden
/// journal for new rules goes in a new folder beside it.
/// </remarks>
public static class GoldenJournal
{
    /// <summary>The ledger options the golden journal was written with (a small key table, so keys are evicted early).</summary>
    public static LedgerOptions GoldenLedgerOptions => new()
    {
        MaxAccounts = 256, MaxPayments = 1 << 14, InitialPaymentCapacity = 0, MaxOpenHolds = 1 << 10,
        IdempotencyMaxKeys = 256, IdempotencyWindowMs = 300_000,
    };

    public static string GoldenFolder([CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "Golden", "v1");

    /// <summary>What the golden journal's replay reached when it was written (Golden/v1/expected.json).</summary>
    public sealed record Expected(
        string StateHash, long LastSequence, long CommandsApplied, long PaymentCount, int AccountCount, int UserCount,
        long IdempotencyEvictedEarly, long IdempotencyExpired, int IdempotencyCount, int OpenHolds);

    public static Expected ReadExpected() =>
        JsonSerializer.Deserialize<Expected>(File.ReadAllText(Path.Combine(GoldenFolder(), "expected.json")))!;

    /// <summary>A copy of the golden data folder in a temporary directory (tests never touch the committed files).</summary>
    public static void CopyGoldenTo(string dataDirectory)
    {
        string journal = Path.Combine(dataDirectory, "journal");
        Directory.CreateDirectory(journal);
        foreach (string f in Directory.GetFiles(Path.Combine(GoldenFolder(), "journal")))
            File.Copy(f, Path.Combine(journal, Path.GetFileName(f)));
    }

    public static Expected Describe(Ledger l, long lastSequence) => new(
        l.ComputeStateHash(), lastSequence, l.CommandsApplied, l.PaymentCount, l.AccountCount, l.UserCount,
        l.IdempotencyEvictedEarly, l.Idempotency.Expired, l.Idempotency.Count, l.OpenHoldCount);


    /// <summary>
    /// About 3,000 commands: users registered, a funding account, deposits, transfers (some with notes), authorizations
    /// then captures, voids and refunds, freezes, fraud reviews, ticks, retries with the same key and body, the same key
    /// with another body, and far more keys than the 256-key table holds.
    /// </summary>
    public static IEnumerable<(Command Command, byte[]? Attachment)> Workload()
    {
        var rng = new Random(20261205);
        long nextKey = 0;
        IdempotencyKey Key() => IdempotencyKey.FromString("golden-" + ++nextKey);
        var usd = Currency.USD;
        var sent = new List<Command>();
        (Command, byte[]?) Keep(Command c, byte[]? a = null) { sent.Add(c); return (c, a); }

        yield return Keep(new Command { Type = CommandType.OpenAccount, Flags = (byte)AccountFlags.Funding, Currency = usd, ClientId = 1, Key = Key() });
        const int users = 24;
        for (int i = 0; i < users; i++)
        {
            var (c, a) = new UserProfile($"user{i}@example.com", $"User {i}", $"pbkdf2$golden${i}").ToCommand(i == 0 ? UserRole.Admin : UserRole.User, usd);
            yield return Keep(c with { ClientId = 1, Key = Key() }, a);
        }
        // Wallets are accounts 2..25 (each user's), owned by users 1..24.
        long Wallet() => 2 + rng.Next(users);
        for (int i = 0; i < users; i++)
            yield return Keep(new Command { Type = CommandType.Deposit, Currency = usd, ClientId = 1, Key = Key(), FromAccount = 1, ToAccount = 2 + i, Amount = 200_000 });

        long payments = users;
        for (int n = 0; n < 3_000; n++)
        {
            int roll = rng.Next(100);
            Command c;
            byte[]? attachment = null;
            if (roll < 12) c = new Command { Type = CommandType.Deposit, Currency = usd, ClientId = 1, Key = Key(), FromAccount = 1, ToAccount = Wallet(), Amount = rng.Next(1, 20_000) };
            else if (roll < 40)
            {
                long from = Wallet();
                c = new Command { Type = CommandType.Transfer, Currency = usd, ClientId = from - 1, Flags = CommandFlags.OwnerOnly, Key = Key(), FromAccount = from, ToAccount = Wallet(), Amount = rng.Next(1, 6_000) };
                if (rng.Next(4) == 0) attachment = new PaymentNote($"golden note {n}", rng.Next(2) == 0 ? $"https://example.com/hook/{n}" : null).Encode();
            }
            else if (roll < 52) c = new Command { Type = CommandType.Authorize, Currency = usd, ClientId = 1, Key = Key(), FromAccount = Wallet(), ToAccount = Wallet(), Amount = rng.Next(1, 5_000), Argument = rng.Next(0, 4) == 0 ? 0 : rng.Next(1_000, 400_000) };
            else if (roll < 60) c = new Command { Type = CommandType.Capture, ClientId = 1, Key = Key(), PaymentId = 1 + rng.NextInt64(payments), Amount = rng.Next(0, 3_000) };
            else if (roll < 64) c = new Command { Type = CommandType.Void, ClientId = 1, Key = Key(), PaymentId = 1 + rng.NextInt64(payments) };
            else if (roll < 70) c = new Command { Type = CommandType.Refund, ClientId = 1, Key = Key(), PaymentId = 1 + rng.NextInt64(payments), Amount = rng.Next(1, 2_000) };
            else if (roll < 72) c = new Command { Type = rng.Next(2) == 0 ? CommandType.Freeze : CommandType.Unfreeze, ClientId = 1, Key = Key(), FromAccount = Wallet() };
            else if (roll < 75) c = new Command { Type = CommandType.Review, ClientId = 1, Key = Key(), PaymentId = 1 + rng.NextInt64(payments), Argument = 1 + rng.Next(2) };
            else if (roll < 84) c = sent[sent.Count - 1 - rng.Next(Math.Min(sent.Count, rng.Next(2) == 0 ? 50 : 2_000))]; // a retry, recent or long ago
            else if (roll < 88)
            {
                var old = sent[sent.Count - 1 - rng.Next(Math.Min(sent.Count, 400))];
                c = old with { Amount = old.Amount + 1 }; // the same key with another body
            }
            else c = new Command { Type = CommandType.Tick };
            yield return Keep(c, attachment);
            payments += 1;
        }
    }
}

public class GoldenJournalTests
{
    [Fact]
    public void The_golden_journal_written_by_rules_version_1_replays_to_its_pinned_state_hash_and_counters()
    {
        var expected = GoldenJournal.ReadExpected();
        using var dir = new TempDataDir();
        GoldenJournal.CopyGoldenTo(dir.Path);
        var (ledger, snapshot, replayed, last) = EngineRecovery.Load(dir.Snapshots, dir.Journal, GoldenJournal.GoldenLedgerOptions, useSnapshot: false, []);
        Assert.Equal(0, snapshot);
        Assert.Equal(expected.LastSequence, replayed);
        Assert.Equal(expected, GoldenJournal.Describe(ledger, last));
        // The workload was built to exercise what rules change: keys forgotten early and at the end of their window.
        Assert.True(expected.IdempotencyEvictedEarly > 500, $"only {expected.IdempotencyEvictedEarly} keys evicted early");
        Assert.True(expected.IdempotencyExpired > 0);
    }

    /// <summary>
    /// Bursts of 500 commands 5 ms apart (the 256-key table overflows: keys forgotten early) alternating with 500 commands
    /// 2 s apart (longer than the 300 s window: keys expire).
    /// </summary>
    private static Func<long> BurstyClock()
    {
        long now = 1_700_000_000_000, n = 0;
        return () => now += (n++ / 500) % 2 == 0 ? 5 : 2_000;
    }

    /// <summary>Writes Golden/v1 (run once, by hand, with the rules-version-1 code; see the class remarks).</summary>
    [Fact]
    public void Write_the_golden_journal()
    {
        if (Environment.GetEnvironmentVariable("RAMPAY_WRITE_GOLDEN") != "1") return;
        string folder = GoldenJournal.GoldenFolder();
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        Directory.CreateDirectory(folder);
        var options = new EngineOptions
        {
            DataDirectory = folder, Clock = BurstyClock(), RingSize = 1024, TickIntervalMs = 0,
            SnapshotEveryCommands = 0, SnapshotOnStop = false, Fsync = false, Ledger = GoldenJournal.GoldenLedgerOptions,
            Fraud = new FraudConfiguration
            {
                Model = FraudModel.Default,
                Settings = new FraudSettings { Enabled = true, AmountThreshold = 4_000, MaxPaymentsPerDay = 400, BlockedAccounts = [5] },
            },
        };
        long last;
        string live;
        using (var engine = RamPayEngine.Start(options))
        {
            foreach (var (command, attachment) in GoldenJournal.Workload()) engine.Submit(command, 0, attachment);
            engine.Stop();
            last = engine.CompletedSequence;
            live = engine.LedgerAfterStop.ComputeStateHash();
        }
        // The state the replay reaches (the same as the live one: determinism).
        var (ledger, _, _, lastReplayed) = EngineRecovery.Load(Path.Combine(folder, "snapshots"), Path.Combine(folder, "journal"), GoldenJournal.GoldenLedgerOptions, useSnapshot: false, []);
        Assert.Equal(last, lastReplayed);
        Assert.Equal(live, ledger.ComputeStateHash());
        File.WriteAllText(Path.Combine(folder, "expected.json"), JsonSerializer.Serialize(GoldenJournal.Describe(ledger, lastReplayed), new JsonSerializerOptions { WriteIndented = true }) + "\n");
        // The default model is embedded in every RamPay: the folder the engine copied it to is not part of the golden data.
        foreach (string extra in new[] { "snapshots", FraudModelStore.FolderName })
            if (Directory.Exists(Path.Combine(folder, extra))) Directory.Delete(Path.Combine(folder, extra), true);
    }
}
