using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace RamPay.Server.Tests;

/// <summary>
/// The real server (<c>dotnet rampay-server.dll</c>) as a child process on a data directory of its own, with
/// HTTP and TCP on free ports (0). It reads the ports the server prints and waits for its <c>ready</c> line.
/// It can be killed (SIGKILL), stopped gracefully (SIGTERM) and started again on the same data directory.
/// Disposing kills whatever still runs and deletes the data directory.
/// </summary>
public sealed partial class ServerProcess : IAsyncDisposable
{
    public const string AdminEmail = "admin@rampay.test";
    public const string AdminPassword = "admin-password-1";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(30);

    private readonly IReadOnlyList<string> _settings;
    private readonly IReadOnlyDictionary<string, string> _environment;
    private readonly ServerOutput _output = new();
    private Process? _process;
    private HttpClient? _http;

    private readonly bool _ownsDirectory;

    private ServerProcess(string dataDirectory, IReadOnlyList<string> settings, IReadOnlyDictionary<string, string>? environment = null, bool ownsDirectory = true)
    {
        DataDirectory = dataDirectory;
        _settings = settings;
        _environment = environment ?? new Dictionary<string, string>();
        _ownsDirectory = ownsDirectory;
    }

    /// <summary>The server's data directory (journal and snapshots); it outlives a kill or a stop.</summary>
    public string DataDirectory { get; }
    public Uri HttpBaseAddress { get; private set; } = null!;
    public IPEndPoint TcpEndPoint { get; private set; } = null!;
    /// <summary>An HttpClient on <see cref="HttpBaseAddress"/>; a new one after each start.</summary>
    public HttpClient Http => _http ?? throw new InvalidOperationException("the server is not running");
    public int ProcessId => _process?.Id ?? throw new InvalidOperationException("the server is not running");
    public bool IsRunning => _process is { HasExited: false } || _app is not null;

    /// <param name="settings">Configuration overrides as <c>Section:Key=value</c> (sent as <c>--RamPay:Section:Key=value</c>).</param>
    public static Task<ServerProcess> StartAsync(params string[] settings) => StartAsync(null, settings);

