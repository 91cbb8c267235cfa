using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;
using RamPay.Core;
using RamPay.Journal;

namespace RamPay.Storage;

/// <summary>Where the payments' cold tier lives.</summary>
public sealed record PaymentLogStoreOptions
{
    public required string Directory { get; init; }
    /// <summary>Bytes per segment file before the next one starts (the unit a restart reads and, later, compaction would rewrite).</summary>
    public long SegmentBytes { get; init; } = 256L * 1024 * 1024;
    /// <summary>The journal sequence known durable (a version is written only once the command that made it is).</summary>
    public Func<long> DurableSequence { get; init; } = static () => long.MaxValue;
    /// <summary>fsync each written generation before it becomes visible. Off only in tests and benchmarks.</summary>
    public bool Fsync { get; init; } = true;
    /// <summary>Closed generations waiting to be written, at most (the ledger's in-flight bound keeps it below this).</summary>
    public int MaxQueuedGenerations { get; init; } = 64;
    /// <summary>
    /// Keep, in memory, where the older versions of re-written payments are, until a follower (the snapshotter's replica) has
    /// passed them (<see cref="PaymentLogStore.FollowerAt"/>): it reads the version of its own state, not the newest. On when
    /// the engine runs a snapshotter; a few bytes per payment re-written within the follower's lag.
    /// </summary>
    public bool KeepPriorVersions { get; init; }
    /// <summary>
    /// Bytes read at once when the start reads the log through (<see cref="PaymentLogStore.Recover"/>). One read per block, not
    /// two per record: at 120 bytes a record the start otherwise made ~17 M reads a GB of log (minutes at 100 M payments).
    /// </summary>
    public int RecoveryReadBytes { get; init; } = 1 << 20;
    /// <summary>
    /// Log bytes written between two index checkpoints (<c>payments-index-*.ckpt</c>: the id index, notes and written spans
    /// as of a point in the log), so a start reads a checkpoint and the log after it instead of the whole log. The interval
    /// is at least twice the index's size (checkpoints then cost at most half the log's write bandwidth). 0: none.
    /// </summary>
    public long CheckpointEveryBytes { get; init; } = 1L << 30;
    /// <summary>Checkpoints kept, newest first: a start uses the newest one not after the state it recovers (the snapshot).</summary>
    public int CheckpointsToKeep { get; init; } = 3;
    /// <summary>The interval is at least this many times the index's size (tests set 0 to checkpoint tiny logs).</summary>
    public int CheckpointIndexMultiple { get; init; } = 2;
    /// <summary>
    /// The lowest position a later start may need an index checkpoint at or before (the sinks' restart point: the journal
    /// retention anchor, <c>RamPayEngine</c>), asked when older checkpoints are deleted; long.MinValue (or null): none. The newest
    /// checkpoint at or before it is kept besides the newest <see cref="CheckpointsToKeep"/>: without it, sinks lagging more than
    /// the kept checkpoints span made the next start read the whole log (their follower may not read before the checkpoint).
    /// </summary>
    public Func<long>? KeepCheckpointAtOrBefore { get; init; }
    public ILogger Logger { get; init; } = NullLogger.Instance;

    public void Validate()
    {
        if (CheckpointEveryBytes < 0) throw new ArgumentException("CheckpointEveryBytes must not be negative");
        if (CheckpointsToKeep < 1) throw new ArgumentException("CheckpointsToKeep must be at least 1");
        if (RecoveryReadBytes < 1) throw new ArgumentException("RecoveryReadBytes must be positive");
        if (string.IsNullOrWhiteSpace(Directory)) throw new ArgumentException("the payments' cold tier needs a directory");
        if (SegmentBytes < 4096 || SegmentBytes > (1L << 40)) throw new ArgumentException("SegmentBytes must be within 4 KiB..1 TiB");
        if (MaxQueuedGenerations < 2) throw new ArgumentException("MaxQueuedGenerations must be at least 2");
    }
}

/// <summary>
/// The payments' cold tier (rules version 3), log-structured: every version of a payment that leaves memory, and each
/// payment's note once, is appended to <c>payments-NNNNNN.log</c> segment files in the order the writer closed its
/// generations (which is the order of the ledger's applied-command count, each record's stamp). An in-memory index maps
/// each payment id (ids are dense, from 1) to its newest record: 8 bytes a payment, in chunks of 2^20 ids. A read is one
/// <c>pread</c> of 120 bytes; a payment never written (a recent one) is a miss answered from memory.
/// <para>
/// Layout (docs/storage.md, "Payments"; golden files in tests/RamPay.Engine.Tests/Golden/coldpayments-v1): a 64-byte
/// header (magic, format 1, segment number, CRC32C), then records aligned to 8 bytes: u16 type (1 payment, 2 note), u16
/// body length, u32 CRC32C (of the type, length, stamp and body), i64 stamp, body (a payment: its 100-byte encoding,
/// <see cref="PaymentCodec"/>; a note: the payment id and the note's encoding).
/// </para>
/// <para>
/// Crash safety: a generation is written only once the journal is durable through its stamp, then fsynced, then indexed,
/// then made visible. At start (<see cref="Recover"/>) the log is read through; a torn or damaged record in the newest
/// segment ends it (never visible: the replay writes it again); one in an older segment, a missing segment or a damaged
/// header stop the start with a message; records stamped after the recovered state are cut (the replay makes them again).
/// Nothing is ever deleted: an old version's space is garbage (counted in <see cref="GarbageRecords"/>); compaction is
/// future work (docs/storage.md).
/// </para>
/// <para>Threads: <see cref="TryRead"/> and <see cref="ReadNote"/> from any thread; <see cref="Flush"/> from the writer; one background thread writes.</para>
/// </summary>
public sealed class PaymentLogStore : IColdPaymentStore, IDisposable
{
    public const int HeaderBytes = 64;
    public const int RecordHeaderBytes = 16;
    public const int PaymentRecordBytes = 120; // 16 + 100, aligned to 8
    public const ushort PaymentRecord = 1, NoteRecord = 2;
    private const ulong SegmentMagic = 0x474F4C5941505052; // "RPPAYLOG" little-endian
    private const int FormatVersion = 1;
    private const int V1IndexShift = 20; // a format-1 checkpoint's chunk: 2^20 ids of 8 bytes
    private const int OffsetBits = 40;

    private readonly PaymentLogStoreOptions _options;
    private readonly object _gate = new();
    private readonly PaymentBatch?[] _queue;
    private int _queueHead, _queueCount;
    private bool _stopping;
    private Exception? _fault;
    private long _visible;
    private Thread? _thread;
    private bool _recovered;

