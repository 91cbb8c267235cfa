using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Storage;

namespace RamPay.Benchmarks;

/// <summary>
/// <see cref="Ledger.Apply"/> on the hot path, transfers with new keys, in the same run: rules 2 (today's server rules, the
/// baseline), rules 3 with every payment in memory, and rules 3 with the payments' cold tier (hot budget 65,536 payments of
/// the 1,010,000 driven, chunks of 4,096 closed and retired during the run into an in-memory stand-in store made visible at
/// once, as the real one's background thread would). Per command.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[Config(typeof(InProcessRuns))]
public class LedgerPaymentTierBenchmarks
{
    public const int Commands = 1_000_000;
    private const int Wallets = 10_000;
    private Command[] _transfers = [];
    private Ledger _ledger = null!;
    private MemoryPaymentStore _store = null!;

    [Params("rules2", "rules3", "rules3-cold")]
    public string Mode { get; set; } = "rules2";

    [GlobalSetup]
    public void GlobalSetup() => _transfers = LedgerWorkload.Transfers(Commands, Wallets, seed: 42);

    [IterationSetup]
    public void Fresh()
    {
        _store = new MemoryPaymentStore(Commands + Wallets);
        var options = LedgerWorkload.Options(Wallets, Commands);
        if (Mode == "rules3-cold")
            options = options with { ColdPayments = new ColdPaymentTier { Store = _store, HotPayments = 1 << 16, ChunkShift = 12, MaxInFlight = 4 } };
        _ledger = new Ledger(options);
        _ledger.Apply(new Command { Type = CommandType.UpgradeRules, Argument = Mode == "rules2" ? 2 : 3, Amount = 4L * Commands, TimestampMs = LedgerWorkload.StartMs }, out _);
        foreach (var c in LedgerWorkload.Setup(Wallets)) _ledger.Apply(c, out _);
    }

    [Benchmark(OperationsPerInvoke = Commands)]
    public long TransferWithNewKey()
    {
        long ok = 0;
        var store = _store;
        foreach (ref readonly var c in _transfers.AsSpan())
        {
            // What the prefetch stage writes into a slot for a command that names no payment: the visible generation.
            var payment = new PaymentLookup { State = PaymentLookupState.Miss, Generation = store.VisibleGeneration };
            _ledger.Apply(c, [], default, payment, out var r);
            if (r.Code == ResultCode.Ok) ok++;
        }
        return ok;
    }

    internal sealed class MemoryPaymentStore(int capacity) : IColdPaymentStore
    {
        private readonly Payment[] _payments = new Payment[capacity + 1];
        private long _visible;
        public long VisibleGeneration => _visible;
        public bool TryRead(long id, out Payment payment) { payment = _payments[id]; return payment.Id == id; }
        public byte[]? ReadNote(long id) => null;
        public void Flush(PaymentBatch batch)
        {
            for (int j = 0; j < batch.ChunkLength + batch.PoolCount; j++) if (batch.Items[j].Id != 0) _payments[batch.Items[j].Id] = batch.Items[j];
            _visible = batch.Generation;
        }
        public void WaitVisible(long generation) { }
        public void Recover(long commandsApplied) { }
    }
}

/// <summary>
/// The cold path's own costs, against the real <see cref="PaymentLogStore"/> (files in the page cache; fsync off: the
/// writes are not measured here): the prefetch of a payment that left memory long ago (one index read and one 120-byte
/// pread), the prefetch of a recent payment (a miss, from memory), and the writer applying a refund of an old payment from
/// the prefetched copy (brought into the pool, refunded, written back later). Per command.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[Config(typeof(InProcessRuns))]
public class PaymentPrefetchBenchmarks
{
    private const int Payments = 1_000_000;
    private const int Lookups = 200_000;
    private string _dir = "";
    private PaymentLogStore _store = null!;
    private PaymentPrefetcher _prefetcher = null!;
    private Command[] _old = [], _recent = [];

