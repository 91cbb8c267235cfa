using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using RamPay.Server.Hosting;

namespace RamPay.Server.Auth;

/// <summary>
/// Refresh tokens and revoked access tokens, kept in memory and in an append-only log in the data folder
/// (<c>auth-sessions.log</c>, mode 0600) so that both survive a restart.
/// </summary>
/// <remarks>
/// <para><b>Refresh tokens.</b> A log-in starts a <i>session</i> (a family of refresh tokens) that lasts
/// <c>RamPay:Jwt:RefreshTokenLifetimeSeconds</c> from the log-in; refreshing does not extend it. A refresh token is
/// <c>&lt;session id&gt;.&lt;secret&gt;</c>, both random; only its SHA-256 is stored. Each use replaces it (rotation):
/// the session then knows only the new token's hash. Presenting a token of a live session that is not its current
/// one means an old token was copied and used (by the thief or by the user, whoever came second): the whole session
/// is revoked, so neither can refresh again (RFC 6819 §5.2.2.3, "refresh token rotation").</para>
/// <para><b>Revoked access tokens.</b> Logout puts the access token's <c>jti</c> on a deny list until the token
/// expires; every validation (HTTP and TCP) consults it, lock-free.</para>
/// <para><b>Bounds.</b> At most <c>MaxRefreshTokens</c> sessions: when full, expired ones are dropped, then the one
/// that expires soonest (its user logs in again). At most <c>MaxRevokedTokens</c> revocations: when full after
/// dropping the expired ones, logout is refused (503) rather than forgetting a revocation.</para>
/// <para><b>Durability.</b> Each change is one JSON line appended and fsynced before it is answered. A crash can
/// only tear the last line, which the next start ignores. At each start, and whenever the log holds more than twice
/// the live records, the live records are written to a new file that replaces the log atomically.
/// One process at a time uses a data folder's log (the journal's writer); a standby server loads it when it starts.</para>
/// </remarks>
public sealed class SessionStore : IDisposable
{
    public const string FileName = "auth-sessions.log";
    private const int SessionIdBytes = 16, SecretBytes = 32;

    private readonly object _lock = new();
    private readonly Dictionary<string, Session> _sessions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _denied = new(StringComparer.Ordinal);
    private readonly string _path;
    private readonly int _lifetimeSeconds;
    private readonly int _maxSessions;
    private readonly int _maxDenied;
    private readonly TimeProvider _time;
    private FileStream _log = null!;
    private int _logRecords;

    private sealed class Session(long userId, long expiresUnix, byte[] hash)
    {
        public readonly long UserId = userId;
        public readonly long ExpiresUnix = expiresUnix;
        public byte[] Hash = hash;
    }

    public enum RefreshResult { Rotated, Unknown, Reused }

    private SessionStore(string path, int lifetimeSeconds, int maxSessions, int maxDenied, TimeProvider time)
    {
        _path = path;
        _lifetimeSeconds = lifetimeSeconds;
        _maxSessions = maxSessions;
        _maxDenied = maxDenied;
        _time = time;
    }

    public int RefreshLifetimeSeconds => _lifetimeSeconds;
    public int SessionCount { get { lock (_lock) return _sessions.Count; } }
    public int RevokedCount => _denied.Count;

    /// <summary>Loads the log in <paramref name="dataDirectory"/> (a torn last line is ignored), drops what has expired and compacts it.</summary>
    public static SessionStore Open(string dataDirectory, int refreshLifetimeSeconds, int maxSessions, int maxRevoked, TimeProvider? time = null) =>
        Open(new DataFolder(dataDirectory), refreshLifetimeSeconds, maxSessions, maxRevoked, time);

    /// <summary>Loads the log at <see cref="DataFolder.AuthSessions"/>, as <see cref="Open(string, int, int, int, TimeProvider?)"/>.</summary>
    public static SessionStore Open(DataFolder data, int refreshLifetimeSeconds, int maxSessions, int maxRevoked, TimeProvider? time = null)
    {
        Directory.CreateDirectory(data.Root);
        var store = new SessionStore(data.AuthSessions, refreshLifetimeSeconds, maxSessions, maxRevoked, time ?? TimeProvider.System);
        store.Load();
        lock (store._lock) store.Compact();
        return store;
    }

