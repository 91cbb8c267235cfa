using System.Globalization;
using OpenTelemetry.Metrics;
using RamPay.Events;
using RamPay.Worker;

// rampay-worker NAME --kafka HOST:PORT --group G [--topic T] [--http-port N] [--http-host ADDR] [--out DIR] [--kafka-properties K=V;K=V]
// One event consumer (docs/consumers.md) on a Kafka consumer group: offsets are committed only after the consumer's
// effects are durable; /health/live, /health/ready (200 once the group has assigned partitions) and /metrics.
// rampay-worker --health-check URL: GETs URL and exits 0 on a 2xx within 5 s, 1 otherwise (the image's HEALTHCHECK:
// Microsoft's aspnet image has no curl).
if (args.Length == 2 && args[0] == "--health-check") return await RamPay.Worker.HealthCheck.RunAsync(args[1]);
if (args.Length == 0 || args[0].StartsWith('-'))
{
    Console.Error.WriteLine("usage: rampay-worker NAME --kafka HOST:PORT --group G [--topic rampay.events] [--http-port 0] [--http-host 127.0.0.1] [--out DIR] [--server URL]");
    Console.Error.WriteLine("       [--kafka-properties \"security.protocol=SASL_SSL;sasl.mechanism=PLAIN;...\"] (other librdkafka consumer properties; or RAMPAY_KAFKA_CONSUMER_PROPERTIES)");
    Console.Error.WriteLine("       rampay-worker --health-check http://127.0.0.1:8080/health/live");
    Console.Error.WriteLine($"consumers: {string.Join(", ", WorkerConsumers.Names)}");
    Console.Error.WriteLine("rewards, notifications, webhooks: [--token-file FILE] (the service token; or RAMPAY_SERVICE_TOKEN); rewards: [--round-events 8000]");
    Console.Error.WriteLine($"analytics: --out DIR [--user-retention {RamPay.Analytics.AnalyticsRetention.DefaultText}] (how long a user's buckets are kept)");
    return 2;
}
var flags = new Dictionary<string, string>(StringComparer.Ordinal);
for (int i = 1; i < args.Length; i++)
{
    if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
    {
        Console.Error.WriteLine($"rampay-worker: '{args[i]}' is not a --flag followed by a value");
        return 2;
    }
    flags[args[i]] = args[++i];
}
string? Flag(string name) => flags.TryGetValue(name, out var v) ? v : null;
WorkerOptions options;
IEventConsumer consumer;
try
{
    options = new WorkerOptions
    {
        Consumer = args[0],
        BootstrapServers = Flag("--kafka") ?? throw new ArgumentException("--kafka HOST:PORT is required"),
        Group = Flag("--group") ?? throw new ArgumentException("--group NAME is required"),
        Topic = Flag("--topic") ?? "rampay.events",
        HttpPort = int.Parse(Flag("--http-port") ?? "0", NumberStyles.None, CultureInfo.InvariantCulture),
        HttpHost = Flag("--http-host") ?? "127.0.0.1",
        ConsumerProperties = WorkerOptions.ParseProperties(Flag("--kafka-properties") ?? Environment.GetEnvironmentVariable("RAMPAY_KAFKA_CONSUMER_PROPERTIES")),
    };
    consumer = WorkerConsumers.Create(options.Consumer, Flag);
}
catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
{
    Console.Error.WriteLine($"rampay-worker: {e.Message}");
    return 2;
}

var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
builder.Logging.ClearProviders();
builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.IncludeScopes = false; });
builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Parse(options.HttpHost), options.HttpPort));
builder.Services.AddSingleton(options);
builder.Services.AddSingleton(consumer);
if (WorkerConsumers.Notifications is { } notifications)
{
    // The notifications role sends from its outbox beside consuming (docs/notifications.md).
    builder.Services.AddSingleton(notifications);
    builder.Services.AddHostedService<NotificationDispatchService>();
}
if (WorkerConsumers.Webhooks is { } webhooks)
{
    // The webhooks role sends from the shared store beside consuming (docs/webhooks.md, "Workers").
    builder.Services.AddSingleton(webhooks);
    builder.Services.AddHostedService<WebhookDispatchService>();
}
builder.Services.AddSingleton<KafkaEventSource>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<KafkaEventSource>());
builder.Services.AddOpenTelemetry().WithMetrics(m => m.AddMeter(EventsTelemetry.MeterName, WorkerMetrics.MeterName).AddPrometheusExporter(o => { o.ScrapeResponseCacheDurationMilliseconds = 0; o.ScopeInfoEnabled = false; }));
var app = builder.Build();
var source = app.Services.GetRequiredService<KafkaEventSource>();
WorkerMetrics.Register(source, consumer.Name);
app.MapGet("/health/live", () => Results.Json(new Dictionary<string, string> { ["status"] = "live" }));
app.MapGet("/health/ready", () => source.Joined
    ? Results.Json(new Dictionary<string, string> { ["status"] = "ready" })
    : Results.Json(new Dictionary<string, string> { ["status"] = "joining" }, statusCode: 503));
