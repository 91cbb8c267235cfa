using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.Win32.SafeHandles;
using RamPay.Core;
using RamPay.Journal;

namespace RamPay.Storage;

/// <summary>Where the segmented cold tier of idempotency keys lives, and how much it may hold.</summary>
public sealed record KeySegmentStoreOptions
{
    public required string Directory { get; init; }
    /// <summary>
    /// Keys the store must be able to hold live: the ledger's key budget (journaled with UpgradeRules). The store keeps at
    /// most <see cref="MaxRetainedKeys"/> (the budget, plus room for keys not yet collectable because the oldest kept
    /// snapshot still needs them); past it a write fails loudly (<see cref="ColdTierFullException"/>).
    /// </summary>
    public long KeyCapacity { get; init; } = 1 << 24;
    /// <summary>Records per segment file (a power of two). Whole segments are dropped once every key in them is dead.</summary>
    public int SegmentKeys { get; init; } = 1 << 20;
    /// <summary>The in-memory index starts sized for this many keys and doubles as the store grows.</summary>
    public long InitialIndexKeys { get; init; } = 1 << 20;
    /// <summary>The journal sequence known durable (an entry is written only once the command that made it is).</summary>
    public Func<long> DurableSequence { get; init; } = static () => long.MaxValue;
    /// <summary>Closed generations waiting to be written, at most (the writer's hot tier bounds it anyway).</summary>
    public int MaxQueuedGenerations { get; init; } = 64;
    /// <summary>fsync each written generation before it becomes visible. Off only in tests and benchmarks.</summary>
    public bool Fsync { get; init; } = true;

    /// <summary>The budget, a quarter more for keys the collection horizon still holds, and two segments of rounding.</summary>
    public long MaxRetainedKeys => KeyCapacity + KeyCapacity / 4 + 2L * SegmentKeys;

    /// <summary>
    /// Buckets of the largest index table the store ever needs: <see cref="MaxRetainedKeys"/> at six keys a bucket of seven
    /// (about 4.7 at <see cref="KeyCapacity"/>, where the store settles once snapshots collect behind it). The index grows to
    /// this and no further, so once there it holds no table for a next growth (issue 10: at the plateau the old growth
    /// policy held the table, the one it replaced and most of a next one that never came, ~37 B a key).
    /// </summary>
    public long MaxIndexBuckets => Math.Max(64, (MaxRetainedKeys + 5) / 6);

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Directory)) throw new ArgumentException("the cold tier needs a directory");
        if (KeyCapacity < 1) throw new ArgumentException("KeyCapacity must be at least 1");
        if (SegmentKeys < 8 || (SegmentKeys & (SegmentKeys - 1)) != 0) throw new ArgumentException("SegmentKeys must be a power of two, at least 8");
        if (InitialIndexKeys < 1) throw new ArgumentException("InitialIndexKeys must be at least 1");
        if (MaxQueuedGenerations < 2) throw new ArgumentException("MaxQueuedGenerations must be at least 2");
    }
}

/// <summary>
/// The cold tier of the key log, log-structured. Keys arrive in log order (which is journaled-time order) and die in
/// that order, so they are appended to segment files of <see cref="KeySegmentStoreOptions.SegmentKeys"/> fixed 128-byte
/// records (the record at log index i sits at a computable offset: no per-key disk index) and a whole segment is deleted
/// once every key in it is dead under the collection horizon. A write is sequential (128 bytes per key, plus 8 for the
/// key's hash in a side file used to rebuild the index at start), not a random page per key as in
/// the hashed tables of the first cold tier (removed; its figures stay in docs/storage.md), which inserted about 9,400 keys/s at 10 M keys.
/// <para>
/// Lookups go through an in-memory hash index of 8-byte slots (a 24-bit tag of the key's hash and the 40-bit log index),
/// seven per 64-byte bucket plus an overflow word, so a miss (every new payment's key) costs one or two cache lines and
/// no I/O, and a hit one 128-byte read. Slots whose index is below the oldest kept segment are free: deleting a segment
/// needs no pass over the index. The index grows by doubling, incrementally, up to the largest table the store needs
/// (<see cref="KeySegmentStoreOptions.MaxIndexBuckets"/>), and is rebuilt from the hash files at start.
/// </para>
/// <para>Threads: <see cref="TryLookup"/> from any thread; <see cref="Flush"/> from the writer; one background thread writes.</para>
/// </summary>
public sealed class KeySegmentStore : IColdKeyStore, IDisposable
{
    public const int RecordBytes = 128;
    public const int HeaderBytes = 4096;
    public const int HashTrailerBytes = 16;
    private const ulong SegmentMagic = 0x544D47455359454B; // "KEYSEGMT"
    private const ulong ManifestMagic = 0x494E414D5359454B; // "KEYSMANI"
    private const uint HashTrailerMagic = 0x4853414B;       // "KASH"
    private const int FormatVersion = 1;
    private const string ManifestName = "keys.manifest";
    /// <summary>Hashes copied into a growing index per key inserted: the copy ends after half the old table's keys are inserted.</summary>
    internal const int RebuildPerInsert = 2;
    private const int RebuildBlockKeys = 8192;

    private readonly KeySegmentStoreOptions _options;
    private readonly long _maxBuckets;
    private readonly int _shift;
    private readonly long _mask;

    // Segments kept, oldest first; readers find one through the ring by its number (index >> shift).
    private readonly List<Segment> _segments = [];
    private readonly Segment?[] _ring;
    private readonly List<Segment> _closing = [];
    private long _floor;        // the first index still kept on disk: index slots below it are free
    private long _flushedEnd;   // the first index not yet written
    private long _recycledUnder;
    // The index readers use: one table, or, while a larger table replaces it, both (IndexTables). The store's thread
    // fills the new table from the hash files a bounded amount per generation (RebuildStep), so growth never stops it.
    private IndexTables _index;
    private readonly KeyIndexChunks _chunks = new();
    private long _rebuildNext, _rebuildEnd; // log indices [next, end) not yet copied into the new table
    private readonly byte[] _rebuildBuffer = new byte[RebuildBlockKeys * 8];
    private long _longestIndexStepTicks, _growths;

    private long _visible;
    private Exception? _fault;
    private readonly object _gate = new();
    private readonly (KeyLog Log, long Generation, long First, long End, long LastSequence)[] _queue;
    private int _queueHead, _queueCount;
    private bool _stopping;
    private readonly Thread _thread;
    private long _horizonSequence, _horizonDeadBelowIndex = long.MinValue, _horizonExpiredAtOrBeforeMs = long.MinValue;
    private readonly List<Hold> _holds = []; // under _gate, by handle
    private long _heldKeys;
    private string? _heldBy;
    private long _lookups, _reads, _written, _dropped;
    private readonly byte[] _writeBuffer = new byte[512 * RecordBytes];
    private readonly byte[] _hashBuffer = new byte[512 * 8];
    private ulong[] _generationHashes = new ulong[1024];

