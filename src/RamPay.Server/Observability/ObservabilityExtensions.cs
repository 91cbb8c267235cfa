using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using RamPay.Engine;
using RamPay.Server.Hosting;

namespace RamPay.Server.Observability;

/// <summary>
/// Metrics and traces through OpenTelemetry. Metrics: every instrument of the RamPay meters (the server's observable
/// state, the engine's journal histograms, TCP counters, Redis fall-backs), ASP.NET Core's own HTTP and Kestrel meters
/// and the runtime's, rendered by the Prometheus exporter on <c>GET /metrics</c>. Traces: only when an OTLP endpoint is
/// configured (<c>RamPay:Otlp:Endpoint</c>, or the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> /
/// <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c>); without one no trace listener exists and spans cost a null check.
/// docs/operations.md lists every series and span.
/// </summary>
public static class ObservabilityExtensions
{
    public const string MetricsPath = "/metrics";
    public const string OtlpSection = "RamPay:Otlp";

    /// <summary>The meters exported on /metrics.</summary>
    public static readonly string[] Meters =
    [
        Metrics.MeterName,                 // RamPay: the server's observable state
        EngineCounters.MeterName,          // RamPay.Engine: journal batch size and fsync time
        RamPayTelemetry.TcpMeterName,      // RamPay.Tcp: frames and commands
        RamPay.Events.EventsTelemetry.MeterName, // RamPay.Events: consumers' lag, webhooks, notifications
        "RamPay.Redis",                    // rate-limit decisions taken in-process while Redis was down
        "Microsoft.AspNetCore.Hosting",    // http_server_request_duration_seconds by route and status
        "Microsoft.AspNetCore.Server.Kestrel",
        "Microsoft.AspNetCore.RateLimiting",
    ];

    /// <summary>Registers OpenTelemetry metrics (Prometheus) and, when an OTLP endpoint is configured, traces.</summary>
    public static IServiceCollection AddRamPayObservability(this IServiceCollection services, IConfiguration configuration)
    {
        var otel = services.AddOpenTelemetry().ConfigureResource(r => r.AddService("rampay-server"));
        otel.WithMetrics(m => m
            .AddMeter(Meters)
            .AddRuntimeInstrumentation()
            .AddPrometheusExporter(o =>
            {
                // No response cache: a scrape right after traffic sees it (a scrape costs well under a millisecond).
                o.ScrapeResponseCacheDurationMilliseconds = 0;
                // No otel_scope_name label on every series: the names already say where they come from, and today's
                // series keep their exact label sets (rampay_sink_lag_records{sink="postgres"}).
                o.ScopeInfoEnabled = false;
            }));

        var otlp = OtlpEndpoint(configuration);
        if (otlp is not null)
        {
            otel.WithTracing(t =>
            {
                t.AddSource(RamPayTelemetry.ActivitySourceName)
                    .AddAspNetCoreInstrumentation(o => o.Filter = ctx => !ctx.Request.Path.StartsWithSegments(MetricsPath));
                if (otlp.Value.Endpoint is { } endpoint)
                {
                    t.AddOtlpExporter(o =>
                    {
                        o.Protocol = otlp.Value.Protocol;
                        // Over HTTP the exporter posts to the endpoint as given: the traces path is ours to add.
                        o.Endpoint = o.Protocol == OtlpExportProtocol.HttpProtobuf && !endpoint.AbsolutePath.EndsWith("/v1/traces", StringComparison.Ordinal)
                            ? new Uri(endpoint, endpoint.AbsolutePath.TrimEnd('/') + "/v1/traces")
                            : endpoint;
                    });
                }
                else
                {
                    t.AddOtlpExporter(); // the OTEL_EXPORTER_OTLP_* variables configure it
                }
            });
        }
        return services;
    }

    /// <summary>GET /metrics in the Prometheus text format.</summary>
    public static IEndpointConventionBuilder MapRamPayMetrics(this IEndpointRouteBuilder endpoints) =>
        endpoints.MapPrometheusScrapingEndpoint(MetricsPath).WithTags("health");

    /// <summary>
    /// Null when traces are off. <c>RamPay:Otlp:Endpoint</c> (with <c>RamPay:Otlp:Protocol</c>, <c>grpc</c> by default or
    /// <c>http/protobuf</c>) wins; otherwise the standard variables turn the exporter on and configure it themselves.
    /// </summary>
    internal static (Uri? Endpoint, OtlpExportProtocol Protocol)? OtlpEndpoint(IConfiguration configuration)
    {
        var section = configuration.GetSection("RamPay:Otlp");
        string? endpoint = section["Endpoint"];
        if (!string.IsNullOrWhiteSpace(endpoint))
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
                throw new OptionsException($"{OtlpSection}:Endpoint: '{endpoint}' is not an http:// or https:// URL");
            var protocol = (section["Protocol"] ?? "grpc") switch
            {
                "grpc" => OtlpExportProtocol.Grpc,
                "http/protobuf" => OtlpExportProtocol.HttpProtobuf,
                var other => throw new OptionsException($"{OtlpSection}:Protocol: '{other}' is not grpc or http/protobuf"),
            };
            return (uri, protocol);
        }
        if (!string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]) || !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]))
            return (null, OtlpExportProtocol.Grpc);
        return null;
    }
}
