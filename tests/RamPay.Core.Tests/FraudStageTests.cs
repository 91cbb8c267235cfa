using RamPay.Fraud;

namespace RamPay.Core.Tests;

/// <summary>
/// Rules version 4: the fraud stage keeps the features and scores every attempted payment in sequence order, reading
/// nothing of the ledger; the ledger only applies its verdict (docs/fraud.md, "Scoring as a stage").
/// </summary>
public class FraudStageTests
{
    private static readonly Currency Usd = Currency.USD;
    private const int N = 10_000;

    private static Command Upgrade(int version, long at) =>
        new() { Type = CommandType.UpgradeRules, Argument = version, Amount = 1 << 16, TimestampMs = at };

    /// <summary>Logit 2 · (sender_count_1h − 4): from the sender's 5th payment (or attempt) within the hour, held.</summary>
    internal static FraudModel CountModel()
    {
        var mean = new double[Features.Count];
        var scale = Enumerable.Repeat(1.0, Features.Count).ToArray();
        var weights = new double[Features.Count];
        mean[Features.SenderCount1h] = 4.5;
        weights[Features.SenderCount1h] = 4;
        return FraudModel.CreateLogistic("count-1h", Features.SchemaId, 0, mean, scale, weights);
    }

    private static LedgerOptions Options(FraudModel? model = null) => TestLedger.SmallOptions with
    {
        MaxOpenHolds = 4 * N, MaxPayments = 1 << 17, InitialPaymentCapacity = 1 << 17, IdempotencyMaxKeys = 16 * N,
        FraudModels = model is null ? FraudModelCatalog.WithDefault() : FraudModelCatalog.WithDefault().With(model),
        // Short, so that keys leave memory between the rounds of the allocation test (every key kept would grow the log).
        IdempotencyWindowMs = 1_000,
    };

    private static void Configure(TestLedger t, FraudSettings settings) =>
        Assert.True(t.RunExact(new Command { Type = CommandType.ConfigureFraud, TimestampMs = t.Now }, settings.Encode()).IsOk);

