using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;
using RamPay.Events;

namespace RamPay.Notifications;

/// <summary>One outbound message and its state: the outbox row and the audit log's row at once.</summary>
/// <param name="Status"><c>pending</c> (not sent yet; with <see cref="LastError"/> set it has failed and waits for a retry), <c>sent</c>, <c>dead</c>.</param>
public sealed record NotificationMessage(long Id, long UserId, string Channel, string Destination, string Template, string EventId,
    string Subject, string BodyText, string? BodyHtml, string Status, int Attempts, long NextMs, long CreatedMs, long UpdatedMs, string? LastError)
{
    /// <summary>The audit log's status: a pending message whose last attempt failed is <c>failed</c>.</summary>
    public string AuditStatus => Status == "pending" && LastError is not null ? "failed" : Status;
}

/// <summary>A user's contact choices.</summary>
public sealed record ContactPreferences(long UserId, string? Phone, bool PhoneVerified, bool Email, bool Sms);

/// <summary>
/// The notifications' durable state (<c>&lt;dir&gt;/notifications.db</c>, SQLite WAL, synchronous=FULL, as the webhooks'
/// store): the outbox, which is also the audit log of every email and SMS (kept for a configured retention), the
/// consumer's checkpoint (written in the same transaction as the messages a batch adds), users' phone numbers and
/// channel choices, pending phone verifications, numbers that sent STOP, and the secret that signs unsubscribe links.
/// </summary>
public sealed class NotificationStore : INotificationOutbox
{
    public const string FileName = "notifications.db";
    /// <summary>The audit log's reason for SMS not sent because the number sent STOP.</summary>
    public const string StopReason = "the recipient sent STOP";
    private readonly string _connectionString;

