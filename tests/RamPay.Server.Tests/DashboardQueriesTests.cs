using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using RamPay.Core;
using Xunit.Abstractions;

namespace RamPay.Server.Tests;

/// <summary>
/// Every query of the Grafana dashboards (deploy/grafana/dashboards/*.json), with Grafana's variables substituted, run
/// against Debian's real Prometheus scraping a real server: idle first, then under load (HTTP payments with all three
/// fraud decisions and refusals, TCP deposit batches, a Kafka sink, an idempotency table small enough to evict). Each
/// query must return a series, and that series must move with the load (no panel that answers the same whatever
/// happens, such as one with <c>or vector(0)</c>).
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class DashboardQueriesTests(ITestOutputHelper output)
{
    /// <summary>
    /// Series this test's server does not produce, with the reason: series of the worker process or of in-server
    /// consumers that keep up, which scripts/container-test.sh sees instead, and counters of rare faults. Panels reading
    /// them are listed, skipped. The webhook, notification and rewards panels are not skipped: the load below registers a
    /// webhook endpoint that answers 200 and 500 by turns, mails through this work tree's exim, and pays cashback.
    /// </summary>
    private static readonly Dictionary<string, string> NotProducedHere = new(StringComparer.Ordinal)
    {
        ["rampay_consumer_lag_events"] = "stays at 0 while the in-server consumers keep up with this load",
        ["rampay_worker_events_total"] = "a series of rampay-worker, not of the server (the container test checks it)",
        ["rampay_idempotency_evicted_early_total"] = "counts only when a key is forgotten before its window (never under this load; the alert rule is promtool-tested)",
        ["rampay_idempotency_keys_evicted_early_total"] = "counts only once the cold key tier's disk budget is reached (the alert rule is promtool-tested)",
    };

    private const string ScrapeInterval = "500ms"; // PrometheusProcess's
    private static readonly Dictionary<string, string> GrafanaVariables = new(StringComparer.Ordinal)
    {
        ["$__rate_interval"] = "2s",   // Grafana: max(4 x scrape interval, $__interval + scrape interval)
        ["$__interval"] = "1s",
        ["$__range"] = "60s",
        ["$instance"] = ".+",          // the variable's "All" value (allValue)
    };

    [Fact]
    public async Task Every_panel_query_returns_a_series_that_moves_with_load()
    {
        string? kafka = Environment.GetEnvironmentVariable("RAMPAY_TEST_KAFKA");
        Assert.False(string.IsNullOrWhiteSpace(kafka), "RAMPAY_TEST_KAFKA is not set: run 'bash scripts/services.sh start' and source .services.env");
        var queries = DashboardQueries().ToList();
        Assert.NotEmpty(queries);

        await using var server = await ServerProcess.StartAsync([.. ServerFixture.TestSettings.Where(s => !s.StartsWith("Fraud:", StringComparison.Ordinal)),
            "Fraud:Enabled=true", "Fraud:AmountThreshold=5000", "Fraud:MaxPaymentsPerDay=40",
            "Engine:IdempotencyMaxKeys=2048",
            $"Kafka:BootstrapServers={kafka}", $"Kafka:Topic=rampay.dashboard.{Guid.NewGuid():N}",
            "Webhooks:AllowPrivateNetworks=true", "Webhooks:RetryBaseMs=100", "Webhooks:BreakerFailures=1000000",
            .. SmtpSettings()]);
        var api = new Api(server);
        // Webhooks, notifications and rewards: an endpoint for every event (its receiver answers 200 and 500 by turns,
        // so both outcomes move), email through exim for every payment, and a cashback rule with a funded account.
        using var receiver = new HalfFailingReceiver();
        string admin = await api.AdminTokenAsync();
        (await api.PostAsync("/v1/webhook_endpoints", admin, new { url = receiver.Url, enabled_events = new[] { "Payment*" } }, key: "")).Expect(HttpStatusCode.Created);
        (await api.PostAsync("/v1/admin/reward_rules", admin, new { name = "dashboard cashback", percent_bps = 5_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = ServerFixture.MaxDeposit, currency = "USD" })).Expect(HttpStatusCode.Created);
        await using var prometheus = await PrometheusProcess.StartAsync(server.HttpBaseAddress);
        await prometheus.WaitForAsync("up{job=\"rampay\"}", 1, "Prometheus's first scrape of the server");

        // 1. Idle: a few scrapes of a server that does nothing.
        double idleFrom = Now();
        await Task.Delay(TimeSpan.FromSeconds(4));
        double loadFrom = Now();

        // 2. Load for 15 s: payers over HTTP (posted, held for review at >= 5000, declined past 40 a day, refused for
        //    funds) and a TCP connection sending deposit batches.
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var payers = Enumerable.Range(0, 6).Select(_ => PayAsync(api, stop.Token)).ToList();
        var tcp = DepositOverTcpAsync(api, server, stop.Token);
        int[] counts = await Task.WhenAll(payers);
        int batches = await tcp;
        double loadTo = Now();
        output.WriteLine($"load: {counts.Sum()} HTTP payments, {batches} TCP batches of 64 deposits");
        await Task.Delay(TimeSpan.FromSeconds(2)); // a last scrape of the load

        // 3. Each query over the whole run: a series, present under load, moving with it.
        var failures = new List<string>();
        foreach (var (panel, expr) in queries)
        {
            if (NotProducedHere.Keys.FirstOrDefault(s => expr.Contains(s, StringComparison.Ordinal)) is { } absent)
            {
                output.WriteLine($"SKIPPED ({absent}: {NotProducedHere[absent]}): {panel}");
                continue;
            }
            string promql = Substitute(expr);
            var series = await QueryRangeAsync(prometheus.ApiAddress, promql, idleFrom, Now());
            var idle = series.SelectMany(s => s).Where(p => p.Time < loadFrom && double.IsFinite(p.Value)).Select(p => p.Value).ToList();
            var load = series.SelectMany(s => s).Where(p => p.Time >= loadFrom && p.Time <= loadTo + 1 && double.IsFinite(p.Value)).Select(p => p.Value).ToList();
            // Moves: some one series changes under load (pooled values would count two flat series, such as the rewards
            // balances of two currencies, as movement).
            bool moves = series.Any(s =>
            {
                var sIdle = s.Where(p => p.Time < loadFrom && double.IsFinite(p.Value)).Select(p => p.Value).ToList();
                var sLoad = s.Where(p => p.Time >= loadFrom && p.Time <= loadTo + 1 && double.IsFinite(p.Value)).Select(p => p.Value).ToList();
                return sLoad.Count > 0 && (sLoad.Distinct().Count() >= 2 || sIdle.Count == 0 || sIdle.Max() != sLoad.Max());
            });
            output.WriteLine($"{(moves ? "ok" : "FAILED")}: {panel}: {series.Count} series; idle {Describe(idle)}; load {Describe(load)}\n    {promql}");
            if (series.Count == 0) failures.Add($"{panel}: no series for {promql}");
            else if (!moves) failures.Add($"{panel}: does not move with the load (idle {Describe(idle)}, load {Describe(load)}): {promql}");
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public void No_panel_answers_whatever_happens()
    {
        foreach (var (panel, expr) in DashboardQueries())
        {
            Assert.DoesNotContain("vector(", expr, StringComparison.Ordinal);
            Assert.DoesNotMatch(AbsentCall(), expr);
            Assert.False(string.IsNullOrWhiteSpace(panel));
        }
    }

    /// <summary>(panel title / target refId, expression) of every target of every panel of every dashboard file.</summary>
    private static IEnumerable<(string Panel, string Expr)> DashboardQueries()
    {
        string dir = Path.Combine(RepositoryRoot(), "deploy", "grafana", "dashboards");
        foreach (string file in Directory.GetFiles(dir, "*.json").Order(StringComparer.Ordinal))
        {
            var dashboard = JsonNode.Parse(File.ReadAllText(file))!;
            foreach (var panel in Panels(dashboard["panels"]!.AsArray()))
            {
                if (panel["targets"] is not JsonArray targets) continue;
                foreach (var target in targets)
                    yield return ($"{Path.GetFileName(file)} / {panel["title"]} / {target!["refId"]}", target["expr"]!.GetValue<string>());
            }
        }
    }

    private static IEnumerable<JsonNode> Panels(JsonArray panels)
    {
        foreach (var panel in panels)
        {
            yield return panel!;
            if (panel!["panels"] is JsonArray nested) foreach (var inner in Panels(nested)) yield return inner;
        }
    }

    private static string Substitute(string expr)
    {
        // Longest names first ($__rate_interval before $__range...).
        foreach (var (name, value) in GrafanaVariables.OrderByDescending(v => v.Key.Length)) expr = expr.Replace(name, value, StringComparison.Ordinal);
        Assert.DoesNotContain("$", expr, StringComparison.Ordinal);
        return expr;
    }

    /// <summary>This work tree's exim (scripts/services.sh: RAMPAY_TEST_SMTP), so the server mails every payment.</summary>
    private static string[] SmtpSettings()
    {
        string? smtp = Environment.GetEnvironmentVariable("RAMPAY_TEST_SMTP");
        Assert.False(string.IsNullOrWhiteSpace(smtp), "RAMPAY_TEST_SMTP is not set: run 'bash scripts/services.sh start' and source .services.env");
        int colon = smtp!.LastIndexOf(':');
        return [$"Notifications:Smtp:Host={smtp[..colon]}", $"Notifications:Smtp:Port={smtp[(colon + 1)..]}",
            "Notifications:Smtp:From=RamPay <noreply@rampay.test>", "Notifications:Smtp:Security=none"];
    }

    /// <summary>An HTTP receiver on 127.0.0.1 that answers 200 and 500 by turns (webhook deliveries succeed and fail).</summary>
    private sealed class HalfFailingReceiver : IDisposable
    {
        private readonly HttpListener _listener = new();
        private int _count;

        public HalfFailingReceiver()
        {
            var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            Url = $"http://127.0.0.1:{port}/hook";
            _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            _listener.Start();
            _ = Task.Run(async () =>
            {
                while (_listener.IsListening)
                {
                    HttpListenerContext ctx;
                    try { ctx = await _listener.GetContextAsync(); }
                    catch (Exception) { return; }
                    ctx.Response.StatusCode = Interlocked.Increment(ref _count) % 2 == 0 ? 500 : 200;
                    try { ctx.Response.Close(); } catch (Exception) { }
                }
            });
        }

        public string Url { get; }
        public void Dispose() => _listener.Close();
    }

    private static async Task<int> PayAsync(Api api, CancellationToken stop)
    {
        var payer = await api.SignUpAsync(deposit: ServerFixture.MaxDeposit);
        var payee = await api.SignUpAsync();
        int sent = 0;
        while (!stop.IsCancellationRequested)
        {
            long amount = (sent % 7) switch { 3 => 6_000, 5 => ServerFixture.MaxDeposit * 10, _ => 10 + sent % 50 };   // review; insufficient_funds; posted
            var r = await api.PostAsync("/v1/payments", payer.Token, new { from_account = payer.WalletId, to_account = payee.WalletId, amount, currency = "USD", capture = true });
            Assert.True(r.Status is HttpStatusCode.Created or HttpStatusCode.UnprocessableEntity, r.Raw);
            sent++;
        }
        return sent;
    }

    private static async Task<int> DepositOverTcpAsync(Api api, ServerProcess server, CancellationToken stop)
    {
        var user = await api.SignUpAsync();
        var (connection, _) = await WireConnection.OpenAsync(server.TcpEndPoint, user.Token);
        int batches = 0;
        await using (connection)
        {
            while (!stop.IsCancellationRequested)
            {
                var results = await connection.RoundTripAsync((ulong)(1000 + batches), [.. Enumerable.Range(0, 64).Select(_ => Wire.Deposit(Api.NewKey(), user.WalletId, 5))]);
                Assert.All(results, r => Assert.Equal(ResultCode.Ok, r.Code));
                batches++;
            }
        }
        return batches;
    }

    private static async Task<List<List<(double Time, double Value)>>> QueryRangeAsync(Uri api, string promql, double from, double to)
    {
        using var http = new HttpClient { BaseAddress = api, Timeout = TimeSpan.FromSeconds(30) };
        string url = "api/v1/query_range?query=" + Uri.EscapeDataString(promql)
            + "&start=" + from.ToString("F3", CultureInfo.InvariantCulture) + "&end=" + to.ToString("F3", CultureInfo.InvariantCulture) + "&step=" + ScrapeInterval;
        var body = JsonNode.Parse(await http.GetStringAsync(url))!;
        Assert.Equal("success", body["status"]!.GetValue<string>());
        return [.. body["data"]!["result"]!.AsArray().Select(series => series!["values"]!.AsArray()
            .Select(v => (v![0]!.GetValue<double>(), double.Parse(v[1]!.GetValue<string>(), CultureInfo.InvariantCulture))).ToList())];
    }

    private static string Describe(List<double> values) =>
        values.Count == 0 ? "none" : string.Create(CultureInfo.InvariantCulture, $"{values.Count} points in [{values.Min():G4}, {values.Max():G4}]");

    private static double Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Directory.Packages.props"))) return dir.FullName;
        throw new InvalidOperationException("no repository root above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"\babsent(_over_time)?\(")]
    private static partial Regex AbsentCall();
}
