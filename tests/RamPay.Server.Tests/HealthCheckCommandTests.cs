using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace RamPay.Server.Tests;

/// <summary>
/// <c>rampay-server --health-check URL</c>, the container image's HEALTHCHECK (Dockerfile): exit 0 only on a 2xx
/// answer, 1 when the server answers otherwise or not at all, 2 for a bad URL; it never starts a server of its own.
/// </summary>
public sealed class HealthCheckCommandTests
{
    [Fact]
    public async Task Exits_0_on_a_live_and_ready_server_and_1_on_a_missing_route_or_a_closed_port()
    {
        await using var server = await ServerProcess.StartAsync(ServerFixture.TestSettings);
        await ExpectHealthyAsync(new Uri(server.HttpBaseAddress, "/health/live").ToString());
        await ExpectHealthyAsync(new Uri(server.HttpBaseAddress, "/health/ready").ToString());
        var missing = await RunAsync(new Uri(server.HttpBaseAddress, "/health/nothing-here").ToString());
        Assert.Equal(1, missing.Code);
        Assert.Contains("404", missing.Output, StringComparison.Ordinal);

        int closedPort = ClosedPort();
        var refused = await RunAsync($"http://127.0.0.1:{closedPort}/health/live");
        Assert.Equal(1, refused.Code);
        Assert.Contains("unreachable", refused.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_is_stopping_is_not_healthy_any_more()
    {
        await using var server = await ServerProcess.StartAsync(ServerFixture.TestSettings);
        string live = new Uri(server.HttpBaseAddress, "/health/live").ToString();
        await ExpectHealthyAsync(live);
        Assert.Equal(0, await server.StopAsync());
        Assert.Equal(1, (await RunAsync(live)).Code);
    }

    [Theory]
    [InlineData("not a url")]
    [InlineData("ftp://127.0.0.1/health/live")]
    public async Task A_bad_url_is_exit_2(string url)
    {
        var run = await RunAsync(url);
        Assert.Equal(2, run.Code);
    }

    /// <summary>
    /// Exit 0, allowing two more tries: on a saturated machine one check can time out (5 s) while the server is busy, as
    /// the image's HEALTHCHECK allows (--retries=3). Each failed try's output is in the message if all three fail.
    /// </summary>
    private static async Task ExpectHealthyAsync(string url)
    {
        var tries = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            var run = await RunAsync(url);
            if (run.Code == 0) return;
            tries.Add($"exit {run.Code}: {run.Output.Trim()}");
        }
        Assert.Fail($"--health-check {url} failed three times:\n" + string.Join('\n', tries));
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port; // closed again when disposed: nothing listens there after
    }

    private static async Task<(int Code, string Output)> RunAsync(string url)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { Path.Combine(AppContext.BaseDirectory, "rampay-server.dll"), "--health-check", url }) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}
