using System.Buffers.Binary;
using System.Diagnostics;
using RamPay.Core;
using RamPay.Events;
using RamPay.Journal;

namespace RamPay.Analytics;

/// <summary>
/// The rollups and the positions they reach, persisted as a snapshot plus a redo log (<see cref="AnalyticsLog"/>), so
/// that a start resumes from where the files say rather than rebuilding, and a crash between two saves only re-feeds the
/// events after the saved position (which the rollups do not hold yet).
/// <list type="bullet">
/// <item>A save appends the records of the events applied since the last one to the log's newest segment
///   (<c>path.log.NNNNNNNN</c>) and fsyncs it: its cost follows the events since, not the size of the rollups.</item>
/// <item>Once the log since the snapshot outgrows the snapshot (and <see cref="MinLogBytesBeforeSnapshot"/>), the next
///   apply (not the save: a worker spaces its flushes by their duration) starts a new segment, copies the rollups into a
///   buffer (under their lock: the one pause, in memory), and a background task writes the snapshot (replaced atomically: temp file, fsync, rename, fsync of the folder) and then
///   deletes the segments it holds. A crash at any step leaves the old snapshot with every segment, or the new one with
///   segments it names as held (deleted at the next start).</item>
/// <item>A start loads the snapshot, drops what the retention no longer keeps, and replays the segments from the one the
///   snapshot names, in order.</item>
/// </list>
/// <para>
/// Snapshot, version 3 (little-endian): magic "RPAN", i32 version, i64 events applied; i32 position count, each a source
/// (string) and its position (i64 sequence, i32 index, i32 ordinal); i32 measure count M; i32 bucket count, each: u8
/// interval, i64 start ms, u16 currency, M × i64; i32 user-bucket count, each: i64 user, u8 interval, i64 start, u16
/// currency, 4 × i64; i32 open distinct-set count, each: u8 interval, i64 start, u16 currency, i32 n + n × i64 senders,
/// i32 m + m × i64 receivers; the fraud score distribution: i32 model count, each a string (the version, index order);
/// i32 cell count, each: u8 interval, i64 start, u16 currency, u16 model index, u8 bin, i64 payments; then i64 the first
/// log segment the snapshot does not hold, i64 the user watermark (ms), 3 × i64 the start of the oldest user bucket kept
/// per interval (minute, hour, day), i64 user payments beyond retention; u32 CRC-32C of every byte before it.
/// Version 1 ended after the distinct sets, version 2 after the scores; both load (a version 1 file with no scores: those
/// of the events it already holds are not counted, docs/analytics.md), with no log and nothing dropped yet. The golden
/// files under tests/RamPay.Rewards.Tests/Golden pin versions 2 and 3 and the log.
/// </para>
/// </summary>
public sealed class AnalyticsStore : IDisposable
{
    private const uint Magic = 0x4E415052; // "RPAN"
    private const int Version = 3;
    private const string SegmentInfix = ".log.";

    private readonly string _path, _directory;
    private readonly Stopwatch _sinceSave = Stopwatch.StartNew();
    private readonly AnalyticsLog.Buffer _log = new();
    private bool _dirty;
    private readonly object _saving = new(); // Apply and Save (the consumer's task, the host's timer and stop) one at a time
    private FileStream? _segment;
    private long _segmentNumber;
    private long _snapshotBytes, _logBytesSinceSnapshot;
    private readonly SnapshotWriter _snapshotWriter = new(new byte[64 << 10]); // reused: one snapshot at a time
    private Task _snapshotWrite = Task.CompletedTask;
    private int _snapshotVersion; // of the snapshot on disk (0: none): an older one is written again at the next clean stop
    private bool _snapshotDue; // the log has outgrown the snapshot: the next Apply starts one

