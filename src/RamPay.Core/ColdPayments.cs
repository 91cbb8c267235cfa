using System.Runtime.InteropServices;

namespace RamPay.Core;

public enum PaymentLookupState : byte
{
    /// <summary>Nobody looked (no prefetch stage, or a command that names no payment).</summary>
    NotLooked = 0,
    /// <summary>The cold tier has no version of the payment (it is hot, or does not exist).</summary>
    Miss = 1,
    Found = 2,
}

/// <summary>
/// What the prefetch stage found in the payments' cold tier for the payment a command acts on, written into the ring
/// slot before the writer sees it: a fixed-size struct, no allocation. <see cref="Generation"/> is the newest payment
/// generation visible in the cold tier when the prefetch looked (read before looking, so everything up to it was searched).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct PaymentLookup
{
    public PaymentLookupState State;
    public long Generation;
    public Payment Payment;

    /// <summary>Whether the prefetch step looks up this command's payment: the commands that act on an existing payment.</summary>
    public static bool Targets(CommandType type) =>
        type is CommandType.Capture or CommandType.Void or CommandType.Refund or CommandType.Review
            or CommandType.IssueReward or CommandType.ReverseReward;
}

/// <summary>
/// The cold tier of payments (rules version 3): a store on local disk the writer never waits on. The prefetch stage reads a
/// command's payment before the writer needs it; the writer hands it closed generations to write in the background.
/// </summary>
public interface IColdPaymentStore
{
    /// <summary>The newest generation (numbered by the writer, from 1, in this run) lookups are sure to see; 0 = none.</summary>
    long VisibleGeneration { get; }

    /// <summary>The newest version of the payment written, or false. Any thread; does I/O (one read).</summary>
    bool TryRead(long id, out Payment payment);

    /// <summary>
    /// As <see cref="TryRead(long, out Payment)"/>, and which version it read (<see cref="NewestVersion"/>'s number; -1 when the
    /// store cannot tell). Any thread; does I/O.
    /// </summary>
    bool TryRead(long id, out Payment payment, out long version)
    {
        version = -1;
        return TryRead(id, out payment);
    }

    /// <summary>
    /// The number of the payment's newest version written (grows with every version; 0 = none), or -1 when the store cannot
    /// tell. No I/O: the writer checks a query's prefetched copy with it.
    /// </summary>
    long NewestVersion(long id) => -1;

    /// <summary>The payment's note encoding (<see cref="PaymentNote.Encode"/>) as written, or null. Any thread; does I/O.</summary>
    byte[]? ReadNote(long id);

    /// <summary>
    /// Hands a closed generation to the background writer, which may write it only once the journal is durable through
    /// <see cref="PaymentBatch.Stamp"/> (the ledger's applied-command count, which is the journal sequence). On the writer
    /// thread: no I/O, no allocation. The batch is not touched by the ledger again until it is visible.
    /// </summary>
    void Flush(PaymentBatch batch);

    /// <summary>Blocks until <paramref name="generation"/> is visible (the rare path: the hot tier is over its budget).</summary>
    void WaitVisible(long generation);

    /// <summary>
    /// Start of a ledger's life in this process: forgets every version written at a point after
    /// <paramref name="commandsApplied"/> (a state recovered from a snapshot at that point replays what came after, and
    /// writes it again) and starts generations from 1. Called once, before any lookup.
    /// </summary>
    void Recover(long commandsApplied);

    // --- a follower's view (the snapshotter's replica, ColdPaymentTier.Follower): reads the writer's store, never writes it ---

    /// <summary>
    /// The stamp of the payment's newest version that is durable in the store and stamped at or before
    /// <paramref name="maxStamp"/> (a follower behind the writer reads the version of its own state), or -1: none. No I/O.
    /// </summary>
    long StampAtOrBefore(long id, long maxStamp) => throw new NotSupportedException($"{GetType().Name} cannot serve a follower (no versions by stamp)");

    /// <summary>The version <see cref="StampAtOrBefore"/> names, read (one pread), or false. Any thread.</summary>
    bool TryReadAtOrBefore(long id, long maxStamp, out Payment payment) => throw new NotSupportedException($"{GetType().Name} cannot serve a follower");

