using System.Globalization;
using Microsoft.Data.Sqlite;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Events;

/// <summary>Settings of the <see cref="EventLog"/>.</summary>
public sealed record EventLogOptions
{
    /// <summary>The folder of the log's database (<c>&lt;data&gt;/events</c> in the server).</summary>
    public required string Directory { get; init; }
    /// <summary>Events older than this (their journaled time against the clock) are dropped.</summary>
    public TimeSpan Retention { get; init; } = TimeSpan.FromDays(30);
    /// <summary>When the events' JSON passes this many bytes, the oldest are dropped until it is under 90 % of it.</summary>
    public long MaxBytes { get; init; } = 1L << 30;
    /// <summary>The clock retention is measured against (tests move it).</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;
    /// <summary>
    /// How many of the newest events the log also keeps in memory (a power of two; 0 = none), so that the consumers'
    /// feeders take them from there instead of each reading them back from SQLite (<see cref="EventLog.ReadTail"/>).
    /// The bound of that memory: about this many events' JSON.
    /// </summary>
    public int TailEvents { get; init; } = 16_384;
    /// <summary>
    /// The longest the log's commits go without an fsync (0 = every commit fsynced, <c>synchronous=FULL</c>). Between
    /// fsynced commits it commits with <c>synchronous=NORMAL</c>: a SIGKILL loses nothing, a power loss may roll the
    /// last commits back (events and checkpoint together) and the log re-derives them from the journal
    /// (<see cref="EventLog.FsyncedCheckpoint"/>).
    /// </summary>
    public TimeSpan FsyncInterval { get; init; } = TimeSpan.FromSeconds(1);

    public void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(Directory);
        if (Retention <= TimeSpan.Zero) throw new ArgumentException("the event log's retention must be positive");
        if (MaxBytes < 1 << 20) throw new ArgumentException("the event log's byte cap must be at least 1 MiB");
        if (TailEvents < 0 || (TailEvents & (TailEvents - 1)) != 0 || TailEvents > 1 << 20)
            throw new ArgumentException("the event log's in-memory tail must be 0 or a power of two up to 1048576 events");
        if (FsyncInterval < TimeSpan.Zero || FsyncInterval > TimeSpan.FromMinutes(1)) throw new ArgumentException("the event log's fsync interval must be 0..60 s");
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
/// indexed by event id, by the users each concerns (with the part of it they may see) and by account, kept for a
/// retention and a byte cap. SQLite in WAL mode with <c>synchronous=FULL</c>: a batch and the log's checkpoint commit
/// in one transaction, fsynced, so a SIGKILL (or a power loss) leaves both or neither.
/// <para>
/// One writer (<see cref="EventLogSink"/>, on the sink runner's thread) and any number of readers (the events API,
/// the consumers' feeder), each read on its own pooled connection: WAL lets readers run beside the writer.
/// </para>
/// </summary>
public sealed class EventLog : IDisposable
{
    public const string FileName = "events.db";
    private const int SchemaVersion = 1;

    private readonly EventLogOptions _options;
    private readonly string _connectionString;
    private SqliteConnection? _writer;
    private long _lastRetentionMs;
    private long _bytes;
    private long _lastPos;
    private bool _disposed;

    public EventLog(EventLogOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        System.IO.Directory.CreateDirectory(options.Directory);
        Path = System.IO.Path.Combine(options.Directory, FileName);
        _connectionString = new SqliteConnectionStringBuilder { DataSource = Path, Pooling = true, DefaultTimeout = 30 }.ToString();
        _tail = new TailEntry?[options.TailEvents];
        using var c = Open();
        Migrate(c);
        _bytes = Scalar(c, "SELECT value FROM meta WHERE name='bytes'");
        _lastPos = Scalar(c, "SELECT COALESCE(MAX(pos),0) FROM events");
        // A run before this one (same boot) may have left commits made with synchronous=NORMAL in the page cache: one
        // fsynced commit here puts them on the disk, so what the file holds now is the fsynced checkpoint.
        Scalar(c, "UPDATE meta SET value=value WHERE name='schema' RETURNING value");
        _fsynced = new SinkCheckpoint(Scalar(c, "SELECT value FROM meta WHERE name='checkpoint_sequence'"), Scalar(c, "SELECT value FROM meta WHERE name='checkpoint_ms'"));
    }

