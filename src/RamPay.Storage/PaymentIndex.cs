using System.Numerics;
using RamPay.Core;

namespace RamPay.Storage;

/// <summary>
/// The payment log's index: payment id → its newest record's position + 1 (0 = none), in about 0.25 bytes a payment instead
/// of 8 (issue 10: 1.6 GB at 200 M payments, 8 GB at 1 G). First versions are written a chunk at a time in id order, as
/// consecutive 120-byte records (an open hold of the chunk is skipped, not written), so for each <b>block</b> of 64 ids the
/// index keeps one position (the block's first record in that run) and a 64-bit map of the ids in the run: the record of
/// id i is at <c>base + 120 × (ids of the run below i)</c>. Every other version (a capture, refund or expiry of an older
/// payment; an open hold written later from the pool; the part of a block that a segment's end split off) is an
/// <b>exact</b> entry (id → position) in an open-addressing table, looked up first: it is always newer than the block's.
/// A block with exact entries says so (the top bit of its position word), so an id in any other block, the common case,
/// is found (or found absent) from its block alone: no probe of the table, whose slots are a cache miss each (measured: a
/// start reading 20 M records took twice as long with a probe per record).
/// <para>
/// Blocks are kept in chunks of 2^14 (2^20 ids, 256 KiB), allocated when first written. One writer (the store's thread),
/// readers on any thread: a block's position is written before its map (a reader that sees an id in the map sees its
/// position); an exact entry's position before its id; the exact table is replaced only by a full copy published whole.
/// A reader sees every entry written before it began (the store indexes a generation before making it visible).
/// </para>
/// </summary>
internal sealed class PaymentIndex
{
    public const int BlockShift = 6;                        // 64 ids a block
    public const int ChunkBlockShift = 14;                  // 16,384 blocks a chunk
    public const int ChunkIdShift = BlockShift + ChunkBlockShift; // 2^20 ids a chunk
    public const int ChunkLongs = 2 << ChunkBlockShift;     // (base + 1, map) per block
    private const long RecordBytes = PaymentLogStore.PaymentRecordBytes;
    private const int OffsetBits = 40;
    /// <summary>In a block's position word: some id of the block has an exact entry (set before the entry is added).</summary>
    internal const long HasExact = long.MinValue;

    private long[]?[] _chunks = new long[]?[64];
    private ExactTable _exact = new(1 << 10);
    private long _chunkBytes;

    /// <summary>Bytes of memory held: the block chunks written and the exact table.</summary>
    public long Bytes => Volatile.Read(ref _chunkBytes) + Volatile.Read(ref _exact).Bytes;
    /// <summary>Versions held exactly (not as a block's run).</summary>
    public long ExactEntries => Volatile.Read(ref _exact).Count;
    /// <summary>Chunks up to the highest one written (a checkpoint writes this many).</summary>
    public int ChunkCount
    {
        get
        {
            var chunks = _chunks;
            for (int c = chunks.Length - 1; c >= 0; c--) if (chunks[c] is not null) return c + 1;
            return 0;
        }
    }

    /// <summary>The newest position + 1 of <paramref name="id"/>'s records, 0 when it has none. Any thread.</summary>
    public long Get(long id)
    {
        if (id < 1) return 0;
        long index = id - 1;
        var chunks = Volatile.Read(ref _chunks);
        long c = index >> ChunkIdShift;
        if (c >= chunks.Length) return 0;
        var chunk = Volatile.Read(ref chunks[c]);
        if (chunk is null) return 0; // an exact entry's block always exists (it carries the flag)
        int at = (int)((index >> BlockShift) & ((1 << ChunkBlockShift) - 1)) * 2;
        if (Volatile.Read(ref chunk[at]) < 0)
        {
            long exact = Volatile.Read(ref _exact).Get(id);
            if (exact != 0) return exact;
        }
        ulong map = (ulong)Volatile.Read(ref chunk[at + 1]);
        int bit = (int)(index & 63);
        if ((map >> bit & 1) == 0) return 0;
        // Read after the map: the position was written before it (and never changes once set, but for the flag).
        return (Volatile.Read(ref chunk[at]) & ~HasExact) + RecordBytes * BitOperations.PopCount(map & ((1UL << bit) - 1));
    }

    /// <summary>
    /// Indexes a record of <paramref name="id"/> at <paramref name="position"/> (positions only grow in log order). Returns the
    /// position + 1 it supersedes (0: the payment's first version), or -1 when the index already holds this record or a newer
    /// one (a start from a checkpoint whose chunks were copied after the record was written): nothing changes then.
    /// </summary>
    public long Add(long id, long position)
    {
        Invariant.Check(id >= 1 && position >= 0, "a payment record without an id or position");
        long current = Get(id);
        if (current >= position + 1) return -1;
        if (current != 0 || !TryExtendRun(id, position)) SetExact(id, position + 1);
        return current;
    }