    /// <summary>
    /// Every payment id up to this one had its first version written (with its chunk) at a stamp at or before
    /// <paramref name="maxStamp"/>, durably (open holds of those chunks aside, which are not written). A follower retires a chunk only then.
    /// </summary>
    long WrittenThroughId(long maxStamp) => throw new NotSupportedException($"{GetType().Name} cannot serve a follower");

    /// <summary>Whether the payment's note is durable in the store (notes never change). No I/O.</summary>
    bool HasNote(long id) => throw new NotSupportedException($"{GetType().Name} cannot serve a follower");

    /// <summary>
    /// Registers a follower whose state is at <paramref name="stamp"/> (<see cref="long.MinValue"/>: not yet known; every older
    /// version is kept until it says) and returns its handle. Older versions are forgotten only once every follower has passed
    /// them, so several followers (the snapshotter's replica, the sinks' replica) may read one store.
    /// </summary>
    int AddFollower(long stamp) => throw new NotSupportedException($"{GetType().Name} cannot serve a follower");

    /// <summary>The follower's state is at <paramref name="stamp"/> and never goes back: older versions only it could need may be forgotten.</summary>
    void FollowerAt(int follower, long stamp) { }

    /// <summary>The follower is gone (its versions need not be kept for it any more).</summary>
    void RemoveFollower(int follower) { }

    /// <summary>
    /// Waits (at most <paramref name="timeoutMs"/>) until no generation stamped at or before <paramref name="stamp"/> is queued
    /// unwritten; throws when the store failed. A follower before a snapshot: best effort, for a small snapshot.
    /// </summary>
    void WaitWrittenThrough(long stamp, int timeoutMs) { }
}

/// <summary>
/// One closed generation of payments: copies, so the writer may keep changing the live ones while the store writes.
/// <see cref="Items"/>[0 .. <see cref="ChunkLength"/>) are a closed chunk's payments by position (Id 0 = not written: an
/// open hold, which stays hot), then <see cref="PoolCount"/> changed payments from the pool. Reused once retired.
/// </summary>
public sealed class PaymentBatch
{
    public PaymentBatch(int chunkSize, int poolCapacity)
    {
        Items = new Payment[chunkSize + poolCapacity];
        Notes = new PaymentNote?[chunkSize];
    }

    public long Generation { get; set; }
    /// <summary>The ledger's applied-command count at the close: the journal sequence the store waits to be durable, and each record's stamp.</summary>
    public long Stamp { get; set; }
    public Payment[] Items { get; private set; }
    /// <summary>Notes of the closed chunk's payments, by position (written once, with the chunk: notes never change).</summary>
    public PaymentNote?[] Notes { get; }
    /// <summary>Positions of <see cref="Items"/> that hold the closed chunk (0 when the batch closes no chunk).</summary>
    public int ChunkLength { get; set; }
    public int PoolCount { get; set; }
    /// <summary>The id at position 0 of the closed chunk.</summary>
    public long ChunkFirstId { get; set; }
    internal long Chunk = -1;

    internal void EnsurePool(int chunkSize, int poolCount)
    {
        if (Items.Length < chunkSize + poolCount) Items = new Payment[Math.Max(chunkSize + poolCount, Items.Length * 2)];
    }
}

/// <summary>Where a ledger under rules version 3 keeps payments that left memory, and how many it keeps in memory.</summary>
public sealed record ColdPaymentTier
{
    public required IColdPaymentStore Store { get; init; }
    /// <summary>The newest payments always kept in memory (besides open holds and payments changed since they were written).</summary>
    public long HotPayments { get; init; } = 1 << 20;
    /// <summary>Payments per chunk: log2 (the unit that leaves memory at once). 16 = 65,536 payments (6.8 MB).</summary>
    public int ChunkShift { get; init; } = 16;
    /// <summary>Closed generations not yet retired, at most; past it the writer waits for the oldest (back-pressure, counted).</summary>
    public int MaxInFlight { get; init; } = 4;
    /// <summary>Applied commands between two closes of the pool alone (changed old payments written back), when no chunk closes.</summary>
    public int PoolFlushCommands { get; init; } = 1 << 17;
    /// <summary>
    /// A follower's view of a store another ledger (the writer's) fills: a replica (the snapshotter) that re-applies the journal
    /// behind the writer. It never hands anything to the store and never recovers it; it drops a payment from memory once the
    /// store holds, durably and stamped at or before the replica's own position, the version the replica has, and reads the store
    /// itself for a payment it does not hold (it is not the writer: it may wait on I/O). Its resident payments plus the store's
    /// versions up to its position then hold every payment of its state, so its snapshot is the writer's (docs/snapshots.md).
    /// </summary>
    public bool Follower { get; init; }