    public string Path { get; }
    public EventLogOptions Options => _options;

    /// <summary>The bytes of event JSON held now (what the cap counts).</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>The log's position: the last journal sequence whose events are all in it (and that record's time).</summary>
    public SinkCheckpoint ReadCheckpoint()
    {
        using var c = Open();
        return new SinkCheckpoint(Scalar(c, "SELECT value FROM meta WHERE name='checkpoint_sequence'"), Scalar(c, "SELECT value FROM meta WHERE name='checkpoint_ms'"));
    }

    /// <summary>The highest stored row number (rises by one per event appended): the consumers' feeder's wake-up signal.</summary>
    public long LastRow => Interlocked.Read(ref _lastPos);

    private SqliteConnection Open() => LocalStoreSql.Open(_connectionString);

    private static void Migrate(SqliteConnection c)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            INSERT OR IGNORE INTO meta VALUES('schema', 1), ('checkpoint_sequence', 0), ('checkpoint_ms', 0), ('bytes', 0);
            CREATE TABLE IF NOT EXISTS events(
              pos INTEGER PRIMARY KEY,
              sequence INTEGER NOT NULL, idx INTEGER NOT NULL, ordinal INTEGER NOT NULL,
              type TEXT NOT NULL, version INTEGER NOT NULL, occurred_at_ms INTEGER NOT NULL, key_account INTEGER NOT NULL,
              json BLOB NOT NULL);
            CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events(sequence, idx, ordinal);
            CREATE TABLE IF NOT EXISTS viewers(user_id INTEGER NOT NULL, pos INTEGER NOT NULL, party INTEGER NOT NULL, PRIMARY KEY(user_id, pos)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS viewers_by_pos ON viewers(pos);
            CREATE TABLE IF NOT EXISTS accounts(account_id INTEGER NOT NULL, pos INTEGER NOT NULL, PRIMARY KEY(account_id, pos)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS accounts_by_pos ON accounts(pos);
            """;
        cmd.ExecuteNonQuery();
        long schema = Scalar(c, "SELECT value FROM meta WHERE name='schema'");
        if (schema != SchemaVersion) throw new InvalidDataException($"the event log {c.DataSource} has schema {schema}; this build reads {SchemaVersion}");
    }

    private static long Scalar(SqliteConnection c, string sql, params (string, object)[] args)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v);
        object? r = cmd.ExecuteScalar();
        return r is null or DBNull ? 0 : Convert.ToInt64(r, CultureInfo.InvariantCulture);
    }

    // ---- writing (one thread) ---------------------------------------------------------------------------------

    private readonly EventEncoder _encoder = new();
    private readonly MappedEvent[] _mapped = new MappedEvent[EventMapper.MaxEventsPerChange];
    private readonly EventViewer[] _viewers = new EventViewer[EventAudience.Max];
    private WriterStatements? _statements;

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
    /// the last row taken, or <paramref name="afterRow"/> when the tail does not hold the next row (read SQLite then).
    /// </summary>
    public long ReadTail(long afterRow, EventPosition after, int max, List<EventRecord> into)
    {
        if (_tail.Length == 0 || afterRow < 0) return afterRow;
        long last = LastRow;
        long row = afterRow;
        while (row < last && into.Count < max)
        {
            var entry = Volatile.Read(ref _tail[(row + 1) & (_tail.Length - 1)]);
            // Overwritten by a newer row (the reader fell more than the tail behind), or rows restarted: SQLite has it.
            if (entry is null || entry.Row != row + 1 || entry.Record.Position <= after) break;
            into.Add(entry.Record);
            after = entry.Record.Position;
            row++;
        }
        return row;
    }

    private long _lastFsyncMs = long.MinValue / 2;
    /// <summary>Whether the writer's connection is at synchronous=FULL now (it opens so).</summary>
    private bool _writerFull = true;
    private SinkCheckpoint _fsynced;
    private readonly Lock _fsyncedLock = new();

    /// <summary>
    /// The checkpoint as of the last fsynced commit: what a power loss cannot take back (at or before
    /// <see cref="ReadCheckpoint"/>; read from the file when the writer opens). Journal retirement counts only this
    /// (<see cref="EventLogSink"/> is an <see cref="IPowerLossCheckpointSink"/>).
    /// <para>
    /// Why commits between fsyncs may be <c>synchronous=NORMAL</c>: the log is derived from the journal, and its
    /// checkpoint commits in the same SQLite transaction as the events it covers. In WAL mode a power loss can only
    /// drop whole transactions from the end of the WAL (each frame is checksummed, and recovery stops at the first
    /// frame that is missing or bad), so the log wakes up at an older checkpoint holding exactly the events up to it;
    /// the sink is then re-sent the journal from there (the follower rebuilds from the journal, which retirement has
    /// kept because it counted only this fsynced checkpoint) and writes the same events, same ids, same bytes, same
    /// rows. A consumer whose own checkpoint had run ahead of the rolled-back log reads by position, so it sees the
    /// re-derived events after its checkpoint once and no others. A process crash (SIGKILL) loses nothing at all: a
    /// NORMAL commit is in the operating system's hands when it returns. Proven by EventLogPowerLossTests.
    /// </para>
    /// </summary>
    public SinkCheckpoint FsyncedCheckpoint { get { lock (_fsyncedLock) return _fsynced; } }

    /// <summary>Batches committed by <see cref="Append"/> since the log was opened (tests and diagnostics).</summary>
    public long BatchesCommitted => Interlocked.Read(ref _batchesCommitted);
    private long _batchesCommitted;

    /// <summary>
    /// Appends the events of <paramref name="changes"/> and moves the checkpoint to <paramref name="through"/>, in one
    /// transaction; an event already stored (a re-sent batch) is skipped by its id. Then applies retention, at most
    /// every few seconds. One thread only.
    /// <para>
    /// Cheap per event (docs/benchmarks.md, "The event log's writer"): three statements prepared once on the writer's
    /// connection and bound by parameter number through SQLite's own API (<see cref="WriterStatements"/>), one row per
    /// step. Microsoft.Data.Sqlite binds every parameter by name on every execution, and SQLite finds a name by a linear
    /// scan of the statement's names: the multi-row inserts this replaced (100 rows, 300 names, re-prepared for every
    /// batch's remainder) spent most of the writer's CPU there.
    /// </para>
    /// </summary>
    public int Append(ReadOnlySpan<Change> changes, SinkCheckpoint through)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var c = _writer ??= Open();
        var st = _statements ??= new WriterStatements(c);
        // Every FsyncInterval one commit is fsynced (synchronous=FULL), which makes every commit before it durable
        // too; the others are synchronous=NORMAL (see FsyncedCheckpoint for why that is safe).
        long nowMs = _options.Clock.GetUtcNow().ToUnixTimeMilliseconds();
        bool fsync = _options.FsyncInterval == TimeSpan.Zero || nowMs - _lastFsyncMs >= (long)_options.FsyncInterval.TotalMilliseconds || nowMs < _lastFsyncMs;
        if (fsync != _writerFull) st.SetSynchronous(_writerFull = fsync);
        int appended = 0;
        long bytes = 0;
        long pos = _lastPos;
        _pending.Clear();
        using (var tx = c.BeginTransaction())
        {
            foreach (ref readonly Change change in changes)
            {
                int count = EventMapper.Map(change, _mapped);
                for (int i = 0; i < count; i++)
                {
                    ref readonly MappedEvent e = ref _mapped[i];
                    // One copy of the encoded JSON: the row's blob and, once committed, the in-memory tail's record.
                    byte[] json = _encoder.Encode(change, e).ToArray();
                    long row = st.InsertEvent(change.Sequence, change.Index, e.Ordinal, e.Type, change.TimestampMs, e.KeyAccount, json);
                    if (row == 0) continue; // stored by an earlier attempt at this batch
                    pos = row;
                    appended++;
                    if (_tail.Length > 0)
                        _pending.Add(new TailEntry(pos, new EventRecord(new EventPosition(change.Sequence, change.Index, e.Ordinal), EventTypes.Name(e.Type),
                            EventTypes.SchemaVersion(e.Type), change.TimestampMs, e.KeyAccount, json)));
                    bytes += json.Length;
                    int viewers = EventAudience.Viewers(change, e, _viewers);
                    for (int v = 0; v < viewers; v++) st.InsertViewer(_viewers[v].UserId, pos, (int)_viewers[v].Party);
                }
            }
            st.SetMeta(WriterStatements.CheckpointSequence, through.Sequence);
            st.SetMeta(WriterStatements.CheckpointMs, through.TimestampMs);
            st.SetMeta(WriterStatements.Bytes, _bytes + bytes);
            tx.Commit();
        }
        if (fsync)
        {
            _lastFsyncMs = nowMs;
            lock (_fsyncedLock) _fsynced = through;
        }
        Interlocked.Increment(ref _batchesCommitted);
        Interlocked.Add(ref _bytes, bytes);
        // The tail first, then the row count: a reader that sees a row as stored finds it in the tail (or, once the
        // tail has moved past it, in SQLite). Then one wake-up for every waiting feeder, per batch, not per event.
        foreach (var entry in _pending) Volatile.Write(ref _tail[entry.Row & (_tail.Length - 1)], entry);
        _pending.Clear();
        Interlocked.Exchange(ref _lastPos, pos);
        if (appended > 0) Interlocked.Exchange(ref _appended, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        long now = Environment.TickCount64;
        if (now - _lastRetentionMs >= 5_000 || _bytes > _options.MaxBytes)
        {
            _lastRetentionMs = now;
            ApplyRetention();
        }
        return appended;
    }

    /// <summary>
    /// The writer's statements, prepared once per writer connection with SQLite's own API (SQLitePCL.raw, the layer
    /// under Microsoft.Data.Sqlite) and bound by parameter number: no name lookups, no boxed values, no statement
    /// re-prepared per batch. They run inside the transaction the connection has open. Finalized before the connection closes.
    /// <para>
    /// The <c>accounts</c> index table (events by account) is no longer written: nothing reads it (the events API and
    /// the consumers go by viewer and by row), and its two B-tree inserts per account per event were a third of the
    /// rows the writer made. The table stays in the schema, so a log from an earlier build opens unchanged, and
    /// retention still empties it.
    /// </para>
    /// </summary>
    private sealed class WriterStatements : IDisposable
    {
        /// <summary>The writer connection's page cache (KiB): the memory bound this adds.</summary>
        public const int WriterCacheKiB = 32 * 1024;
        public static readonly byte[] CheckpointSequence = "checkpoint_sequence"u8.ToArray();
        public static readonly byte[] CheckpointMs = "checkpoint_ms"u8.ToArray();
        public static readonly byte[] Bytes = "bytes"u8.ToArray();
        /// <summary>The UTF-8 of each event type's name, by its number.</summary>
        private static readonly byte[][] TypeNames = BuildTypeNames();

        private readonly SQLitePCL.sqlite3 _db;
        private readonly SQLitePCL.sqlite3_stmt _insertEvent, _insertViewer, _setMeta;

        public WriterStatements(SqliteConnection c)
        {
            _db = c.Handle ?? throw new InvalidOperationException("the event log's writer connection is not open");
            // A larger page cache for the writer (SQLite's default is 2 MiB): the viewers index is keyed by user, so its
            // inserts land all over it, and every page that is not cached is a read from the file or the WAL.
            Check(SQLitePCL.raw.sqlite3_exec(_db, $"PRAGMA cache_size=-{WriterCacheKiB}"));
            _insertEvent = Prepare("INSERT INTO events(sequence, idx, ordinal, type, version, occurred_at_ms, key_account, json) VALUES(?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT DO NOTHING RETURNING pos");
            _insertViewer = Prepare("INSERT OR IGNORE INTO viewers(user_id, pos, party) VALUES(?1,?2,?3)");
            _setMeta = Prepare("UPDATE meta SET value=?2 WHERE name=?1");
        }

        private static byte[][] BuildTypeNames()
        {
            var names = new byte[(int)EventTypes.All.Max() + 1][];
            foreach (var t in EventTypes.All) names[(int)t] = System.Text.Encoding.UTF8.GetBytes(EventTypes.Name(t));
            return names;
        }

        private SQLitePCL.sqlite3_stmt Prepare(string sql)
        {
            Check(SQLitePCL.raw.sqlite3_prepare_v2(_db, sql, out var stmt));
            return stmt;
        }

        /// <summary>Inserts an event; returns its row, or 0 when an event of that id is stored already.</summary>
        public long InsertEvent(long sequence, int index, int ordinal, EventType type, long occurredAtMs, long keyAccount, byte[] json)
        {
            var s = _insertEvent;
            try
            {
                Check(SQLitePCL.raw.sqlite3_bind_int64(s, 1, sequence));
                Check(SQLitePCL.raw.sqlite3_bind_int64(s, 2, index));
                Check(SQLitePCL.raw.sqlite3_bind_int64(s, 3, ordinal));
                Check(SQLitePCL.raw.sqlite3_bind_text(s, 4, TypeNames[(int)type]));
                Check(SQLitePCL.raw.sqlite3_bind_int64(s, 5, EventTypes.SchemaVersion(type)));
                Check(SQLitePCL.raw.sqlite3_bind_int64(s, 6, occurredAtMs));
                Check(SQLitePCL.raw.sqlite3_bind_int64(s, 7, keyAccount));
                Check(SQLitePCL.raw.sqlite3_bind_blob(s, 8, json));
                int rc = SQLitePCL.raw.sqlite3_step(s);
                if (rc == SQLitePCL.raw.SQLITE_DONE) return 0; // the conflict: nothing inserted, nothing returned
                if (rc != SQLitePCL.raw.SQLITE_ROW) Check(rc);
                long row = SQLitePCL.raw.sqlite3_column_int64(s, 0);
                Invariant.Check(row > 0, "an inserted event has a positive row");
                return row;
            }
            finally
            {
                SQLitePCL.raw.sqlite3_reset(s);
            }
        }

        public void InsertViewer(long userId, long pos, int party)
        {
            var s = _insertViewer;
            try
            {
                Check(SQLitePCL.raw.sqlite3_bind_int64(s, 1, userId));
                Check(SQLitePCL.raw.sqlite3_bind_int64(s, 2, pos));
                Check(SQLitePCL.raw.sqlite3_bind_int64(s, 3, party));
                Done(SQLitePCL.raw.sqlite3_step(s));
            }
            finally
            {
                SQLitePCL.raw.sqlite3_reset(s);
            }
        }

        /// <summary>synchronous=FULL (fsync at commit) or NORMAL, for the next transactions of the writer's connection.</summary>
        public void SetSynchronous(bool full) =>
            Check(SQLitePCL.raw.sqlite3_exec(_db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"));

        public void SetMeta(byte[] name, long value)
        {
            var s = _setMeta;
            try
            {
                Check(SQLitePCL.raw.sqlite3_bind_text(s, 1, name));
                Check(SQLitePCL.raw.sqlite3_bind_int64(s, 2, value));
                Done(SQLitePCL.raw.sqlite3_step(s));
                Invariant.Check(SQLitePCL.raw.sqlite3_changes(_db) == 1, "the event log's meta row exists");
            }
            finally
            {
                SQLitePCL.raw.sqlite3_reset(s);
            }
        }

        private void Done(int rc)
        {
            if (rc != SQLitePCL.raw.SQLITE_DONE) Check(rc);
        }

        private void Check(int rc)
        {
            if (rc is SQLitePCL.raw.SQLITE_OK or SQLitePCL.raw.SQLITE_ROW or SQLitePCL.raw.SQLITE_DONE) return;
            throw new SqliteException($"SQLite Error {rc}: '{SQLitePCL.raw.sqlite3_errmsg(_db).utf8_to_string()}' (the event log's writer)", rc);
        }

        public void Dispose()
        {
            _insertEvent.Dispose();
            _insertViewer.Dispose();
            _setMeta.Dispose();
        }
    }

    /// <summary>A bounded number of rows per statement, so one pass never holds the writer long.</summary>
    private const int RetentionChunk = 20_000;

    /// <summary>
    /// Drops events past the retention, then the oldest until the JSON is under 90 % of the byte cap. Returns how many
    /// went. Called by the writer thread after a batch (and by tests).
    /// </summary>
    public long ApplyRetention()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var c = _writer ??= Open();
        long cutoffMs = _options.Clock.GetUtcNow().ToUnixTimeMilliseconds() - (long)_options.Retention.TotalMilliseconds;
        long removed = 0;
        while (true)
        {
            // The last row to drop in this chunk: old by time, or old by place while over the cap.
            long upTo = Scalar(c, "SELECT COALESCE(MAX(pos),0) FROM (SELECT pos FROM events WHERE occurred_at_ms < $cut ORDER BY pos LIMIT $n)", ("$cut", cutoffMs), ("$n", RetentionChunk));
            if (upTo == 0 && _bytes > _options.MaxBytes)
            {
                // Over the cap: drop the oldest rows holding the excess down to 90 % of the cap.
                long target = _bytes - _options.MaxBytes * 9 / 10;
                upTo = Scalar(c, """
                    SELECT COALESCE(MAX(pos),0) FROM (
                      SELECT pos, length(json) AS len, SUM(length(json)) OVER (ORDER BY pos) AS run FROM (SELECT pos, json FROM events ORDER BY pos LIMIT $n))
                    WHERE run - len < $target
                    """, ("$n", RetentionChunk), ("$target", target));
            }
            if (upTo == 0) return removed;
            var last = PositionOfRow(c, upTo);
            using var tx = c.BeginTransaction();
            long freed = Scalar(c, "SELECT COALESCE(SUM(length(json)),0) FROM events WHERE pos <= $p", ("$p", upTo));
            long rows = Exec(c, tx, "DELETE FROM events WHERE pos <= $p", upTo);
            Exec(c, tx, "DELETE FROM viewers WHERE pos <= $p", upTo);
            Exec(c, tx, "DELETE FROM accounts WHERE pos <= $p", upTo);
            long bytes = Math.Max(0, _bytes - freed);
            foreach (var (name, value) in new[] { ("bytes", bytes), ("dropped_sequence", last.Sequence), ("dropped_index", (long)last.Index), ("dropped_ordinal", (long)last.Ordinal) })
            {
                using var m = c.CreateCommand();
                m.Transaction = tx;
                m.CommandText = "INSERT INTO meta(name, value) VALUES($n, $v) ON CONFLICT(name) DO UPDATE SET value=excluded.value";
                m.Parameters.AddWithValue("$n", name);
                m.Parameters.AddWithValue("$v", value);
                m.ExecuteNonQuery();
            }
            tx.Commit();
            Interlocked.Exchange(ref _bytes, bytes);
            removed += rows;
        }
    }

    private static long Exec(SqliteConnection c, SqliteTransaction tx, string sql, long pos)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.Parameters.AddWithValue("$p", pos);
        return cmd.ExecuteNonQuery();
    }

    // ---- reading (any thread) ---------------------------------------------------------------------------------

    /// <summary>One event by id, as <paramref name="viewer"/> may see it (null viewer = an admin: all of it); null when it is not held or not theirs.</summary>
    public StoredEvent? Get(EventPosition id, long? viewer)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = viewer is null
            ? $"SELECT {Columns}, 1 FROM events e WHERE sequence=$s AND idx=$i AND ordinal=$o"
            : $"SELECT {Columns}, v.party FROM events e JOIN viewers v ON v.pos = e.pos AND v.user_id = $u WHERE sequence=$s AND idx=$i AND ordinal=$o";
        cmd.Parameters.AddWithValue("$s", id.Sequence);
        cmd.Parameters.AddWithValue("$i", id.Index);
        cmd.Parameters.AddWithValue("$o", id.Ordinal);
        if (viewer is { } u) cmd.Parameters.AddWithValue("$u", u);
        using var r = cmd.ExecuteReader();
        return r.Read() ? ReadRow(r) : null;
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
        using var c = Open();
        using var cmd = c.CreateCommand();
        var where = new List<string>();
        bool ascending = false;
        if (startingAfter is { } after)
        {
            where.Add("e.pos < $cursor");
            // Rows before the cursor's place, whether or not the cursor's event is still held.
            cmd.Parameters.AddWithValue("$cursor", CursorRow(c, after, atOrAfter: true));
        }
        else if (endingBefore is { } before)
        {
            where.Add("e.pos > $cursor");
            cmd.Parameters.AddWithValue("$cursor", CursorRow(c, before, atOrAfter: false));
            ascending = true;
        }
        if (type is not null)
        {
            if (!IsTypeFilter(type)) throw new ArgumentException("a type filter is letters, optionally ending with *", nameof(type));
            where.Add(type.EndsWith('*') ? "e.type GLOB $type" : "e.type = $type");
            cmd.Parameters.AddWithValue("$type", type);
        }
        if (viewer is { } u)
        {
            where.Add("v.user_id = $u");
            cmd.Parameters.AddWithValue("$u", u);
        }
        string from = viewer is null ? "events e" : "viewers v JOIN events e ON e.pos = v.pos";
        string party = viewer is null ? "1" : "v.party";
        string order = viewer is null ? "e.pos" : "v.pos";
        cmd.CommandText = $"SELECT {Columns}, {party} FROM {from} {(where.Count > 0 ? "WHERE " + string.Join(" AND ", where) : "")} ORDER BY {order} {(ascending ? "ASC" : "DESC")} LIMIT $limit";
        cmd.Parameters.AddWithValue("$limit", limit + 1);
        var rows = new List<StoredEvent>(limit + 1);
        using (var r = cmd.ExecuteReader())
            while (r.Read()) rows.Add(ReadRow(r));
        bool more = rows.Count > limit;
        if (more) rows.RemoveAt(rows.Count - 1);
        if (ascending) rows.Reverse();
        return new EventPage(rows, more);
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
    /// read (for <see cref="ReadTail"/>), or -1 when none was.
    /// </summary>
    public long ReadAfter(EventPosition after, int max, List<EventRecord> into)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT {Columns}, 1, e.pos FROM events e WHERE e.pos > $cursor ORDER BY e.pos LIMIT $n";
        cmd.Parameters.AddWithValue("$cursor", CursorRow(c, after, atOrAfter: false));
        cmd.Parameters.AddWithValue("$n", max);
        long row = -1;
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            into.Add(ReadRow(r).Record);
            row = r.GetInt64(9);
        }
        return row;
    }

    /// <summary>The oldest event held (null when none): what the log can no longer serve lies before it.</summary>
    public EventPosition? Oldest()
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT sequence, idx, ordinal FROM events ORDER BY pos LIMIT 1";
        using var r = cmd.ExecuteReader();
        return r.Read() ? new EventPosition(r.GetInt64(0), r.GetInt32(1), r.GetInt32(2)) : null;
    }

    /// <summary>The last event retention has dropped (null when none has been): a reader behind it has missed events.</summary>
    public EventPosition? DroppedThrough()
    {
        using var c = Open();
        long s = Scalar(c, "SELECT value FROM meta WHERE name='dropped_sequence'");
        return s == 0 ? null : new EventPosition(s, (int)Scalar(c, "SELECT value FROM meta WHERE name='dropped_index'"), (int)Scalar(c, "SELECT value FROM meta WHERE name='dropped_ordinal'"));
    }

    private static EventPosition PositionOfRow(SqliteConnection c, long row)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT sequence, idx, ordinal FROM events WHERE pos = $p";
        cmd.Parameters.AddWithValue("$p", row);
        using var r = cmd.ExecuteReader();
        Invariant.Check(r.Read(), "the row retention drops through exists");
        return new EventPosition(r.GetInt64(0), r.GetInt32(1), r.GetInt32(2));
    }

    /// <summary>How many events lie after <paramref name="after"/> (a consumer's lag).</summary>
    public long CountAfter(EventPosition after)
    {
        using var c = Open();
        long row = CursorRow(c, after, atOrAfter: false);
        return Math.Max(0, LastRow - row);
    }

    /// <summary>
    /// The row of a position: with <paramref name="atOrAfter"/>, the first row at or after it (one past the end when
    /// none); otherwise the last row at or before it (0 when none). Rows rise with positions, so this works for a
    /// position whose event was dropped by retention, or that never gave an event.
    /// </summary>
    private static long CursorRow(SqliteConnection c, EventPosition p, bool atOrAfter)
    {
        string sql = atOrAfter
            ? "SELECT pos FROM events WHERE (sequence, idx, ordinal) >= ($s, $i, $o) ORDER BY sequence, idx, ordinal LIMIT 1"
            : "SELECT pos FROM events WHERE (sequence, idx, ordinal) <= ($s, $i, $o) ORDER BY sequence DESC, idx DESC, ordinal DESC LIMIT 1";
        long row = Scalar(c, sql, ("$s", p.Sequence), ("$i", p.Index), ("$o", p.Ordinal));
        return row != 0 || !atOrAfter ? row : long.MaxValue;
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

    private const string Columns = "e.sequence, e.idx, e.ordinal, e.type, e.version, e.occurred_at_ms, e.key_account, e.json";

    private static StoredEvent ReadRow(SqliteDataReader r)
    {
        var record = new EventRecord(new EventPosition(r.GetInt64(0), r.GetInt32(1), r.GetInt32(2)), r.GetString(3), r.GetInt32(4), r.GetInt64(5), r.GetInt64(6), (byte[])r.GetValue(7));
        var party = (EventParty)r.GetInt32(8);
        Invariant.Check(party is EventParty.Full or EventParty.Payer or EventParty.Payee, "a stored party is known");
        return new StoredEvent(record, party);
    }

    /// <summary>Closes the writer's connection (readers open their own); the log may be appended to again.</summary>
    public void CloseWriter()
    {
        _statements?.Dispose();
        _statements = null;
        _writerFull = true; // a new connection opens with synchronous=FULL (LocalStoreSql.Open)
        _writer?.Dispose();
        _writer = null;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        CloseWriter();
        SqliteConnection.ClearPool(new SqliteConnection(_connectionString));
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
