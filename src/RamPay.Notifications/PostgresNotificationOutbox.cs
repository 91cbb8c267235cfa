using Npgsql;
using NpgsqlTypes;
using RamPay.Events;
using RamPay.Webhooks;

namespace RamPay.Notifications;

/// <summary>
/// The notification outbox and audit log in PostgreSQL (schema <c>rampay_workers</c> by default, beside the webhooks'
/// tables): shared by the server (its admin audit endpoint, phone verification codes) and every
/// <c>rampay-worker notifications</c> of a group, so a surviving worker continues a dead one's retries (claims are
/// leases taken with <c>FOR UPDATE SKIP LOCKED</c>). Preferences stay in the server's own store. The same contract as
/// <see cref="NotificationStore"/> (<c>NotificationOutboxContract</c> runs against both).
/// </summary>
public sealed class PostgresNotificationOutbox : INotificationOutbox
{
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE {schema}.notification_messages(id bigserial PRIMARY KEY, user_id bigint NOT NULL, channel text NOT NULL, destination text NOT NULL,
          template text NOT NULL, event_id text NOT NULL, subject text NOT NULL, body_text text NOT NULL, body_html text,
          status text NOT NULL, attempts int NOT NULL, next_ms bigint NOT NULL, created_ms bigint NOT NULL, updated_ms bigint NOT NULL,
          last_error text, claimed_until_ms bigint NOT NULL DEFAULT 0, UNIQUE(channel, user_id, event_id, template));
        CREATE INDEX notification_messages_due ON {schema}.notification_messages(next_ms) WHERE status = 'pending';
        CREATE INDEX notification_messages_created ON {schema}.notification_messages(created_ms, id);
        CREATE TABLE {schema}.notification_checkpoint(name text PRIMARY KEY, sequence bigint NOT NULL, idx int NOT NULL, ordinal int NOT NULL);
        """,
    ];

    private const string Columns = "id, user_id, channel, destination, template, event_id, subject, body_text, body_html, status, attempts, next_ms, created_ms, updated_ms, last_error";

    private readonly NpgsqlDataSource _source;
    private readonly string _s;

    public PostgresNotificationOutbox(string connectionString, string schema = PostgresSchema.DefaultSchema)
    {
        _s = PostgresSchema.Check(schema);
        _source = NpgsqlDataSource.Create(connectionString);
        PostgresSchema.Migrate(_source, _s, "notifications", Migrations);
    }

    public int Enqueue(IReadOnlyList<NotificationStore.NewMessage> messages, string name, EventPosition? through, long nowMs)
    {
        using var c = _source.OpenConnection();
        using var tx = c.BeginTransaction();
        int added = 0;
        if (messages.Count > 0)
        {
            using var cmd = new NpgsqlCommand($"""
                INSERT INTO {_s}.notification_messages(user_id, channel, destination, template, event_id, subject, body_text, body_html, status, attempts, next_ms, created_ms, updated_ms)
                SELECT u, c, d, t, e, s, b, h, 'pending', 0, @n, @n, @n FROM unnest(@u, @c, @d, @t, @e, @s, @b, @h) WITH ORDINALITY AS x(u, c, d, t, e, s, b, h, k) ORDER BY k
                ON CONFLICT (channel, user_id, event_id, template) DO NOTHING
                """, c, tx);
            cmd.Parameters.AddWithValue("u", messages.Select(m => m.UserId).ToArray());
            cmd.Parameters.AddWithValue("c", messages.Select(m => m.Channel).ToArray());
            cmd.Parameters.AddWithValue("d", messages.Select(m => m.Destination).ToArray());
            cmd.Parameters.AddWithValue("t", messages.Select(m => m.Template).ToArray());
            cmd.Parameters.AddWithValue("e", messages.Select(m => m.EventId).ToArray());
            cmd.Parameters.AddWithValue("s", messages.Select(m => m.Subject).ToArray());
            cmd.Parameters.AddWithValue("b", messages.Select(m => m.BodyText).ToArray());
            cmd.Parameters.Add(new NpgsqlParameter("h", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = messages.Select(m => (object?)m.BodyHtml ?? DBNull.Value).ToArray() });
            cmd.Parameters.AddWithValue("n", nowMs);
            added = cmd.ExecuteNonQuery();
        }
        if (through is { } pos) PostgresSchema.WriteCheckpoint(c, tx, $"{_s}.notification_checkpoint", name, pos);
        tx.Commit();
        return added;
    }

    public EventPosition ReadCheckpoint(string name) => PostgresSchema.ReadCheckpoint(_source, $"{_s}.notification_checkpoint", name);

    public List<NotificationMessage> Claim(long nowMs, int max, bool email, bool sms, long leaseMs)
    {
        using var cmd = _source.CreateCommand($"""
            UPDATE {_s}.notification_messages m SET claimed_until_ms = @until
            FROM (SELECT id FROM {_s}.notification_messages WHERE status='pending' AND next_ms <= @now AND claimed_until_ms <= @now
                    AND ((channel='email' AND @e) OR (channel='sms' AND @sms))
                  ORDER BY next_ms, id LIMIT @max FOR UPDATE SKIP LOCKED) c
            WHERE m.id = c.id
            RETURNING {string.Join(", ", Columns.Split(", ").Select(x => "m." + x))}
            """);
        cmd.Parameters.AddWithValue("now", nowMs);
        cmd.Parameters.AddWithValue("until", nowMs + leaseMs);
        cmd.Parameters.AddWithValue("max", max);
        cmd.Parameters.AddWithValue("e", email);
        cmd.Parameters.AddWithValue("sms", sms);
        var list = Read(cmd);
        list.Sort((a, b) => a.NextMs != b.NextMs ? a.NextMs.CompareTo(b.NextMs) : a.Id.CompareTo(b.Id));
        return list;
    }

    public void Release(IReadOnlyCollection<long> ids)
    {
        if (ids.Count == 0) return;
        using var cmd = _source.CreateCommand($"UPDATE {_s}.notification_messages SET claimed_until_ms=0 WHERE id = ANY(@ids)");
        cmd.Parameters.AddWithValue("ids", ids.ToArray());
        cmd.ExecuteNonQuery();
    }

    public long PendingCount()
    {
        using var cmd = _source.CreateCommand($"SELECT COUNT(*) FROM {_s}.notification_messages WHERE status='pending'");
        return (long)cmd.ExecuteScalar()!;
    }

    public void Record(IReadOnlyList<NotificationStore.Outcome> outcomes)
    {
        if (outcomes.Count == 0) return;
        // attempts < a: an outcome never moves a message back (a late duplicate of an older attempt is ignored).
        using var cmd = _source.CreateCommand($"""
            UPDATE {_s}.notification_messages m SET status=x.s, attempts=x.a, next_ms=x.n, updated_ms=x.at, last_error=x.e, claimed_until_ms=0
            FROM unnest(@id, @s, @a, @n, @at, @e) AS x(id, s, a, n, at, e) WHERE m.id = x.id AND m.attempts < x.a
            """);
        cmd.Parameters.AddWithValue("id", outcomes.Select(o => o.MessageId).ToArray());
        cmd.Parameters.AddWithValue("s", outcomes.Select(o => o.Status).ToArray());
        cmd.Parameters.AddWithValue("a", outcomes.Select(o => o.Attempt).ToArray());
        cmd.Parameters.AddWithValue("n", outcomes.Select(o => o.NextMs).ToArray());
        cmd.Parameters.AddWithValue("at", outcomes.Select(o => o.AtMs).ToArray());
        cmd.Parameters.Add(new NpgsqlParameter("e", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = outcomes.Select(o => (object?)o.Error ?? DBNull.Value).ToArray() });
        cmd.ExecuteNonQuery();
    }

    public List<NotificationMessage> Page(long? user, string? channel, string? status, long beforeCreatedMs, long beforeId, int limit)
    {
        string statusClause = status switch
        {
            null => "",
            "failed" => " AND status='pending' AND last_error IS NOT NULL",
            "pending" => " AND status='pending' AND last_error IS NULL",
            _ => " AND status=@st",
        };
        using var cmd = _source.CreateCommand($"""
            SELECT {Columns} FROM {_s}.notification_messages
            WHERE (@u::bigint IS NULL OR user_id=@u) AND (@c::text IS NULL OR channel=@c){statusClause}
              AND (created_ms < @bc OR (created_ms = @bc AND id < @bi))
            ORDER BY created_ms DESC, id DESC LIMIT @l
            """);
        cmd.Parameters.Add(new NpgsqlParameter("u", NpgsqlDbType.Bigint) { Value = (object?)user ?? DBNull.Value });
        cmd.Parameters.Add(new NpgsqlParameter("c", NpgsqlDbType.Text) { Value = (object?)channel ?? DBNull.Value });
        cmd.Parameters.Add(new NpgsqlParameter("st", NpgsqlDbType.Text) { Value = (object?)status ?? DBNull.Value });
        cmd.Parameters.AddWithValue("bc", beforeCreatedMs);
        cmd.Parameters.AddWithValue("bi", beforeId);
        cmd.Parameters.AddWithValue("l", limit);
        return Read(cmd);
    }

    public NotificationMessage? Message(long id)
    {
        using var cmd = _source.CreateCommand($"SELECT {Columns} FROM {_s}.notification_messages WHERE id=@id");
        cmd.Parameters.AddWithValue("id", id);
        return Read(cmd).FirstOrDefault();
    }

    public int DeadLetterSms(string phone, string reason, long nowMs)
    {
        using var cmd = _source.CreateCommand($"UPDATE {_s}.notification_messages SET status='dead', last_error=@r, updated_ms=@t WHERE channel='sms' AND destination=@p AND status='pending'");
        cmd.Parameters.AddWithValue("p", phone);
        cmd.Parameters.AddWithValue("r", reason);
        cmd.Parameters.AddWithValue("t", nowMs);
        return cmd.ExecuteNonQuery();
    }

    public int Prune(long beforeMs)
    {
        using var cmd = _source.CreateCommand($"DELETE FROM {_s}.notification_messages WHERE status IN ('sent','dead') AND created_ms < @b");
        cmd.Parameters.AddWithValue("b", beforeMs);
        return cmd.ExecuteNonQuery();
    }

    private static List<NotificationMessage> Read(NpgsqlCommand cmd)
    {
        var list = new List<NotificationMessage>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
            list.Add(new NotificationMessage(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6), r.GetString(7),
                r.IsDBNull(8) ? null : r.GetString(8), r.GetString(9), r.GetInt32(10), r.GetInt64(11), r.GetInt64(12), r.GetInt64(13), r.IsDBNull(14) ? null : r.GetString(14)));
        return list;
    }

    public void Dispose() => _source.Dispose();
}
