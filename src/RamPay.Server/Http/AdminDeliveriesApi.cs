using C = RamPay.Contracts;
using System.Globalization;
using RamPay.Server.Auth;
using RamPay.Server.Events;

namespace RamPay.Server.Http;

/// <summary>An operator's view of one webhook delivery (for the OpenAPI document; the handler writes the JSON itself).</summary>
#pragma warning disable CA1812
public sealed record AdminDeliveryResponse(long DeliveryId, string EndpointId, long OwnerUserId, string Url, string EventId, string EventType, string Status,
    int Attempts, string CreatedAt, string? LastAttemptAt, int? LastStatusCode, string? LastError);
public sealed record AdminDeliveryPageResponse(AdminDeliveryResponse[] Data, bool HasMore, long? NextStartingAfter);
#pragma warning restore CA1812

/// <summary>
/// <c>GET /v1/admin/webhook_deliveries?status=dead&amp;limit=&amp;starting_after=</c> (issue 15): webhook deliveries of every
/// endpoint and every user, newest first, for the operators' dead-letter page. The per-endpoint list
/// (<c>/v1/webhook_endpoints/{id}/deliveries</c>) shows one endpoint's attempts to its owner; this one shows deliveries
/// (one row each, with the last attempt) across all owners, so an operator sees what was dead-lettered where, and
/// redelivers with <c>POST /v1/events/{event_id}/redeliver {endpoint_id}</c> (open to admins for any endpoint).
/// </summary>
public static class AdminDeliveriesRoutes
{
    public const int DefaultLimit = 50;
    public const int MaxLimit = 500;

    public static void Map(WebApplication app, RouteGroupBuilder admin)
    {
        var hooks = app.Services.GetRequiredService<WebhooksHolder>();
        admin.MapGet("/admin/webhook_deliveries", (Func<HttpContext, Task>)(c => List(c, hooks)))
            .WithMetadata(new ForbiddenMessage("Only an admin may list every user's webhook deliveries."))
            .WithTags("webhooks").WithSummary("Webhook deliveries of every endpoint, newest first, each with its last attempt (admin; query: status=dead|pending|succeeded, limit, starting_after)")
            .Produces<AdminDeliveryPageResponse>().Produces<C.ErrorEnvelope>(400).Produces<C.ErrorEnvelope>(403).Produces<C.ErrorEnvelope>(404);
    }

    private static Task List(HttpContext ctx, WebhooksHolder hooks)
    {
        // The query first: bad input is a 400 whether or not webhooks are on (BadInputSweepTests).
        string? status = ctx.Request.Query["status"];
        if (status is { Length: 0 }) status = null;
        if (status is not (null or "dead" or "pending" or "succeeded")) throw ApiError.BadRequest("invalid_status", "status is dead, pending or succeeded.");
        int limit = DefaultLimit;
        if (ctx.Request.Query["limit"] is { Count: > 0 } l && (!int.TryParse(l[0], NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxLimit))
            throw ApiError.BadRequest("invalid_limit", $"limit must be an integer 1..{MaxLimit}.");
        long after = 0;
        if (ctx.Request.Query["starting_after"] is { Count: > 0 } a && (!long.TryParse(a[0], NumberStyles.None, CultureInfo.InvariantCulture, out after) || after < 1))
            throw ApiError.BadRequest("invalid_request", "starting_after is a delivery id (a positive integer): the next_starting_after of the previous page.");
        var store = hooks.Store ?? throw new ApiError(404, "webhooks_disabled", "Webhooks are off on this server (RamPay:Webhooks:Enabled, RamPay:Events:Enabled).");
        // One more than asked tells whether there is a next page.
        var rows = store.AllDeliveries(status, after, limit + 1);
        bool more = rows.Count > limit;
        if (more) rows.RemoveAt(rows.Count - 1);
        return JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("data");
            foreach (var d in rows)
            {
                w.WriteStartObject();
                w.WriteNumber("delivery_id", d.Id);
                w.WriteString("endpoint_id", d.EndpointId);
                w.WriteNumber("owner_user_id", d.Owner);
                w.WriteString("url", d.Url);
                w.WriteString("event_id", d.EventId);
                w.WriteString("event_type", d.EventType);
                w.WriteString("status", d.Status);
                w.WriteNumber("attempts", d.Attempts);
                w.WriteString("created_at", JsonOut.Time(d.CreatedMs));
                if (d.LastAttemptMs > 0) w.WriteString("last_attempt_at", JsonOut.Time(d.LastAttemptMs)); else w.WriteNull("last_attempt_at");
                if (d.LastStatusCode > 0) w.WriteNumber("last_status_code", d.LastStatusCode); else w.WriteNull("last_status_code");
                if (d.LastError is { } e) w.WriteString("last_error", e); else w.WriteNull("last_error");
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteBoolean("has_more", more);
            if (more) w.WriteNumber("next_starting_after", rows[^1].Id); else w.WriteNull("next_starting_after");
            w.WriteEndObject();
        });
    }
}