    public NotificationStore(string directory)
    {
        Directory.CreateDirectory(directory);
        _connectionString = new SqliteConnectionStringBuilder { DataSource = Path.Combine(directory, FileName), Pooling = true, DefaultTimeout = 30 }.ToString();
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS messages(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, channel TEXT NOT NULL, destination TEXT NOT NULL,
              template TEXT NOT NULL, event_id TEXT NOT NULL, subject TEXT NOT NULL, body_text TEXT NOT NULL, body_html TEXT,
              status TEXT NOT NULL, attempts INTEGER NOT NULL, next_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
              last_error TEXT, claimed_until_ms INTEGER NOT NULL DEFAULT 0, UNIQUE(channel, user_id, event_id, template));
            CREATE INDEX IF NOT EXISTS messages_due ON messages(status, next_ms);
            CREATE INDEX IF NOT EXISTS messages_created ON messages(created_ms);
            CREATE TABLE IF NOT EXISTS prefs(user_id INTEGER PRIMARY KEY, phone TEXT, phone_verified INTEGER NOT NULL DEFAULT 0,
              email_on INTEGER NOT NULL DEFAULT 1, sms_on INTEGER NOT NULL DEFAULT 0,
              code_hash TEXT, code_expires_ms INTEGER NOT NULL DEFAULT 0, code_attempts INTEGER NOT NULL DEFAULT 0);
            CREATE INDEX IF NOT EXISTS prefs_phone ON prefs(phone);
            CREATE TABLE IF NOT EXISTS optouts(phone TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS checkpoint(name TEXT PRIMARY KEY, sequence INTEGER NOT NULL, idx INTEGER NOT NULL, ordinal INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            """;
        cmd.ExecuteNonQuery();
        LocalStoreSql.PrepareClaims(c, "messages");
    }

    private SqliteConnection Open() => LocalStoreSql.Open(_connectionString);

    // ---- the outbox ----

    /// <summary>A message to add.</summary>
    public readonly record struct NewMessage(long UserId, string Channel, string Destination, string Template, string EventId, string Subject, string BodyText, string? BodyHtml);

    /// <summary>
    /// Adds <paramref name="messages"/> (one already there, same channel, user, event and template, is left alone: a
    /// re-sent batch adds nothing) and, in the same transaction, moves checkpoint <paramref name="name"/> to
    /// <paramref name="through"/> when given. Returns how many were added.
    /// </summary>
    public int Enqueue(IReadOnlyList<NewMessage> messages, string name, EventPosition? through, long nowMs)
    {
        using var c = Open();
        using var tx = c.BeginTransaction();
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            INSERT OR IGNORE INTO messages(user_id, channel, destination, template, event_id, subject, body_text, body_html, status, attempts, next_ms, created_ms, updated_ms)
            VALUES($u,$c,$d,$t,$e,$s,$b,$h,'pending',0,$n,$n,$n)
            """;
        foreach (var p in new[] { "$u", "$c", "$d", "$t", "$e", "$s", "$b", "$h", "$n" }) cmd.Parameters.Add(new SqliteParameter { ParameterName = p });
        int added = 0;
        foreach (var m in messages)
        {
            cmd.Parameters[0].Value = m.UserId; cmd.Parameters[1].Value = m.Channel; cmd.Parameters[2].Value = m.Destination; cmd.Parameters[3].Value = m.Template;
            cmd.Parameters[4].Value = m.EventId; cmd.Parameters[5].Value = m.Subject; cmd.Parameters[6].Value = m.BodyText;
            cmd.Parameters[7].Value = (object?)m.BodyHtml ?? DBNull.Value; cmd.Parameters[8].Value = nowMs;
            added += cmd.ExecuteNonQuery();
        }
        if (through is { } p2) LocalStoreSql.WriteCheckpoint(c, tx, name, p2);
        tx.Commit();
        return added;
    }

    public EventPosition ReadCheckpoint(string name) => LocalStoreSql.ReadCheckpoint(_connectionString, name);

    private const string Columns = "id, user_id, channel, destination, template, event_id, subject, body_text, body_html, status, attempts, next_ms, created_ms, updated_ms, last_error";

    public List<NotificationMessage> Claim(long nowMs, int max, bool email, bool sms, long leaseMs)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "UPDATE messages SET claimed_until_ms=$until WHERE id IN (SELECT id FROM messages WHERE status='pending' AND next_ms <= $now AND claimed_until_ms <= $now " +
            $"AND ((channel='email' AND $e) OR (channel='sms' AND $s)) ORDER BY next_ms, id LIMIT $max) RETURNING {Columns}";
        cmd.Parameters.AddWithValue("$now", nowMs);
        cmd.Parameters.AddWithValue("$until", nowMs + leaseMs);
        cmd.Parameters.AddWithValue("$max", max);
        cmd.Parameters.AddWithValue("$e", email ? 1 : 0);
        cmd.Parameters.AddWithValue("$s", sms ? 1 : 0);
        var list = Read(cmd);
        list.Sort((a, b) => a.NextMs != b.NextMs ? a.NextMs.CompareTo(b.NextMs) : a.Id.CompareTo(b.Id));
        return list;
    }

    public void Release(IReadOnlyCollection<long> ids) => LocalStoreSql.ReleaseClaims(_connectionString, "messages", ids);

    public int DeadLetterSms(string phone, string reason, long nowMs)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "UPDATE messages SET status='dead', last_error=$r, updated_ms=$t WHERE channel='sms' AND destination=$p AND status='pending'";
        cmd.Parameters.AddWithValue("$p", phone);
        cmd.Parameters.AddWithValue("$r", reason);
        cmd.Parameters.AddWithValue("$t", nowMs);
        return cmd.ExecuteNonQuery();
    }

    public long PendingCount()
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM messages WHERE status='pending'";
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>An attempt's outcome.</summary>
    public readonly record struct Outcome(long MessageId, int Attempt, long AtMs, string Status, long NextMs, string? Error);

    /// <summary>Records attempts' outcomes in one transaction (the dispatcher batches them: one fsync for many).</summary>
    public void Record(IReadOnlyList<Outcome> outcomes)
    {
        if (outcomes.Count == 0) return;
        using var c = Open();
        using var tx = c.BeginTransaction();
        using var up = c.CreateCommand();
        up.Transaction = tx;
        // attempts < $a: an outcome never moves a message back (a late duplicate of an older attempt is ignored).
        up.CommandText = "UPDATE messages SET status=$s, attempts=$a, next_ms=$n, updated_ms=$at, last_error=$e, claimed_until_ms=0 WHERE id=$id AND attempts < $a";
        foreach (var p in new[] { "$s", "$a", "$n", "$at", "$e", "$id" }) up.Parameters.Add(new SqliteParameter { ParameterName = p });
        foreach (var o in outcomes)
        {
            up.Parameters[0].Value = o.Status; up.Parameters[1].Value = o.Attempt; up.Parameters[2].Value = o.NextMs; up.Parameters[3].Value = o.AtMs;
            up.Parameters[4].Value = (object?)o.Error ?? DBNull.Value; up.Parameters[5].Value = o.MessageId;
            up.ExecuteNonQuery();
        }
        tx.Commit();
    }

