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

    public void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(Directory);
        if (Retention <= TimeSpan.Zero) throw new ArgumentException("the event log's retention must be positive");
        if (MaxBytes < 1 << 20) throw new ArgumentException("the event log's byte cap must be at least 1 MiB");
        if (TailEvents < 0 || (TailEvents & (TailEvents - 1)) != 0 || TailEvents > 1 << 20)
            throw new ArgumentException("the event log's in-memory tail must be 0 or a power of two up to 1048576 events");
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
    private readonly long[] _accounts = new long[EventAudience.Max];
    private SqliteCommand? _insertEvent, _insertViewer, _insertAccount, _setMeta;

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

    /// <summary>
    /// Appends the events of <paramref name="changes"/> and moves the checkpoint to <paramref name="through"/>, in one
    /// transaction; an event already stored (a re-sent batch) is skipped by its id. Then applies retention, at most
    /// every few seconds. One thread only.
    /// </summary>
    public int Append(ReadOnlySpan<Change> changes, SinkCheckpoint through)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var c = _writer ??= Open();
        PrepareWriter(c);
        int appended = 0;
        long bytes = 0;
        long pos = _lastPos;
        _pending.Clear();
        _viewerRows.Clear();
        _accountRows.Clear();
        using (var tx = c.BeginTransaction())
        {
            _insertEvent!.Transaction = tx;
            _setMeta!.Transaction = tx;
            foreach (ref readonly Change change in changes)
            {
                int count = EventMapper.Map(change, _mapped);
                for (int i = 0; i < count; i++)
                {
                    ref readonly MappedEvent e = ref _mapped[i];
                    // One copy of the encoded JSON: the row's blob and, once committed, the in-memory tail's record.
                    byte[] json = _encoder.Encode(change, e).ToArray();
                    var p = _insertEvent.Parameters;
                    p[0].Value = change.Sequence;
                    p[1].Value = change.Index;
                    p[2].Value = e.Ordinal;
                    p[3].Value = EventTypes.Name(e.Type);
                    p[4].Value = EventTypes.SchemaVersion(e.Type);
                    p[5].Value = change.TimestampMs;
                    p[6].Value = e.KeyAccount;
                    p[7].Value = json;
                    object? row = _insertEvent.ExecuteScalar();
                    if (row is null or DBNull) continue; // stored by an earlier attempt at this batch
                    pos = (long)row;
                    appended++;
                    if (_tail.Length > 0)
                        _pending.Add(new TailEntry(pos, new EventRecord(new EventPosition(change.Sequence, change.Index, e.Ordinal), EventTypes.Name(e.Type),
                            EventTypes.SchemaVersion(e.Type), change.TimestampMs, e.KeyAccount, json)));
                    bytes += json.Length;
                    int viewers = EventAudience.Viewers(change, e, _viewers);
                    for (int v = 0; v < viewers; v++) _viewerRows.Add((_viewers[v].UserId, pos, (int)_viewers[v].Party));
                    int accounts = EventAudience.Accounts(change, e, _accounts);
                    for (int a = 0; a < accounts; a++) _accountRows.Add((_accounts[a], pos, 0));
                }
            }
            // The index rows of the whole batch, many to a statement: a statement's fixed cost (bind, step, reset) was
            // most of the writer's time with one statement per row.
            InsertIndexRows(c, tx, Viewers, _viewerRows, ref _insertViewer);
            InsertIndexRows(c, tx, Accounts, _accountRows, ref _insertAccount);
            SetMeta("checkpoint_sequence", through.Sequence);
            SetMeta("checkpoint_ms", through.TimestampMs);
            SetMeta("bytes", _bytes + bytes);
            tx.Commit();
        }
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

    /// <summary>An index table's insert: its name, columns (two or three) and the rows one full statement carries.</summary>
    private sealed record IndexTable(string Name, string[] Columns, int RowsPerStatement);
    private static readonly IndexTable Viewers = new("viewers", ["user_id", "pos", "party"], 100);
    private static readonly IndexTable Accounts = new("accounts", ["account_id", "pos"], 150);
    private readonly List<(long Key, long Pos, int Party)> _viewerRows = [];
    private readonly List<(long Key, long Pos, int Party)> _accountRows = [];

    /// <summary>Inserts <paramref name="rows"/> into an index table, a full statement (kept prepared) per chunk and one sized to the rest.</summary>
    private static void InsertIndexRows(SqliteConnection c, SqliteTransaction tx, IndexTable table, List<(long Key, long Pos, int Party)> rows, ref SqliteCommand? full)
    {
        int done = 0;
        while (done < rows.Count)
        {
            int n = Math.Min(table.RowsPerStatement, rows.Count - done);
            SqliteCommand cmd;
            if (n == table.RowsPerStatement) cmd = full ??= IndexInsert(c, table, n);
            else cmd = IndexInsert(c, table, n);
            try
            {
                cmd.Transaction = tx;
                int k = 0;
                for (int i = 0; i < n; i++)
                {
                    var (key, pos, party) = rows[done + i];
                    cmd.Parameters[k++].Value = key;
                    cmd.Parameters[k++].Value = pos;
                    if (table.Columns.Length == 3) cmd.Parameters[k++].Value = party;
                }
                cmd.ExecuteNonQuery();
            }
            finally
            {
                if (!ReferenceEquals(cmd, full)) cmd.Dispose();
            }
            done += n;
        }
    }

    private static SqliteCommand IndexInsert(SqliteConnection c, IndexTable table, int rows)
    {
        var cmd = c.CreateCommand();
        var sql = new System.Text.StringBuilder($"INSERT OR IGNORE INTO {table.Name}({string.Join(", ", table.Columns)}) VALUES");
        for (int i = 0; i < rows; i++)
        {
            sql.Append(i == 0 ? "(" : ",(");
            for (int col = 0; col < table.Columns.Length; col++)
            {
                string name = string.Create(CultureInfo.InvariantCulture, $"$c{col}r{i}");
                sql.Append(col == 0 ? "" : ",").Append(name);
                cmd.Parameters.Add(new SqliteParameter { ParameterName = name });
            }
            sql.Append(')');
        }
        cmd.CommandText = sql.ToString();
        return cmd;
    }

    private void SetMeta(string name, long value)
    {
        _setMeta!.Parameters[0].Value = name;
        _setMeta.Parameters[1].Value = value;
        _setMeta.ExecuteNonQuery();
    }

    private void PrepareWriter(SqliteConnection c)
    {
        if (_insertEvent is not null) return;
        _insertEvent = c.CreateCommand();
        _insertEvent.CommandText = "INSERT INTO events(sequence, idx, ordinal, type, version, occurred_at_ms, key_account, json) VALUES($s,$i,$o,$t,$v,$at,$k,$j) ON CONFLICT DO NOTHING RETURNING pos";
        foreach (var n in new[] { "$s", "$i", "$o", "$t", "$v", "$at", "$k", "$j" }) _insertEvent.Parameters.Add(new SqliteParameter { ParameterName = n });
        _setMeta = c.CreateCommand();
        _setMeta.CommandText = "UPDATE meta SET value=$v WHERE name=$n";
        _setMeta.Parameters.Add(new SqliteParameter { ParameterName = "$n" });
        _setMeta.Parameters.Add(new SqliteParameter { ParameterName = "$v" });
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
        _insertEvent?.Dispose(); _insertViewer?.Dispose(); _insertAccount?.Dispose(); _setMeta?.Dispose();
        _insertEvent = _insertViewer = _insertAccount = _setMeta = null;
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
public sealed class EventLogSink(EventLog log) : IChangeSink
{
    public string Name => "events";
    public EventLog Log => log;

    public SinkCheckpoint Open()
    {
        log.CloseWriter();
        return log.ReadCheckpoint();
    }

    public void Write(ReadOnlySpan<Change> changes, SinkCheckpoint through) => log.Append(changes, through);

    /// <summary>Closes the writer only: the log itself stays open for the API and the consumers (its owner disposes it).</summary>
    public void Dispose() => log.CloseWriter();
}