    /// <summary>A first version that continues its block's run (or starts it): its bit set, nothing else stored.</summary>
    private bool TryExtendRun(long id, long position)
    {
        long index = id - 1;
        var chunk = ChunkForWrite(index >> ChunkIdShift);
        int at = (int)((index >> BlockShift) & ((1 << ChunkBlockShift) - 1)) * 2;
        ulong map = (ulong)chunk[at + 1];
        int bit = (int)(index & 63);
        if (map == 0)
        {
            chunk[at] = (chunk[at] & HasExact) | (position + 1);
            Volatile.Write(ref chunk[at + 1], (long)(1UL << bit)); // after the position: a reader that sees the bit sees it
            return true;
        }
        long @base = chunk[at] & ~HasExact;
        int highest = 63 - BitOperations.LeadingZeroCount(map);
        // The next record of the run: above every id in it, right after its last record, in the same segment.
        if (bit <= highest || position + 1 != @base + RecordBytes * BitOperations.PopCount(map) || (@base - 1) >> OffsetBits != position >> OffsetBits) return false;
        Volatile.Write(ref chunk[at + 1], (long)(map | 1UL << bit));
        return true;
    }

    private long[] ChunkForWrite(long c)
    {
        var chunks = _chunks;
        if (c >= chunks.Length)
        {
            var grown = new long[]?[Math.Max(c + 1, chunks.Length * 2L)];
            Array.Copy(chunks, grown, chunks.Length);
            Volatile.Write(ref _chunks, grown);
            chunks = grown;
        }
        var chunk = chunks[c];
        if (chunk is null)
        {
            chunk = new long[ChunkLongs];
            Volatile.Write(ref chunks[c], chunk);
            Volatile.Write(ref _chunkBytes, _chunkBytes + ChunkLongs * 8L);
        }
        return chunk;
    }

    private void SetExact(long id, long positionPlus1)
    {
        // The block says it has exact entries before the entry is there: a reader that finds the flag clear began before.
        long index = id - 1;
        var chunk = ChunkForWrite(index >> ChunkIdShift);
        int at = (int)((index >> BlockShift) & ((1 << ChunkBlockShift) - 1)) * 2;
        if (chunk[at] >= 0) Volatile.Write(ref chunk[at], chunk[at] | HasExact);
        var table = _exact;
        if (!table.Set(id, positionPlus1))
        {
            // Full: a copy twice as large, published whole (readers of the old one see everything written before).
            table = table.Grown();
            Invariant.Check(table.Set(id, positionPlus1), "the payment index's grown exact table is full");
            Volatile.Write(ref _exact, table);
        }
    }

    /// <summary>Payments indexed (ids with any record): the ids in the runs, and the exact entries of ids not in one.</summary>
    public long CountPayments()
    {
        long n = 0;
        foreach (var chunk in _chunks)
            if (chunk is not null)
                for (int at = 1; at < chunk.Length; at += 2) n += BitOperations.PopCount((ulong)chunk[at]);
        foreach (var (id, _) in _exact.Entries())
            if (!InRun(id)) n++;
        return n;
    }

    private bool InRun(long id)
    {
        long index = id - 1;
        long c = index >> ChunkIdShift;
        if (c >= _chunks.Length || _chunks[c] is not { } chunk) return false;
        int at = (int)((index >> BlockShift) & ((1 << ChunkBlockShift) - 1)) * 2;
        return ((ulong)chunk[at + 1] >> (int)(index & 63) & 1) != 0;
    }

    // --- checkpoints ---

    /// <summary>The chunk of ids [c × 2^20 + 1, (c + 1) × 2^20] as stored (null: never written), for a checkpoint (the store's thread).</summary>
    public long[]? Chunk(int c) => c < _chunks.Length ? _chunks[c] : null;

    /// <summary>The exact entries (id, position + 1) as they stand, for a checkpoint (the store's thread).</summary>
    public (long Id, long PositionPlus1)[] ExactSnapshot() => _exact.Entries().ToArray();

    /// <summary>Loads a checkpoint's chunk (format 2) into an index being rebuilt (before any reader).</summary>
    public void LoadChunk(int c, long[] chunk)
    {
        Invariant.Check(chunk.Length == ChunkLongs && (c >= _chunks.Length || _chunks[c] is null), "a payment index chunk of another size, or loaded twice");
        if (c >= _chunks.Length)
        {
            var grown = new long[]?[Math.Max(c + 1, _chunks.Length * 2L)];
            Array.Copy(_chunks, grown, _chunks.Length);
            _chunks = grown;
        }
        _chunks[c] = chunk;
        _chunkBytes += ChunkLongs * 8L;
    }