    /// <summary>
    /// The audit log, newest first: messages created before the cursor (<paramref name="beforeCreatedMs"/>,
    /// <paramref name="beforeId"/>), filtered by user, channel and audit status (<c>sent|failed|pending|dead</c>).
    /// </summary>
    public List<NotificationMessage> Page(long? user, string? channel, string? status, long beforeCreatedMs, long beforeId, int limit)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        string statusClause = status switch
        {
            null => "",
            "failed" => " AND status='pending' AND last_error IS NOT NULL",
            "pending" => " AND status='pending' AND last_error IS NULL",
            _ => " AND status=$st",
        };
        cmd.CommandText = $"""
            SELECT {Columns} FROM messages
            WHERE ($u IS NULL OR user_id=$u) AND ($c IS NULL OR channel=$c){statusClause}
              AND (created_ms < $bc OR (created_ms = $bc AND id < $bi))
            ORDER BY created_ms DESC, id DESC LIMIT $l
            """;
        cmd.Parameters.AddWithValue("$u", (object?)user ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$c", (object?)channel ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$st", (object?)status ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$bc", beforeCreatedMs);
        cmd.Parameters.AddWithValue("$bi", beforeId);
        cmd.Parameters.AddWithValue("$l", limit);
        return Read(cmd);
    }

