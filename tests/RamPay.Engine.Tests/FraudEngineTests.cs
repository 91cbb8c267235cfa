using RamPay.Core;
using RamPay.Fraud;
using RamPay.Fraud.Training;

namespace RamPay.Engine.Tests;

/// <summary>
/// Fraud scoring through the engine: the configuration is journaled, models are kept in the data directory, and a
/// replay (from the journal alone, or a snapshot plus the journal) rebuilds the same scores and the same state hash.
/// </summary>
public class FraudEngineTests
{
    private static readonly Currency Usd = Currency.USD;

    /// <summary>Logit 4 · (amount_log2 − 10): held from about 1,023 minor units, declined from about 1,770.</summary>
    private static FraudModel AmountModel(string version)
    {
        var mean = new double[Features.Count];
        var scale = Enumerable.Repeat(1.0, Features.Count).ToArray();
        var weights = new double[Features.Count];
        mean[Features.AmountLog2] = 10;
        weights[Features.AmountLog2] = 4;
        return FraudModel.CreateLogistic(version, Features.SchemaId, 0, mean, scale, weights);
    }

    private static FraudConfiguration Config(FraudModel model, int reviewPpm = 500_000) =>
        new() { Model = model, Settings = new FraudSettings { Enabled = true, ReviewThresholdPpm = reviewPpm, DeclineThresholdPpm = 900_000 } };

    private static EngineOptions Options(TempDataDir dir, FraudConfiguration? fraud) => new()
    {
        DataDirectory = dir.Path, Clock = new SteppingClock(stepMs: 1_000).Now, SnapshotEveryCommands = 0, SnapshotOnStop = false, TickIntervalMs = 0,
        Fraud = fraud, Ledger = new LedgerOptions { MaxAccounts = 64, MaxPayments = 1 << 16, InitialPaymentCapacity = 0, MaxOpenHolds = 1 << 12, IdempotencyMaxKeys = 1 << 14 },
    };

    private static List<Command> Traffic(Commands k, int wallets, int count, int seed)
    {
        var rng = new Random(seed);
        var list = new List<Command>();
        for (int i = 0; i < count; i++)
        {
            long from = 2 + rng.Next(wallets), to = 2 + (from - 2 + 1 + rng.Next(wallets - 1)) % wallets;
            list.Add(k.Move(rng.Next(5) == 0 ? CommandType.Authorize : CommandType.Transfer, from, to, rng.Next(4) == 0 ? rng.Next(900, 3_000) : rng.Next(1, 900)));
        }
        return list;
    }

    private static List<PaymentFraud?> Scores(Ledger l) => [.. Enumerable.Range(1, (int)l.PaymentCount).Select(id => l.GetFraudScore(id))];