    public KeySegmentStore(KeySegmentStoreOptions options)
    {
        options.Validate();
        _options = options;
        _shift = System.Numerics.BitOperations.Log2((uint)options.SegmentKeys);
        _mask = options.SegmentKeys - 1;
        System.IO.Directory.CreateDirectory(options.Directory);
        _ring = new Segment?[options.MaxRetainedKeys / options.SegmentKeys + 4];
        _queue = new (KeyLog, long, long, long, long)[options.MaxQueuedGenerations];
        Open();
        _maxBuckets = options.MaxIndexBuckets;
        // Room for twice the keys on disk before a growth (or, near the store's size, the largest table at once).
        long keys = _flushedEnd - _floor;
        _index = new IndexTables(BuildIndex(Snap(Math.Max((options.InitialIndexKeys + 4) / 5, (2 * keys + 4) / 5))), null);
        _thread = new Thread(Run) { IsBackground = true, Name = "rampay-cold-keys" };
        _thread.Start();
    }

    /// <summary>Entries below this index are in the store (durably): a restarted writer does not write them again.</summary>
    public long FlushedThroughIndex => Volatile.Read(ref _flushedEnd);
    /// <summary>The oldest snapshot sequence recovery may start from: older states may need entries already deleted.</summary>
    public long RecycledUnderSequence => Volatile.Read(ref _recycledUnder);
    /// <summary>The first log index still on disk.</summary>
    public long FloorIndex => Volatile.Read(ref _floor);
    /// <summary>Keys on disk now (live or not yet collected).</summary>
    public long Keys => FlushedThroughIndex - FloorIndex;
    public long Lookups => Interlocked.Read(ref _lookups);
    /// <summary>Record reads issued (a miss issues none unless a 24-bit tag collides).</summary>
    public long ReadsIssued => Interlocked.Read(ref _reads);
    public long EntriesWritten => Volatile.Read(ref _written);
    public long SegmentsDropped => Volatile.Read(ref _dropped);
    /// <summary>Bytes on disk: the kept segments and their hash files.</summary>
    public long DiskBytes => Keys * (RecordBytes + 8) + SegmentCount * (HeaderBytes + HashTrailerBytes);
    /// <summary>
    /// Bytes of memory the index holds: its table's chunks, the table it is replacing (while it grows) and the chunks
    /// allocated ahead for the next table (over the last quarter before a growth; none once the table is the largest needed).
    /// </summary>
    public long IndexBytes
    {
        get
        {
            var tables = Volatile.Read(ref _index);
            return tables.Current.AllocatedBytes + (tables.Previous?.AllocatedBytes ?? 0) + _chunks.PooledBytes;
        }
    }
    /// <summary>Buckets of the index's table (64 bytes each); at most <see cref="KeySegmentStoreOptions.MaxIndexBuckets"/>.</summary>
    public long IndexBuckets => Volatile.Read(ref _index).Current.Buckets;
    /// <summary>The index's growths since the store opened (each one incremental: <see cref="LongestIndexStep"/>).</summary>
    public long IndexGrowths => Volatile.Read(ref _growths);
    /// <summary>The longest time one generation spent on the index (its inserts, and its share of a growth's copy).</summary>
    public TimeSpan LongestIndexStep => TimeSpan.FromTicks(Volatile.Read(ref _longestIndexStepTicks) * TimeSpan.TicksPerSecond / Stopwatch.Frequency);
    /// <summary>Where the longest index step's time went (for the benchmark).</summary>
    public string LongestIndexStepParts { get; private set; } = "";
    /// <summary>True while a larger table is being filled beside the current one.</summary>
    public bool IndexGrowing => Volatile.Read(ref _index).Previous is not null;
    public int SegmentCount { get { lock (_segments) return _segments.Count; } }
    public long VisibleGeneration => Volatile.Read(ref _visible);
    public Exception? Fault => Volatile.Read(ref _fault);

    /// <summary>
    /// Sets the collection horizon after the engine has durably written a snapshot: in that state, entries below
    /// <paramref name="deadBelowIndex"/> or stamped at or before <paramref name="expiredAtOrBeforeMs"/> are dead for ever.
    /// </summary>
    /// <summary>The snapshot whose state the last <see cref="SetHorizon"/> came from (0: none yet, nothing is collected).</summary>
    public long HorizonSequence { get { lock (_gate) return _horizonSequence; } }

    public void SetHorizon(long snapshotSequence, long deadBelowIndex, long expiredAtOrBeforeMs)
    {
        lock (_gate)
        {
            _horizonSequence = snapshotSequence;
            _horizonDeadBelowIndex = deadBelowIndex;
            _horizonExpiredAtOrBeforeMs = expiredAtOrBeforeMs;
        }
    }

    // --- holds: readers that may restart behind the oldest kept snapshot (the sinks' replica) ---

    /// <summary>
    /// Registers a reader whose restart point the snapshots' horizon does not cover: the sinks' replica, which restarts from
    /// the newest snapshot at or before the lowest sink checkpoint, possibly older than every snapshot the engine keeps.
    /// Until <see cref="SetHold"/> says where it stands, it holds every key (nothing is collected). Register it when the
    /// store is opened, before anything can be collected in this run (docs/storage.md, "The sinks' replica follows the key store").
    /// </summary>
    public int AddHold(string name)
    {
        lock (_gate)
        {
            _holds.Add(new Hold(name, 0, long.MinValue, long.MinValue, Active: true));
            return _holds.Count - 1;
        }
    }

    /// <summary>
    /// The hold's reader restarts from a state at or after snapshot <paramref name="sequence"/>, in which entries below
    /// <paramref name="deadBelowIndex"/> or stamped at or before <paramref name="expiredAtOrBeforeMs"/> are dead. Never moves back.
    /// </summary>
    public void SetHold(int hold, long sequence, long deadBelowIndex, long expiredAtOrBeforeMs)
    {
        lock (_gate)
        {
            Invariant.Check(hold >= 0 && hold < _holds.Count && _holds[hold].Active, "an unknown hold on the cold tier");
            var h = _holds[hold];
            if (sequence <= h.Sequence) return;
            _holds[hold] = h with { Sequence = sequence, DeadBelowIndex = Math.Max(h.DeadBelowIndex, deadBelowIndex), ExpiredAtOrBeforeMs = Math.Max(h.ExpiredAtOrBeforeMs, expiredAtOrBeforeMs) };
        }
    }

    /// <summary>The hold's reader is gone (a server without sinks): it no longer holds anything back.</summary>
    public void RemoveHold(int hold)
    {
        lock (_gate)
        {
            if (hold < 0 || hold >= _holds.Count) return;
            _holds[hold] = _holds[hold] with { Active = false };
        }
    }

    /// <summary>
    /// Keys on disk that the snapshots' horizon alone would have let go and a hold keeps (a sink behind the oldest kept snapshot),
    /// as of the last collection. Disk the sinks cost; it grows while a sink stays behind (bounded by the sinks' lag limits, or by
    /// <see cref="KeySegmentStoreOptions.MaxRetainedKeys"/>, past which a write fails naming the hold).
    /// </summary>
    public long HeldKeys => Volatile.Read(ref _heldKeys);
    /// <summary>The hold that held keys back at the last collection (null: none did).</summary>
    public string? HeldBy => Volatile.Read(ref _heldBy);

