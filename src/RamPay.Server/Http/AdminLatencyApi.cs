using C = RamPay.Contracts;
using System.Globalization;
using RamPay.Server.Auth;
using RamPay.Server.Hosting;

namespace RamPay.Server.Http;

/// <summary>
/// <c>GET /v1/admin/latency?minutes=60</c> (issue 15's latency chart, docs/api.md): acknowledgement latency over time,
/// submit to durable reply, one point per minute with any acknowledgement (count, p50, p90, p99, p99.9 and max in
/// microseconds), oldest first, the current minute last. The numbers are this process's own measurements
/// (<see cref="Observability.AckLatency"/>, kept in memory for a day); Prometheus keeps longer history of the
/// <c>/metrics</c> histograms.
/// </summary>
public static class AdminLatencyRoutes
{
    public const int DefaultMinutes = 60;

    public static void Map(WebApplication app, RouteGroupBuilder admin)
    {
        var engine = app.Services.GetRequiredService<EngineHost>();
        admin.MapGet("/admin/latency", (Func<HttpContext, Task>)(c => Series(c, engine)))
            .WithMetadata(new ForbiddenMessage("Only an admin may read the server's latency."))
            .WithTags("admin").WithSummary($"Acknowledgement latency per minute, submit to durable reply, in microseconds (admin; query: minutes 1..{Observability.AckLatency.MaxMinutes}, default {DefaultMinutes})")
            .Produces<C.LatencySeries>().Produces<C.ErrorEnvelope>(400).Produces<C.ErrorEnvelope>(403);
    }

    private static Task Series(HttpContext ctx, EngineHost engine)
    {
        int minutes = DefaultMinutes;
        if (ctx.Request.Query["minutes"] is { Count: > 0 } m
            && (!int.TryParse(m[0], NumberStyles.None, CultureInfo.InvariantCulture, out minutes) || minutes is < 1 or > Observability.AckLatency.MaxMinutes))
            throw ApiError.BadRequest("invalid_request", $"minutes must be an integer 1..{Observability.AckLatency.MaxMinutes}.");
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        // The window covers the current minute and the (minutes - 1) before it.
        long currentMinute = now - now % 60_000;
        long from = currentMinute - (minutes - 1) * 60_000L;
        var points = engine.AckLatency.Since(from);
        return JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("from", JsonOut.Time(from));
            w.WriteString("to", JsonOut.Time(now));
            w.WriteNumber("interval_seconds", Observability.AckLatency.IntervalSeconds);
            w.WriteStartArray("data");
            foreach (var p in points)
            {
                w.WriteStartObject();
                w.WriteString("start", JsonOut.Time(p.StartMs));
                w.WriteNumber("count", p.Count);
                w.WriteNumber("p50_us", p.P50Us);
                w.WriteNumber("p90_us", p.P90Us);
                w.WriteNumber("p99_us", p.P99Us);
                w.WriteNumber("p999_us", p.P999Us);
                w.WriteNumber("max_us", p.MaxUs);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }
}
