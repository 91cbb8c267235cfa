using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;

namespace RamPay.Notifications;

/// <summary>
/// The message templates (src/RamPay.Notifications/Templates, embedded in the assembly): per kind, a plain-text email
/// (<c>{kind}.txt</c>, first line <c>Subject: ...</c>), an HTML email (<c>{kind}.html</c>) and an SMS
/// (<c>{kind}.sms.txt</c>). Placeholders are <c>{{name}}</c>; values are HTML-encoded in the HTML part. A placeholder
/// with no value is a bug (thrown), so a template and the planner cannot drift apart silently.
/// </summary>
public static partial class NotificationTemplates
{
    /// <summary>Every kind of notification an event can give (the <c>template</c> of the audit log).</summary>
    public static readonly IReadOnlyList<string> Kinds = ["money_received", "payment_sent", "refund_received", "payment_held", "payment_declined", "account_frozen", "account_unfrozen"];

    public const string PhoneVerification = "phone_verification";
    /// <summary>Not from an event: a webhook endpoint was disabled for failing (<see cref="EndpointDisabledNotifier"/>).</summary>
    public const string WebhookEndpointDisabled = "webhook_endpoint_disabled";

    private static readonly ConcurrentDictionary<string, string> Cache = new(StringComparer.Ordinal);

    /// <summary>A template's raw text (throws when the kind has no such template).</summary>
    public static string Raw(string file) => Cache.GetOrAdd(file, static f =>
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("RamPay.Notifications.Templates." + f)
            ?? throw new InvalidOperationException($"no notification template '{f}'");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    });

    /// <summary>An email's subject, plain text and HTML.</summary>
    public static (string Subject, string Text, string Html) Email(string kind, IReadOnlyDictionary<string, string> values)
    {
        string text = Render(Raw(kind + ".txt"), values, html: false);
        Invariant(text.StartsWith("Subject: ", StringComparison.Ordinal), $"{kind}.txt starts with a Subject: line");
        int end = text.IndexOf('\n');
        string subject = text[9..end].Trim();
        string body = text[(end + 1)..].TrimStart('\n');
        return (subject, body, Render(Raw(kind + ".html"), values, html: true));
    }

    /// <summary>An SMS's text.</summary>
    public static string Sms(string kind, IReadOnlyDictionary<string, string> values) => Render(Raw(kind + ".sms.txt"), values, html: false).Trim();

    [GeneratedRegex(@"\{\{([a-z_]+)\}\}")]
    private static partial Regex Placeholder();

    private static string Render(string template, IReadOnlyDictionary<string, string> values, bool html) =>
        Placeholder().Replace(template, m => values.TryGetValue(m.Groups[1].Value, out var v)
            ? (html ? WebUtility.HtmlEncode(v) : v)
            : throw new InvalidOperationException($"the template placeholder '{m.Value}' has no value"));

    /// <summary>An amount in minor units as people read it: <c>12.34 USD</c> (ISO 4217 exponents: 0 for JPY and the like, 3 for BHD and the like).</summary>
    public static string Money(long minor, string currency)
    {
        int exponent = currency switch
        {
            "BIF" or "CLP" or "DJF" or "GNF" or "ISK" or "JPY" or "KMF" or "KRW" or "PYG" or "RWF" or "UGX" or "VND" or "VUV" or "XAF" or "XOF" or "XPF" => 0,
            "BHD" or "IQD" or "JOD" or "KWD" or "LYD" or "OMR" or "TND" => 3,
            _ => 2,
        };
        if (exponent == 0) return minor.ToString("N0", CultureInfo.InvariantCulture) + " " + currency;
        decimal major = minor / (decimal)Math.Pow(10, exponent);
        return major.ToString("N" + exponent.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture) + " " + currency;
    }

    private static void Invariant(bool ok, string what)
    {
        if (!ok) throw new InvalidOperationException("template invariant broken: " + what);
    }
}
