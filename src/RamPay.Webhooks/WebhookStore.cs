using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using RamPay.Events;

namespace RamPay.Webhooks;

/// <summary>A registered endpoint. <see cref="Owner"/> is a user id; an admin's endpoint (<see cref="AllEvents"/>) receives every event whole.</summary>
public sealed record WebhookEndpoint(string Id, long Owner, bool AllEvents, string Url, IReadOnlyList<string> EnabledEvents, string? Description,
    string Status, string Secret, string? OldSecret, long OldSecretUntilMs, long CreatedMs, long FailingSinceMs)
{
    public bool Enabled => Status == "enabled";

    /// <summary>The secrets that sign now: the current one, and the previous one during a rotation's overlap.</summary>
    public IEnumerable<string> SigningSecrets(long nowMs) => OldSecret is { } old && nowMs < OldSecretUntilMs ? [Secret, old] : [Secret];

    /// <summary>Whether the endpoint subscribes to <paramref name="type"/>: <c>*</c>, the exact name, or a prefix ending with <c>*</c>.</summary>
    public bool Wants(string type)
    {
        // A loop, not LINQ: the consumer asks this for every event and endpoint (a lambda capturing type was a closure each time).
        foreach (var p in EnabledEvents)
            if (p == "*" || p == type || (p.EndsWith('*') && type.AsSpan().StartsWith(p.AsSpan(0, p.Length - 1), StringComparison.Ordinal))) return true;
        return false;
    }
}

/// <summary>One delivery of one event to one URL, and its state.</summary>
public sealed record WebhookDelivery(long Id, string EndpointId, long Owner, string Url, string EventId, string EventType, byte[] Payload,
    string Status, int Attempts, long NextAttemptMs, long CreatedMs);

/// <summary>One attempt of a delivery.</summary>
public sealed record WebhookAttempt(long DeliveryId, string EventId, int Attempt, long AtMs, int StatusCode, long LatencyMs, string? Error, string Status);

/// <summary>
/// The webhooks' durable state on the embedded default (<c>&lt;data&gt;/webhooks/webhooks.db</c>, SQLite WAL,
/// synchronous=FULL): endpoints, per-user secrets for payments' own <c>webhook_url</c>, the delivery outbox (pending
/// deliveries survive SIGKILL), every attempt (the audit log), and the consumer's checkpoint, written in the same
/// transaction as the deliveries an event batch adds.
/// </summary>
public sealed class WebhookStore : IWebhookStore
{
    public const string FileName = "webhooks.db";
    /// <summary>The endpoint id of deliveries to a payment's own <c>webhook_url</c>: <c>payment_url:{user}</c>.</summary>
    public const string PaymentUrlPrefix = "payment_url:";
    private readonly string _connectionString;
    private readonly object _endpointsLock = new();
    private List<WebhookEndpoint>? _endpoints;