    /// <summary>The horizon collection uses: the oldest kept snapshot's, lowered to every active hold's (caller holds <see cref="_gate"/>).</summary>
    private (long Sequence, long DeadBelow, long Expired, string? HeldBy) EffectiveHorizonLocked()
    {
        long sequence = _horizonSequence, deadBelow = _horizonDeadBelowIndex, expired = _horizonExpiredAtOrBeforeMs;
        string? heldBy = null;
        foreach (var h in _holds)
        {
            if (!h.Active) continue;
            // Horizons only grow with the sequence, so the older state's is the lower in both parts; min of each is safe either way.
            if (h.DeadBelowIndex < deadBelow || h.ExpiredAtOrBeforeMs < expired) heldBy = h.Name;
            sequence = Math.Min(sequence, h.Sequence);
            deadBelow = Math.Min(deadBelow, h.DeadBelowIndex);
            expired = Math.Min(expired, h.ExpiredAtOrBeforeMs);
        }
        return (sequence, deadBelow, expired, heldBy);
    }

    private readonly record struct Hold(string Name, long Sequence, long DeadBelowIndex, long ExpiredAtOrBeforeMs, bool Active);

    public void Flush(KeyLog source, long generation, long firstIndex, long endIndex, long lastSequence)
    {
        lock (_gate)
        {
            Invariant.Check(_queueCount < _queue.Length, "the cold tier's queue of generations is full");
            _queue[(_queueHead + _queueCount) % _queue.Length] = (source, generation, firstIndex, endIndex, lastSequence);
            _queueCount++;
            Monitor.PulseAll(_gate);
        }
    }

    public void WaitVisible(long generation)
    {
        lock (_gate)
        {
            while (Volatile.Read(ref _visible) < generation)
            {
                if (_fault is not null) throw new IOException("the cold tier's writer failed", _fault);
                Monitor.Wait(_gate, 100);
            }
        }
    }

    public long DurableEndIndex => FlushedThroughIndex;

    public void WaitDurableEnd(long index)
    {
        lock (_gate)
        {
            while (FlushedThroughIndex < index)
            {
                if (_fault is not null) throw new IOException("the cold tier's writer failed", _fault);
                Monitor.Wait(_gate, 100);
            }
        }
    }

    /// <summary>
    /// Blocks until the background writer has written every queued generation that the journal's durable sequence lets it
    /// write (a deterministic point for the seeded simulation and tests; the engine never waits for it). Throws when the writer failed.
    /// </summary>
    public void WaitIdle()
    {
        lock (_gate)
        {
            while (_queueCount > 0 && _fault is null && _queue[_queueHead].LastSequence <= _options.DurableSequence()) Monitor.Wait(_gate, 10);
            if (_fault is not null) throw new IOException("the cold tier's writer failed", _fault);
        }
    }

    // --- lookups ---

    public bool TryLookup(long clientId, IdempotencyKey key, long limitIndex, out KeyEntry entry)
    {
        Interlocked.Increment(ref _lookups);
        ulong hash = Hash(clientId, key);
        // The index is read after the caller read VisibleGeneration: it holds every entry of every visible generation.
        var index = Volatile.Read(ref _index);
        long floor = Volatile.Read(ref _floor);
        Span<long> candidates = stackalloc long[16];
        int n = index.Candidates(hash, floor, Math.Min(limitIndex, FlushedThroughIndex), candidates, out bool more);
        if (more) return SlowLookup(index, hash, clientId, key, limitIndex, out entry);
        // Newest first: the first whose key matches is the newest version.
        candidates[..n].Sort();
        for (int i = n - 1; i >= 0; i--)
            if (TryRead(candidates[i], clientId, key, out entry)) return true;
        entry = default;
        return false;
    }

    /// <summary>More than 16 candidates (many versions of one key, or a long overflow run): out of line, allocates.</summary>
    private bool SlowLookup(IndexTables index, ulong hash, long clientId, IdempotencyKey key, long limitIndex, out KeyEntry entry)
    {
        var all = new long[1 << 16];
        int n = index.Candidates(hash, Volatile.Read(ref _floor), Math.Min(limitIndex, FlushedThroughIndex), all, out _);
        Array.Sort(all, 0, n);
        for (int i = n - 1; i >= 0; i--)
            if (TryRead(all[i], clientId, key, out entry)) return true;
        entry = default;
        return false;
    }

    private bool TryRead(long index, long clientId, IdempotencyKey key, out KeyEntry entry)
    {
        entry = default;
        var segment = Volatile.Read(ref _ring[(index >> _shift) % _ring.Length]);
        if (segment is null || segment.Base != (index & ~_mask) || index < Volatile.Read(ref _floor)) return false; // deleted: dead
        Span<byte> record = stackalloc byte[RecordBytes];
        Interlocked.Increment(ref _reads);
        int read;
        try
        {
            read = RandomAccess.Read(segment.Data, record, HeaderBytes + (index - segment.Base) * RecordBytes);
        }
        catch (ObjectDisposedException) when (index < Volatile.Read(ref _floor))
        {
            return false; // the segment was deleted while this lookup read it: every key in it was dead
        }
        if (read != RecordBytes || !KeyRecords.TryDecode(record, out entry) || entry.Index != index)
            throw new InvalidDataException($"cold tier: the record of key-log index {index} in {segment.Path} is damaged");
        return entry.Command.ClientId == clientId && entry.Command.Key == key;
    }

    public static ulong Hash(long clientId, IdempotencyKey key)
    {
        ulong h = (key.Lo ^ (ulong)clientId * 0x9E3779B97F4A7C15) * 0xBF58476D1CE4E5B9;
        h ^= h >> 31;
        h = (h ^ key.Hi) * 0x94D049BB133111EB;
        return h ^ (h >> 29);
    }

    // --- the background writer ---

    private void Run()
    {
        try
        {
            while (true)
            {
                (KeyLog Log, long Generation, long First, long End, long LastSequence) g;
                lock (_gate)
                {
                    while (_queueCount == 0 && !_stopping) Monitor.Wait(_gate);
                    if (_queueCount == 0) return;
                    g = _queue[_queueHead];
                }
                // Never write an entry whose command the journal could still lose: recovery must not find it.
                var spin = new SpinWait();
                while (_options.DurableSequence() < g.LastSequence)
                {
                    if (Volatile.Read(ref _stopping)) return;
                    spin.SpinOnce(sleep1Threshold: 10);
                }
                WriteGeneration(g.Log, g.First, g.End);
                lock (_gate)
                {
                    _queue[_queueHead] = default;
                    _queueHead = (_queueHead + 1) % _queue.Length;
                    _queueCount--;
                    Volatile.Write(ref _visible, g.Generation);
                    Monitor.PulseAll(_gate);
                }
            }
        }
        catch (Exception e)
        {
            lock (_gate)
            {
                _fault = e;
                Monitor.PulseAll(_gate);
            }
        }
    }

