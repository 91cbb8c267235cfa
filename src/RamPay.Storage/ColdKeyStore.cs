using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using RamPay.Core;
using RamPay.Journal;

namespace RamPay.Storage;

/// <summary>Where the cold tier of idempotency keys lives and how much of the disk it may take.</summary>
public sealed record ColdKeyStoreOptions
{
    public required string Directory { get; init; }
    /// <summary>
    /// Keys the store must be able to hold: the ledger's key budget (journaled with UpgradeRules). The store takes
    /// <see cref="Tables"/> tables of 2 × KeyCapacity / (Tables − 1) slots (load at most one half), 128 bytes a slot.
    /// </summary>
    public long KeyCapacity { get; init; } = 1 << 24;
    /// <summary>Tables in rotation: one is written, the oldest is recycled once every key in it is dead. At least 3.</summary>
    public int Tables { get; init; } = 4;
    /// <summary>The journal sequence known durable (an entry is written only once the command that made it is).</summary>
    public Func<long> DurableSequence { get; init; } = static () => long.MaxValue;
    /// <summary>Closed generations waiting to be written, at most (the writer's hot tier bounds it anyway).</summary>
    public int MaxQueuedGenerations { get; init; } = 64;
    /// <summary>fsync each written generation before it becomes visible. Off only in tests and benchmarks.</summary>
    public bool Fsync { get; init; } = true;

    public long SlotsPerTable => (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)Math.Max(64, 2 * KeyCapacity / (Tables - 1)));
    public long DiskBytes => Tables * (ColdKeyStore.HeaderBytes + SlotsPerTable * ColdKeyStore.RecordBytes);

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Directory)) throw new ArgumentException("the cold tier needs a directory");
        if (KeyCapacity < 1) throw new ArgumentException("KeyCapacity must be at least 1");
        if (Tables < 3 || Tables > 64) throw new ArgumentException("Tables must be within 3..64");
        if (MaxQueuedGenerations < 2) throw new ArgumentException("MaxQueuedGenerations must be at least 2");
    }
}

/// <summary>
/// The cold tier of the key log: our own hashed file store. A few fixed-size tables (files) of 128-byte records, open
/// addressing with linear probing, used in rotation: entries are appended to the current table in log order; when it
/// is half full the next table (the oldest) is recycled, which is allowed only once every entry in it is dead in the
/// state of the newest snapshot the engine could recover from (the collection horizon), so that recovery from that
/// snapshot and a replay of the journal after it never needs an entry that is gone.
/// <para>
/// Slots only ever go from empty to full while a table lives, so a reader probing concurrently with the background
/// writer sees every entry of every generation published before it looked (docs/storage.md gives the argument). A
/// record carries its CRC; a record being written reads as the end of its probe chain.
/// </para>
/// <para>Threads: <see cref="TryLookup"/> from any thread (the prefetch stage, the writer's rare path); <see cref="Flush"/>
/// from the writer; one background thread writes.</para>
/// </summary>
public sealed class ColdKeyStore : IColdKeyStore, IDisposable
{
    public const int RecordBytes = 128;
    public const int HeaderBytes = 4096;
    private const ulong Magic = 0x5359454B444C4F43; // "COLDKEYS"
    private const int FormatVersion = 1;
    private const int ProbeRecords = 16;

    private readonly ColdKeyStoreOptions _options;
    private readonly Table[] _tables;
    private readonly long _slots;
    private long _visible;
    private Exception? _fault;

    // The queue of closed generations: a fixed ring, guarded by _gate.
    private readonly object _gate = new();
    private readonly (KeyLog Log, long Generation, long First, long End, long LastSequence)[] _queue;
    private int _queueHead, _queueCount;
    private bool _stopping;
    private readonly Thread _thread;

    // Collection horizon: entries dead in the state at this snapshot sequence may be destroyed.
    private long _horizonSequence, _horizonDeadBelowIndex = long.MinValue, _horizonExpiredAtOrBeforeMs = long.MinValue;
    private readonly byte[] _probe = new byte[ProbeRecords * RecordBytes];

