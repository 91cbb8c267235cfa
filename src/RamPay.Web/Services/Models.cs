using System.Text.Json.Serialization;

namespace RamPay.Web.Services;

// The JSON shapes of docs/api.md that the app reads and sends (snake_case through ApiClient's options). Unknown fields
// are ignored, so a server that adds fields does not break the app.

public sealed record TokenAnswer(string AccessToken, int ExpiresIn, string RefreshToken);
public sealed record Me(long UserId, string Email, string Name, string Role, long WalletAccountId);
public sealed record RegisteredUser(long UserId, long WalletAccountId, string Email, string Name, string Role, string Currency);
public sealed record AccountView(long Id, long? OwnerUserId, string Currency, string Type, bool Frozen, long Posted, long Pending, long Available);
public sealed record FraudView(double Score, string ModelVersion, string[] Reasons);

public sealed record PaymentView(
    long Id, string Kind, string Status, long FromAccount, long ToAccount, long Amount, string Currency,
    long Captured, long Refunded, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, long? RefundOf,
    string? Description, FraudView? Fraud);

public sealed record PaymentPageView(PaymentView[] Data, bool HasMore, long? NextAfter);
public sealed record Payee(long AccountId, string Name);
public sealed record AdminUser(long UserId, string Email, string Name, string Role, long WalletAccountId, string Currency, bool Frozen);
public sealed record AdminUserPageView(AdminUser[] Data, bool HasMore, long? NextAfter);
/// <summary>An API error. <see cref="Field"/> is read when the server names the field (the notifications API does).</summary>
public sealed record ApiErrorBody(string Code, string Message, long? PaymentId, string? RequestId, string? Field = null);
public sealed record ErrorEnvelope(ApiErrorBody? Error);

// ---- webhooks (docs/webhooks.md) ----
public sealed record WebhookEndpointView(string Id, string Url, string[] EnabledEvents, string Status, string? Description, DateTimeOffset CreatedAt, string? Secret);
public sealed record WebhookEndpointList(WebhookEndpointView[] Data, bool HasMore);
public sealed record DeliveryAttempt(long DeliveryId, string EventId, int Attempt, DateTimeOffset? AttemptedAt, int? StatusCode, long? LatencyMs, string? Error, string Status);
public sealed record DeliveryAttemptList(DeliveryAttempt[] Data);
public sealed record RedeliverAnswer(string EventId, int Queued);

/// <summary>A delivery as the operators' dead-letter list shows it (GET /v1/admin/webhook_deliveries).</summary>
public sealed record AdminDelivery(long DeliveryId, string EndpointId, long OwnerUserId, string Url, string EventId, string EventType, string Status,
    int Attempts, DateTimeOffset CreatedAt, DateTimeOffset? LastAttemptAt, int? LastStatusCode, string? LastError);
public sealed record AdminDeliveryPage(AdminDelivery[] Data, bool HasMore, long? NextStartingAfter);

// ---- rewards (docs/rewards.md) ----
public sealed record RewardView(long Id, string Status, long SourcePaymentId, long RuleId, int RuleVersion, long AccountId, long UserId, string Currency,
    long Amount, long PaidOut, long Reversed, long Owed, string? SkipReason, long? PayoutPaymentId, DateTimeOffset IssuedAt);
public sealed record RewardPage(RewardView[] Data, bool HasMore, long? NextAfter);
public sealed record RewardRuleView(long Id, string Status, string Name, int PercentBps, string Currency, long MinAmount, long? MaxPerPayment,
    long? MaxPerUserPerMonth, long[] PayeeAccounts, DateTimeOffset? StartsAt, DateTimeOffset? EndsAt, int Version, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);
public sealed record RewardRuleList(RewardRuleView[] Data);
public sealed record RewardFunding(string Currency, long AccountId, long Balance, long Available, long PaidOut, long ToppedUp);
public sealed record RewardFundingList(RewardFunding[] Data);
public sealed record TopUpAnswer(PaymentView Payment, RewardFunding Funding);

// ---- analytics (docs/analytics.md): the buckets are read as JSON objects, their measures by name ----
public sealed record AnalyticsAnswer(string Interval, DateTimeOffset From, DateTimeOffset To, Dictionary<string, System.Text.Json.JsonElement>[] Data);

// ---- notifications (COMMON.md's shape, built by the notify helper) ----
public sealed record NotificationSwitches(bool Email, bool Sms);
/// <summary>GET/PATCH /v1/users/me with the notification fields.</summary>
public sealed record Profile(long UserId, string Email, string Name, string? Phone, bool PhoneVerified, NotificationSwitches? Notifications);
public sealed record NotificationRecord(System.Text.Json.JsonElement Id, long UserId, string Channel, string? Destination, string? Template, string? EventId,
    string Status, int Attempts, DateTimeOffset CreatedAt, string? LastError);
public sealed record NotificationPage(NotificationRecord[] Data, bool HasMore);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(TokenAnswer))]
[JsonSerializable(typeof(Me))]
[JsonSerializable(typeof(RegisteredUser))]
[JsonSerializable(typeof(AccountView))]
[JsonSerializable(typeof(PaymentView))]
[JsonSerializable(typeof(PaymentPageView))]
[JsonSerializable(typeof(Payee))]
[JsonSerializable(typeof(AdminUserPageView))]
[JsonSerializable(typeof(ErrorEnvelope))]
[JsonSerializable(typeof(WebhookEndpointView))]
[JsonSerializable(typeof(WebhookEndpointList))]
[JsonSerializable(typeof(DeliveryAttemptList))]
[JsonSerializable(typeof(RedeliverAnswer))]
[JsonSerializable(typeof(AdminDeliveryPage))]
[JsonSerializable(typeof(RewardPage))]
[JsonSerializable(typeof(RewardRuleView))]
[JsonSerializable(typeof(RewardRuleList))]
[JsonSerializable(typeof(RewardFundingList))]
[JsonSerializable(typeof(TopUpAnswer))]
[JsonSerializable(typeof(AnalyticsAnswer))]
[JsonSerializable(typeof(Profile))]
[JsonSerializable(typeof(NotificationPage))]
[JsonSerializable(typeof(System.Text.Json.Nodes.JsonObject))]
[JsonSerializable(typeof(System.Text.Json.JsonElement))]
[JsonSerializable(typeof(Dictionary<string, object?>))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(bool))]
public sealed partial class WebJson : JsonSerializerContext;
