using RamPay.Server.Hosting;

namespace RamPay.Server.Http;

/// <summary>Turns every refusal and failure into the one error shape of docs/api.md.</summary>
public static class ErrorHandling
{
    public static async Task Middleware(HttpContext ctx, RequestDelegate next)
    {
        try
        {
            // Before any endpoint (and before routing's 404 for an id that is not an integer): bad text in the URL.
            RequestText.CheckTarget(ctx);
            await next(ctx);
        }
        catch (ApiError e)
        {
            if (e.RetryAfterSeconds > 0) ctx.Response.Headers.RetryAfter = e.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await WriteIfPossible(ctx, e.Status, e.Code, e.Message, e.PaymentId);
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
            ctx.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("RamPay.Server").LogError(e, "request {Method} {Path} failed", ctx.Request.Method, ctx.Request.Path);
            await WriteIfPossible(ctx, 500, "internal_error", "The server failed to handle the request; it has been logged.");
        }
    }

    private static async Task WriteIfPossible(HttpContext ctx, int status, string code, string message, long paymentId = 0)
    {
        if (ctx.Response.HasStarted) return;
        ctx.Response.Headers.Remove("Idempotent-Replayed");
        await JsonOut.Write(ctx, status, w => JsonOut.Error(w, code, message, paymentId));
    }

    /// <summary>Unknown routes answer in the same shape.</summary>
    public static Task NotFound(HttpContext ctx) =>
        JsonOut.Write(ctx, 404, w => JsonOut.Error(w, "not_found", $"No endpoint {ctx.Request.Method} {ctx.Request.Path}: see /swagger."));
}
