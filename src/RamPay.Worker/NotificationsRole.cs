using System.Globalization;
using System.Net;
using System.Text.Json;
using RamPay.Notifications;

namespace RamPay.Worker;

/// <summary>
/// The worker's <c>notifications</c> role (docs/notifications.md, "Running as a worker"): the same consumer and
/// dispatcher as in the server, with the outbox and audit log in the PostgreSQL outbox the server and every worker of
/// the group share (<c>RAMPAY_NOTIFICATIONS__SHAREDSTORE</c>; a dead worker's retries are continued by another once their
/// lease has passed, and the server's audit endpoint lists them), or else in a SQLite file of its own (<c>--out DIR</c>), and recipients (address, choices,
/// unsubscribe link) asked of the server (<c>GET /v1/service/notifications/recipients/{id}</c>, with a service token),
/// which keeps the preferences and the signing secret. SMTP and SMS are configured with the server's own environment
/// variable names (<c>RAMPAY_NOTIFICATIONS__SMTP__HOST</c>, ...), so one env file serves both.
/// </summary>
public sealed class NotificationsRole : IDisposable
{
    private readonly ILoggerFactory _logs;

    public NotificationsRole(Func<string, string?> flag, Func<string, string?> env)
    {
        string server = flag("--server") ?? throw new ArgumentException("the notifications consumer needs --server URL (and RAMPAY_SERVICE_TOKEN)");
        string? shared = env("RAMPAY_NOTIFICATIONS__SHAREDSTORE") is { Length: > 0 } c ? c : null;
        string? dir = flag("--out");
        if (shared is null && dir is null)
            throw new ArgumentException("the notifications consumer needs RAMPAY_NOTIFICATIONS__SHAREDSTORE (the PostgreSQL outbox it shares with the server and the other workers) or --out DIR (a SQLite outbox of its own)");
        Options = FromEnvironment(env, requireChannel: true);
        _logs = LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.IncludeScopes = false; }));
        // The service token (RAMPAY_SERVICE_TOKEN, or --token-file), renewed with RAMPAY_SERVICE_REFRESH_TOKEN like the
        // rewards role's: without it the worker stops finding recipients once the access token expires.
        var tokens = ServiceTokenHandler.Create("notifications", flag, env, _logs.CreateLogger<ServiceTokenHandler>());
        Store = shared is not null
            ? new PostgresNotificationOutbox(shared, env("RAMPAY_NOTIFICATIONS__SHAREDSTORESCHEMA") is { Length: > 0 } s ? s : RamPay.Webhooks.PostgresSchema.DefaultSchema)
            : new NotificationStore(dir!);
        Consumer = new NotificationConsumer(Store, new HttpRecipientDirectory(new HttpClient(tokens) { BaseAddress = new Uri(server), Timeout = TimeSpan.FromSeconds(10) }), Options);
        Dispatcher = new NotificationDispatcher(Store, Options, _logs.CreateLogger<NotificationDispatcher>());
        Consumer.Enqueued += Dispatcher.Wake;
    }

    public NotificationOptions Options { get; }
    /// <summary>The outbox and audit log: the shared PostgreSQL one, or the worker's own SQLite file.</summary>
    public INotificationOutbox Store { get; }
    public NotificationConsumer Consumer { get; }
    public NotificationDispatcher Dispatcher { get; }

    /// <summary>The settings from the server's variable names (RAMPAY_NOTIFICATIONS__SMTP__HOST...), validated as the server does.</summary>
    public static NotificationOptions FromEnvironment(Func<string, string?> env, bool requireChannel)
    {
        string V(string name, string fallback = "") => env("RAMPAY_NOTIFICATIONS__" + name) ?? fallback;
        int I(string name, int fallback) => env("RAMPAY_NOTIFICATIONS__" + name) is { } s ? int.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture) : fallback;
        var smtp = new SmtpOptions
        {
            Host = V("SMTP__HOST"), Port = I("SMTP__PORT", 587), From = V("SMTP__FROM"), UserName = V("SMTP__USERNAME"), Password = V("SMTP__PASSWORD"),
            Security = V("SMTP__SECURITY", "auto"), Connections = I("SMTP__CONNECTIONS", 4),
        };
        var sms = new SmsOptions { Url = V("SMS__URL"), AccountSid = V("SMS__ACCOUNTSID"), AuthToken = V("SMS__AUTHTOKEN"), From = V("SMS__FROM"), MaxConcurrency = I("SMS__MAXCONCURRENCY", 16) };
        if (smtp.Enabled && (!MimeKit.MailboxAddress.TryParse(smtp.From, out var from) || !from.Address.Contains('@')))
            throw new ArgumentException("RAMPAY_NOTIFICATIONS__SMTP__FROM must be an email address");
        if (sms.Enabled && (!PhoneNumber.IsE164(sms.From) || sms.AccountSid.Length == 0 || sms.AuthToken.Length == 0))
            throw new ArgumentException("RAMPAY_NOTIFICATIONS__SMS__FROM (E.164), __ACCOUNTSID and __AUTHTOKEN are required with RAMPAY_NOTIFICATIONS__SMS__URL");
        var options = new NotificationOptions
        {
            Smtp = smtp, Sms = sms,
            RetryBase = TimeSpan.FromMilliseconds(I("RETRYBASEMS", 2_000)),
            MaxAge = TimeSpan.FromMinutes(I("MAXAGEMINUTES", 24 * 60)),
            MaxEventAge = TimeSpan.FromMinutes(I("MAXEVENTAGEMINUTES", 60)),
            Timeout = TimeSpan.FromMilliseconds(I("TIMEOUTMS", 30_000)),
            Lease = TimeSpan.FromMilliseconds(I("LEASEMS", 90_000)),
        };
        options.Validate();
        if (requireChannel && !options.Smtp.Enabled && !options.Sms.Enabled)
            throw new ArgumentException("the notifications consumer needs RAMPAY_NOTIFICATIONS__SMTP__HOST or RAMPAY_NOTIFICATIONS__SMS__URL (both off: nothing to send)");
        return options;
    }

    public void Dispose()
    {
        Dispatcher.Dispose();
        Store.Dispose();
        _logs.Dispose();
    }
}

/// <summary>Recipients from the server's API (<c>GET /v1/service/notifications/recipients/{id}</c>).</summary>
public sealed class HttpRecipientDirectory(HttpClient http) : IRecipientDirectory
{
    public async ValueTask<Recipient?> FindAsync(long userId, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync($"/v1/service/notifications/recipients/{userId.ToString(CultureInfo.InvariantCulture)}", cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        // Anything else that is not 200 fails the batch: the worker reads it again from the committed offset.
        response.EnsureSuccessStatusCode();
        using var doc = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), cancellationToken: cancellationToken).ConfigureAwait(false);
        var r = doc.RootElement;
        static string? S(JsonElement e, string n) => e.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        return new Recipient(userId, S(r, "name") ?? "", S(r, "email"), S(r, "phone"), S(r, "unsubscribe_url") ?? "");
    }
}

/// <summary>Runs the role's dispatcher for the worker's lifetime.</summary>
public sealed class NotificationDispatchService(NotificationsRole role) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => role.Dispatcher.RunAsync(stoppingToken);
}