    private void WriteGeneration(KeyLog log, long first, long end)
    {
        long from = Math.Max(first, _flushedEnd); // a restart hands over entries the store already has
        if (from >= end) return;
        if (_segments.Count > 0 && first > _flushedEnd)
            throw new InvalidDataException($"the cold tier ends at key-log index {_flushedEnd} but is handed entries from {first}: entries in between are missing (was {_options.Directory} replaced?)");
        DropDead();
        if (_flushedEnd - _floor + (end - from) > _options.MaxRetainedKeys)
        {
            long horizon, deadBelow, expired;
            string? heldBy;
            lock (_gate)
            {
                (horizon, deadBelow, expired, heldBy) = EffectiveHorizonLocked();
            }
            throw new ColdTierFullException(heldBy is not null
                ? $"the cold tier holds {_flushedEnd - _floor:N0} keys (most {_options.MaxRetainedKeys:N0}), {HeldKeys:N0} of them only because the {heldBy} hold " +
                  $"stands at snapshot {horizon} (entries below {deadBelow} or stamped at or before {expired} are dead there): a reader that far behind (a sink down?) " +
                  "must catch up or be removed, or ColdTier:KeyCapacity raised"
                : $"the cold tier holds {_flushedEnd - _floor:N0} keys (most {_options.MaxRetainedKeys:N0}) and the oldest segment is still live in the oldest kept snapshot's state " +
                  $"(the horizon at snapshot {horizon} kills entries below {deadBelow} or stamped at or before {expired}): snapshots must be taken more often, or ColdTier:KeyCapacity raised");
        }
        if (_generationHashes.Length < end - from) _generationHashes = new ulong[end - from];
        var touched = new HashSet<Segment>();
        long i = from;
        while (i < end)
        {
            var segment = SegmentFor(i);
            touched.Add(segment);
            int n = (int)Math.Min(Math.Min(end - i, segment.Base + _options.SegmentKeys - i), _writeBuffer.Length / RecordBytes);
            for (int k = 0; k < n; k++)
            {
                log.ReadClosed(i + k, out var e);
                Invariant.Check(e.Index == i + k, "the key log handed the cold tier an entry out of order");
                KeyRecords.Encode(_writeBuffer.AsSpan(k * RecordBytes, RecordBytes), e);
                ulong hash = Hash(e.Command.ClientId, e.Command.Key);
                _generationHashes[i + k - from] = hash;
                BinaryPrimitives.WriteUInt64LittleEndian(_hashBuffer.AsSpan(k * 8), hash);
                segment.MaxTimestampMs = Math.Max(segment.MaxTimestampMs, e.Command.TimestampMs);
            }
            RandomAccess.Write(segment.Data, _writeBuffer.AsSpan(0, n * RecordBytes), HeaderBytes + (i - segment.Base) * RecordBytes);
            RandomAccess.Write(segment.Hashes, _hashBuffer.AsSpan(0, n * 8), (i - segment.Base) * 8);
            segment.End = i + n;
            if (segment.End == segment.Base + _options.SegmentKeys) Seal(segment);
            i += n;
        }
        if (_options.Fsync)
            foreach (var s in touched)
            {
                RandomAccess.FlushToDisk(s.Data);
                RandomAccess.FlushToDisk(s.Hashes);
            }
        // Durable: now indexed (a reader that finds an entry can read it), then counted, then made visible by the caller.
        long started = Stopwatch.GetTimestamp();
        var index = _index.Current;
        // The largest table needed holds every key the store can keep (MaxRetainedKeys, at most six a bucket): never grown.
        if (end - _floor > index.Capacity && index.Buckets < _maxBuckets) index = Grow(end - _floor, from);
        long grown = Stopwatch.GetTimestamp();
        for (long k = from; k < end; k++) index.Insert(_generationHashes[k - from], k, _floor);
        long inserted = Stopwatch.GetTimestamp();
        if (_index.Previous is not null) RebuildStep(RebuildPerInsert * (end - from));
        else ReserveAhead(end - from);
        long took = Stopwatch.GetTimestamp() - started;
        if (took > _longestIndexStepTicks)
        {
            Volatile.Write(ref _longestIndexStepTicks, took);
            LongestIndexStepParts = $"grow {(grown - started) * 1000.0 / Stopwatch.Frequency:F1} ms, inserts {(inserted - grown) * 1000.0 / Stopwatch.Frequency:F1} ms, " +
                $"copy or reserve {(Stopwatch.GetTimestamp() - inserted) * 1000.0 / Stopwatch.Frequency:F1} ms at {end:N0} keys";
        }
        Volatile.Write(ref _flushedEnd, end);
        Volatile.Write(ref _written, _written + (end - from));
    }

    private Segment SegmentFor(long index)
    {
        long @base = index & ~_mask;
        if (_segments.Count > 0 && _segments[^1].Base == @base) return _segments[^1];
        Invariant.Check(_segments.Count == 0 || _segments[^1].Base + _options.SegmentKeys == @base, "cold tier segments are not contiguous");
        var segment = Segment.Create(Path.Combine(_options.Directory, SegmentName(@base)), @base, start: index, _options.SegmentKeys);
        if (_options.Fsync) SyncDirectory();
        lock (_segments) _segments.Add(segment);
        Volatile.Write(ref _ring[(@base >> _shift) % _ring.Length], segment);
        if (_segments.Count == 1) Volatile.Write(ref _floor, Math.Max(_floor, index));
        return segment;
    }

    /// <summary>A full segment gets its hash file's trailer (CRC and newest time), so a restart trusts it without reading the records.</summary>
    private void Seal(Segment segment)
    {
        // The records are durable before the trailer that lets a restart trust them unread.
        if (_options.Fsync) RandomAccess.FlushToDisk(segment.Data);
        Span<byte> trailer = stackalloc byte[HashTrailerBytes];
        int count = (int)(segment.End - segment.Start);
        var hashes = new byte[count * 8];
        RandomAccess.Read(segment.Hashes, hashes, (segment.Start - segment.Base) * 8);
        BinaryPrimitives.WriteInt64LittleEndian(trailer, segment.MaxTimestampMs);
        BinaryPrimitives.WriteUInt32LittleEndian(trailer[8..], Crc32C.Append(Crc32C.Compute(hashes), trailer[..8]));
        BinaryPrimitives.WriteUInt32LittleEndian(trailer[12..], HashTrailerMagic);
        RandomAccess.Write(segment.Hashes, trailer, (long)_options.SegmentKeys * 8);
    }

    /// <summary>
    /// Deletes the oldest segments while every key in them is dead in the oldest kept snapshot's state. The manifest says
    /// so first (durably), so a crash half-way leaves files a restart deletes, never a floor below a deleted file.
    /// </summary>
    private void DropDead()
    {
        long horizon, deadBelow, expired, snapshotDeadBelow, snapshotExpired;
        string? heldBy;
        lock (_gate)
        {
            (horizon, deadBelow, expired, heldBy) = EffectiveHorizonLocked();
            snapshotDeadBelow = _horizonDeadBelowIndex;
            snapshotExpired = _horizonExpiredAtOrBeforeMs;
        }
        int drop = 0;
        while (drop < _segments.Count - 1) // the newest segment stays (it is being appended to)
        {
            var s = _segments[drop];
            if (s.End - 1 < deadBelow || s.MaxTimestampMs <= expired) drop++;
            else break;
        }
        // What a hold keeps beyond the snapshots' horizon: counted, so a reader that lags for ever is seen long before the store is full.
        long held = 0;
        for (int i = drop; i < _segments.Count - 1; i++)
        {
            var s = _segments[i];
            if (s.End - 1 < snapshotDeadBelow || s.MaxTimestampMs <= snapshotExpired) held += s.End - s.Start;
            else break;
        }
        Volatile.Write(ref _heldKeys, held);
        Volatile.Write(ref _heldBy, held > 0 ? heldBy : null);
        if (drop == 0) return;
        long floor = _segments[drop].Start;
        WriteManifest(floor, Math.Max(_recycledUnder, horizon));
        Volatile.Write(ref _recycledUnder, Math.Max(_recycledUnder, horizon));
        Volatile.Write(ref _floor, floor);
        // Handles of the previous drop are closed now (a lookup that started before that is long done); these later.
        foreach (var old in _closing) old.Dispose();
        _closing.Clear();
        for (int i = 0; i < drop; i++)
        {
            var s = _segments[i];
            Volatile.Write(ref _ring[(s.Base >> _shift) % _ring.Length], null);
            File.Delete(s.Path);
            File.Delete(s.HashPath);
            _closing.Add(s);
            _dropped++;
        }
        lock (_segments) _segments.RemoveRange(0, drop);
    }