    [GlobalSetup]
    public void GlobalSetup()
    {
        _dir = BenchmarkFiles.NewDirectory("coldpayments");
        _store = new PaymentLogStore(new PaymentLogStoreOptions { Directory = _dir, Fsync = false });
        _store.Recover(0);
        const int chunk = 1 << 12;
        for (int g = 0; g < Payments / chunk; g++)
        {
            var batch = new PaymentBatch(chunk, 0) { Generation = g + 1, Stamp = g + 1, ChunkLength = chunk, ChunkFirstId = (long)g * chunk + 1 };
            for (int j = 0; j < chunk; j++)
                batch.Items[j] = new Payment
                {
                    Id = (long)g * chunk + j + 1, FromAccount = 2, ToAccount = 3, Amount = 100, Captured = 100, CreatedAtMs = LedgerWorkload.StartMs,
                    Currency = Currency.USD, Kind = PaymentKind.Transfer, Status = PaymentStatus.Posted,
                };
            _store.Flush(batch);
            _store.WaitVisible(g + 1);
        }
        var rng = new Random(5);
        _old = Enumerable.Range(0, Lookups).Select(_ => new Command { Type = CommandType.Refund, PaymentId = 1 + rng.Next(Payments - chunk), Amount = 1 }).ToArray();
        _recent = Enumerable.Range(0, Lookups).Select(i => new Command { Type = CommandType.Refund, PaymentId = Payments + 1 + i, Amount = 1 }).ToArray();
        _prefetcher = new PaymentPrefetcher(_store);
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = Lookups)]
    public long PrefetchOldPayment()
    {
        long found = 0;
        foreach (ref readonly var c in _old.AsSpan())
        {
            _prefetcher.Prefetch(c, out var lookup);
            if (lookup.State == PaymentLookupState.Found) found++;
        }
        return found;
    }

    [Benchmark(OperationsPerInvoke = Lookups)]
    public long PrefetchRecentPayment()
    {
        long found = 0;
        foreach (ref readonly var c in _recent.AsSpan())
        {
            _prefetcher.Prefetch(c, out var lookup);
            if (lookup.State == PaymentLookupState.Found) found++;
        }
        return found;
    }
}

/// <summary>
/// The whole engine (fsync on, batches of 1,024, blocking waits) in the same run: rules 2 with the cold key tier (today's
/// server), against rules 3 with the cold key tier and the payments' cold tier (65,536 payments hot of the 410,000 driven:
/// chunks of 4,096 written and retired during the run, every command prefetched for both tiers).
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[Config(typeof(InProcessRuns))]
public class EnginePaymentTierBenchmarks : EngineRunBenchmarks
{
    [Params("rules2-cold", "rules3-cold")]
    public string Mode { get; set; } = "rules2-cold";

    protected override int SubmitBatchSize => 1024;
    protected override WaitStrategyKind WaitStrategy => WaitStrategyKind.Blocking;

    protected override EngineOptions Configure(EngineOptions options) => options with
    {
        RulesVersion = Mode == "rules3-cold" ? 3 : 2,
        IdempotencyKeyBudget = 1 << 20,
        ColdTier = new ColdTierOptions
        {
            HotMaxKeys = 1 << 18, GenerationCommands = 1 << 16,
            Payments = Mode == "rules3-cold" ? new ColdPaymentOptions { HotPayments = 1 << 16, ChunkShift = 12 } : null,
        },
    };
}

/// <summary>
/// In process: the generated project of a separate benchmark process (which references the whole server) takes longer than
/// BenchmarkDotNet's two-minute build timeout on the shared machine (as RequestTextBenchmarks found).
/// </summary>
internal sealed class InProcessRuns : ManualConfig
{
    public InProcessRuns() =>
        AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithLaunchCount(1).WithWarmupCount(2).WithIterationCount(7)
            .WithInvocationCount(1).WithUnrollFactor(1));
}
