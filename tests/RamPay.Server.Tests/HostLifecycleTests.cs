using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RamPay.Engine;
using RamPay.Server.Hosting;
using RamPay.Server.Tcp;

namespace RamPay.Server.Tests;

/// <summary>
/// The composed host in this process: its services start and stop in the order docs/architecture.md gives, Kestrel
/// first up and first down; a fatal fault goes to the one handler, which exits with 70 without stopping the host.
/// </summary>
public sealed class HostLifecycleTests : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("rampay-host-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_data, recursive: true); } catch (IOException) { }
    }

    private WebApplication Compose(LogRecorder recorder, Action<WebApplicationBuilder>? adjust = null)
    {
        var app = Program.Compose(
            ["--data", _data, "--http-port", "0", "--tcp-port", "0", "--admin-password", "admin-password-1", "--RamPay:Auth:PasswordHashIterations=1000"],
            out int exitCode,
            b =>
            {
                b.Logging.AddProvider(recorder);
                adjust?.Invoke(b);
            });
        Assert.Equal(0, exitCode);
        return app!;
    }

    /// <summary>The framework's own hosted services (OpenTelemetry's, data protection's for JwtBearer): they hold no RamPay state, so their place does not matter.</summary>
    private static readonly string[] FrameworkServices = ["TelemetryHostedService", "DataProtectionHostedService"];

    [Fact]
    public void The_hosted_services_are_registered_in_start_order_and_Kestrel_after_them_so_it_is_up_first_and_down_first()
    {
        using var recorder = new LogRecorder();
        var app = Compose(recorder);
        var order = app.Services.GetServices<IHostedService>().Select(s => s.GetType().Name).ToList();
        Assert.Equal(
            [nameof(HttpAnnouncement), nameof(WriterLeaseService), nameof(EngineService), nameof(BootstrapService), "RewardsService", nameof(SinksService), nameof(JournalRetirementService), "EventConsumersService", "WebhookDispatcherService", "NotificationDispatcherService", nameof(TcpIngress), nameof(ReadyService)],
            order.Where(n => n != "GenericWebHostService" && !FrameworkServices.Contains(n)));
        // The web host runs its StartAsync after ours (which do nothing) and before every StartedAsync (which do
        // the work), and its StopAsync before ours: HTTP listens during the replay and is answered to the end.
        Assert.Equal("GenericWebHostService", order[^1]);
        Assert.IsType<SignalLifetime>(app.Services.GetRequiredService<IHostLifetime>());
    }

    [Fact]
    public async Task Start_answers_starting_then_ready_and_stop_drains_TCP_then_the_engine_with_a_snapshot()
    {
        using var recorder = new LogRecorder();
        var app = Compose(recorder);
        await using (app)
        {
            await app.StartAsync();
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            using var http = new HttpClient { BaseAddress = new Uri(address) };
            var ready = await http.GetAsync("/health/ready");
            Assert.Equal(System.Net.HttpStatusCode.OK, ready.StatusCode);
            await app.StopAsync();
        }
        var lines = recorder.Messages;
        int At(string start) => Assert.Single(lines.Select((l, i) => (l, i)), x => x.l.StartsWith(start, StringComparison.Ordinal)).i;
        int[] sequence =
        [
            At("http listening on"), At("recovered:"), At("opened the USD funding account"), At("created admin user"),
            At("tcp listening on"), At("ready: data"), At("tcp stopped"), At("engine stopped: drained and snapshotted"),
        ];
        Assert.True(sequence.SequenceEqual(sequence.Order()), "out of order:\n" + string.Join("\n", lines));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(_data, "snapshots")));
    }

    [Fact]
    public async Task HTTP_answers_starting_while_the_services_before_the_engine_hold_the_start()
    {
        // 1. A gate right after the HTTP announcement, where the writer lease waits (or the engine replays a long journal).
        using var recorder = new LogRecorder();
        var gate = new Gate();
        var app = Compose(recorder, b =>
        {
            int at = b.Services.IndexOf(b.Services.First(d => d.ServiceType == typeof(IHostedService))) + 1;
            b.Services.Insert(at, ServiceDescriptor.Singleton<IHostedService>(gate));
        });
        await using (app)
        {
            var starting = app.StartAsync();
            await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
            // 2. Kestrel is up: /health/live answers, /health/ready says "starting" with 503.
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            using var http = new HttpClient { BaseAddress = new Uri(address) };
            Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("/health/live")).StatusCode);
            var ready = await http.GetAsync("/health/ready");
            Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Contains("\"starting\"", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.DoesNotContain(recorder.Messages, m => m.StartsWith("recovered:", StringComparison.Ordinal));
            // 3. Open the gate: the engine recovers, the server becomes ready.
            gate.Open.SetResult();
            await starting.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("/health/ready")).StatusCode);
            await app.StopAsync();
        }
    }

    private sealed class Gate : LifecycleService
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Open { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async Task StartedAsync(CancellationToken cancellationToken)
        {
            Entered.SetResult();
            await Open.Task;
        }
    }

    [Fact]
    public async Task An_engine_fault_goes_to_the_fatal_fault_handler()
    {
        using var recorder = new LogRecorder();
        var faults = new ConcurrentQueue<string>();
        var app = Compose(recorder, b => b.Services.AddSingleton<IFatalFaultHandler>(new RecordingFatalFaultHandler(faults)));
        await using (app)
        {
            await app.StartAsync();
            Assert.Throws<ExitCalled>(() => app.Services.GetRequiredService<EngineHost>().OnFatal(new InvalidOperationException("a broken invariant")));
            Assert.Equal(["the engine failed"], faults);
            await app.StopAsync();
        }
    }

    [Fact]
    public void The_fatal_fault_handler_logs_flushes_the_log_and_exits_70_at_once()
    {
        using var recorder = new LogRecorder();
        using var factory = LoggerFactory.Create(b => b.AddProvider(recorder));
        int? exitCode = null;
        bool flushedBeforeExit = false;
        var handler = new ExitingFatalFaultHandler(factory.CreateLogger<ExitingFatalFaultHandler>(), [recorder], code =>
        {
            exitCode = code;
            flushedBeforeExit = recorder.Disposed;
            throw new ExitCalled();
        });
        Assert.Throws<ExitCalled>(() => handler.Fail("lost the writer lease: stolen", new InvalidOperationException("x")));
        Assert.Equal(70, exitCode);
        Assert.True(flushedBeforeExit, "the log providers were not flushed before the exit");
        var line = Assert.Single(recorder.Entries);
        Assert.Equal(LogLevel.Critical, line.Level);
        Assert.StartsWith("lost the writer lease: stolen; stopping at once", line.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_data_folder_names_the_paths_the_engine_uses()
    {
        var data = new DataFolder(_data);
        var engine = new EngineOptions { DataDirectory = data.Root };
        Assert.Equal(engine.JournalDirectory, data.Journal);
        Assert.Equal(engine.SnapshotDirectory, data.Snapshots);
        Assert.Equal(FraudModelStore.Folder(data.Root), data.FraudModels);
        Assert.Equal(RamPay.Redis.FencingTokenFile.PathIn(data.Root), data.WriterFence);
    }

    private sealed class ExitCalled : Exception;

    private sealed class RecordingFatalFaultHandler(ConcurrentQueue<string> faults) : IFatalFaultHandler
    {
        /// <summary>Records, then throws instead of exiting (it must not return).</summary>
        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        public void Fail(string what, Exception? fault = null)
        {
            faults.Enqueue(what);
            throw new ExitCalled();
        }
    }
}

/// <summary>Records RamPay's log events (category RamPay.*), in order.</summary>
public sealed class LogRecorder : ILoggerProvider
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> _entries = new();

    public bool Disposed { get; private set; }
    public IReadOnlyList<(LogLevel Level, string Message)> Entries => [.. _entries];
    public IReadOnlyList<string> Messages => [.. _entries.Select(e => e.Message)];

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName.StartsWith("RamPay.", StringComparison.Ordinal));

    public void Dispose() => Disposed = true;

    private sealed class Logger(LogRecorder recorder, bool ours) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => ours;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (ours) recorder._entries.Enqueue((logLevel, formatter(state, exception)));
        }
    }
}