    /// <summary>Starts the server with extra environment variables (RAMPAY_... settings, say) as well as settings flags.</summary>
    public static async Task<ServerProcess> StartAsync(IReadOnlyDictionary<string, string>? environment, params string[] settings)
    {
        string dir = Directory.CreateTempSubdirectory("rampay-server-tests-").FullName;
        var server = new ServerProcess(dir, settings, environment);
        try
        {
            await server.StartProcessAsync();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    /// <summary>
    /// A server on another's data directory (two processes on one journal, with a writer lease), not started yet:
    /// <see cref="LaunchAsync"/> starts it. Disposing it leaves the directory to its owner.
    /// </summary>
    public static ServerProcess OnDirectory(string dataDirectory, IReadOnlyDictionary<string, string>? environment, params string[] settings) =>
        new(dataDirectory, settings, environment, ownsDirectory: false);

    /// <summary>Starts the process; the task ends once it is ready (or fails if it exits or is not ready within a minute).</summary>
    public Task LaunchAsync()
    {
        if (IsRunning) throw new InvalidOperationException("the server already runs");
        return StartProcessAsync();
    }

    /// <summary>Waits for the process to exit on its own (no signal sent); returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        var process = _process ?? throw new InvalidOperationException("the server was never started");
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"the server did not exit within {timeout.TotalSeconds} s. Its output:\n{Output}");
        }
        DropClient();
        return process.ExitCode;
    }

    /// <summary>Starts the server again on the same data directory (after <see cref="KillAsync"/> or <see cref="StopAsync"/>), on new ports.</summary>
    public Task RestartAsync()
    {
        if (IsRunning) throw new InvalidOperationException("the server still runs: kill or stop it first");
        return StartProcessAsync();
    }

    /// <summary>SIGKILL: no drain, no snapshot, no flush. Returns once the process is gone.</summary>
    public async Task KillAsync()
    {
        var process = _process ?? throw new InvalidOperationException("the server was never started");
        process.Kill(entireProcessTree: true);
        await WaitForExitAsync(process, "SIGKILL");
        DropClient();
    }

    /// <summary>SIGTERM, then waits for the process to exit on its own; returns its exit code.</summary>
    public async Task<int> StopAsync()
    {
        var process = _process ?? throw new InvalidOperationException("the server was never started");
        if (SendSignal(process.Id, Sigterm) != 0)
            throw new InvalidOperationException($"kill(SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
        await WaitForExitAsync(process, "SIGTERM");
        DropClient();
        return process.ExitCode;
    }

    /// <summary>Whether the process runs (or its exit code) and what it printed, for failure messages.</summary>
    public string Describe() =>
        (_app is not null ? "the server runs in process" : _process is { HasExited: true } p ? $"the server process exited with code {p.ExitCode}" : "the server process runs") + $". Its output:\n{Output}";

    /// <summary>What the server printed so far (the start and the latest lines), for failure messages.</summary>
    public string Output => _output.ToString();

    public async ValueTask DisposeAsync()
    {
        await StopInProcessAsync();
        if (_process is { } process)
        {
            try
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync(new CancellationTokenSource(ExitTimeout).Token);
                }
            }
            catch (InvalidOperationException) { } // already gone
            process.Dispose();
            _process = null;
        }
        DropClient();
        if (_ownsDirectory)
        {
            try { Directory.Delete(DataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private async Task StartProcessAsync()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "rampay-server.dll");
        if (!File.Exists(dll)) throw new FileNotFoundException($"{dll} should be copied next to the tests (ProjectReference to RamPay.Server)");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        var args = new List<string>
        {
            dll, "--data", DataDirectory, "--http-port", "0", "--tcp-port", "0",
            "--admin-email", AdminEmail, "--admin-password", AdminPassword,
        };
        args.AddRange(_settings.Select(s => "--RamPay:" + s));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        foreach (var (name, value) in _environment) start.Environment[name] = value;

        _output.BeginRun($"$ dotnet {string.Join(' ', args)}");
        var http = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var tcp = new TaskCompletionSource<IPEndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not { } line) return;
            _output.Add(line);
            if (HttpLine().Match(line) is { Success: true } h) http.TrySetResult(new Uri(h.Groups[1].Value));
            else if (TcpLine().Match(line) is { Success: true } t)
                tcp.TrySetResult(new IPEndPoint(IPAddress.Parse(t.Groups[1].Value), int.Parse(t.Groups[2].Value, CultureInfo.InvariantCulture)));
            else if (line.StartsWith("rampay-server: ready", StringComparison.Ordinal)) ready.TrySetResult();
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { } line) _output.Add("stderr: " + line); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var all = Task.WhenAll(http.Task, tcp.Task, ready.Task);
        var exited = process.WaitForExitAsync();
        var first = await Task.WhenAny(all, exited, Task.Delay(StartTimeout));
        if (first != all)
        {
            string why = first == exited
                ? $"the server exited with code {process.ExitCode} before it was ready"
                : $"the server was not ready within {StartTimeout.TotalSeconds} s (http port seen: {http.Task.IsCompleted}, tcp port seen: {tcp.Task.IsCompleted}, ready seen: {ready.Task.IsCompleted})";
            if (first != exited) process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new InvalidOperationException($"{why}. Its output:\n{Output}");
        }
        HttpBaseAddress = http.Task.Result;
        TcpEndPoint = tcp.Task.Result;
        _http = new HttpClient { BaseAddress = HttpBaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    private async Task WaitForExitAsync(Process process, string how)
    {
        using var timeout = new CancellationTokenSource(ExitTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"the server did not exit within {ExitTimeout.TotalSeconds} s of {how}. Its output:\n{Output}");
        }
    }

    private void DropClient()
    {
        _http?.Dispose();
        _http = null;
    }

    private const int Sigterm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    [GeneratedRegex(@"^rampay-server: http listening on (http://\S+?)/?$")]
    private static partial Regex HttpLine();

    [GeneratedRegex(@"^rampay-server: tcp listening on (\S+):(\d+)$")]
    private static partial Regex TcpLine();

    /// <summary>The first lines of each run and the latest ones: enough to explain a failure, bounded under load.</summary>
    private sealed class ServerOutput
    {
        private const int HeadLines = 60;
        private const int TailLines = 120;
        private readonly List<string> _head = [];
        private readonly Queue<string> _tail = new();
        private long _dropped;

        public void BeginRun(string commandLine)
        {
            lock (_head)
            {
                Flush();
                _head.Add(commandLine);
            }
        }

        public void Add(string line)
        {
            lock (_head)
            {
                if (_head.Count < HeadLines) { _head.Add(line); return; }
                _tail.Enqueue(line);
                if (_tail.Count > TailLines) { _tail.Dequeue(); _dropped++; }
            }
        }

        // A restart keeps what the earlier runs printed, ahead of the new run's lines.
        private void Flush()
        {
            if (_dropped > 0) _head.Add($"... {_dropped} lines left out ...");
            _head.AddRange(_tail);
            _tail.Clear();
            _dropped = 0;
        }

        public override string ToString()
        {
            lock (_head)
            {
                var sb = new StringBuilder();
                foreach (var l in _head) sb.AppendLine(l);
                if (_dropped > 0) sb.AppendLine(CultureInfo.InvariantCulture, $"... {_dropped} lines left out ...");
                foreach (var l in _tail) sb.AppendLine(l);
                return sb.ToString();
            }
        }
    }
}