    public void LoadExact(long id, long positionPlus1)
    {
        Invariant.Check(id >= 1 && positionPlus1 >= 1, "a damaged exact entry in a payment index checkpoint");
        SetExact(id, positionPlus1);
    }

    /// <summary>
    /// Loads one block of a format-1 checkpoint (64 ids → position + 1 each, 8 bytes a payment) into this layout: the run is
    /// taken from the block's earliest record, as the log wrote it; an id whose newest version is later (re-written since)
    /// is exact, and when a later id of the run shows that such ids stood in it (its record is further on by their count),
    /// they are counted in the run as well (their exact entry is read first, so this only keeps the offsets right).
    /// </summary>
    public void ImportBlock(long firstIndex, ReadOnlySpan<long> positionsPlus1)
    {
        Invariant.Check((firstIndex & 63) == 0 && positionsPlus1.Length == 64, "a format-1 block out of place");
        long @base = long.MaxValue;
        foreach (long p in positionsPlus1) if (p != 0 && p < @base) @base = p;
        if (@base == long.MaxValue) return;
        ulong map = 0, pending = 0; // pending: exact ids since the run's last member (they may have been in it)
        int count = 0;
        for (int i = 0; i < 64; i++)
        {
            long p = positionsPlus1[i];
            if (p == 0) continue;
            long expected = @base + RecordBytes * count;
            long gap = (p - expected) / RecordBytes;
            if (p >= expected && (p - expected) % RecordBytes == 0 && (@base - 1) >> OffsetBits == (p - 1) >> OffsetBits && gap <= BitOperations.PopCount(pending))
            {
                for (; gap > 0; gap--)
                {
                    ulong lowest = pending & (~pending + 1);
                    map |= lowest;
                    pending &= ~lowest;
                    count++;
                }
                map |= 1UL << i;
                count++;
                pending = 0;
            }
            else
            {
                SetExact(firstIndex + i + 1, p);
                pending |= 1UL << i;
            }
        }
        long index = firstIndex;
        var chunk = ChunkForWrite(index >> ChunkIdShift);
        int at = (int)((index >> BlockShift) & ((1 << ChunkBlockShift) - 1)) * 2;
        chunk[at] = (chunk[at] & HasExact) | @base; // the flag, if SetExact set it above
        chunk[at + 1] = (long)map;
    }

    /// <summary>
    /// Open addressing, linear probing, id → position + 1; entries are never removed (a payment's newest version only moves
    /// on). Grown at 3/4 full by a copy twice as large. 16 bytes an entry, at 3/8 to 3/4 load.
    /// </summary>
    private sealed class ExactTable
    {
        private readonly long[] _slots; // [2i] id (0 = empty), [2i + 1] position + 1
        private readonly int _shift;
        private readonly long _mask;
        private long _count;

        public ExactTable(long capacity)
        {
            Invariant.Check(capacity >= 16 && (capacity & (capacity - 1)) == 0, "the exact table's capacity is a power of two");
            _slots = new long[capacity * 2];
            _mask = capacity - 1;
            _shift = 64 - BitOperations.Log2((ulong)capacity);
        }

        public long Count => Volatile.Read(ref _count);
        public long Bytes => _slots.Length * 8L;

        private long Home(long id) => (long)(((ulong)id * 0x9E3779B97F4A7C15) >> _shift);

        public long Get(long id)
        {
            for (long i = Home(id), probed = 0; probed <= _mask; i = (i + 1) & _mask, probed++)
            {
                long k = Volatile.Read(ref _slots[2 * i]);
                if (k == id) return Volatile.Read(ref _slots[2 * i + 1]);
                if (k == 0) return 0;
            }
            return 0;
        }

        /// <summary>False when a new id would fill it past 3/4 (the caller grows it).</summary>
        public bool Set(long id, long positionPlus1)
        {
            for (long i = Home(id); ; i = (i + 1) & _mask)
            {
                long k = _slots[2 * i];
                if (k == id)
                {
                    Volatile.Write(ref _slots[2 * i + 1], positionPlus1);
                    return true;
                }
                if (k != 0) continue;
                if ((_count + 1) * 4 > (_mask + 1) * 3) return false;
                _slots[2 * i + 1] = positionPlus1;
                Volatile.Write(ref _slots[2 * i], id); // after its position: a reader that finds the id finds the position
                Volatile.Write(ref _count, _count + 1);
                return true;
            }
        }

        public ExactTable Grown()
        {
            var grown = new ExactTable((_mask + 1) * 2);
            foreach (var (id, p) in Entries()) Invariant.Check(grown.Set(id, p), "the payment index's grown exact table is full");
            return grown;
        }

        public IEnumerable<(long Id, long PositionPlus1)> Entries()
        {
            for (long i = 0; i <= _mask; i++)
                if (_slots[2 * i] != 0) yield return (_slots[2 * i], _slots[2 * i + 1]);
        }
    }
}
