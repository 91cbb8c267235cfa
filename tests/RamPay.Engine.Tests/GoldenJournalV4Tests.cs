using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text.Json;
using RamPay.Core;
using RamPay.Fraud;

namespace RamPay.Engine.Tests;

/// <summary>
/// Two golden journals with fraud scoring on, written by the code that made rules version 4 (the fraud stage) the
/// server's default: <c>Golden/v3</c>, a data folder written under rules 3 (the writer scores), and <c>Golden/v4</c>, the
/// same folder after its first start under rules 4 (the journaled upgrade point 3 → 4, then the stage scores). Each is
/// kept with the state hash, counters and a digest of every payment's score its replay reached when written; later code
/// must replay both to exactly these, so what rules 3 and 4 compute cannot change without a new rules version.
/// </summary>
/// <remarks>
/// Written once by <see cref="GoldenJournalV4Tests.Write_the_rules_3_and_4_golden_journals"/>
/// (<c>RAMPAY_WRITE_GOLDEN=1 dotnet test tests/RamPay.Engine.Tests -c Release --filter Write_the_rules_3_and_4_golden_journals</c>)
/// and never rewritten: a later rules version gets a new folder beside these.
/// </remarks>
public static class GoldenJournalV4
{
    public static LedgerOptions Options => new()
    {
        MaxAccounts = 256, MaxPayments = 1 << 16, InitialPaymentCapacity = 0, MaxOpenHolds = 1 << 12, IdempotencyMaxKeys = 1 << 14,
    };

    /// <summary>Fraud as the golden journals were written: the embedded model, review at 0.3, a daily limit of 60.</summary>
    public static FraudConfiguration Fraud => new()
    {
        Model = FraudModel.Default,
        Settings = new FraudSettings { Enabled = true, ReviewThresholdPpm = 300_000, DeclineThresholdPpm = 900_000, AmountThreshold = 9_000, MaxPaymentsPerDay = 60 },
    };

