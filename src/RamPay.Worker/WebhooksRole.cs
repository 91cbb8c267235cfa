using System.Globalization;
using RamPay.Notifications;
using RamPay.Webhooks;

namespace RamPay.Worker;

/// <summary>
/// The worker's <c>webhooks</c> role (docs/webhooks.md, "Workers"): the server's webhook consumer and dispatcher on the
/// Kafka topic, with the endpoints, deliveries and attempts in the PostgreSQL store the server and every worker of
/// the group share (<c>RAMPAY_WEBHOOKS__SHAREDSTORE</c>, required). A delivery claimed by a worker that dies is taken
/// over by another once its lease (<c>RAMPAY_WEBHOOKS__LEASEMS</c>) has passed. Settings use the server's environment
/// names (<c>RAMPAY_WEBHOOKS__TIMEOUTMS</c>, ...). With the notifications' shared outbox configured too
/// (<c>RAMPAY_NOTIFICATIONS__SHAREDSTORE</c>, <c>--server</c> and <c>RAMPAY_SERVICE_TOKEN</c>), an endpoint it disables
/// has its owner told through that outbox (sent by whichever dispatcher has SMTP/SMS: the server or a notifications worker).
/// </summary>
public sealed class WebhooksRole : IDisposable
{
    private readonly ILoggerFactory _logs;

    public WebhooksRole(Func<string, string?> flag, Func<string, string?> env)
    {
        string connection = env("RAMPAY_WEBHOOKS__SHAREDSTORE") is { Length: > 0 } c ? c
            : throw new ArgumentException("the webhooks consumer needs RAMPAY_WEBHOOKS__SHAREDSTORE (the PostgreSQL store it shares with the server and the other workers)");
        string schema = env("RAMPAY_WEBHOOKS__SHAREDSTORESCHEMA") is { Length: > 0 } s ? s : PostgresSchema.DefaultSchema;
        Options = FromEnvironment(env);
        _logs = LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.IncludeScopes = false; }));
        Store = new PostgresWebhookStore(connection, schema);
        Consumer = new WebhookConsumer(Store);
        Dispatcher = new WebhookDispatcher(Store, Options, new UrlGuard(Options.AllowPrivateNetworks), _logs.CreateLogger<WebhookDispatcher>());
        Consumer.Enqueued += Dispatcher.Wake;
        if (env("RAMPAY_NOTIFICATIONS__SHAREDSTORE") is { Length: > 0 } outboxConnection && flag("--server") is { } server
            && (env("RAMPAY_SERVICE_TOKEN") is { Length: > 0 } || flag("--token-file") is { } tokenFile && File.Exists(tokenFile)))
        {
            // The service token renewed with RAMPAY_SERVICE_REFRESH_TOKEN and kept in --token-file, as the other roles do.
            var tokens = ServiceTokenHandler.Create("webhooks", flag, env, _logs.CreateLogger<ServiceTokenHandler>());
            var notificationOptions = NotificationsRole.FromEnvironment(env, requireChannel: false);
            Outbox = new PostgresNotificationOutbox(outboxConnection, env("RAMPAY_NOTIFICATIONS__SHAREDSTORESCHEMA") is { Length: > 0 } os ? os : PostgresSchema.DefaultSchema);
            var notifier = new EndpointDisabledNotifier(Outbox, new HttpRecipientDirectory(new HttpClient(tokens) { BaseAddress = new Uri(server), Timeout = TimeSpan.FromSeconds(10) }), notificationOptions,
                _logs.CreateLogger<EndpointDisabledNotifier>());
            Dispatcher.Disabled += notifier.Handler(Options.DisableAfter);
        }
    }

    public WebhookOptions Options { get; }
    public PostgresWebhookStore Store { get; }
    public WebhookConsumer Consumer { get; }
    public WebhookDispatcher Dispatcher { get; }
    public PostgresNotificationOutbox? Outbox { get; }

    /// <summary>The settings from the server's variable names (RAMPAY_WEBHOOKS__TIMEOUTMS...), validated.</summary>
    public static WebhookOptions FromEnvironment(Func<string, string?> env)
    {
        int I(string name, int fallback) => env("RAMPAY_WEBHOOKS__" + name) is { Length: > 0 } s ? int.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture) : fallback;
        bool allowPrivate = env("RAMPAY_WEBHOOKS__ALLOWPRIVATENETWORKS") is { Length: > 0 } a && bool.Parse(a);
        int retryBaseMs = I("RETRYBASEMS", 2_000);
        var options = new WebhookOptions
        {
            AllowPrivateNetworks = allowPrivate,
            Timeout = TimeSpan.FromMilliseconds(I("TIMEOUTMS", 10_000)),
            MaxAge = TimeSpan.FromMinutes(I("MAXAGEMINUTES", 3 * 24 * 60)),
            RetryBase = TimeSpan.FromMilliseconds(retryBaseMs),
            RetryMax = TimeSpan.FromMilliseconds(Math.Max(retryBaseMs, 3_600_000)),
            MaxConcurrency = I("MAXCONCURRENCY", WebhookOptions.DefaultMaxConcurrency),
            MaxPerEndpoint = I("MAXPERENDPOINT", WebhookOptions.DefaultMaxPerEndpoint),
            DisableAfter = TimeSpan.FromMinutes(I("DISABLEAFTERMINUTES", 3 * 24 * 60)),
            BreakerFailures = I("BREAKERFAILURES", 5),
            BreakerOpen = TimeSpan.FromMilliseconds(I("BREAKEROPENMS", 30_000)),
            Lease = TimeSpan.FromMilliseconds(I("LEASEMS", 60_000)),
        };
        options.Validate();
        return options;
    }

    public void Dispose()
    {
        Dispatcher.Dispose();
        Store.Dispose();
        Outbox?.Dispose();
        _logs.Dispose();
    }
}

/// <summary>Runs the webhooks role's dispatcher for the worker's lifetime.</summary>
public sealed class WebhookDispatchService(WebhooksRole role) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => role.Dispatcher.RunAsync(stoppingToken);
}