    /// <summary>
    /// Starts a table twice as large beside the current one, which stops taking inserts: readers search both (the new
    /// first) until <see cref="RebuildStep"/> has copied into the new table every entry below <paramref name="from"/>
    /// (the old table's content), <see cref="RebuildPerInsert"/> hashes per key inserted, read from the hash files in
    /// blocks. Nothing here costs more than allocating the small array of chunk references.
    /// </summary>
    private KeyIndex Grow(long keys, long from)
    {
        // Unreachable at the store's sizes (the copy ends after half the old table's keys are inserted, a growth needs
        // all of them again); a tiny table and a large generation end it here, in one step the size of that tiny table.
        if (_index.Previous is not null) RebuildStep(long.MaxValue);
        var current = _index.Current;
        var index = new KeyIndex(NextBuckets(keys, current) * 5, _chunks, _maxBuckets);
        _rebuildNext = _floor;
        _rebuildEnd = from;
        Volatile.Write(ref _index, new IndexTables(index, current));
        Volatile.Write(ref _growths, _growths + 1);
        return index;
    }

    /// <summary>
    /// Past three quarters of its capacity, the table's successor (twice as many buckets, at most the largest needed) is
    /// allocated ahead, a few chunks a generation, so that by the growth every chunk it needs is in the pool (measured:
    /// allocating ~500 MiB at once at a growth took 7.7 s of the store's thread on the shared machine; fault 6). Nothing is
    /// held ahead once the table is the largest the store needs.
    /// </summary>
    private void ReserveAhead(long inserted)
    {
        var current = _index.Current;
        if (current.Buckets >= _maxBuckets)
        {
            _chunks.Clear(); // whatever is left over from its growth: no next table will take it
            return;
        }
        long keys = _flushedEnd - _floor;
        if (keys < current.Capacity / 4 * 3) return; // memory held ahead only over the last quarter before the growth
        long needed = KeyIndexChunks.ChunksFor(NextBuckets(current.Capacity, current)) - _chunks.Count;
        if (needed <= 0) return;
        // Enough each generation to have them all when the keys reach the capacity, with one to spare.
        long remaining = Math.Max(1, current.Capacity - keys);
        long now = Math.Min(needed, needed * inserted / remaining + 1);
        for (long i = 0; i < now; i++) _chunks.Reserve();
    }

    /// <summary>Copies up to <paramref name="budget"/> entries of the replaced table's range into the new one, from the hash files.</summary>
    private void RebuildStep(long budget)
    {
        var index = _index.Current;
        _rebuildNext = Math.Max(_rebuildNext, _floor); // segments dropped meanwhile held dead keys only
        budget = Math.Min(budget, _rebuildEnd - _rebuildNext);
        while (budget > 0)
        {
            var segment = Volatile.Read(ref _ring[(_rebuildNext >> _shift) % _ring.Length])!;
            Invariant.Check(segment.Base == (_rebuildNext & ~_mask), "the key index's copy reached a segment not kept");
            int n = (int)Math.Min(Math.Min(budget, RebuildBlockKeys), segment.End - _rebuildNext);
            int read = RandomAccess.Read(segment.Hashes, _rebuildBuffer.AsSpan(0, n * 8), (_rebuildNext - segment.Base) * 8);
            if (read != n * 8) throw new InvalidDataException($"cold tier: {segment.HashPath} ends before key-log index {_rebuildNext + n}");
            for (int k = 0; k < n; k++) index.Insert(BinaryPrimitives.ReadUInt64LittleEndian(_rebuildBuffer.AsSpan(k * 8)), _rebuildNext + k, _floor);
            _rebuildNext += n;
            budget -= n;
        }
        if (_rebuildNext < _rebuildEnd) return;
        // Complete: the new table alone holds every entry. Readers that still hold both tables find nothing more in the old,
        // which is left to the collector (never re-used: a reader may still hold it). Its 1 MiB chunks free LOH space of the
        // size the next table's chunks take, so they leave no hole the next growth cannot fill.
        Volatile.Write(ref _index, new IndexTables(index, null));
    }

    /// <summary>
    /// The buckets of the table that replaces <paramref name="current"/> at <paramref name="keys"/> keys: twice as many, or,
    /// once that would hold <see cref="KeySegmentStoreOptions.KeyCapacity"/> at five a bucket, the largest table the store
    /// needs (never grown, so nothing is reserved ahead of it). Without that snap a table just below the largest would, at
    /// the plateau, reserve a next table that never comes.
    /// </summary>
    private long NextBuckets(long keys, KeyIndex current) => Snap(Math.Max((keys * 2 + 4) / 5, current.Buckets * 2));

    private long Snap(long buckets) => buckets * 5 >= _options.KeyCapacity ? _maxBuckets : Math.Min(buckets, _maxBuckets);

    private KeyIndex BuildIndex(long buckets)
    {
        var index = new KeyIndex(buckets * 5, _chunks, _maxBuckets);
        Fill(index, _flushedEnd);
        return index;
    }

