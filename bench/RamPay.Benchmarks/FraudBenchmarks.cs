using BenchmarkDotNet.Attributes;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Fraud;
using RamPay.Fraud.Training;

namespace RamPay.Benchmarks;

/// <summary>
/// Scoring one payment as the writer does (<see cref="FraudState.Score"/>: features read and updated, rules, model),
/// with the shipped tree ensemble and with a logistic regression; and the feature store alone. 100,000 payments
/// between 10,000 accounts per invocation, one per millisecond; each invocation shifts them later in time so that
/// journaled time never goes back. Time and allocation are per payment. Target: at most 1 µs and 0 bytes.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 15)]
public class FraudScoringBenchmarks
{
    public const int Accounts = 10_000;
    public const int Payments = 100_000;
    private PaymentFacts[] _payments = [];
    private FeatureStore _features = null!;
    private FraudState _trees = null!, _logistic = null!;
    private readonly double[] _row = new double[Features.Count];
    private long _offsetMs;

    public static PaymentFacts[] RandomPayments(int count, int accounts, int seed)
    {
        var rng = new Random(seed);
        var payments = new PaymentFacts[count];
        for (int i = 0; i < count; i++)
        {
            int from = 1 + rng.Next(accounts);
            int to = 1 + (from + rng.Next(accounts - 1)) % accounts;
            long now = LedgerWorkload.StartMs + i;
            payments[i] = new PaymentFacts(from, to, 1 + rng.Next(5_000), now, LedgerWorkload.StartMs - rng.NextInt64(1, 400L * 86_400_000), LedgerWorkload.StartMs - 86_400_000, 10_000 + rng.Next(1_000_000));
        }
        return payments;
    }

    /// <summary>A logistic regression trained on a small generated scenario (the cost does not depend on the weights).</summary>
    public static FraudModel SmallLogisticModel()
    {
        var scenario = Scenario.Generate(ScenarioOptions.Default with { Users = 500, Days = 14, TrainDays = 10, WarmupDays = 3 });
        var data = LabelledSet.FromScenario(scenario);
        return MlNetTrainer.Train(MlNetAlgorithm.Logistic, data, data.SplitAt(scenario.Options.SplitMs).Train, "bench-logistic", Features.SchemaId).Model;
    }

    private static FraudState Configured(FraudModel model)
    {
        var state = new FraudState(Accounts, FraudModelCatalog.Empty.With(model));
        // Thresholds out of reach and every rule on: all of the scoring path runs, nothing is acted on (here nothing could be).
        var settings = new FraudSettings
        {
            Enabled = true, ModelSha256 = model.Sha256, AmountThreshold = long.MaxValue, MaxPaymentsPerDay = int.MaxValue, BlockedAccounts = [Accounts + 1],
            ReviewThresholdPpm = FraudSettings.ThresholdOff, DeclineThresholdPpm = FraudSettings.ThresholdOff,
        };
        if (!state.TryConfigure(settings.Encode())) throw new InvalidOperationException("configuration refused");
        return state;
    }

    [GlobalSetup]
    public void Setup()
    {
        _payments = RandomPayments(Payments, Accounts, seed: 3);
        _features = new FeatureStore(Accounts);
        _trees = Configured(FraudModel.Default);
        _logistic = Configured(SmallLogisticModel());
        // One pass first, so that every account has history and its chunk exists (what a running server has).
        FeaturesOnly();
        ScoreWithTrees();
        ScoreWithLogistic();
    }

    private long NextSpan()
    {
        long offset = _offsetMs;
        _offsetMs += Payments + 1;
        return offset;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Payments)]
    public double FeaturesOnly()
    {
        long offset = NextSpan();
        double sum = 0;
        foreach (ref readonly var p in _payments.AsSpan())
        {
            _features.ComputeAndRecord(p with { NowMs = p.NowMs + offset }, _row);
            sum += _row[Features.SenderCount1h];
        }
        return sum;
    }

    [Benchmark(OperationsPerInvoke = Payments)]
    public double ScoreWithTrees() => Score(_trees);

    [Benchmark(OperationsPerInvoke = Payments)]
    public double ScoreWithLogistic() => Score(_logistic);

    private double Score(FraudState state)
    {
        long offset = NextSpan();
        double sum = 0;
        foreach (ref readonly var p in _payments.AsSpan()) sum += state.Score(p with { NowMs = p.NowMs + offset }).Score;
        return sum;
    }
}

