using BenchmarkDotNet.Attributes;
using RamPay.Core;
using RamPay.Engine;

namespace RamPay.Benchmarks;

/// <summary>
/// <see cref="Ledger.Apply"/> under rules version 1 (the baseline, today's table) and version 2 (the key log, all in
/// memory), in the same run: transfers with new keys, then the same keys again. Per command.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(launchCount: 1, warmupCount: 2, iterationCount: 7, invocationCount: 1)]
public class LedgerRulesBenchmarks
{
    public const int Commands = 1_000_000;
    private const int Wallets = 10_000;
    private Command[] _transfers = [];
    private Ledger _ledger = null!;

    [Params(1, 2)]
    public int Rules { get; set; }

    [GlobalSetup]
    public void GlobalSetup() => _transfers = LedgerWorkload.Transfers(Commands, Wallets, seed: 42);

    private Ledger Fresh()
    {
        var ledger = LedgerWorkload.FundedLedger(Wallets, Commands);
        if (Rules == 2) ledger.Apply(new Command { Type = CommandType.UpgradeRules, Argument = 2, Amount = 4L * Commands, TimestampMs = LedgerWorkload.StartMs }, out _);
        return ledger;
    }

    [IterationSetup(Target = nameof(TransferWithNewKey))]
    public void FreshLedger() => _ledger = Fresh();

    [IterationSetup(Target = nameof(TransferReplayedKey))]
    public void LedgerThatSawEveryKey()
    {
        _ledger = Fresh();
        foreach (ref readonly var c in _transfers.AsSpan()) _ledger.Apply(c, out _);
    }

    [Benchmark(OperationsPerInvoke = Commands)]
    public long TransferWithNewKey() => ApplyAll();

    [Benchmark(OperationsPerInvoke = Commands)]
    public long TransferReplayedKey() => ApplyAll();

    private long ApplyAll()
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
/// The whole engine (fsync on, batches of 1,024, blocking waits) in the same run: rules 1 (baseline), rules 2 with every
/// key in memory, and rules 2 with the cold tier (hot budget 262,144 keys of the 420,000 driven, so generations are
/// written and retired during the run, and every command is prefetched).
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 5, invocationCount: 1)]
public class EngineColdTierBenchmarks : EngineRunBenchmarks
{
    [Params("rules1", "rules2", "rules2-cold")]
    public string Mode { get; set; } = "rules1";

    protected override int SubmitBatchSize => 1024;
    protected override WaitStrategyKind WaitStrategy => WaitStrategyKind.Blocking;

    protected override EngineOptions Configure(EngineOptions options) => options with
    {
        RulesVersion = Mode == "rules1" ? 1 : 2,
        IdempotencyKeyBudget = 1 << 20,
        ColdTier = Mode == "rules2-cold" ? new ColdTierOptions { HotMaxKeys = 1 << 18, GenerationCommands = 1 << 16 } : null,
    };
}
