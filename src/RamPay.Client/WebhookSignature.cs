using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using RamPay.Core;

namespace RamPay.Client;

/// <summary>
/// RamPay's webhook signatures (docs/webhooks.md): the header <c>RamPay-Signature: t=&lt;unix seconds&gt;,v1=&lt;hex&gt;[,v1=&lt;hex&gt;]</c>,
/// each <c>v1</c> the HMAC-SHA256, keyed with a secret's UTF-8 bytes (<c>whsec_...</c> as shown), of
/// <c>"&lt;t&gt;.&lt;raw body&gt;"</c>. During a secret rotation there is one <c>v1</c> per valid secret.
/// </summary>
public static class WebhookSignature
{
    public const string HeaderName = "RamPay-Signature";

    /// <summary>
    /// True when <paramref name="header"/> carries a <c>v1</c> that <paramref name="secret"/> made over
    /// <paramref name="body"/> (the raw bytes received, not re-serialized) and its <c>t</c> is within
    /// <paramref name="tolerance"/> of now (a replayed old request is refused). Compares in constant time.
    /// </summary>
    public static bool Verify(ReadOnlySpan<byte> body, string? header, string secret, TimeSpan tolerance, DateTimeOffset? now = null)
    {
        if (string.IsNullOrEmpty(header) || string.IsNullOrEmpty(secret)) return false;
        long? t = null;
        var candidates = new List<byte[]>();
        foreach (var part in header.Split(','))
        {
            int eq = part.IndexOf('=');
            if (eq <= 0) continue;
            var name = part.AsSpan(0, eq).Trim();
            var value = part.AsSpan(eq + 1).Trim();
            if (name.SequenceEqual("t") && long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long seconds)) t = seconds;
            else if (name.SequenceEqual("v1") && value.Length == 64)
            {
                try { candidates.Add(Convert.FromHexString(value)); } catch (FormatException) { }
            }
        }
        if (t is not { } timestamp || candidates.Count == 0) return false;
        long nowSeconds = (now ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds();
        if (Math.Abs(nowSeconds - timestamp) > tolerance.TotalSeconds) return false;
        byte[] expected = Compute(body, timestamp, secret);
        bool ok = false;
        foreach (var c in candidates) ok |= CryptographicOperations.FixedTimeEquals(c, expected);
        return ok;
    }

    /// <summary>The header value for <paramref name="body"/> signed at <paramref name="timestamp"/> with each of <paramref name="secrets"/>.</summary>
    public static string Header(ReadOnlySpan<byte> body, long timestamp, IEnumerable<string> secrets)
    {
        var keys = secrets.Select(Key).ToList();
        if (keys.Count is not (1 or 2)) throw new ArgumentException("a header carries the current secret's v1 and, during a rotation, the old one's", nameof(secrets));
        return Header(body, timestamp, keys[0], keys.Count == 2 ? keys[1] : null);
    }

    /// <summary>A secret's signing key: its UTF-8 bytes (the whole <c>whsec_...</c> string). A sender keeps it rather than encoding the secret on every request.</summary>
    public static byte[] Key(string secret) => Encoding.UTF8.GetBytes(secret);

    /// <summary>
    /// The header value for <paramref name="body"/> signed at <paramref name="timestamp"/> with <paramref name="key"/> and,
    /// during a rotation, <paramref name="oldKey"/> too (keys from <see cref="Key"/>). The one implementation the
    /// dispatchers and <see cref="Verify"/> share: the signed bytes in a pooled buffer, one-shot HMACs into the stack, the
    /// header written into a stack buffer: one string is all it allocates.
    /// </summary>
    public static string Header(ReadOnlySpan<byte> body, long timestamp, ReadOnlySpan<byte> key, byte[]? oldKey)
    {
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes * 2];
        int macs = Sign(body, timestamp, key, oldKey, mac);
        // "t=" + at most 20 digits (a negative long) + per key ",v1=" and 64 hex digits.
        Span<char> text = stackalloc char[2 + 20 + 2 * (4 + 2 * HMACSHA256.HashSizeInBytes)];
        "t=".CopyTo(text);
        bool ok = timestamp.TryFormat(text[2..], out int n, default, CultureInfo.InvariantCulture);
        Invariant.Check(ok, "a long fits 20 characters");
        n += 2;
        for (int i = 0; i < macs; i++)
        {
            ",v1=".CopyTo(text[n..]);
            n += 4;
            ok = Convert.TryToHexStringLower(mac.Slice(i * HMACSHA256.HashSizeInBytes, HMACSHA256.HashSizeInBytes), text[n..], out int hex);
            Invariant.Check(ok && hex == 2 * HMACSHA256.HashSizeInBytes, "a MAC is 64 hex digits");
            n += hex;
        }
        return new string(text[..n]);
    }

    /// <summary>HMAC-SHA256(secret, "&lt;t&gt;.&lt;body&gt;").</summary>
    public static byte[] Compute(ReadOnlySpan<byte> body, long timestamp, string secret)
    {
        var mac = new byte[HMACSHA256.HashSizeInBytes];
        Sign(body, timestamp, Key(secret), null, mac);
        return mac;
    }

    /// <summary>Writes HMAC-SHA256(key, "&lt;t&gt;.&lt;body&gt;") to <paramref name="mac"/>, and the old key's after it when given; returns how many.</summary>
    private static int Sign(ReadOnlySpan<byte> body, long timestamp, ReadOnlySpan<byte> key, byte[]? oldKey, Span<byte> mac)
    {
        // One contiguous buffer: the one-shot HashData is several times cheaper than an IncrementalHash per request.
        byte[] buffer = ArrayPool<byte>.Shared.Rent(body.Length + 21);
        try
        {
            bool formatted = timestamp.TryFormat(buffer, out int n, default, CultureInfo.InvariantCulture);
            Invariant.Check(formatted, "a unix time fits 20 bytes");
            buffer[n++] = (byte)'.';
            body.CopyTo(buffer.AsSpan(n));
            var signed = buffer.AsSpan(0, n + body.Length);
            HMACSHA256.HashData(key, signed, mac[..HMACSHA256.HashSizeInBytes]);
            if (oldKey is null) return 1;
            HMACSHA256.HashData(oldKey, signed, mac.Slice(HMACSHA256.HashSizeInBytes, HMACSHA256.HashSizeInBytes));
            return 2;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
