using BenchmarkDotNet.Attributes;
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