    public static string Folder(string name, [CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "Golden", name);

    /// <summary>The card tester's wallet (owner <see cref="TesterOwner"/>) in both journals.</summary>
    public const long TesterAccount = 18;
    public const long TesterOwner = 200;

    /// <summary>What a golden journal's replay reached when written (expected.json).</summary>
    public sealed record Expected(
        int RulesVersion, string StateHash, long LastSequence, long UpgradeSequence, long CommandsApplied, long PaymentCount, int AccountCount,
        long Scored, long Allowed, long HeldAtScoring, long DeclinedAtScoring, long HeldNow, long DeclinedNow, long ApprovedAtReview,
        long DeclinedAtReview, long Captured, long Voided, long Refunds, long DailyLimitDeclines, string ScoresDigest);

    public static Expected ReadExpected(string name) =>
        JsonSerializer.Deserialize<Expected>(File.ReadAllText(Path.Combine(Folder(name), "expected.json")))!;

    /// <summary>A copy of a golden journal in a temporary data directory (tests never touch the committed files).</summary>
    public static void CopyTo(string name, string dataDirectory)
    {
        string journal = Path.Combine(dataDirectory, "journal");
        Directory.CreateDirectory(journal);
        foreach (string f in Directory.GetFiles(Path.Combine(Folder(name), "journal")))
            File.Copy(f, Path.Combine(journal, Path.GetFileName(f)));
    }

    public static Expected Describe(Ledger l, long lastSequence, long upgradeSequence)
    {
        long held = 0, declined = 0, approved = 0, reviewDeclined = 0, captured = 0, voided = 0, refunds = 0, daily = 0, scored = 0;
        using var digest = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> row = stackalloc byte[8 + 4 + 2];
        for (long id = 1; id <= l.PaymentCount; id++)
        {
            var p = l.GetPayment(id);
            switch (p.Status)
            {
                case PaymentStatus.HeldForReview: held++; break;
                case PaymentStatus.Declined: declined++; break;
                case PaymentStatus.Captured: captured++; break;
                case PaymentStatus.Voided: voided++; break;
            }
            if (p.Kind == PaymentKind.Refund) refunds++;
            if (l.GetFraudScore(id) is not { } f) continue;
            scored++;
            if ((f.Reasons & FraudReasons.ReviewApproved) != 0) approved++;
            if ((f.Reasons & FraudReasons.ReviewDeclined) != 0) reviewDeclined++;
            if ((f.Reasons & FraudReasons.DailyLimitExceeded) != 0) daily++;
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(row, id);
            System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(row[8..], f.Score);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(row[12..], (ushort)f.Reasons);
            digest.AppendData(row);
            digest.AppendData(System.Text.Encoding.UTF8.GetBytes(f.ModelVersion));
        }
        return new Expected(
            l.RulesVersion, l.ComputeStateHash(), lastSequence, upgradeSequence, l.CommandsApplied, l.PaymentCount, l.AccountCount, scored,
            l.FraudDecisions(FraudDecision.Allow), l.FraudDecisions(FraudDecision.Review), l.FraudDecisions(FraudDecision.Decline),
            held, declined, approved, reviewDeclined, captured, voided, refunds, daily, Convert.ToHexStringLower(digest.GetHashAndReset()));
    }

    /// <summary>
    /// A mixed workload over the wallets 2..17 (owners 100..115) and the funding account 1: deposits, transfers by their
    /// owners (some refused for funds), authorizations by an admin, captures, voids, refunds, freezes, retries and ticks,
    /// amounts large enough now and then to be held (AmountThreshold) and senders busy enough to meet the daily limit.
    /// </summary>
    public static IEnumerable<Command> Mixed(Commands k, int seed, int count, long firstPayment, long lastPayment)
    {
        var rng = new Random(seed);
        var sent = new List<Command>();
        long Wallet() => 2 + rng.Next(16);
        long AnyPayment() => firstPayment + rng.NextInt64(Math.Max(1, lastPayment - firstPayment + 1));
        for (int n = 0; n < count; n++)
        {
            int roll = rng.Next(100);
            Command c;
            if (roll < 12) c = k.Move(CommandType.Deposit, 1, Wallet(), rng.Next(1, 20_000));
            else if (roll < 45)
            {
                long from = Wallet();
                c = k.Move(CommandType.Transfer, from, Wallet(), rng.Next(20) == 0 ? rng.Next(9_000, 30_000) : rng.Next(1, 4_000)) with
                {
                    ClientId = 98 + from, Flags = CommandFlags.OwnerOnly,
                };
            }
            else if (roll < 57) c = k.Move(CommandType.Authorize, Wallet(), Wallet(), rng.Next(1, 5_000)) with { Argument = rng.Next(3_600_000, 86_400_000) };
            else if (roll < 67) c = k.OnPayment(CommandType.Capture, AnyPayment(), rng.Next(0, 3_000));
            else if (roll < 72) c = k.OnPayment(CommandType.Void, AnyPayment());
            else if (roll < 80) c = k.OnPayment(CommandType.Refund, AnyPayment(), rng.Next(1, 2_000));
            else if (roll < 82) c = new Command { Type = rng.Next(2) == 0 ? CommandType.Freeze : CommandType.Unfreeze, ClientId = 1, Key = k.NextKey(), FromAccount = Wallet() };
            else if (roll < 90 && sent.Count > 10) c = sent[sent.Count - 1 - rng.Next(Math.Min(sent.Count, 300))]; // a retry: same key and body
            else c = new Command { Type = CommandType.Tick };
            sent.Add(c);
            yield return c;
        }
    }

    /// <summary>
    /// The card tester: its owner sends 100 small transfers (5 to 11) to every wallet in turn from a wallet that mostly
    /// cannot pay them (refused for funds), topped up by 12 every tenth attempt: about ten are made. Under rules 4 the
    /// refused attempts count as signal (past the daily limit of 60 attempts, the ones it can pay are declined); under
    /// rules 3 only payments made count.
    /// </summary>
    public static IEnumerable<Command> CardTester(Commands k)
    {
        for (int i = 0; i < 100; i++)
        {
            if (i % 10 == 0) yield return k.Move(CommandType.Deposit, 1, TesterAccount, 12);
            yield return k.Move(CommandType.Transfer, TesterAccount, 2 + i % 16, 5 + i % 7) with { ClientId = TesterOwner, Flags = CommandFlags.OwnerOnly };
        }
    }

    /// <summary>Reviews of every payment held now: approve two, decline the third.</summary>
    public static IEnumerable<Command> Reviews(Commands k, Ledger l)
    {
        int n = 0;
        for (long id = 1; id <= l.PaymentCount; id++)
            if (l.GetPayment(id).Status == PaymentStatus.HeldForReview && n++ % 3 != 2)
                yield return k.OnPayment(CommandType.Review, id) with { Argument = ReviewDecisions.Approve };
            else if (l.GetPayment(id).Status == PaymentStatus.HeldForReview)
                yield return k.OnPayment(CommandType.Review, id) with { Argument = ReviewDecisions.Decline };
    }

    /// <summary>Captures, voids and refunds of the payments approved at review.</summary>
    public static IEnumerable<Command> AfterReview(Commands k, Ledger l)
    {
        int n = 0;
        for (long id = 1; id <= l.PaymentCount; id++)
        {
            var p = l.GetPayment(id);
            if (l.GetFraudScore(id) is not { } f || (f.Reasons & FraudReasons.ReviewApproved) == 0) continue;
            if (p.Status == PaymentStatus.Authorized) yield return n++ % 2 == 0 ? k.OnPayment(CommandType.Capture, id, p.Amount / 2) : k.OnPayment(CommandType.Void, id);
            else if (p.Status == PaymentStatus.Posted) yield return k.OnPayment(CommandType.Refund, id, Math.Max(1, p.Amount / 3));
        }
    }
}

public class GoldenJournalV4Tests
{
    private static (Ledger Ledger, long Last) Replay(TempDataDir dir, long upTo = long.MaxValue)
    {
        var (ledger, snapshot, _, last) = upTo == long.MaxValue
            ? EngineRecovery.Load(dir.Snapshots, dir.Journal, GoldenJournalV4.Options, useSnapshot: false, [])
            : EngineRecovery.Load(dir.Snapshots, dir.Journal, GoldenJournalV4.Options, useSnapshot: false, upTo, []);
        Assert.Equal(0, snapshot);
        return (ledger, last);
    }

