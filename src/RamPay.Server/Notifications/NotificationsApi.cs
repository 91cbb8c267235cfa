using System.Globalization;
using System.Text.Json;
using RamPay.Notifications;
using RamPay.Server.Auth;
using RamPay.Server.Events;
using RamPay.Server.Http;
using RamPay.Webhooks;
using C = RamPay.Contracts;

namespace RamPay.Server.Notifications;

/// <summary>
/// The notifications API (docs/notifications.md): phone and channel choices on <c>/v1/users/me</c>, phone verification,
/// the unsubscribe link, the SMS gateway's inbound webhook (STOP), the audit log of every outbound message (admin),
/// and the recipient lookup a notifications worker uses (service token).
/// </summary>
public static class NotificationRoutes
{
    private const int MaxFormBytes = 16 * 1024;

    public static void Map(WebApplication app, RouteGroupBuilder v1, RouteGroupBuilder user, RouteGroupBuilder admin)
    {
        var n = app.Services.GetRequiredService<NotificationsHolder>();
        var platform = app.Services.GetRequiredService<Platform>();
        var hooks = app.Services.GetRequiredService<WebhooksHolder>();
        int maxBody = platform.Options.Http.MaxRequestBodyBytes;
        user.MapPatch("/users/me", (Delegate)((HttpContext c) => Update(c, n, platform, maxBody)))
            .WithTags("users").WithSummary("Set your phone (a code goes to it by SMS) and notification channels")
            .WithMetadata(new JsonRequestBody(typeof(C.UpdateUserRequest))).Produces<C.UserProfileView>().Produces<C.ErrorEnvelope>(400);
        user.MapPost("/users/me/phone/verify", (Delegate)((HttpContext c) => Verify(c, n, platform, maxBody)))
            .WithTags("users").WithSummary("Verify your phone with the 6-digit code sent to it")
            .WithMetadata(new JsonRequestBody(typeof(C.VerifyPhoneRequest))).Produces<C.UserProfileView>().Produces<C.ErrorEnvelope>(400);
        v1.MapGet("/notifications/unsubscribe", (Delegate)((HttpContext c) => Unsubscribe(c, n, html: true)))
            .WithTags("notifications").WithSummary("The link in every email: turns email notifications off (no token needed beyond the link's)").Produces(200).Produces<C.ErrorEnvelope>(400);
        v1.MapPost("/notifications/unsubscribe", (Delegate)((HttpContext c) => Unsubscribe(c, n, html: false)))
            .WithTags("notifications").WithSummary("One-click unsubscribe (RFC 8058, List-Unsubscribe-Post)").Produces(200).Produces<C.ErrorEnvelope>(400);
        v1.MapPost("/notifications/sms/inbound", (Delegate)((HttpContext c) => Inbound(c, n)))
            .WithTags("notifications").WithSummary("The SMS gateway's inbound-message webhook (Twilio's shape, X-Twilio-Signature): STOP opts the number out, START back in")
            .Produces(200).Produces<C.ErrorEnvelope>(400).Produces<C.ErrorEnvelope>(403).Produces<C.ErrorEnvelope>(404);
        admin.MapGet("/admin/notifications", (Delegate)((HttpContext c) => Audit(c, n, hooks)))
            .WithMetadata(new ForbiddenMessage("Only an admin may read the notification audit log."))
            .WithTags("admin").WithSummary("Every outbound message (email, SMS, webhook delivery), newest first (query: user, channel, status, limit, starting_after)")
            .Produces<C.NotificationPage>().Produces<C.ErrorEnvelope>(400).Produces<C.ErrorEnvelope>(403);
        var service = v1.MapGroup("/service").RequireAuthorization(new Microsoft.AspNetCore.Authorization.AuthorizationPolicyBuilder().RequireRole(TokenService.RoleService, TokenService.RoleAdmin).Build());
        service.MapGet("/notifications/recipients/{id:long}", (HttpContext c, long id) => Recipient(c, n, platform, id))
            .WithTags("notifications").WithSummary("A user's notification addresses and choices, for a notifications worker (service token)").Produces(200).Produces<C.ErrorEnvelope>(404);
    }

    private static long NowMs => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>The fields the user view gains: <c>phone</c>, <c>phone_verified</c>, <c>notifications: {email, sms}</c>.</summary>
    public static Action<Utf8JsonWriter> UserFields(HttpContext ctx, long userId)
    {
        var p = ctx.RequestServices.GetRequiredService<NotificationsHolder>().Store.Preferences(userId);
        return w =>
        {
            if (p.Phone is null) w.WriteNull("phone"); else w.WriteString("phone", p.Phone);
            w.WriteBoolean("phone_verified", p.PhoneVerified);
            w.WriteStartObject("notifications");
            w.WriteBoolean("email", p.Email);
            w.WriteBoolean("sms", p.Sms);
            w.WriteEndObject();
        };
    }

