using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RamPay.Server.Hosting;
using RamPay.Server.Tcp;

namespace RamPay.Server.Tests;

/// <summary>
/// The same server composed inside the test process (<see cref="RamPay.Server.Program.Compose"/>, the composition root
/// the real process runs), on a data directory of its own and free ports, with real Kestrel and the real TCP listener:
/// <see cref="Http"/>, <see cref="HttpBaseAddress"/> and <see cref="TcpEndPoint"/> work as for a child process, so
/// <see cref="Api"/> and the TCP tests need no change. What differs: no process start (no second runtime to boot and
/// JIT), no signals (the host's lifetime is the test's), and a fatal fault throws instead of exiting.
/// For tests that need no process boundary; kill (SIGKILL), stop (SIGTERM), restart and two-server tests keep the
/// child process (<see cref="StartAsync(string[])"/>).
/// <para>
/// Why real Kestrel on a port rather than WebApplicationFactory's TestServer: the same fixtures serve the TCP binary
/// protocol (TestServer has no sockets), <c>RawHttp</c> sends request lines and headers that are not valid UTF-8, which
/// only Kestrel's parser and its header-encoding selector see, and Kestrel's own limits (body size) are part of what
/// the API tests check. The composition is the one WebApplicationFactory would use (<c>Program.Compose</c>), and what
/// TestServer would save (a loopback socket per request) is small next to starting a second runtime, which both avoid.
/// </para>
/// </summary>
public sealed partial class ServerProcess
{
    private WebApplication? _app;

    /// <summary>True when the server runs inside the test process (<see cref="StartInProcessAsync"/>).</summary>
    public bool InProcess => _app is not null;

    /// <param name="settings">As for <see cref="StartAsync(string[])"/>: <c>Section:Key=value</c>.</param>
    public static async Task<ServerProcess> StartInProcessAsync(params string[] settings)
    {
        string dir = Directory.CreateTempSubdirectory("rampay-server-tests-").FullName;
        var server = new ServerProcess(dir, settings);
        try
        {
            await server.StartInProcessCoreAsync();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    private async Task StartInProcessCoreAsync()
    {
        var args = new List<string>
        {
            "--data", DataDirectory, "--http-port", "0", "--tcp-port", "0",
            "--admin-email", AdminEmail, "--admin-password", AdminPassword,
        };
        args.AddRange(_settings.Select(s => "--RamPay:" + s));
        _output.BeginRun($"in process: {string.Join(' ', args)}");
        var app = RamPay.Server.Program.Compose([.. args], out int exitCode, builder =>
        {
            // The test process's console and signals are not the server's: its log lines go to this harness's output
            // (shown on failure), the host's lifetime is StartAsync/StopAsync, and a fatal fault cannot end the test run.
            builder.Logging.ClearProviders();
            builder.Logging.AddProvider(new OutputLoggerProvider(_output));
            builder.Services.AddSingleton<IHostLifetime, TestHostLifetime>();
            builder.Services.AddSingleton<IFatalFaultHandler>(new ThrowingFatalFaultHandler(_output));
        }) ?? throw new InvalidOperationException($"the server refused its settings (exit code {exitCode}). Its output:\n{Output}");
        _app = app;
        using (var timeout = new CancellationTokenSource(StartTimeout))
        {
            try
            {
                await app.StartAsync(timeout.Token);
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"the in-process server did not start: {e.Message}. Its output:\n{Output}", e);
            }
        }
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException($"Kestrel reports no address. Output:\n{Output}");
        HttpBaseAddress = new Uri(address);
        var tcp = app.Services.GetRequiredService<TcpIngress>().LocalEndPoint as IPEndPoint
            ?? throw new InvalidOperationException($"the TCP listener has no endpoint. Output:\n{Output}");
        TcpEndPoint = tcp.Address.Equals(IPAddress.Any) ? new IPEndPoint(IPAddress.Loopback, tcp.Port)
            : tcp.Address.Equals(IPAddress.IPv6Any) ? new IPEndPoint(IPAddress.IPv6Loopback, tcp.Port) : tcp;
        _http = new HttpClient { BaseAddress = HttpBaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>A clean stop of the in-process host (drain and snapshot, as on SIGTERM), then its disposal.</summary>
    private async Task StopInProcessAsync()
    {
        if (_app is not { } app) return;
        _app = null;
        try
        {
            using var timeout = new CancellationTokenSource(ExitTimeout);
            await app.StopAsync(timeout.Token);
        }
        finally
        {
            await app.DisposeAsync();
        }
    }

    /// <summary>No signal handling: the test starts and stops the host.</summary>
    private sealed class TestHostLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>Records the fault in the output and throws: the process must go on running the other tests.</summary>
    private sealed class ThrowingFatalFaultHandler(ServerOutput output) : IFatalFaultHandler
    {
        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        public void Fail(string what, Exception? fault = null)
        {
            output.Add($"FATAL (in process, not exiting): {what}: {fault}");
            throw new InvalidOperationException("fatal fault in the in-process server: " + what, fault);
        }
    }

    /// <summary>The server's log lines, in the harness's output (as the child process's stdout would be).</summary>
    private sealed class OutputLoggerProvider(ServerOutput output) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(output, categoryName);
        public void Dispose() { }

        private sealed class Logger(ServerOutput output, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information || category.StartsWith("RamPay", StringComparison.Ordinal) && logLevel >= LogLevel.Debug;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (!IsEnabled(logLevel)) return;
                output.Add($"{logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception)}");
            }
        }
    }
}
