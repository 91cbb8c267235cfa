using C = RamPay.Contracts;
using System.Text.Json;
using RamPay.Events;
using RamPay.Server.Auth;
using RamPay.Server.Http;
using RamPay.Webhooks;

namespace RamPay.Server.Events;

/// <summary>Request bodies of the webhook endpoints (for the OpenAPI document).</summary>
public sealed record WebhookEndpointRequest(string Url, IReadOnlyList<string> EnabledEvents, string? Description);
public sealed record WebhookEndpointUpdate(string? Url, IReadOnlyList<string>? EnabledEvents, string? Description, string? Status);
public sealed record RedeliverRequest(string? EndpointId);
public sealed record WebhookEndpointView(string Id, string Url, IReadOnlyList<string> EnabledEvents, string Status, string? Description, string CreatedAt, string? Secret);

/// <summary>
/// Webhook endpoints (docs/webhooks.md): CRUD, secret rotation, deliveries, redelivery, and the per-user secret that
/// signs deliveries to payments' own <c>webhook_url</c>. A user sees and changes only their own endpoints (another's
/// is a 404, as if it did not exist); an admin's endpoints receive every event.
/// </summary>
public static class WebhookRoutes
{
    private const int MaxEventFilters = 50;
    private const int MaxDescription = 500;

    public static void Map(WebApplication app, RouteGroupBuilder user)
    {
        var hooks = app.Services.GetRequiredService<WebhooksHolder>();
        var events = app.Services.GetRequiredService<EventLogHolder>();
        int maxBody = app.Services.GetRequiredService<ServerOptions>().Http.MaxRequestBodyBytes;
        user.MapPost("/webhook_endpoints", (Delegate)((HttpContext c) => Create(c, hooks, maxBody)))
            .WithTags("webhooks").WithSummary("Register a webhook endpoint; the response alone shows its signing secret")
            .WithMetadata(new JsonRequestBody(typeof(WebhookEndpointRequest))).Produces<WebhookEndpointView>(201).Produces<C.ErrorEnvelope>(400);
        user.MapGet("/webhook_endpoints", (Delegate)((HttpContext c) => List(c, hooks)))
            .WithTags("webhooks").WithSummary("Your webhook endpoints").Produces<WebhookEndpointView[]>();
        user.MapGet("/webhook_endpoints/{id}", (HttpContext c, string id) => Get(c, hooks, id))
            .WithTags("webhooks").WithSummary("One of your webhook endpoints").Produces<WebhookEndpointView>().Produces<C.ErrorEnvelope>(404);
        user.MapPost("/webhook_endpoints/{id}", (HttpContext c, string id) => Update(c, hooks, id, maxBody))
            .WithTags("webhooks").WithSummary("Change an endpoint's url, enabled_events, description or status (enabled|disabled)")
            .WithMetadata(new JsonRequestBody(typeof(WebhookEndpointUpdate))).Produces<WebhookEndpointView>().Produces<C.ErrorEnvelope>(400).Produces<C.ErrorEnvelope>(404);
        user.MapDelete("/webhook_endpoints/{id}", (HttpContext c, string id) => Delete(c, hooks, id))
            .WithTags("webhooks").WithSummary("Delete an endpoint (its pending deliveries are dead-lettered)").Produces(200).Produces<C.ErrorEnvelope>(404);
        user.MapPost("/webhook_endpoints/{id}/rotate_secret", (HttpContext c, string id) => Rotate(c, hooks, id, maxBody))
            .WithTags("webhooks").WithSummary("A new signing secret; the old one keeps signing beside it for RamPay:Webhooks:SecretOverlapMinutes").Produces<WebhookEndpointView>().Produces<C.ErrorEnvelope>(404);
        user.MapGet("/webhook_endpoints/{id}/deliveries", (HttpContext c, string id) => Deliveries(c, hooks, id))
            .WithTags("webhooks").WithSummary("Every attempt (query: status=succeeded|failed|pending|dead, limit)").Produces(200).Produces<C.ErrorEnvelope>(404);
        user.MapPost("/events/{id}/redeliver", (HttpContext c, string id) => Redeliver(c, hooks, events, id, maxBody))
            .WithTags("webhooks").WithSummary("Send an event again, to one of your endpoints or to every one subscribed to it")
            .WithMetadata(new JsonRequestBody(typeof(RedeliverRequest))).Produces(202).Produces<C.ErrorEnvelope>(404);
        user.MapGet("/webhook_secret", (Delegate)((HttpContext c) => UserSecret(c, hooks, rotate: false, maxBody)))
            .WithTags("webhooks").WithSummary("The secret that signs deliveries to your payments' own webhook_url").Produces(200);
        user.MapPost("/webhook_secret/rotate", (Delegate)((HttpContext c) => UserSecret(c, hooks, rotate: true, maxBody)))
            .WithTags("webhooks").WithSummary("Rotate that secret (the old one keeps signing for the overlap)").Produces(200);
    }

