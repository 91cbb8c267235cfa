using System.Text.Json.Serialization;

namespace RamPay.Contracts;

// The JSON shapes of docs/api.md, defined once. Property names are snake_case through RamPayJsonContext's naming
// policy (and the server's JSON options for the OpenAPI document), so the records carry no per-property attributes.
// Times are RFC 3339 UTC strings; money is long minor units. Fields a server adds later are ignored by a reader of an
// older version, so adding a field is compatible; renaming or removing one is not (the agreement test catches it).

// ---- users and tokens ----------------------------------------------------------------------------------------

/// <summary><c>POST /v1/users</c>: sign up (a wallet in <paramref name="Currency"/>, or the server's default).</summary>
public sealed record RegisterRequest(string Email, string Password, string Name, string? Currency = null);

/// <summary>A user as <c>POST /v1/users</c> (201) and <c>GET /v1/users/me</c> answer it.</summary>
public sealed record User(long UserId, long WalletAccountId, string Email, string Name, string Role, string Currency, DateTimeOffset CreatedAt);

/// <summary><c>POST /v1/auth/token</c>: log in.</summary>
public sealed record LoginRequest(string Email, string Password);

/// <summary>The answer of log-in and refresh.</summary>
public sealed record TokenResponse(string AccessToken, string TokenType, int ExpiresIn, string RefreshToken, long RefreshExpiresIn);

/// <summary><c>POST /v1/auth/refresh</c>: the refresh token is used up and a new pair returned.</summary>
public sealed record RefreshRequest(string RefreshToken);

/// <summary><c>POST /v1/auth/logout</c>: the body may name the refresh token whose session ends too (or be empty).</summary>
public sealed record LogoutRequest(string? RefreshToken = null);

/// <summary><c>POST /v1/admin/auth/keys/rotate</c>.</summary>
public sealed record KeyRotationResponse(string Kid, string PreviousKid, DateTimeOffset PreviousVerifiesUntil, IReadOnlyList<string> Keys);

// ---- accounts and payments -----------------------------------------------------------------------------------

/// <summary>An account's balances (<c>GET /v1/accounts/{id}</c>, freeze and unfreeze).</summary>
public sealed record Account(
    long Id, long? OwnerUserId, string Currency, string Type, bool Frozen,
    long Posted, long Pending, long Available,
    long DebitsPosted, long CreditsPosted, long DebitsPending, long CreditsPending,
    DateTimeOffset CreatedAt);

/// <summary>Fraud screening's verdict on a payment, when it was scored.</summary>
public sealed record FraudScore(double Score, string ModelVersion, IReadOnlyList<string> Reasons);

/// <summary>A payment as every payment endpoint answers it.</summary>
public sealed record Payment(
    long Id, string Kind, string Status, long FromAccount, long ToAccount, long Amount, string Currency,
    long Captured, long Refunded, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, long? RefundOf,
    string? Description, string? WebhookUrl, FraudScore? Fraud = null);

/// <summary><c>GET /v1/accounts/{id}/payments</c>: newest first; <see cref="NextAfter"/> is the next page's <c>after</c>.</summary>
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

/// <summary><c>POST /v1/accounts/{id}/deposits</c>: from the platform's funding account.</summary>
public sealed record DepositRequest(long Amount, string Currency);

/// <summary>A null amount captures the whole authorization (the body is then <c>{}</c>).</summary>
public sealed record CaptureRequest(long? Amount = null);

/// <summary>A refund of a settled payment, wholly or in part; the currency, when given, must be the payment's.</summary>
public sealed record RefundRequest(long Amount, string? Currency = null);

/// <summary><c>POST /v1/payments/{id}/review</c> (admin): <c>approve</c> or <c>decline</c>.</summary>
public sealed record ReviewRequest(string Decision);

/// <summary><c>POST /v1/payments/batch</c>.</summary>
public sealed record BatchRequest(IReadOnlyList<PaymentRequest> Payments);