    [Fact]
    public async Task The_configuration_is_journaled_once_and_replay_rebuilds_the_same_scores()
    {
        using var dir = new TempDataDir();
        var k = new Commands();
        var model = AmountModel("amount-v1");
        string hash;
        List<PaymentFraud?> scores;
        long lastSequence;
        using (var engine = RamPayEngine.Start(Options(dir, Config(model))))
        {
            Assert.Equal(1, engine.CompletedSequence); // the ConfigureFraud command
            engine.Submit(k.Open(AccountFlags.Funding));
            for (int i = 0; i < 8; i++) engine.Submit(k.Open(AccountFlags.DebitsMustNotExceedCredits));
            for (int i = 0; i < 8; i++) engine.Submit(k.Move(CommandType.Deposit, 1, 2 + i, 1_000_000));
            foreach (var c in Traffic(k, 8, 400, 1)) engine.Submit(c);
            // Review two held payments, one each way (a Review is journaled like any command).
            var held = await engine.QueryAsync(l => Enumerable.Range(1, (int)l.PaymentCount).Where(id => l.GetPayment(id).Status == PaymentStatus.HeldForReview).Take(2).ToList());
            Assert.Equal(2, held.Count);
            engine.Submit(k.OnPayment(CommandType.Review, held[0]) with { Argument = ReviewDecisions.Approve });
            engine.Submit(k.OnPayment(CommandType.Review, held[1]) with { Argument = ReviewDecisions.Decline });
            engine.Stop();
            var l = engine.LedgerAfterStop;
            Assert.Equal(PaymentStatus.Declined, l.GetPayment(held[1]).Status);
            Assert.Contains("review_approved", l.GetFraudScore(held[0])!.Value.ReasonNames);
            hash = l.ComputeStateHash();
            scores = Scores(l);
            lastSequence = engine.CompletedSequence;
            Assert.Contains(scores, s => s is { } f && f.ReasonNames.Contains("model_review"));
            Assert.Contains(scores, s => s is { } f && f.ReasonNames.Contains("model_decline"));
            Assert.All(scores.Skip(8), s => Assert.Equal("amount-v1", s!.Value.ModelVersion));
        }
        Assert.True(File.Exists(Path.Combine(dir.Path, "fraud-models", model.Sha256Hex + ".rpfm")));

        // From the journal alone, with the models the data directory keeps.
        var (replayed, _, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, new LedgerOptions { FraudModels = FraudModelStore.Load(dir.Path) }, useSnapshot: false, []);
        Assert.Equal(hash, replayed.ComputeStateHash());
        Assert.Equal(scores, Scores(replayed));

        // The same configuration again: nothing new is journaled.
        using (var engine = RamPayEngine.Start(Options(dir, Config(model))))
        {
            Assert.Equal(lastSequence, engine.CompletedSequence);
            Assert.Equal(lastSequence, engine.Recovery.LastSequence);
            engine.Stop();
            Assert.Equal(hash, engine.LedgerAfterStop.ComputeStateHash());
        }

        // A new threshold and a new model: one ConfigureFraud, after which new payments carry the new version; old ones keep theirs.
        var model2 = AmountModel("amount-v2");
        using (var engine = RamPayEngine.Start(Options(dir, Config(model2, reviewPpm: 800_000)) with { SnapshotOnStop = true }))
        {
            Assert.Equal(lastSequence + 1, engine.CompletedSequence);
            foreach (var c in Traffic(k, 8, 50, 2)) engine.Submit(c);
            engine.Stop();
            var l = engine.LedgerAfterStop;
            Assert.Equal(800_000, l.FraudSettings.ReviewThresholdPpm);
            Assert.Equal(scores, Scores(l).Take(scores.Count));
            Assert.Equal("amount-v2", l.GetFraudScore(l.PaymentCount)!.Value.ModelVersion);
            hash = l.ComputeStateHash();
        }
        // Snapshot plus nothing, and journal only: the same state.
        var (fromSnapshot, snapshotSequence, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, new LedgerOptions { FraudModels = FraudModelStore.Load(dir.Path) }, useSnapshot: true, []);
        Assert.True(snapshotSequence > 0);
        Assert.Equal(hash, fromSnapshot.ComputeStateHash());
        var (fromJournal, _, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, new LedgerOptions { FraudModels = FraudModelStore.Load(dir.Path) }, useSnapshot: false, []);
        Assert.Equal(hash, fromJournal.ComputeStateHash());

        // Without the models the journal names, the journal cannot be replayed as written: a clear error, not a different state.
        Directory.Delete(Path.Combine(dir.Path, "fraud-models"), recursive: true);
        Assert.Throws<FraudModelNotFoundException>(() => EngineRecovery.Load(dir.Snapshots, dir.Journal, new LedgerOptions { FraudModels = FraudModelStore.Load(dir.Path) }, useSnapshot: false, []));
    }

    [Fact]
    public void A_model_for_another_feature_schema_is_refused_at_start()
    {
        using var dir = new TempDataDir();
        var foreign = FraudModel.CreateLogistic("foreign", "other-schema", 0, [0], [1], [1]);
        var e = Assert.Throws<ArgumentException>(() => RamPayEngine.Start(Options(dir, new FraudConfiguration { Model = foreign, Settings = new FraudSettings { Enabled = true } })));
        Assert.Contains("feature schema", e.Message);
    }