    [Fact]
    public void The_rules_3_golden_journal_with_scoring_on_replays_to_its_pinned_hash_and_scores()
    {
        var expected = GoldenJournalV4.ReadExpected("v3");
        using var dir = new TempDataDir();
        GoldenJournalV4.CopyTo("v3", dir.Path);
        var (ledger, last) = Replay(dir);
        Assert.Equal(expected, GoldenJournalV4.Describe(ledger, last, expected.UpgradeSequence));
        // What the journal was written to hold: every kind of decision, and reviews both ways.
        Assert.Equal(3, expected.RulesVersion);
        Assert.True(expected.HeldAtScoring > 0 && expected.DeclinedAtScoring > 0 && expected.ApprovedAtReview > 0 && expected.DeclinedAtReview > 0, expected.ToString());
        Assert.True(expected.Captured > 0 && expected.Voided > 0 && expected.Refunds > 0 && expected.HeldNow > 0, expected.ToString());
        // Under rules 3 the card tester's refused attempts are not counted: the few payments it made stay under its limit.
        Assert.DoesNotContain(Enumerable.Range(1, (int)ledger.PaymentCount).Select(id => ledger.GetPayment(id)),
            p => p.FromAccount == GoldenJournalV4.TesterAccount && ledger.GetFraudScore(p.Id) is { } f && (f.Reasons & FraudReasons.DailyLimitExceeded) != 0);
    }

