using RamPay.Core;
using RamPay.Journal;
using RamPay.Sinks;
using static RamPay.Events.EventSegmentFormat;

namespace RamPay.Events;

/// <summary>Settings of the <see cref="EventLog"/>.</summary>
public sealed record EventLogOptions
{
    /// <summary>The folder of the log's segment files (<c>&lt;data&gt;/events</c> in the server).</summary>
    public required string Directory { get; init; }
    /// <summary>Events older than this (their journaled time against the clock) are dropped.</summary>
    public TimeSpan Retention { get; init; } = TimeSpan.FromDays(30);
    /// <summary>When the events' JSON passes this many bytes, the oldest are dropped until it is under 90 % of it.</summary>
    public long MaxBytes { get; init; } = 1L << 30;
    /// <summary>The clock retention is measured against (tests move it).</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;
    /// <summary>
    /// How many of the newest events the log also keeps in memory (a power of two; 0 = none, the default), so that an
    /// <see cref="EventLogFeeder"/> takes them from there instead of reading them back from the segment files
    /// (<see cref="EventLog.ReadTail"/>). The bound of that memory: about this many events' JSON. The server keeps none:
    /// its consumers' fan-out (<see cref="EventFanOut"/>) reads each batch once from the files into one reused buffer,
    /// which costs less than the tail's objects did (one array and two objects per event, each living long enough to
    /// reach the oldest generation of the garbage collector; docs/benchmarks.md, "Consumers' fan-out").
    /// </summary>
    public int TailEvents { get; init; }
    /// <summary>
    /// The longest the log's batches go without an fsync (0 = every batch fsynced). Between fsyncs a batch is one
    /// write into the operating system's page cache: a SIGKILL loses nothing, a power loss may roll the last batches
    /// back (events and checkpoint together) and the log re-derives them from the journal
    /// (<see cref="EventLog.FsyncedCheckpoint"/>).
    /// </summary>
    public TimeSpan FsyncInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>
    /// The size at which the log starts a new segment file (0 = a sixteenth of <see cref="MaxBytes"/>, at most 64 MiB):
    /// retention deletes whole segments, so this is the granularity of the byte cap.
    /// </summary>
    public long SegmentBytes { get; init; }

    /// <summary>The segment size in force.</summary>
    public long EffectiveSegmentBytes => SegmentBytes > 0 ? SegmentBytes : Math.Clamp(MaxBytes / 16, 64 << 10, 64L << 20);

    public void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(Directory);
        if (Retention <= TimeSpan.Zero) throw new ArgumentException("the event log's retention must be positive");
        if (MaxBytes < 1 << 20) throw new ArgumentException("the event log's byte cap must be at least 1 MiB");
        if (TailEvents < 0 || (TailEvents & (TailEvents - 1)) != 0 || TailEvents > 1 << 20)
            throw new ArgumentException("the event log's in-memory tail must be 0 or a power of two up to 1048576 events");
        if (FsyncInterval < TimeSpan.Zero || FsyncInterval > TimeSpan.FromMinutes(1)) throw new ArgumentException("the event log's fsync interval must be 0..60 s");
        if (SegmentBytes != 0 && (SegmentBytes < 4096 || SegmentBytes > 1L << 30)) throw new ArgumentException("the event log's segment size must be 0 (derived) or 4 KiB..1 GiB");
    }
}

/// <summary>One page of events and whether more lie beyond it.</summary>
public sealed record EventPage(IReadOnlyList<StoredEvent> Data, bool HasMore);

/// <summary>An event as stored, with the party the reader sees it as (Full for an admin).</summary>
public sealed record StoredEvent(EventRecord Record, EventParty Party)
{
    /// <summary>The JSON this reader may see (<see cref="EventAudience.Cut"/>).</summary>
    public ReadOnlyMemory<byte> VisibleJson => EventAudience.Cut(Record.Json, Party);
}

/// <summary>
/// The server's local, durable, append-only event store (docs/events.md, "The event log"): every event the Kafka sink
/// would publish, byte for byte (the same <see cref="EventMapper"/> and <see cref="EventEncoder"/>), in stream order,
/// with the users each concerns (and the part of it they may see), kept for a retention and a byte cap.
/// <para>
/// Laid out for what it does (<see cref="EventSegmentFormat"/>): append-only segment files of CRC-framed records, one
/// write per batch (its events, then a commit record with the log's checkpoint), an fsync at most every
/// <see cref="EventLogOptions.FsyncInterval"/>; retention deletes whole old segments. In memory, per event, its
/// position, type and file offset (rows are dense, so row to place is arithmetic and an event id is found by a
/// binary search, no hash index), and per user the rows they may see: both rebuilt from the segments at open.
/// It replaced SQLite B-trees that cost 29–45 µs of CPU per event (docs/benchmarks.md).
/// </para>
/// <para>
/// One writer (<see cref="EventLogSink"/>, on the sink runner's thread) and any number of readers (the events API,
/// the consumers' feeders): readers take what they need from the index under a short lock and read the files outside it.
/// </para>
/// </summary>
public sealed class EventLog : IDisposable
{
    /// <summary>The SQLite file of the layout before segments (a start migrates it into segments and deletes it).</summary>
    public const string FileName = "events.db";

    private readonly EventLogOptions _options;
    private readonly long _segmentBytes;
    private bool _disposed;

    // ---- the index (guarded by _lock; the writer changes it once per batch) -----------------------------------

    /// <summary>An event's place: its position (its id), type and where its record starts in its segment.</summary>
    private struct RowEntry
    {
        public long Sequence;
        public int Index;
        public int Offset;
        public byte Ordinal;
        public EventType Type;
        public readonly EventPosition Position => new(Sequence, Index, Ordinal);
    }

    /// <summary>One segment file: rows FirstRow.. FirstRow + Count - 1, committed up to Length bytes.</summary>
    private sealed class Segment(string path, long firstRow, EventPosition previous)
    {
        public readonly string Path = path;
        public readonly long FirstRow = firstRow;
        /// <summary>The last event before this segment (None for the first segment ever): what dropping the segments before it dropped.</summary>
        public readonly EventPosition Previous = previous;
        public RowEntry[] Rows = new RowEntry[256];
        public int Count;
        public long Length;
        public long JsonBytes;
        public long OldestMs = long.MaxValue, NewestMs = long.MinValue;
        public long EndRow => FirstRow + Count; // one past the last