    private void Fill(KeyIndex index, long end)
    {
        var buffer = new byte[1 << 16];
        foreach (var s in _segments.ToArray())
        {
            long from = Math.Max(s.Start, _floor), to = Math.Min(s.End, end);
            for (long i = from; i < to;)
            {
                int n = (int)Math.Min(to - i, buffer.Length / 8);
                RandomAccess.Read(s.Hashes, buffer.AsSpan(0, n * 8), (i - s.Base) * 8);
                for (int k = 0; k < n; k++) index.Insert(BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(k * 8)), i + k, _floor);
                i += n;
            }
        }
    }

    // --- opening: the manifest, the segments, the torn tail ---

    private static string SegmentName(long @base) => $"keys-{@base:D16}.seg";

    private void Open()
    {
        string manifest = Path.Combine(_options.Directory, ManifestName);
        if (File.Exists(manifest)) ReadManifest(manifest);
        else WriteManifest(0, 0);
        var files = System.IO.Directory.GetFiles(_options.Directory, "keys-*.seg").Order(StringComparer.Ordinal).ToList();
        foreach (var path in files)
        {
            var segment = Segment.Open(path, _options.SegmentKeys);
            if (segment.Base + _options.SegmentKeys <= _floor)
            {
                // Deleted by a drop that crashed after writing the manifest.
                segment.Dispose();
                File.Delete(segment.Path);
                File.Delete(segment.HashPath);
                continue;
            }
            if (_segments.Count > 0 && _segments[^1].Base + _options.SegmentKeys != segment.Base)
                throw new InvalidDataException($"cold tier: {path} does not follow {_segments[^1].Path}: a segment is missing");
            _segments.Add(segment);
        }
        for (int i = 0; i < _segments.Count; i++)
        {
            var s = _segments[i];
            bool newest = i == _segments.Count - 1;
            if (!newest && !s.TryLoadSealed(_options.SegmentKeys))
                s.Recover(_options.SegmentKeys, mustBeFull: true);
            else if (newest && !s.TryLoadSealed(_options.SegmentKeys))
                s.Recover(_options.SegmentKeys, mustBeFull: false);
            _ring[(s.Base >> _shift) % _ring.Length] = s;
        }
        if (_segments.Count > 0)
        {
            _floor = Math.Max(_floor, _segments[0].Start);
            _flushedEnd = _segments[^1].End;
        }
        else _flushedEnd = _floor;
    }

    //  0 u64 magic   8 i32 format version   12 i32 segment keys   16 i64 floor (first index kept)
    // 24 i64 recycled under snapshot sequence   32..60 zero   60 u32 CRC32C of 0..60
    private void WriteManifest(long floor, long recycledUnder)
    {
        Span<byte> m = stackalloc byte[64];
        m.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(m, ManifestMagic);
        BinaryPrimitives.WriteInt32LittleEndian(m[8..], FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(m[12..], _options.SegmentKeys);
        BinaryPrimitives.WriteInt64LittleEndian(m[16..], floor);
        BinaryPrimitives.WriteInt64LittleEndian(m[24..], recycledUnder);
        BinaryPrimitives.WriteUInt32LittleEndian(m[60..], Crc32C.Compute(m[..60]));
        string path = Path.Combine(_options.Directory, ManifestName);
        if (_options.Fsync) AtomicFile.Write(path, m); // tmp, fsync, rename, fsync the directory
        else File.WriteAllBytes(path, m.ToArray());
    }

    private void ReadManifest(string path)
    {
        var m = File.ReadAllBytes(path);
        if (m.Length != 64 || BinaryPrimitives.ReadUInt64LittleEndian(m) != ManifestMagic || BinaryPrimitives.ReadUInt32LittleEndian(m.AsSpan(60)) != Crc32C.Compute(m.AsSpan(0, 60)))
            throw new InvalidDataException($"{path} is not an intact cold-tier manifest");
        if (BinaryPrimitives.ReadInt32LittleEndian(m.AsSpan(8)) != FormatVersion) throw new InvalidDataException($"{path}: unknown cold-tier format");
        int keys = BinaryPrimitives.ReadInt32LittleEndian(m.AsSpan(12));
        if (keys != _options.SegmentKeys) throw new InvalidDataException($"{path}: segments of {keys} keys; the configuration says {_options.SegmentKeys} (keep ColdTier:SegmentKeys as it was)");
        _floor = BinaryPrimitives.ReadInt64LittleEndian(m.AsSpan(16));
        _recycledUnder = BinaryPrimitives.ReadInt64LittleEndian(m.AsSpan(24));
    }

    private void SyncDirectory() => OsJournalFileSystem.Instance.FlushDirectory(_options.Directory);

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        if (_thread.IsAlive) _thread.Join();
        lock (_segments) foreach (var s in _segments) s.Dispose();
        foreach (var s in _closing) s.Dispose();
    }

    /// <summary>Drains every queued generation (a clean stop), then stops the writer.</summary>
    public void DrainAndStop(TimeSpan timeout)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        lock (_gate)
        {
            while (_queueCount > 0 && _fault is null && Environment.TickCount64 < deadline) Monitor.Wait(_gate, 50);
        }
        Dispose();
    }

    /// <summary>The table lookups search and, while it replaces it, the one before (whose entries it is still copying).</summary>
    private sealed class IndexTables(KeyIndex current, KeyIndex? previous)
    {
        public KeyIndex Current { get; } = current;
        public KeyIndex? Previous { get; } = previous;

        /// <summary>The new table first, then the old one: an entry copied meanwhile is found in one or both, counted once.</summary>
        public int Candidates(ulong hash, long floor, long limit, Span<long> into, out bool more)
        {
            int n = Current.Candidates(hash, floor, limit, into, 0, out more);
            if (more || Previous is null) return n;
            return Previous.Candidates(hash, floor, limit, into, n, out more);
        }
    }

    /// <summary>
    /// One segment: <c>keys-&lt;base&gt;.seg</c> (a 4 KiB header, then the records of log indices base .. base + SegmentKeys
    /// at fixed offsets) and <c>.hash</c> beside it (the 8-byte hash of each record's key, then, once full, a trailer).
    /// </summary>
    private sealed class Segment : IDisposable
    {
        //  0 u64 magic   8 i32 format version   12 i32 record bytes   16 i64 base index   24 i64 start index (first record
        // present: base, except in the first segment of a store started mid-log)   32 i32 segment keys   36..124 zero
        // 124 u32 CRC32C of 0..124
        public required SafeFileHandle Data, Hashes;
        public required string Path, HashPath;
        public long Base, Start, End, MaxTimestampMs = long.MinValue;

        public static Segment Create(string path, long @base, long start, int keys)
        {
            var s = new Segment
            {
                Path = path, HashPath = System.IO.Path.ChangeExtension(path, ".hash"), Base = @base, Start = start, End = start,
                Data = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite, FileShare.Read),
                Hashes = File.OpenHandle(System.IO.Path.ChangeExtension(path, ".hash"), FileMode.Create, FileAccess.ReadWrite, FileShare.Read),
            };
            Span<byte> h = stackalloc byte[HeaderBytes];
            h.Clear();
            BinaryPrimitives.WriteUInt64LittleEndian(h, SegmentMagic);
            BinaryPrimitives.WriteInt32LittleEndian(h[8..], FormatVersion);
            BinaryPrimitives.WriteInt32LittleEndian(h[12..], RecordBytes);
            BinaryPrimitives.WriteInt64LittleEndian(h[16..], @base);
            BinaryPrimitives.WriteInt64LittleEndian(h[24..], start);
            BinaryPrimitives.WriteInt32LittleEndian(h[32..], keys);
            BinaryPrimitives.WriteUInt32LittleEndian(h[124..], Crc32C.Compute(h[..124]));
            RandomAccess.Write(s.Data, h, 0);
            return s;
        }

        public static Segment Open(string path, int keys)
        {
            var data = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
            string hashPath = System.IO.Path.ChangeExtension(path, ".hash");
            var hashes = File.OpenHandle(hashPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
            Span<byte> h = stackalloc byte[128];
            if (RandomAccess.Read(data, h, 0) != 128 || BinaryPrimitives.ReadUInt64LittleEndian(h) != SegmentMagic
                || BinaryPrimitives.ReadUInt32LittleEndian(h[124..]) != Crc32C.Compute(h[..124]))
            {
                data.Dispose(); hashes.Dispose();
                throw new InvalidDataException($"{path} is not an intact cold-tier segment");
            }
            if (BinaryPrimitives.ReadInt32LittleEndian(h[8..]) != FormatVersion || BinaryPrimitives.ReadInt32LittleEndian(h[12..]) != RecordBytes
                || BinaryPrimitives.ReadInt32LittleEndian(h[32..]) != keys)
            {
                data.Dispose(); hashes.Dispose();
                throw new InvalidDataException($"{path}: another cold-tier format or segment size (keep ColdTier:SegmentKeys as it was)");
            }
            long @base = BinaryPrimitives.ReadInt64LittleEndian(h[16..]), start = BinaryPrimitives.ReadInt64LittleEndian(h[24..]);
            return new Segment { Data = data, Hashes = hashes, Path = path, HashPath = hashPath, Base = @base, Start = start, End = start };
        }

        /// <summary>A full segment whose hash file carries an intact trailer: trusted without reading its records.</summary>
        public bool TryLoadSealed(int keys)
        {
            long dataLength = RandomAccess.GetLength(Data), hashLength = RandomAccess.GetLength(Hashes);
            if (dataLength != HeaderBytes + (long)keys * RecordBytes || hashLength != (long)keys * 8 + HashTrailerBytes) return false;
            var hashes = new byte[(Base + keys - Start) * 8];
            RandomAccess.Read(Hashes, hashes, (Start - Base) * 8);
            Span<byte> trailer = stackalloc byte[HashTrailerBytes];
            RandomAccess.Read(Hashes, trailer, (long)keys * 8);
            if (BinaryPrimitives.ReadUInt32LittleEndian(trailer[12..]) != HashTrailerMagic
                || BinaryPrimitives.ReadUInt32LittleEndian(trailer[8..]) != Crc32C.Append(Crc32C.Compute(hashes), trailer[..8])) return false;
            MaxTimestampMs = BinaryPrimitives.ReadInt64LittleEndian(trailer);
            End = Base + keys;
            return true;
        }

        /// <summary>
        /// Reads the records from the start, keeps the longest run of intact ones in order (a crash may have torn the tail
        /// of the newest segment: those entries were never visible, and the replay writes them again), cuts the rest,
        /// and rewrites the hash file from the records.
        /// </summary>
        public void Recover(int keys, bool mustBeFull)
        {
            long length = RandomAccess.GetLength(Data);
            var buffer = new byte[256 * RecordBytes];
            long i = Start;
            long limit = Base + keys;
            using var hashOut = new MemoryStream();
            Span<byte> h = stackalloc byte[8];
            bool torn = false;
            while (i < limit && !torn)
            {
                long offset = HeaderBytes + (i - Base) * RecordBytes;
                int n = (int)Math.Min(limit - i, buffer.Length / RecordBytes);
                int read = offset >= length ? 0 : RandomAccess.Read(Data, buffer.AsSpan(0, n * RecordBytes), offset);
                int whole = read / RecordBytes;
                for (int k = 0; k < whole; k++)
                {
                    if (!KeyRecords.TryDecode(buffer.AsSpan(k * RecordBytes, RecordBytes), out var e) || e.Index != i)
                    {
                        torn = true;
                        break;
                    }
                    MaxTimestampMs = Math.Max(MaxTimestampMs, e.Command.TimestampMs);
                    BinaryPrimitives.WriteUInt64LittleEndian(h, Hash(e.Command.ClientId, e.Command.Key));
                    hashOut.Write(h);
                    i++;
                }
                if (whole < n) torn = true;
            }
            if (mustBeFull && i != limit) throw new InvalidDataException($"{Path}: an older cold-tier segment is incomplete ({i - Base} of {keys} records intact)");
            End = i;
            RandomAccess.SetLength(Data, HeaderBytes + (i - Base) * RecordBytes);
            RandomAccess.SetLength(Hashes, 0);
            RandomAccess.Write(Hashes, hashOut.GetBuffer().AsSpan(0, (int)hashOut.Length), (Start - Base) * 8);
            if (i == limit)
            {
                Span<byte> trailer = stackalloc byte[HashTrailerBytes];
                BinaryPrimitives.WriteInt64LittleEndian(trailer, MaxTimestampMs);
                BinaryPrimitives.WriteUInt32LittleEndian(trailer[8..], Crc32C.Append(Crc32C.Compute(hashOut.GetBuffer().AsSpan(0, (int)hashOut.Length)), trailer[..8]));
                BinaryPrimitives.WriteUInt32LittleEndian(trailer[12..], HashTrailerMagic);
                RandomAccess.Write(Hashes, trailer, (long)keys * 8);
            }
            RandomAccess.FlushToDisk(Data);
            RandomAccess.FlushToDisk(Hashes);
        }

        public void Dispose()
        {
            Data.Dispose();
            Hashes.Dispose();
        }
    }
}