    private static async Task WriteUser(HttpContext ctx, Platform platform, long userId)
    {
        var found = await platform.Engine.QueryAsync(l => l.GetUser(userId) is { } u ? (u, l.GetAccount(u.WalletAccountId).Currency) : default);
        if (found.u is null) throw new ApiError(404, "user_not_found", "The user of this token no longer exists.");
        await JsonOut.Write(ctx, 200, w => JsonOut.User(w, found.u, found.Currency, UserFields(ctx, userId)));
    }

    private static async Task Update(HttpContext ctx, NotificationsHolder n, Platform platform, int maxBody)
    {
        var caller = ctx.VerifiedCaller().Caller;
        bool phoneGiven = false;
        string? phone = null;
        bool? email = null, sms = null;
        using (var body = await JsonBody.ReadAsync(ctx, maxBody))
        {
            var root = body.Root;
            if (root.ValueKind != JsonValueKind.Object) throw ApiError.InvalidRequest("The body must be a JSON object.");
            if (root.TryGetProperty("phone", out var ph))
            {
                phoneGiven = true;
                if (ph.ValueKind == JsonValueKind.String) phone = ph.GetString();
                else if (ph.ValueKind != JsonValueKind.Null) throw ApiError.BadRequest("invalid_phone", "'phone' must be an E.164 number such as \"+15551234567\", or null to remove it.");
                if (phone is not null && !PhoneNumber.IsE164(phone))
                    throw ApiError.BadRequest("invalid_phone", "'phone' must be an E.164 number such as \"+15551234567\" (a +, the country code, 8 to 15 digits), or null to remove it.");
            }
            if (root.TryGetProperty("notifications", out var ch) && ch.ValueKind != JsonValueKind.Null)
            {
                if (ch.ValueKind != JsonValueKind.Object) throw ApiError.InvalidRequest("'notifications' must be an object {email?: bool, sms?: bool}.");
                var f = new JsonBody.Fields(ch, "notifications.");
                email = f.OptionalBool("email");
                sms = f.OptionalBool("sms");
            }
        }
        // Everything is checked before anything changes (bad input changes nothing).
        var current = n.Store.Preferences(caller.UserId);
        bool phoneChanges = phoneGiven && phone != current.Phone;
        if (phoneChanges && phone is not null && n.Dispatcher is null || phoneChanges && phone is not null && !n.Options.Sms.Enabled)
            throw ApiError.BadRequest("sms_unavailable", "'phone': SMS is not configured on this server (RamPay:Notifications:Sms:Url), so the phone cannot be verified.");
        bool verifiedAfter = !phoneChanges && current.PhoneVerified && current.Phone is not null;
        if (sms == true && !verifiedAfter)
            throw ApiError.BadRequest("phone_not_verified", "'notifications.sms' can be turned on only with a verified phone: set 'phone', then POST the code to /v1/users/me/phone/verify.");
        if (phoneChanges)
        {
            long expires = NowMs + n.Settings.CodeValidityMinutes * 60_000L;
            string? code = n.Store.SetPhone(caller.UserId, phone, expires);
            if (code is not null)
            {
                string text = NotificationTemplates.Sms(NotificationTemplates.PhoneVerification, new Dictionary<string, string>
                {
                    ["code"] = code, ["minutes"] = n.Settings.CodeValidityMinutes.ToString(CultureInfo.InvariantCulture),
                });
                n.Outbox.Enqueue([new(caller.UserId, "sms", phone!, NotificationTemplates.PhoneVerification, "verify:" + Guid.NewGuid().ToString("N"), "", text, null)], "verify", null, NowMs);
                n.Dispatcher?.Wake();
            }
        }
        if (email is not null || sms is not null) n.Store.SetChannels(caller.UserId, email, sms);
        await WriteUser(ctx, platform, caller.UserId);
    }

