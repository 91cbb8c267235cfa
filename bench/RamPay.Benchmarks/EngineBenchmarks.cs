using BenchmarkDotNet.Attributes;
using RamPay.Core;
using RamPay.Engine;

namespace RamPay.Benchmarks;

/// <summary>
/// The whole pipeline in-process, no sockets: one producer submits transfers in batches of <see cref="SubmitBatch"/>,
/// the journaler fsyncs each batch it takes (fsync ON), the business logic applies them, and the output stage
/// completes them. Time is per command, from the first submit to the last completion.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 7, invocationCount: 1)]
public class EngineThroughputBenchmarks
{
    private const int Wallets = 10_000;
    private const int Commands = 400_000;
    private Command[] _transfers = [];
    private RamPayEngine _engine = null!;
    private string _data = "";

    [Params(64, 1024)]
    public int SubmitBatch { get; set; }

    [Params(WaitStrategyKind.Blocking, WaitStrategyKind.SpinThenBlock)]
    public WaitStrategyKind Wait { get; set; }

    [GlobalSetup]
    public void GlobalSetup() => _transfers = LedgerWorkload.Transfers(Commands, Wallets, seed: 7);

    [IterationSetup]
    public void StartEngine()
    {
        _data = BenchmarkFiles.NewDirectory("engine");
        _engine = RamPayEngine.Start(new EngineOptions
        {
            DataDirectory = _data,
            Fsync = true,
            WaitStrategy = Wait,
            SnapshotEveryCommands = 0,
            SnapshotOnStop = false, TickIntervalMs = 0,
            Ledger = LedgerWorkload.Options(Wallets, Commands),
        });
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
        for (int i = 0; i < Commands; i += SubmitBatch) last = _engine.SubmitBatch(_transfers.AsSpan(i, Math.Min(SubmitBatch, Commands - i)));
        _engine.WaitForCompletion(last, Timeout.InfiniteTimeSpan);
        return last;
    }
}