/// <summary>
/// The in-memory index of the segmented cold tier: buckets of one cache line, seven 8-byte slots (24-bit tag, 40-bit log
/// index + 1) and an overflow word (the newest index + 1 that went on to the next bucket because this one was full).
/// A slot whose index is below the floor is free. One writer; readers at any time (8-byte slots are written whole).
/// The buckets live in fixed-size chunks (<see cref="KeyIndexChunks"/>, 1 MiB), allocated when first written: no array
/// grows with the table, so growing it never allocates (nor later frees into the large-object heap) one giant array,
/// and no single insert allocates more than one chunk.
/// </summary>
internal sealed class KeyIndex
{
    private const int Slots = 7;
    private const ulong IndexMask = (1UL << 40) - 1;
    private readonly ulong[]?[] _chunks;
    private readonly KeyIndexChunks _pool;
    private long _allocatedBytes;
    public long Buckets { get; }
    /// <summary>Keys it holds at an average of five per bucket of seven, past which a larger one replaces it.</summary>
    public long Capacity => Buckets * 5;
    /// <summary>Bytes of the chunks written so far (a chunk is allocated on its first insert).</summary>
    public long AllocatedBytes => Volatile.Read(ref _allocatedBytes);

    public KeyIndex(long keys, KeyIndexChunks pool, long maxBuckets = long.MaxValue)
    {
        Buckets = Math.Max(64, Math.Min(maxBuckets, (keys + 4) / 5));
        _pool = pool;
        _chunks = new ulong[]?[(Buckets + KeyIndexChunks.ChunkBuckets - 1) >> KeyIndexChunks.ChunkShift];
    }

    private long BucketOf(ulong hash) => (long)Math.BigMul(hash, (ulong)Buckets, out _);
    private static ulong Tag(ulong hash) => (hash & 0xFFFFFF) << 40;

    private ulong[] ChunkForWrite(long bucket)
    {
        long c = bucket >> KeyIndexChunks.ChunkShift;
        var chunk = _chunks[c];
        if (chunk is not null) return chunk;
        return NewChunk(c);
    }

    private ulong[] NewChunk(long c)
    {
        // The last chunk holds only the buckets left; every other one is full size (and so can come from the pool).
        long buckets = Math.Min(KeyIndexChunks.ChunkBuckets, Buckets - (c << KeyIndexChunks.ChunkShift));
        var chunk = _pool.Rent((int)buckets * 8);
        Volatile.Write(ref _chunks[c], chunk); // zeroed before it is published: a reader sees empty buckets
        Volatile.Write(ref _allocatedBytes, _allocatedBytes + chunk.Length * 8L);
        return chunk;
    }