    private long Now => _time.GetUtcNow().ToUnixTimeSeconds();

    // ---- refresh tokens ---------------------------------------------------------------------------------------

    /// <summary>Starts a session for a log-in; returns its first refresh token.</summary>
    public string Create(long userId, out long expiresUnix)
    {
        string id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(SessionIdBytes));
        string token = id + "." + Base64UrlSecret();
        expiresUnix = Now + _lifetimeSeconds;
        lock (_lock)
        {
            if (_sessions.Count >= _maxSessions) MakeRoomForSession();
            var session = new Session(userId, expiresUnix, Hash(token));
            _sessions[id] = session;
            Append(w => WritePut(w, id, session));
        }
        return token;
    }

    /// <summary>Replaces a refresh token with a new one of the same session; a token that is not the session's current one revokes the session.</summary>
    public RefreshResult Rotate(string refreshToken, out long userId, out string next, out long expiresUnix)
    {
        userId = 0;
        next = "";
        expiresUnix = 0;
        if (!TrySplit(refreshToken, out string id)) return RefreshResult.Unknown;
        byte[] hash = Hash(refreshToken);
        lock (_lock)
        {
            if (!_sessions.TryGetValue(id, out var session)) return RefreshResult.Unknown;
            if (session.ExpiresUnix <= Now)
            {
                Remove(id);
                return RefreshResult.Unknown;
            }
            if (!CryptographicOperations.FixedTimeEquals(hash, session.Hash))
            {
                Remove(id); // an earlier token of this session came back: someone holds a copy
                return RefreshResult.Reused;
            }
            next = id + "." + Base64UrlSecret();
            session.Hash = Hash(next);
            Append(w => WritePut(w, id, session));
            userId = session.UserId;
            expiresUnix = session.ExpiresUnix;
            return RefreshResult.Rotated;
        }
    }

    /// <summary>Ends the session of <paramref name="refreshToken"/> if it is the current token of one of <paramref name="userId"/>'s sessions.</summary>
    public bool Revoke(string refreshToken, long userId)
    {
        if (!TrySplit(refreshToken, out string id)) return false;
        byte[] hash = Hash(refreshToken);
        lock (_lock)
        {
            if (!_sessions.TryGetValue(id, out var session) || session.UserId != userId || !CryptographicOperations.FixedTimeEquals(hash, session.Hash)) return false;
            Remove(id);
            return true;
        }
    }

    // ---- revoked access tokens --------------------------------------------------------------------------------

    /// <summary>True when the access token with this jti was revoked (and has not expired yet).</summary>
    public bool IsDenied(string jti) => !_denied.IsEmpty && _denied.ContainsKey(jti);

    /// <summary>Revokes an access token until it expires; false when the deny list is full of live entries.</summary>
    public bool Deny(string jti, long expiresUnix)
    {
        lock (_lock)
        {
            if (_denied.ContainsKey(jti)) return true;
            if (_denied.Count >= _maxDenied)
            {
                long now = Now;
                foreach (var (key, exp) in _denied) if (exp < now) _denied.TryRemove(key, out _);
                if (_denied.Count >= _maxDenied) return false;
            }
            Append(w =>
            {
                w.WriteString("op", "deny");
                w.WriteString("j", jti);
                w.WriteNumber("exp", expiresUnix);
            });
            _denied[jti] = expiresUnix;
            return true;
        }
    }

    // ---- the log ----------------------------------------------------------------------------------------------

    private void MakeRoomForSession()
    {
        long now = Now;
        foreach (var (id, s) in _sessions.Where(p => p.Value.ExpiresUnix <= now).ToList()) Remove(id);
        if (_sessions.Count < _maxSessions) return;
        string soonest = _sessions.MinBy(p => p.Value.ExpiresUnix).Key;
        Remove(soonest);
    }

    private void Remove(string id)
    {
        _sessions.Remove(id);
        Append(w =>
        {
            w.WriteString("op", "del");
            w.WriteString("s", id);
        });
    }

    private static void WritePut(Utf8JsonWriter w, string id, Session s)
    {
        w.WriteString("op", "put");
        w.WriteString("s", id);
        w.WriteNumber("u", s.UserId);
        w.WriteNumber("exp", s.ExpiresUnix);
        w.WriteString("h", Convert.ToHexStringLower(s.Hash));
    }

    /// <summary>Appends one record and fsyncs it; called under the lock. Compacts when the log has grown to twice the live records.</summary>
    private void Append(Action<Utf8JsonWriter> record)
    {
        _log.Write(Line(record));
        _log.Flush(flushToDisk: true);
        if (++_logRecords > 2 * (_sessions.Count + _denied.Count) + 1024) Compact();
    }

    private static byte[] Line(Action<Utf8JsonWriter> record)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(160);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            record(w);
            w.WriteEndObject();
        }
        System.Buffers.BuffersExtensions.Write(buffer, "\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Writes the live records to a new log that atomically replaces the old one, then appends to it.</summary>
    private void Compact()
    {
        long now = Now;
        var content = new MemoryStream();
        int records = 0;
        foreach (var (id, s) in _sessions)
        {
            if (s.ExpiresUnix <= now) continue;
            content.Write(Line(w => WritePut(w, id, s)));
            records++;
        }
        foreach (var (jti, exp) in _denied)
        {
            if (exp < now) continue;
            content.Write(Line(w =>
            {
                w.WriteString("op", "deny");
                w.WriteString("j", jti);
                w.WriteNumber("exp", exp);
            }));
            records++;
        }
        foreach (var id in _sessions.Where(p => p.Value.ExpiresUnix <= now).Select(p => p.Key).ToList()) _sessions.Remove(id);
        foreach (var jti in _denied.Where(p => p.Value < now).Select(p => p.Key).ToList()) _denied.TryRemove(jti, out _);
        _log?.Dispose();
        SigningKeyRing.WriteFileAtomically(_path, content.GetBuffer().AsSpan(0, (int)content.Length));
        _log = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read);
        _logRecords = records;
    }

    private void Load()
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(_path);
        }
        catch (FileNotFoundException)
        {
            return;
        }
        int start = 0, line = 0;
        while (start < bytes.Length)
        {
            int end = Array.IndexOf(bytes, (byte)'\n', start);
            if (end < 0) break; // a torn last record: it was never acknowledged
            line++;
            var span = bytes.AsSpan(start, end - start);
            bool last = end == bytes.Length - 1;
            if (!TryApply(span) && !last)
                throw new InvalidDataException($"{_path} line {line} is not a session record (only the last line may be torn): {Encoding.UTF8.GetString(span)}");
            start = end + 1;
        }
    }

    private bool TryApply(ReadOnlySpan<byte> json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            var r = doc.RootElement;
            switch (r.GetProperty("op").GetString())
            {
                case "put":
                    _sessions[r.GetProperty("s").GetString()!] = new Session(r.GetProperty("u").GetInt64(), r.GetProperty("exp").GetInt64(), Convert.FromHexString(r.GetProperty("h").GetString()!));
                    return true;
                case "del":
                    _sessions.Remove(r.GetProperty("s").GetString()!);
                    return true;
                case "deny":
                    _denied[r.GetProperty("j").GetString()!] = r.GetProperty("exp").GetInt64();
                    return true;
                default:
                    return false;
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return false;
        }
    }

    private static bool TrySplit(string token, out string id)
    {
        id = "";
        int dot = token.IndexOf('.');
        if (dot != SessionIdBytes * 2 || token.Length > 200) return false;
        id = token[..dot];
        return true;
    }

    private static string Base64UrlSecret() => System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(SecretBytes));

    private static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));

    public void Dispose()
    {
        lock (_lock) _log?.Dispose();
    }
}