    public ColdKeyStore(ColdKeyStoreOptions options)
    {
        options.Validate();
        _options = options;
        _slots = options.SlotsPerTable;
        System.IO.Directory.CreateDirectory(options.Directory);
        _tables = new Table[options.Tables];
        for (int t = 0; t < _tables.Length; t++) _tables[t] = Table.Open(Path.Combine(options.Directory, $"keys-{t:D2}.tbl"), _slots);
        _queue = new (KeyLog, long, long, long, long)[options.MaxQueuedGenerations];
        _thread = new Thread(Run) { IsBackground = true, Name = "rampay-cold-keys" };
        _thread.Start();
    }

    /// <summary>Entries below this index are in the store (durably): a restarted writer does not write them again.</summary>
    public long FlushedThroughIndex => _tables.Max(t => t.Count == 0 ? 0 : t.MaxIndex + 1);
    /// <summary>The oldest snapshot sequence recovery may start from: older states may need entries already recycled.</summary>
    public long RecycledUnderSequence => _tables.Max(t => t.RecycledUnderSequence);
    public long Lookups => Interlocked.Read(ref _lookups);
    public long ReadsIssued => Interlocked.Read(ref _reads);
    public long EntriesWritten { get; private set; }
    public long TablesRecycled { get; private set; }
    public long DiskBytes => _options.DiskBytes;
    private long _lookups, _reads;

    public long VisibleGeneration => Volatile.Read(ref _visible);
    public Exception? Fault => Volatile.Read(ref _fault);

    /// <summary>
    /// Sets the collection horizon after the engine has durably written a snapshot: in that state, entries below
    /// <paramref name="deadBelowIndex"/> or stamped at or before <paramref name="expiredAtOrBeforeMs"/> are dead for ever.
    /// </summary>
    public void SetHorizon(long snapshotSequence, long deadBelowIndex, long expiredAtOrBeforeMs)
    {
        lock (_gate)
        {
            _horizonSequence = snapshotSequence;
            _horizonDeadBelowIndex = deadBelowIndex;
            _horizonExpiredAtOrBeforeMs = expiredAtOrBeforeMs;
        }
    }