    public AnalyticsStore(string path, AnalyticsRetention? retention = null)
    {
        _path = System.IO.Path.GetFullPath(path);
        _directory = System.IO.Path.GetDirectoryName(_path)!;
        var loaded = LoadAll(_path, retention ?? AnalyticsRetention.Default);
        Rollups = loaded.Rollups;
        _snapshotBytes = loaded.SnapshotBytes;
        _snapshotVersion = loaded.Version;
        _logBytesSinceSnapshot = loaded.LogBytes;
        // Segments the snapshot holds are what a snapshot's write left to delete when it was cut short.
        foreach (var (number, file) in Segments(_path)) if (number < loaded.FirstSegment) File.Delete(file);
        _segmentNumber = Math.Max(loaded.FirstSegment, loaded.LastSegment + 1); // never append after a tail a crash may have cut
        _log.ModelsNamed = Rollups.Models.Count;
        Rollups.Log = _log;
    }

    public AnalyticsRollups Rollups { get; }
    public string Path => _path;
    /// <summary>How often the rollups are saved while events keep coming (a batch applied with saveNow is saved at once; the analytics worker sets this to never and saves at its flush).</summary>
    public int SaveEveryMs { get; init; } = 1_000;
    /// <summary>The log since the snapshot may grow to the snapshot's size, and at least to this, before a new snapshot is written.</summary>
    public long MinLogBytesBeforeSnapshot { get; init; } = 32L << 20;
    public long Saves { get; private set; }
    public long Snapshots { get; private set; }
    /// <summary>The last snapshot's copy of the rollups into its buffer (under their lock: applying waits meanwhile), and its write (a task: nothing waits).</summary>
    public double LastSnapshotCopyMs { get; private set; }
    public double LastSnapshotWriteMs { get; private set; }
    /// <summary>The log's bytes since the last snapshot, and that snapshot's size: what a start reads.</summary>
    public (long LogBytes, long SnapshotBytes) Sizes { get { lock (_saving) return (_logBytesSinceSnapshot, _snapshotBytes); } }

    public void Apply(EventBatch batch, bool saveNow) => Apply(batch, AnalyticsRollups.Parse(batch.Events), null, saveNow);

    public void Apply(EventBatch batch, EventFields[] fields, IReadOnlyDictionary<long, PaymentScore>? scores, bool saveNow)
    {
        lock (_saving)
        {
            if (_snapshotDue) StartSnapshot();
            Rollups.Apply(batch, fields, scores);
            _dirty = true;
            if (saveNow || _sinceSave.ElapsedMilliseconds >= SaveEveryMs) SaveLocked();
        }
    }

    /// <summary>Makes every event applied so far durable (appends them to the log), if any came since the last save.</summary>
    public void Save()
    {
        lock (_saving) SaveLocked();
    }

    /// <summary>A save, then a snapshot written before this returns (a clean stop: the next start reads no log).</summary>
    public void SaveSnapshot()
    {
        lock (_saving)
        {
            SaveLocked();
            WaitForSnapshot();
            if (_snapshotDue || _logBytesSinceSnapshot > 0 || _snapshotVersion != Version) StartSnapshot();
            WaitForSnapshot();
        }
    }

    private void SaveLocked()
    {
        if (_snapshotWrite.IsFaulted) WaitForSnapshot(); // a snapshot that could not be written fails the next save, loudly
        if (!_dirty) return;
        if (_log.Length > 0)
        {
            if (_segment is null) OpenSegment();
            try
            {
                _segment!.Write(_log.Pending);
                Durability.FlushData(_segment.SafeFileHandle); // fdatasync, as the journal's appends
            }
            catch (IOException)
            {
                // After a failed write or fdatasync the file's tail is unknown (the kernel may have dropped the pages):
                // never append after it. The records stay pending and the next save writes them to a new segment; a
                // start reads this one's whole records and skips, by position, those written again.
                _segment!.Dispose();
                _segment = null;
                _segmentNumber++;
                throw;
            }
            _logBytesSinceSnapshot += _log.Length;
            _log.Clear();
        }
        _dirty = false;
        Saves++;
        _sinceSave.Restart();
        // Not here but at the next Apply, before its batch (nothing is pending then either): a worker spaces its flushes
        // to ten times a flush's duration, and the copy counted in one spaced the next 1.5-2 s out, the committed lag
        // with it (docs/benchmarks.md, "Analytics: a snapshot and a log, and a retention").
        if (_logBytesSinceSnapshot >= Math.Max(MinLogBytesBeforeSnapshot, _snapshotBytes) && _snapshotWrite.IsCompleted) _snapshotDue = true;
    }

