using System.Globalization;
using System.Text;
using System.Text.Json;

namespace RamPay.Client;

// The notifications API (docs/notifications.md): phone and channels, phone verification, the audit log.
public sealed partial class RamPayHttpClient
{
    /// <summary>
    /// <c>PATCH /v1/users/me</c>: a new <paramref name="phone"/> (E.164) gets a code by SMS; <paramref name="removePhone"/>
    /// sends <c>"phone": null</c>; <paramref name="email"/>/<paramref name="sms"/> null leave a channel as it is.
    /// </summary>
    public async Task<UserProfileView> UpdateProfileAsync(string? phone = null, bool removePhone = false, bool? email = null, bool? sms = null, CancellationToken ct = default)
    {
        if (phone is not null && removePhone) throw new ArgumentException("give a phone or remove it, not both");
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            if (phone is not null) w.WriteString("phone", phone);
            else if (removePhone) w.WriteNull("phone");
            if (email is not null || sms is not null)
            {
                w.WriteStartObject("notifications");
                if (email is { } e) w.WriteBoolean("email", e);
                if (sms is { } s) w.WriteBoolean("sms", s);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        using var content = new ByteArrayContent(buffer.ToArray());
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        return (await SendAsync(HttpMethod.Patch, "v1/users/me", content, idempotencyKey: null, Json.UserProfileView, ct).ConfigureAwait(false)).Value;
    }

    /// <summary><c>POST /v1/users/me/phone/verify</c> with the 6-digit code.</summary>
    public async Task<UserProfileView> VerifyPhoneAsync(string code, CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Post, "v1/users/me/phone/verify", System.Net.Http.Json.JsonContent.Create(new VerifyPhoneRequest(code), Json.VerifyPhoneRequest),
            idempotencyKey: null, Json.UserProfileView, ct).ConfigureAwait(false)).Value;

    /// <summary><c>GET /v1/admin/notifications</c> (admin): the audit log of outbound messages, newest first.</summary>
    public Task<NotificationPage> ListNotificationsAsync(long? user = null, string? channel = null, string? status = null, int? limit = null, string? startingAfter = null,
        CancellationToken ct = default)
    {
        var q = new StringBuilder("v1/admin/notifications");
        char sep = '?';
        void Add(string name, string? value)
        {
            if (value is null) return;
            q.Append(sep).Append(name).Append('=').Append(Uri.EscapeDataString(value));
            sep = '&';
        }
        Add("user", user?.ToString(CultureInfo.InvariantCulture));
        Add("channel", channel);
        Add("status", status);
        Add("limit", limit?.ToString(CultureInfo.InvariantCulture));
        Add("starting_after", startingAfter);
        return GetAsync(q.ToString(), Json.NotificationPage, ct);
    }
}