    public void Insert(ulong hash, long index, long floor)
    {
        long b = BucketOf(hash);
        ulong tag = Tag(hash);
        for (long probed = 0; probed < Buckets; probed++)
        {
            var chunk = ChunkForWrite(b);
            int at = (int)(b & KeyIndexChunks.ChunkBucketMask) * 8;
            for (int s = 0; s < Slots; s++)
            {
                ulong w = chunk[at + s];
                if (w == 0 || (long)(w & IndexMask) - 1 < floor)
                {
                    Volatile.Write(ref chunk[at + s], tag | (ulong)(index + 1));
                    return;
                }
            }
            // Full of live entries: go on to the next bucket, and say so here for the lookups.
            Volatile.Write(ref chunk[at + Slots], Math.Max(chunk[at + Slots], (ulong)(index + 1)));
            b = b + 1 == Buckets ? 0 : b + 1;
        }
        Invariant.Fail("the cold tier's index is full");
    }

    /// <summary>
    /// Adds to <paramref name="into"/>[<paramref name="count"/>..] the indices in [<paramref name="floor"/>,
    /// <paramref name="limit"/>) whose tag matches, along the bucket and any buckets its entries overflowed into, leaving
    /// out any already in <paramref name="into"/>[..<paramref name="count"/>] (an entry found in two tables while one
    /// replaces the other). <paramref name="more"/>: more than fit in <paramref name="into"/>. Returns the new count.
    /// </summary>
    public int Candidates(ulong hash, long floor, long limit, Span<long> into, int count, out bool more)
    {
        long b = BucketOf(hash);
        ulong tag = Tag(hash);
        int n = count;
        more = false;
        for (long probed = 0; probed < Buckets; probed++)
        {
            var chunk = Volatile.Read(ref _chunks[b >> KeyIndexChunks.ChunkShift]);
            if (chunk is null) return n; // never written: no entry, no overflow
            int at = (int)(b & KeyIndexChunks.ChunkBucketMask) * 8;
            for (int s = 0; s < Slots; s++)
            {
                ulong w = Volatile.Read(ref chunk[at + s]);
                if ((w & ~IndexMask) != tag || w == 0) continue;
                long index = (long)(w & IndexMask) - 1;
                if (index < floor || index >= limit || into[..count].Contains(index)) continue;
                if (n == into.Length) { more = true; return n; }
                into[n++] = index;
            }
            long overflow = (long)Volatile.Read(ref chunk[at + Slots]) - 1;
            if (overflow < floor) return n; // nothing live went past this bucket
            b = b + 1 == Buckets ? 0 : b + 1;
        }
        return n;
    }
}

/// <summary>
/// The key index's chunks: 16,384 buckets of 64 bytes (1 MiB) each. Over the last quarter before a growth the next table's
/// chunks are allocated here ahead, a few per generation, their pages touched, so that the growth's first inserts take no
/// burst of allocation and page faults (fault 6); the new table rents them (zero) before allocating. A replaced table is
/// not pooled (it was until 2026-12-06: held until the next growth, it kept ~12.8 B a key for nothing at the plateau):
/// its chunks go to the collector, and the next reservation's chunks, of the same size, fill the space they leave.
/// One thread (the store's) rents and reserves.
/// </summary>
internal sealed class KeyIndexChunks
{
    public const int ChunkShift = 14;
    public const long ChunkBuckets = 1L << ChunkShift;
    public const long ChunkBucketMask = ChunkBuckets - 1;
    private const int ChunkWords = (int)ChunkBuckets * 8;
    private readonly Stack<ulong[]> _fresh = new(); // allocated ahead of a growth: zero already
    private long _pooledBytes;

    /// <summary>Bytes held in the pool for the next table (memory the index keeps, not in use).</summary>
    public long PooledBytes => Volatile.Read(ref _pooledBytes);
    /// <summary>Full-size chunks in the pool.</summary>
    public int Count => _fresh.Count;

    /// <summary>The number of chunks a table of <paramref name="buckets"/> buckets takes.</summary>
    public static long ChunksFor(long buckets) => (buckets + ChunkBuckets - 1) >> ChunkShift;

    public ulong[] Rent(int words)
    {
        if (words != ChunkWords || _fresh.Count == 0) return new ulong[words];
        var chunk = _fresh.Pop();
        Volatile.Write(ref _pooledBytes, _pooledBytes - chunk.Length * 8L);
        return chunk;
    }

    /// <summary>Allocates one chunk ahead of the growth that will need it (the allocation and its page faults spread out).</summary>
    public void Reserve()
    {
        var chunk = new ulong[ChunkWords];
        // A new large array is fresh memory the kernel maps on its first write: touch each 4 KiB page now, so the growth's
        // inserts do not take those page faults (~130,000 of them at 500 MiB) all in one generation.
        for (int i = 0; i < ChunkWords; i += 512) Volatile.Write(ref chunk[i], 0UL);
        _fresh.Push(chunk);
        Volatile.Write(ref _pooledBytes, _pooledBytes + ChunkWords * 8L);
    }

    /// <summary>Drops what is pooled (no next table will take it).</summary>
    public void Clear()
    {
        if (_fresh.Count == 0) return;
        _fresh.Clear();
        Volatile.Write(ref _pooledBytes, 0);
    }
}

/// <summary>The 128-byte record of a key-log entry, shared by the cold stores.</summary>
public static class KeyRecords
{
    //   0 u64 index + 1 (0 = empty)   8 command (80 bytes, its timestamp = the ledger time it was remembered at)
    //  88 u8 result code   89..96 zero   96 i64 result id   104 i64 secondary id   112..124 zero   124 u32 CRC32C of 0..124
    public static void Encode(Span<byte> r, in KeyEntry e)
    {
        r = r[..KeySegmentStore.RecordBytes];
        r.Clear();
        BinaryPrimitives.WriteInt64LittleEndian(r, e.Index + 1);
        CommandCodec.Write(r[8..], e.Command);
        r[88] = (byte)e.Result.Code;
        BinaryPrimitives.WriteInt64LittleEndian(r[96..], e.Result.Id);
        BinaryPrimitives.WriteInt64LittleEndian(r[104..], e.Result.SecondaryId);
        BinaryPrimitives.WriteUInt32LittleEndian(r[124..], Crc32C.Compute(r[..124]));
    }

    public static bool TryDecode(ReadOnlySpan<byte> r, out KeyEntry e)
    {
        e = default;
        long index = BinaryPrimitives.ReadInt64LittleEndian(r) - 1;
        if (index < 0) return false;
        if (BinaryPrimitives.ReadUInt32LittleEndian(r[124..]) != Crc32C.Compute(r[..124])) return false;
        e.Index = index;
        e.Command = CommandCodec.Read(r.Slice(8, CommandCodec.Size));
        e.Result = new CommandResult { Code = (ResultCode)r[88], Id = BinaryPrimitives.ReadInt64LittleEndian(r[96..]), SecondaryId = BinaryPrimitives.ReadInt64LittleEndian(r[104..]) };
        return true;
    }
}

/// <summary>The cold tier cannot take more keys without destroying keys still live: a configuration problem, never silent.</summary>
public sealed class ColdTierFullException(string message) : IOException(message);