        public void Add(in RowEntry entry)
        {
            if (Count == Rows.Length) Array.Resize(ref Rows, Rows.Length * 2);
            Rows[Count++] = entry;
        }
    }

    /// <summary>The rows a user may see, rising, each as <c>row &lt;&lt; 2 | party</c>; dropped rows are cut from the front.</summary>
    private sealed class ViewerRows
    {
        public long[] Items = new long[4];
        public int Start, End;

        public void Add(long item)
        {
            if (End == Items.Length)
            {
                int live = End - Start;
                if (Start > 0 && live <= Items.Length / 2) Array.Copy(Items, Start, Items, 0, live); // room enough once compacted
                else
                {
                    var grown = new long[Items.Length * 2];
                    Array.Copy(Items, Start, grown, 0, live);
                    Items = grown;
                }
                Start = 0;
                End = live;
            }
            Items[End++] = item;
        }
    }

    private readonly Lock _lock = new();
    private readonly List<Segment> _segments = [];
    private readonly Dictionary<long, ViewerRows> _viewerRows = [];
    private SinkCheckpoint _checkpoint;
    private long _lastRow;
    private long _bytes;
    /// <summary>The last event ever appended (what a re-sent batch is compared with); writer only.</summary>
    private EventPosition _lastPosition;

    public EventLog(EventLogOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _segmentBytes = options.EffectiveSegmentBytes;
        _tail = new TailEntry?[options.TailEvents];
        System.IO.Directory.CreateDirectory(options.Directory);
        Path = options.Directory;
        string legacy = System.IO.Path.Combine(options.Directory, FileName);
        var started = System.Diagnostics.Stopwatch.StartNew();
        if (File.Exists(legacy)) MigrateFromSqlite(legacy);
        else
        {
            foreach (string stray in new[] { legacy + "-wal", legacy + "-shm" }) File.Delete(stray); // a migration that ended between its deletes
            Load();
        }
        OpenDuration = started.Elapsed;
    }

    /// <summary>The log's folder.</summary>
    public string Path { get; }
    public EventLogOptions Options => _options;
    /// <summary>How long the open took (scan of the segments, rebuild of the index, or a migration).</summary>
    public TimeSpan OpenDuration { get; }

    /// <summary>The bytes of event JSON held now (what the cap counts).</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>The log's position: the last journal sequence whose events are all in it (and that record's time).</summary>
    public SinkCheckpoint ReadCheckpoint()
    {
        lock (_lock) return _checkpoint;
    }

    /// <summary>The highest stored row number (rises by one per event appended): the consumers' feeder's wake-up signal.</summary>
    public long LastRow => Interlocked.Read(ref _lastRow);

    /// <summary>The segment files held now, oldest first (tests and diagnostics).</summary>
    internal IReadOnlyList<string> SegmentPaths()
    {
        lock (_lock) return [.. _segments.Select(s => s.Path)];
    }

    // ---- opening -----------------------------------------------------------------------------------------------

    /// <summary>
    /// Reads every segment, oldest first, into the index. Sealed segments were fsynced whole before the next one was
    /// created, so anything wrong in them is damage and stops the start; in the newest, the records after its last
    /// commit (a batch torn by a crash, or the garbage a power loss leaves past the fsynced end) are cut off.
    /// </summary>
    private void Load()
    {
        var files = System.IO.Directory.GetFiles(_options.Directory, FilePrefix + "*" + FileSuffix).Order(StringComparer.Ordinal).ToList();
        var buffer = new byte[1 << 20];
        var pending = new List<PendingRow>();
        Span<byte> header = stackalloc byte[HeaderBytes];
        for (int f = 0; f < files.Count; f++)
        {
            bool last = f == files.Count - 1;
            if (last && InterruptedCreation(files[f]))
            {
                // A crash inside NewSegment: the file never took a batch (batches go in only once its start is fsynced).
                File.Delete(files[f]);
                Durability.FlushDirectory(_options.Directory);
                break;
            }
            using var handle = File.OpenHandle(files[f], FileMode.Open, FileAccess.Read);
            long fileLength = RandomAccess.GetLength(handle);
            if (RandomAccess.Read(handle, header, 0) < HeaderBytes) throw new InvalidDataException($"{files[f]}: the segment header is cut short");
            var (firstRow, previous) = ReadHeader(header, files[f]);
            long expectedRow = _segments.Count == 0 ? firstRow : _segments[^1].EndRow;
            if (firstRow != expectedRow || System.IO.Path.GetFileName(files[f]) != SegmentFileName(firstRow))
                throw new InvalidDataException($"{files[f]} starts at row {firstRow} where row {expectedRow} was next: the event log's segments are not contiguous (move the folder {_options.Directory} aside to re-derive the log from the journal)");
            var segment = new Segment(files[f], firstRow, previous) { Length = HeaderBytes };
            lock (_lock) _segments.Add(segment);
            pending.Clear();
            long committedRows = firstRow - 1;
            long at = HeaderBytes;
            int have = 0;
            bool ended = false;
            while (!ended)
            {
                int read = RandomAccess.Read(handle, buffer.AsSpan(have), at + have);
                have += read;
                int used = 0;
                while (true)
                {
                    var status = TryRead(buffer.AsSpan(used, have - used), out var body, out int frameBytes);
                    if (status == FrameStatus.Ok)
                    {
                        int offset = checked((int)(at + used));
                        if (body[0] == KindEvent)
                        {
                            var e = new EventView(body);
                            Invariant.Check(e.Row == committedRows + pending.Count + 1, "the event log's rows rise by one");
                            var row = new PendingRow { Entry = new RowEntry { Sequence = e.Position.Sequence, Index = e.Position.Index, Ordinal = checked((byte)e.Position.Ordinal), Type = e.Type, Offset = offset }, OccurredMs = e.OccurredAtMs, JsonBytes = body.Length - e.JsonOffset, ViewerCount = e.ViewerCount };
                            if (e.ViewerCount > 0) row.Viewer0 = e.Viewer(0);
                            if (e.ViewerCount > 1) row.Viewer1 = e.Viewer(1);
                            pending.Add(row);
                        }
                        else
                        {
                            var (lastRow, sequence, ms) = ReadCommit(body);
                            Invariant.Check(lastRow == committedRows + pending.Count, "a commit record counts the rows before it");
                            Publish(segment, pending, at + used + frameBytes, new SinkCheckpoint(sequence, ms));
                            committedRows = lastRow;
                            pending.Clear();
                        }
                        used += frameBytes;
                        continue;
                    }
                    if (status == FrameStatus.Incomplete && read > 0)
                    {
                        if (frameBytes > buffer.Length) Array.Resize(ref buffer, frameBytes);
                        break; // read on
                    }
                    // The end of the file, inside a record or at a bad one.
                    ended = true;
                    break;
                }
                if (ended) break;
                Array.Copy(buffer, used, buffer, 0, have - used);
                have -= used;
                at += used;
            }
            if (segment.Length != fileLength)
            {
                if (!last) throw new InvalidDataException($"{files[f]}: a sealed segment of the event log is damaged at byte {segment.Length} of {fileLength} (move the folder {_options.Directory} aside to re-derive the log from the journal)");
                Invariant.Check(segment.Length > HeaderBytes, "a segment starts with a commit record, fsynced before its first batch");
                // What follows the last commit is a batch a crash tore, or bytes a power loss left: never acknowledged.
                using var w = File.OpenHandle(files[f], FileMode.Open, FileAccess.ReadWrite);
                RandomAccess.SetLength(w, segment.Length);
                Durability.FlushAll(w);
            }
        }
        if (_segments.Count == 0)
        {
            NewSegment(1, EventPosition.None);
            return;
        }
        var newest = _segments[^1];
        _lastPosition = LastPositionOf(newest);
        // A run before this one (same boot) may have left batches in the page cache only: fsynced here, what the files
        // hold now is what a power loss cannot take back.
        using (var h = File.OpenHandle(newest.Path, FileMode.Open, FileAccess.ReadWrite)) Durability.FlushData(h);
        Durability.FlushDirectory(_options.Directory);
        _fsynced = _checkpoint;
    }

