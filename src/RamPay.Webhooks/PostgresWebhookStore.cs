using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using RamPay.Events;

namespace RamPay.Webhooks;

/// <summary>
/// The webhooks' store in PostgreSQL (schema <c>rampay_workers</c> by default): what the server's API and every
/// <c>rampay-worker webhooks</c> of a group share, so a surviving worker continues a dead one's retries (claims are
/// leases: <c>FOR UPDATE SKIP LOCKED</c> picks rows nobody holds, <c>claimed_until_ms</c> lets them go when the claimer
/// dies) and the server's admin endpoints list what the workers sent. The same contract as <see cref="WebhookStore"/>
/// (<c>WebhookStoreContract</c> runs against both).
/// </summary>
public sealed class PostgresWebhookStore : IWebhookStore
{
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE {schema}.webhook_endpoints(id text PRIMARY KEY, owner bigint NOT NULL, all_events boolean NOT NULL, url text NOT NULL, events text NOT NULL,
          description text, status text NOT NULL, secret text NOT NULL, old_secret text, old_secret_until_ms bigint NOT NULL DEFAULT 0,
          created_ms bigint NOT NULL, failing_since_ms bigint NOT NULL DEFAULT 0, deleted boolean NOT NULL DEFAULT false);
        CREATE TABLE {schema}.webhook_user_secrets(user_id bigint PRIMARY KEY, secret text NOT NULL, old_secret text, old_secret_until_ms bigint NOT NULL DEFAULT 0);
        CREATE TABLE {schema}.webhook_deliveries(id bigserial PRIMARY KEY, endpoint_id text NOT NULL, owner bigint NOT NULL, url text NOT NULL,
          event_id text NOT NULL, event_type text NOT NULL, payload bytea NOT NULL, status text NOT NULL, attempts int NOT NULL,
          next_ms bigint NOT NULL, created_ms bigint NOT NULL, claimed_until_ms bigint NOT NULL DEFAULT 0, UNIQUE(endpoint_id, event_id, url));
        CREATE INDEX webhook_deliveries_due ON {schema}.webhook_deliveries(next_ms) WHERE status = 'pending';
        CREATE INDEX webhook_deliveries_endpoint ON {schema}.webhook_deliveries(endpoint_id, id);
        CREATE INDEX webhook_deliveries_created ON {schema}.webhook_deliveries(created_ms, id);
        CREATE TABLE {schema}.webhook_attempts(delivery_id bigint NOT NULL, attempt int NOT NULL, at_ms bigint NOT NULL, status_code int NOT NULL,
          latency_ms bigint NOT NULL, error text, status text NOT NULL, PRIMARY KEY(delivery_id, attempt));
        CREATE TABLE {schema}.webhook_payment_urls(payment_id bigint PRIMARY KEY, owner bigint NOT NULL, url text NOT NULL);
        CREATE TABLE {schema}.webhook_checkpoint(name text PRIMARY KEY, sequence bigint NOT NULL, idx int NOT NULL, ordinal int NOT NULL);
        """,
    ];

    /// <summary>How long a process trusts its endpoint list before reading it again (another process may have changed it).</summary>
    public static readonly TimeSpan EndpointCacheTtl = TimeSpan.FromSeconds(1);

    private readonly NpgsqlDataSource _source;
    private readonly string _s;
    private readonly object _endpointsLock = new();
    private List<WebhookEndpoint>? _endpoints;
    private long _endpointsReadAt;

    public PostgresWebhookStore(string connectionString, string schema = PostgresSchema.DefaultSchema)
    {
        _s = PostgresSchema.Check(schema);
        _source = NpgsqlDataSource.Create(connectionString);
        PostgresSchema.Migrate(_source, _s, "webhooks", Migrations);
    }

    public string Schema => _s;

    // ---- endpoints ----

    public IReadOnlyList<WebhookEndpoint> Endpoints()
    {
        lock (_endpointsLock)
        {
            if (_endpoints is not null && Environment.TickCount64 - _endpointsReadAt < (long)EndpointCacheTtl.TotalMilliseconds) return _endpoints;
            using var cmd = _source.CreateCommand($"SELECT id, owner, all_events, url, events, description, status, secret, old_secret, old_secret_until_ms, created_ms, failing_since_ms FROM {_s}.webhook_endpoints WHERE NOT deleted ORDER BY created_ms, id");
            var list = new List<WebhookEndpoint>();
            using var r = cmd.ExecuteReader();
            while (r.Read())
                list.Add(new WebhookEndpoint(r.GetString(0), r.GetInt64(1), r.GetBoolean(2), r.GetString(3), JsonSerializer.Deserialize<string[]>(r.GetString(4))!,
                    r.IsDBNull(5) ? null : r.GetString(5), r.GetString(6), r.GetString(7), r.IsDBNull(8) ? null : r.GetString(8), r.GetInt64(9), r.GetInt64(10), r.GetInt64(11)));
            _endpointsReadAt = Environment.TickCount64;
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
        var e = new WebhookEndpoint(WebhookStore.NewEndpointId(), owner, allEvents, url, events, description, "enabled", WebhookStore.NewSecret(), null, 0, nowMs, 0);
        Exec($"INSERT INTO {_s}.webhook_endpoints(id, owner, all_events, url, events, description, status, secret, created_ms) VALUES(@id,@o,@a,@u,@e,@d,@s,@k,@c)",
            ("id", e.Id), ("o", owner), ("a", allEvents), ("u", url), ("e", JsonSerializer.Serialize(events)), ("d", (object?)description ?? DBNull.Value),
            ("s", e.Status), ("k", e.Secret), ("c", nowMs));
        return e;
    }

    public void Update(string id, string? url, IReadOnlyList<string>? events, string? description, string? status)
    {
        if (url is not null) Exec($"UPDATE {_s}.webhook_endpoints SET url=@v WHERE id=@id", ("id", id), ("v", url));
        if (events is not null) Exec($"UPDATE {_s}.webhook_endpoints SET events=@v WHERE id=@id", ("id", id), ("v", JsonSerializer.Serialize(events)));
        if (description is not null) Exec($"UPDATE {_s}.webhook_endpoints SET description=@v WHERE id=@id", ("id", id), ("v", description));
        if (status is not null)
        {
            Exec($"UPDATE {_s}.webhook_endpoints SET status=@v, failing_since_ms=0 WHERE id=@id", ("id", id), ("v", status));
            // A disabled endpoint's pending deliveries wait (far future); enabling it makes them due at once.
            Exec($"UPDATE {_s}.webhook_deliveries SET next_ms=@n WHERE endpoint_id=@id AND status='pending'", ("id", id), ("n", status == "enabled" ? 0L : long.MaxValue / 2));
        }
    }

    public void Delete(string id) =>
        Exec($"UPDATE {_s}.webhook_endpoints SET deleted=true, status='deleted' WHERE id=@id; UPDATE {_s}.webhook_deliveries SET status='dead' WHERE endpoint_id=@id AND status='pending'", ("id", id));

    public string RotateSecret(string id, long overlapUntilMs)
    {
        string secret = WebhookStore.NewSecret();
        Exec($"UPDATE {_s}.webhook_endpoints SET old_secret=secret, old_secret_until_ms=@until, secret=@s WHERE id=@id", ("id", id), ("s", secret), ("until", overlapUntilMs));
        return secret;
    }

    public void SetFailing(string id, long sinceMs) =>
        Exec($"UPDATE {_s}.webhook_endpoints SET failing_since_ms=@v WHERE id=@id AND (failing_since_ms=0 OR @v=0)", ("id", id), ("v", sinceMs));

    public bool DisableFailing(string id)
    {
        // One statement: of two workers disabling at once, only one sees the row change (and tells the owner).
        long n;
        using (var cmd = _source.CreateCommand($"""
            WITH d AS (UPDATE {_s}.webhook_endpoints SET status='disabled', failing_since_ms=0 WHERE id=@id AND status='enabled' RETURNING id),
                 q AS (UPDATE {_s}.webhook_deliveries SET next_ms=@n WHERE endpoint_id IN (SELECT id FROM d) AND status='pending')
            SELECT COUNT(*) FROM d
            """))
        {
            cmd.Parameters.AddWithValue("id", id);
            cmd.Parameters.AddWithValue("n", long.MaxValue / 2);
            n = (long)cmd.ExecuteScalar()!;
        }
        lock (_endpointsLock) _endpoints = null;
        return n > 0;
    }

    public (string Secret, string? OldSecret, long OldUntilMs) UserSecret(long user)
    {
        using var cmd = _source.CreateCommand($"""
            INSERT INTO {_s}.webhook_user_secrets(user_id, secret) VALUES(@u, @s) ON CONFLICT (user_id) DO NOTHING;
            SELECT secret, old_secret, old_secret_until_ms FROM {_s}.webhook_user_secrets WHERE user_id=@u
            """);
        cmd.Parameters.AddWithValue("u", user);
        cmd.Parameters.AddWithValue("s", WebhookStore.NewSecret());
        using var r = cmd.ExecuteReader(); // the INSERT gives no result set: the reader starts on the SELECT's
        r.Read();
        return (r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetInt64(2));
    }

    public string RotateUserSecret(long user, long overlapUntilMs)
    {
        UserSecret(user);
        string secret = WebhookStore.NewSecret();
        Exec($"UPDATE {_s}.webhook_user_secrets SET old_secret=secret, old_secret_until_ms=@until, secret=@s WHERE user_id=@u", ("u", user), ("s", secret), ("until", overlapUntilMs));
        return secret;
    }

    public (long Owner, string Url)? PaymentUrl(long paymentId)
    {
        using var cmd = _source.CreateCommand($"SELECT owner, url FROM {_s}.webhook_payment_urls WHERE payment_id=@p");
        cmd.Parameters.AddWithValue("p", paymentId);
        using var r = cmd.ExecuteReader();
        return r.Read() ? (r.GetInt64(0), r.GetString(1)) : null;
    }

    // ---- the consumer's side ----

    public EventPosition ReadCheckpoint(string name) => PostgresSchema.ReadCheckpoint(_source, $"{_s}.webhook_checkpoint", name);

    public int Enqueue(IReadOnlyList<WebhookStore.NewDelivery> deliveries, string name, EventPosition? through, long nowMs, bool redeliver = false,
        IReadOnlyList<(long PaymentId, long Owner, string Url)>? paymentUrls = null)
    {
        using var c = _source.OpenConnection();
        using var tx = c.BeginTransaction();
        if (paymentUrls is { Count: > 0 })
        {
            using var pu = new NpgsqlCommand($"INSERT INTO {_s}.webhook_payment_urls(payment_id, owner, url) SELECT * FROM unnest(@p, @o, @u) ON CONFLICT (payment_id) DO NOTHING", c, tx);
            pu.Parameters.AddWithValue("p", paymentUrls.Select(x => x.PaymentId).ToArray());
            pu.Parameters.AddWithValue("o", paymentUrls.Select(x => x.Owner).ToArray());
            pu.Parameters.AddWithValue("u", paymentUrls.Select(x => x.Url).ToArray());
            pu.ExecuteNonQuery();
        }
        int added = 0;
        if (deliveries.Count > 0)
        {
            string conflict = redeliver
                ? "ON CONFLICT (endpoint_id, event_id, url) DO UPDATE SET status='pending', attempts=webhook_deliveries.attempts+1, next_ms=EXCLUDED.next_ms, created_ms=EXCLUDED.created_ms, claimed_until_ms=0"
                : "ON CONFLICT (endpoint_id, event_id, url) DO NOTHING";
            // One statement for the whole batch (arrays), in the batch's order so ids follow the events.
            using var cmd = new NpgsqlCommand($"""
                INSERT INTO {_s}.webhook_deliveries(endpoint_id, owner, url, event_id, event_type, payload, status, attempts, next_ms, created_ms)
                SELECT e, o, u, i, t, p, 'pending', 0, @n, @n FROM unnest(@e, @o, @u, @i, @t, @p) WITH ORDINALITY AS x(e, o, u, i, t, p, k) ORDER BY k
                {conflict}
                """, c, tx);
            cmd.Parameters.AddWithValue("e", deliveries.Select(d => d.EndpointId).ToArray());
            cmd.Parameters.AddWithValue("o", deliveries.Select(d => d.Owner).ToArray());
            cmd.Parameters.AddWithValue("u", deliveries.Select(d => d.Url).ToArray());
            cmd.Parameters.AddWithValue("i", deliveries.Select(d => d.EventId).ToArray());
            cmd.Parameters.AddWithValue("t", deliveries.Select(d => d.EventType).ToArray());
            cmd.Parameters.Add(new NpgsqlParameter("p", NpgsqlDbType.Array | NpgsqlDbType.Bytea) { Value = deliveries.Select(d => d.Payload).ToArray() });
            cmd.Parameters.AddWithValue("n", nowMs);
            added = cmd.ExecuteNonQuery();
        }
        if (through is { } pos) PostgresSchema.WriteCheckpoint(c, tx, $"{_s}.webhook_checkpoint", name, pos);
        tx.Commit();
        return added;
    }

    // ---- the dispatcher's side ----

    public List<WebhookDelivery> Claim(long nowMs, int max, long leaseMs, IReadOnlyCollection<string>? skipEndpoints = null)
    {
        using var cmd = _source.CreateCommand($"""
            UPDATE {_s}.webhook_deliveries d SET claimed_until_ms = @until
            FROM (SELECT id FROM {_s}.webhook_deliveries WHERE status='pending' AND next_ms <= @now AND claimed_until_ms <= @now
                  AND NOT (endpoint_id = ANY(@skip))
                  ORDER BY next_ms, id LIMIT @max FOR UPDATE SKIP LOCKED) c
            WHERE d.id = c.id
            RETURNING {Columns("d.")}
            """);
        cmd.Parameters.AddWithValue("now", nowMs);
        cmd.Parameters.AddWithValue("until", nowMs + leaseMs);
        cmd.Parameters.AddWithValue("max", max);
        cmd.Parameters.AddWithValue("skip", skipEndpoints?.ToArray() ?? []);
        var list = ReadDeliveries(cmd);
        list.Sort((a, b) => a.NextAttemptMs != b.NextAttemptMs ? a.NextAttemptMs.CompareTo(b.NextAttemptMs) : a.Id.CompareTo(b.Id));
        return list;
    }

    public void Release(IReadOnlyCollection<long> ids)
    {
        if (ids.Count == 0) return;
        using var cmd = _source.CreateCommand($"UPDATE {_s}.webhook_deliveries SET claimed_until_ms=0 WHERE id = ANY(@ids)");
        cmd.Parameters.AddWithValue("ids", ids.ToArray());
        cmd.ExecuteNonQuery();
    }

    public void Defer(string endpointId, long untilMs) =>
        Exec($"UPDATE {_s}.webhook_deliveries SET next_ms=@n WHERE endpoint_id=@id AND status='pending' AND next_ms < @n", ("id", endpointId), ("n", untilMs));

    public long PendingCount()
    {
        using var cmd = _source.CreateCommand($"SELECT COUNT(*) FROM {_s}.webhook_deliveries WHERE status='pending'");
        return (long)cmd.ExecuteScalar()!;
    }

    public void Record(IReadOnlyList<WebhookStore.Outcome> outcomes)
    {
        if (outcomes.Count == 0) return;
        using var c = _source.OpenConnection();
        using var tx = c.BeginTransaction();
        using var up = new NpgsqlCommand($"""
            UPDATE {_s}.webhook_deliveries d SET status=x.s, attempts=x.a, next_ms=x.n, claimed_until_ms=0
            FROM unnest(@id, @s, @a, @n) AS x(id, s, a, n) WHERE d.id = x.id AND d.attempts < x.a
            """, c, tx);
        up.Parameters.AddWithValue("id", outcomes.Select(o => o.DeliveryId).ToArray());
        up.Parameters.AddWithValue("s", outcomes.Select(o => o.Status).ToArray());
        up.Parameters.AddWithValue("a", outcomes.Select(o => o.Attempt).ToArray());
        up.Parameters.AddWithValue("n", outcomes.Select(o => o.NextMs).ToArray());
        up.ExecuteNonQuery();
        using var ins = new NpgsqlCommand($"""
            INSERT INTO {_s}.webhook_attempts(delivery_id, attempt, at_ms, status_code, latency_ms, error, status)
            SELECT * FROM unnest(@id, @a, @at, @c, @l, @e, @s)
            ON CONFLICT (delivery_id, attempt) DO NOTHING
            """, c, tx);
        ins.Parameters.AddWithValue("id", outcomes.Select(o => o.DeliveryId).ToArray());
        ins.Parameters.AddWithValue("a", outcomes.Select(o => o.Attempt).ToArray());
        ins.Parameters.AddWithValue("at", outcomes.Select(o => o.AtMs).ToArray());
        ins.Parameters.AddWithValue("c", outcomes.Select(o => o.StatusCode).ToArray());
        ins.Parameters.AddWithValue("l", outcomes.Select(o => o.LatencyMs).ToArray());
        ins.Parameters.Add(new NpgsqlParameter("e", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = outcomes.Select(o => (object?)o.Error ?? DBNull.Value).ToArray() });
        ins.Parameters.AddWithValue("s", outcomes.Select(o => o.Status).ToArray());
        ins.ExecuteNonQuery();
        tx.Commit();
    }

    // ---- reading ----

    public List<WebhookAttempt> Attempts(string endpointId, string? status, int limit)
    {
        using var cmd = _source.CreateCommand($"""
            SELECT a.delivery_id, d.event_id, a.attempt, a.at_ms, a.status_code, a.latency_ms, a.error, a.status
            FROM {_s}.webhook_attempts a JOIN {_s}.webhook_deliveries d ON d.id = a.delivery_id
            WHERE d.endpoint_id = @e AND (@s::text IS NULL OR d.status = @s OR a.status = @s OR (@s = 'failed' AND a.status = 'pending'))
            ORDER BY a.at_ms DESC, a.delivery_id DESC, a.attempt DESC LIMIT @l
            """);
        cmd.Parameters.AddWithValue("e", endpointId);
        cmd.Parameters.Add(new NpgsqlParameter("s", NpgsqlDbType.Text) { Value = (object?)status ?? DBNull.Value });
        cmd.Parameters.AddWithValue("l", limit);
        var list = new List<WebhookAttempt>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
            list.Add(new WebhookAttempt(r.GetInt64(0), r.GetString(1), r.GetInt32(2), r.GetInt64(3), r.GetInt32(4), r.GetInt64(5), r.IsDBNull(6) ? null : r.GetString(6), r.GetString(7)));
        return list;
    }

    public List<WebhookDelivery> Deliveries(string endpointId, string? status, int limit)
    {
        using var cmd = _source.CreateCommand($"SELECT {Columns("")} FROM {_s}.webhook_deliveries WHERE endpoint_id=@e AND (@s::text IS NULL OR status=@s) ORDER BY id DESC LIMIT @l");
        cmd.Parameters.AddWithValue("e", endpointId);
        cmd.Parameters.Add(new NpgsqlParameter("s", NpgsqlDbType.Text) { Value = (object?)status ?? DBNull.Value });
        cmd.Parameters.AddWithValue("l", limit);
        return ReadDeliveries(cmd);
    }

    public List<WebhookStore.DeliverySummary> AllDeliveries(string? status, long beforeId, int limit)
    {
        using var cmd = _source.CreateCommand($"""
            SELECT d.id, d.endpoint_id, d.owner, d.url, d.event_id, d.event_type, d.status, d.attempts, d.created_ms, a.at_ms, a.status_code, a.error
            FROM {_s}.webhook_deliveries d
            LEFT JOIN LATERAL (SELECT at_ms, status_code, error FROM {_s}.webhook_attempts WHERE delivery_id = d.id ORDER BY attempt DESC LIMIT 1) a ON true
            WHERE (@s::text IS NULL OR d.status = @s) AND (@b = 0 OR d.id < @b)
            ORDER BY d.id DESC LIMIT @l
            """);
        cmd.Parameters.Add(new NpgsqlParameter("s", NpgsqlDbType.Text) { Value = (object?)status ?? DBNull.Value });
        cmd.Parameters.AddWithValue("b", beforeId);
        cmd.Parameters.AddWithValue("l", limit);
        var list = new List<WebhookStore.DeliverySummary>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
            list.Add(new WebhookStore.DeliverySummary(r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6),
                r.GetInt32(7), r.GetInt64(8), r.IsDBNull(9) ? 0 : r.GetInt64(9), r.IsDBNull(10) ? 0 : r.GetInt32(10), r.IsDBNull(11) ? null : r.GetString(11)));
        return list;
    }

    public List<WebhookStore.AuditRow> AuditPage(long? owner, string? status, long beforeCreatedMs, long beforeId, int limit)
    {
        string statusClause = status switch
        {
            null => "",
            "sent" => " AND d.status='succeeded'",
            "failed" => " AND d.status='pending' AND d.attempts > 0",
            "pending" => " AND d.status='pending' AND d.attempts = 0",
            _ => " AND d.status='dead'",
        };
        using var cmd = _source.CreateCommand($"""
            SELECT d.id, d.owner, d.url, d.event_type, d.event_id, d.status, d.attempts, d.created_ms,
              (SELECT a.error FROM {_s}.webhook_attempts a WHERE a.delivery_id = d.id ORDER BY a.attempt DESC LIMIT 1)
            FROM {_s}.webhook_deliveries d
            WHERE (@o::bigint IS NULL OR d.owner = @o){statusClause} AND (d.created_ms < @bc OR (d.created_ms = @bc AND d.id < @bi))
            ORDER BY d.created_ms DESC, d.id DESC LIMIT @l
            """);
        cmd.Parameters.Add(new NpgsqlParameter("o", NpgsqlDbType.Bigint) { Value = (object?)owner ?? DBNull.Value });
        cmd.Parameters.AddWithValue("bc", beforeCreatedMs);
        cmd.Parameters.AddWithValue("bi", beforeId);
        cmd.Parameters.AddWithValue("l", limit);
        var list = new List<WebhookStore.AuditRow>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            string s = r.GetString(5);
            int attempts = r.GetInt32(6);
            string mapped = s switch { "succeeded" => "sent", "pending" => attempts > 0 ? "failed" : "pending", _ => "dead" };
            list.Add(new WebhookStore.AuditRow(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetString(4), mapped, attempts, r.GetInt64(7), r.IsDBNull(8) ? null : r.GetString(8)));
        }
        return list;
    }

    public long? DeliveryCreatedMs(long id)
    {
        using var cmd = _source.CreateCommand($"SELECT created_ms FROM {_s}.webhook_deliveries WHERE id=@id");
        cmd.Parameters.AddWithValue("id", id);
        return cmd.ExecuteScalar() is long v ? v : null;
    }

    public int PruneFinished(long beforeMs)
    {
        using var c = _source.OpenConnection();
        using var tx = c.BeginTransaction();
        using var a = new NpgsqlCommand($"DELETE FROM {_s}.webhook_attempts WHERE delivery_id IN (SELECT id FROM {_s}.webhook_deliveries WHERE status IN ('succeeded','dead') AND created_ms < @b)", c, tx);
        a.Parameters.AddWithValue("b", beforeMs);
        int n = a.ExecuteNonQuery();
        using var d = new NpgsqlCommand($"DELETE FROM {_s}.webhook_deliveries WHERE status IN ('succeeded','dead') AND created_ms < @b", c, tx);
        d.Parameters.AddWithValue("b", beforeMs);
        n += d.ExecuteNonQuery();
        tx.Commit();
        return n;
    }

    private static string Columns(string p) =>
        $"{p}id, {p}endpoint_id, {p}owner, {p}url, {p}event_id, {p}event_type, {p}payload, {p}status, {p}attempts, {p}next_ms, {p}created_ms";

    private static List<WebhookDelivery> ReadDeliveries(NpgsqlCommand cmd)
    {
        var list = new List<WebhookDelivery>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
            list.Add(new WebhookDelivery(r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetString(3), r.GetString(4), r.GetString(5), (byte[])r.GetValue(6),
                r.GetString(7), r.GetInt32(8), r.GetInt64(9), r.GetInt64(10)));
        return list;
    }

    private int Exec(string sql, params (string, object)[] args)
    {
        int n;
        using (var cmd = _source.CreateCommand(sql))
        {
            foreach (var (name, v) in args) cmd.Parameters.AddWithValue(name, v);
            n = cmd.ExecuteNonQuery();
        }
        lock (_endpointsLock) _endpoints = null;
        return n;
    }

    public void Dispose() => _source.Dispose();
}
