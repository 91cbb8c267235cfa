using RamPay.Core;

namespace RamPay.Server.Http;

/// <summary>
/// A refusal with its HTTP status and error code, thrown by a handler and written by <see cref="ErrorHandling"/> as
/// <c>{"error":{"code":...,"message":...,"field":...}}</c>. Only refusals are thrown; the money path returns normally.
/// <see cref="Field"/> names the one input the refusal is about (a JSON member such as <c>amount</c> or
/// <c>payments[2].currency</c>, a query parameter such as <c>limit</c>, the <c>Idempotency-Key</c> header), or is null
/// when it is about no single input (the state of an account, the body as a whole).
/// </summary>
public sealed class ApiError(int status, string code, string message) : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;
    public int RetryAfterSeconds { get; init; }
    /// <summary>The payment the refused command made (a payment declined by fraud screening is kept), or 0.</summary>
    public long PaymentId { get; init; }
    /// <summary>The input the refusal is about, or null.</summary>
    public string? Field { get; init; }

    public static ApiError BadRequest(string code, string message, string? field = null) => new(400, code, message) { Field = field };
    public static ApiError InvalidRequest(string message, string? field = null) => new(400, "invalid_request", message) { Field = field };
    public static ApiError Unauthorized(string message = "A valid bearer token is required: POST /v1/auth/token gives one.") => new(401, "unauthorized", message);
    public static ApiError Forbidden(string message) => new(403, "forbidden", message);

    /// <summary>The refusal for a ledger result code that is not ok.</summary>
    public static ApiError From(ResultCode code) => new(StatusOf(code), ResultCodes.Name(code), ResultCodes.Message(code))
    {
        Field = FieldOf(Ingress.ResultStatus.InputOf(code)),
    };

    /// <summary>
    /// The refusal for a command's result; a fraud decline names the payment it recorded, a code about one input
    /// (an amount, a currency) names it, after <paramref name="fieldPrefix"/> (a batch item's <c>payments[i].</c>).
    /// </summary>
    public static ApiError From(in CommandResult result, string fieldPrefix = "") => new(StatusOf(result.Code), ResultCodes.Name(result.Code), ResultCodes.Message(result.Code))
    {
        PaymentId = result.Code == ResultCode.FraudSuspected ? result.Id : 0,
        Field = FieldOf(Ingress.ResultStatus.InputOf(result.Code), fieldPrefix),
    };

    /// <summary>The HTTP name of an input, after a prefix; the header keeps its own name.</summary>
    public static string? FieldOf(Ingress.IngressInput input, string prefix = "") => Ingress.IngressInputs.Name(input) is { } name
        ? input == Ingress.IngressInput.IdempotencyKey ? name : prefix + name
        : null;

    /// <summary>The HTTP status of each result code (docs/api.md has the table): the gateway's rule.</summary>
    public static int StatusOf(ResultCode code) => Ingress.ResultStatus.HttpStatusOf(code);
}
