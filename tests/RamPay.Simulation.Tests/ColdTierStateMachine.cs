using RamPay.Core;
using RamPay.Engine;
using RamPay.Storage;

namespace RamPay.Simulation.Tests;

/// <summary>
/// The cold key tier's world in a seeded run: the real <see cref="KeySegmentStore"/> on a real temporary directory, its
/// background writer held to points the seed chooses. The store writes a generation only once "the journal is durable"
/// through it, and here that sequence is <see cref="Released"/>, which the simulator moves at seeded steps and then waits
/// for the writer to settle (<see cref="KeySegmentStore.WaitIdle"/>): so which generations are on disk at a crash follows
/// from the seed alone, though the writer runs on its own thread.
/// <para>
/// The store's I/O goes through <c>RandomAccess</c>, which <see cref="SimulatedFileSystem"/> cannot reach, so it is faulted
/// at its own boundary: at a crash, generations the journal allowed but that were not released are lost (the tier is
/// behind), generations written after the snapshot recovery starts from are kept (the tier is ahead), and the newest
/// segment may get a torn tail (a partial or garbage record after its last published one: a write the crash cut before
/// its fsync). Left out: a failed or lying fsync inside the store, a torn write of a record that was already published,
/// damage to an older segment or the manifest (the store refuses to start on those, tested in KeySegmentStoreTests), and
/// a crash inside the store's collection between its manifest and its unlinks (tested there too).
/// </para>
/// </summary>
public sealed class ColdTierWorld : IDisposable
{
    public const int HotMaxKeys = 128;
    public const int GenerationCommands = 16;
    public const int SegmentKeys = 64;
    public const long KeyBudget = 1_000;

