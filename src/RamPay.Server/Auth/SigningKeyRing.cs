using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;
using RamPay.Server.Hosting;

namespace RamPay.Server.Auth;

/// <summary>
/// The HS256 keys that sign and verify access tokens, each with a key id (<c>kid</c>, put in every token's header).
/// The newest key signs; older keys only verify, until the last token they signed has expired (retired time + token
/// lifetime), then they are dropped. Kept in <c>jwt-keys.json</c> in the data folder (mode 0600), so tokens outlive a
/// restart; <see cref="Rotate"/> adds a key (POST /v1/admin/auth/keys/rotate).
/// </summary>
/// <remarks>
/// <para>A configured key (<c>RamPay:Jwt:SigningKey</c>) is used alone, kept in memory only, and cannot be rotated
/// here: the operator rotates it by changing the setting (tokens signed with the old one are then refused).</para>
/// <para>Upgrading: a data folder from before key rotation holds <c>jwt-signing.key</c>; it becomes the ring's first
/// key, so tokens issued before the upgrade (which carry no <c>kid</c>) still verify. A token without a kid is tried
/// against every key in the ring; a token naming a kid the ring lacks is refused.</para>
/// <para>Processes starting at once on a new folder agree on one ring: creation happens under an exclusive lock on
/// <c>jwt-keys.json.lock</c>, and the file is replaced atomically (<see cref="WriteFileAtomically"/>). A process that
/// meets a kid it does not know re-reads the file (at most once a second), so a key rotated by another server on the
/// same folder verifies here too.</para>
/// </remarks>
public sealed partial class SigningKeyRing
{
    public const string FileName = "jwt-keys.json";
    public const string LegacyFileName = "jwt-signing.key";
    private const int KeyBytes = 32;
    private static readonly long ReloadIntervalTicks = System.Diagnostics.Stopwatch.Frequency;

    private readonly string? _path; // null: a configured key, in memory only
    private readonly int _tokenLifetimeSeconds;
    private readonly TimeProvider _time;
    private readonly object _rotateLock = new();
    private volatile Snapshot _keys;
    private long _nextReload;

    private SigningKeyRing(string? path, Snapshot keys, int tokenLifetimeSeconds, TimeProvider time)
    {
        _path = path;
        _keys = keys;
        _tokenLifetimeSeconds = tokenLifetimeSeconds;
        _time = time;
    }

    /// <summary>One key of the ring as stored. <see cref="RetiredUnix"/> is 0 for the key that signs.</summary>
    public sealed record StoredKey(string Kid, byte[] Key, long CreatedUnix, long RetiredUnix);

    private sealed class Snapshot(IReadOnlyList<StoredKey> stored)
    {
        public readonly IReadOnlyList<StoredKey> Stored = stored;
        public readonly SymmetricSecurityKey Current = ToSecurityKey(stored[^1]);
        public readonly Dictionary<string, SecurityKey[]> ByKid = stored.ToDictionary(k => k.Kid, k => new SecurityKey[] { ToSecurityKey(k) }, StringComparer.Ordinal);
        public readonly SecurityKey[] All = stored.Select(k => (SecurityKey)ToSecurityKey(k)).ToArray();
    }

    private static SymmetricSecurityKey ToSecurityKey(StoredKey k) => new(k.Key) { KeyId = k.Kid };

    /// <summary>The key that signs new tokens (its KeyId is the kid).</summary>
    public SymmetricSecurityKey Current => _keys.Current;

    /// <summary>The keys as they stand (the signing key last).</summary>
    public IReadOnlyList<StoredKey> Keys => _keys.Stored;

    /// <summary>False for a configured key.</summary>
    public bool CanRotate => _path is not null;

    /// <summary>The configured key if there is one, else the ring in <paramref name="dataDirectory"/> (created at first start).</summary>
    public static SigningKeyRing Open(string configuredKey, string dataDirectory, int tokenLifetimeSeconds, TimeProvider? time = null) =>
        Open(configuredKey, new DataFolder(dataDirectory), tokenLifetimeSeconds, time);

    /// <summary>The configured key if there is one, else the ring at <see cref="DataFolder.JwtKeys"/> (created at first start).</summary>
    public static SigningKeyRing Open(string configuredKey, DataFolder data, int tokenLifetimeSeconds, TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        if (configuredKey.Length > 0)
        {
            byte[] key = Encoding.UTF8.GetBytes(configuredKey);
            if (key.Length < KeyBytes) throw new ArgumentException("an HS256 key needs at least 32 bytes", nameof(configuredKey));
            // The kid names the key without revealing it, so a token shows which configured key signed it.
            string kid = "cfg-" + Convert.ToHexStringLower(SHA256.HashData(key))[..12];
            return new SigningKeyRing(null, new Snapshot([new StoredKey(kid, key, 0, 0)]), tokenLifetimeSeconds, time);
        }
        string path = data.JwtKeys;
        var stored = TryRead(path);
        if (stored is null)
        {
            Directory.CreateDirectory(data.Root);
            using var exclusive = Lock(data.JwtKeysLock);
            stored = TryRead(path); // another process made it while this one waited
            if (stored is null)
            {
                long now = time.GetUtcNow().ToUnixTimeSeconds();
                string legacy = data.LegacyJwtKey;
                byte[] first = File.Exists(legacy) ? ReadLegacyKey(legacy) : RandomNumberGenerator.GetBytes(KeyBytes);
                stored = [new StoredKey(NewKid(time), first, now, 0)];
                WriteFileAtomically(path, Serialize(stored));
            }
        }
        return new SigningKeyRing(path, new Snapshot(stored), tokenLifetimeSeconds, time);
    }