    private void OpenSegment()
    {
        Directory.CreateDirectory(_directory);
        _segment = new FileStream(SegmentPath(_path, _segmentNumber), new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.Read | FileShare.Delete, BufferSize = 0,
        });
        Durability.FlushDirectory(_directory); // the segment's name is durable before a save counts on what it holds
    }

    /// <summary>
    /// Closes the segment being written (the next save starts another), copies the rollups into the snapshot buffer, and
    /// hands the write to a task. Called with nothing pending in the log, so the copy holds exactly the segments before.
    /// </summary>
    private void StartSnapshot()
    {
        if (_snapshotWrite.IsFaulted) WaitForSnapshot(); // the last one failed: said (thrown) before another replaces it
        Invariant.Check(_log.Length == 0 && _snapshotWrite.IsCompleted, "a snapshot starts after a save, one at a time");
        _snapshotDue = false;
        _segment?.Dispose();
        _segment = null;
        long first = ++_segmentNumber;
        var w = _snapshotWriter;
        w.Length = 0;
        long began = Stopwatch.GetTimestamp();
        lock (Rollups.Gate) WriteBody(Rollups, w, first);
        LastSnapshotCopyMs = Stopwatch.GetElapsedTime(began).TotalMilliseconds;
        _log.ModelsNamed = Rollups.Models.Count;
        _snapshotBytes = w.Length + 4;
        _snapshotVersion = Version;
        _logBytesSinceSnapshot = 0;
        Snapshots++;
        _snapshotWrite = Task.Run(() =>
        {
            long writing = Stopwatch.GetTimestamp();
            w.AppendCrc();
            Directory.CreateDirectory(_directory);
            AtomicFile.Write(_path, w.Written);
            foreach (var (number, file) in Segments(_path)) if (number < first) File.Delete(file);
            LastSnapshotWriteMs = Stopwatch.GetElapsedTime(writing).TotalMilliseconds;
        });
    }

    private void WaitForSnapshot()
    {
        var write = _snapshotWrite;
        if (!write.IsCompleted) write.Wait();
        if (!write.IsFaulted) return;
        // Said once, then a later snapshot may try again: the old snapshot and every segment since are still in place
        // (the segments are deleted only after the new snapshot is), so nothing saved is lost meanwhile.
        _snapshotWrite = Task.CompletedTask;
        _logBytesSinceSnapshot += _snapshotBytes; // the log the failed snapshot would have replaced is still to be read
        var e = write.Exception!.GetBaseException();
        throw e as IOException ?? new IOException($"could not write the analytics snapshot {_path}", e);
    }

    public void Dispose()
    {
        lock (_saving)
        {
            _snapshotWrite.ContinueWith(static _ => { }, TaskScheduler.Default).Wait();
            _segment?.Dispose();
            _segment = null;
        }
    }

    private static string SegmentPath(string path, long number) => path + SegmentInfix + number.ToString("D8", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The log segments beside <paramref name="path"/>, by number.</summary>
    internal static List<(long Number, string File)> Segments(string path)
    {
        string directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, prefix = System.IO.Path.GetFileName(path) + SegmentInfix;
        var list = new List<(long, string)>();
        if (!Directory.Exists(directory)) return list;
        foreach (string file in Directory.EnumerateFiles(directory, prefix + "*"))
            if (long.TryParse(System.IO.Path.GetFileName(file).AsSpan(prefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n))
                list.Add((n, file));
        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return list;
    }

    /// <summary>The rollups as the snapshot and the log at <paramref name="path"/> hold them (another process may be writing them: a reader's view).</summary>
    public static AnalyticsRollups Load(string path, AnalyticsRetention? retention = null) => LoadAll(System.IO.Path.GetFullPath(path), retention ?? AnalyticsRetention.Default).Rollups;

    private static (AnalyticsRollups Rollups, int Version, long FirstSegment, long LastSegment, long SnapshotBytes, long LogBytes) LoadAll(string path, AnalyticsRetention retention)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                long first = 0, snapshotBytes = 0;
                int version = 0;
                var rollups = new AnalyticsRollups(retention);
                if (File.Exists(path))
                {
                    byte[] bytes = File.ReadAllBytes(path);
                    snapshotBytes = bytes.Length;
                    (first, version) = Read(bytes, path, rollups);
                }
                else rollups.RestoreRetention(long.MinValue, [long.MinValue, long.MinValue, long.MinValue], 0);
                long last = first - 1, logBytes = 0;
                foreach (var (number, file) in Segments(path))
                {
                    if (number < first) continue;
                    logBytes += AnalyticsLog.ReadSegment(file, payload =>
                    {
                        lock (rollups.Gate) AnalyticsLog.Replay(rollups, payload);
                    });
                    last = number;
                }
                return (rollups, version, first, last, snapshotBytes, logBytes);
            }
            catch (FileNotFoundException) when (attempt < 5)
            {
                // A snapshot's write deleted a segment between listing and reading it: the snapshot is newer now; again.
            }
        }
    }

    /// <summary>A snapshot of <paramref name="r"/>, CRC included, to <paramref name="stream"/> (tests; the store writes through <see cref="WriteBody"/>).</summary>
    internal static void Write(AnalyticsRollups r, Stream stream, long firstSegment = 0)
    {
        var w = new SnapshotWriter(new byte[64 << 10]);
        lock (r.Gate) WriteBody(r, w, firstSegment);
        w.AppendCrc();
        stream.Write(w.Written);
    }

    /// <summary>Everything of a snapshot but its CRC (which the store's task appends, outside the pause).</summary>
    private static void WriteBody(AnalyticsRollups r, SnapshotWriter w, long firstSegment)
    {
        // Room for what follows, so that the copy grows its buffer once (the distinct sets and scores are a few).
        w.Reserve((long)r.Buckets.Count * (11 + 8 * AnalyticsRollups.MeasureCount) + (long)r.UserBuckets.Count * (19 + 8 * AnalyticsRollups.UserMeasures) + (1 << 20));
        w.UInt32(Magic); w.Int32(Version); w.Int64(r.EventsApplied);
        w.Int32(r.Positions.Count);
        foreach (var (source, p) in r.Positions.OrderBy(kv => kv.Key, StringComparer.Ordinal)) { w.String(source); w.Int64(p.Sequence); w.Int32(p.Index); w.Int32(p.Ordinal); }
        w.Int32(AnalyticsRollups.MeasureCount);
        w.Int32(r.Buckets.Count);
        foreach (var (k, v) in r.Buckets) { w.Byte((byte)k.Interval); w.Int64(k.StartMs); w.UInt16(k.Currency); w.Int64s(v); }
        w.Int32(r.UserBuckets.Count);
        foreach (var (k, v) in r.UserBuckets) { w.Int64(k.User); w.Byte((byte)k.Interval); w.Int64(k.StartMs); w.UInt16(k.Currency); w.Int64s(v); }
        w.Int32(r.ActiveSets.Count);
        foreach (var (k, v) in r.ActiveSets)
        {
            w.Byte((byte)k.Interval); w.Int64(k.StartMs); w.UInt16(k.Currency);
            w.Int32(v.Senders.Count); foreach (long x in v.Senders) w.Int64(x);
            w.Int32(v.Receivers.Count); foreach (long x in v.Receivers) w.Int64(x);
        }
        w.Int32(r.Models.Count);
        foreach (string model in r.Models) w.String(model);
        w.Int32(r.Scores.Count);
        foreach (var (k, v) in r.Scores) { w.Byte((byte)k.Interval); w.Int64(k.StartMs); w.UInt16(k.Currency); w.UInt16(k.Model); w.Byte(k.Bin); w.Int64(v); }
        w.Int64(firstSegment);
        w.Int64(r.UserWatermarkMs);
        foreach (long from in r.UserBucketsFromAll) w.Int64(from);
        w.Int64(r.UserPaymentsBeyondRetention);
    }

    /// <summary>
    /// The snapshot's bytes, little-endian, strings as <see cref="BinaryWriter"/> writes them (7-bit length, UTF-8):
    /// the same layout <see cref="Read"/> reads with a <see cref="BinaryReader"/>, written straight into one reused array
    /// because the copy is the pause applying sees (1.25 million user buckets: 248 ms through a BinaryWriter and a
    /// MemoryStream, docs/benchmarks.md "Analytics: a snapshot and a log, and a retention").
    /// </summary>
    private sealed class SnapshotWriter(byte[] buffer)
    {
        public byte[] Buffer = buffer;
        public int Length;

        public ReadOnlySpan<byte> Written => Buffer.AsSpan(0, Length);

        public void Reserve(long bytes)
        {
            if (Buffer.Length - Length < bytes) Array.Resize(ref Buffer, (int)Math.Min(Array.MaxLength, Length + bytes));
        }

        private Span<byte> Take(int n)
        {
            if (Buffer.Length - Length < n) Array.Resize(ref Buffer, Math.Max(Buffer.Length * 2, Length + n));
            var s = Buffer.AsSpan(Length, n);
            Length += n;
            return s;
        }

        public void Byte(byte v) => Take(1)[0] = v;
        public void UInt16(ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(Take(2), v);
        public void Int32(int v) => BinaryPrimitives.WriteInt32LittleEndian(Take(4), v);
        public void UInt32(uint v) => BinaryPrimitives.WriteUInt32LittleEndian(Take(4), v);
        public void Int64(long v) => BinaryPrimitives.WriteInt64LittleEndian(Take(8), v);

        public void Int64s(long[] values)
        {
            var s = Take(8 * values.Length);
            if (BitConverter.IsLittleEndian) System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(s);
            else for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(s[(8 * i)..], values[i]);
        }

        public void String(string v)
        {
            int n = System.Text.Encoding.UTF8.GetByteCount(v);
            for (uint u = (uint)n; ; u >>= 7)
            {
                if (u < 0x80) { Byte((byte)u); break; }
                Byte((byte)(u | 0x80));
            }
            System.Text.Encoding.UTF8.GetBytes(v, Take(n));
        }

        public void AppendCrc() => UInt32(Crc32C.Compute(Written));
    }

    /// <summary>Reads a snapshot into <paramref name="rollups"/>; returns the first log segment it does not hold, and its version.</summary>
    private static (long FirstSegment, int Version) Read(byte[] bytes, string path, AnalyticsRollups rollups)
    {
        using var stream = new MemoryStream(bytes, writable: false);
        using var r = new BinaryReader(stream);
        if (bytes.Length < 8 || r.ReadUInt32() != Magic) throw new InvalidDataException($"{path} is not a RamPay analytics file");
        int version = r.ReadInt32();
        if (version is not (1 or 2 or Version)) throw new InvalidDataException($"{path}: analytics file version {version} is not known to this RamPay");
        if (version >= 3)
        {
            uint stored = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4));
            if (Crc32C.Compute(bytes.AsSpan(0, bytes.Length - 4)) != stored) throw new InvalidDataException($"{path}: the analytics snapshot fails its CRC");
        }
        rollups.EventsApplied = r.ReadInt64();
        int positions = r.ReadInt32();
        for (int i = 0; i < positions; i++) rollups.Positions[r.ReadString()] = new EventPosition(r.ReadInt64(), r.ReadInt32(), r.ReadInt32());
        int measures = r.ReadInt32();
        if (measures > AnalyticsRollups.MeasureCount) throw new InvalidDataException($"{path} holds {measures} measures; this RamPay knows {AnalyticsRollups.MeasureCount}");
        int buckets = r.ReadInt32();
        for (int i = 0; i < buckets; i++)
        {
            var key = ((Interval)r.ReadByte(), r.ReadInt64(), r.ReadUInt16());
            var values = new long[AnalyticsRollups.MeasureCount];
            for (int m = 0; m < measures; m++) values[m] = r.ReadInt64();
            rollups.Buckets.Add(key, values);
            rollups.NoteCurrency(key.Item3);
        }
        int users = r.ReadInt32();
        for (int i = 0; i < users; i++)
        {
            var key = (r.ReadInt64(), (Interval)r.ReadByte(), r.ReadInt64(), r.ReadUInt16());
            var values = new long[AnalyticsRollups.UserMeasures];
            for (int m = 0; m < values.Length; m++) values[m] = r.ReadInt64();
            rollups.UserBuckets.Add(key, values);
        }
        int sets = r.ReadInt32();
        for (int i = 0; i < sets; i++)
        {
            var key = ((Interval)r.ReadByte(), r.ReadInt64(), r.ReadUInt16());
            var senders = new HashSet<long>();
            for (int n = r.ReadInt32(); n > 0; n--) senders.Add(r.ReadInt64());
            var receivers = new HashSet<long>();
            for (int n = r.ReadInt32(); n > 0; n--) receivers.Add(r.ReadInt64());
            rollups.ActiveSets.Add(key, (senders, receivers));
        }
        if (version >= 2)
        {
            int models = r.ReadInt32();
            for (int i = 0; i < models; i++) rollups.AddModel(r.ReadString());
            int cells = r.ReadInt32();
            for (int i = 0; i < cells; i++)
            {
                var key = ((Interval)r.ReadByte(), r.ReadInt64(), r.ReadUInt16(), r.ReadUInt16(), r.ReadByte());
                if (key.Item4 >= models || key.Item5 > 9) throw new InvalidDataException($"{path}: a score cell names model {key.Item4} of {models}, bin {key.Item5}");
                rollups.Scores.Add(key, r.ReadInt64());
            }
        }
        long first = 0, watermark = long.MinValue, beyond = 0;
        Span<long> from = [long.MinValue, long.MinValue, long.MinValue];
        if (version >= 3)
        {
            first = r.ReadInt64();
            watermark = r.ReadInt64();
            for (int i = 0; i < 3; i++) from[i] = r.ReadInt64();
            beyond = r.ReadInt64();
            r.ReadUInt32(); // the CRC, checked above
            if (first < 0) throw new InvalidDataException($"{path}: log segment {first}");
        }
        if (stream.Position != stream.Length) throw new InvalidDataException($"{path}: trailing bytes");
        rollups.RestoreRetention(watermark, from, beyond);
        return (first, version);
    }
}

