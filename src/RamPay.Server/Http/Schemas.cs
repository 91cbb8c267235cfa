namespace RamPay.Server.Http;

// Shapes for the OpenAPI document only: the handlers read and write JSON directly (JsonBody, JsonOut), and
// docs/api.md is the reference. Property names are snake_cased by the JSON options the document uses.
#pragma warning disable CA1812
public sealed record RegisterRequest(string Email, string Password, string Name, string? Currency);
public sealed record UserResponse(long UserId, long WalletAccountId, string Email, string Name, string Role, string Currency, string CreatedAt);
public sealed record TokenRequest(string Email, string Password);
public sealed record TokenResponse(string AccessToken, string TokenType, int ExpiresIn, string RefreshToken, long RefreshExpiresIn);
public sealed record RefreshRequest(string RefreshToken);
public sealed record LogoutRequest(string? RefreshToken);
public sealed record KeyRotationResponse(string Kid, string PreviousKid, string PreviousVerifiesUntil, string[] Keys);
public sealed record AccountResponse(long Id, long? OwnerUserId, string Currency, string Type, bool Frozen, long Posted, long Pending, long Available,
    long DebitsPosted, long CreditsPosted, long DebitsPending, long CreditsPending, string CreatedAt);
public sealed record DepositRequest(long Amount, string Currency);
public sealed record PaymentRequest(long FromAccount, long ToAccount, long Amount, string Currency, string? Description, bool? Capture, long? HoldTimeoutMs, string? WebhookUrl);
public sealed record PaymentResponse(long Id, string Kind, string Status, long FromAccount, long ToAccount, long Amount, string Currency, long Captured, long Refunded,
    string CreatedAt, string? ExpiresAt, long? RefundOf, string? Description, string? WebhookUrl, FraudScoreBody? Fraud);
public sealed record FraudScoreBody(double Score, string ModelVersion, string[] Reasons);
public sealed record ReviewRequest(string Decision);
public sealed record PaymentPage(PaymentResponse[] Data, bool HasMore, long? NextAfter);
public sealed record CaptureRequest(long? Amount);
public sealed record RefundRequest(long Amount, string? Currency);
public sealed record BatchRequest(PaymentRequest[] Payments);
public sealed record BatchItem(int Status, bool? Replayed, PaymentResponse? Payment, ErrorBody? Error);
public sealed record BatchResponse(BatchItem[] Results);
public sealed record ErrorBody(string Code, string Message, long? PaymentId, string? RequestId);
public sealed record ErrorResponse(ErrorBody Error);
#pragma warning restore CA1812