    [Fact]
    public void The_rules_4_golden_journal_replays_to_the_rules_3_hash_at_its_upgrade_point_and_to_its_pinned_hash_and_scores()
    {
        var v3 = GoldenJournalV4.ReadExpected("v3");
        var expected = GoldenJournalV4.ReadExpected("v4");
        using var dir = new TempDataDir();
        GoldenJournalV4.CopyTo("v4", dir.Path);

        // 1. Up to the command before the upgrade point: the rules-3 journal's state, bit for bit.
        Assert.Equal(v3.LastSequence + 1, expected.UpgradeSequence);
        var (before, lastBefore) = Replay(dir, v3.LastSequence);
        Assert.Equal(v3, GoldenJournalV4.Describe(before, lastBefore, v3.UpgradeSequence));

        // 2. The whole journal: the pinned rules-4 state and scores.
        var (ledger, last) = Replay(dir);
        Assert.Equal(expected, GoldenJournalV4.Describe(ledger, last, expected.UpgradeSequence));
        Assert.Equal(4, expected.RulesVersion);
        Assert.True(ledger.FraudStagedInline > 0); // replay staged every command after the upgrade itself
        Assert.True(expected.ApprovedAtReview > v3.ApprovedAtReview && expected.DeclinedAtReview > v3.DeclinedAtReview, expected.ToString());
        Assert.True(expected.HeldAtScoring > v3.HeldAtScoring && expected.DeclinedAtScoring > v3.DeclinedAtScoring, expected.ToString());

        // 3. The card tester: under rules 4 its refused attempts count, so its daily limit (60) is met after a few payments
        //    made, and the later ones it could pay are declined by the rule.
        var testers = Enumerable.Range((int)v3.PaymentCount + 1, (int)(ledger.PaymentCount - v3.PaymentCount)).Select(id => ledger.GetPayment(id))
            .Where(p => p.FromAccount == GoldenJournalV4.TesterAccount && p.Kind == PaymentKind.Transfer).ToList();
        int made = testers.Count(p => p.Status == PaymentStatus.Posted), limited = testers.Count(p => (ledger.GetFraudScore(p.Id)!.Value.Reasons & FraudReasons.DailyLimitExceeded) != 0);
        Assert.True(made is > 0 and < 20 && limited > 0, $"the tester made {made} payments, {limited} declined by the daily limit, of {testers.Count}");
        Assert.Contains(testers, p => p.Status == PaymentStatus.Declined && (ledger.GetFraudScore(p.Id)!.Value.Reasons & FraudReasons.DailyLimitExceeded) != 0);
    }

    [Fact]
    public void The_golden_rules_3_data_started_under_the_server_default_journals_one_upgrade_and_keeps_its_hash_before_it()
    {
        var v3 = GoldenJournalV4.ReadExpected("v3");
        using var dir = new TempDataDir();
        GoldenJournalV4.CopyTo("v3", dir.Path);
        var start = Options(dir.Path, new SteppingClock(2_000_000_000_000, 1_000), EngineOptions.ServerRulesVersion);
        string live;
        long last;
        using (var engine = RamPayEngine.Start(start))
        {
            Assert.Equal(v3.StateHash, engine.Recovery.StateHash);
            Assert.Equal(v3.LastSequence + 1, engine.CompletedSequence); // the upgrade point, journaled once
            var k = new Commands();
            foreach (var c in GoldenJournalV4.CardTester(k)) engine.Submit(c);
            engine.Stop();
            Assert.Equal(Ledger.FraudStageRulesVersion, engine.LedgerAfterStop.RulesVersion);
            Assert.Equal(0, engine.LedgerAfterStop.FraudStagedInline);
            live = engine.LedgerAfterStop.ComputeStateHash();
            last = engine.CompletedSequence;
        }
        // A restart journals no second upgrade.
        using (var engine = RamPayEngine.Start(Options(dir.Path, new SteppingClock(2_100_000_000_000, 1_000), EngineOptions.ServerRulesVersion)))
        {
            Assert.Equal(last, engine.CompletedSequence);
            Assert.Equal(live, engine.Recovery.StateHash);
        }
        var (before, _) = Replay(dir, v3.LastSequence);
        Assert.Equal(v3.StateHash, before.ComputeStateHash());
        Assert.Equal(3, before.RulesVersion);
        Assert.Equal(live, Replay(dir).Ledger.ComputeStateHash());
    }

    private static EngineOptions Options(string dir, SteppingClock clock, int rules) => new()
    {
        DataDirectory = dir, Clock = clock.Now, RingSize = 1024, TickIntervalMs = 0, MaxBatchSize = 64,
        SnapshotEveryCommands = 0, SnapshotOnStop = false, Fsync = false, Ledger = GoldenJournalV4.Options,
        RulesVersion = rules, IdempotencyKeyBudget = 100_000, Fraud = GoldenJournalV4.Fraud,
    };