/// <summary>
/// One item's outcome in a batch: <see cref="Payment"/> when <see cref="Status"/> is 2xx, else <see cref="Error"/> (the other is absent on the wire).
/// <see cref="Replayed"/>: this item's key (derived from the request's key and its position) was seen before and this
/// is its first result.
/// </summary>
public sealed record BatchItemResult(int Status, Payment? Payment = null, ApiError? Error = null, bool Replayed = false)
{
    [JsonIgnore] public bool IsSuccess => Status is >= 200 and < 300;
}

/// <summary>The batch's answer: a result per item, in order.</summary>
public sealed record BatchResponse(IReadOnlyList<BatchItemResult> Results);

// ---- errors and health ---------------------------------------------------------------------------------------

/// <summary>
/// The error object: <see cref="Code"/> and <see cref="Message"/> always; <see cref="PaymentId"/> when the refusal made a
/// payment (fraud_suspected); <see cref="RequestId"/> in a response's error (not in a batch item's); <see cref="Field"/>
/// when the refusal is about one input (a JSON member, a query parameter, the Idempotency-Key header).
/// </summary>
public sealed record ApiError(string Code, string Message, long? PaymentId = null, string? RequestId = null, string? Field = null);

/// <summary>Every 4xx/5xx body: <c>{"error": {...}}</c>.</summary>
public sealed record ErrorEnvelope(ApiError? Error);

/// <summary><c>/health/live</c> and <c>/health/ready</c>; the counters are present on a ready answer only.</summary>
public sealed record HealthStatus(string Status, long? JournalSequence = null, long? Accounts = null, long? Payments = null)
{
    [JsonIgnore] public bool IsReady => Status == "ready";
}

/// <summary>
/// System.Text.Json's source-generated metadata for every contract type (no reflection: fit for trimming and for
/// WebAssembly). Writing leaves null optional fields out; reading ignores fields this version does not know.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RegisterRequest))]
[JsonSerializable(typeof(User))]
[JsonSerializable(typeof(LoginRequest))]
[JsonSerializable(typeof(TokenResponse))]
[JsonSerializable(typeof(RefreshRequest))]
[JsonSerializable(typeof(LogoutRequest))]
[JsonSerializable(typeof(KeyRotationResponse))]
[JsonSerializable(typeof(Account))]
[JsonSerializable(typeof(Payment))]
[JsonSerializable(typeof(PaymentPage))]
[JsonSerializable(typeof(PaymentRequest))]
[JsonSerializable(typeof(DepositRequest))]
[JsonSerializable(typeof(CaptureRequest))]
[JsonSerializable(typeof(RefundRequest))]
[JsonSerializable(typeof(ReviewRequest))]
[JsonSerializable(typeof(BatchRequest))]
[JsonSerializable(typeof(BatchResponse))]
[JsonSerializable(typeof(ErrorEnvelope))]
[JsonSerializable(typeof(HealthStatus))]
[JsonSerializable(typeof(UserProfileView))]
[JsonSerializable(typeof(UpdateUserRequest))]
[JsonSerializable(typeof(VerifyPhoneRequest))]
[JsonSerializable(typeof(NotificationPage))]
// the web app's (WebAppContracts.cs)
[JsonSerializable(typeof(Payee))]
[JsonSerializable(typeof(AdminUserPage))]
[JsonSerializable(typeof(WebhookEndpointView))]
[JsonSerializable(typeof(WebhookEndpointList))]
[JsonSerializable(typeof(WebhookEndpointDeleted))]
[JsonSerializable(typeof(WebhookDeliveryAttemptList))]
[JsonSerializable(typeof(RedeliverResult))]
[JsonSerializable(typeof(AdminDeliveryPage))]
[JsonSerializable(typeof(RewardPage))]
[JsonSerializable(typeof(RewardRuleView))]
[JsonSerializable(typeof(RewardRuleList))]
[JsonSerializable(typeof(RewardRuleRequest))]
[JsonSerializable(typeof(RewardFundingList))]
[JsonSerializable(typeof(RewardTopUp))]
[JsonSerializable(typeof(AnalyticsSeries))]
[JsonSerializable(typeof(LatencySeries))]
public sealed partial class RamPayJsonContext : JsonSerializerContext;