    /// <summary>Whether <paramref name="path"/> is a segment whose creation a crash cut: no longer than a header and a commit record, and not both intact.</summary>
    private static bool InterruptedCreation(string path)
    {
        byte[] start = File.ReadAllBytes(path);
        if (start.Length > HeaderBytes + CommitFrameBytes) return false;
        if (start.Length < HeaderBytes + CommitFrameBytes) return true;
        try
        {
            ReadHeader(start, path);
        }
        catch (InvalidDataException)
        {
            return true;
        }
        return EventSegmentFormat.TryRead(start.AsSpan(HeaderBytes), out var body, out _) != FrameStatus.Ok || body[0] != KindCommit;
    }

    private EventPosition LastPositionOf(Segment newest)
    {
        lock (_lock)
        {
            for (int i = _segments.Count - 1; i >= 0; i--)
                if (_segments[i].Count > 0) return _segments[i].Rows[_segments[i].Count - 1].Position;
            return _segments[0].Previous;
        }
    }

    /// <summary>
    /// Starts a segment: its header and a commit record with the current checkpoint, fsynced with its directory entry
    /// before any batch goes into it (so a power loss never leaves a segment without its start).
    /// </summary>
    private void NewSegment(long firstRow, EventPosition previous)
    {
        string path = System.IO.Path.Combine(_options.Directory, SegmentFileName(firstRow));
        Span<byte> start = stackalloc byte[HeaderBytes + CommitFrameBytes];
        WriteHeader(start, firstRow, previous);
        WriteCommit(start[HeaderBytes..], firstRow - 1, _checkpoint.Sequence, _checkpoint.TimestampMs);
        var file = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        RandomAccess.Write(file, start, 0);
        Durability.FlushData(file);
        Durability.FlushDirectory(_options.Directory);
        var segment = new Segment(path, firstRow, previous) { Length = start.Length };
        lock (_lock) _segments.Add(segment);
        _file?.Dispose();
        _file = file;
        _fsynced = _checkpoint;
    }

    // ---- writing (one thread) ---------------------------------------------------------------------------------

    /// <summary>An event of a batch being written: its index entry and viewers, published once the batch is written.</summary>
    private struct PendingRow
    {
        public RowEntry Entry;
        public long OccurredMs;
        public int JsonBytes;
        public int ViewerCount;
        public EventViewer Viewer0, Viewer1;
    }

    private readonly EventEncoder _encoder = new();
    private readonly MappedEvent[] _mapped = new MappedEvent[EventMapper.MaxEventsPerChange];
    private readonly EventViewer[] _viewers = new EventViewer[EventAudience.Max];
    private readonly List<PendingRow> _pendingRows = [];
    private byte[] _batch = new byte[1 << 16];
    private int _batchUsed;
    /// <summary>The newest segment, open for writing (the writer's only).</summary>
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _file;
    private bool _unsynced;