/// <summary>
/// The analytics consumer: every event into the rollups. Fed from the server's event log it saves at most once a
/// second (what a crash loses since is fed again: its checkpoint is the position saved with the rollups); fed from
/// Kafka it saves every batch before the offsets are committed (<c>rampay-worker analytics</c> does not use it: its
/// <c>AnalyticsRole.Worker</c> applies batches to the same store and saves when the worker flushes, before a commit).
/// </summary>
public sealed class AnalyticsConsumer(AnalyticsStore store, AnalyticsConsumer.ScoreLookup? scores = null) : IEventConsumer
{
    /// <summary>The fraud scores of these payments (those scored; the others are left out), read where the ledger is: in the server, through the ring.</summary>
    public delegate Task<IReadOnlyDictionary<long, PaymentScore>> ScoreLookup(IReadOnlyList<long> paymentIds, CancellationToken cancellationToken);

    public string Name => "analytics";
    public AnalyticsStore Store => store;

    /// <summary>The position the rollups in memory hold (at start, the saved one): the feeder resumes after it.</summary>
    public ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(store.Rollups.PositionOf(EventBatch.LogSource));

    public async ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken)
    {
        // One parse per event; the scores of the payments the batch creates in one lookup (one query through the ring).
        var fields = AnalyticsRollups.Parse(batch.Events);
        IReadOnlyDictionary<long, PaymentScore>? known = null;
        if (scores is not null)
        {
            var ids = AnalyticsRollups.ScoreCandidates(batch.Events, fields);
            if (ids.Count > 0) known = await scores(ids, cancellationToken).ConfigureAwait(false);
        }
        store.Apply(batch, fields, known ?? (scores is null ? null : Empty), saveNow: !batch.FromLog);
    }

    private static readonly IReadOnlyDictionary<long, PaymentScore> Empty = new Dictionary<long, PaymentScore>();
}
