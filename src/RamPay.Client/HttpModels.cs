using System.Net;
using System.Text.Json.Serialization;

namespace RamPay.Client;

// The JSON shapes of docs/api.md. Property names map to snake_case through RamPayJsonContext's naming policy, so
// these records carry no per-property attributes. Unknown fields in a response are ignored, so a server that adds
// fields does not break an older client.

/// <summary>A successful answer to a keyed POST: the value plus what the headers said.</summary>
/// <param name="Replayed">The server answered <c>Idempotent-Replayed: true</c>: the key was seen before and this is its first result (the body shows the object as it is now).</param>
/// <param name="IdempotencyKey">The key sent, so a caller that let the client make one up can retry with it.</param>
public sealed record RamPayResponse<T>(T Value, HttpStatusCode StatusCode, bool Replayed, string? IdempotencyKey);

public sealed record RegisterRequest(string Email, string Password, string Name, string? Currency = null);

public sealed record RegisteredUser(long UserId, long WalletAccountId, string Email, string Name, string Role, string Currency);

public sealed record LoginRequest(string Email, string Password);

public sealed record TokenResponse(string AccessToken, string TokenType, int ExpiresIn);

/// <summary><c>GET /v1/users/me</c>.</summary>
public sealed record CurrentUser(long UserId, string Email, string Name, string Role, long WalletAccountId, DateTimeOffset CreatedAt);

public sealed record Account(
    long Id, long? OwnerUserId, string Currency, string Type, bool Frozen,
    long Posted, long Pending, long Available,
    long DebitsPosted, long CreditsPosted, long DebitsPending, long CreditsPending,
    DateTimeOffset CreatedAt);

public sealed record Payment(
    long Id, string Kind, string Status, long FromAccount, long ToAccount, long Amount, string Currency,
    long Captured, long Refunded, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, long? RefundOf,
    string? Description, string? WebhookUrl);

public sealed record PaymentPage(IReadOnlyList<Payment> Data, bool HasMore, long? NextAfter);

/// <summary>
/// <c>POST /v1/payments</c> (and one item of a batch). Optional fields left null are not sent, so the server's defaults
/// apply (capture true, 7-day hold).
/// </summary>
public sealed record PaymentRequest(long FromAccount, long ToAccount, long Amount, string Currency)
{
    public string? Description { get; init; }
    public bool? Capture { get; init; }
    public long? HoldTimeoutMs { get; init; }
    public string? WebhookUrl { get; init; }
}

public sealed record DepositRequest(long Amount, string Currency);

/// <summary>A null amount captures the whole authorization (the body is then <c>{}</c>).</summary>
public sealed record CaptureRequest(long? Amount);

public sealed record RefundRequest(long Amount, string? Currency);

public sealed record BatchRequest(IReadOnlyList<PaymentRequest> Payments);

/// <summary>
/// One item's outcome in a batch: <see cref="Payment"/> when <see cref="Status"/> is 2xx, else <see cref="Error"/>.
/// <see cref="Replayed"/>: this item's key (derived from the request's key and its position) was seen before and this
/// is its first result.
/// </summary>
public sealed record BatchItemResult(int Status, Payment? Payment, ApiError? Error, bool Replayed = false)
{
    [JsonIgnore] public bool IsSuccess => Status is >= 200 and < 300;
}

public sealed record BatchResponse(IReadOnlyList<BatchItemResult> Results);

public sealed record ApiError(string Code, string Message);

public sealed record ErrorEnvelope(ApiError? Error);

/// <summary><c>/health/live</c> and <c>/health/ready</c>; the counters are present on a ready answer only.</summary>
public sealed record HealthStatus(string Status, long? JournalSequence, long? Accounts, long? Payments)
{
    [JsonIgnore] public bool IsReady => Status == "ready";
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RegisterRequest))]
[JsonSerializable(typeof(RegisteredUser))]
[JsonSerializable(typeof(LoginRequest))]
[JsonSerializable(typeof(TokenResponse))]
[JsonSerializable(typeof(CurrentUser))]
[JsonSerializable(typeof(Account))]
[JsonSerializable(typeof(Payment))]
[JsonSerializable(typeof(PaymentPage))]
[JsonSerializable(typeof(PaymentRequest))]
[JsonSerializable(typeof(DepositRequest))]
[JsonSerializable(typeof(CaptureRequest))]
[JsonSerializable(typeof(RefundRequest))]
[JsonSerializable(typeof(BatchRequest))]
[JsonSerializable(typeof(BatchResponse))]
[JsonSerializable(typeof(ErrorEnvelope))]
[JsonSerializable(typeof(HealthStatus))]
public sealed partial class RamPayJsonContext : JsonSerializerContext;
