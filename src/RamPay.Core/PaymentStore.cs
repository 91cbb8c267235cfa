using System.Runtime.CompilerServices;

namespace RamPay.Core;

/// <summary>
/// Payments indexed by id, in chunks (64 Ki by default) so that growth never copies and never moves a payment.
/// A chunk is allocated only when the ledger's payment count crosses into it: retained state, not garbage.
/// <para>
/// With a cold tier (rules version 3, <see cref="ColdPaymentTier"/>): only the newest chunks stay in memory. A chunk wholly
/// older than the <see cref="ColdPaymentTier.HotPayments"/> newest payments is <em>closed</em> into a generation (a copy of
/// its settled payments, handed to the store's background writer) and <em>retired</em> once the generation is visible and a
/// command prefetched after that has been applied (the key log's argument, docs/storage.md): its open holds and any payment
/// changed since the copy move to the <em>pool</em> (a small table by id), the chunk's memory is reused. An old payment a
/// command acts on is brought into the pool from the prefetched copy. Which payments are resident is not logical state.
/// </para>
/// </summary>
internal sealed class PaymentStore
{
    private readonly int _shift;
    private readonly int _size;
    private readonly long _mask;
    private Payment[]?[] _chunks;
    private long _count;

    // --- the cold tier (null: every payment stays in memory) ---
    private readonly ColdPaymentTier? _tier;
    private readonly Dictionary<long, PaymentNote> _notes;
    private PoolEntry[] _pool = [];
    private readonly Dictionary<long, int> _poolIndex = [];
    private int[] _poolFree = [];
    private int _poolFreeCount;
    private int _poolHigh;
    private readonly Payment[]?[] _freeChunks = [];
    private int _freeChunkCount;
    private long _nextChunkToClose;      // chunks below it are closed (retired, or in a generation not yet retired)
    private long _firstResidentChunk;    // chunks below it have left memory
    private readonly PaymentBatch[] _batches = [];
    private long _generation = 1;        // the next generation to close
    private long _retiredThrough;
    private long _lastPoolClose;

    // --- a follower (ColdPaymentTier.Follower: the snapshotter's replica) ---
    private readonly bool _follower;
    // The applied-command count after the last command: a follower reads the versions stamped at or before it.
    private long _applied;
    private long _nextFollowerCheck;
    private int _followerHandle = -1;
    // Payments changed (not made) by a command while in a follower's memory, with the command's count: a version stamped
    // before that is not the follower's. An entry leaves with its payment. Empty on the writer.
    private readonly Dictionary<long, long> _changedAt = [];

    private struct PoolEntry
    {
        public Payment Current;
        /// <summary>What the cold tier holds of it (when <see cref="HasWritten"/>): equal to Current = nothing to write.</summary>
        public Payment Written;
        public bool HasWritten;
        /// <summary>The generation that holds its copy, not yet retired (0 = none).</summary>
        public long InFlight;
    }

    public PaymentStore(long maxPayments, long initialCapacity, ColdPaymentTier? tier, Dictionary<long, PaymentNote> notes)
    {
        _tier = tier;
        _notes = notes;
        _shift = tier?.ChunkShift ?? ChunkShift;
        _size = 1 << _shift;
        _mask = _size - 1;
        long chunks = (Math.Max(maxPayments, initialCapacity) + _size - 1) >> _shift;
        _chunks = new Payment[tier is null ? chunks : Math.Min(chunks, 1024)][];
        if (tier is null)
        {
            for (long i = 0; i < initialCapacity; i += _size) _chunks[i >> _shift] = new Payment[_size];
        }
        else
        {
            int pool = 1024;
            _pool = new PoolEntry[pool];
            _poolFree = new int[pool];
            _poolIndex = new Dictionary<long, int>(pool);
            _freeChunks = new Payment[tier.MaxInFlight + 2][];
            _follower = tier.Follower;
            _batches = new PaymentBatch[_follower ? 0 : tier.MaxInFlight];
            for (int i = 0; i < _batches.Length; i++) _batches[i] = new PaymentBatch(_size, pool);
        }
        Capacity = maxPayments;
    }

