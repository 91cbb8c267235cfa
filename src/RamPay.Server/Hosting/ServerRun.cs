using Microsoft.AspNetCore.Connections;

namespace RamPay.Server.Hosting;

/// <summary>
/// Runs the composed host and turns its outcome into the exit code (README, --help): 0 a clean stop, 1 start-up
/// failed (or a stop step threw), 2 a bad setting (decided before the host exists, in <see cref="Program"/>), 70 a fatal fault (exited by
/// <see cref="IFatalFaultHandler"/>, never here).
/// </summary>
public static class ServerRun
{
    public const int CleanStop = 0;
    public const int StartupFailed = 1;
    public const int BadConfiguration = 2;

    public static async Task<int> RunAsync(WebApplication app)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("RamPay.Server");
        var options = app.Services.GetRequiredService<ServerOptions>();
        try
        {
            await app.StartAsync();
        }
        catch (OperationCanceledException) when (app.Lifetime.ApplicationStopping.IsCancellationRequested)
        {
            // SIGTERM while waiting for the writer lease: nothing was opened.
            await app.StopAsync();
            logger.LogInformation("stopped before it was ready (before taking the writer lease)");
            return CleanStop;
        }
        catch (Exception e) when (e is IOException or AddressInUseException)
        {
            logger.LogError("cannot listen for HTTP on {HttpHost}:{HttpPort}: {Reason}", options.Http.Host, options.Http.Port, e.Message);
            await StopAfterFailedStartAsync(app, logger);
            return StartupFailed;
        }
        catch (Exception e)
        {
            logger.LogError(e, "start-up failed");
            await StopAfterFailedStartAsync(app, logger);
            return StartupFailed;
        }
        // A clean stop (SIGTERM): the host runs the stop phases of every service, in reverse (ServerComposition).
        try
        {
            await app.WaitForShutdownAsync();
        }
        catch (Exception e)
        {
            // A stop step threw (the engine's own failure is fatal and never gets here): the journal is intact and
            // the next start replays it, but the stop was not clean.
            logger.LogError(e, "stopping failed");
            return StartupFailed;
        }
        logger.LogInformation("stopped cleanly");
        return CleanStop;
    }

    /// <summary>Stops what did start (each service's stop does nothing if it never started): the engine drains, the lease is released.</summary>
    private static async Task StopAfterFailedStartAsync(WebApplication app, ILogger logger)
    {
        try
        {
            await app.StopAsync();
        }
        catch (Exception e)
        {
            logger.LogError(e, "stopping after the failed start failed");
        }
    }
}