/// <summary>
/// The writer's throughput with fraud scoring off and on: <see cref="Ledger.Apply"/> of the same 1,000,000 transfers
/// between 10,000 funded wallets as <see cref="LedgerApplyBenchmarks"/>, on a fresh ledger each iteration.
/// <c>off</c>: no scoring. <c>observe</c>: every transfer scored by the shipped model with every rule on, thresholds
/// out of reach (the cost of scoring alone). <c>default</c>: the server's defaults (review at 0.5, decline at 0.9), so
/// that the model's decisions (holds, declines) are part of the work.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(launchCount: 1, warmupCount: 2, iterationCount: 9, invocationCount: 1)]
public class LedgerFraudBenchmarks
{
    private const int Commands = LedgerApplyBenchmarks.Commands;
    private const int Wallets = 10_000;
    private Command[] _transfers = [];
    private Ledger _ledger = null!;

    [Params("off", "observe", "default")]
    public string Fraud { get; set; } = "off";

    [GlobalSetup]
    public void GlobalSetup() => _transfers = LedgerWorkload.Transfers(Commands, Wallets, seed: 42);

    public static FraudSettings? Settings(string mode) => mode switch
    {
        "off" => null,
        "observe" => new FraudSettings
        {
            Enabled = true, ModelSha256 = FraudModel.Default.Sha256, AmountThreshold = long.MaxValue, MaxPaymentsPerDay = int.MaxValue, BlockedAccounts = [1_000_000_000],
            ReviewThresholdPpm = FraudSettings.ThresholdOff, DeclineThresholdPpm = FraudSettings.ThresholdOff,
        },
        "default" => new FraudSettings { Enabled = true, ModelSha256 = FraudModel.Default.Sha256, ReviewThresholdPpm = 500_000, DeclineThresholdPpm = 900_000 },
        _ => throw new ArgumentException(mode),
    };

    [IterationSetup]
    public void FreshLedger()
    {
        _ledger = LedgerWorkload.FundedLedger(Wallets, Commands);
        if (Settings(Fraud) is { } settings)
        {
            _ledger.Apply(new Command { Type = CommandType.ConfigureFraud, TimestampMs = LedgerWorkload.StartMs }, settings.Encode(), out var r);
            if (!r.IsOk) throw new InvalidOperationException("configuration refused");
        }
    }

    [IterationCleanup]
    public void Outcomes()
    {
        long held = 0, declined = 0, posted = 0;
        for (long id = Wallets + 1; id <= _ledger.PaymentCount; id++)
        {
            var status = _ledger.GetPayment(id).Status;
            if (status == PaymentStatus.HeldForReview) held++;
            else if (status == PaymentStatus.Declined) declined++;
            else posted++;
        }
        Console.WriteLine($"// fraud={Fraud}: posted {posted}, held {held}, declined {declined}");
    }

    [Benchmark(OperationsPerInvoke = Commands)]
    public long ApplyTransfers()
    {
        long ok = 0;
        foreach (ref readonly var c in _transfers.AsSpan())
        {
            _ledger.Apply(c, out var r);
            if (r.Code == ResultCode.Ok) ok++;
        }
        return ok;
    }
}

/// <summary>
/// The whole engine in-process (as <see cref="EngineThroughputBenchmarks"/>, fsync on, batches of 1,024, SpinThenBlock)
/// with fraud scoring off and on (the server's default settings, journaled by the engine at start).
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 7, invocationCount: 1)]
public class EngineFraudThroughputBenchmarks : EngineRunBenchmarks
{
    [Params("off", "default")]
    public string Fraud { get; set; } = "off";

    protected override int SubmitBatchSize => 1024;
    protected override WaitStrategyKind WaitStrategy => WaitStrategyKind.SpinThenBlock;

    protected override FraudConfiguration? FraudInForce =>
        LedgerFraudBenchmarks.Settings(Fraud) is { } settings ? new FraudConfiguration { Settings = settings, Model = FraudModel.Default } : null;
}
