using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace RamPay.Web.Tests;

/// <summary>
/// The real server (src/RamPay.Server's own build output, so it serves the app as <c>dotnet run</c> does) as a child
/// process on free ports and a data folder of its own, and one headless Debian chromium driven by Playwright.
/// Payments of 50.00 or more are held for review (RamPay:Fraud:AmountThreshold), so the review flow can be tripped.
/// </summary>
public sealed partial class WebServer : IAsyncLifetime
{
    public const string AdminEmail = "admin@rampay.test";
    public const string AdminPassword = "admin-password-1";
    public const string Password = "password-123";
    public const long HoldAtMinor = 5_000;

    private Process? _process;
    private readonly string _data = Directory.CreateTempSubdirectory("rampay-web-e2e-").FullName;
    private readonly List<string> _log = [];
    private IPlaywright? _playwright;

    public Uri BaseAddress { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;
    /// <summary>The SMS gateway the server sends to (phone verification codes): a local receiver keeping every form posted.</summary>
    public WebhookReceiver Sms { get; } = new();
    public static string RepoRoot { get; } = FindRepoRoot();
    /// <summary>
    /// Where the end-to-end tests save a screenshot of each page they check: <c>$RAMPAY_ARTIFACTS/screenshots</c>, by
    /// default <c>artifacts/screenshots</c> at the repository's root, the folder CI keeps (scripts/test.sh says so).
    /// </summary>
    public static string Screenshots { get; } = Path.Combine(
        Environment.GetEnvironmentVariable("RAMPAY_ARTIFACTS") is { Length: > 0 } artifacts ? Path.GetFullPath(artifacts) : Path.Combine(RepoRoot, "artifacts"),
        "screenshots");
    public string AxeSource { get; private set; } = "";

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "RamPay.sln"))) return dir.FullName;
        throw new InvalidOperationException("RamPay.sln not found above " + AppContext.BaseDirectory);
    }

    public async Task InitializeAsync()
    {
        // The test's own configuration (bin/Release/net10.0 or bin/Debug/net10.0) is the server's.
        string configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        string dll = Path.Combine(RepoRoot, "src", "RamPay.Server", "bin", configuration, "net10.0", "rampay-server.dll");
        if (!File.Exists(dll)) throw new InvalidOperationException($"{dll} is missing: build src/RamPay.Server ({configuration}) first");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = _data,
        };
        foreach (string a in new[]
                 {
                     dll, "--data", _data, "--http-port", "0", "--tcp-port", "-1", "--admin-email", AdminEmail, "--admin-password", AdminPassword,
                     "--RamPay:Auth:PasswordHashIterations=1000", $"--RamPay:Fraud:AmountThreshold={HoldAtMinor}",
                     "--RamPay:Fraud:ReviewThreshold=2", "--RamPay:Fraud:DeclineThreshold=2", "--RamPay:Web:LookupsPerMinute=600", "--RamPay:Web:LookupBurst=100",
                     // Webhooks to the test's own receiver on 127.0.0.1 (refused without it), retried quickly.
                     "--RamPay:Webhooks:AllowPrivateNetworks=true", "--RamPay:Webhooks:RetryBaseMs=200",
                     // SMS (the phone's verification code) to the test's own receiver, in Twilio's request shape.
                     $"--RamPay:Notifications:Sms:Url=http://127.0.0.1:{Sms.Port}/2010-04-01/Accounts/ACweb/Messages.json",
                     "--RamPay:Notifications:Sms:AccountSid=ACweb", "--RamPay:Notifications:Sms:AuthToken=web-test-token", "--RamPay:Notifications:Sms:From=+15550001111",
                 })
            start.ArgumentList.Add(a);
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_log) _log.Add(e.Data);
            if (HttpLine().Match(e.Data) is { Success: true } m) listening.TrySetResult(new Uri(m.Groups[1].Value + "/"));
            if (e.Data.StartsWith("rampay-server: ready", StringComparison.Ordinal)) ready.TrySetResult();
        };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.Add(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var timeout = Task.Delay(TimeSpan.FromSeconds(90));
        if (await Task.WhenAny(Task.WhenAll(listening.Task, ready.Task), timeout) == timeout)
            throw new InvalidOperationException("the server did not start: " + Log());
        BaseAddress = await listening.Task;
        Http = new HttpClient { BaseAddress = BaseAddress };

        string axe = Path.Combine(RepoRoot, "tests", "RamPay.Web.Tests", "axe", "axe-4.14.1.min.js");
        if (!File.Exists(axe)) Run("bash", Path.Combine(RepoRoot, "scripts", "fetch-axe.sh"));
        AxeSource = await File.ReadAllTextAsync(axe);
        Directory.CreateDirectory(Screenshots);

        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Environment.GetEnvironmentVariable("RAMPAY_CHROMIUM") ?? "/usr/bin/chromium",
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
    }

    private static void Run(string file, string args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { UseShellExecute = false })!;
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {args} failed with {p.ExitCode}");
    }

    public string Log() { lock (_log) return string.Join("\n", _log.TakeLast(40)); }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        _playwright?.Dispose();
        if (_process is { HasExited: false }) { _process.Kill(entireProcessTree: true); await _process.WaitForExitAsync(); }
        _process?.Dispose();
        Http?.Dispose();
        Sms.Dispose();
        try { Directory.Delete(_data, recursive: true); } catch (IOException) { }
    }

    [GeneratedRegex(@"^rampay-server: http listening on (http://\S+?)/?$")]
    private static partial Regex HttpLine();

    // ---- the API directly, for set-up and for checking what the app did -------------------------------------------

    public static string NewEmail(string who) => $"{who}-{Guid.NewGuid():N}"[..(who.Length + 13)] + "@example.com";

    public async Task<string> TokenAsync(string email, string password)
    {
        using var r = await Http.PostAsJsonAsync("v1/auth/token", new { email, password });
        r.EnsureSuccessStatusCode();
        return (await r.Content.ReadFromJsonAsync<JsonObject>())!["access_token"]!.GetValue<string>();
    }

    /// <summary>Signs a user up through the API: (wallet account id, token).</summary>
    public async Task<(long Wallet, string Token)> SignUpAsync(string email, string name, long depositMinor = 0)
    {
        using (var r = await Http.PostAsJsonAsync("v1/users", new { email, password = Password, name, currency = "USD" }))
            r.EnsureSuccessStatusCode();
        string token = await TokenAsync(email, Password);
        var me = await GetAsync("v1/users/me", token);
        long wallet = me["wallet_account_id"]!.GetValue<long>();
        if (depositMinor > 0)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"v1/accounts/{wallet}/deposits") { Content = JsonContent.Create(new { amount = depositMinor, currency = "USD" }) };
            request.Headers.Authorization = new("Bearer", token);
            request.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString("N"));
            using var r = await Http.SendAsync(request);
            r.EnsureSuccessStatusCode();
        }
        return (wallet, token);
    }

    /// <summary>A deposit into the user's wallet through the API (minor units); its id.</summary>
    public async Task<long> DepositAsync(long wallet, string token, long amountMinor)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"v1/accounts/{wallet}/deposits") { Content = JsonContent.Create(new { amount = amountMinor, currency = "USD" }) };
        request.Headers.Authorization = new("Bearer", token);
        request.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString("N"));
        using var r = await Http.SendAsync(request);
        r.EnsureSuccessStatusCode();
        return (await r.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<long>();
    }

    /// <summary>A POST (or other method) with a JSON body through the API; the answer's JSON, after checking its status.</summary>
    public async Task<JsonObject> SendAsync(HttpMethod method, string path, string token, object? body, System.Net.HttpStatusCode expect)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null) request.Content = JsonContent.Create(body);
        request.Headers.Authorization = new("Bearer", token);
        request.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString("N"));
        using var r = await Http.SendAsync(request);
        string text = await r.Content.ReadAsStringAsync();
        if (r.StatusCode != expect) throw new InvalidOperationException($"{method} {path}: {(int)r.StatusCode} {text}");
        return System.Text.Json.Nodes.JsonNode.Parse(text)!.AsObject();
    }

    public async Task<JsonObject> GetAsync(string path, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new("Bearer", token);
        using var r = await Http.SendAsync(request);
        r.EnsureSuccessStatusCode();
        return (await r.Content.ReadFromJsonAsync<JsonObject>())!;
    }

    /// <summary>An account's payments, newest first (ids).</summary>
    public async Task<List<long>> PaymentIdsAsync(long account, string token) =>
        (await GetAsync($"v1/accounts/{account}/payments?limit=100", token))["data"]!.AsArray().Select(p => p!["id"]!.GetValue<long>()).ToList();
}
