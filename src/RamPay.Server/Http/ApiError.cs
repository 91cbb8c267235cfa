using RamPay.Core;

namespace RamPay.Server.Http;

/// <summary>
/// A refusal with its HTTP status and error code, thrown by a handler and written by <see cref="ErrorHandling"/> as
/// <c>{"error":{"code":...,"message":...}}</c>. Only refusals are thrown; the money path returns normally.
/// </summary>
public sealed class ApiError(int status, string code, string message) : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;
    public int RetryAfterSeconds { get; init; }
    /// <summary>The payment the refused command made (a payment declined by fraud screening is kept), or 0.</summary>
    public long PaymentId { get; init; }

    public static ApiError BadRequest(string code, string message) => new(400, code, message);
    public static ApiError InvalidRequest(string message) => new(400, "invalid_request", message);
    public static ApiError Unauthorized(string message = "A valid bearer token is required: POST /v1/auth/token gives one.") => new(401, "unauthorized", message);
    public static ApiError Forbidden(string message) => new(403, "forbidden", message);

    /// <summary>The refusal for a ledger result code that is not ok.</summary>
    public static ApiError From(ResultCode code) => new(StatusOf(code), ResultCodes.Name(code), ResultCodes.Message(code));

    /// <summary>The refusal for a command's result; a fraud decline names the payment it recorded.</summary>
    public static ApiError From(in CommandResult result) => new(StatusOf(result.Code), ResultCodes.Name(result.Code), ResultCodes.Message(result.Code))
    {
        PaymentId = result.Code == ResultCode.FraudSuspected ? result.Id : 0,
    };

    /// <summary>The HTTP status of each result code (docs/api.md has the table).</summary>
    public static int StatusOf(ResultCode code) => code switch
    {
        ResultCode.Ok => 200,
        ResultCode.InvalidCommand or ResultCode.InvalidAmount or ResultCode.InvalidCurrency or ResultCode.IdempotencyKeyRequired
            or ResultCode.SameAccount or ResultCode.InvalidHoldTimeout or ResultCode.InvalidProfile or ResultCode.InvalidPaymentNote => 400,
        ResultCode.NotAccountOwner or ResultCode.AdminRequired => 403,
        ResultCode.AccountNotFound or ResultCode.PaymentNotFound => 404,
        ResultCode.EmailTaken or (>= ResultCode.ExistsWithDifferentType and <= ResultCode.ExistsWithDifferentArgument) => 409,
        ResultCode.TooManyAccounts or ResultCode.TooManyPayments or ResultCode.TooManyHolds => 503,
        _ => 422,
    };
}