    public WebhookStore(string directory)
    {
        Directory.CreateDirectory(directory);
        _connectionString = new SqliteConnectionStringBuilder { DataSource = Path.Combine(directory, FileName), Pooling = true, DefaultTimeout = 30 }.ToString();
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS endpoints(id TEXT PRIMARY KEY, owner INTEGER NOT NULL, all_events INTEGER NOT NULL, url TEXT NOT NULL, events TEXT NOT NULL,
              description TEXT, status TEXT NOT NULL, secret TEXT NOT NULL, old_secret TEXT, old_secret_until_ms INTEGER NOT NULL DEFAULT 0,
              created_ms INTEGER NOT NULL, failing_since_ms INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS user_secrets(user_id INTEGER PRIMARY KEY, secret TEXT NOT NULL, old_secret TEXT, old_secret_until_ms INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS deliveries(id INTEGER PRIMARY KEY, endpoint_id TEXT NOT NULL, owner INTEGER NOT NULL, url TEXT NOT NULL,
              event_id TEXT NOT NULL, event_type TEXT NOT NULL, payload BLOB NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
              next_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, claimed_until_ms INTEGER NOT NULL DEFAULT 0, UNIQUE(endpoint_id, event_id, url));
            CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(status, next_ms);
            CREATE TABLE IF NOT EXISTS attempts(delivery_id INTEGER NOT NULL, attempt INTEGER NOT NULL, at_ms INTEGER NOT NULL, status_code INTEGER NOT NULL,
              latency_ms INTEGER NOT NULL, error TEXT, status TEXT NOT NULL, PRIMARY KEY(delivery_id, attempt));
            CREATE TABLE IF NOT EXISTS payment_urls(payment_id INTEGER PRIMARY KEY, owner INTEGER NOT NULL, url TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS checkpoint(name TEXT PRIMARY KEY, sequence INTEGER NOT NULL, idx INTEGER NOT NULL, ordinal INTEGER NOT NULL);
            """;
        cmd.ExecuteNonQuery();
        LocalStoreSql.PrepareClaims(c, "deliveries");
    }

    internal SqliteConnection Open() => LocalStoreSql.Open(_connectionString);

    public static string NewSecret() => "whsec_" + Base64Url(RandomNumberGenerator.GetBytes(32));
    private static string NewId(string prefix) => prefix + Base64Url(RandomNumberGenerator.GetBytes(12));
    public static string NewEndpointId() => NewId("we_");
    private static string Base64Url(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    // ---- endpoints ----

    /// <summary>Every live endpoint (cached; every change here refreshes it).</summary>
    public IReadOnlyList<WebhookEndpoint> Endpoints()
    {
        lock (_endpointsLock)
        {
            if (_endpoints is not null) return _endpoints;
            using var c = Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT id, owner, all_events, url, events, description, status, secret, old_secret, old_secret_until_ms, created_ms, failing_since_ms FROM endpoints WHERE deleted = 0 ORDER BY created_ms, id";
            var list = new List<WebhookEndpoint>();
            using var r = cmd.ExecuteReader();
            while (r.Read())
                list.Add(new WebhookEndpoint(r.GetString(0), r.GetInt64(1), r.GetInt64(2) != 0, r.GetString(3), JsonSerializer.Deserialize<string[]>(r.GetString(4))!,
                    r.IsDBNull(5) ? null : r.GetString(5), r.GetString(6), r.GetString(7), r.IsDBNull(8) ? null : r.GetString(8), r.GetInt64(9), r.GetInt64(10), r.GetInt64(11)));
            return _endpoints = list;
        }
    }

    public WebhookEndpoint? Endpoint(string id)
    {
        // The dispatcher asks once per attempt: a loop over the cached list, no lambda capturing id.
        foreach (var e in Endpoints())
            if (e.Id == id) return e;
        return null;
    }

    public WebhookEndpoint Create(long owner, bool allEvents, string url, IReadOnlyList<string> events, string? description, long nowMs)
    {
        var e = new WebhookEndpoint(NewId("we_"), owner, allEvents, url, events, description, "enabled", NewSecret(), null, 0, nowMs, 0);
        Exec("INSERT INTO endpoints(id, owner, all_events, url, events, description, status, secret, created_ms) VALUES($id,$o,$a,$u,$e,$d,$s,$k,$c)",
            ("$id", e.Id), ("$o", owner), ("$a", allEvents ? 1 : 0), ("$u", url), ("$e", JsonSerializer.Serialize(events)), ("$d", (object?)description ?? DBNull.Value),
            ("$s", e.Status), ("$k", e.Secret), ("$c", nowMs));
        return e;
    }

    public void Update(string id, string? url, IReadOnlyList<string>? events, string? description, string? status)
    {
        if (url is not null) Exec("UPDATE endpoints SET url=$v WHERE id=$id", ("$id", id), ("$v", url));
        if (events is not null) Exec("UPDATE endpoints SET events=$v WHERE id=$id", ("$id", id), ("$v", JsonSerializer.Serialize(events)));
        if (description is not null) Exec("UPDATE endpoints SET description=$v WHERE id=$id", ("$id", id), ("$v", description));
        if (status is not null)
        {
            Exec("UPDATE endpoints SET status=$v, failing_since_ms=0 WHERE id=$id", ("$id", id), ("$v", status));
            // A disabled endpoint's pending deliveries wait (far future); enabling it makes them due at once.
            Exec("UPDATE deliveries SET next_ms=$n WHERE endpoint_id=$id AND status='pending'", ("$id", id), ("$n", status == "enabled" ? 0L : long.MaxValue / 2));
        }
    }

    public void Delete(string id) => Exec("UPDATE endpoints SET deleted=1, status='deleted' WHERE id=$id; UPDATE deliveries SET status='dead' WHERE endpoint_id=$id AND status='pending'", ("$id", id));

    /// <summary>A new secret; the old one keeps signing (beside it) until <paramref name="overlapUntilMs"/>.</summary>
    public string RotateSecret(string id, long overlapUntilMs)
    {
        string secret = NewSecret();
        Exec("UPDATE endpoints SET old_secret=secret, old_secret_until_ms=$until, secret=$s WHERE id=$id", ("$id", id), ("$s", secret), ("$until", overlapUntilMs));
        return secret;
    }

    public bool DisableFailing(string id)
    {
        int n;
        using (var c = Open())
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "UPDATE endpoints SET status='disabled', failing_since_ms=0 WHERE id=$id AND status='enabled'";
            cmd.Parameters.AddWithValue("$id", id);
            n = cmd.ExecuteNonQuery();
        }
        if (n > 0) Exec("UPDATE deliveries SET next_ms=$n WHERE endpoint_id=$id AND status='pending'", ("$id", id), ("$n", long.MaxValue / 2));
        lock (_endpointsLock) _endpoints = null;
        return n > 0;
    }

    /// <summary>Notes that an endpoint failed (from when, if not already failing) or recovered.</summary>
    public void SetFailing(string id, long sinceMs) => Exec("UPDATE endpoints SET failing_since_ms=$v WHERE id=$id AND (failing_since_ms=0 OR $v=0)", ("$id", id), ("$v", sinceMs));

    // ---- per-user secrets (a payment's own webhook_url) ----

    public (string Secret, string? OldSecret, long OldUntilMs) UserSecret(long user)
    {
        using var c = Open();
        // Read first: the dispatcher asks on every attempt to a payment's webhook_url, and the INSERT below is a write
        // transaction (an fsync) even when it inserts nothing.
        using (var read = c.CreateCommand())
        {
            read.CommandText = "SELECT secret, old_secret, old_secret_until_ms FROM user_secrets WHERE user_id=$u";
            read.Parameters.AddWithValue("$u", user);
            using var found = read.ExecuteReader();
            if (found.Read()) return (found.GetString(0), found.IsDBNull(1) ? null : found.GetString(1), found.GetInt64(2));
        }
        using var ins = c.CreateCommand();
        ins.CommandText = "INSERT OR IGNORE INTO user_secrets(user_id, secret) VALUES($u, $s)";
        ins.Parameters.AddWithValue("$u", user);
        ins.Parameters.AddWithValue("$s", NewSecret());
        ins.ExecuteNonQuery();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT secret, old_secret, old_secret_until_ms FROM user_secrets WHERE user_id=$u";
        cmd.Parameters.AddWithValue("$u", user);
        using var r = cmd.ExecuteReader();
        r.Read();
        return (r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetInt64(2));
    }

    public string RotateUserSecret(long user, long overlapUntilMs)
    {
        UserSecret(user);
        string secret = NewSecret();
        Exec("UPDATE user_secrets SET old_secret=secret, old_secret_until_ms=$until, secret=$s WHERE user_id=$u", ("$u", user), ("$s", secret), ("$until", overlapUntilMs));
        return secret;
    }

    // ---- the consumer's side ----

    /// <summary>Remembers a payment's own webhook_url (from its creation events), so its later events go there too.</summary>
    public static void RememberPaymentUrl(SqliteConnection c, SqliteTransaction tx, long paymentId, long owner, string url)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "INSERT OR IGNORE INTO payment_urls(payment_id, owner, url) VALUES($p,$o,$u)";
        cmd.Parameters.AddWithValue("$p", paymentId); cmd.Parameters.AddWithValue("$o", owner); cmd.Parameters.AddWithValue("$u", url);
        cmd.ExecuteNonQuery();
    }

    public (long Owner, string Url)? PaymentUrl(long paymentId)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT owner, url FROM payment_urls WHERE payment_id=$p";
        cmd.Parameters.AddWithValue("$p", paymentId);
        using var r = cmd.ExecuteReader();
        return r.Read() ? (r.GetInt64(0), r.GetString(1)) : null;
    }

    /// <summary>Pushes an endpoint's due deliveries to <paramref name="untilMs"/> (its circuit is open: no attempt before then).</summary>
    public void Defer(string endpointId, long untilMs) =>
        Exec("UPDATE deliveries SET next_ms=$n WHERE endpoint_id=$id AND status='pending' AND next_ms < $n", ("$id", endpointId), ("$n", untilMs));

    public EventPosition ReadCheckpoint(string name) => LocalStoreSql.ReadCheckpoint(_connectionString, name);

    /// <summary>A delivery to add (the consumer's effect).</summary>
    public readonly record struct NewDelivery(string EndpointId, long Owner, string Url, string EventId, string EventType, byte[] Payload);

    /// <summary>
    /// Adds <paramref name="deliveries"/> (one already there is left as it is: a re-sent batch adds nothing) and, in the
    /// same transaction, moves the checkpoint <paramref name="name"/> to <paramref name="through"/> (when given).
    /// </summary>
    public int Enqueue(IReadOnlyList<NewDelivery> deliveries, string name, EventPosition? through, long nowMs, bool redeliver = false,
        IReadOnlyList<(long PaymentId, long Owner, string Url)>? paymentUrls = null)
        => WithHot(durable: true, c => EnqueueOn(c, deliveries, name, through, nowMs, redeliver, paymentUrls));

    private static int EnqueueOn(SqliteConnection c, IReadOnlyList<NewDelivery> deliveries, string name, EventPosition? through, long nowMs, bool redeliver,
        IReadOnlyList<(long PaymentId, long Owner, string Url)>? paymentUrls)
    {
        using var tx = c.BeginTransaction();
        foreach (var (paymentId, owner, url) in paymentUrls ?? []) RememberPaymentUrl(c, tx, paymentId, owner, url);
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        // A redelivery moves the attempt number on by one: the outcome of an attempt still in flight (its outcome writer
        // batches) then counts as a late duplicate (Record: attempts < $a) and cannot mark the redelivery delivered unsent.
        cmd.CommandText = redeliver
            ? "INSERT INTO deliveries(endpoint_id, owner, url, event_id, event_type, payload, status, attempts, next_ms, created_ms) VALUES($e,$o,$u,$i,$t,$p,'pending',0,$n,$n) ON CONFLICT(endpoint_id, event_id, url) DO UPDATE SET status='pending', attempts=deliveries.attempts+1, next_ms=$n, created_ms=$n, claimed_until_ms=0"
            : "INSERT OR IGNORE INTO deliveries(endpoint_id, owner, url, event_id, event_type, payload, status, attempts, next_ms, created_ms) VALUES($e,$o,$u,$i,$t,$p,'pending',0,$n,$n)";
        foreach (var n in new[] { "$e", "$o", "$u", "$i", "$t", "$p", "$n" }) cmd.Parameters.Add(new SqliteParameter { ParameterName = n });
        int added = 0;
        foreach (var d in deliveries)
        {
            cmd.Parameters[0].Value = d.EndpointId; cmd.Parameters[1].Value = d.Owner; cmd.Parameters[2].Value = d.Url; cmd.Parameters[3].Value = d.EventId;
            cmd.Parameters[4].Value = d.EventType; cmd.Parameters[5].Value = d.Payload; cmd.Parameters[6].Value = nowMs;
            added += cmd.ExecuteNonQuery();
        }
        if (through is { } p) LocalStoreSql.WriteCheckpoint(c, tx, name, p);
        tx.Commit();
        return added;
    }

    // ---- the dispatcher's side ----

    public List<WebhookDelivery> Claim(long nowMs, int max, long leaseMs, IReadOnlyCollection<string>? skipEndpoints = null) =>
        WithHot(durable: false, c => ClaimOn(c, nowMs, max, leaseMs, skipEndpoints));

    private static List<WebhookDelivery> ClaimOn(SqliteConnection c, long nowMs, int max, long leaseMs, IReadOnlyCollection<string>? skipEndpoints)
    {
        using var cmd = c.CreateCommand();
        string skip = skipEndpoints is { Count: > 0 } ? " AND endpoint_id NOT IN (SELECT value FROM json_each($skip))" : "";
        cmd.CommandText = $"UPDATE deliveries SET claimed_until_ms = $until WHERE id IN " +
            $"(SELECT id FROM deliveries WHERE status='pending' AND next_ms <= $now AND claimed_until_ms <= $now{skip} ORDER BY next_ms, id LIMIT $max) RETURNING {DeliveryColumns}";
        if (skip.Length > 0) cmd.Parameters.AddWithValue("$skip", JsonSerializer.Serialize(skipEndpoints));
        cmd.Parameters.AddWithValue("$now", nowMs);
        cmd.Parameters.AddWithValue("$until", nowMs + leaseMs);
        cmd.Parameters.AddWithValue("$max", max);
        var list = ReadDeliveries(cmd);
        list.Sort((a, b) => a.NextAttemptMs != b.NextAttemptMs ? a.NextAttemptMs.CompareTo(b.NextAttemptMs) : a.Id.CompareTo(b.Id));
        return list;
    }

    public void Release(IReadOnlyCollection<long> ids)
    {
        if (ids.Count == 0) return;
        WithHot(durable: false, c =>
        {
            using var tx = c.BeginTransaction();
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "UPDATE deliveries SET claimed_until_ms=0 WHERE id=$id";
            var p = cmd.Parameters.Add(new SqliteParameter { ParameterName = "$id" });
            foreach (long id in ids) { p.Value = id; cmd.ExecuteNonQuery(); }
            tx.Commit();
            return 0;
        });
    }

    private readonly object _hotLock = new();
    private SqliteConnection? _hot;
    private bool _hotDurable;

    /// <summary>
    /// Runs the consumer's and the dispatcher's writes (enqueue, claim, release, record) on one connection kept open, one
    /// at a time (SQLite takes one writer at a time anyway). In WAL mode a connection throws its whole page cache away
    /// when another connection has written since its last transaction, so with every write on a pooled connection of its
    /// own each one read its pages again (pread was the first thing in the server's profile under delivery load,
    /// docs/benchmarks.md "Webhook delivery, round 4"); with them all on this one, its cache stays valid.
    /// <paramref name="durable"/> false: the commit is not fsynced (synchronous=NORMAL), for claims and their release
    /// only. A claim lost with the machine is harmless (one process owns this file, and the claims found at open are
    /// cleared anyway), and the next fsynced commit (an outcome, an enqueue) makes everything before it durable, in order.
    /// </summary>
    private T WithHot<T>(bool durable, Func<SqliteConnection, T> work)
    {
        lock (_hotLock)
        {
            if (_hot is null)
            {
                _hot = Open();
                using var size = _hot.CreateCommand();
                size.CommandText = "PRAGMA cache_size=-32768"; // KiB: the outbox's hot pages (payloads included) stay in memory
                size.ExecuteNonQuery();
                _hotDurable = true;
            }
            if (_hotDurable != durable)
            {
                using var pragma = _hot.CreateCommand();
                pragma.CommandText = durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
                pragma.ExecuteNonQuery();
                _hotDurable = durable;
            }
            try
            {
                return work(_hot);
            }
            catch
            {
                // A connection in an unknown state (a failed commit) is not used again: the next call opens a new one.
                _hot.Dispose();
                _hot = null;
                throw;
            }
        }
    }

    public long PendingCount()
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM deliveries WHERE status='pending'";
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>An attempt's outcome: the delivery's new state and the attempt's row, written together.</summary>
    public readonly record struct Outcome(long DeliveryId, int Attempt, long AtMs, int StatusCode, long LatencyMs, string? Error, string Status, long NextMs);

    /// <summary>
    /// Records attempts in one transaction (one fsync for many: the dispatcher batches them). An outcome never moves a
    /// delivery back, and an attempt's row is written once: a late duplicate (a lease that ran out mid-attempt) is ignored.
    /// </summary>
    public void Record(IReadOnlyList<Outcome> outcomes)
    {
        if (outcomes.Count == 0) return;
        WithHot(durable: true, c => RecordOn(c, outcomes));
    }

    private static int RecordOn(SqliteConnection c, IReadOnlyList<Outcome> outcomes)
    {
        using var tx = c.BeginTransaction();
        using var up = c.CreateCommand();
        up.Transaction = tx;
        up.CommandText = "UPDATE deliveries SET status=$s, attempts=$a, next_ms=$n, claimed_until_ms=0 WHERE id=$id AND attempts < $a";
        var (us, ua, un, uid) = (Param(up, "$s"), Param(up, "$a"), Param(up, "$n"), Param(up, "$id"));
        using var ins = c.CreateCommand();
        ins.Transaction = tx;
        ins.CommandText = "INSERT OR IGNORE INTO attempts(delivery_id, attempt, at_ms, status_code, latency_ms, error, status) VALUES($id,$a,$at,$c,$l,$e,$s)";
        var (iid, ia, iat, ic, il, ie, iss) = (Param(ins, "$id"), Param(ins, "$a"), Param(ins, "$at"), Param(ins, "$c"), Param(ins, "$l"), Param(ins, "$e"), Param(ins, "$s"));
        // Parameters set in place: each statement is compiled once per batch, not once per outcome.
        foreach (var o in outcomes)
        {
            us.Value = o.Status; ua.Value = o.Attempt; un.Value = o.NextMs; uid.Value = o.DeliveryId;
            up.ExecuteNonQuery();
            iid.Value = o.DeliveryId; ia.Value = o.Attempt; iat.Value = o.AtMs; ic.Value = o.StatusCode; il.Value = o.LatencyMs;
            ie.Value = (object?)o.Error ?? DBNull.Value; iss.Value = o.Status;
            ins.ExecuteNonQuery();
        }
        tx.Commit();
        return outcomes.Count;
    }

    /// <summary>
    /// An endpoint's attempts, newest first, optionally of deliveries in one status (pending, succeeded, failed, dead). A
    /// failed attempt followed by a retry is recorded as <c>pending</c> (the API shows it as <c>failed</c>), so
    /// <c>failed</c> matches those too.
    /// </summary>
    public List<WebhookAttempt> Attempts(string endpointId, string? status, int limit)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT a.delivery_id, d.event_id, a.attempt, a.at_ms, a.status_code, a.latency_ms, a.error, a.status
            FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
            WHERE d.endpoint_id = $e AND ($s IS NULL OR d.status = $s OR a.status = $s OR ($s = 'failed' AND a.status = 'pending'))
            ORDER BY a.at_ms DESC, a.delivery_id DESC, a.attempt DESC LIMIT $l
            """;
        cmd.Parameters.AddWithValue("$e", endpointId);
        cmd.Parameters.AddWithValue("$s", (object?)status ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$l", limit);
        var list = new List<WebhookAttempt>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
            list.Add(new WebhookAttempt(r.GetInt64(0), r.GetString(1), r.GetInt32(2), r.GetInt64(3), r.GetInt32(4), r.GetInt64(5), r.IsDBNull(6) ? null : r.GetString(6), r.GetString(7)));
        return list;
    }

    /// <summary>Deliveries of an endpoint in a status that have no attempt yet (pending ones never tried), for the deliveries API.</summary>
    public List<WebhookDelivery> Deliveries(string endpointId, string? status, int limit)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT {DeliveryColumns} FROM deliveries WHERE endpoint_id=$e AND ($s IS NULL OR status=$s) ORDER BY id DESC LIMIT $l";
        cmd.Parameters.AddWithValue("$e", endpointId);
        cmd.Parameters.AddWithValue("$s", (object?)status ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$l", limit);
        return ReadDeliveries(cmd);
    }

    /// <summary>One delivery of any endpoint, with its last attempt, for the operators' list (GET /v1/admin/webhook_deliveries).</summary>
    public readonly record struct DeliverySummary(long Id, string EndpointId, long Owner, string Url, string EventId, string EventType, string Status,
        int Attempts, long CreatedMs, long LastAttemptMs, int LastStatusCode, string? LastError);

    /// <summary>
    /// Deliveries of every endpoint, newest first (by id), optionally in one status, after the cursor <paramref name="beforeId"/>
    /// (0 = from the newest); each with its last attempt. At most <paramref name="limit"/>.
    /// </summary>
    public List<DeliverySummary> AllDeliveries(string? status, long beforeId, int limit)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT d.id, d.endpoint_id, d.owner, d.url, d.event_id, d.event_type, d.status, d.attempts, d.created_ms,
                   a.at_ms, a.status_code, a.error
            FROM deliveries d
            LEFT JOIN attempts a ON a.delivery_id = d.id AND a.attempt = (SELECT MAX(attempt) FROM attempts WHERE delivery_id = d.id)
            WHERE ($s IS NULL OR d.status = $s) AND ($b = 0 OR d.id < $b)
            ORDER BY d.id DESC LIMIT $l
            """;
        cmd.Parameters.AddWithValue("$s", (object?)status ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$b", beforeId);
        cmd.Parameters.AddWithValue("$l", limit);
        var list = new List<DeliverySummary>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
            list.Add(new DeliverySummary(r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6),
                r.GetInt32(7), r.GetInt64(8), r.IsDBNull(9) ? 0 : r.GetInt64(9), r.IsDBNull(10) ? 0 : r.GetInt32(10), r.IsDBNull(11) ? null : r.GetString(11)));
        return list;
    }

    /// <summary>One webhook delivery as the notifications audit log shows it (GET /v1/admin/notifications, channel webhook).</summary>
    public sealed record AuditRow(long Id, long Owner, string Url, string EventType, string EventId, string Status, int Attempts, long CreatedMs, string? LastError);

    /// <summary>
    /// Deliveries for the audit log, newest first, created before the cursor; <paramref name="status"/> is the audit
    /// log's (sent = succeeded, failed = pending after a failed attempt, pending = not attempted yet, dead).
    /// </summary>
    public List<AuditRow> AuditPage(long? owner, string? status, long beforeCreatedMs, long beforeId, int limit)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        string statusClause = status switch
        {
            null => "",
            "sent" => " AND d.status='succeeded'",
            "failed" => " AND d.status='pending' AND d.attempts > 0",
            "pending" => " AND d.status='pending' AND d.attempts = 0",
            _ => " AND d.status='dead'",
        };
        cmd.CommandText = $"""
            SELECT d.id, d.owner, d.url, d.event_type, d.event_id, d.status, d.attempts, d.created_ms,
              (SELECT a.error FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.attempt DESC LIMIT 1)
            FROM deliveries d
            WHERE ($o IS NULL OR d.owner = $o){statusClause} AND (d.created_ms < $bc OR (d.created_ms = $bc AND d.id < $bi))
            ORDER BY d.created_ms DESC, d.id DESC LIMIT $l
            """;
        cmd.Parameters.AddWithValue("$o", (object?)owner ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$bc", beforeCreatedMs);
        cmd.Parameters.AddWithValue("$bi", beforeId);
        cmd.Parameters.AddWithValue("$l", limit);
        var list = new List<AuditRow>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            string s = r.GetString(5);
            int attempts = r.GetInt32(6);
            string mapped = s switch { "succeeded" => "sent", "pending" => attempts > 0 ? "failed" : "pending", _ => "dead" };
            list.Add(new AuditRow(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetString(4), mapped, attempts, r.GetInt64(7), r.IsDBNull(8) ? null : r.GetString(8)));
        }
        return list;
    }

    /// <summary>The created time of delivery <paramref name="id"/> (an audit cursor), or null.</summary>
    public long? DeliveryCreatedMs(long id)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT created_ms FROM deliveries WHERE id=$id";
        cmd.Parameters.AddWithValue("$id", id);
        return cmd.ExecuteScalar() is long v ? v : null;
    }

    /// <summary>Deletes finished (succeeded, dead) deliveries created before <paramref name="beforeMs"/> and their attempts: the audit log's retention.</summary>
    public int PruneFinished(long beforeMs)
    {
        using var c = Open();
        using var tx = c.BeginTransaction();
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE status IN ('succeeded','dead') AND created_ms < $b);
            DELETE FROM deliveries WHERE status IN ('succeeded','dead') AND created_ms < $b;
            """;
        cmd.Parameters.AddWithValue("$b", beforeMs);
        int n = cmd.ExecuteNonQuery();
        tx.Commit();
        return n;
    }

    private static SqliteParameter Param(SqliteCommand cmd, string name) => cmd.Parameters.Add(new SqliteParameter { ParameterName = name });

    private const string DeliveryColumns = "id, endpoint_id, owner, url, event_id, event_type, payload, status, attempts, next_ms, created_ms";

    private static List<WebhookDelivery> ReadDeliveries(SqliteCommand cmd)
    {
        var list = new List<WebhookDelivery>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
            list.Add(new WebhookDelivery(r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetString(3), r.GetString(4), r.GetString(5), (byte[])r.GetValue(6),
                r.GetString(7), r.GetInt32(8), r.GetInt64(9), r.GetInt64(10)));
        return list;
    }

    private void Exec(string sql, params (string, object)[] args)
    {
        using (var c = Open())
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = sql;
            foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v);
            cmd.ExecuteNonQuery();
        }
        lock (_endpointsLock) _endpoints = null;
    }

    public void Dispose()
    {
        lock (_hotLock)
        {
            _hot?.Dispose();
            _hot = null;
        }
        SqliteConnection.ClearPool(new SqliteConnection(_connectionString));
    }

    internal static string Ms(long ms) => ms.ToString(CultureInfo.InvariantCulture);
}
