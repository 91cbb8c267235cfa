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
    [Params(2, 3, 4)]
    public int Rules { get; set; } = 2;

    [Params("off", "default")]
    public string Fraud { get; set; } = "off";

    protected override int SubmitBatchSize => 1024;
    protected override WaitStrategyKind WaitStrategy => WaitStrategyKind.SpinThenBlock;

    protected override FraudConfiguration? FraudInForce =>
        LedgerFraudBenchmarks.Settings(Fraud) is { } settings ? new FraudConfiguration { Settings = settings, Model = FraudModel.Default } : null;

    // No cold tier: every key and payment stays in memory under both rules, so only where scoring runs differs.
    protected override EngineOptions Configure(EngineOptions options) => options with { RulesVersion = Rules, IdempotencyKeyBudget = 1 << 22 };

    /// <summary>
    /// The same four cases as BenchmarkDotNet would run them (one invocation of 400,000 transfers each, a fresh engine), but
    /// <em>interleaved</em>: each round runs every case once, in an order rotated by one each round, so that a shared machine's
    /// changing load falls on every case alike; then the median per case. Rules 3 (the writer scores; the server default until issue 16)
    /// against rules 4 (the stage scores; the server default since), scoring off and at the server's default settings.
    /// <c>dotnet run -c Release --project bench/RamPay.Benchmarks -- --fraud-stage-interleaved [ROUNDS]</c> (default 7, plus a
    /// warm-up round that is not counted).
    /// </summary>
    public static void RunInterleaved(int rounds, TextWriter output)
    {
        var cases = new (int Rules, string Fraud)[] { (3, "off"), (3, "default"), (4, "off"), (4, "default") };
        var benches = cases.Select(c => new EngineFraudStageBenchmarks { Rules = c.Rules, Fraud = c.Fraud }).ToArray();
        foreach (var b in benches) b.GlobalSetup();
        var perTransferUs = cases.Select(_ => new List<double>()).ToArray();
        static string Load() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";
        output.WriteLine($"start {DateTime.UtcNow:u}, {Environment.ProcessorCount} cores, load average {Load()}");
        for (int round = -1; round < rounds; round++)
        {
            var line = new List<string>();
            for (int k = 0; k < cases.Length; k++)
            {
                int i = (k + Math.Max(round, 0)) % cases.Length;
                var b = benches[i];
                b.StartEngine();
                var watch = System.Diagnostics.Stopwatch.StartNew();
                b.SubmitUntilDurableAndApplied();
                watch.Stop();
                b.StopEngine();
                double us = watch.Elapsed.TotalMicroseconds / Commands;
                if (round >= 0) perTransferUs[i].Add(us);
                line.Add($"rules {cases[i].Rules} {cases[i].Fraud} {us:F3}");
            }
            output.WriteLine($"{(round < 0 ? "warm-up" : "round " + (round + 1))}: {string.Join(" | ", line)} µs/transfer; load {Load()}");
        }
        double Median(int i)
        {
            var sorted = perTransferUs[i].Order().ToArray();
            return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        }
        output.WriteLine($"end {DateTime.UtcNow:u}, load average {Load()}");
        for (int i = 0; i < cases.Length; i++)
            output.WriteLine($"rules {cases[i].Rules} scoring {cases[i].Fraud,-7}: median {Median(i):F3} µs/transfer ({1 / Median(i):F3} M transfers/s), min {perTransferUs[i].Min():F3}, max {perTransferUs[i].Max():F3}");
        // Throughput with scoring on as a share of without: on/off = t_off / t_on.
        output.WriteLine($"rules 3, on vs off (same rules):        {Median(0) / Median(1):P0}");
        output.WriteLine($"rules 4, on vs off (same rules):        {Median(2) / Median(3):P0}");
        output.WriteLine($"rules 4 on vs rules 3 off (the engine without scoring today): {Median(0) / Median(3):P0}");
        output.WriteLine($"rules 4 on vs rules 3 on (throughput, stage against writer scoring): {Median(1) / Median(3):P0}");
    }
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