    /// <summary>An event of the in-memory tail and its row.</summary>
    private sealed record TailEntry(long Row, EventRecord Record);
    private readonly TailEntry?[] _tail;
    private readonly List<TailEntry> _pending = [];
    private TaskCompletionSource _appended = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Completes when a batch with new events has been committed after this call (a feeder takes it before it looks
    /// for events, so that no append between its look and its wait is missed).
    /// </summary>
    public Task Appended => Volatile.Read(ref _appended).Task;

    /// <summary>
    /// The events in rows <paramref name="afterRow"/>+1.. (at most <paramref name="max"/>, all after
    /// <paramref name="after"/>) that the in-memory tail still holds, in order, into <paramref name="into"/>; returns
    /// the last row taken, or <paramref name="afterRow"/> when the tail does not hold the next row (read the files then).
    /// </summary>
    public long ReadTail(long afterRow, EventPosition after, int max, List<EventRecord> into)
    {
        if (_tail.Length == 0 || afterRow < 0) return afterRow;
        long last = LastRow;
        long row = afterRow;
        while (row < last && into.Count < max)
        {
            var entry = Volatile.Read(ref _tail[(row + 1) & (_tail.Length - 1)]);
            // Overwritten by a newer row (the reader fell more than the tail behind), or rows restarted: the files have it.
            if (entry is null || entry.Row != row + 1 || entry.Record.Position <= after) break;
            into.Add(entry.Record);
            after = entry.Record.Position;
            row++;
        }
        return row;
    }

    private long _lastFsyncMs = long.MinValue / 2;
    private SinkCheckpoint _fsynced;
    private readonly Lock _fsyncedLock = new();

    /// <summary>
    /// The checkpoint as of the last fsync: what a power loss cannot take back (at or before
    /// <see cref="ReadCheckpoint"/>; everything the files hold is fsynced when the log opens). Journal retirement counts
    /// only this (<see cref="EventLogSink"/> is an <see cref="IPowerLossCheckpointSink"/>).
    /// <para>
    /// Why batches between fsyncs may stay in the page cache: the log is derived from the journal, and its checkpoint
    /// is written in the same write as the events it covers (the batch's commit record). A power loss can leave any
    /// prefix of what was not fsynced, and garbage past it; the log opens at the last intact commit record (every
    /// record carries a CRC, and only events before a commit count), holding exactly the events up to that
    /// checkpoint; the sink is then re-sent the journal from there (the follower rebuilds from the journal, which
    /// retirement has kept because it counted only this fsynced checkpoint) and writes the same events, same ids, same
    /// bytes, same rows. A consumer whose own checkpoint had run ahead of the rolled-back log reads by position, so it
    /// sees the re-derived events after its checkpoint once and no others. A process crash (SIGKILL) loses nothing
    /// that was acknowledged: a batch is published to readers only after its write returned, and a written batch is in
    /// the operating system's hands. Proven by EventLogPowerLossTests and EventLogCrashTests.
    /// </para>
    /// </summary>
    public SinkCheckpoint FsyncedCheckpoint { get { lock (_fsyncedLock) return _fsynced; } }

    /// <summary>Batches committed by <see cref="Append"/> since the log was opened (tests and diagnostics).</summary>
    public long BatchesCommitted => Interlocked.Read(ref _batchesCommitted);
    private long _batchesCommitted;

    /// <summary>
    /// Appends the events of <paramref name="changes"/> and moves the checkpoint to <paramref name="through"/>, in one
    /// write (the events' records, then a commit record); an event at or before the last one stored (a re-sent batch)
    /// is skipped. Fsyncs when <see cref="EventLogOptions.FsyncInterval"/> has passed since the last fsync. Then applies
    /// retention when it may be due (two comparisons per batch; no scan). One thread only.
    /// </summary>
    public int Append(ReadOnlySpan<Change> changes, SinkCheckpoint through)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long nowMs = _options.Clock.GetUtcNow().ToUnixTimeMilliseconds();
        bool fsync = _options.FsyncInterval == TimeSpan.Zero || nowMs - _lastFsyncMs >= (long)_options.FsyncInterval.TotalMilliseconds || nowMs < _lastFsyncMs;
        Segment segment = OpenWriter(nowMs);
        _batchUsed = 0;
        _pendingRows.Clear();
        _pending.Clear();
        long row = LastRow;
        var lastPosition = _lastPosition;
        foreach (ref readonly Change change in changes)
        {
            int count = EventMapper.Map(change, _mapped);
            for (int i = 0; i < count; i++)
            {
                ref readonly MappedEvent e = ref _mapped[i];
                var position = new EventPosition(change.Sequence, change.Index, e.Ordinal);
                if (position <= lastPosition) continue; // stored by an earlier attempt at this batch
                lastPosition = position;
                // Framed straight from the encoder's buffer: nothing allocated per event. Only an in-memory tail
                // (TailEvents > 0; the server has none) keeps a copy, as an object that lives until the tail moves past it.
                var json = _encoder.Encode(change, e);
                int viewers = EventAudience.Viewers(change, e, _viewers);
                AddEvent(segment, ++row, position, e.Type, change.TimestampMs, e.KeyAccount, _viewers.AsSpan(0, viewers), json);
                if (_tail.Length > 0)
                    _pending.Add(new TailEntry(row, new EventRecord(position, EventTypes.Name(e.Type), EventTypes.SchemaVersion(e.Type), change.TimestampMs, e.KeyAccount, json.ToArray())));
            }
        }
        int appended = _pendingRows.Count;
        bool write = appended > 0 || through != _checkpoint;
        // The tail first, then the index and the row count (Publish): a reader that sees a row as stored finds it in
        // the tail (or, once the tail has moved past it, in the files).
        foreach (var entry in _pending) Volatile.Write(ref _tail[entry.Row & (_tail.Length - 1)], entry);
        _pending.Clear();
        if (write)
        {
            WriteBatch(segment, row, through, fsync);
            _lastPosition = lastPosition;
        }
        else if (fsync && _unsynced)
        {
            Durability.FlushData(_file!);
            _unsynced = false;
        }
        if (fsync)
        {
            _lastFsyncMs = nowMs;
            lock (_fsyncedLock) _fsynced = through;
        }
        Interlocked.Increment(ref _batchesCommitted);
        // One wake-up for every waiting feeder, per batch, not per event.
        if (appended > 0) Interlocked.Exchange(ref _appended, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        if (RetentionMayBeDue(nowMs)) ApplyRetention();
        return appended;
    }

    /// <summary>Frames one event into the batch buffer and notes its index entry.</summary>
    private void AddEvent(Segment segment, long row, EventPosition position, EventType type, long occurredMs, long keyAccount, ReadOnlySpan<EventViewer> viewers, ReadOnlySpan<byte> json)
    {
        int frame = EventFrameBytes(viewers.Length, json.Length);
        EnsureBatchRoom(frame);
        var entry = new RowEntry { Sequence = position.Sequence, Index = position.Index, Ordinal = checked((byte)position.Ordinal), Type = type, Offset = checked((int)(segment.Length + _batchUsed)) };
        WriteEvent(_batch.AsSpan(_batchUsed), row, position, type, occurredMs, keyAccount, viewers, json);
        _batchUsed += frame;
        _pendingRows.Add(new PendingRow
        {
            Entry = entry, OccurredMs = occurredMs, JsonBytes = json.Length, ViewerCount = viewers.Length,
            Viewer0 = viewers.Length > 0 ? viewers[0] : default, Viewer1 = viewers.Length > 1 ? viewers[1] : default,
        });
    }

    /// <summary>
    /// Ends the batch with its commit record, writes it with one call at the segment's committed end (bytes a failed
    /// earlier attempt left past it are overwritten), fsyncs when asked, then publishes it to readers.
    /// </summary>
    private void WriteBatch(Segment segment, long lastRow, SinkCheckpoint through, bool fsync)
    {
        EnsureBatchRoom(CommitFrameBytes);
        WriteCommit(_batch.AsSpan(_batchUsed), lastRow, through.Sequence, through.TimestampMs);
        _batchUsed += CommitFrameBytes;
        RandomAccess.Write(_file!, _batch.AsSpan(0, _batchUsed), segment.Length);
        _unsynced = true;
        if (fsync)
        {
            Durability.FlushData(_file!);
            _unsynced = false;
        }
        Publish(segment, _pendingRows, segment.Length + _batchUsed, through);
        _pendingRows.Clear();
        _batchUsed = 0;
    }

    /// <summary>Adds a written batch's rows to the index and moves the checkpoint (under the lock, all at once).</summary>
    private void Publish(Segment segment, List<PendingRow> rows, long length, SinkCheckpoint through)
    {
        long bytes = 0;
        lock (_lock)
        {
            foreach (var r in rows)
            {
                long row = segment.EndRow;
                segment.Add(r.Entry);
                segment.OldestMs = Math.Min(segment.OldestMs, r.OccurredMs);
                segment.NewestMs = Math.Max(segment.NewestMs, r.OccurredMs);
                bytes += r.JsonBytes;
                if (r.ViewerCount > 0) AddViewer(r.Viewer0, row);
                if (r.ViewerCount > 1) AddViewer(r.Viewer1, row);
            }
            segment.JsonBytes += bytes;
            segment.Length = length;
            _checkpoint = through;
            Interlocked.Exchange(ref _lastRow, segment.EndRow - 1);
        }
        Interlocked.Add(ref _bytes, bytes);
    }

    private void AddViewer(EventViewer v, long row)
    {
        if (!_viewerRows.TryGetValue(v.UserId, out var list)) _viewerRows[v.UserId] = list = new ViewerRows();
        list.Add(row << 2 | (long)v.Party);
    }

    private void EnsureBatchRoom(int bytes)
    {
        if (_batchUsed + bytes > _batch.Length) Array.Resize(ref _batch, Math.Max(_batch.Length * 2, _batchUsed + bytes));
    }

    /// <summary>The newest segment, open for writing; a new one first when it is full or its oldest event is older than a 32nd of the retention.</summary>
    private Segment OpenWriter(long nowMs)
    {
        Segment newest = OpenFile();
        if (newest.Length >= _segmentBytes || (newest.Count > 0 && nowMs - newest.OldestMs > (long)(_options.Retention.TotalMilliseconds / 32)))
        {
            Roll();
            lock (_lock) newest = _segments[^1];
        }
        return newest;
    }

    /// <summary>The newest segment, its file open for writing.</summary>
    private Segment OpenFile()
    {
        Segment newest;
        lock (_lock) newest = _segments[^1];
        if (_file is null)
        {
            _file = File.OpenHandle(newest.Path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            // Bytes a failed write left past the committed end are not part of the log.
            if (RandomAccess.GetLength(_file) != newest.Length) RandomAccess.SetLength(_file, newest.Length);
        }
        return newest;
    }

    /// <summary>Seals the newest segment (fsynced whole: no later power loss reaches into it) and starts the next.</summary>
    private void Roll()
    {
        Durability.FlushData(_file!);
        _unsynced = false;
        Segment newest;
        lock (_lock) newest = _segments[^1];
        NewSegment(newest.EndRow, _lastPosition);
    }

    private long _lastRetentionMs = long.MinValue / 2;

    private bool RetentionMayBeDue(long nowMs)
    {
        if (Interlocked.Read(ref _bytes) > _options.MaxBytes) return true;
        if (nowMs - _lastRetentionMs < 5_000 && nowMs >= _lastRetentionMs) return false;
        _lastRetentionMs = nowMs;
        long cutoffMs = nowMs - (long)_options.Retention.TotalMilliseconds;
        lock (_lock) return _segments[0].Count > 0 && _segments[0].NewestMs < cutoffMs;
    }

    /// <summary>
    /// Drops the oldest segments whose newest event is past the retention, then, when the JSON is over the byte cap, the
    /// oldest until it is under 90 % of it (whole segments: the cap's granularity is
    /// <see cref="EventLogOptions.EffectiveSegmentBytes"/>, retention's a segment's span). The newest segment is sealed
    /// first when it must go too. Returns how many events went. Called by the writer thread after a batch (and by tests).
    /// </summary>
    public long ApplyRetention()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long nowMs = _options.Clock.GetUtcNow().ToUnixTimeMilliseconds();
        long cutoffMs = nowMs - (long)_options.Retention.TotalMilliseconds;
        bool capping = Bytes > _options.MaxBytes;
        long removed = 0;
        while (true)
        {
            Segment oldest;
            int count;
            lock (_lock)
            {
                oldest = _segments[0];
                count = _segments.Count;
            }
            bool drop = oldest.Count == 0
                ? count > 1 // an empty sealed segment (rolled before any event) holds nothing worth keeping
                : oldest.NewestMs < cutoffMs || (capping && Bytes > _options.MaxBytes / 10 * 9);
            if (!drop) return removed;
            if (count == 1)
            {
                OpenFile();
                Roll();
            }
            removed += oldest.Count;
            lock (_lock)
            {
                Invariant.Check(ReferenceEquals(_segments[0], oldest), "retention drops the oldest segment");
                _segments.RemoveAt(0);
                long firstRow = _segments[0].FirstRow;
                List<long>? empty = null;
                foreach (var (user, list) in _viewerRows)
                {
                    while (list.Start < list.End && list.Items[list.Start] >> 2 < firstRow) list.Start++;
                    if (list.Start == list.End) (empty ??= []).Add(user);
                }
                if (empty is not null) foreach (long user in empty) _viewerRows.Remove(user);
            }
            Interlocked.Add(ref _bytes, -oldest.JsonBytes);
            // Readers that opened it finish from their open handle; a reader that comes after finds it gone and looks again.
            File.Delete(oldest.Path);
        }
    }

    // ---- reading (any thread) ---------------------------------------------------------------------------------

    /// <summary>Where to read an event: its segment, row, record start and a bound past its end, and the party of the reader.</summary>
    private readonly record struct Fetch(string Path, long Row, long Offset, long End, EventParty Party);

    /// <summary>The fetch of <paramref name="row"/> (held; under the lock).</summary>
    private Fetch FetchOf(long row, EventParty party)
    {
        var s = SegmentOf(row);
        int i = (int)(row - s.FirstRow);
        long end = i + 1 < s.Count ? s.Rows[i + 1].Offset : s.Length;
        return new Fetch(s.Path, row, s.Rows[i].Offset, end, party);
    }

    private Segment SegmentOf(long row)
    {
        int lo = 0, hi = _segments.Count - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (_segments[mid].FirstRow <= row) lo = mid; else hi = mid - 1;
        }
        var s = _segments[lo];
        Invariant.Check(row >= s.FirstRow && row < s.EndRow, "a row looked up is held");
        return s;
    }

