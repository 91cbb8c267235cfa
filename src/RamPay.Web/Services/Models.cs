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
public sealed record ApiErrorBody(string Code, string Message, long? PaymentId, string? RequestId);
public sealed record ErrorEnvelope(ApiErrorBody? Error);

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
[JsonSerializable(typeof(System.Text.Json.Nodes.JsonObject))]
[JsonSerializable(typeof(System.Text.Json.JsonElement))]
[JsonSerializable(typeof(Dictionary<string, object?>))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(bool))]
public sealed partial class WebJson : JsonSerializerContext;