    private static async Task Verify(HttpContext ctx, NotificationsHolder n, Platform platform, int maxBody)
    {
        var caller = ctx.VerifiedCaller().Caller;
        string code;
        using (var body = await JsonBody.ReadAsync(ctx, maxBody))
        {
            if (body.Root.ValueKind != JsonValueKind.Object) throw ApiError.InvalidRequest("The body must be a JSON object.");
            code = body.Body.OptionalString("code") ?? throw ApiError.BadRequest("invalid_code", "'code' is required: the 6 digits sent to your phone.");
        }
        if (code.Length != 6 || !code.All(char.IsAsciiDigit)) throw ApiError.BadRequest("invalid_code", "'code' must be the 6 digits sent to your phone.");
        switch (n.Store.Verify(caller.UserId, code, NowMs, n.Settings.CodeMaxAttempts))
        {
            case NotificationStore.VerifyResult.Verified:
                await WriteUser(ctx, platform, caller.UserId);
                return;
            case NotificationStore.VerifyResult.Wrong:
                throw ApiError.BadRequest("invalid_code", "'code' is not the code sent to your phone.");
            case NotificationStore.VerifyResult.Expired:
                throw ApiError.BadRequest("invalid_code", "'code': that code has expired or was tried too often; set the phone again for a new one.");
            default:
                throw ApiError.BadRequest("invalid_code", "'code': no verification is pending; set 'phone' with PATCH /v1/users/me first.");
        }
    }