    private long FirstRowHeld => _segments[0].FirstRow;

    private EventPosition PositionOf(long row)
    {
        var s = SegmentOf(row);
        return s.Rows[row - s.FirstRow].Position;
    }

    /// <summary>The first held row at or after <paramref name="p"/> (one past the last when none); under the lock.</summary>
    private long RowAtOrAfter(EventPosition p)
    {
        long lo = FirstRowHeld, hi = _lastRow + 1;
        while (lo < hi)
        {
            long mid = lo + (hi - lo) / 2;
            if (PositionOf(mid) < p) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>The last held row at or before <paramref name="p"/> (one before the first held when none); under the lock.</summary>
    private long RowAtOrBefore(EventPosition p)
    {
        long lo = FirstRowHeld, hi = _lastRow + 1;
        while (lo < hi)
        {
            long mid = lo + (hi - lo) / 2;
            if (PositionOf(mid) <= p) lo = mid + 1; else hi = mid;
        }
        return lo - 1;
    }

    /// <summary>One event by id, as <paramref name="viewer"/> may see it (null viewer = an admin: all of it); null when it is not held or not theirs.</summary>
    public StoredEvent? Get(EventPosition id, long? viewer)
    {
        for (int attempt = 0; ; attempt++)
        {
            Fetch fetch;
            lock (_lock)
            {
                long row = RowAtOrAfter(id);
                if (row > _lastRow || PositionOf(row) != id) return null;
                var party = EventParty.Full;
                if (viewer is { } u)
                {
                    if (!_viewerRows.TryGetValue(u, out var list)) return null;
                    int at = FindViewerRow(list, row);
                    if (at < list.End && list.Items[at] >> 2 == row) party = (EventParty)(list.Items[at] & 3);
                    else return null;
                }
                fetch = FetchOf(row, party);
            }
            var got = ReadFetches([fetch], attempt);
            if (got is not null) return got[0];
        }
    }

    /// <summary>The index in <paramref name="list"/> of the first item whose row is at or after <paramref name="row"/>.</summary>
    private static int FindViewerRow(ViewerRows list, long row)
    {
        int lo = list.Start, hi = list.End;
        while (lo < hi)
        {
            int mid = lo + (hi - lo) / 2;
            if (list.Items[mid] >> 2 < row) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>
    /// A page of events, newest first (Stripe's list semantics): those before <paramref name="startingAfter"/>, or after
    /// <paramref name="endingBefore"/> (the ones nearest to it), or the newest; only <paramref name="viewer"/>'s (null =
    /// all, for an admin); of one type, or of a type prefix when <paramref name="type"/> ends with <c>*</c> (letters only).
    /// </summary>
    public EventPage List(long? viewer, int limit, EventPosition? startingAfter, EventPosition? endingBefore, string? type)
    {
        if (limit is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(limit));
        if (startingAfter is not null && endingBefore is not null) throw new ArgumentException("starting_after and ending_before exclude each other");
        if (type is not null && !IsTypeFilter(type)) throw new ArgumentException("a type filter is letters, optionally ending with *", nameof(type));
        var types = TypeMask(type);
        for (int attempt = 0; ; attempt++)
        {
            var fetches = new List<Fetch>(limit + 1);
            bool ascending = endingBefore is not null;
            lock (_lock)
            {
                // Rows strictly inside (low, high): before the cursor's place, whether or not the cursor's event is still held.
                long low = FirstRowHeld - 1, high = _lastRow + 1;
                if (startingAfter is { } after) high = RowAtOrAfter(after);
                if (endingBefore is { } before) low = RowAtOrBefore(before);
                if (viewer is { } u)
                {
                    if (_viewerRows.TryGetValue(u, out var list))
                    {
                        if (ascending)
                            for (int i = FindViewerRow(list, low + 1); i < list.End && fetches.Count <= limit; i++)
                                Take(list.Items[i], high);
                        else
                            for (int i = FindViewerRow(list, high) - 1; i >= list.Start && fetches.Count <= limit; i--)
                                Take(list.Items[i], high);
                    }
                }
                else if (ascending)
                {
                    for (long row = low + 1; row < high && fetches.Count <= limit; row++) Take(row << 2 | (long)EventParty.Full, high);
                }
                else
                {
                    for (long row = high - 1; row > low && fetches.Count <= limit; row--) Take(row << 2 | (long)EventParty.Full, high);
                }

                void Take(long item, long below)
                {
                    long row = item >> 2;
                    if (row <= low || row >= below) return;
                    var s = SegmentOf(row);
                    if (types is not null && !types[(int)s.Rows[row - s.FirstRow].Type]) return;
                    fetches.Add(FetchOf(row, (EventParty)(item & 3)));
                }
            }
            var rows = ReadFetches(fetches, attempt);
            if (rows is null) continue;
            bool more = rows.Count > limit;
            if (more) rows.RemoveAt(rows.Count - 1);
            if (ascending) rows.Reverse();
            return new EventPage(rows, more);
        }
    }

    /// <summary>Which event types a filter lets through (null = all).</summary>
    private static bool[]? TypeMask(string? type)
    {
        if (type is null) return null;
        var mask = new bool[256];
        bool prefix = type.EndsWith('*');
        string stem = prefix ? type[..^1] : type;
        foreach (var t in EventTypes.All)
        {
            string name = EventTypes.Name(t);
            mask[(int)t] = prefix ? name.StartsWith(stem, StringComparison.Ordinal) : name == stem;
        }
        return mask;
    }

    /// <summary>
    /// Reads the events of <paramref name="fetches"/> (each read checked against its CRC and its row); null when a
    /// segment was deleted by retention since the index was read (the caller looks again: those rows are gone now).
    /// </summary>
    private static List<StoredEvent>? ReadFetches(List<Fetch> fetches, int attempt)
    {
        var result = new List<StoredEvent>(fetches.Count);
        Microsoft.Win32.SafeHandles.SafeFileHandle? handle = null;
        string? open = null;
        try
        {
            foreach (var f in fetches)
            {
                if (f.Path != open)
                {
                    handle?.Dispose();
                    open = f.Path;
                    handle = File.OpenHandle(f.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                }
                var bytes = new byte[f.End - f.Offset];
                int read = RandomAccess.Read(handle!, bytes, f.Offset);
                var status = EventSegmentFormat.TryRead(bytes.AsSpan(0, read), out var body, out int frameBytes);
                Invariant.Check(status == FrameStatus.Ok && body[0] == KindEvent, "an indexed event record reads back intact");
                result.Add(new StoredEvent(ToRecord(bytes.AsMemory(FrameHeaderBytes, frameBytes - FrameHeaderBytes), f.Row), f.Party));
            }
            return result;
        }
        catch (FileNotFoundException) when (attempt < 100)
        {
            return null;
        }
        finally
        {
            handle?.Dispose();
        }
    }

    /// <summary>The record of an event body (the JSON is a slice of <paramref name="body"/>, not a copy).</summary>
    private static EventRecord ToRecord(ReadOnlyMemory<byte> body, long row)
    {
        var e = new EventView(body.Span);
        Invariant.Check(e.Row == row, "an event record read back is the row the index says");
        return new EventRecord(e.Position, EventTypes.Name(e.Type), e.SchemaVersion, e.OccurredAtMs, e.KeyAccount, body[e.JsonOffset..]);
    }

    /// <summary>
    /// Events after <paramref name="after"/> in stream order, at most <paramref name="max"/>, whole (for consumers).
    /// </summary>
    public IReadOnlyList<EventRecord> ReadAfter(EventPosition after, int max)
    {
        var list = new List<EventRecord>();
        ReadAfter(after, max, list);
        return list;
    }

    /// <summary>
    /// As <see cref="ReadAfter(EventPosition, int)"/>, into <paramref name="into"/>; returns the row of the last event
    /// read (for <see cref="ReadTail"/>), or -1 when none was. One read per segment touched.
    /// </summary>
    public long ReadAfter(EventPosition after, int max, List<EventRecord> into)
    {
        byte[]? fresh = null;
        return ReadAfter(after, max, into, ref fresh);
    }

    /// <summary>
    /// As <see cref="ReadAfter(EventPosition, int, List{EventRecord})"/>, into <paramref name="buffer"/>, which is reused
    /// when large enough (grown otherwise): the records' JSON are slices of it, valid until the caller reuses it. One read
    /// per segment touched, one CRC check per record, and per event only its <see cref="EventRecord"/>: what the
    /// consumers' fan-out (<see cref="EventFanOut"/>) reads each batch with, once for every consumer.
    /// </summary>
    public long ReadAfter(EventPosition after, int max, List<EventRecord> into, ref byte[]? buffer)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        for (int attempt = 0; ; attempt++)
        {
            var ranges = new List<(Fetch First, long Count)>();
            lock (_lock)
            {
                long row = RowAtOrBefore(after) + 1;
                long left = max;
                while (row <= _lastRow && left > 0)
                {
                    var s = SegmentOf(row);
                    long n = Math.Min(left, s.EndRow - row);
                    var first = FetchOf(row, EventParty.Full);
                    var last = FetchOf(row + n - 1, EventParty.Full);
                    ranges.Add((first with { End = last.End }, n));
                    row += n;
                    left -= n;
                }
            }
            int start = into.Count;
            long lastRow = -1;
            long total = 0;
            foreach (var (range, _) in ranges) total += range.End - range.Offset;
            if (buffer is null || buffer.Length < total) buffer = new byte[Math.Max(total, Math.Min((long)(buffer?.Length ?? 0) * 2, int.MaxValue / 2))];
            var bytes = buffer;
            try
            {
                int at = 0;
                foreach (var (range, count) in ranges)
                {
                    using var handle = File.OpenHandle(range.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    int length = checked((int)(range.End - range.Offset));
                    int read = RandomAccess.Read(handle, bytes.AsSpan(at, length), range.Offset);
                    Invariant.Check(read == length, "a committed range of a segment reads whole");
                    int end = at + length;
                    long row = range.Row;
                    while (row < range.Row + count)
                    {
                        var status = EventSegmentFormat.TryRead(bytes.AsSpan(at, end - at), out var body, out int frameBytes);
                        Invariant.Check(status == FrameStatus.Ok, "a committed record reads back intact");
                        if (body[0] == KindEvent) into.Add(ToRecord(bytes.AsMemory(at + FrameHeaderBytes, frameBytes - FrameHeaderBytes), row++));
                        at += frameBytes;
                    }
                    at = end;
                    lastRow = row - 1;
                }
                return lastRow;
            }
            catch (FileNotFoundException) when (attempt < 100)
            {
                into.RemoveRange(start, into.Count - start); // retention took a segment meanwhile: look again
            }
        }
    }

    /// <summary>The oldest event held (null when none): what the log can no longer serve lies before it.</summary>
    public EventPosition? Oldest()
    {
        lock (_lock) return _lastRow >= FirstRowHeld ? PositionOf(FirstRowHeld) : null;
    }

    /// <summary>The last event retention has dropped (null when none has been): a reader behind it has missed events.</summary>
    public EventPosition? DroppedThrough()
    {
        lock (_lock) return _segments[0].Previous == EventPosition.None ? null : _segments[0].Previous;
    }

    /// <summary>How many events lie after <paramref name="after"/> (a consumer's lag).</summary>
    public long CountAfter(EventPosition after)
    {
        lock (_lock) return Math.Max(0, _lastRow - RowAtOrBefore(after));
    }

    public static bool IsTypeFilter(string type)
    {
        if (type.Length is 0 or > 64) return false;
        for (int i = 0; i < type.Length; i++)
        {
            char ch = type[i];
            if (ch is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z')) continue;
            if (ch == '*' && i == type.Length - 1) continue;
            return false;
        }
        return true;
    }

    // ---- the layout before segments ---------------------------------------------------------------------------

    /// <summary>
    /// Moves a log written by the SQLite layout (<see cref="FileName"/>) into segments, in its order, with its viewers,
    /// checkpoint and the last event its retention dropped; rows are numbered afresh from 1 (nothing outside the
    /// process keeps rows). Crash-safe by order: segments left by an interrupted migration are deleted first, and the
    /// SQLite file goes only after the segments are fsynced.
    /// </summary>
    private void MigrateFromSqlite(string legacy)
    {
        foreach (string f in System.IO.Directory.GetFiles(_options.Directory, FilePrefix + "*" + FileSuffix)) File.Delete(f);
        var cs = new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder { DataSource = legacy, Pooling = false }.ToString();
        using (var events = new Microsoft.Data.Sqlite.SqliteConnection(cs))
        using (var viewers = new Microsoft.Data.Sqlite.SqliteConnection(cs))
        {
            events.Open();
            viewers.Open();
            long Meta(string name)
            {
                using var m = events.CreateCommand();
                m.CommandText = "SELECT value FROM meta WHERE name=$n";
                m.Parameters.AddWithValue("$n", name);
                return m.ExecuteScalar() is long v ? v : 0;
            }
            long schema = Meta("schema");
            if (schema != 1) throw new InvalidDataException($"the event log {legacy} has schema {schema}; this build migrates schema 1");
            var checkpoint = new SinkCheckpoint(Meta("checkpoint_sequence"), Meta("checkpoint_ms"));
            long dropped = Meta("dropped_sequence");
            var previous = dropped == 0 ? EventPosition.None : new EventPosition(dropped, (int)Meta("dropped_index"), (int)Meta("dropped_ordinal"));
            NewSegment(1, previous);
            _lastPosition = previous;
            var byName = EventTypes.All.ToDictionary(EventTypes.Name);
            using var ev = events.CreateCommand();
            ev.CommandText = "SELECT pos, sequence, idx, ordinal, type, occurred_at_ms, key_account, json FROM events ORDER BY pos";
            using var vw = viewers.CreateCommand();
            vw.CommandText = "SELECT pos, user_id, party FROM viewers ORDER BY pos, user_id";
            using var e = ev.ExecuteReader();
            using var v = vw.ExecuteReader();
            bool moreViewers = v.Read();
            var batch = new List<(EventPosition Position, EventType Type, long OccurredMs, long Key, byte[] Json, EventViewer[] Viewers)>();
            var seen = new List<EventViewer>(2);
            while (true)
            {
                bool more = e.Read();
                if (more)
                {
                    long pos = e.GetInt64(0);
                    seen.Clear();
                    while (moreViewers && v.GetInt64(0) < pos) moreViewers = v.Read();
                    while (moreViewers && v.GetInt64(0) == pos)
                    {
                        seen.Add(new EventViewer(v.GetInt64(1), (EventParty)v.GetInt32(2)));
                        moreViewers = v.Read();
                    }
                    Invariant.Check(seen.Count <= EventAudience.Max, "an event has at most two viewers");
                    var type = byName.TryGetValue(e.GetString(4), out var t) ? t : throw new InvalidDataException($"{legacy}: unknown event type {e.GetString(4)}");
                    batch.Add((new EventPosition(e.GetInt64(1), e.GetInt32(2), e.GetInt32(3)), type, e.GetInt64(5), e.GetInt64(6), (byte[])e.GetValue(7), [.. seen]));
                }
                if (batch.Count >= 4096 || (!more && (batch.Count > 0 || checkpoint != _checkpoint)))
                {
                    AppendRecords(batch, checkpoint);
                    batch.Clear();
                }
                if (!more) break;
            }
        }
        Durability.FlushData(_file!);
        Durability.FlushDirectory(_options.Directory);
        _fsynced = _checkpoint;
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (string f in new[] { legacy, legacy + "-wal", legacy + "-shm" }) File.Delete(f);
        Durability.FlushDirectory(_options.Directory);
    }

    /// <summary>Appends events already encoded (the migration's path; the same records as <see cref="Append"/> writes).</summary>
    private void AppendRecords(List<(EventPosition Position, EventType Type, long OccurredMs, long Key, byte[] Json, EventViewer[] Viewers)> events, SinkCheckpoint through)
    {
        var segment = OpenWriter(long.MinValue / 4);
        _batchUsed = 0;
        _pendingRows.Clear();
        long row = LastRow;
        foreach (var e in events)
        {
            Invariant.Check(e.Position > _lastPosition, "the migrated events rise");
            _lastPosition = e.Position;
            AddEvent(segment, ++row, e.Position, e.Type, e.OccurredMs, e.Key, e.Viewers, e.Json);
        }
        WriteBatch(segment, row, through, fsync: false);
    }

    /// <summary>Closes the writer's file (fsynced first); the log may be appended to again (it reopens the newest segment).</summary>
    public void CloseWriter()
    {
        if (_file is null) return;
        if (_unsynced)
        {
            Durability.FlushData(_file);
            _unsynced = false;
            lock (_fsyncedLock) _fsynced = ReadCheckpoint();
        }
        _file.Dispose();
        _file = null;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        CloseWriter();
    }
}

/// <summary>
/// The event log as a sink on the <see cref="SinkHub"/>: fed by the change feed like PostgreSQL and Kafka, so it runs
/// on the embedded default with no outside server, and its checkpoint is one journal retirement respects (the hub's
/// <c>FinishedThroughSequence</c> is the lowest of its sinks').
/// </summary>
public sealed class EventLogSink(EventLog log) : IPowerLossCheckpointSink
{
    public string Name => "events";
    public EventLog Log => log;

    public long FsyncedThroughSequence => log.FsyncedCheckpoint.Sequence;

    public SinkCheckpoint Open()
    {
        log.CloseWriter();
        return log.ReadCheckpoint();
    }

    public void Write(ReadOnlySpan<Change> changes, SinkCheckpoint through) => log.Append(changes, through);

    /// <summary>Closes the writer only: the log itself stays open for the API and the consumers (its owner disposes it).</summary>
    public void Dispose() => log.CloseWriter();
}
