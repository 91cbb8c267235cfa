using C = RamPay.Contracts;
using System.Globalization;
using System.Text.Json;
using RamPay.Events;
using RamPay.Server.Auth;
using RamPay.Server.Http;

namespace RamPay.Server.Events;

/// <summary>A page of events (the OpenAPI document's shape; the handler writes each event's JSON as stored).</summary>
public sealed record EventListResponse(IReadOnlyList<JsonElement> Data, bool HasMore);

/// <summary>
/// <c>GET /v1/events</c> and <c>GET /v1/events/{id}</c> (docs/events.md, "Events API"): the caller's events (an
/// admin's: all), newest first, cursor-paged like Stripe's, each cut to what the caller may see
/// (<see cref="EventAudience"/>), read from the event log.
/// </summary>
public static class EventRoutes
{
    public const int DefaultLimit = 10;
    public const int MaxLimit = 100;

    public static void Map(WebApplication app, RouteGroupBuilder user)
    {
        var holder = app.Services.GetRequiredService<EventLogHolder>();
        user.MapGet("/events", (Delegate)((HttpContext c) => List(c, holder)))
            .WithTags("events").WithSummary("Your events, newest first (query: limit 1..100, starting_after, ending_before, type: a name or a prefix like Payment*)")
            .Produces<EventListResponse>().Produces<C.ErrorEnvelope>(400);
        user.MapGet("/events/{id}", (HttpContext c, string id) => GetOne(c, holder, id))
            .WithTags("events").WithSummary("One event by its event_id (\"sequence-index-ordinal\")")
            .Produces<JsonElement>().Produces<C.ErrorEnvelope>(404);
    }

    private static EventLog LogOf(EventLogHolder holder) =>
        holder.Log ?? throw new ApiError(404, "events_disabled", "This server keeps no event log (RamPay:Events:Enabled is false).");

    /// <summary>The caller's user id, or null for an admin (who sees every event whole).</summary>
    private static long? Viewer(HttpContext ctx)
    {
        var caller = ctx.VerifiedCaller().Caller;
        return caller.IsAdmin ? null : caller.UserId;
    }

    private static Task List(HttpContext ctx, EventLogHolder holder)
    {
        var log = LogOf(holder);
        var q = ctx.Request.Query;
        foreach (var key in q.Keys)
            if (key is not ("limit" or "starting_after" or "ending_before" or "type"))
                throw ApiError.BadRequest("invalid_query", $"Unknown query parameter '{key}': use limit, starting_after, ending_before, type.");
        int limit = DefaultLimit;
        if (Single(q, "limit") is { } l && (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxLimit))
            throw ApiError.BadRequest("invalid_limit", $"limit must be an integer 1..{MaxLimit}.");
        EventPosition? after = Cursor(q, "starting_after"), before = Cursor(q, "ending_before");
        if (after is not null && before is not null)
            throw ApiError.BadRequest("invalid_query", "Send starting_after or ending_before, not both.");
        string? type = Single(q, "type");
        if (type is not null && !EventLog.IsTypeFilter(type))
            throw ApiError.BadRequest("invalid_type", "type is an event type (PaymentCreated) or a prefix ending with * (Payment*).");
        var page = log.List(Viewer(ctx), limit, after, before, type);
        return JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("data");
            foreach (var e in page.Data) w.WriteRawValue(e.VisibleJson.Span, skipInputValidation: true);
            w.WriteEndArray();
            w.WriteBoolean("has_more", page.HasMore);
            w.WriteEndObject();
        });
    }

    private static Task GetOne(HttpContext ctx, EventLogHolder holder, string id)
    {
        var log = LogOf(holder);
        if (!EventPosition.TryParse(id, out var position))
            throw ApiError.BadRequest("invalid_event_id", "An event id is \"sequence-index-ordinal\", e.g. 1234-0-1.");
        var e = log.Get(position, Viewer(ctx))
            ?? throw new ApiError(404, "event_not_found", "No such event among yours (events are kept for the configured retention).");
        return JsonOut.Write(ctx, 200, w => w.WriteRawValue(e.VisibleJson.Span, skipInputValidation: true));
    }

    private static string? Single(IQueryCollection q, string name)
    {
        if (!q.TryGetValue(name, out var values)) return null;
        if (values.Count != 1) throw ApiError.BadRequest("invalid_query", $"Send {name} once.");
        return values[0];
    }

    private static EventPosition? Cursor(IQueryCollection q, string name)
    {
        if (Single(q, name) is not { } text) return null;
        if (!EventPosition.TryParse(text, out var p)) throw ApiError.BadRequest("invalid_cursor", $"{name} is an event id, \"sequence-index-ordinal\".");
        return p;
    }
}
