using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace RamPay.Server.Hosting;

/// <summary>
/// Where a fault goes after which this process must write nothing more: the writer lease lost, a failed journal
/// write, a broken invariant in the engine, the engine failing while it stops. There is no drain and no final
/// snapshot (either could write on a journal that another writer now owns, or on state that is wrong); the journal
/// makes the crash safe, and a restart replays it. The one place in the server that ends the process.
/// </summary>
public interface IFatalFaultHandler
{
    /// <summary>Logs <paramref name="what"/> and ends the process at once with <see cref="FatalFault.ExitCode"/>.</summary>
    [DoesNotReturn]
    void Fail(string what, Exception? fault = null);
}

public static class FatalFault
{
    /// <summary>EX_SOFTWARE: the engine failed or the writer lease was lost (README, --help).</summary>
    public const int ExitCode = 70;
}

/// <summary>Logs the fault, flushes the log, and calls <c>Environment.Exit(70)</c>.</summary>
/// <remarks>
/// The host's stop does not run: <see cref="SignalLifetime"/> (not the framework's ConsoleLifetime) is the host's
/// lifetime, and it does not hook process exit, so nothing drains or snapshots on the way out.
/// </remarks>
public sealed class ExitingFatalFaultHandler(ILogger<ExitingFatalFaultHandler> logger, IEnumerable<ILoggerProvider> loggerProviders, Action<int>? exit = null)
    : IFatalFaultHandler
{
    private int _failing;

    [DoesNotReturn]
    public void Fail(string what, Exception? fault = null)
    {
        if (Interlocked.Exchange(ref _failing, 1) != 0)
        {
            // A second fault while the first is exiting (the lease lost and then the engine's writes refused): the
            // first one's exit ends this thread too.
            Thread.Sleep(Timeout.Infinite);
        }
        logger.LogCritical(fault, "{What}; stopping at once so that nothing more is written (a restart replays the journal)", what);
        // The console logger writes from a queue on its own thread: disposing its provider writes out what is queued.
        foreach (var provider in loggerProviders)
        {
            try { provider.Dispose(); } catch (ObjectDisposedException) { }
        }
        (exit ?? Environment.Exit)(FatalFault.ExitCode);
        throw new UnreachableException("the process should have exited");
    }
}