    /// <summary>
    /// Where this store's ledger stands at its start (0 when new, a snapshot's count when read from one): the writer's cold
    /// tier forgets what was written after it; a follower only remembers it (it never recovers the writer's store).
    /// </summary>
    public void Recover(long commandsApplied)
    {
        _applied = commandsApplied;
        if (_tier is { Follower: false }) _tier.Store.Recover(commandsApplied);
        else if (_tier is { } tier)
        {
            // A handle the host registered when it opened the store, or one of its own. Its position is first reported by
            // FollowerRetire, once commands are applied: a ledger read from a snapshot and then abandoned (a tool replaying
            // from the journal's start instead) must not have moved it past what the replay from the start will read.
            _followerHandle = tier.FollowerHandle >= 0 ? tier.FollowerHandle : tier.Store.AddFollower(commandsApplied);
        }
    }

    /// <summary>A payment that existed before this command was changed by it (a follower keeps the command's count). Rules version 3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Changed(long id, long commandsApplied)
    {
        if (_follower) _changedAt[id] = commandsApplied;
    }

    internal const int ChunkShift = 16;
    internal const int ChunkSize = 1 << ChunkShift;

    /// <summary>The most payments (MaxPayments under rules versions 1 and 2; lifted under version 3).</summary>
    public long Capacity { get; set; }
    public long Count => _count;
    public bool HasColdTier => _tier is not null;
    private bool _active;
    /// <summary>Payments start leaving memory only under rules version 3 (older rules' states list every payment).</summary>
    public void Activate()
    {
        _active = _tier is not null;
        // The chunk table, sized once for 2^20 chunks (8 MB: 68 G payments of 65,536 a chunk), so that the apply path does not
        // grow it (it still would, by doubling, past that).
        if (_active && _chunks.Length < 1 << 20) GrowTable((1 << 20) - 1);
    }
    /// <summary>True when some payment has left memory: the payments in memory are then not all of them.</summary>
    public bool SomeCold => _firstResidentChunk > 0;
    public int ChunkLength => _size;

    // Counters (not logical state).
    public long ColdLoads { get; private set; }
    public long PrefetchHits { get; private set; }
    public long WriterColdReads { get; private set; }
    public long ReadColdReads;
    public long HotFullWaits { get; private set; }
    public long Generations => _generation - 1;
    public long RetiredThrough => _retiredThrough;
    public int PoolCount => _poolIndex.Count;
    public long ResidentCount => Math.Max(0, _count - (_firstResidentChunk << _shift)) + _poolIndex.Count;

    /// <summary>The payment with this id (1-based), which must be in memory (a recent one, an open hold, or one made resident).</summary>
    public ref Payment this[long id]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            long index = id - 1;
            var chunk = _chunks[index >> _shift];
            if (chunk is not null) return ref chunk[index & _mask];
            return ref PoolRef(id);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ref Payment PoolRef(long id)
    {
        if (!_poolIndex.TryGetValue(id, out int slot)) Invariant.Fail($"payment {id} is not in memory: the ledger must make it resident first");
        return ref _pool[slot].Current;
    }

    public bool Contains(long id) => id >= 1 && id <= _count;

    public bool IsResident(long id)
    {
        long index = id - 1;
        return _chunks[index >> _shift] is not null || _poolIndex.ContainsKey(id);
    }

