using System.Runtime.InteropServices;

namespace RamPay.Server.Hosting;

/// <summary>
/// The host's lifetime: SIGTERM, SIGINT (Ctrl-C) and SIGQUIT ask the host to stop, which drains (docs/architecture.md,
/// "The server"). It replaces the framework's ConsoleLifetime for one reason: ConsoleLifetime also stops the host from
/// a process-exit handler, so <c>Environment.Exit(70)</c> after a fatal fault would run the full drain and the final
/// snapshot, and then report exit code 0. Here process exit is left alone; only the signals stop the host.
/// </summary>
public sealed class SignalLifetime(IHostApplicationLifetime lifetime) : IHostLifetime, IDisposable
{
    private readonly List<PosixSignalRegistration> _registrations = [];

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        foreach (var signal in new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT })
            _registrations.Add(PosixSignalRegistration.Create(signal, OnSignal));
        return Task.CompletedTask;
    }

    private void OnSignal(PosixSignalContext context)
    {
        // Handled: the runtime must not terminate the process; the host stops and Main returns the exit code.
        context.Cancel = true;
        lifetime.StopApplication();
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        foreach (var registration in _registrations) registration.Dispose();
        _registrations.Clear();
    }
}
