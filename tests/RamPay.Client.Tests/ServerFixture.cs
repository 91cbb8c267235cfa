using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;

namespace RamPay.Client.Tests;

/// <summary>
/// The real rampay-server as a child process on a temporary data folder and free ports, for the tests that check
/// the client against what the server actually sends. The project reference (without its assembly) makes the test
/// build build the server in the same configuration.
/// </summary>
public sealed partial class ServerFixture : IAsyncLifetime
{
    public const string AdminEmail = "admin@rampay.test";
    public const string AdminPassword = "admin-password-1";

    private readonly string _data = Path.Combine(Path.GetTempPath(), "rampay-client-tests-" + Guid.NewGuid().ToString("N"));
    private Process? _server;
    private readonly List<string> _output = [];

    public Uri HttpAddress { get; private set; } = null!;
    public string TcpHost { get; private set; } = "";
    public int TcpPort { get; private set; }

    public async Task InitializeAsync()
    {
        string configuration = typeof(ServerFixture).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
        string serverDll = Path.Combine(RepositoryRoot(), "src", "RamPay.Server", "bin", configuration, "net10.0", "rampay-server.dll");
        Assert.True(File.Exists(serverDll), $"the server is not built at {serverDll}");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[]
        {
            serverDll, "--data", _data, "--http-port", "0", "--tcp-port", "0", "--admin-email", AdminEmail, "--admin-password", AdminPassword,
            "--RamPay:RateLimit:RequestsPerSecond=0", "--RamPay:Auth:PasswordHashIterations=1000",
        })
            start.ArgumentList.Add(arg);
        _server = Process.Start(start)!;
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _server.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_output) _output.Add(e.Data);
            if (HttpLine().Match(e.Data) is { Success: true } h) HttpAddress = new Uri(h.Groups[1].Value);
            if (TcpLine().Match(e.Data) is { Success: true } t) (TcpHost, TcpPort) = (t.Groups[1].Value, int.Parse(t.Groups[2].Value));
            if (e.Data.StartsWith("rampay-server: ready", StringComparison.Ordinal)) ready.TrySetResult();
        };
        _server.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null) lock (_output) _output.Add(e.Data);
        };
        _server.BeginOutputReadLine();
        _server.BeginErrorReadLine();
        Task exited = _server.WaitForExitAsync();
        Task first = await Task.WhenAny(ready.Task, exited, Task.Delay(TimeSpan.FromSeconds(90)));
        if (first != ready.Task)
        {
            string log;
            lock (_output) log = string.Join('\n', _output);
            Assert.Fail($"the server did not become ready ({(first == exited ? "it exited" : "timeout")}):\n{log}");
        }
    }

    public async Task DisposeAsync()
    {
        if (_server is { HasExited: false })
        {
            _server.Kill(entireProcessTree: true);
            await _server.WaitForExitAsync();
        }
        _server?.Dispose();
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Never created: the server failed before it opened its data folder.
        }
    }

    public RamPayHttpClient NewHttpClient() => new(HttpAddress);

    /// <summary>Signs up a fresh user with a USD wallet and logs in.</summary>
    public async Task<(RamPayHttpClient Client, RegisteredUser User)> NewUserAsync(string? currency = null)
    {
        RamPayHttpClient client = NewHttpClient();
        string email = $"user-{Guid.NewGuid():N}@rampay.test";
        RegisteredUser user = await client.RegisterAsync(email, "password-123", "Test User", currency);
        await client.LoginAsync(email, "password-123");
        return (client, user);
    }

    private static string RepositoryRoot()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "RamPay.sln"))) return d.FullName;
        }
        throw new InvalidOperationException("RamPay.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^rampay-server: http listening on (\S+)")]
    private static partial Regex HttpLine();

    [GeneratedRegex(@"^rampay-server: tcp listening on (\S+):(\d+)$")]
    private static partial Regex TcpLine();
}
