using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace RamPay.Server.Auth;

/// <summary>Who sent a request, from a verified token.</summary>
public readonly record struct Caller(long UserId, bool IsAdmin);

/// <summary>
/// HS256 JSON Web Tokens (RFC 7519), issued at login and checked on every request and every TCP Hello. Our own code
/// rather than JwtBearer: the JwtBearer packages that target .NET 9/10 do not restore here (they need an
/// OpenIdConnect version the registry lacks), and a check that is a single HMAC over the header and payload keeps
/// the cost per request at about a microsecond. Only HS256 is accepted, whatever the header says ("alg": "none" and
/// algorithm confusion are refused), and the signature is compared in constant time before the payload is parsed.
/// </summary>
public sealed class Jwt
{
    private static readonly byte[] HeaderSegment = Encoding.ASCII.GetBytes(Base64Url.EncodeToString("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"u8));
    private readonly byte[] _key;
    private readonly string _issuer;
    private readonly string _audience;
    private readonly TimeProvider _time;

    public Jwt(byte[] key, string issuer, string audience, int lifetimeSeconds, TimeProvider? time = null)
    {
        if (key.Length < 32) throw new ArgumentException("an HS256 key needs at least 32 bytes", nameof(key));
        _key = key;
        _issuer = issuer;
        _audience = audience;
        LifetimeSeconds = lifetimeSeconds;
        _time = time ?? TimeProvider.System;
    }

    public int LifetimeSeconds { get; }

    public string Issue(long userId, bool isAdmin)
    {
        long now = _time.GetUtcNow().ToUnixTimeSeconds();
        var payload = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(payload))
        {
            w.WriteStartObject();
            w.WriteString("iss", _issuer);
            w.WriteString("aud", _audience);
            w.WriteString("sub", userId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            w.WriteString("role", isAdmin ? "admin" : "user");
            w.WriteNumber("iat", now);
            w.WriteNumber("exp", now + LifetimeSeconds);
            w.WriteString("jti", Convert.ToHexString(RandomNumberGenerator.GetBytes(12)));
            w.WriteEndObject();
        }
        string body = Base64Url.EncodeToString(payload.WrittenSpan);
        var signingInput = new byte[HeaderSegment.Length + 1 + body.Length];
        HeaderSegment.CopyTo(signingInput, 0);
        signingInput[HeaderSegment.Length] = (byte)'.';
        Encoding.ASCII.GetBytes(body, signingInput.AsSpan(HeaderSegment.Length + 1));
        string signature = Base64Url.EncodeToString(HMACSHA256.HashData(_key, signingInput));
        return Encoding.ASCII.GetString(signingInput) + "." + signature;
    }

    /// <summary>Checks a token (signature, issuer, audience, expiry, subject); false for anything wrong with it.</summary>
    public bool TryValidate(ReadOnlySpan<char> token, out Caller caller)
    {
        caller = default;
        if (token.Length is 0 or > 4096) return false;
        int dot1 = token.IndexOf('.');
        int dot2 = dot1 < 0 ? -1 : token[(dot1 + 1)..].IndexOf('.');
        if (dot1 <= 0 || dot2 <= 0) return false;
        dot2 += dot1 + 1;
        var signingInputChars = token[..dot2];
        var signatureChars = token[(dot2 + 1)..];

        Span<byte> signingInput = stackalloc byte[signingInputChars.Length];
        for (int i = 0; i < signingInputChars.Length; i++)
        {
            char c = signingInputChars[i];
            if (c > 127) return false;
            signingInput[i] = (byte)c;
        }
        // Our tokens always carry the same header, so anything else (another alg, "none") is refused byte for byte.
        if (!signingInput[..dot1].SequenceEqual(HeaderSegment)) return false;

        Span<byte> expected = stackalloc byte[32];
        HMACSHA256.HashData(_key, signingInput, expected);
        Span<byte> given = stackalloc byte[64];
        if (signatureChars.Length > 64) return false;
        if (Base64Url.DecodeFromChars(signatureChars, given, out _, out int signatureBytes) != OperationStatus.Done) return false;
        if (!CryptographicOperations.FixedTimeEquals(expected, given[..signatureBytes])) return false;

        var payloadChars = signingInputChars[(dot1 + 1)..];
        byte[] rented = ArrayPool<byte>.Shared.Rent(Base64Url.GetMaxDecodedLength(payloadChars.Length));
        try
        {
            if (Base64Url.DecodeFromChars(payloadChars, rented, out _, out int payloadBytes) != OperationStatus.Done) return false;
            return TryReadClaims(rented.AsSpan(0, payloadBytes), out caller);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private bool TryReadClaims(ReadOnlySpan<byte> json, out Caller caller)
    {
        caller = default;
        long userId = 0, exp = 0;
        bool issuerOk = false, audienceOk = false, isAdmin = false, roleSeen = false;
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("iss"u8)) { reader.Read(); issuerOk = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals(_issuer); }
                else if (reader.ValueTextEquals("aud"u8)) { reader.Read(); audienceOk = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals(_audience); }
                else if (reader.ValueTextEquals("sub"u8)) { reader.Read(); if (reader.TokenType != JsonTokenType.String || !long.TryParse(reader.GetString(), out userId)) return false; }
                else if (reader.ValueTextEquals("role"u8))
                {
                    reader.Read();
                    roleSeen = reader.TokenType == JsonTokenType.String && (reader.ValueTextEquals("admin"u8) || reader.ValueTextEquals("user"u8));
                    isAdmin = roleSeen && reader.ValueTextEquals("admin"u8);
                }
                else if (reader.ValueTextEquals("exp"u8)) { reader.Read(); if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out exp)) return false; }
                else { reader.Read(); reader.Skip(); }
            }
        }
        catch (JsonException)
        {
            return false;
        }
        if (!issuerOk || !audienceOk || !roleSeen || userId <= 0) return false;
        if (exp <= _time.GetUtcNow().ToUnixTimeSeconds()) return false;
        caller = new Caller(userId, isAdmin);
        return true;
    }

    /// <summary>
    /// The signing key: the configured one, or else one generated at first start and kept (mode 0600) in the data
    /// folder, so that tokens outlive a restart. Processes starting at once on a new folder agree on one key: the
    /// check and the creation happen under an exclusive lock on <c>jwt-signing.key.lock</c> (kept beside it), and the
    /// key is written with <see cref="RamPay.Journal.AtomicFile"/>, so a crash never leaves half a key.
    /// </summary>
    public static byte[] LoadOrCreateKey(string configured, string dataDirectory)
    {
        if (configured.Length > 0) return Encoding.UTF8.GetBytes(configured);
        string path = Path.Combine(dataDirectory, "jwt-signing.key");
        if (File.Exists(path)) return ReadKey(path);
        Directory.CreateDirectory(dataDirectory);
        using var exclusive = Lock(path + ".lock");
        if (File.Exists(path)) return ReadKey(path); // another process made it while this one waited
        byte[] key = RandomNumberGenerator.GetBytes(32);
        // Temporary file, fsync, rename, fsync of the folder: a power loss never leaves half a key, nor loses a key
        // that tokens were already signed with.
        RamPay.Journal.AtomicFile.Write(path, Encoding.ASCII.GetBytes(Convert.ToBase64String(key)), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return key;
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

    private static byte[] ReadKey(string path)
    {
        byte[] existing = Convert.FromBase64String(File.ReadAllText(path).Trim());
        if (existing.Length < 32) throw new InvalidOperationException($"{path} holds a key shorter than 32 bytes");
        return existing;
    }
}
