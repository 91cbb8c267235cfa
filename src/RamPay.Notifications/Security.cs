using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace RamPay.Notifications;

/// <summary>
/// The unsubscribe link's token: <c>{user}.{base64url(HMAC-SHA256(secret, "unsubscribe:{user}"))}</c>. It names the
/// user and proves the server made it; it does not expire (an old email's link must still work, RFC 8058).
/// </summary>
public static class UnsubscribeToken
{
    public static string Create(long user, string secret) => $"{user}.{Mac(user, secret)}";

    /// <summary>The user a token names, or null when it is not one this secret made.</summary>
    public static long? Verify(string? token, string secret)
    {
        if (string.IsNullOrEmpty(token) || token.Length > 200) return null;
        int dot = token.IndexOf('.');
        if (dot <= 0 || !long.TryParse(token.AsSpan(0, dot), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long user) || user <= 0) return null;
        var expected = Encoding.ASCII.GetBytes(Mac(user, secret));
        var given = Encoding.ASCII.GetBytes(token[(dot + 1)..]);
        return CryptographicOperations.FixedTimeEquals(expected, given) ? user : null;
    }

    private static string Mac(long user, string secret) =>
        Convert.ToBase64String(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"unsubscribe:{user}"))).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>Twilio's request signature (<c>X-Twilio-Signature</c>): base64(HMAC-SHA1(auth token, URL + each POST parameter's name and value, sorted by name)).</summary>
public static class TwilioSignature
{
    public static string Compute(string authToken, string url, IEnumerable<KeyValuePair<string, string>> form)
    {
        var sb = new StringBuilder(url);
        foreach (var (k, v) in form.OrderBy(p => p.Key, StringComparer.Ordinal)) sb.Append(k).Append(v);
        return Convert.ToBase64String(HMACSHA1.HashData(Encoding.UTF8.GetBytes(authToken), Encoding.UTF8.GetBytes(sb.ToString())));
    }

    public static bool Verify(string authToken, string url, IEnumerable<KeyValuePair<string, string>> form, string? signature) =>
        signature is not null && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Compute(authToken, url, form)), Encoding.ASCII.GetBytes(signature));
}

/// <summary>Phone numbers in E.164: <c>+</c>, a country code that does not start with 0, 8 to 15 digits in all.</summary>
public static partial class PhoneNumber
{
    [GeneratedRegex(@"^\+[1-9][0-9]{7,14}$")]
    private static partial Regex E164();

    public static bool IsE164(string? s) => s is not null && E164().IsMatch(s);

    /// <summary>Words that opt a number out of SMS (Twilio's defaults), and the ones that opt it back in.</summary>
    public static bool IsStop(string body) => body.Trim().ToUpperInvariant() is "STOP" or "STOPALL" or "UNSUBSCRIBE" or "CANCEL" or "END" or "QUIT" or "OPTOUT" or "REVOKE";
    public static bool IsStart(string body) => body.Trim().ToUpperInvariant() is "START" or "UNSTOP" or "YES";
}
