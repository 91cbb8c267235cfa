using System.Diagnostics;
using System.Text;

namespace RamPay.Server.Tests;

/// <summary>
/// A real <c>rampay-worker</c> (<c>dotnet rampay-worker.dll</c>, copied beside the tests by the test project's reference to
/// src/RamPay.Worker) as a child process: its arguments, extra environment variables (RAMPAY_... settings, service
/// tokens), its console output kept for assertions and failure messages. <see cref="Kill"/> is SIGKILL of this process
/// only (by its own id): no drain, claims and uncommitted offsets left as they are. Disposing kills it if it still runs.
/// </summary>
public sealed class WorkerProcess : IDisposable
{
    /// <summary>What the worker logs once its consumer group assigned it partitions (KafkaEventSource).</summary>
    public const string JoinedMarker = "assigned";

    private readonly Process _process;
    private readonly StringBuilder _output = new();

    /// <param name="args">The worker's command line: <c>ROLE --kafka ... --group ...</c>.</param>
    /// <param name="environment">Variables set for the worker only (settings under the server's names, tokens).</param>
    public WorkerProcess(string[] args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = Start(args, redirectOutput: true);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        _process = Process.Start(start) ?? throw new InvalidOperationException("rampay-worker did not start");
        _process.OutputDataReceived += (_, e) => { lock (_output) _output.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { lock (_output) _output.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;

    /// <summary>Waits until the worker exits by itself (within <paramref name="timeout"/>, else kills it and throws); its exit code.</summary>
    public async Task<int> ExitCodeAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try { await _process.WaitForExitAsync(cancel.Token); }
        catch (OperationCanceledException) { Kill(); throw new TimeoutException($"rampay-worker still ran after {timeout}:\n" + Tail()); }
        return _process.ExitCode;
    }

    /// <summary>Everything the worker wrote to stdout and stderr so far.</summary>
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>The last <paramref name="chars"/> characters of <see cref="Output"/> (for failure messages).</summary>
    public string Tail(int chars = 6_000)
    {
        string s = Output;
        return s.Length <= chars ? s : s[^chars..];
    }

    /// <summary>True once the group assigned this worker partitions (it logged <see cref="JoinedMarker"/>).</summary>
    public bool Joined => Output.Contains(JoinedMarker, StringComparison.Ordinal);

    /// <summary>Waits until every worker joined its group; false if one had not within <paramref name="timeout"/>.</summary>
    public static async Task<bool> AllJoinedAsync(TimeSpan timeout, params WorkerProcess[] workers)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!workers.All(w => w.Joined))
        {
            if (DateTime.UtcNow > deadline) return false;
            await Task.Delay(100);
        }
        return true;
    }

    /// <summary>SIGKILL (Process.Kill on Unix) of this process, then waits up to 10 s for it to be gone.</summary>
    public void Kill()
    {
        if (_process.HasExited) return;
        _process.Kill();
        _process.WaitForExit(10_000);
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    /// <summary>Runs <c>rampay-worker ARGS</c> to its end (a one-shot mode such as <c>--health-check URL</c>); its exit code.</summary>
    public static async Task<int> RunToExitAsync(params string[] args)
    {
        using var process = Process.Start(Start(args, redirectOutput: false)) ?? throw new InvalidOperationException("rampay-worker did not start");
        await process.WaitForExitAsync();
        return process.ExitCode;
    }

    private static ProcessStartInfo Start(string[] args, bool redirectOutput)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = redirectOutput, RedirectStandardError = true };
        // RAMPAY_WORKER_DIR: another build's worker (a bench's baseline, bench/analytics-live.sh BASE_WORKER_DIR).
        start.ArgumentList.Add(Path.Combine(Environment.GetEnvironmentVariable("RAMPAY_WORKER_DIR") is { Length: > 0 } dir ? dir : AppContext.BaseDirectory, "rampay-worker.dll"));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        return start;
    }
}