    // Rules version 3: the payments' cold tier too, with a tiny budget (16 payments hot in chunks of 16, at most 4 generations in
    // flight): a run's few hundred payments leave memory, and captures, voids and refunds of old ones come back from the log.
    public const int HotPayments = 16;
    public const int PaymentChunkShift = 4;
    public const int PaymentMaxInFlight = 4;

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "rampay-sim-cold-" + Guid.NewGuid().ToString("N"));
    private long _released;
    private readonly Dictionary<long, (long DeadBelowIndex, long ExpiredAtOrBeforeMs)> _facts = [];
    private readonly bool _payments;

    /// <param name="payments">Rules version 3: the payments' cold tier (<see cref="PaymentLogStore"/>) beside the keys'.</param>
    public ColdTierWorld(bool payments = false)
    {
        _payments = payments;
        Open();
    }

    public PaymentLogStore? Payments { get; private set; }
    public PaymentPrefetcher? PaymentPrefetcher { get; private set; }
    /// <summary>Old payments the ledger brought back from the payment log for a command, over every run of the seed.</summary>
    public long PaymentColdLoads { get; set; }
    public long PaymentRecordsWritten { get; private set; }
    public int PaymentTornTails { get; private set; }

    public KeySegmentStore Store { get; private set; } = null!;
    public KeyPrefetcher Prefetcher { get; private set; } = null!;
    public int TornTails { get; private set; }
    public long ColdHits { get; set; }
    public long SegmentsDropped { get; private set; }
    public long EntriesWritten { get; private set; }

    /// <summary>The sequence the store may write through ("durable" for it).</summary>
    public long Released => Volatile.Read(ref _released);

    private void Open()
    {
        Store = new KeySegmentStore(new KeySegmentStoreOptions
        {
            Directory = _directory, KeyCapacity = 4 * KeyBudget, SegmentKeys = SegmentKeys, InitialIndexKeys = 256, Fsync = false,
            DurableSequence = () => Volatile.Read(ref _released), MaxQueuedGenerations = HotMaxKeys / GenerationCommands + 4,
        });
        Prefetcher = new KeyPrefetcher(Store);
        if (!_payments) return;
        Payments = new PaymentLogStore(new PaymentLogStoreOptions
        {
            Directory = Path.Combine(_directory, "payments"), SegmentBytes = 4096, Fsync = false,
            DurableSequence = () => Volatile.Read(ref _released), MaxQueuedGenerations = PaymentMaxInFlight + 4,
            // Index checkpoints every two segments of log: recoveries start from one (or from the whole log when each is
            // after the recovered state), and crashes land while one is half written.
            CheckpointEveryBytes = 8192, CheckpointIndexMultiple = 0,
        });
        PaymentPrefetcher = new PaymentPrefetcher(Payments);
    }

    public ColdPaymentTier? PaymentTier => Payments is null ? null : new ColdPaymentTier
    {
        Store = Payments, HotPayments = HotPayments, ChunkShift = PaymentChunkShift, MaxInFlight = PaymentMaxInFlight, PoolFlushCommands = GenerationCommands,
    };

    /// <summary>Lets the payment log write what is durable through <see cref="Released"/>, and waits for it (the seed alone decides what is on disk).</summary>
    private void SettlePayments() => Payments?.WaitWrittenThrough(Released, timeoutMs: 60_000);

    public ColdKeyTier Tier => new() { Store = Store, HotMaxKeys = HotMaxKeys, GenerationCommands = GenerationCommands };

    /// <summary>Lets the store write every generation durable in the journal through <paramref name="durable"/>, and waits for it to settle.</summary>
    public void Release(long durable)
    {
        Volatile.Write(ref _released, durable);
        Store.WaitIdle();
        SettlePayments();
    }

    /// <summary>
    /// Before an apply: when the hot tier is near full, lets the store write everything applied so far (all of it durable in
    /// the journal, as the caller knows) and waits: the engine's writer would wait for the store at a full hot tier instead.
    /// </summary>
    public bool ReleaseIfFull(ISimulatedStateMachine state, long durable)
    {
        if (!NearFull(state)) return false;
        Release(durable);
        return true;
    }

    /// <summary>
    /// The key tier's hot part is near full, or the payment tier has nearly as many generations in flight as it may (its writer
    /// would wait for the log, which here writes only when released: a wait that would never end).
    /// </summary>
    public static bool NearFull(ISimulatedStateMachine state) =>
        state is ColdTierStateMachine { Ledger: var ledger }
        && (ledger.KeyLog is { } keys && keys.HotCount >= HotMaxKeys - 3 * GenerationCommands
            || ledger.PaymentTier.Generations - ledger.PaymentTier.RetiredThrough >= PaymentMaxInFlight - 2);

    /// <summary>After a snapshot is durable: its horizon facts, and the horizon of the oldest snapshot still kept (as SnapshotHorizon does).</summary>
    public void OnSnapshot(long sequence, Ledger ledger, long[] kept)
    {
        var keys = ledger.KeyLog!;
        _facts[sequence] = (keys.Inserted - keys.Budget, ledger.ClockMs - keys.WindowMs);
        if (kept.Length > 0 && _facts.TryGetValue(kept[0], out var oldest)) Store.SetHorizon(kept[0], oldest.DeadBelowIndex, oldest.ExpiredAtOrBeforeMs);
    }

    /// <summary>
    /// The crash, for the store: its writer stops (what was not released is lost), and with the seed's chance the newest
    /// segment gets a torn tail past its last published record. Then it opens again, as a restart does.
    /// </summary>
    public void Crash(Random random)
    {
        // What the writer was let write is on disk (settled first, so that the seed alone decides it); the rest is lost.
        Store.WaitIdle();
        SegmentsDropped += Store.SegmentsDropped;
        EntriesWritten += Store.EntriesWritten;
        Store.Dispose();
        if (random.Next(3) == 0) TearNewestSegment(random);
        if (Payments is { } payments)
        {
            SettlePayments();
            PaymentRecordsWritten += payments.RecordsWritten;
            payments.Dispose();
            if (random.Next(3) == 0) TearNewestPaymentSegment(random);
        }
        // Nothing is written while recovery replays, not even the snapshot's hot entries (handed over as generations "durable
        // at 0"): the replay releases at seeded-deterministic points (ReleaseIfFull), so that the prefetch stamps, and so which
        // entries stay in memory, do not depend on the writer thread's timing.
        Volatile.Write(ref _released, -1);
        Open();
    }

    private void TearNewestSegment(Random random)
    {
        string? newest = Directory.GetFiles(_directory, "keys-*.seg").OrderBy(f => f, StringComparer.Ordinal).LastOrDefault();
        if (newest is null) return;
        long length = new FileInfo(newest).Length;
        long records = (length - KeySegmentStore.HeaderBytes) / KeySegmentStore.RecordBytes;
        if (records >= SegmentKeys || (length - KeySegmentStore.HeaderBytes) % KeySegmentStore.RecordBytes != 0) return; // full: sealed, trusted unread
        var garbage = new byte[1 + random.Next(2 * KeySegmentStore.RecordBytes)];
        random.NextBytes(garbage);
        using var file = File.OpenHandle(newest, FileMode.Open, FileAccess.Write);
        RandomAccess.Write(file, garbage, length);
        TornTails++;
    }

    /// <summary>Garbage or a partial record after the payment log's last published record: a write the crash cut before its fsync.</summary>
    private void TearNewestPaymentSegment(Random random)
    {
        string? newest = Directory.GetFiles(Path.Combine(_directory, "payments"), "payments-*.log").OrderBy(f => f, StringComparer.Ordinal).LastOrDefault();
        if (newest is null) return;
        var garbage = new byte[1 + random.Next(2 * PaymentLogStore.PaymentRecordBytes)];
        random.NextBytes(garbage);
        using var file = File.OpenHandle(newest, FileMode.Open, FileAccess.Write);
        RandomAccess.Write(file, garbage, RandomAccess.GetLength(file));
        PaymentTornTails++;
    }

    public void Dispose()
    {
        Payments?.Dispose();
        Store.Dispose();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}