    public NotificationMessage? Message(long id)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT {Columns} FROM messages WHERE id=$id";
        cmd.Parameters.AddWithValue("$id", id);
        return Read(cmd).FirstOrDefault();
    }

    /// <summary>Deletes sent and dead messages created before <paramref name="beforeMs"/> (the audit log's retention); returns how many.</summary>
    public int Prune(long beforeMs)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "DELETE FROM messages WHERE status IN ('sent','dead') AND created_ms < $b";
        cmd.Parameters.AddWithValue("$b", beforeMs);
        return cmd.ExecuteNonQuery();
    }

    private static List<NotificationMessage> Read(SqliteCommand cmd)
    {
        var list = new List<NotificationMessage>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
            list.Add(new NotificationMessage(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6), r.GetString(7),
                r.IsDBNull(8) ? null : r.GetString(8), r.GetString(9), r.GetInt32(10), r.GetInt64(11), r.GetInt64(12), r.GetInt64(13), r.IsDBNull(14) ? null : r.GetString(14)));
        return list;
    }

    // ---- preferences, verification, STOP ----

    public ContactPreferences Preferences(long user)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT phone, phone_verified, email_on, sms_on FROM prefs WHERE user_id=$u";
        cmd.Parameters.AddWithValue("$u", user);
        using var r = cmd.ExecuteReader();
        return r.Read()
            ? new ContactPreferences(user, r.IsDBNull(0) ? null : r.GetString(0), r.GetInt64(1) != 0, r.GetInt64(2) != 0, r.GetInt64(3) != 0)
            : new ContactPreferences(user, null, false, Email: true, Sms: false);
    }

    public bool OptedOut(string phone)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT 1 FROM optouts WHERE phone=$p";
        cmd.Parameters.AddWithValue("$p", phone);
        return cmd.ExecuteScalar() is not null;
    }

    /// <summary>Sets email/SMS choices (null leaves one as it is).</summary>
    public void SetChannels(long user, bool? email, bool? sms)
    {
        Exec("INSERT OR IGNORE INTO prefs(user_id) VALUES($u)", ("$u", user));
        if (email is { } e) Exec("UPDATE prefs SET email_on=$v WHERE user_id=$u", ("$u", user), ("$v", e ? 1 : 0));
        if (sms is { } s) Exec("UPDATE prefs SET sms_on=$v WHERE user_id=$u", ("$u", user), ("$v", s ? 1 : 0));
    }

    /// <summary>
    /// A new phone number (or none): unverified, SMS off, and (for a number) a fresh code's hash with its expiry. The
    /// code itself is never stored. Returns the code to send (null when the phone was removed).
    /// </summary>
    public string? SetPhone(long user, string? phone, long expiresMs)
    {
        string? code = phone is null ? null : RandomNumberGenerator.GetInt32(0, 1_000_000).ToString("D6", System.Globalization.CultureInfo.InvariantCulture);
        Exec("INSERT OR IGNORE INTO prefs(user_id) VALUES($u)", ("$u", user));
        Exec("UPDATE prefs SET phone=$p, phone_verified=0, sms_on=0, code_hash=$h, code_expires_ms=$x, code_attempts=0 WHERE user_id=$u",
            ("$u", user), ("$p", (object?)phone ?? DBNull.Value), ("$h", code is null ? DBNull.Value : CodeHash(user, phone!, code)), ("$x", expiresMs));
        return code;
    }

    /// <summary>Outcome of a verification attempt.</summary>
    public enum VerifyResult { Verified, Wrong, Expired, NoCode }

    /// <summary>Checks a code (at most <paramref name="maxAttempts"/> tries per code; then it is spent).</summary>
    public VerifyResult Verify(long user, string code, long nowMs, int maxAttempts)
    {
        _ = CodeSecret;
        using var c = Open();
        // BEGIN IMMEDIATE: the write lock from the start, so two verifications of one code cannot both read the old count.
        using var tx = c.BeginTransaction(deferred: false);
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT phone, code_hash, code_expires_ms, code_attempts FROM prefs WHERE user_id=$u";
        cmd.Parameters.AddWithValue("$u", user);
        string? phone, hash;
        long expires; int attempts;
        using (var r = cmd.ExecuteReader())
        {
            if (!r.Read() || r.IsDBNull(0) || r.IsDBNull(1)) return VerifyResult.NoCode;
            phone = r.GetString(0); hash = r.GetString(1); expires = r.GetInt64(2); attempts = r.GetInt32(3);
        }
        using var up = c.CreateCommand();
        up.Transaction = tx;
        up.Parameters.AddWithValue("$u", user);
        VerifyResult result;
        if (nowMs > expires || attempts >= maxAttempts)
        {
            up.CommandText = "UPDATE prefs SET code_hash=NULL WHERE user_id=$u";
            result = VerifyResult.Expired;
        }
        else if (CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(hash), Encoding.ASCII.GetBytes(CodeHash(user, phone, code))))
        {
            up.CommandText = "UPDATE prefs SET phone_verified=1, code_hash=NULL WHERE user_id=$u; DELETE FROM optouts WHERE phone=(SELECT phone FROM prefs WHERE user_id=$u)";
            result = VerifyResult.Verified;
        }
        else
        {
            up.CommandText = "UPDATE prefs SET code_attempts=code_attempts+1 WHERE user_id=$u";
            result = VerifyResult.Wrong;
        }
        up.ExecuteNonQuery();
        tx.Commit();
        return result;
    }

    // Read once, before any transaction: creating it inside Verify's transaction (another connection's write) would make
    // that transaction's own write fail with SQLITE_BUSY_SNAPSHOT.
    private string CodeSecret => _codeSecret ??= Secret("code_secret");
    private string? _codeSecret;

    private string CodeHash(long user, string phone, string code) =>
        Convert.ToHexString(HMACSHA256.HashData(Encoding.UTF8.GetBytes(CodeSecret), Encoding.UTF8.GetBytes($"{user}:{phone}:{code}")));

    /// <summary>STOP from <paramref name="phone"/>: no SMS goes to it again (until START, or a new verification), and SMS is turned off for its users. Returns the users.</summary>
    public List<long> OptOut(string phone, long nowMs)
    {
        Exec("INSERT OR REPLACE INTO optouts(phone, at_ms) VALUES($p,$t)", ("$p", phone), ("$t", nowMs));
        var users = UsersOf(phone);
        Exec("UPDATE prefs SET sms_on=0 WHERE phone=$p", ("$p", phone));
        // Pending messages to that number are not sent (dead, with the reason in the audit log).
        DeadLetterSms(phone, StopReason, nowMs);
        return users;
    }

    /// <summary>START from <paramref name="phone"/>: the opt-out is lifted (users turn SMS back on themselves).</summary>
    public void OptIn(string phone) => Exec("DELETE FROM optouts WHERE phone=$p", ("$p", phone));

    private List<long> UsersOf(string phone)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT user_id FROM prefs WHERE phone=$p";
        cmd.Parameters.AddWithValue("$p", phone);
        var list = new List<long>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) list.Add(r.GetInt64(0));
        return list;
    }

    /// <summary>A random secret kept in the store (created on first use): signs unsubscribe links and hashes codes.</summary>
    public string Secret(string key)
    {
        using var c = Open();
        using var ins = c.CreateCommand();
        ins.CommandText = "INSERT OR IGNORE INTO meta(key, value) VALUES($k, $v); SELECT value FROM meta WHERE key=$k";
        ins.Parameters.AddWithValue("$k", key);
        ins.Parameters.AddWithValue("$v", Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        return (string)ins.ExecuteScalar()!;
    }

    private void Exec(string sql, params (string, object)[] args)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v);
        cmd.ExecuteNonQuery();
    }

    public void Dispose() => SqliteConnection.ClearPool(new SqliteConnection(_connectionString));
}