    // Index: id -> position + 1 (segment number << 40 | offset); 0 = never written. Written by the store's thread only
    // (PaymentIndex: one position per block of 64 first versions, exact entries for the rest).
    private PaymentIndex _index = new();
    private readonly Dictionary<long, long> _notes = [];
    private SafeFileHandle?[] _segments = new SafeFileHandle?[16];
    private long _segmentNumber;      // the newest segment
    private long _segmentLength;      // its length in bytes
    private byte[] _buffer = new byte[1 << 16];

    private long _recordsWritten, _garbage, _diskBytes, _reads, _payments, _paymentRecords;
    private long _lastCheckpointAt;                     // _diskBytes when the last checkpoint began
    private byte[]? _zeroChunk;
    private CheckpointWork? _checkpoint;                // the one being written, a chunk per generation
    private long _checkpointsWritten;

    // For a follower (the snapshotter's replica), under _spanGate: the written generations in log order, each with its stamp,
    // its first and end positions and the highest chunk id written through it, so that a position maps to its stamp with no
    // I/O; and where the previous version of each re-written payment is (newer record's position -> older's), kept until the
    // follower has passed the newer one (KeepPriorVersions).
    private readonly object _spanGate = new();
    private readonly List<WrittenSpan> _spans = [];
    private readonly Dictionary<long, long> _prior = [];
    private readonly Queue<long> _priorOrder = new();
    // Followers (the snapshotter's replica, the sinks' replica): each one's position; the floor is the lowest, and a link is
    // forgotten only once every follower has passed its newer version. Never lowered: a follower that would need a link
    // already forgotten cannot join (AddFollower refuses it).
    private readonly List<long> _followers = [];   // by handle; long.MaxValue = removed
    private long _followerFloor = long.MinValue;
    private long _coveredId;

    private readonly record struct WrittenSpan(long Stamp, long Start, long End, long CoveredId);

    public PaymentLogStore(PaymentLogStoreOptions options)
    {
        options.Validate();
        _options = options;
        _queue = new PaymentBatch?[options.MaxQueuedGenerations];
        System.IO.Directory.CreateDirectory(options.Directory);
    }

    public long VisibleGeneration => Volatile.Read(ref _visible);
    public Exception? Fault => Volatile.Read(ref _fault);
    public long RecordsWritten => Volatile.Read(ref _recordsWritten);
    /// <summary>Records superseded by a newer version of the same payment (space a compaction would give back).</summary>
    public long GarbageRecords => Volatile.Read(ref _garbage);
    public long DiskBytes => Volatile.Read(ref _diskBytes);
    /// <summary>Reads the start made to read the log through (about one per <see cref="PaymentLogStoreOptions.RecoveryReadBytes"/>).</summary>
    public long RecoveryReads { get; private set; }
    public long ReadsIssued => Volatile.Read(ref _reads);
    /// <summary>Payments with at least one version in the store.</summary>
    public long Payments => Volatile.Read(ref _payments);
    /// <summary>Bytes of memory the id index holds (about 0.25 a payment written in order, 16 to 43 a re-written one).</summary>
    public long IndexBytes => Volatile.Read(ref _index).Bytes;
    /// <summary>Payment versions the index holds exactly (re-written payments, first versions written out of id order).</summary>
    public long IndexExactEntries => Volatile.Read(ref _index).ExactEntries;

    public static string SegmentName(long number) => $"payments-{number:D6}.log";
    public static string CheckpointName(long stamp) => $"payments-index-{stamp:D20}.ckpt";
    private const string CheckpointTemp = "payments-index.ckpt.tmp";

    /// <summary>How the last start rebuilt the index: from which checkpoint and how much log after it, or the whole log and why.</summary>
    public string RecoveredFrom { get; private set; } = "";
    /// <summary>Set when a start had to read the whole log although checkpoints were there (damaged, or after the state recovered).</summary>
    public string? RecoveryWarning { get; private set; }
    /// <summary>Log bytes the last start read (the tail after its checkpoint, or the whole log).</summary>
    public long RecoveryLogBytes { get; private set; }
    public long CheckpointsWritten => Volatile.Read(ref _checkpointsWritten);

    // --- recovery ---

    public void Recover(long commandsApplied)
    {
        lock (_gate)
        {
            Invariant.Check(_queueCount == 0, "the payments' cold tier was recovered with generations queued");
            _visible = 0;
        }
        lock (_spanGate)
            for (int i = 0; i < _followers.Count; i++)
                if (_followers[i] == FollowerAtRecoveredState) _followers[i] = commandsApplied;
        if (_recovered) throw new InvalidOperationException("the payments' cold tier is recovered once, when its ledger is made");
        _recovered = true;
        var numbers = new List<long>();
        foreach (var path in System.IO.Directory.EnumerateFiles(_options.Directory, "payments-*.log"))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (!long.TryParse(name.AsSpan("payments-".Length), out long n) || n < 1 || SegmentName(n) != Path.GetFileName(path))
                throw new InvalidDataException($"unexpected file {path} in the payments' cold tier");
            numbers.Add(n);
        }
        numbers.Sort();
        for (int i = 0; i < numbers.Count; i++)
            if (numbers[i] != i + 1) throw new InvalidDataException($"the payments' cold tier misses segment {SegmentName(i + 1)} (found {SegmentName(numbers[i])})");