    private static async Task Unsubscribe(HttpContext ctx, NotificationsHolder n, bool html)
    {
        string? token = ctx.Request.Query["token"];
        long? user = UnsubscribeToken.Verify(token, n.UnsubscribeSecret);
        if (user is not { } u) throw ApiError.BadRequest("invalid_token", "'token' is not a valid unsubscribe token (use the link in the email as it is).");
        n.Store.SetChannels(u, email: false, sms: null);
        if (html)
        {
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "text/html; charset=utf-8";
            await ctx.Response.WriteAsync("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribed</title></head><body><p>You will no longer get RamPay notifications by email. You can turn them back on in your settings.</p></body></html>");
            return;
        }
        await JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("user_id", u);
            w.WriteBoolean("unsubscribed", true);
            w.WriteEndObject();
        });
    }

    private static async Task Inbound(HttpContext ctx, NotificationsHolder n)
    {
        var sms = n.Settings.Sms;
        if (sms.Url.Length == 0) throw new ApiError(404, "sms_disabled", "SMS is not configured on this server.");
        if (!ctx.Request.HasFormContentType) throw ApiError.InvalidRequest("The body must be application/x-www-form-urlencoded (the gateway's inbound message).");
        if (ctx.Request.ContentLength is null or > MaxFormBytes) throw new ApiError(413, "request_too_large", $"The form is limited to {MaxFormBytes} bytes.");
        IFormCollection form;
        try
        {
            form = await ctx.Request.ReadFormAsync(new Microsoft.AspNetCore.Http.Features.FormOptions { ValueCountLimit = 100, ValueLengthLimit = MaxFormBytes }, ctx.RequestAborted);
        }
        catch (InvalidDataException)
        {
            throw ApiError.InvalidRequest("The form could not be read.");
        }
        var fields = form.Select(f => new KeyValuePair<string, string>(f.Key, f.Value.ToString())).ToList();
        string url = sms.InboundUrl.Length > 0 ? sms.InboundUrl : $"{ctx.Request.Scheme}://{ctx.Request.Host}{ctx.Request.PathBase}{ctx.Request.Path}{ctx.Request.QueryString}";
        if (!TwilioSignature.Verify(sms.AuthToken, url, fields, ctx.Request.Headers["X-Twilio-Signature"].FirstOrDefault()))
            throw ApiError.Forbidden("X-Twilio-Signature does not match this request (RamPay:Notifications:Sms:AuthToken, InboundUrl).");
        string from = form["From"].ToString(), text = form["Body"].ToString();
        if (!PhoneNumber.IsE164(from)) throw ApiError.BadRequest("invalid_phone", "'From' must be an E.164 number.");
        if (PhoneNumber.IsStop(text))
        {
            n.Store.OptOut(from, NowMs);
            n.Outbox.DeadLetterSms(from, NotificationStore.StopReason, NowMs); // the shared outbox's queued SMS too
        }
        else if (PhoneNumber.IsStart(text)) n.Store.OptIn(from);
        // An empty TwiML answer: the gateway sends its own STOP/START confirmation (Twilio does), we add nothing.
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "text/xml; charset=utf-8";
        await ctx.Response.WriteAsync("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>");
    }

    private static async Task Recipient(HttpContext ctx, NotificationsHolder n, Platform platform, long id)
    {
        var user = await platform.Engine.QueryAsync(l => l.GetUser(id));
        if (user is null) throw new ApiError(404, "user_not_found", "No such user.");
        var r = n.RecipientOf(id, user.Name, user.Email);
        await JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("user_id", r.UserId);
            w.WriteString("name", r.Name);
            if (r.Email is null) w.WriteNull("email"); else w.WriteString("email", r.Email);
            if (r.Phone is null) w.WriteNull("phone"); else w.WriteString("phone", r.Phone);
            w.WriteString("unsubscribe_url", r.UnsubscribeUrl);
            w.WriteEndObject();
        });
    }

    // ---- the audit log ----

    private const string NotificationPrefix = "ntf_", WebhookPrefix = "whd_";

    private readonly record struct Row(string Id, int Source, long RowId, long UserId, string Channel, string Destination, string Template, string EventId,
        string Status, int Attempts, long CreatedMs, string? LastError);

    private static async Task Audit(HttpContext ctx, NotificationsHolder n, WebhooksHolder hooks)
    {
        var q = ctx.Request.Query;
        long? user = null;
        if (q["user"].ToString() is { Length: > 0 } us)
            user = long.TryParse(us, NumberStyles.None, CultureInfo.InvariantCulture, out long u) && u > 0 ? u : throw ApiError.BadRequest("invalid_request", "'user' must be a positive user id.");
        string? channel = q["channel"].ToString() is { Length: > 0 } cs ? cs : null;
        if (channel is not (null or "email" or "sms" or "webhook")) throw ApiError.BadRequest("invalid_request", "'channel' is email, sms or webhook.");
        string? status = q["status"].ToString() is { Length: > 0 } ss ? ss : null;
        if (status is not (null or "sent" or "failed" or "pending" or "dead")) throw ApiError.BadRequest("invalid_request", "'status' is sent, failed, pending or dead.");
        int limit = 10;
        if (q["limit"].ToString() is { Length: > 0 } ls && (!int.TryParse(ls, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > 100))
            throw ApiError.BadRequest("invalid_limit", "'limit' must be 1..100.");
        long beforeMs = long.MaxValue;
        int cursorSource = int.MaxValue;
        long cursorId = long.MaxValue;
        if (q["starting_after"].ToString() is { Length: > 0 } after)
        {
            (cursorSource, cursorId, beforeMs) = Cursor(after, n, hooks) ?? throw ApiError.BadRequest("invalid_cursor", "'starting_after' is not the id of a message in the audit log.");
        }
        var rows = new List<Row>(2 * limit + 2);
        // Order: created_ms descending, then notifications (source 1) before webhook deliveries (source 0), then id descending.
        if (channel is null or "email" or "sms")
        {
            long bi = cursorSource == 1 ? cursorId : cursorSource == 0 ? 0 : long.MaxValue;
            foreach (var m in n.Outbox.Page(user, channel, status, beforeMs, bi, limit + 1))
                rows.Add(new(NotificationPrefix + m.Id, 1, m.Id, m.UserId, m.Channel, m.Destination, m.Template, m.EventId, m.AuditStatus, m.Attempts, m.CreatedMs, m.LastError));
        }
        if (channel is null or "webhook" && hooks.Store is { } ws)
        {
            long bi = cursorSource == 0 ? cursorId : long.MaxValue;
            foreach (var d in ws.AuditPage(user, status, beforeMs, bi, limit + 1))
                rows.Add(new(WebhookPrefix + d.Id, 0, d.Id, d.Owner, "webhook", d.Url, d.EventType, d.EventId, d.Status, d.Attempts, d.CreatedMs, d.LastError));
        }
        rows.Sort((a, b) => b.CreatedMs != a.CreatedMs ? b.CreatedMs.CompareTo(a.CreatedMs) : b.Source != a.Source ? b.Source.CompareTo(a.Source) : b.RowId.CompareTo(a.RowId));
        bool more = rows.Count > limit;
        if (more) rows.RemoveRange(limit, rows.Count - limit);
        await JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("data");
            foreach (var r in rows)
            {
                w.WriteStartObject();
                w.WriteString("id", r.Id);
                w.WriteNumber("user_id", r.UserId);
                w.WriteString("channel", r.Channel);
                w.WriteString("destination", r.Destination);
                w.WriteString("template", r.Template);
                w.WriteString("event_id", r.EventId);
                w.WriteString("status", r.Status);
                w.WriteNumber("attempts", r.Attempts);
                w.WriteString("created_at", JsonOut.Time(r.CreatedMs));
                if (r.LastError is null) w.WriteNull("last_error"); else w.WriteString("last_error", r.LastError);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteBoolean("has_more", more);
            w.WriteEndObject();
        });
    }

    private static (int Source, long Id, long CreatedMs)? Cursor(string after, NotificationsHolder n, WebhooksHolder hooks)
    {
        if (after.Length > 40) return null;
        bool ntf = after.StartsWith(NotificationPrefix, StringComparison.Ordinal), whd = after.StartsWith(WebhookPrefix, StringComparison.Ordinal);
        if (!(ntf || whd) || !long.TryParse(after.AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out long id) || id <= 0) return null;
        if (ntf) return n.Outbox.Message(id) is { } m ? (1, id, m.CreatedMs) : null;
        return hooks.Store?.DeliveryCreatedMs(id) is { } created ? (0, id, created) : null;
    }
}