/// <summary>
/// The ledger under rules version 2 over the cold key tier (and under version 3 over the payments' tier too): the prefetch step
/// before each apply, as the engine's ring and recovery run it.
/// </summary>
public sealed class ColdTierStateMachine(ColdTierWorld world, LedgerOptions options, Ledger? ledger = null) : ISimulatedStateMachine
{
    private readonly Ledger _ledger = ledger ?? new Ledger(options with { ColdKeys = world.Tier, ColdPayments = world.PaymentTier });
    private KeyLookup _lookup;
    private PaymentLookup _payment;

    public Ledger Ledger => _ledger;
    public long ClockMs => _ledger.ClockMs;

    public void Prefetch(in Command command)
    {
        world.Prefetcher.Prefetch(command, out _lookup);
        if (world.PaymentPrefetcher is { } payments) payments.Prefetch(command, out _payment);
    }

    public void Apply(in Command command, ReadOnlySpan<byte> attachment)
    {
        long before = _ledger.KeyLog?.ColdHits ?? 0;
        long loads = _ledger.PaymentTier.ColdLoads;
        _ledger.Apply(command, attachment, _lookup, _payment, out _);
        world.ColdHits += (_ledger.KeyLog?.ColdHits ?? 0) - before;
        world.PaymentColdLoads += _ledger.PaymentTier.ColdLoads - loads;
        _lookup = default;
        _payment = default;
    }

    public byte[] WriteSnapshot()
    {
        _ledger.VerifyInvariants();
        using var buffer = new MemoryStream();
        _ledger.WriteState(buffer);
        return buffer.ToArray();
    }

    /// <summary>A ledger over the (reopened) cold tier: from the snapshot, hot section and all, or empty.</summary>
    public ISimulatedStateMachine Restore(byte[]? snapshot)
    {
        var cold = options with { ColdKeys = world.Tier, ColdPayments = world.PaymentTier };
        if (snapshot is null) return new ColdTierStateMachine(world, options, new Ledger(cold));
        using var stream = new MemoryStream(snapshot, writable: false);
        return new ColdTierStateMachine(world, options, Ledger.ReadState(stream, cold));
    }

    public void VerifyInvariants() => _ledger.VerifyInvariants();
    public string StateHash() => _ledger.ComputeStateHash();
}