    /// <summary>A funding account (1), a tester's empty wallet (2), a merchant (3), under the given rules, scoring with the count model.</summary>
    private static TestLedger Tester(int rules, int maxPerDay)
    {
        var model = CountModel();
        var t = new TestLedger(new Ledger(Options(model)));
        if (rules > 1) Assert.True(t.RunExact(Upgrade(rules, t.Now)).IsOk);
        t.Ok(Cmd.Open(AccountFlags.Funding, Usd));
        t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd));
        t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd));
        Configure(t, new FraudSettings
        {
            Enabled = true, ModelSha256 = model.Sha256, MaxPaymentsPerDay = maxPerDay,
            ReviewThresholdPpm = FraudSettings.ThresholdOff, DeclineThresholdPpm = FraudSettings.ThresholdOff,
        });
        return t;
    }

    [Fact]
    public void Under_rules_4_refused_attempts_count_in_the_features_and_under_rules_3_they_do_not()
    {
        foreach (int rules in new[] { 3, 4 })
        {
            var t = Tester(rules, maxPerDay: 5);
            // A card tester with nothing in the wallet: ten attempts, each refused by the ledger for funds.
            for (int i = 0; i < 10; i++)
            {
                t.Now += 1_000;
                Assert.Equal(ResultCode.InsufficientFunds, t.Run(Cmd.Transfer(2, 3, 100, Usd)).Code);
            }
            t.Ok(Cmd.Deposit(1, 2, 10_000, Usd));
            t.Now += 1_000;
            var r = t.Run(Cmd.Transfer(2, 3, 100, Usd));
            var p = t.Ledger.GetFraudScore(r.Id)!.Value;
            if (rules == 3)
            {
                // Under 3 the refused attempts left no trace: the first payment that passes is the sender's first.
                Assert.True(r.IsOk, r.ToString());
                Assert.Empty(p.ReasonNames);
            }
            else
            {
                // Under 4 the stage counted every attempt: the 11th within a day declines by the daily rule, and the model saw
                // ten payments in the hour.
                Assert.Equal(ResultCode.FraudSuspected, r.Code);
                Assert.Contains("daily_limit_exceeded", p.ReasonNames);
                Assert.True(p.Score > 0.99f, $"score {p.Score}");
                // 3 opens, the configuration, 10 attempts, a deposit, the last attempt; the upgrade itself came before the stage started.
                Assert.Equal(16, t.Ledger.FraudStagedInline);
            }
        }
    }

    [Fact]
    public void The_upgrade_to_4_seeds_the_stage_with_each_account_s_age_and_balance_and_journals_before_it_keep_their_scores()
    {
        // The same commands under rules 3 throughout, and with an upgrade to 4 half-way: up to the upgrade, every score and the
        // state up to it are identical (the upgrade point is where the rules change).
        var model = FraudModel.Default;
        long paymentsAtUpgrade = 0;
        TestLedger Build(bool upgrade)
        {
            var t = new TestLedger(new Ledger(Options()));
            Assert.True(t.RunExact(Upgrade(3, t.Now)).IsOk);
            t.Ok(Cmd.Open(AccountFlags.Funding, Usd));
            for (int i = 0; i < 6; i++) t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd));
            Configure(t, new FraudSettings { Enabled = true, ModelSha256 = model.Sha256, ReviewThresholdPpm = FraudSettings.ThresholdOff, DeclineThresholdPpm = FraudSettings.ThresholdOff });
            for (int i = 0; i < 6; i++) t.Ok(Cmd.Deposit(1, 2 + i, 100_000, Usd));
            var rng = new Random(5);
            for (int i = 0; i < 200; i++)
            {
                if (upgrade && i == 100)
                {
                    Assert.Equal(0, t.Ledger.FraudStage.SeenAccounts);
                    paymentsAtUpgrade = t.Ledger.PaymentCount;
                    Assert.True(t.RunExact(Upgrade(4, t.Now)).IsOk);
                    Assert.Equal(7, t.Ledger.FraudStage.SeenAccounts); // seeded: every account the ledger had
                }
                t.Now += 60_000 * rng.Next(1, 30);
                // Every tenth attempt is far beyond any balance: refused by the ledger, counted by the stage under 4.
                t.Run(Cmd.Transfer(2 + rng.Next(6), 2 + rng.Next(6), i % 10 == 9 ? 10_000_000 : 1 + rng.Next(5_000), Usd));
            }
            return t;
        }
        var v3 = Build(upgrade: false).Ledger;
        var v4 = Build(upgrade: true).Ledger;
        Assert.Equal(3, v3.RulesVersion);
        Assert.Equal(4, v4.RulesVersion);
        var scores3 = Enumerable.Range(1, (int)v3.PaymentCount).Select(id => v3.GetFraudScore(id)).ToList();
        var scores4 = Enumerable.Range(1, (int)v4.PaymentCount).Select(id => v4.GetFraudScore(id)).ToList();
        Assert.True(paymentsAtUpgrade > 40);
        Assert.Equal(scores3.Take((int)paymentsAtUpgrade), scores4.Take((int)paymentsAtUpgrade));
        // After it, the stage's features differ from the writer's (refused attempts counted, ages and balances the stage's own).
        Assert.NotEqual(scores3, scores4);
        Assert.All(scores4.Skip((int)paymentsAtUpgrade), s => Assert.NotNull(s));
    }

    [Fact]
    public void Under_rules_4_a_snapshot_holds_the_stage_and_resuming_from_it_gives_the_same_hash_and_scores()
    {
        var model = FraudModel.Default;
        var commands = new List<(Command, byte[]?)>();
        long now = TestLedger.Start;
        int k = 0;
        Command Keyed(Command c) => c with { TimestampMs = now, ClientId = 1, Key = IdempotencyKey.FromString("c" + k++) };
        commands.Add((Upgrade(4, now), null));
        commands.Add((Keyed(Cmd.Open(AccountFlags.Funding, Usd)), null));
        for (int i = 0; i < 10; i++) commands.Add((Keyed(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd)), null));
        commands.Add((new Command { Type = CommandType.ConfigureFraud, TimestampMs = now },
            new FraudSettings { Enabled = true, ModelSha256 = model.Sha256, ReviewThresholdPpm = 300_000, DeclineThresholdPpm = 950_000, MaxPaymentsPerDay = 40 }.Encode()));
        var rng = new Random(11);
        for (int i = 0; i < 3_000; i++)
        {
            now += rng.Next(1, 120_000);
            int roll = rng.Next(10);
            long a = 2 + rng.Next(10), b = 2 + rng.Next(10);
            commands.Add((Keyed(roll switch
            {
                0 => Cmd.Deposit(1, a, rng.Next(1, 50_000), Usd),
                1 => Cmd.Authorize(a, b, rng.Next(1, 20_000), Usd, timeoutMs: 3_600_000),
                _ => Cmd.Transfer(a, b, rng.Next(1, 20_000), Usd),
            }), null));
        }
        Ledger Apply(Ledger l, IEnumerable<(Command C, byte[]? A)> part)
        {
            foreach (var (c, a) in part) l.Apply(c, a ?? [], out _);
            return l;
        }
        var options = Options();
        var whole = Apply(new Ledger(options), commands);
        whole.VerifyInvariants();
        Assert.True(whole.FraudStage.SeenAccounts >= 10);
        var statuses = Enumerable.Range(1, (int)whole.PaymentCount).Select(id => whole.GetPayment(id).Status).ToList();
        Assert.Contains(PaymentStatus.HeldForReview, statuses);
        Assert.Contains(PaymentStatus.Declined, statuses);

        foreach (int cut in new[] { 1, 12, 700, 2_000 })
        {
            var first = Apply(new Ledger(options), commands.Take(cut));
            using var ms = new MemoryStream();
            first.WriteState(ms);
            ms.Position = 0;
            var resumed = Apply(Ledger.ReadState(ms, options), commands.Skip(cut));
            Assert.Equal(whole.ComputeStateHash(), resumed.ComputeStateHash());
            Assert.Equal(Enumerable.Range(1, (int)whole.PaymentCount).Select(id => whole.GetFraudScore(id)),
                Enumerable.Range(1, (int)resumed.PaymentCount).Select(id => resumed.GetFraudScore(id)));
        }

    }

    [Fact]
    public void The_stage_keeps_the_journaled_account_bound_whatever_MaxAccounts_the_replaying_ledger_has()
    {
        long now = TestLedger.Start;
        int k = 0;
        Command Keyed(Command c) => c with { TimestampMs = now += 1_000, ClientId = 1, Key = IdempotencyKey.FromString("b" + k++) };
        var commands = new List<(Command C, byte[]? A)> { (Upgrade(4, now) with { FromAccount = 64 }, null), (Keyed(Cmd.Open(AccountFlags.Funding, Usd)), null) };
        for (int i = 0; i < 3; i++) commands.Add((Keyed(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd)), null));
        commands.Add((new Command { Type = CommandType.ConfigureFraud, TimestampMs = now }, new FraudSettings { Enabled = true, ModelSha256 = FraudModel.Default.Sha256 }.Encode()));
        commands.Add((Keyed(Cmd.Deposit(1, 2, 50_000, Usd)), null));
        for (int i = 0; i < 30; i++)
        {
            // To an id beyond the journaled bound (not kept), to an id within it that does not exist (not counted: the ledger
            // answers account_not_found, FraudStageOwnershipTests), and real ones.
            long to = (i % 3) switch { 0 => 100, 1 => 50, _ => 3 };
            commands.Add((Keyed(Cmd.Transfer(2, to, 10 + i, Usd)), null));
        }
        string Hash(int maxAccounts)
        {
            var l = new Ledger(Options() with { MaxAccounts = maxAccounts });
            foreach (var (c, a) in commands) l.Apply(c, a ?? [], out _);
            l.VerifyInvariants();
            Assert.Equal(2, l.FraudStage.SeenAccounts); // wallets 2 and 3 seen; 50 does not exist, 100 is not kept; the funding account only pays deposits
            return l.ComputeStateHash();
        }
        Assert.Equal(Hash(64), Hash(256));
        // A ledger that could not hold the journaled bound cannot replay it as written: it stops at the upgrade.
        var small = new Ledger(Options() with { MaxAccounts = 32 });
        Assert.Throws<InvalidOperationException>(() => small.Apply(commands[0].C, out _));
        Assert.Equal(1, small.RulesVersion);
    }

    /// <summary>
    /// Golden: the stage's section of a rules-version-4 state, byte for byte (account id, first seen, estimated balance), and a
    /// whole small state's hash. A change to either layout must be a new format, never a silent one.
    /// </summary>
    [Fact]
    public void The_stage_s_state_layout_is_frozen()
    {
        var accounts = new AttemptAccounts(4096);
        accounts.Seed(1, 1_000, 0);
        accounts.Seed(2, 2_000, 5_000);
        ref var e = ref accounts.See(1500, 9_000);
        e.Balance = -7;
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true)) accounts.Write(w);
        Assert.Equal(
            "01000000" + "03000000"
            + "01000000" + "E803000000000000" + "0000000000000000"
            + "02000000" + "D007000000000000" + "8813000000000000"
            + "DC050000" + "2823000000000000" + "F9FFFFFFFFFFFFFF",
            Convert.ToHexString(ms.ToArray()));
        ms.Position = 0;
        var back = AttemptAccounts.Read(new BinaryReader(ms), 4096);
        Assert.Equal(3, back.SeenAccounts);
        Assert.Equal(-7, back.See(1500, 0).Balance);
        Assert.Equal(9_000, back.See(1500, 0).FirstSeenMs);
    }

    [Fact]
    public void Under_rules_4_staging_and_applying_allocate_nothing()
    {
        var t = new TestLedger(new Ledger(Options()));
        Assert.True(t.RunExact(Upgrade(4, t.Now)).IsOk);
        t.Ok(Cmd.Open(AccountFlags.Funding, Usd));
        t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd));
        t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd));
        t.Ok(Cmd.Deposit(1, 2, 1_000_000_000_000, Usd));
        t.Ok(Cmd.Deposit(1, 3, 1_000_000_000_000, Usd)); // both pay: every round's transfers pass, however many rounds run
        Configure(t, new FraudSettings
        {
            Enabled = true, ModelSha256 = FraudModel.Default.Sha256, AmountThreshold = long.MaxValue, MaxPaymentsPerDay = int.MaxValue,
            BlockedAccounts = [7], ReviewThresholdPpm = FraudSettings.ThresholdOff, DeclineThresholdPpm = FraudSettings.ThresholdOff,
        });
        var l = t.Ledger;
        Command[] Round(string prefix, long at) => Enumerable.Range(0, N)
            .Select(i => Cmd.Transfer(i % 2 == 0 ? 2 : 3, i % 2 == 0 ? 3 : 2, 1 + i % 7, Usd).WithKey(prefix + i).At(at).By(1)).ToArray();
        // As the engine does: the stage first (its thread), then the writer with the verdict; and inline (replay).
        (AllocationSample Sample, int Ok) Measure(Command[] commands, bool staged)
        {
            int ok = 0;
            var probe = AllocationSample.Start();
            for (int i = 0; i < commands.Length; i++)
            {
                StagedFraud s = default;
                if (staged) l.FraudStage.Process(commands[i], out s);
                l.Apply(commands[i], [], default, default, s, out var r);
                if (r.IsOk) ok++;
            }
            return (probe.Stop(), ok);
        }
        foreach (bool staged in new[] { true, false })
        {
            Measure(Round("warm" + staged, staged ? 2_000_000 : 3_050_000), staged);
            var rounds = new List<AllocationSample>();
            for (int round = 0; round < AllocationSample.MaxRounds; round++)
            {
                var commands = Round("fresh" + staged + round, 3_000_000 + 10_000 * round + (staged ? 0 : 100_000));
                var (sample, ok) = Measure(commands, staged);
                Assert.Equal(N, ok);
                rounds.Add(sample);
                if (sample.Bytes == 0) break;
            }
            Assert.True(rounds[^1].Bytes == 0, $"staged {staged}: " + AllocationSample.Describe(rounds));
        }
        Assert.NotNull(l.GetFraudScore(l.PaymentCount));
        l.VerifyInvariants();
    }
}