app.MapPrometheusScrapingEndpoint("/metrics");
var startLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("RamPay.Worker");
app.Lifetime.ApplicationStarted.Register(() =>
{
    foreach (var address in app.Urls) startLog.LogInformation("rampay-worker: http listening on {Address}", address);
    startLog.LogInformation("rampay-worker: ready: consumer {Consumer}, group {Group}, topic {Topic} at {BootstrapServers}",
        consumer.Name, options.Group, options.Topic, options.BootstrapServers);
});
// The same singletons the host starts; read before RunAsync, which disposes the container.
var backgroundServices = app.Services.GetServices<IHostedService>().OfType<BackgroundService>().ToList();
await app.RunAsync();
// A background service that failed stopped the host (StopHost): exit non-zero so that a supervisor (a container's
// restart policy, systemd) sees a failure rather than a clean stop.
return backgroundServices.Any(s => s.ExecuteTask is { IsFaulted: true }) ? 1 : 0;

namespace RamPay.Worker
{
    /// <summary>The consumers a worker can run, by name. A consumer project adds its line here.</summary>
    public static class WorkerConsumers
    {
        public static IReadOnlyList<string> Names => ["archive", "rewards", "analytics", "notifications", "webhooks"];

        /// <summary>The notifications role's parts when that role was created (its dispatcher runs as a hosted service).</summary>
        public static NotificationsRole? Notifications { get; private set; }
        /// <summary>The webhooks role's parts when that role was created (its dispatcher runs as a hosted service).</summary>
        public static WebhooksRole? Webhooks { get; private set; }

        public static IEventConsumer Create(string name, Func<string, string?> flag) => name switch
        {
            "archive" => new ArchiveConsumer(flag("--out") ?? throw new ArgumentException("the archive consumer needs --out DIR")),
            // Issue 13 (docs/rewards.md, docs/analytics.md): src/RamPay.Worker/RewardsRole.cs, AnalyticsRole.cs.
            "rewards" => RewardsRole.Create(flag, Environment.GetEnvironmentVariable),
            "analytics" => AnalyticsRole.Create(flag),
            // Issue 12 (docs/notifications.md): email and SMS; recipients from the server with a service token.
            "notifications" => (Notifications = new NotificationsRole(flag, Environment.GetEnvironmentVariable)).Consumer,
            // Issue 12 (docs/webhooks.md): signed webhooks from the PostgreSQL store shared with the server.
            "webhooks" => (Webhooks = new WebhooksRole(flag, Environment.GetEnvironmentVariable)).Consumer,
            _ => throw new ArgumentException($"no consumer named '{name}' (known: {string.Join(", ", Names)})"),
        };
    }

    /// <summary><c>rampay-worker --health-check URL</c>: the container's health check, with only what the image holds.</summary>
    public static class HealthCheck
    {
        public static async Task<int> RunAsync(string url)
        {
            try
            {
                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
                using var response = await http.GetAsync(new Uri(url));
                if (response.IsSuccessStatusCode) return 0;
                Console.Error.WriteLine($"rampay-worker: health check: {url} answered {(int)response.StatusCode}");
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or UriFormatException)
            {
                Console.Error.WriteLine($"rampay-worker: health check: {url}: {e.Message}");
            }
            return 1;
        }
    }

    public static class WorkerMetrics
    {
        public const string MeterName = "RamPay.Worker";
        private static readonly System.Diagnostics.Metrics.Meter Meter = new(MeterName);

        public static void Register(KafkaEventSource source, string consumer)
        {
            var tag = new KeyValuePair<string, object?>("consumer", consumer);
            Meter.CreateObservableCounter("rampay_worker_events_total", () => new System.Diagnostics.Metrics.Measurement<long>(source.EventsHandled, tag),
                description: "Events the consumer handled and whose offsets were committed.");
            Meter.CreateObservableCounter("rampay_worker_failures_total", () => new System.Diagnostics.Metrics.Measurement<long>(source.Failures, tag),
                description: "Batches the consumer failed on (read again from the committed offset).");
            Meter.CreateObservableCounter("rampay_worker_offset_resets_total", () => new System.Diagnostics.Metrics.Measurement<long>(source.OffsetResets, tag),
                description: "Times a partition's committed offset was no longer on the broker (its retention dropped it), so the worker jumped to the earliest offset kept.");
            Meter.CreateObservableCounter("rampay_worker_skipped_events_total", () => new System.Diagnostics.Metrics.Measurement<long>(source.SkippedEvents, tag),
                description: "Events never read by this consumer because of those jumps (earliest offset kept minus committed offset): re-derive them from the journal.");
        }
    }
}