        long previousStamp = long.MinValue;
        bool cut = false;
        var scan = new SegmentScan(_options.RecoveryReadBytes);
        long spanStamp = -1, spanStart = 0, spanEnd = 0, spanCovered = 0;
        var checkpoint = LoadCheckpoint(commandsApplied, numbers.Count);
        long tailBytes = 0;
        for (int i = 0; i < numbers.Count; i++)
        {
            long number = numbers[i];
            string path = Path.Combine(_options.Directory, SegmentName(number));
            if (cut)
            {
                File.Delete(path);
                continue;
            }
            bool newest = i == numbers.Count - 1;
            var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
            SetSegment(number, handle);
            long length = RandomAccess.GetLength(handle);
            CheckHeader(handle, number, path, length);
            long offset = HeaderBytes;
            if (checkpoint is not null && number < checkpoint.Start >> OffsetBits)
            {
                // Before the checkpoint: indexed by it, and whole (it was written after these were).
                _diskBytes += length;
                continue;
            }
            if (checkpoint is not null && number == checkpoint.Start >> OffsetBits) offset = checkpoint.Start & ((1L << OffsetBits) - 1);
            long scanFrom = offset;
            scan.Start(handle, length);
            while (offset < length)
            {
                string? problem = ReadRecord(scan, offset, length, out ushort type, out ReadOnlySpan<byte> body, out long stamp);
                if (problem is not null)
                {
                    if (!newest) throw new InvalidDataException($"{path}: {problem} at offset {offset} in an older segment: the payments' cold tier is damaged");
                    break; // a torn tail: never visible, the replay writes it again
                }
                if (stamp < previousStamp) throw new InvalidDataException($"{path}: record at offset {offset} is stamped {stamp}, before {previousStamp}");
                if (stamp > commandsApplied)
                {
                    cut = true; // written after the recovered state: the replay makes it again
                    break;
                }
                previousStamp = stamp;
                long position = number << OffsetBits | offset;
                if (stamp != spanStamp)
                {
                    if (spanStamp >= 0) AddSpan(spanStamp, spanStart, spanEnd, spanCovered);
                    spanStamp = stamp;
                    spanStart = position;
                }
                if (type == PaymentRecord)
                {
                    long id = PaymentCodec.Decode(body).Id;
                    _paymentRecords++;
                    IndexPayment(id, position);
                    spanCovered = Math.Max(spanCovered, id); // first versions come a chunk at a time, in id order
                }
                else lock (_notes) _notes[BinaryPrimitives.ReadInt64LittleEndian(body)] = position;
                _recordsWritten++;
                offset += Align(RecordHeaderBytes + body.Length);
                spanEnd = number << OffsetBits | offset;
            }
            if (offset < length)
            {
                RandomAccess.SetLength(handle, offset);
                if (_options.Fsync) RandomAccess.FlushToDisk(handle);
            }
            _segmentNumber = number;
            _segmentLength = offset;
            _diskBytes += offset;
            tailBytes += offset - scanFrom;
        }
        if (spanStamp >= 0) AddSpan(spanStamp, spanStart, spanEnd, spanCovered);
        if (checkpoint is not null)
        {
            // The checkpoint's chunks were copied over several generations: a record in the tail may already be in them
            // (IndexPayment skips it), so the counts are taken from the index as it now stands.
            long payments = _index.CountPayments();
            _payments = payments;
            _garbage = _paymentRecords - payments;
            RecoveredFrom = $"checkpoint {CheckpointName(checkpoint.Stamp)} (stamp {checkpoint.Stamp:N0}) and {tailBytes:N0} bytes of log after it";
        }
        else if (RecoveredFrom.Length == 0) RecoveredFrom = $"the whole log ({tailBytes:N0} bytes)";
        RecoveryLogBytes = tailBytes;
        // After reading a whole log of an interval or more, the next generation begins a checkpoint (the next start is short).
        _lastCheckpointAt = checkpoint is not null ? _diskBytes - tailBytes : tailBytes >= _options.CheckpointEveryBytes ? long.MinValue / 2 : 0;
        RecoveryReads = scan.Reads;
        if (cut) SyncDirectory();
        if (_segmentNumber == 0) NewSegment();
        _thread = new Thread(Run) { IsBackground = true, Name = "rampay-cold-payments" };
        _thread.Start();
    }

    private static void CheckHeader(SafeFileHandle handle, long number, string path, long length)
    {
        var h = new byte[HeaderBytes];
        if (length < HeaderBytes || RandomAccess.Read(handle, h, 0) != HeaderBytes || BinaryPrimitives.ReadUInt64LittleEndian(h) != SegmentMagic
            || BinaryPrimitives.ReadInt32LittleEndian(h.AsSpan(8)) != FormatVersion || BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(16)) != number
            || BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(60)) != Crc32C.Compute(h.AsSpan(0, 60)))
            throw new InvalidDataException($"{path}: the segment header is damaged or not of this format (format {FormatVersion})");
    }

    /// <summary>Null when the record at <paramref name="offset"/> is whole and checks, else what is wrong with it.</summary>
    private static string? ReadRecord(SegmentScan scan, long offset, long length, out ushort type, out ReadOnlySpan<byte> body, out long stamp)
    {
        type = 0; body = default; stamp = 0;
        if (length - offset < RecordHeaderBytes) return "a torn record header";
        var head = scan.Read(offset, RecordHeaderBytes);
        if (head.Length != RecordHeaderBytes) return "a torn record header";
        type = BinaryPrimitives.ReadUInt16LittleEndian(head);
        int bodyLength = BinaryPrimitives.ReadUInt16LittleEndian(head[2..]);
        uint crc = BinaryPrimitives.ReadUInt32LittleEndian(head[4..]);
        stamp = BinaryPrimitives.ReadInt64LittleEndian(head[8..]);
        bool sized = type == PaymentRecord ? bodyLength == PaymentCodec.RecordBytes : type == NoteRecord && bodyLength > 8 && bodyLength <= 8 + PaymentNote.MaxEncodedBytes;
        if (!sized) return $"a record of type {type} and length {bodyLength}";
        if (length - offset < RecordHeaderBytes + bodyLength) return "a torn record";
        // Header and body in one span (the scan may refill its buffer here: head is not used after this).
        var record = scan.Read(offset, RecordHeaderBytes + bodyLength);
        if (record.Length != RecordHeaderBytes + bodyLength) return "a torn record";
        body = record[RecordHeaderBytes..];
        if (RecordCrc(record[..RecordHeaderBytes], body) != crc) return "a record whose CRC does not match";
        return null;
    }

    /// <summary>
    /// A segment read front to back in blocks of <see cref="PaymentLogStoreOptions.RecoveryReadBytes"/> for the start's pass
    /// (the buffer grows for a record larger than a block). A span it returns is valid until the next <see cref="Read"/>.
    /// </summary>
    private sealed class SegmentScan(int blockBytes)
    {
        private byte[] _buffer = new byte[blockBytes];
        private SafeFileHandle? _handle;
        private long _length, _start;
        private int _count;

        public long Reads { get; private set; }

        public void Start(SafeFileHandle handle, long length)
        {
            _handle = handle;
            _length = length;
            _start = 0;
            _count = 0;
        }

        /// <summary>The bytes at [offset, offset + count), fewer only where the file ends.</summary>
        public ReadOnlySpan<byte> Read(long offset, int count)
        {
            if (offset < _start || offset + count > _start + _count)
            {
                if (count > _buffer.Length) _buffer = new byte[count];
                int want = (int)Math.Min(_buffer.Length, _length - offset);
                int n = 0;
                while (n < want)
                {
                    int r = RandomAccess.Read(_handle!, _buffer.AsSpan(n, want - n), offset + n);
                    Reads++;
                    if (r == 0) break;
                    n += r;
                }
                _start = offset;
                _count = n;
            }
            return _buffer.AsSpan((int)(offset - _start), (int)Math.Max(0, Math.Min(count, _start + _count - offset)));
        }
    }

    private static uint RecordCrc(ReadOnlySpan<byte> head, ReadOnlySpan<byte> body) =>
        Crc32C.Append(Crc32C.Append(Crc32C.Compute(head[..4]), head.Slice(8, 8)), body);

    private static int Align(int n) => (n + 7) & ~7;

    private void IndexPayment(long id, long position)
    {
        // Positions grow in log order, so only a start from a checkpoint meets an id indexed at or past this record (the
        // checkpoint's chunk was copied after the record was written): already indexed, and its newer version kept.
        long older = _index.Get(id);
        if (older >= position + 1) return;
        if (older == 0) _payments++;
        else
        {
            _garbage++;
            // Before the index names the newer version: a follower that finds it too new then finds this link.
            if (_options.KeepPriorVersions)
                lock (_spanGate)
                {
                    _prior[position] = older - 1;
                    _priorOrder.Enqueue(position);
                }
        }
        long superseded = _index.Add(id, position);
        Invariant.Check(superseded == older, "the payment index changed under its only writer");
    }

    private long PositionOf(long id) => Volatile.Read(ref _index).Get(id);

    // --- reads (any thread) ---

    public bool TryRead(long id, out Payment payment)
    {
        payment = default;
        long position = PositionOf(id);
        if (position == 0) return false;
        payment = ReadPaymentAt(id, position - 1);
        return true;
    }

    public bool TryRead(long id, out Payment payment, out long version)
    {
        payment = default;
        version = PositionOf(id);
        if (version == 0) return false;
        payment = ReadPaymentAt(id, version - 1);
        return true;
    }

    /// <summary>The newest version's position + 1 (positions only grow: a later version is a later record), 0 = none. No I/O.</summary>
    public long NewestVersion(long id) => PositionOf(id);

    private Payment ReadPaymentAt(long id, long position)
    {
        Span<byte> record = stackalloc byte[PaymentRecordBytes];
        var handle = Segment(position >> OffsetBits);
        Interlocked.Increment(ref _reads);
        int read = RandomAccess.Read(handle, record[..(RecordHeaderBytes + PaymentCodec.RecordBytes)], position & ((1L << OffsetBits) - 1));
        // Checked where it is read back as where it was written: a damaged record is a crash, not a wrong payment.
        if (read != RecordHeaderBytes + PaymentCodec.RecordBytes || BinaryPrimitives.ReadUInt16LittleEndian(record) != PaymentRecord
            || RecordCrc(record, record.Slice(RecordHeaderBytes, PaymentCodec.RecordBytes)) != BinaryPrimitives.ReadUInt32LittleEndian(record[4..]))
            throw new InvalidDataException($"payment {id}'s record in the cold tier is damaged");
        var payment = PaymentCodec.Decode(record[RecordHeaderBytes..]);
        Invariant.Check(payment.Id == id, "the payments' cold index points at another payment");
        return payment;
    }

    public byte[]? ReadNote(long id)
    {
        long position;
        lock (_notes) if (!_notes.TryGetValue(id, out position)) return null;
        var handle = Segment(position >> OffsetBits);
        var head = new byte[RecordHeaderBytes];
        long offset = position & ((1L << OffsetBits) - 1);
        RandomAccess.Read(handle, head, offset);
        int length = BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(2));
        var body = new byte[length];
        Interlocked.Increment(ref _reads);
        if (BinaryPrimitives.ReadUInt16LittleEndian(head) != NoteRecord || RandomAccess.Read(handle, body, offset + RecordHeaderBytes) != length
            || RecordCrc(head, body) != BinaryPrimitives.ReadUInt32LittleEndian(head.AsSpan(4)) || BinaryPrimitives.ReadInt64LittleEndian(body) != id)
            throw new InvalidDataException($"payment {id}'s note in the cold tier is damaged");
        return body[8..];
    }

    private SafeFileHandle Segment(long number)
    {
        var segments = Volatile.Read(ref _segments);
        return (number < segments.Length ? segments[number] : null) ?? throw new InvalidDataException($"segment {number} of the payments' cold tier is not open");
    }

    private void SetSegment(long number, SafeFileHandle handle)
    {
        lock (_gate)
        {
            var segments = _segments;
            if (number >= segments.Length)
            {
                var grown = new SafeFileHandle?[Math.Max(number + 1, segments.Length * 2L)];
                Array.Copy(segments, grown, segments.Length);
                segments = grown;
            }
            segments[number] = handle;
            Volatile.Write(ref _segments, segments);
        }
    }

    // --- a follower's reads (the snapshotter's replica: versions by stamp) ---

    private void AddSpan(long stamp, long start, long end, long covered)
    {
        lock (_spanGate)
        {
            Invariant.Check(_spans.Count == 0 || _spans[^1].Stamp <= stamp && _spans[^1].End <= start, "payment generations written out of order");
            _coveredId = Math.Max(_coveredId, covered);
            _spans.Add(new WrittenSpan(stamp, start, end, _coveredId));
            PrunePriorLocked();
        }
    }

    /// <summary>The stamp of the record at <paramref name="position"/>, or -1 while its generation is not yet published.</summary>
    private long StampOfLocked(long position)
    {
        int lo = 0, hi = _spans.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var s = _spans[mid];
            if (position < s.Start) hi = mid - 1;
            else if (position >= s.End) lo = mid + 1;
            else return s.Stamp;
        }
        return -1;
    }

    public long StampAtOrBefore(long id, long maxStamp) => StampAtOrBefore(id, maxStamp, out _);

    private long StampAtOrBefore(long id, long maxStamp, out long position)
    {
        position = PositionOf(id) - 1;
        if (position < 0) return -1;
        lock (_spanGate)
        {
            while (true)
            {
                long stamp = StampOfLocked(position);
                if (stamp >= 0 && stamp <= maxStamp) return stamp;
                // Too new for the follower (or not yet published): the version before it, if one was kept.
                if (!_prior.TryGetValue(position, out long older)) return -1;
                position = older;
            }
        }
    }

    public bool TryReadAtOrBefore(long id, long maxStamp, out Payment payment)
    {
        payment = default;
        if (StampAtOrBefore(id, maxStamp, out long position) < 0) return false;
        payment = ReadPaymentAt(id, position);
        return true;
    }

    public long WrittenThroughId(long maxStamp)
    {
        lock (_spanGate)
        {
            int lo = 0, hi = _spans.Count - 1, found = -1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >>> 1;
                if (_spans[mid].Stamp <= maxStamp) { found = mid; lo = mid + 1; }
                else hi = mid - 1;
            }
            return found < 0 ? 0 : _spans[found].CoveredId;
        }
    }

    public bool HasNote(long id)
    {
        lock (_notes) return _notes.ContainsKey(id);
    }

    /// <summary>
    /// A follower registered before the start whose position will be the recovered state's (the snapshotter's replica, which
    /// loads the snapshot the writer recovers from): <see cref="Recover"/> sets it, and a start from a checkpoint is then fine.
    /// </summary>
    public const long FollowerAtRecoveredState = long.MinValue + 1;

    /// <summary>
    /// The stamp of the index checkpoint the last start used (0: it read the whole log). A follower never reads at a position
    /// before it: the links to older versions of payments re-written before it are not in the index (docs/storage.md).
    /// </summary>
    public long LinkedFrom { get; private set; }

    /// <summary>
    /// Registers a follower whose state is at <paramref name="stamp"/> (<see cref="long.MinValue"/>: not known yet, keep every
    /// older version until it says where it is; <see cref="FollowerAtRecoveredState"/>: the state the start recovers). Registered
    /// before the start at a known lowest position, it lets the start use an index checkpoint at or before that position.
    /// Refused when a version it may need was already forgotten.
    /// </summary>
    public int AddFollower(long stamp)
    {
        lock (_spanGate)
        {
            if (stamp == FollowerAtRecoveredState && _recovered) throw new InvalidOperationException("a follower at the recovered state registers before the start");
            if (stamp < _followerFloor && stamp > FollowerAtRecoveredState || stamp <= FollowerAtRecoveredState && _followerFloor != long.MinValue)
                throw new InvalidOperationException($"a follower at {stamp} cannot join the payments' cold tier: versions up to {_followerFloor} were forgotten " +
                    "(register it when the store is opened: KeepPriorVersions)");
            _followers.Add(stamp);
            return _followers.Count - 1;
        }
    }

    public void FollowerAt(int follower, long stamp)
    {
        lock (_spanGate)
        {
            Invariant.Check(follower >= 0 && follower < _followers.Count && _followers[follower] != long.MaxValue, "an unknown follower of the payments' cold tier");
            if (stamp <= _followers[follower]) return;
            _followers[follower] = stamp;
            RaiseFloorLocked();
        }
    }

    public void RemoveFollower(int follower)
    {
        lock (_spanGate)
        {
            if (follower < 0 || follower >= _followers.Count || _followers[follower] == long.MaxValue) return;
            _followers[follower] = long.MaxValue;
            RaiseFloorLocked();
        }
    }

    /// <summary>Where the follower stands (its registered lowest position until it reports one), or long.MaxValue once removed.</summary>
    public long FollowerPosition(int follower)
    {
        lock (_spanGate) return follower >= 0 && follower < _followers.Count ? _followers[follower] : long.MaxValue;
    }

    /// <summary>Followers registered and not removed (for tests and metrics).</summary>
    public int Followers { get { lock (_spanGate) return _followers.Count(f => f != long.MaxValue); } }

    private void RaiseFloorLocked()
    {
        long floor = long.MaxValue;
        foreach (long f in _followers) floor = Math.Min(floor, f);
        // No follower left: links are no longer needed by anyone, but a later one could need them; keep the floor where it was.
        if (floor == long.MaxValue || floor <= _followerFloor) return;
        _followerFloor = floor;
        PrunePriorLocked();
    }

    /// <summary>Links whose newer version is stamped at or before the follower's position: it never reads behind those.</summary>
    private void PrunePriorLocked()
    {
        while (_priorOrder.TryPeek(out long newer))
        {
            long stamp = StampOfLocked(newer);
            if (stamp < 0 || stamp > _followerFloor) return;
            _priorOrder.Dequeue();
            _prior.Remove(newer);
        }
    }

    /// <summary>Older versions kept for a follower (for tests and sizing).</summary>
    public int PriorVersionsKept { get { lock (_spanGate) return _prior.Count; } }

    public void WaitWrittenThrough(long stamp, int timeoutMs)
    {
        long deadline = Environment.TickCount64 + timeoutMs;
        lock (_gate)
        {
            while (_queueCount > 0 && _queue[_queueHead]!.Stamp <= stamp && !_stopping && Environment.TickCount64 < deadline)
            {
                if (_fault is not null) throw new IOException("the payments' cold tier's writer failed", _fault);
                Monitor.Wait(_gate, 20);
            }
        }
    }

    // --- writes ---

    public void Flush(PaymentBatch batch)
    {
        lock (_gate)
        {
            Invariant.Check(_queueCount < _queue.Length, "the payments' cold tier's queue of generations is full");
            _queue[(_queueHead + _queueCount) % _queue.Length] = batch;
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
                if (_fault is not null) throw new IOException("the payments' cold tier's writer failed", _fault);
                Monitor.Wait(_gate, 100);
            }
        }
    }

    private void Run()
    {
        try
        {
            while (true)
            {
                PaymentBatch batch;
                lock (_gate)
                {
                    while (_queueCount == 0 && !_stopping) Monitor.Wait(_gate);
                    if (_queueCount == 0) return;
                    batch = _queue[_queueHead]!;
                }
                // Never write a version whose command the journal could still lose: recovery must not find it.
                var spin = new SpinWait();
                while (_options.DurableSequence() < batch.Stamp)
                {
                    if (Volatile.Read(ref _stopping)) return;
                    spin.SpinOnce(sleep1Threshold: 10);
                }
                Write(batch);
                lock (_gate)
                {
                    _queue[_queueHead] = null;
                    _queueHead = (_queueHead + 1) % _queue.Length;
                    _queueCount--;
                    Volatile.Write(ref _visible, batch.Generation);
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

    /// <summary>Appends one generation (notes, then payments), fsyncs, then indexes it. Visible once this returns.</summary>
    private void Write(PaymentBatch batch)
    {
        _pending.Clear();
        int n = 0;
        long start = _segmentNumber << OffsetBits | _segmentLength;
        for (int j = 0; j < batch.ChunkLength; j++)
        {
            if (batch.Notes[j] is not { } note) continue;
            byte[] bytes = note.Encode();
            // An open hold is not copied (it stays hot), but its note is written with its chunk all the same.
            long id = batch.ChunkFirstId + j;
            int at = Begin(ref n, bytes.Length + 8);
            BinaryPrimitives.WriteInt64LittleEndian(_buffer.AsSpan(at + RecordHeaderBytes), id);
            bytes.CopyTo(_buffer.AsSpan(at + RecordHeaderBytes + 8));
            End(ref n, at, batch.Stamp, NoteRecord, bytes.Length + 8, id);
        }
        for (int j = 0; j < batch.ChunkLength + batch.PoolCount; j++)
        {
            ref var p = ref batch.Items[j];
            if (p.Id == 0) continue; // an open hold of the chunk: stays hot
            Invariant.Check(j >= batch.ChunkLength || p.Id == batch.ChunkFirstId + j, "a closed chunk's copy is out of place");
            int at = Begin(ref n, PaymentCodec.RecordBytes);
            PaymentCodec.Encode(_buffer.AsSpan(at + RecordHeaderBytes), p);
            End(ref n, at, batch.Stamp, PaymentRecord, PaymentCodec.RecordBytes, p.Id);
        }
        FlushBuffer(ref n);
        if (_options.Fsync) RandomAccess.FlushToDisk(Segment(_segmentNumber));
        foreach (var (id, position, type) in _pending)
        {
            if (type == NoteRecord) lock (_notes) _notes[id] = position;
            else
            {
                _paymentRecords++;
                IndexPayment(id, position);
            }
        }
        Volatile.Write(ref _recordsWritten, _recordsWritten + _pending.Count);
        long covered = batch.ChunkLength > 0 ? batch.ChunkFirstId + batch.ChunkLength - 1 : 0;
        AddSpan(batch.Stamp, start, _segmentNumber << OffsetBits | _segmentLength, covered);
        CheckpointStep(batch.Stamp);
    }

    private readonly List<(long Id, long Position, ushort Type)> _pending = [];

    /// <summary>Room for one record in the write buffer (starting a new segment when this one is full); returns where it starts.</summary>
    private int Begin(ref int n, int bodyLength)
    {
        int size = Align(RecordHeaderBytes + bodyLength);
        if (_segmentLength + n + size > _options.SegmentBytes && _segmentLength + n > HeaderBytes)
        {
            FlushBuffer(ref n);
            if (_options.Fsync) RandomAccess.FlushToDisk(Segment(_segmentNumber));
            NewSegment();
        }
        if (n + size > _buffer.Length) FlushBuffer(ref n);
        _buffer.AsSpan(n, size).Clear();
        return n;
    }

    private void End(ref int n, int at, long stamp, ushort type, int bodyLength, long id)
    {
        var record = _buffer.AsSpan(at, Align(RecordHeaderBytes + bodyLength));
        BinaryPrimitives.WriteUInt16LittleEndian(record, type);
        BinaryPrimitives.WriteUInt16LittleEndian(record[2..], (ushort)bodyLength);
        BinaryPrimitives.WriteInt64LittleEndian(record[8..], stamp);
        BinaryPrimitives.WriteUInt32LittleEndian(record[4..], RecordCrc(record, record.Slice(RecordHeaderBytes, bodyLength)));
        _pending.Add((id, _segmentNumber << OffsetBits | (_segmentLength + at), type));
        n = at + record.Length;
    }

    private void FlushBuffer(ref int n)
    {
        if (n == 0) return;
        RandomAccess.Write(Segment(_segmentNumber), _buffer.AsSpan(0, n), _segmentLength);
        _segmentLength += n;
        Volatile.Write(ref _diskBytes, _diskBytes + n);
        n = 0;
    }

    private void NewSegment()
    {
        long number = _segmentNumber + 1;
        string path = Path.Combine(_options.Directory, SegmentName(number));
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        var h = new byte[HeaderBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(h, SegmentMagic);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(8), FormatVersion);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(16), number);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(60), Crc32C.Compute(h.AsSpan(0, 60)));
        RandomAccess.Write(handle, h, 0);
        if (_options.Fsync)
        {
            RandomAccess.FlushToDisk(handle);
            SyncDirectory();
        }
        SetSegment(number, handle);
        _segmentNumber = number;
        _segmentLength = HeaderBytes;
        Volatile.Write(ref _diskBytes, _diskBytes + HeaderBytes);
    }

    private void SyncDirectory() => OsJournalFileSystem.Instance.FlushDirectory(_options.Directory);

    // --- index checkpoints (bounded restarts) ---

    //   0 u64 magic "RPPAYIDX"   8 i32 format (2; 1 is still read)   12 i32 ids a chunk, as a shift (20)   16 i64 stamp (every
    //   record up to the end position is stamped at or before it)   24 i64 start position (segment << 40 | offset: the log
    //   is read from here)   32 i64 chunks   40 i64 notes   48 i64 spans   56 i64 records written before start   64 i64
    //   payment records before start   72 i64 exact entries (format 2)   80 i32 ids a block, as a shift (6; format 2)
    //   84..120 zero   120 u32 CRC32C of the body   124 u32 CRC32C of bytes 0..124
    // Body, format 2 (PaymentIndex): chunks x 2^14 blocks x (i64 position + 1 of the block's run, 0 = none, its top bit set
    // when an id of the block has an exact entry; u64 map of the ids in the run), then exact entries x (i64 id, i64 position + 1), then notes x (i64 id, i64 position), then spans x (i64
    // stamp, start, end, covered id). A chunk copied later than start may name records after it, never after the stamp.
    // Body, format 1 (written before 2026-12-06): chunks x 2^20 i64 (id -> position + 1, 0 = none), then notes, then spans.
    private const ulong CheckpointMagic = 0x5844495941505052; // "RPPAYIDX"
    private const int CheckpointHeaderBytes = 128;
    private const int CheckpointFormat = 2;
    /// <summary>Index chunks a generation's checkpoint step writes, at most (8 MiB: no step costs more than that).</summary>
    private const int CheckpointChunksPerStep = 32;

    private sealed class CheckpointWork
    {
        public required SafeFileHandle File;
        public required long Start, StartDiskBytes, RecordsWritten, PaymentRecords;
        public required int Chunks;
        public required (long Id, long PositionPlus1)[] Exact;
        public required (long Id, long Position)[] Notes;
        public required WrittenSpan[] Spans;
        public int Next;
        public long Offset = CheckpointHeaderBytes;
        public uint Crc;
    }

    private sealed record LoadedCheckpoint(long Stamp, long Start);

    /// <summary>
    /// After each generation (the store's thread): begins a checkpoint once the log has grown by the interval, or writes the
    /// next 8 MiB of index chunks of the one under way, or finishes it: no step costs more than that.
    /// </summary>
    private void CheckpointStep(long stamp)
    {
        if (_options.CheckpointEveryBytes == 0) return;
        if (_checkpoint is null)
        {
            if (_diskBytes - _lastCheckpointAt < Math.Max(_options.CheckpointEveryBytes, _options.CheckpointIndexMultiple * IndexBytes)) return;
            BeginCheckpoint();
            return;
        }
        var ck = _checkpoint;
        if (ck.Next < ck.Chunks)
        {
            for (int step = 0; step < CheckpointChunksPerStep && ck.Next < ck.Chunks; step++)
            {
                var chunk = _index.Chunk(ck.Next);
                ReadOnlySpan<byte> bytes = chunk is null ? _zeroChunk ??= new byte[PaymentIndex.ChunkLongs * 8] : MemoryMarshal.AsBytes(chunk.AsSpan());
                RandomAccess.Write(ck.File, bytes, ck.Offset);
                ck.Crc = Crc32C.Append(ck.Crc, bytes);
                ck.Offset += bytes.Length;
                ck.Next++;
            }
            if (ck.Next < ck.Chunks) return;
        }
        FinishCheckpoint(ck, stamp);
    }

    private void BeginCheckpoint()
    {
        Invariant.Check(BitConverter.IsLittleEndian, "index checkpoints are written little-endian as in memory");
        int chunks = _index.ChunkCount;
        var exact = _index.ExactSnapshot();
        (long, long)[] notes;
        lock (_notes) notes = _notes.Select(n => (n.Key, n.Value)).ToArray();
        WrittenSpan[] spans;
        lock (_spanGate) spans = _spans.ToArray();
        string temp = Path.Combine(_options.Directory, CheckpointTemp);
        _checkpoint = new CheckpointWork
        {
            File = File.OpenHandle(temp, FileMode.Create, FileAccess.ReadWrite),
            Start = _segmentNumber << OffsetBits | _segmentLength, StartDiskBytes = _diskBytes,
            RecordsWritten = _recordsWritten, PaymentRecords = _paymentRecords, Chunks = chunks, Exact = exact, Notes = notes, Spans = spans,
        };
        _lastCheckpointAt = _diskBytes;
    }

    private void FinishCheckpoint(CheckpointWork ck, long stamp)
    {
        var tail = new byte[(ck.Exact.Length + ck.Notes.Length) * 16L + ck.Spans.Length * 32L];
        int at = 0;
        foreach (var (id, positionPlus1) in ck.Exact)
        {
            BinaryPrimitives.WriteInt64LittleEndian(tail.AsSpan(at), id);
            BinaryPrimitives.WriteInt64LittleEndian(tail.AsSpan(at + 8), positionPlus1);
            at += 16;
        }
        foreach (var (id, position) in ck.Notes)
        {
            BinaryPrimitives.WriteInt64LittleEndian(tail.AsSpan(at), id);
            BinaryPrimitives.WriteInt64LittleEndian(tail.AsSpan(at + 8), position);
            at += 16;
        }
        foreach (var span in ck.Spans)
        {
            BinaryPrimitives.WriteInt64LittleEndian(tail.AsSpan(at), span.Stamp);
            BinaryPrimitives.WriteInt64LittleEndian(tail.AsSpan(at + 8), span.Start);
            BinaryPrimitives.WriteInt64LittleEndian(tail.AsSpan(at + 16), span.End);
            BinaryPrimitives.WriteInt64LittleEndian(tail.AsSpan(at + 24), span.CoveredId);
            at += 32;
        }
        RandomAccess.Write(ck.File, tail, ck.Offset);
        ck.Crc = Crc32C.Append(ck.Crc, tail);
        var h = new byte[CheckpointHeaderBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(h, CheckpointMagic);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(8), CheckpointFormat);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(12), PaymentIndex.ChunkIdShift);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(16), stamp);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(24), ck.Start);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(32), ck.Chunks);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(40), ck.Notes.Length);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(48), ck.Spans.Length);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(56), ck.RecordsWritten);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(64), ck.PaymentRecords);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(72), ck.Exact.Length);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(80), PaymentIndex.BlockShift);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(120), ck.Crc);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(124), Crc32C.Compute(h.AsSpan(0, 124)));
        RandomAccess.Write(ck.File, h, 0);
        // Durable before its name says it is a checkpoint; the name before older ones go.
        if (_options.Fsync) RandomAccess.FlushToDisk(ck.File);
        ck.File.Dispose();
        _checkpoint = null;
        File.Move(Path.Combine(_options.Directory, CheckpointTemp), Path.Combine(_options.Directory, CheckpointName(stamp)), overwrite: true);
        if (_options.Fsync) SyncDirectory();
        DeleteOldCheckpoints();
        Volatile.Write(ref _checkpointsWritten, _checkpointsWritten + 1);
        _options.Logger.LogInformation("payments' cold tier: index checkpoint {Name} written ({Bytes:N0} bytes; a start reads the log from segment {Segment} offset {Offset})",
            CheckpointName(stamp), ck.Offset + tail.Length, ck.Start >> OffsetBits, ck.Start & ((1L << OffsetBits) - 1));
    }

    /// <summary>
    /// All but the newest <see cref="PaymentLogStoreOptions.CheckpointsToKeep"/>, and the newest one at or before
    /// <see cref="PaymentLogStoreOptions.KeepCheckpointAtOrBefore"/> (so at most one more on disk).
    /// </summary>
    private void DeleteOldCheckpoints()
    {
        var all = Checkpoints();
        if (all.Count <= _options.CheckpointsToKeep) return;
        long hold;
        try
        {
            hold = _options.KeepCheckpointAtOrBefore?.Invoke() ?? long.MinValue;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _options.Logger.LogWarning(e, "payments' cold tier: the sinks' restart point could not be read; older index checkpoints kept until the next one");
            return;
        }
        int held = all.FindIndex(c => c.Stamp <= hold); // newest first: the newest at or before the hold
        for (int i = _options.CheckpointsToKeep; i < all.Count; i++)
        {
            if (i == held) continue;
            File.Delete(all[i].Path);
        }
    }

    /// <summary>The index checkpoints on disk, by stamp, newest first (for tests and tools).</summary>
    public IReadOnlyList<long> CheckpointStamps => Checkpoints().Select(c => c.Stamp).ToList();

    /// <summary>The checkpoint files, newest (highest stamp) first.</summary>
    private List<(long Stamp, string Path)> Checkpoints()
    {
        var found = new List<(long, string)>();
        foreach (var path in System.IO.Directory.EnumerateFiles(_options.Directory, "payments-index-*.ckpt"))
            if (long.TryParse(Path.GetFileNameWithoutExtension(path).AsSpan("payments-index-".Length), out long stamp) && CheckpointName(stamp) == Path.GetFileName(path))
                found.Add((stamp, path));
        return found.OrderByDescending(c => c.Item1).ToList();
    }

    /// <summary>
    /// Loads the newest checkpoint stamped at or before the recovered state into the index, notes and spans; null (the whole
    /// log is then read) when there is none, none early enough, or each one tried is damaged (said loudly: a warning).
    /// </summary>
    private LoadedCheckpoint? LoadCheckpoint(long commandsApplied, int segments)
    {
        string temp = Path.Combine(_options.Directory, CheckpointTemp);
        if (File.Exists(temp)) File.Delete(temp); // a checkpoint the last run did not finish
        var all = Checkpoints();
        // A checkpoint after the recovered state names records the start is about to cut, whose positions the replay then
        // fills with other records: it can never be right again (the simulation found one used after such a cut).
        int after = all.TakeWhile(c => c.Stamp > commandsApplied).Count();
        if (after > 0)
        {
            foreach (var (_, path) in all.Take(after)) File.Delete(path);
            if (after == all.Count) Warn($"every index checkpoint was after the recovered state ({commandsApplied:N0}; newest {all[0].Stamp:N0}), deleted: the start reads the whole log");
            all = all.Skip(after).ToList();
        }
        if (all.Count == 0) return null;
        // A follower registered before the start needs the links to the older versions of payments re-written after its
        // position, which a checkpoint does not hold for the records before it: so only a checkpoint at or before every
        // follower's lowest position serves (at it or after, every link the follower can walk is built from the tail).
        long limit = commandsApplied;
        lock (_spanGate)
            foreach (long f in _followers)
            {
                if (f == long.MaxValue) continue; // removed
                if (f == long.MinValue)
                {
                    Warn("a follower of the log (the sinks) whose position is not known may need versions before any checkpoint: the start reads the whole log");
                    return null;
                }
                limit = Math.Min(limit, f);
            }
        all = all.SkipWhile(c => c.Stamp > limit).ToList(); // kept on disk: they are at or before the recovered state
        if (all.Count == 0)
        {
            Warn($"a follower of the log (the sinks) may read at {limit:N0}, before every index checkpoint: the start reads the whole log");
            return null;
        }
        var problems = new List<string>();
        foreach (var (stamp, path) in all)
        {
            string? problem = TryReadCheckpoint(path, stamp, segments, out var loaded);
            if (problem is null)
            {
                if (problems.Count > 0) Warn($"index checkpoint(s) not used: {string.Join("; ", problems)}");
                LinkedFrom = stamp;
                return loaded;
            }
            problems.Add($"{Path.GetFileName(path)}: {problem}");
            ResetIndex();
        }
        Warn($"no usable index checkpoint ({string.Join("; ", problems)}): the start reads the whole log");
        return null;
    }

    private void Warn(string message)
    {
        RecoveryWarning = RecoveryWarning is null ? message : RecoveryWarning + "; " + message;
        _options.Logger.LogWarning("payments' cold tier: {Message}", message);
    }

    private void ResetIndex()
    {
        _index = new PaymentIndex();
        lock (_notes) _notes.Clear();
        lock (_spanGate)
        {
            _spans.Clear();
            _coveredId = 0;
        }
    }

    private string? TryReadCheckpoint(string path, long stamp, int segments, out LoadedCheckpoint? loaded)
    {
        loaded = null;
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        long length = RandomAccess.GetLength(file);
        var h = new byte[CheckpointHeaderBytes];
        if (length < CheckpointHeaderBytes || RandomAccess.Read(file, h, 0) != CheckpointHeaderBytes) return "shorter than its header";
        if (BinaryPrimitives.ReadUInt64LittleEndian(h) != CheckpointMagic || BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(124)) != Crc32C.Compute(h.AsSpan(0, 124)))
            return "its header is damaged";
        int format = BinaryPrimitives.ReadInt32LittleEndian(h.AsSpan(8));
        int chunkShift = format == 1 ? V1IndexShift : PaymentIndex.ChunkIdShift;
        if (format is not (1 or CheckpointFormat) || BinaryPrimitives.ReadInt32LittleEndian(h.AsSpan(12)) != chunkShift
            || format == CheckpointFormat && BinaryPrimitives.ReadInt32LittleEndian(h.AsSpan(80)) != PaymentIndex.BlockShift) return $"an unknown format ({format})";
        long start = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(24));
        long chunks = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(32)), notes = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(40));
        long spans = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(48));
        long exact = format == 1 ? 0 : BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(72));
        long chunkBytes = format == 1 ? 8L << V1IndexShift : PaymentIndex.ChunkLongs * 8L;
        if (BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(16)) != stamp) return "its stamp is not its name's";
        if (chunks < 0 || notes < 0 || spans < 0 || exact < 0 || chunks > int.MaxValue
            || length != CheckpointHeaderBytes + chunks * chunkBytes + (exact + notes) * 16 + spans * 32)
            return $"{length:N0} bytes, not the size its header gives (torn?)";
        if (start >> OffsetBits < 1 || start >> OffsetBits > segments) return $"it starts in segment {start >> OffsetBits}, which is not there";
        uint crc = 0;
        long offset = CheckpointHeaderBytes;
        var index = new PaymentIndex();
        var buffer = new long[chunkBytes / 8];
        for (int c = 0; c < chunks; c++)
        {
            var bytes = MemoryMarshal.AsBytes(buffer.AsSpan());
            if (RandomAccess.Read(file, bytes, offset) != bytes.Length) return "torn in its index";
            crc = Crc32C.Append(crc, bytes);
            offset += bytes.Length;
            if (format == CheckpointFormat)
            {
                if (buffer.AsSpan().ContainsAnyExcept(0L)) index.LoadChunk(c, buffer);
                buffer = new long[chunkBytes / 8];
            }
            else
                // Format 1 (8 bytes a payment) turned into blocks as it is read: the memory saved from the first start on.
                for (int b = 0; b < 1 << (V1IndexShift - PaymentIndex.BlockShift); b++)
                    index.ImportBlock(((long)c << V1IndexShift) + ((long)b << PaymentIndex.BlockShift), buffer.AsSpan(b << PaymentIndex.BlockShift, 1 << PaymentIndex.BlockShift));
        }
        var rest = new byte[(exact + notes) * 16 + spans * 32];
        if (RandomAccess.Read(file, rest, offset) != rest.Length) return "torn in its exact entries, notes or spans";
        crc = Crc32C.Append(crc, rest);
        if (crc != BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(120))) return "its body's CRC does not match";
        for (int i = 0; i < exact; i++)
        {
            long id = BinaryPrimitives.ReadInt64LittleEndian(rest.AsSpan(i * 16)), positionPlus1 = BinaryPrimitives.ReadInt64LittleEndian(rest.AsSpan(i * 16 + 8));
            if (id < 1 || positionPlus1 < 1) return "an exact entry out of range";
            index.LoadExact(id, positionPlus1);
        }
        rest = rest[(int)(exact * 16)..];
        _index = index;
        lock (_notes)
            for (int i = 0; i < notes; i++)
                _notes[BinaryPrimitives.ReadInt64LittleEndian(rest.AsSpan(i * 16))] = BinaryPrimitives.ReadInt64LittleEndian(rest.AsSpan(i * 16 + 8));
        lock (_spanGate)
        {
            for (long i = 0; i < spans; i++)
            {
                var at = rest.AsSpan((int)(notes * 16 + i * 32));
                _spans.Add(new WrittenSpan(BinaryPrimitives.ReadInt64LittleEndian(at), BinaryPrimitives.ReadInt64LittleEndian(at[8..]),
                    BinaryPrimitives.ReadInt64LittleEndian(at[16..]), BinaryPrimitives.ReadInt64LittleEndian(at[24..])));
            }
            _coveredId = _spans.Count > 0 ? _spans[^1].CoveredId : 0;
            // Versions before the checkpoint are indexed without links to older ones: a follower behind it cannot join.
            _followerFloor = stamp;
        }
        _recordsWritten = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(56));
        _paymentRecords = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(64));
        loaded = new LoadedCheckpoint(stamp, start);
        return null;
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

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        if (_thread is { IsAlive: true }) _thread.Join();
        lock (_gate) foreach (var s in _segments) s?.Dispose();
    }
}
