using BenchmarkDotNet.Attributes;
using RamPay.Core;
using RamPay.Engine;

namespace RamPay.Benchmarks;

/// <summary>
/// The whole pipeline in-process, no sockets: one producer submits transfers in batches of <see cref="SubmitBatchSize"/>,
/// the journaler fsyncs each batch it takes (fsync ON), the business logic applies them, and the output stage
/// completes them. Time is per command, from the first submit to the last completion. Subclasses pick the batch size,
/// the wait strategy and the fraud configuration (<see cref="EngineThroughputBenchmarks"/>, EngineFraudThroughputBenchmarks).
/// </summary>
public abstract class EngineRunBenchmarks
{
    protected const int Wallets = 10_000;
    protected const int Commands = 400_000;
    private Command[] _transfers = [];
    private RamPayEngine _engine = null!;
    private string _data = "";

    protected abstract int SubmitBatchSize { get; }
    protected abstract WaitStrategyKind WaitStrategy { get; }
    /// <summary>Fraud settings and model put in force at start (null: scoring off, as in a new ledger).</summary>
    protected virtual FraudConfiguration? FraudInForce => null;
    /// <summary>A subclass's last change to the engine's options (the rules version and the cold tier, say).</summary>
    protected virtual EngineOptions Configure(EngineOptions options) => options;

    [GlobalSetup]
    public void GlobalSetup() => _transfers = LedgerWorkload.Transfers(Commands, Wallets, seed: 7);

    [IterationSetup]
    public void StartEngine()
    {
        _data = BenchmarkFiles.NewDirectory("engine");
        _engine = RamPayEngine.Start(Configure(new EngineOptions
        {
            DataDirectory = _data,
            Fsync = true,
            WaitStrategy = WaitStrategy,
            SnapshotEveryCommands = 0,
            SnapshotOnStop = false, TickIntervalMs = 0,
            Ledger = LedgerWorkload.Options(Wallets, Commands),
            Fraud = FraudInForce,
        }));
        var setup = LedgerWorkload.Setup(Wallets).ToArray();
        _engine.WaitForCompletion(_engine.SubmitBatch(setup), Timeout.InfiniteTimeSpan);
    }

    [IterationCleanup]
    public void StopEngine()
    {
        _engine.Stop();
        Directory.Delete(_data, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = Commands)]
    public long SubmitUntilDurableAndApplied()
    {
        long last = 0;
        int batch = SubmitBatchSize;
        for (int i = 0; i < Commands; i += batch) last = _engine.SubmitBatch(_transfers.AsSpan(i, Math.Min(batch, Commands - i)));
        _engine.WaitForCompletion(last, Timeout.InfiniteTimeSpan);
        return last;
    }
}

/// <summary>The engine with fraud scoring off, by submit batch size and wait strategy.</summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 7, invocationCount: 1)]
public class EngineThroughputBenchmarks : EngineRunBenchmarks
{
    [Params(64, 1024)]
    public int SubmitBatch { get; set; }

    [Params(WaitStrategyKind.Blocking, WaitStrategyKind.SpinThenBlock)]
    public WaitStrategyKind Wait { get; set; }

    protected override int SubmitBatchSize => SubmitBatch;
    protected override WaitStrategyKind WaitStrategy => Wait;
}
