using System.Globalization;
using System.Security.Cryptography;
using System.Text;

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
        var text = new StringBuilder("t=").Append(timestamp.ToString(CultureInfo.InvariantCulture));
        foreach (var secret in secrets) text.Append(",v1=").Append(Convert.ToHexStringLower(Compute(body, timestamp, secret)));
        return text.ToString();
    }

    /// <summary>HMAC-SHA256(secret, "&lt;t&gt;.&lt;body&gt;").</summary>
    public static byte[] Compute(ReadOnlySpan<byte> body, long timestamp, string secret)
    {
        byte[] prefix = Encoding.ASCII.GetBytes(timestamp.ToString(CultureInfo.InvariantCulture) + ".");
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, Encoding.UTF8.GetBytes(secret));
        hmac.AppendData(prefix);
        hmac.AppendData(body);
        return hmac.GetHashAndReset();
    }
}
