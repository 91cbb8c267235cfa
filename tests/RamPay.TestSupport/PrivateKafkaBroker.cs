using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace RamPay.Kafka.Tests;

/// <summary>
/// A Kafka-protocol broker of one test's own: the <c>tools/kafka-mock</c> program (librdkafka's mock cluster, the same
/// one <c>scripts/services.sh</c> runs for everyone) as a child process, so the test may make it stop answering.
/// <see cref="Pause"/> sends SIGSTOP: the process keeps its sockets and its in-memory topics, the kernel still accepts
/// connections and buffers requests, but nothing is answered: a broker that hangs. <see cref="Resume"/> (SIGCONT)
/// lets it answer again with every message it had. (Killing the mock instead would lose every message: it keeps
/// nothing on disk.) Disposing kills this process, by its id, and only it.
/// </summary>
public sealed class PrivateKafkaBroker : IAsyncDisposable
{
    /// <summary>Where the binary is, to skip building it: an absolute path (default: <c>tools/kafka-mock/build.sh</c> builds or finds it).</summary>
    public const string BinaryVariable = "RAMPAY_KAFKA_MOCK";

    private readonly Process _process;
    private readonly string _directory;
    private readonly StringBuilder _output = new();

    private PrivateKafkaBroker(Process process, string directory)
    {
        _process = process;
        _directory = directory;
    }

    /// <summary>Bootstrap servers, <c>127.0.0.1:PORT</c>.</summary>
    public string Bootstrap { get; private set; } = "";
    public int ProcessId => _process.Id;
    public bool Paused { get; private set; }

    /// <summary>What the broker printed (for failure messages).</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>Starts a one-broker cluster with <paramref name="topics"/> (<c>NAME:PARTITIONS</c>) made up front; returns once it answers on its port.</summary>
    public static Task<PrivateKafkaBroker> StartAsync(params string[] topics) => StartAsync(1, topics);

    /// <summary>
    /// Starts a cluster of <paramref name="brokers"/> brokers (partition leaders spread over them, as in a real cluster) with
    /// <paramref name="topics"/> made up front; returns once it answers on its port.
    /// </summary>
    public static async Task<PrivateKafkaBroker> StartAsync(int brokers, params string[] topics)
    {
        string binary = await BinaryAsync();
        string directory = Directory.CreateTempSubdirectory("rampay-kafka-mock-").FullName;
        string bootstrapFile = Path.Combine(directory, "bootstrap");
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string arg in (string[])["--brokers", brokers.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bootstrap-file", bootstrapFile, .. topics]) start.ArgumentList.Add(arg);
        var process = new Process { StartInfo = start };
        process.Start();
        var broker = new PrivateKafkaBroker(process, directory);
        process.OutputDataReceived += (_, e) => broker.Add(e.Data);
        process.ErrorDataReceived += (_, e) => broker.Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!File.Exists(bootstrapFile))
            {
                if (process.HasExited) throw new InvalidOperationException($"{binary} exited with code {process.ExitCode}: {broker.Output}");
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"{binary} wrote no bootstrap file within 30 s: {broker.Output}");
                await Task.Delay(20);
            }
            broker.Bootstrap = (await File.ReadAllTextAsync(bootstrapFile)).Trim();
            return broker;
        }
        catch
        {
            await broker.DisposeAsync();
            throw;
        }
    }

    private void Add(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    /// <summary>SIGSTOP: the broker stops answering (connections are still accepted by the kernel, requests wait in its buffers).</summary>
    public void Pause()
    {
        Signal(Sigstop);
        Paused = true;
    }

    /// <summary>SIGCONT: the broker answers again, with every message it held.</summary>
    public void Resume()
    {
        Signal(Sigcont);
        Paused = false;
    }

    public string Describe() => $"private Kafka mock broker pid {ProcessId} at {Bootstrap}{(Paused ? " (paused)" : "")}: {Output}";

    private void Signal(int signal)
    {
        if (_process.HasExited) throw new InvalidOperationException($"the private Kafka broker exited with code {_process.ExitCode}: {Output}");
        if (SendSignal(_process.Id, signal) != 0) throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                // Only this process, by its id (Process.Kill sends SIGKILL, which also ends a stopped process).
                _process.Kill();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await _process.WaitForExitAsync(timeout.Token);
            }
        }
        catch (InvalidOperationException) { } // never started or already gone
        _process.Dispose();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>The mock's binary: <see cref="BinaryVariable"/>, or what <c>tools/kafka-mock/build.sh</c> prints (it builds only when the source is newer).</summary>
    private static async Task<string> BinaryAsync()
    {
        if (Environment.GetEnvironmentVariable(BinaryVariable) is { Length: > 0 } configured) return configured;
        string? dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "tools", "kafka-mock", "build.sh"))) dir = Path.GetDirectoryName(dir);
        if (dir is null) throw new InvalidOperationException($"tools/kafka-mock/build.sh is not above {AppContext.BaseDirectory}; set {BinaryVariable} to the rampay-kafka-mock binary");
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(dir, "tools", "kafka-mock", "build.sh"));
        using var build = Process.Start(start) ?? throw new InvalidOperationException("bash did not start");
        var stdout = build.StandardOutput.ReadToEndAsync();
        var stderr = build.StandardError.ReadToEndAsync();
        await build.WaitForExitAsync();
        string path = (await stdout).Trim();
        if (build.ExitCode != 0 || !File.Exists(path))
            throw new InvalidOperationException($"tools/kafka-mock/build.sh failed (exit {build.ExitCode}): {await stderr}");
        return path;
    }

    private const int Sigstop = 19;
    private const int Sigcont = 18;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);
}