    public void Flush(KeyLog source, long generation, long firstIndex, long endIndex, long lastSequence)
    {
        lock (_gate)
        {
            // The writer's hot tier holds fewer closed generations than the queue does: a full queue is a bug.
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

    public bool TryLookup(long clientId, IdempotencyKey key, long limitIndex, out KeyEntry entry)
    {
        Interlocked.Increment(ref _lookups);
        // Tables newest first: the newest version of a key is in the newest table that holds it.
        Span<byte> buffer = stackalloc byte[ProbeRecords * RecordBytes];
        long home = Home(clientId, key);
        int newest = NewestTable();
        for (int n = 0; n < _tables.Length; n++)
        {
            var table = _tables[(newest - n + _tables.Length) % _tables.Length];
            if (table.Count == 0) continue;
            if (FindInTable(table, home, clientId, key, limitIndex, buffer, out entry)) return true;
        }
        entry = default;
        return false;
    }

    private int NewestTable()
    {
        int newest = 0;
        for (int t = 1; t < _tables.Length; t++) if (_tables[t].Epoch > _tables[newest].Epoch) newest = t;
        return newest;
    }

    private bool FindInTable(Table table, long home, long clientId, IdempotencyKey key, long limitIndex, Span<byte> buffer, out KeyEntry best)
    {
        best = default;
        bool found = false;
        long slot = home;
        for (long probed = 0; probed < _slots;)
        {
            int n = (int)Math.Min(ProbeRecords, _slots - slot);
            Interlocked.Increment(ref _reads);
            int read = RandomAccess.Read(table.Handle, buffer[..(n * RecordBytes)], HeaderBytes + slot * RecordBytes);
            Invariant.Check(read == n * RecordBytes, "short read in the cold tier");
            for (int i = 0; i < n; i++)
            {
                var record = buffer.Slice(i * RecordBytes, RecordBytes);
                if (!KeyRecords.TryDecode(record, out var e)) return found; // empty, or being written: the end of the chain
                if (e.Command.ClientId == clientId && e.Command.Key == key && e.Index < limitIndex && (!found || e.Index > best.Index))
                {
                    best = e;
                    found = true;
                }
            }
            probed += n;
            slot = (slot + n) & (_slots - 1);
        }
        return found;
    }

    private long Home(long clientId, IdempotencyKey key)
    {
        ulong h = (key.Lo ^ (ulong)clientId * 0x9E3779B97F4A7C15) * 0xBF58476D1CE4E5B9;
        return (long)((h ^ (h >> 31)) & (ulong)(_slots - 1));
    }

    // Records: KeyRecords (128 bytes, shared with KeySegmentStore).

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
                    _queue[_queueHead] = default; // the ring must not keep a replaced key log alive
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
        long from = Math.Max(first, FlushedThroughIndex); // a restart hands over entries the store already has
        var touched = new HashSet<Table>();
        Span<byte> record = stackalloc byte[RecordBytes];
        for (long i = from; i < end; i++)
        {
            log.ReadClosed(i, out var e);
            var table = _tables[NewestTable()];
            if (table.Count >= _slots / 2) table = Recycle();
            Insert(table, e, record);
            touched.Add(table);
            EntriesWritten++;
        }
        foreach (var t in touched)
        {
            t.WriteHeader();
            if (_options.Fsync) RandomAccess.FlushToDisk(t.Handle);
        }
    }

    private void Insert(Table table, in KeyEntry e, Span<byte> record)
    {
        long slot = Home(e.Command.ClientId, e.Command.Key);
        Span<byte> one = stackalloc byte[RecordBytes];
        for (long probed = 0; probed < _slots; probed++)
        {
            RandomAccess.Read(table.Handle, one, HeaderBytes + slot * RecordBytes);
            if (BinaryPrimitives.ReadInt64LittleEndian(one) == 0)
            {
                KeyRecords.Encode(record, e);
                RandomAccess.Write(table.Handle, record, HeaderBytes + slot * RecordBytes);
                table.Count++;
                if (table.Count == 1) table.MinIndex = e.Index;
                table.MaxIndex = e.Index;
                table.MaxTimestampMs = Math.Max(table.MaxTimestampMs, e.Command.TimestampMs);
                return;
            }
            slot = (slot + 1) & (_slots - 1);
        }
        Invariant.Fail("a cold-tier table is full although it is never filled past half");
    }

    /// <summary>The current table is half full: the oldest table is emptied for reuse, if every entry in it is dead.</summary>
    private Table Recycle()
    {
        int newest = NewestTable();
        // A table never used yet comes first; otherwise the one with the oldest entries.
        int oldest = -1;
        for (int t = 0; t < _tables.Length && oldest < 0; t++) if (t != newest && _tables[t].Count == 0) oldest = t;
        if (oldest < 0)
        {
            oldest = newest == 0 ? 1 : 0;
            for (int t = 0; t < _tables.Length; t++) if (t != newest && _tables[t].Epoch < _tables[oldest].Epoch) oldest = t;
        }
        var table = _tables[oldest];
        long horizon, deadBelow, expiredAtOrBefore;
        lock (_gate) { horizon = _horizonSequence; deadBelow = _horizonDeadBelowIndex; expiredAtOrBefore = _horizonExpiredAtOrBeforeMs; }
        if (table.Count > 0 && table.MaxIndex >= deadBelow && table.MaxTimestampMs > expiredAtOrBefore)
            throw new ColdTierFullException(
                $"the cold tier's tables are full and the oldest still holds keys live in the newest snapshot's state (entries up to {table.MaxIndex}, " +
                $"stamped up to {table.MaxTimestampMs}; the horizon at snapshot {horizon} kills entries below {deadBelow} or stamped at or before {expiredAtOrBefore}): " +
                "snapshots must be taken more often than the tables fill, or the tier needs more KeyCapacity than the key budget");
        table.Reset(_tables[newest].Epoch + 1, horizon);
        TablesRecycled++;
        return table;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        if (_thread.IsAlive) _thread.Join();
        foreach (var t in _tables) t.Dispose();
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

    /// <summary>One table file: a 4 KiB header, then the slots.</summary>
    private sealed class Table : IDisposable
    {
        //  0 u64 magic   8 i32 format version   12 i32 zero   16 i64 slots   24 i64 epoch (0 = never used)   32 i64 count
        // 40 i64 min index   48 i64 max index   56 i64 max timestamp ms   64 i64 recycled under snapshot sequence
        // 72..124 zero   124 u32 CRC32C of 0..124
        public required SafeFileHandle Handle;
        public required string Path;
        public long Slots, Epoch, Count, MinIndex, MaxIndex, MaxTimestampMs, RecycledUnderSequence;

        public static Table Open(string path, long slots)
        {
            bool exists = File.Exists(path);
            var handle = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
            var t = new Table { Handle = handle, Path = path, Slots = slots };
            if (!exists || RandomAccess.GetLength(handle) == 0)
            {
                RandomAccess.SetLength(handle, HeaderBytes + slots * RecordBytes); // sparse: zero = empty slots
                t.WriteHeader();
                RandomAccess.FlushToDisk(handle);
                return t;
            }
            Span<byte> h = stackalloc byte[128];
            RandomAccess.Read(handle, h, 0);
            if (BinaryPrimitives.ReadUInt32LittleEndian(h[124..]) != Crc32C.Compute(h[..124]) || BinaryPrimitives.ReadUInt64LittleEndian(h) != Magic)
                throw new InvalidDataException($"{path} is not an intact cold-tier table");
            if (BinaryPrimitives.ReadInt32LittleEndian(h[8..]) != FormatVersion) throw new InvalidDataException($"{path}: unknown cold-tier format");
            long stored = BinaryPrimitives.ReadInt64LittleEndian(h[16..]);
            if (stored != slots) throw new InvalidDataException($"{path} has {stored} slots; the configured capacity needs {slots} (keep the cold tier's KeyCapacity and Tables as they were)");
            t.Epoch = BinaryPrimitives.ReadInt64LittleEndian(h[24..]);
            t.Count = BinaryPrimitives.ReadInt64LittleEndian(h[32..]);
            t.MinIndex = BinaryPrimitives.ReadInt64LittleEndian(h[40..]);
            t.MaxIndex = BinaryPrimitives.ReadInt64LittleEndian(h[48..]);
            t.MaxTimestampMs = BinaryPrimitives.ReadInt64LittleEndian(h[56..]);
            t.RecycledUnderSequence = BinaryPrimitives.ReadInt64LittleEndian(h[64..]);
            return t;
        }

        public void WriteHeader()
        {
            Span<byte> h = stackalloc byte[128];
            h.Clear();
            BinaryPrimitives.WriteUInt64LittleEndian(h, Magic);
            BinaryPrimitives.WriteInt32LittleEndian(h[8..], FormatVersion);
            BinaryPrimitives.WriteInt64LittleEndian(h[16..], Slots);
            BinaryPrimitives.WriteInt64LittleEndian(h[24..], Epoch);
            BinaryPrimitives.WriteInt64LittleEndian(h[32..], Count);
            BinaryPrimitives.WriteInt64LittleEndian(h[40..], MinIndex);
            BinaryPrimitives.WriteInt64LittleEndian(h[48..], MaxIndex);
            BinaryPrimitives.WriteInt64LittleEndian(h[56..], MaxTimestampMs);
            BinaryPrimitives.WriteInt64LittleEndian(h[64..], RecycledUnderSequence);
            BinaryPrimitives.WriteUInt32LittleEndian(h[124..], Crc32C.Compute(h[..124]));
            RandomAccess.Write(Handle, h, 0);
        }

        /// <summary>Empties the table for a new epoch: the slots are zeroed (hole-punched by truncating and re-extending).</summary>
        public void Reset(long epoch, long recycledUnder)
        {
            // The header first says "empty, new epoch" durably, so a crash half-way never shows old entries as new ones.
            Count = 0; MinIndex = 0; MaxIndex = 0; MaxTimestampMs = 0;
            Epoch = epoch;
            RecycledUnderSequence = recycledUnder;
            RandomAccess.SetLength(Handle, HeaderBytes);
            RandomAccess.SetLength(Handle, HeaderBytes + Slots * RecordBytes);
            WriteHeader();
            RandomAccess.FlushToDisk(Handle);
        }

        public void Dispose() => Handle.Dispose();
    }
}

/// <summary>The cold tier cannot take more keys without destroying keys still live: a configuration problem, never silent.</summary>
public sealed class ColdTierFullException(string message) : IOException(message);
