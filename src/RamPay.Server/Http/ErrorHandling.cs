using RamPay.Server.Hosting;

namespace RamPay.Server.Http;

/// <summary>
/// The first middleware: gives the request its id (echoed in <c>X-Request-Id</c>, put in the scope of every log line
/// written while handling it, and in every error body), and turns every refusal and failure into the one error shape
/// of docs/api.md.
/// </summary>
public static class ErrorHandling
{
    public const string RequestIdHeader = "X-Request-Id";
    public const int MaxRequestIdChars = 128;

    public static async Task Middleware(HttpContext ctx, RequestDelegate next)
    {
        string requestId = RequestIdOf(ctx);
        ctx.TraceIdentifier = requestId;
        ctx.Response.Headers[RequestIdHeader] = requestId;
        var logger = ctx.RequestServices.GetRequiredService<ILogger<RequestScope>>();
        using var scope = logger.BeginScope(new RequestScope(requestId));
        try
        {
            // Before any endpoint (and before routing's 404 for an id that is not an integer): bad text in the URL.
            RequestText.CheckTarget(ctx);
            await next(ctx);
        }
        catch (ApiError e)
        {
            if (e.RetryAfterSeconds > 0) ctx.Response.Headers.RetryAfter = e.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await WriteIfPossible(ctx, e.Status, e.Code, e.Message, e.PaymentId, e.Field);
        }
        catch (BackPressureException e)
        {
            ctx.Response.Headers.RetryAfter = "1";
            await WriteIfPossible(ctx, 503, "sinks_lagging", $"The server is holding new payments back until its database and event stream catch up: {e.Message}.");
        }
        catch (EngineUnavailableException e)
        {
            await WriteIfPossible(ctx, 503, "not_ready", $"The server cannot take requests now: {e.Message}.");
        }
        catch (BadHttpRequestException e)
        {
            int status = e.StatusCode == 413 ? 413 : 400;
            await WriteIfPossible(ctx, status, status == 413 ? "payload_too_large" : "invalid_request", e.Message);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client went away; there is no one to answer.
        }
        catch (Exception e)
        {
            logger.LogError(e, "request {Method} {Path} failed", ctx.Request.Method, ctx.Request.Path);
            await WriteIfPossible(ctx, 500, "internal_error", "The server failed to handle the request; it has been logged.");
        }
    }

    private static async Task WriteIfPossible(HttpContext ctx, int status, string code, string message, long paymentId = 0, string? field = null)
    {
        if (ctx.Response.HasStarted) return;
        ctx.Response.Headers.Remove("Idempotent-Replayed");
        await WriteErrorAsync(ctx, status, code, message, paymentId, field);
    }

    /// <summary>Writes <c>{"error": {"code", "message", "field"?, "request_id"}}</c> with the status (for refusals made outside a handler: 401, 403, 429).</summary>
    public static Task WriteErrorAsync(HttpContext ctx, int status, string code, string message, long paymentId = 0, string? field = null) =>
        JsonOut.Write(ctx, status, w => JsonOut.Error(w, code, message, paymentId, ctx.TraceIdentifier, field));

    /// <summary>Unknown routes answer in the same shape.</summary>
    public static Task NotFound(HttpContext ctx) =>
        WriteErrorAsync(ctx, 404, "not_found", $"No endpoint {ctx.Request.Method} {ctx.Request.Path}: see /swagger.");

    /// <summary>
    /// The caller's <c>X-Request-Id</c> when it is well formed (1 to 128 characters of letters, digits and
    /// <c>-_.:</c>), so that a request can be followed across services; otherwise a new one: the W3C trace id of the
    /// request's activity when it starts a trace here (so log lines and traces agree; a trace continued from the
    /// caller's <c>traceparent</c> spans several requests), else a random 32-hex id.
    /// </summary>
    public static string RequestIdOf(HttpContext ctx)
    {
        var given = ctx.Request.Headers[RequestIdHeader];
        if (given.Count == 1 && given[0] is { Length: > 0 and <= MaxRequestIdChars } id && IsWellFormed(id)) return id;
        return System.Diagnostics.Activity.Current is { IdFormat: System.Diagnostics.ActivityIdFormat.W3C, ParentId: null } activity
            ? activity.TraceId.ToHexString()
            : Guid.NewGuid().ToString("N");
    }

    private static bool IsWellFormed(string id)
    {
        foreach (char c in id)
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':')) return false;
        return true;
    }

    /// <summary>The log scope of a request: <c>RequestId</c>, a structured field in every line logged while handling it.</summary>
    public sealed class RequestScope(string requestId) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        public string RequestId { get; } = requestId;
        public int Count => 1;
        public KeyValuePair<string, object?> this[int index] => index == 0 ? new("RequestId", RequestId) : throw new ArgumentOutOfRangeException(nameof(index));
        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() { yield return this[0]; }
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
        public override string ToString() => "RequestId:" + RequestId;
    }
}