    /// <summary>
    /// A follower's handle in the store (<see cref="IColdPaymentStore.AddFollower"/>), registered by the host when it opened the
    /// store, before anything could be forgotten; -1 = the follower's ledger registers itself at its start (tests, tools).
    /// </summary>
    public int FollowerHandle { get; init; } = -1;

    public void Validate()
    {
        if (HotPayments < 1) throw new ArgumentException("ColdPayments.HotPayments must be at least 1");
        if (ChunkShift is < 4 or > 20) throw new ArgumentException("ColdPayments.ChunkShift must be within 4..20");
        if (MaxInFlight is < 2 or > 64) throw new ArgumentException("ColdPayments.MaxInFlight must be within 2..64");
        if (PoolFlushCommands < 1) throw new ArgumentException("ColdPayments.PoolFlushCommands must be at least 1");
    }
}

/// <summary>What the host shows of the payments' tiers. Read racily from the writer's counters: fine for gauges.</summary>
public readonly record struct PaymentTierCounters(
    long Payments, long ResidentPayments, long PoolPayments, long ColdLoads, long PrefetchHits, long WriterColdReads, long ReadColdReads,
    long HotFullWaits, long Generations, long RetiredThrough);

/// <summary>
/// Thrown on the writer by a query's read (<see cref="Ledger.GetPayment"/>, <see cref="Ledger.GetPaymentNote"/>,
/// <see cref="Ledger.History"/>) that needs a payment only the cold tier holds and that the prefetch stage did not bring in,
/// while the query may be retried (<see cref="Ledger.BeginQuery"/>): the engine then sends the query through the ring again
/// and the prefetch stage reads what it names, so the writer never waits on the disk for a read. Queries only: a command's
/// payment is prefetched from the command itself.
/// Why an exception and not a result (issue 10 asked; not changed this round): it is not a broken invariant but a rare,
/// out-of-line control path of queries only (never of <see cref="Ledger.Apply"/>, whose payments the prefetch stage brings
/// in from the command), thrown at most once per query round before the engine retries it with the payment prefetched;
/// the reads that throw it sit deep in <see cref="Ledger.History"/>'s chain walk and <see cref="Ledger.GetPayment"/>, whose
/// callers would all need a "needs a cold payment" result threaded through. That change is open (docs/storage.md).
/// </summary>
public sealed class ColdPaymentNeededException(long paymentId, long accountId, int chain)
    : Exception($"payment {paymentId} is in the cold tier: the query is retried with it prefetched")
{
    public long PaymentId { get; } = paymentId;
    /// <summary>The account whose history chain is walked from <see cref="PaymentId"/> (0: the payment alone).</summary>
    public long AccountId { get; } = accountId;
    /// <summary>How many payments of that chain, from <see cref="PaymentId"/>, the query may still read.</summary>
    public int Chain { get; } = chain;
}

/// <summary>
/// What the prefetch stage read from the payments' cold tier for a query, on the query's behalf: each payment's version with
/// its number (the writer uses the copy only while it is still the newest version, which for a payment not in memory is its
/// current state), and its note. Filled by the prefetch stage, read by the writer after the ring hands the slot on.
/// </summary>
public sealed class QueryPrefetch
{
    private readonly Dictionary<long, (Payment Payment, long Version)> _payments = [];
    private readonly Dictionary<long, byte[]?> _notes = [];

    public int Count => _payments.Count;

    public void Add(long id, in Payment payment, long version, byte[]? note)
    {
        _payments[id] = (payment, version);
        _notes[id] = note;
    }

    internal bool TryGet(long id, out Payment payment, out long version)
    {
        if (_payments.TryGetValue(id, out var found))
        {
            (payment, version) = found;
            return true;
        }
        payment = default;
        version = 0;
        return false;
    }

    internal bool TryGetNote(long id, out byte[]? note) => _notes.TryGetValue(id, out note);
}
