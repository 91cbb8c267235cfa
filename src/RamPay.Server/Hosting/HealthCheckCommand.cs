namespace RamPay.Server.Hosting;

/// <summary>
/// <c>rampay-server --health-check [URL]</c>: one GET of a health endpoint, exit 0 on a 2xx answer and 1 on anything
/// else (refused, timed out, 503). It exists for container health checks: Microsoft's aspnet image holds no curl or
/// wget, so the image's <c>HEALTHCHECK</c> runs the server's own binary in this mode (Dockerfile). It reads no
/// settings and starts no host, so it costs a process start and one request.
/// </summary>
public static class HealthCheckCommand
{
    public const string Flag = "--health-check";
    public const string DefaultUrl = "http://127.0.0.1:8080/health/live";
    public const int Healthy = 0;
    public const int Unhealthy = 1;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    /// <summary>True when the command line asks for this mode (its first argument is the flag).</summary>
    public static bool Requested(string[] args) => args.Length > 0 && args[0] == Flag;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length > 2)
        {
            Console.Error.WriteLine($"usage: rampay-server {Flag} [URL]   (default {DefaultUrl})");
            return BadUsage;
        }
        string url = args.Length == 2 ? args[1] : DefaultUrl;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            Console.Error.WriteLine($"rampay-server {Flag}: '{url}' is not an http:// or https:// URL");
            return BadUsage;
        }
        using var http = new HttpClient { Timeout = Timeout };
        try
        {
            using var response = await http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead);
            Console.Out.WriteLine($"{(int)response.StatusCode} {uri}");
            return response.IsSuccessStatusCode ? Healthy : Unhealthy;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            Console.Out.WriteLine($"unreachable {uri}: {e.Message}");
            return Unhealthy;
        }
    }

    /// <summary>A bad command line: the same code as a bad setting.</summary>
    private const int BadUsage = ServerRun.BadConfiguration;
}