    /// <summary>Adds a zeroed payment and returns it; its id is <see cref="Count"/> afterwards.</summary>
    public ref Payment Add()
    {
        Invariant.Check(_count < Capacity, "payment store is full: the ledger must check capacity first");
        long index = _count;
        long c = index >> _shift;
        if (c >= _chunks.Length) GrowTable(c);
        var chunk = _chunks[c] ??= NewChunk();
        _count++;
        ref var p = ref chunk[index & _mask];
        p = default;
        p.Id = _count;
        p.HoldIndex = -1;
        return ref p;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void GrowTable(long chunk)
    {
        // Rare (once per doubling of the payments): the table of chunk references, 8 bytes per chunk.
        var grown = new Payment[Math.Max(chunk + 1, _chunks.Length * 2L)][];
        Array.Copy(_chunks, grown, _chunks.Length);
        _chunks = grown;
    }

    private Payment[] NewChunk() => _freeChunkCount > 0 ? _freeChunks[--_freeChunkCount]! : new Payment[_size];

    // --- cold tier: residency ---

    /// <summary>
    /// Brings a payment that left memory back in (into the pool), from the prefetched copy when that is current, else by
    /// reading the store itself (the rare path, counted). Nothing to do for a resident payment.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void EnsureResident(long id, in PaymentLookup prefetched)
    {
        if (_tier is null || !Contains(id) || IsResident(id)) return;
        Load(id, prefetched);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Load(long id, in PaymentLookup prefetched)
    {
        Payment p;
        if (_follower)
        {
            // The version of this replica's state (the writer may have written newer ones): stamped at or before its count.
            WriterColdReads++;
            if (!_tier!.Store.TryReadAtOrBefore(id, _applied, out p)) Invariant.Fail($"payment {id} is neither in the follower's memory nor in the cold tier at {_applied}");
            Invariant.Check(p.Id == id, "the cold tier returned another payment");
            p.HoldIndex = -1;
            NewPoolEntry(id).Current = p;
            ColdLoads++;
            return;
        }
        // Current when the prefetch looked after the newest retired generation became visible: every version written
        // since is of a payment that was resident at the time (and is, still, until a later generation retires).
        if (prefetched.State == PaymentLookupState.Found && prefetched.Payment.Id == id && prefetched.Generation >= _retiredThrough)
        {
            p = prefetched.Payment;
            PrefetchHits++;
        }
        else
        {
            WriterColdReads++;
            if (!_tier!.Store.TryRead(id, out p)) Invariant.Fail($"payment {id} is neither in memory nor in the cold tier");
        }
        Invariant.Check(p.Id == id, "the cold tier returned another payment");
        p.HoldIndex = -1;
        ref var e = ref NewPoolEntry(id);
        e.Current = p;
        e.Written = p;
        e.HasWritten = true;
        ColdLoads++;
    }

    // --- reads by queries (on the writer) ---
    private QueryPrefetch? _query;
    private bool _queryNoIo;
    /// <summary>Query reads of non-resident payments served from the prefetch stage's copy (no I/O on the writer).</summary>
    public long QueryPrefetchHits;
    /// <summary>Query reads that found a payment only on disk and not prefetched: the query went round the ring again.</summary>
    public long QueryColdRetries;

    /// <summary>
    /// A query runs on the writer: non-resident payments are read from <paramref name="prefetched"/>; one that is not there
    /// throws <see cref="ColdPaymentNeededException"/> when <paramref name="noIo"/> (the engine retries the query through the
    /// prefetch stage), else is read from the store here (the last resort, counted in <see cref="ReadColdReads"/>).
    /// </summary>
    public void BeginQuery(QueryPrefetch? prefetched, bool noIo)
    {
        _query = prefetched;
        _queryNoIo = noIo && _tier is not null && !_follower;
    }

    public void EndQuery()
    {
        _query = null;
        _queryNoIo = false;
    }

    /// <summary>A copy of any payment, resident or not (a read: without a prefetched copy, the store is read on this thread).</summary>
    public Payment ReadAny(long id)
    {
        if (IsResident(id)) return this[id];
        return ReadCold(id);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private Payment ReadCold(long id)
    {
        Payment p;
        // Not resident: its newest written version is its state (a payment leaves memory only once that version is visible,
        // and the store holds nothing the writer has not made). A prefetched copy that is still the newest version is it.
        if (_query is { } q && q.TryGet(id, out p, out long version) && version > 0 && _tier!.Store.NewestVersion(id) == version)
        {
            QueryPrefetchHits++;
            p.HoldIndex = -1;
            return p;
        }
        if (_queryNoIo)
        {
            QueryColdRetries++;
            throw new ColdPaymentNeededException(id, 0, 1);
        }
        Interlocked.Increment(ref ReadColdReads);
        if (!(_follower ? _tier!.Store.TryReadAtOrBefore(id, _applied, out p) : _tier!.Store.TryRead(id, out p)))
            Invariant.Fail($"payment {id} is neither in memory nor in the cold tier");
        p.HoldIndex = -1;
        return p;
    }

    public PaymentNote? ReadNote(long id)
    {
        if (_notes.TryGetValue(id, out var note)) return note;
        if (_tier is null || !Contains(id) || IsResident(id) && !SomeCold) return null;
        byte[]? bytes;
        if (_query is not null || _queryNoIo)
        {
            // Notes never change: one the store holds is the note (no I/O to ask); none there and none in memory: no note.
            if (!_tier.Store.HasNote(id)) return null;
            if (_query is { } q && q.TryGetNote(id, out bytes) && bytes is not null)
            {
                QueryPrefetchHits++;
                return PaymentNote.TryDecode(bytes);
            }
            if (_queryNoIo)
            {
                QueryColdRetries++;
                throw new ColdPaymentNeededException(id, 0, 1);
            }
        }
        bytes = _tier.Store.ReadNote(id);
        return bytes is null ? null : PaymentNote.TryDecode(bytes);
    }

    private ref PoolEntry NewPoolEntry(long id)
    {
        int slot;
        if (_poolFreeCount > 0) slot = _poolFree[--_poolFreeCount];
        else
        {
            if (_poolHigh == _pool.Length) GrowPool();
            slot = _poolHigh++;
        }
        _poolIndex.Add(id, slot);
        ref var e = ref _pool[slot];
        e = default;
        return ref e;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void GrowPool()
    {
        // Rare: the pool holds open holds that left their chunk and old payments changed since written; it doubles.
        Array.Resize(ref _pool, _pool.Length * 2);
        Array.Resize(ref _poolFree, _pool.Length);
    }

    private void FreePoolEntry(long id, int slot)
    {
        _poolIndex.Remove(id);
        _pool[slot] = default;
        _poolFree[_poolFreeCount++] = slot;
    }

    private static bool IsOpen(in Payment p) => p.Status is PaymentStatus.Authorized or PaymentStatus.HeldForReview;

    /// <summary>Every persisted field equal (the hold index is derived and left out).</summary>
    internal static bool SamePersisted(in Payment a, in Payment b) =>
        a.Id == b.Id && a.FromAccount == b.FromAccount && a.ToAccount == b.ToAccount && a.Amount == b.Amount && a.Captured == b.Captured
        && a.Refunded == b.Refunded && a.CreatedAtMs == b.CreatedAtMs && a.ExpiresAtMs == b.ExpiresAtMs && a.ParentId == b.ParentId
        && a.PrevForFrom == b.PrevForFrom && a.PrevForTo == b.PrevForTo && a.Currency == b.Currency && a.Kind == b.Kind && a.Status == b.Status
        && a.FraudScore.Equals(b.FraudScore) && a.FraudReasons == b.FraudReasons && a.FraudModel == b.FraudModel;

    // --- cold tier: generations ---

    /// <summary>
    /// After each applied command: retires every closed generation that was visible when this command was prefetched (every
    /// later command's prefetch saw it too: stamps never decrease in ring order), then closes the next chunk that is wholly
    /// older than the hot window (or, now and then, the pool's changed payments alone). Changes memory only.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void AfterCommand(in PaymentLookup prefetched, long commandsApplied)
    {
        if (_tier is null) return;
        if (_follower)
        {
            _applied = commandsApplied;
            if (_active && commandsApplied >= _nextFollowerCheck) FollowerRetire();
            return;
        }
        if (!_active) return;
        if (prefetched.State != PaymentLookupState.NotLooked && prefetched.Generation > _retiredThrough && _retiredThrough < _generation - 1)
            RetireThrough(Math.Min(prefetched.Generation, _generation - 1));
        long eligible = (_count - _tier.HotPayments) >> _shift;
        if (_count >= _tier.HotPayments && _nextChunkToClose < eligible) CloseChunk(commandsApplied);
        else if (_poolIndex.Count > 0 && commandsApplied - _lastPoolClose >= _tier.PoolFlushCommands && _retiredThrough == _generation - 1)
            Close(commandsApplied, -1);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void CloseChunk(long commandsApplied) => Close(commandsApplied, _nextChunkToClose++);

    private void Close(long commandsApplied, long chunk)
    {
        var tier = _tier!;
        if (_generation - 1 - _retiredThrough >= _batches.Length)
        {
            // Every batch is in flight: the background writer is behind. Wait for the oldest, retire it; a command
            // prefetched before it became visible is then read again by the writer (Load's rare path). Back-pressure.
            HotFullWaits++;
            tier.Store.WaitVisible(_retiredThrough + 1);
            RetireThrough(_retiredThrough + 1);
        }
        long g = _generation;
        var batch = _batches[g % _batches.Length];
        batch.Generation = g;
        batch.Stamp = commandsApplied;
        batch.Chunk = chunk;
        batch.ChunkLength = 0;
        batch.EnsurePool(_size, _poolIndex.Count);
        if (chunk >= 0)
        {
            var payments = _chunks[chunk]!;
            batch.ChunkLength = _size;
            batch.ChunkFirstId = (chunk << _shift) + 1;
            for (int j = 0; j < _size; j++)
            {
                ref var p = ref payments[j];
                ref var copy = ref batch.Items[j];
                if (IsOpen(p)) copy = default; // stays hot: an open hold is hot state
                else { copy = p; copy.HoldIndex = -1; }
                batch.Notes[j] = _notes.GetValueOrDefault(p.Id);
            }
        }
        // The pool's changed payments (settled ones only; clean ones simply leave: the cold tier holds them already).
        int n = 0;
        for (int s = 0; s < _poolHigh; s++)
        {
            ref var e = ref _pool[s];
            if (e.Current.Id == 0 || e.InFlight != 0 || IsOpen(e.Current)) continue;
            if (e.HasWritten && SamePersisted(e.Current, e.Written))
            {
                FreePoolEntry(e.Current.Id, s);
                continue;
            }
            ref var copy = ref batch.Items[batch.ChunkLength + n++];
            copy = e.Current;
            copy.HoldIndex = -1;
            e.InFlight = g;
        }
        batch.PoolCount = n;
        _lastPoolClose = commandsApplied;
        _generation = g + 1;
        tier.Store.Flush(batch);
    }

    private void RetireThrough(long generation)
    {
        for (long g = _retiredThrough + 1; g <= generation; g++)
        {
            var batch = _batches[g % _batches.Length];
            Invariant.Check(batch.Generation == g, "a payment generation was retired out of order");
            if (batch.Chunk >= 0) RetireChunk(batch);
            for (int i = 0; i < batch.PoolCount; i++)
            {
                ref var written = ref batch.Items[batch.ChunkLength + i];
                if (!_poolIndex.TryGetValue(written.Id, out int slot)) Invariant.Fail($"payment {written.Id} left the pool while its generation was in flight");
                ref var e = ref _pool[slot];
                e.InFlight = 0;
                if (SamePersisted(e.Current, written)) FreePoolEntry(written.Id, slot);
                else { e.Written = written; e.HasWritten = true; }
            }
            _retiredThrough = g;
        }
    }

    private void RetireChunk(PaymentBatch batch)
    {
        long chunk = batch.Chunk;
        var payments = _chunks[chunk]!;
        Invariant.Check(chunk == _firstResidentChunk, "payment chunks retire in order");
        for (int j = 0; j < _size; j++)
        {
            ref var p = ref payments[j];
            ref var written = ref batch.Items[j];
            if (batch.Notes[j] is not null) _notes.Remove(p.Id);
            if (written.Id != 0 && SamePersisted(p, written)) continue; // in the cold tier as it is: leaves memory
            // An open hold (or one that was open at the close), or a payment changed since its copy: stays, in the pool.
            ref var e = ref NewPoolEntry(p.Id);
            e.Current = p;
            if (written.Id != 0) { e.Written = written; e.HasWritten = true; }
        }
        _chunks[chunk] = null;
        // Pool entries moved from the chunk keep their hold positions: the hold queue finds them by id.
        Array.Clear(payments);
        if (_freeChunkCount < _freeChunks.Length) _freeChunks[_freeChunkCount++] = payments;
        _firstResidentChunk = chunk + 1;
        Array.Clear(batch.Notes);
    }

    // --- a follower: drops what the writer's store holds durably ---

    /// <summary>Commands between two looks of a follower at the store (a chunk's worth at most).</summary>
    private int FollowerCheckCommands => Math.Min(_size, 4096);

    /// <summary>
    /// A follower drops from memory every payment whose version it holds is durable in the writer's store, stamped at or before
    /// its own count: the chunks wholly older than the hot window (once the writer's store holds their first versions; open
    /// holds and payments not yet written as they are move to the pool), then the pool's settled payments. Safe because (1) a
    /// dropped payment is read back at the follower's own count (<see cref="Load"/>: the writer may have written newer
    /// versions since), and (2) a snapshot at count S leaves out only payments with a version stamped at or before S, which a
    /// restart from it keeps (it cuts only versions stamped after S). Changes memory only.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FollowerRetire()
    {
        var tier = _tier!;
        var store = tier.Store;
        long f = _applied;
        _nextFollowerCheck = f + FollowerCheckCommands;
        store.FollowerAt(_followerHandle, f);
        long eligible = _count >= tier.HotPayments ? (_count - tier.HotPayments) >> _shift : 0;
        long writtenThrough = store.WrittenThroughId(f);
        while (_firstResidentChunk < eligible)
        {
            long chunk = _firstResidentChunk;
            var payments = _chunks[chunk]!;
            long firstId = (chunk << _shift) + 1;
            // The writer closes this chunk at the same command count (the counts are the journal's); until its first versions
            // are durable at or before f, nearly every payment would have to move to the pool: wait for a later look instead.
            long lastSettled = firstId;
            for (int j = _size - 1; j >= 0; j--)
                if (!IsOpen(payments[j])) { lastSettled = firstId + j; break; }
            if (lastSettled > writtenThrough) break;
            for (int j = 0; j < _size; j++)
            {
                ref var p = ref payments[j];
                if (_notes.ContainsKey(p.Id) && store.HasNote(p.Id)) _notes.Remove(p.Id);
                long compared = 0;
                if (!IsOpen(p) && CanDrop(p, f, ref compared))
                {
                    _changedAt.Remove(p.Id);
                    continue;
                }
                ref var e = ref NewPoolEntry(p.Id);
                e.Current = p; // keeps its hold position: the hold queue finds it by id
                e.InFlight = compared;
            }
            _chunks[chunk] = null;
            Array.Clear(payments);
            if (_freeChunkCount < _freeChunks.Length) _freeChunks[_freeChunkCount++] = payments;
            _firstResidentChunk = chunk + 1;
            _nextChunkToClose = chunk + 1;
        }
        for (int s = 0; s < _poolHigh; s++)
        {
            ref var e = ref _pool[s];
            if (e.Current.Id == 0 || IsOpen(e.Current)) continue;
            long id = e.Current.Id;
            if (!CanDrop(e.Current, f, ref e.InFlight)) continue;
            _changedAt.Remove(id);
            FreePoolEntry(id, s);
        }
    }

    /// <summary>
    /// Whether the store holds the follower's version of <paramref name="p"/> stamped at or before <paramref name="f"/>: any such
    /// version when it has not changed since it was made or read back (every version since is equal), one stamped at or after
    /// its last change otherwise; else (a command acted on it without changing it, e.g. a refused refund) the version is read
    /// and compared, once per version (<paramref name="compared"/> remembers its stamp + 1).
    /// </summary>
    private bool CanDrop(in Payment p, long f, ref long compared)
    {
        var store = _tier!.Store;
        long stamp = store.StampAtOrBefore(p.Id, f);
        if (stamp < 0) return false;
        if (!_changedAt.TryGetValue(p.Id, out long changed) || stamp >= changed) return true;
        if (compared == stamp + 1) return false;
        compared = stamp + 1;
        return store.TryReadAtOrBefore(p.Id, f, out var written) && SamePersisted(p, written);
    }

    /// <summary>
    /// A follower before a snapshot: waits (briefly, never the writer) until the writer's store has written every generation
    /// stamped at or before the follower's count, then drops what it can, so that the snapshot's resident part stays small.
    /// </summary>
    public void TrimForSnapshot()
    {
        if (!_follower || !_active) return;
        _tier!.Store.WaitWrittenThrough(_applied, timeoutMs: 10_000);
        FollowerRetire();
    }

    // --- snapshot (physical part) and invariant walks ---

    /// <summary>The resident payments in id order: chunks from the first resident one, with the pool's merged in.</summary>
    public IEnumerable<long> ResidentIds()
    {
        long first = (_firstResidentChunk << _shift) + 1;
        long[] pooled = [.. _poolIndex.Keys];
        Array.Sort(pooled);
        foreach (long id in pooled) if (id < first) yield return id;
        for (long id = first; id <= _count; id++) if (IsResident(id)) yield return id;
    }

    /// <summary>Writes the resident payments (a snapshot's physical section: with the cold tier, the rest is on disk).</summary>
    public void WriteResident(BinaryWriter w)
    {
        w.Write((byte)(SomeCold ? 1 : 0));
        // In payments, not chunks: a restart may be configured with another chunk size.
        w.Write(_firstResidentChunk << _shift);
        long[] pooled = [.. _poolIndex.Keys];
        Array.Sort(pooled);
        w.Write(pooled.Length);
        foreach (long id in pooled) WritePayment(w, this[id]);
        for (long id = (_firstResidentChunk << _shift) + 1; id <= _count; id++) WritePayment(w, this[id]);
    }

    /// <summary>Reads <see cref="WriteResident"/>'s section into an empty store of <paramref name="count"/> payments.</summary>
    public void ReadResident(BinaryReader r, long count)
    {
        byte someCold = r.ReadByte();
        if (someCold > 1) throw new InvalidDataException($"payments flag {someCold}");
        long firstId = r.ReadInt64(); // payments below it are only in the cold tier (and the pool's)
        if (someCold == 1 && _tier is null) throw new SnapshotNeedsColdTierException();
        if (firstId < 0 || firstId > count || (someCold == 0) != (firstId == 0))
            throw new InvalidDataException($"first resident payment {firstId + 1} does not fit {count} payments");
        int pooled = r.ReadInt32();
        if (pooled < 0 || pooled > count) throw new InvalidDataException($"state holds {pooled} pooled payments");
        for (int i = 0; i < pooled; i++)
        {
            var p = ReadPayment(r);
            if (p.Id < 1 || p.Id > firstId || _poolIndex.ContainsKey(p.Id)) throw new InvalidDataException($"pooled payment {p.Id} out of place");
            ref var e = ref NewPoolEntry(p.Id);
            e.Current = p; // not known to be written: written again at the next close (harmless)
        }
        // This run's chunks start at the first chunk boundary at or above firstId; the payments between go to the pool
        // (only when the chunk size changed since the snapshot).
        long firstChunk = (firstId + _size - 1) >> _shift;
        _firstResidentChunk = firstChunk;
        _nextChunkToClose = firstChunk;
        for (long id = firstId + 1; id <= Math.Min(count, firstChunk << _shift); id++)
        {
            var p = ReadPayment(r);
            if (p.Id != id) throw new InvalidDataException($"payment {id} holds id {p.Id}");
            ref var e = ref NewPoolEntry(id);
            e.Current = p;
        }
        _count = Math.Min(count, firstChunk << _shift);
        while (_count < count)
        {
            var p = ReadPayment(r);
            ref var slot = ref Add();
            if (p.Id != _count) throw new InvalidDataException($"payment {_count} holds id {p.Id}");
            slot = p;
        }
    }

    internal static void WritePayment(BinaryWriter w, in Payment p)
    {
        w.Write(p.Id); w.Write(p.FromAccount); w.Write(p.ToAccount); w.Write(p.Amount); w.Write(p.Captured);
        w.Write(p.Refunded); w.Write(p.CreatedAtMs); w.Write(p.ExpiresAtMs); w.Write(p.ParentId);
        w.Write(p.PrevForFrom); w.Write(p.PrevForTo); w.Write(p.Currency.Code); w.Write((byte)p.Kind); w.Write((byte)p.Status);
        w.Write(p.FraudScore); w.Write((ushort)p.FraudReasons); w.Write(p.FraudModel);
    }

    internal static Payment ReadPayment(BinaryReader r)
    {
        var p = new Payment
        {
            Id = r.ReadInt64(), FromAccount = r.ReadInt64(), ToAccount = r.ReadInt64(), Amount = r.ReadInt64(), Captured = r.ReadInt64(),
            Refunded = r.ReadInt64(), CreatedAtMs = r.ReadInt64(), ExpiresAtMs = r.ReadInt64(), ParentId = r.ReadInt64(),
            PrevForFrom = r.ReadInt64(), PrevForTo = r.ReadInt64(), Currency = new Currency(r.ReadUInt16()),
            Kind = (PaymentKind)r.ReadByte(), Status = (PaymentStatus)r.ReadByte(),
            FraudScore = r.ReadSingle(), FraudReasons = (RamPay.Fraud.FraudReasons)r.ReadUInt16(), FraudModel = r.ReadUInt16(),
        };
        p.HoldIndex = -1;
        return p;
    }
}

/// <summary>A payment's fixed 100-byte encoding in the cold tier (little-endian; docs/storage.md, "Payments"). Persisted: frozen.</summary>
public static class PaymentCodec
{
    /// <summary>Every persisted field equal (the hold index, derived, is left out).</summary>
    public static bool SamePersisted(in Payment a, in Payment b) => PaymentStore.SamePersisted(a, b);

    /// <summary>The payment's record as the cold tier stores it: 100 bytes, little-endian (docs/storage.md, "Payments").</summary>
    public const int RecordBytes = 100;

    public static void Encode(Span<byte> into, in Payment p)
    {
        var b = into[..RecordBytes];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(b, p.Id);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(b[8..], p.FromAccount);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(b[16..], p.ToAccount);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(b[24..], p.Amount);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(b[32..], p.Captured);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(b[40..], p.Refunded);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(b[48..], p.CreatedAtMs);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(b[56..], p.ExpiresAtMs);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(b[64..], p.ParentId);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(b[72..], p.PrevForFrom);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(b[80..], p.PrevForTo);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(b[88..], p.Currency.Code);
        b[90] = (byte)p.Kind;
        b[91] = (byte)p.Status;
        System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(b[92..], p.FraudScore);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(b[96..], (ushort)p.FraudReasons);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(b[98..], p.FraudModel);
    }

    public static Payment Decode(ReadOnlySpan<byte> b)
    {
        var p = new Payment
        {
            Id = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(b),
            FromAccount = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(b[8..]),
            ToAccount = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(b[16..]),
            Amount = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(b[24..]),
            Captured = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(b[32..]),
            Refunded = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(b[40..]),
            CreatedAtMs = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(b[48..]),
            ExpiresAtMs = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(b[56..]),
            ParentId = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(b[64..]),
            PrevForFrom = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(b[72..]),
            PrevForTo = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(b[80..]),
            Currency = new Currency(System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(b[88..])),
            Kind = (PaymentKind)b[90],
            Status = (PaymentStatus)b[91],
            FraudScore = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(b[92..]),
            FraudReasons = (RamPay.Fraud.FraudReasons)System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(b[96..]),
            FraudModel = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(b[98..]),
        };
        p.HoldIndex = -1;
        return p;
    }
}