    private static void Submit(RamPayEngine engine, IEnumerable<Command> commands)
    {
        long last = 0;
        foreach (var c in commands) last = engine.Submit(c);
        if (last > 0) Assert.True(engine.WaitForCompletion(last, TimeSpan.FromMinutes(2)));
    }

    /// <summary>Writes Golden/v3 and Golden/v4 (run once, by hand; see <see cref="GoldenJournalV4"/>'s remarks).</summary>
    [Fact]
    public void Write_the_rules_3_and_4_golden_journals()
    {
        if (Environment.GetEnvironmentVariable("RAMPAY_WRITE_GOLDEN") != "1") return;
        string v3 = GoldenJournalV4.Folder("v3"), v4 = GoldenJournalV4.Folder("v4");
        foreach (string f in new[] { v3, v4 }) if (Directory.Exists(f)) Directory.Delete(f, recursive: true);
        using var work = new TempDataDir();
        var clock = new SteppingClock(1_750_000_000_000, stepMs: 60_000);
        var k = new Commands();

        // 1. Rules 3 on a new folder (its upgrade point 1 → 3 is the journal's first record): 17 wallets, funding, traffic,
        //    the card tester; then (restarts journal nothing) reviews of what was held, then captures, voids and refunds
        //    of those approved, and a little more traffic.
        var open = new List<Command> { k.Open(AccountFlags.Funding) };
        for (int i = 0; i < 17; i++) open.Add(k.Open(AccountFlags.DebitsMustNotExceedCredits, owner: i < 16 ? 100 + i : GoldenJournalV4.TesterOwner));
        for (int i = 0; i < 16; i++) open.Add(k.Move(CommandType.Deposit, 1, 2 + i, 50_000));
        Session(work, clock, 3, _ => [.. open, .. GoldenJournalV4.Mixed(k, seed: 31, count: 2_500, firstPayment: 1, lastPayment: 1_200), .. GoldenJournalV4.CardTester(k)]);
        Session(work, clock, 3, l => [.. GoldenJournalV4.Reviews(k, l)]);
        Session(work, clock, 3, l => [.. GoldenJournalV4.AfterReview(k, l), .. GoldenJournalV4.Mixed(k, seed: 32, count: 300, firstPayment: 1, lastPayment: 1_400)]);
        var (l3, last3) = Replay(work);
        Assert.Equal(3, l3.RulesVersion);
        Save(work.Path, v3, GoldenJournalV4.Describe(l3, last3, upgradeSequence: 1));

        // 2. The first start under rules 4: the upgrade point 3 → 4, then the same kinds of traffic, tester and reviews.
        Session(work, clock, 4, l => [.. GoldenJournalV4.Mixed(k, seed: 41, count: 2_500, firstPayment: 1, lastPayment: l.PaymentCount + 1_000), .. GoldenJournalV4.CardTester(k)]);
        Session(work, clock, 4, l => [.. GoldenJournalV4.Reviews(k, l)]);
        Session(work, clock, 4, l => [.. GoldenJournalV4.AfterReview(k, l), .. GoldenJournalV4.Mixed(k, seed: 42, count: 300, firstPayment: 1_400, lastPayment: l.PaymentCount)]);
        var (l4, last4) = Replay(work);
        Assert.Equal(4, l4.RulesVersion);
        Save(work.Path, v4, GoldenJournalV4.Describe(l4, last4, upgradeSequence: last3 + 1));
    }

    /// <summary>One start of the engine on the folder: the commands <paramref name="commands"/> builds from the state it recovered.</summary>
    private static void Session(TempDataDir dir, SteppingClock clock, int rules, Func<Ledger, List<Command>> commands)
    {
        var recovered = Directory.Exists(dir.Journal) ? Replay(dir).Ledger : null!;
        using var engine = RamPayEngine.Start(Options(dir.Path, clock, rules));
        Submit(engine, commands(recovered));
        engine.Stop();
    }

    private static void Save(string from, string folder, GoldenJournalV4.Expected expected)
    {
        Directory.CreateDirectory(Path.Combine(folder, "journal"));
        foreach (string f in Directory.GetFiles(Path.Combine(from, "journal")))
            File.Copy(f, Path.Combine(folder, "journal", Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(folder, "expected.json"), JsonSerializer.Serialize(expected, new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}