    /// <summary>
    /// The training pipeline and the writer compute the same features: a generated scenario applied to a ledger with
    /// the default model (thresholds out of reach, so balances follow the scenario's) gives every payment exactly the
    /// score the offline pipeline computes from its feature row. And a snapshot half-way plus the rest gives the same
    /// state and scores as applying everything.
    /// </summary>
    [Fact]
    public void The_ledger_scores_a_scenario_exactly_as_the_training_pipeline_and_replay_agrees()
    {
        var scenario = Scenario.Generate(ScenarioOptions.Default with { Users = 300, Days = 10, TrainDays = 7, WarmupDays = 3 });
        var commands = new List<(Command Command, bool Payment)>();
        int n = 0;
        Command Keyed(Command c, long at) => c with { TimestampMs = at, ClientId = 1, Key = IdempotencyKey.FromString("scenario-" + n++) };
        foreach (var e in scenario.Events)
        {
            commands.Add(e.Kind switch
            {
                ScenarioEventKind.OpenAccount => (Keyed(new Command { Type = CommandType.OpenAccount, Currency = Usd, Flags = (byte)(e.From == 1 ? AccountFlags.Funding : AccountFlags.DebitsMustNotExceedCredits) }, e.TimeMs), false),
                ScenarioEventKind.Deposit => (Keyed(new Command { Type = CommandType.Deposit, Currency = Usd, FromAccount = 1, ToAccount = e.To, Amount = e.Amount }, e.TimeMs), false),
                _ => (Keyed(new Command { Type = CommandType.Transfer, Currency = Usd, FromAccount = e.From, ToAccount = e.To, Amount = e.Amount }, e.TimeMs), true),
            });
        }
        var options = new LedgerOptions
        {
            MaxAccounts = scenario.Accounts, MaxPayments = commands.Count, InitialPaymentCapacity = 0, MaxOpenHolds = 1 << 12, IdempotencyMaxKeys = commands.Count,
        };
        var settings = new FraudSettings
        {
            Enabled = true, ModelSha256 = FraudModel.Default.Sha256, ReviewThresholdPpm = FraudSettings.ThresholdOff, DeclineThresholdPpm = FraudSettings.ThresholdOff,
        };
        Ledger Run(IEnumerable<(Command Command, bool Payment)> part, Ledger? into = null)
        {
            var l = into ?? new Ledger(options);
            if (into is null)
            {
                l.Apply(new Command { Type = CommandType.ConfigureFraud, TimestampMs = scenario.Events[0].TimeMs }, settings.Encode(), out var r);
                Assert.True(r.IsOk);
            }
            foreach (var (c, _) in part)
            {
                l.Apply(c, out var result);
                Assert.True(result.IsOk, $"{c.Type} at {c.TimestampMs}: {result}");
            }
            return l;
        }
        var whole = Run(commands);
        whole.VerifyInvariants();

        var data = LabelledSet.FromScenario(scenario);
        var paymentTimes = scenario.Events.Where(e => e.Kind == ScenarioEventKind.Payment).Select(e => e.TimeMs).ToList();
        int firstRow = paymentTimes.FindIndex(t => t >= scenario.Options.StartMs);
        Assert.Equal(paymentTimes.Count - firstRow, data.Count);
        // Payment ids: deposits are payments too, so walk the ledger's payments and match transfers in order.
        var transferIds = Enumerable.Range(1, (int)whole.PaymentCount).Where(id => whole.GetPayment(id).Kind == PaymentKind.Transfer).ToList();
        Assert.Equal(paymentTimes.Count, transferIds.Count);
        for (int i = 0; i < data.Count; i++)
        {
            var recorded = whole.GetFraudScore(transferIds[firstRow + i])!.Value;
            float offline = (float)FraudModel.Default.Score(data.Row(i));
            if (recorded.Score != offline) Assert.Fail($"payment {transferIds[firstRow + i]}: the ledger scored {recorded.Score:R}, the training pipeline {offline:R}");
        }
        Assert.Contains(Enumerable.Range(0, data.Count), i => data.Label[i] == 1 && whole.GetFraudScore(transferIds[firstRow + i])!.Value.Score >= 0.5f);

        // Snapshot half-way, load it, apply the rest: the same state hash and the same scores.
        int half = commands.Count / 2;
        var first = Run(commands.Take(half));
        using var ms = new MemoryStream();
        first.WriteState(ms);
        ms.Position = 0;
        var resumed = Run(commands.Skip(half), Ledger.ReadState(ms, options));
        Assert.Equal(whole.ComputeStateHash(), resumed.ComputeStateHash());
        Assert.Equal(Scores(whole), Scores(resumed));
    }
}