    /// <summary>The keys that may have signed a token with this kid: that key, every key when the token has none, or none.</summary>
    public IEnumerable<SecurityKey> Resolve(string? kid)
    {
        var keys = _keys;
        if (string.IsNullOrEmpty(kid)) return keys.All;
        if (keys.ByKid.TryGetValue(kid, out var found)) return found;
        // Rotated by another process on the same folder? Re-read, at most once a second (a forged kid costs nothing more).
        if (_path is null) return [];
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        long due = Interlocked.Read(ref _nextReload);
        if (now < due || Interlocked.CompareExchange(ref _nextReload, now + ReloadIntervalTicks, due) != due) return [];
        var reread = TryRead(_path);
        if (reread is null) return [];
        lock (_rotateLock) _keys = keys = new Snapshot(reread);
        return keys.ByKid.TryGetValue(kid, out found) ? found : [];
    }

    /// <summary>
    /// Adds a new signing key; the one that signed until now verifies until <c>now + token lifetime</c>, and keys
    /// retired longer ago than that are dropped. Written atomically under the ring's lock before the new key is used.
    /// </summary>
    public (StoredKey Added, StoredKey Previous) Rotate()
    {
        if (_path is null) throw new InvalidOperationException("the signing key is configured (RamPay:Jwt:SigningKey): change the setting to rotate it");
        lock (_rotateLock)
        {
            using var exclusive = Lock(_path + ".lock");
            var stored = TryRead(_path) ?? throw new InvalidOperationException($"{_path} has disappeared");
            long now = _time.GetUtcNow().ToUnixTimeSeconds();
            var previous = stored[^1] with { RetiredUnix = now };
            var kept = stored.Take(stored.Count - 1).Where(k => k.RetiredUnix + _tokenLifetimeSeconds >= now).ToList();
            kept.Add(previous);
            var added = new StoredKey(NewKid(_time), RandomNumberGenerator.GetBytes(KeyBytes), now, 0);
            kept.Add(added);
            WriteFileAtomically(_path, Serialize(kept));
            _keys = new Snapshot(kept);
            return (added, previous);
        }
    }

    private static string NewKid(TimeProvider time) =>
        "k" + time.GetUtcNow().ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture) + "-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));

    private static byte[] Serialize(IReadOnlyList<StoredKey> keys)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("keys");
            foreach (var k in keys)
            {
                w.WriteStartObject();
                w.WriteString("kid", k.Kid);
                w.WriteBase64String("key", k.Key);
                w.WriteNumber("created_unix", k.CreatedUnix);
                w.WriteNumber("retired_unix", k.RetiredUnix);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The ring in <paramref name="path"/>, or null when there is none; a file that does not parse is an error (never replaced silently).</summary>
    private static List<StoredKey>? TryRead(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            var keys = new List<StoredKey>();
            foreach (var k in doc.RootElement.GetProperty("keys").EnumerateArray())
            {
                var key = new StoredKey(k.GetProperty("kid").GetString()!, k.GetProperty("key").GetBytesFromBase64(),
                    k.GetProperty("created_unix").GetInt64(), k.GetProperty("retired_unix").GetInt64());
                if (key.Key.Length < KeyBytes || key.Kid.Length == 0) throw new InvalidDataException("a key is shorter than 32 bytes or has no kid");
                keys.Add(key);
            }
            if (keys.Count == 0 || keys[^1].RetiredUnix != 0) throw new InvalidDataException("the last key must be the signing key (retired_unix 0)");
            return keys;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path} is not a signing-key ring: {e.Message}", e);
        }
    }

    private static byte[] ReadLegacyKey(string path)
    {
        byte[] existing = Convert.FromBase64String(File.ReadAllText(path).Trim());
        if (existing.Length < KeyBytes) throw new InvalidDataException($"{path} holds a key shorter than 32 bytes");
        return existing;
    }

    /// <summary>Opens <paramref name="path"/> with no sharing (an exclusive advisory lock on Unix), waiting up to 30 s for another holder.</summary>
    private static FileStream Lock(string path)
    {
        long deadline = Environment.TickCount64 + 30_000;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (Environment.TickCount64 < deadline)
            {
                Thread.Sleep(10);
            }
        }
    }

    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="content"/> so that a crash or power loss leaves either the
    /// old file or the new one, whole: write a private temporary file, fsync it, rename it over the target, fsync the
    /// directory (the rename itself is durable only then). Mode 0600: the files hold secrets. The one place the auth
    /// files are written (the key ring and the session store's compactions), through RamPay.Journal's AtomicFile.
    /// </summary>
    internal static void WriteFileAtomically(string path, ReadOnlySpan<byte> content) =>
        RamPay.Journal.AtomicFile.Write(path, content, UnixFileMode.UserRead | UnixFileMode.UserWrite);
}