    private static IWebhookStore StoreOf(WebhooksHolder h) =>
        h.Store ?? throw new ApiError(404, "webhooks_disabled", "Webhooks are off on this server (RamPay:Webhooks:Enabled, RamPay:Events:Enabled).");

    private static Caller CallerOf(HttpContext c) => c.VerifiedCaller().Caller;
    private static long NowMs => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>The caller's endpoint, or 404 (another's is not found, not forbidden: its existence is not told).</summary>
    private static WebhookEndpoint Own(IWebhookStore store, Caller caller, string id) =>
        store.Endpoint(id) is { } e && (e.Owner == caller.UserId || caller.IsAdmin)
            ? e
            : throw new ApiError(404, "webhook_endpoint_not_found", "No such webhook endpoint among yours.");

    private static async Task Create(HttpContext ctx, WebhooksHolder hooks, int maxBody)
    {
        var store = StoreOf(hooks);
        var caller = CallerOf(ctx);
        string url;
        IReadOnlyList<string> filters;
        string? description;
        using (var body = await JsonBody.ReadAsync(ctx, maxBody))
        {
            var f = body.Body;
            url = f.String("url");
            filters = Filters(f.Object, required: true)!;
            description = Description(f.OptionalString("description"));
        }
        await CheckUrl(hooks, url, ctx.RequestAborted);
        var e = store.Create(caller.UserId, caller.IsAdmin, url, filters, description, NowMs);
        await Write(ctx, 201, e, showSecret: e.Secret);
    }

    private static Task List(HttpContext ctx, WebhooksHolder hooks)
    {
        var caller = CallerOf(ctx);
        var mine = StoreOf(hooks).Endpoints().Where(e => e.Owner == caller.UserId).ToList();
        return JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("data");
            foreach (var e in mine) View(w, e, null);
            w.WriteEndArray();
            w.WriteBoolean("has_more", false);
            w.WriteEndObject();
        });
    }

    private static Task Get(HttpContext ctx, WebhooksHolder hooks, string id) => Write(ctx, 200, Own(StoreOf(hooks), CallerOf(ctx), id), null);

    private static async Task Update(HttpContext ctx, WebhooksHolder hooks, string id, int maxBody)
    {
        var store = StoreOf(hooks);
        string? url, description, status;
        IReadOnlyList<string>? filters;
        // The body first: bad input is a 400 whatever the id (BadInputSweepTests), then whose endpoint it is.
        using (var body = await JsonBody.ReadAsync(ctx, maxBody))
        {
            var f = body.Body;
            if (f.Object.ValueKind != JsonValueKind.Object) throw ApiError.InvalidRequest("The body must be a JSON object.");
            url = f.OptionalString("url");
            filters = Filters(f.Object, required: false);
            description = Description(f.OptionalString("description"));
            status = f.OptionalString("status");
        }
        if (status is not (null or "enabled" or "disabled")) throw ApiError.BadRequest("invalid_status", "status is enabled or disabled.");
        var e = Own(store, CallerOf(ctx), id);
        if (url is not null) await CheckUrl(hooks, url, ctx.RequestAborted);
        store.Update(e.Id, url, filters, description, status);
        await Write(ctx, 200, store.Endpoint(e.Id)!, null);
    }

    private static Task Delete(HttpContext ctx, WebhooksHolder hooks, string id)
    {
        var store = StoreOf(hooks);
        var e = Own(store, CallerOf(ctx), id);
        store.Delete(e.Id);
        return JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("id", e.Id);
            w.WriteBoolean("deleted", true);
            w.WriteEndObject();
        });
    }

    private static async Task Rotate(HttpContext ctx, WebhooksHolder hooks, string id, int maxBody)
    {
        var store = StoreOf(hooks);
        using (await JsonBody.ReadAsync(ctx, maxBody, emptyIsObject: true)) { }
        var e = Own(store, CallerOf(ctx), id);
        string secret = store.RotateSecret(e.Id, NowMs + (long)hooks.Options.SecretOverlap.TotalMilliseconds);
        await Write(ctx, 200, store.Endpoint(e.Id)!, secret);
    }

    private static Task Deliveries(HttpContext ctx, WebhooksHolder hooks, string id)
    {
        var store = StoreOf(hooks);
        var e = Own(store, CallerOf(ctx), id);
        string? status = ctx.Request.Query["status"];
        if (status is not (null or "succeeded" or "failed" or "pending" or "dead")) throw ApiError.BadRequest("invalid_status", "status is succeeded, failed, pending or dead.");
        int limit = 100;
        if (ctx.Request.Query["limit"] is { Count: > 0 } l && (!int.TryParse(l[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out limit) || limit is < 1 or > 1000))
            throw ApiError.BadRequest("invalid_limit", "limit must be an integer 1..1000.");
        var attempts = store.Attempts(e.Id, status, limit);
        var untried = status is null or "pending" ? store.Deliveries(e.Id, "pending", limit).Where(d => d.Attempts == 0).ToList() : [];
        return JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("data");
            foreach (var d in untried)
            {
                w.WriteStartObject();
                w.WriteNumber("delivery_id", d.Id);
                w.WriteString("event_id", d.EventId);
                w.WriteNumber("attempt", 0);
                w.WriteNull("attempted_at");
                w.WriteNull("status_code");
                w.WriteNull("latency_ms");
                w.WriteNull("error");
                w.WriteString("status", "pending");
                w.WriteEndObject();
            }
            foreach (var a in attempts)
            {
                w.WriteStartObject();
                w.WriteNumber("delivery_id", a.DeliveryId);
                w.WriteString("event_id", a.EventId);
                w.WriteNumber("attempt", a.Attempt);
                w.WriteString("attempted_at", JsonOut.Time(a.AtMs));
                if (a.StatusCode > 0) w.WriteNumber("status_code", a.StatusCode); else w.WriteNull("status_code");
                w.WriteNumber("latency_ms", a.LatencyMs);
                if (a.Error is { } err) w.WriteString("error", err); else w.WriteNull("error");
                // The attempt's own outcome: succeeded, failed (a retry followed or is due) or dead.
                w.WriteString("status", a.Status == "pending" ? "failed" : a.Status);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    private static async Task Redeliver(HttpContext ctx, WebhooksHolder hooks, EventLogHolder events, string id, int maxBody)
    {
        var store = StoreOf(hooks);
        var caller = CallerOf(ctx);
        string? endpointId;
        using (var body = await JsonBody.ReadAsync(ctx, maxBody, emptyIsObject: true)) endpointId = body.Body.OptionalString("endpoint_id");
        if (!EventPosition.TryParse(id, out var position)) throw ApiError.BadRequest("invalid_event_id", "An event id is \"sequence-index-ordinal\", e.g. 1234-0-1.");
        var log = events.Log ?? throw new ApiError(404, "events_disabled", "This server keeps no event log.");
        var stored = log.Get(position, caller.IsAdmin ? null : caller.UserId)
            ?? throw new ApiError(404, "event_not_found", "No such event among yours (events are kept for the configured retention).");
        // An owner's own endpoints; an admin's: every endpoint (issue 12: "to one endpoint or to every endpoint subscribed
        // to it"), each still given its owner's cut of the event by Plan.
        var endpoints = store.Endpoints().Where(e => e.Owner == caller.UserId || caller.IsAdmin).ToList();
        if (endpointId is not null && !endpoints.Any(e => e.Id == endpointId)) throw new ApiError(404, "webhook_endpoint_not_found", "No such webhook endpoint among yours.");
        var planned = new List<WebhookStore.NewDelivery>();
        WebhookConsumer.Plan(stored.Record, endpoints, planned, [], [], store, endpointId);
        if (endpointId is null) planned.RemoveAll(d => d.EndpointId.StartsWith(WebhookStore.PaymentUrlPrefix, StringComparison.Ordinal) && d.Owner != caller.UserId && !caller.IsAdmin);
        int queued = store.Enqueue(planned, "redeliver", null, NowMs, redeliver: true);
        hooks.Dispatcher?.Wake();
        await JsonOut.Write(ctx, 202, w =>
        {
            w.WriteStartObject();
            w.WriteString("event_id", stored.Record.EventId);
            w.WriteNumber("queued", queued);
            w.WriteEndObject();
        });
    }

    private static async Task UserSecret(HttpContext ctx, WebhooksHolder hooks, bool rotate, int maxBody)
    {
        var store = StoreOf(hooks);
        var caller = CallerOf(ctx);
        if (rotate) using (await JsonBody.ReadAsync(ctx, maxBody, emptyIsObject: true)) { }
        string secret = rotate ? store.RotateUserSecret(caller.UserId, NowMs + (long)hooks.Options.SecretOverlap.TotalMilliseconds) : store.UserSecret(caller.UserId).Secret;
        await JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("secret", secret);
            w.WriteEndObject();
        });
    }

    private static async Task CheckUrl(WebhooksHolder hooks, string url, CancellationToken ct)
    {
        if (await hooks.Guard.CheckAsync(url, ct) is { } problem) throw ApiError.BadRequest("invalid_url", $"The webhook URL is refused: {problem}.");
    }

    private static IReadOnlyList<string>? Filters(JsonElement obj, bool required)
    {
        if (obj.ValueKind != JsonValueKind.Object || !obj.TryGetProperty("enabled_events", out var v) || v.ValueKind == JsonValueKind.Null)
            return required ? throw ApiError.InvalidRequest("'enabled_events' is required: [\"*\"], or event types and prefixes like \"Payment*\".") : null;
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() is 0 or > MaxEventFilters)
            throw ApiError.BadRequest("invalid_enabled_events", $"'enabled_events' is an array of 1..{MaxEventFilters} event types or prefixes.");
        var list = new List<string>();
        foreach (var item in v.EnumerateArray())
        {
            string? s = item.ValueKind == JsonValueKind.String ? item.GetString() : null;
            if (s is null || (s != "*" && !EventLog.IsTypeFilter(s)))
                throw ApiError.BadRequest("invalid_enabled_events", "Each enabled event is \"*\", an event type (PaymentCreated) or a prefix ending with * (Payment*).");
            list.Add(s);
        }
        return list;
    }

    private static string? Description(string? d) =>
        d is { Length: > MaxDescription } ? throw ApiError.BadRequest("invalid_description", $"description holds at most {MaxDescription} characters.") : d;

    private static Task Write(HttpContext ctx, int status, WebhookEndpoint e, string? showSecret) => JsonOut.Write(ctx, status, w => View(w, e, showSecret));

    private static void View(Utf8JsonWriter w, WebhookEndpoint e, string? secret)
    {
        w.WriteStartObject();
        w.WriteString("id", e.Id);
        w.WriteString("url", e.Url);
        w.WriteStartArray("enabled_events");
        foreach (var f in e.EnabledEvents) w.WriteStringValue(f);
        w.WriteEndArray();
        w.WriteString("status", e.Status);
        if (e.Description is { } d) w.WriteString("description", d); else w.WriteNull("description");
        w.WriteString("created_at", JsonOut.Time(e.CreatedMs));
        if (secret is not null) w.WriteString("secret", secret);
        w.WriteEndObject();
    }
}
