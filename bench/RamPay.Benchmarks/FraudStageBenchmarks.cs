using BenchmarkDotNet.Attributes;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Fraud;

namespace RamPay.Benchmarks;

/// <summary>
/// Issue 16 item 1: the whole engine with scoring off and on, under rules version 2 (scoring inside <c>Ledger.Apply</c> on
/// the writer, the baseline) and rules version 4 (scoring in the prefetch stage's fraud step, ahead of the writer), in one
/// run: 400,000 transfers in batches of 1,024, fsync on, SpinThenBlock, as <see cref="EngineFraudThroughputBenchmarks"/>.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
// In process (the same iterations as EngineFraudThroughputBenchmarks' job): on the shared 2-core machine, building BenchmarkDotNet's
// separate executable took longer than the measurement.
[InProcess]
[WarmupCount(1)]
[IterationCount(7)]
[InvocationCount(1)]
public class EngineFraudStageBenchmarks : EngineRunBenchmarks
{
    [Params(2, 4)]
    public int Rules { get; set; } = 2;

    [Params("off", "default")]
    public string Fraud { get; set; } = "off";

    protected override int SubmitBatchSize => 1024;
    protected override WaitStrategyKind WaitStrategy => WaitStrategyKind.SpinThenBlock;

    protected override FraudConfiguration? FraudInForce =>
        LedgerFraudBenchmarks.Settings(Fraud) is { } settings ? new FraudConfiguration { Settings = settings, Model = FraudModel.Default } : null;

    // No cold tier: every key and payment stays in memory under both rules, so only where scoring runs differs.
    protected override EngineOptions Configure(EngineOptions options) => options with { RulesVersion = Rules, IdempotencyKeyBudget = 1 << 22 };
}

/// <summary>
/// The writer's own cost per transfer (one thread, <c>Ledger.Apply</c> only), as <see cref="LedgerFraudBenchmarks"/>: under rules 2
/// the writer scores; under rules 4 the fraud stage has staged every transfer beforehand (in the iteration's setup, as the
/// engine's stage thread would, outside the measurement) and the writer applies the verdicts. What the writer stage's
/// throughput with scoring on is, against off, under each rule.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[InProcess]
[WarmupCount(1)]
[IterationCount(7)]
[InvocationCount(1)]
public class LedgerFraudStageBenchmarks
{
    private const int Commands = LedgerApplyBenchmarks.Commands;
    private const int Wallets = 10_000;
    private Command[] _transfers = [];
    private StagedFraud[] _staged = [];
    private Ledger _ledger = null!;
    private long _inlineAtStart;

    [Params(2, 4)]
    public int Rules { get; set; } = 2;

    [Params("off", "default")]
    public string Fraud { get; set; } = "off";

    [GlobalSetup]
    public void GlobalSetup()
    {
        _transfers = LedgerWorkload.Transfers(Commands, Wallets, seed: 42);
        _staged = new StagedFraud[Commands];
    }

    [IterationSetup]
    public void FreshLedger()
    {
        _ledger = LedgerWorkload.FundedLedger(Wallets, Commands);
        _ledger.Apply(new Command { Type = CommandType.UpgradeRules, Argument = Rules, Amount = 1 << 22, TimestampMs = LedgerWorkload.StartMs }, out var up);
        if (!up.IsOk) throw new InvalidOperationException("upgrade refused");
        if (LedgerFraudBenchmarks.Settings(Fraud) is { } settings)
        {
            _ledger.Apply(new Command { Type = CommandType.ConfigureFraud, TimestampMs = LedgerWorkload.StartMs }, settings.Encode(), out var r);
            if (!r.IsOk) throw new InvalidOperationException("configuration refused");
        }
        // Rules 4: the stage's work, done here as the stage thread would do it ahead of the writer.
        if (Rules >= Ledger.FraudStageRulesVersion)
            for (int i = 0; i < _transfers.Length; i++) _ledger.FraudStage.Process(_transfers[i], out _staged[i]);
        else
            Array.Clear(_staged);
        // The setup's own ConfigureFraud was staged by the ledger (it is not a transfer): only the measured loop must stage nothing.
        _inlineAtStart = _ledger.FraudStagedInline;
    }

    [Benchmark(OperationsPerInvoke = Commands)]
    public long ApplyTransfers()
    {
        long ok = 0;
        var staged = _staged;
        for (int i = 0; i < _transfers.Length; i++)
        {
            _ledger.Apply(_transfers[i], [], default, default, staged[i], out var r);
            if (r.Code == ResultCode.Ok) ok++;
        }
        if (_ledger.FraudStagedInline != _inlineAtStart) throw new InvalidOperationException("the writer staged commands itself");
        return ok;
    }
}
