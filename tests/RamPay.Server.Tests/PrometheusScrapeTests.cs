using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using RamPay.Core;
using RamPay.Protocol;
using Xunit.Abstractions;

namespace RamPay.Server.Tests;

/// <summary>
/// <c>GET /metrics</c> as an operator's Prometheus sees it: today's series keep their names and types, every series
/// is in docs/operations.md, and Debian's real <c>prometheus</c>, scraping the real server, counts exactly the traffic
/// the test sent (queried through its HTTP API).
/// </summary>
public sealed class PrometheusScrapeTests(ITestOutputHelper output)
{
    /// <summary>The series (and types) /metrics carried before OpenTelemetry; dashboards use these names.</summary>
    private static readonly (string Name, string Type)[] TodaysSeries =
    [
        ("rampay_journal_sequence", "gauge"),
        ("rampay_ready", "gauge"),
        ("rampay_ingress_backpressure", "gauge"),
        ("rampay_sinks_follower_sequence", "gauge"),
        // With a sink configured (the PostgreSQL and Kafka server tests check these with their sink label):
        // rampay_sink_checkpoint_sequence, rampay_sink_lag_records, rampay_sink_lag_seconds, rampay_sink_connected,
        // rampay_sink_queued_batches (gauges), rampay_sink_changes_written_total, rampay_sink_failures_total (counters).
    ];

    private static readonly (string Name, string Type)[] NewSeries =
    [
        ("rampay_commands_applied_total", "counter"),
        ("rampay_ring_used_slots", "gauge"),
        ("rampay_ring_capacity_slots", "gauge"),
        ("rampay_writer_apply_seconds_total", "counter"),
        ("rampay_writer_batches_total", "counter"),
        ("rampay_writer_commands_total", "counter"),
        ("rampay_idempotency_keys", "gauge"),
        ("rampay_idempotency_capacity_keys", "gauge"),
        ("rampay_idempotency_evicted_early_total", "counter"),
        ("rampay_fraud_decisions_total", "counter"),
        // The key tiers (rules version 2; docs/storage.md). The deploy helper's alert fires on the first.
        ("rampay_idempotency_keys_evicted_early_total", "counter"),
        ("rampay_idempotency_cold_faults_total", "counter"),
        ("rampay_idempotency_cold_keys", "gauge"),
        ("rampay_idempotency_cold_disk_bytes", "gauge"),
        ("rampay_rules_version", "gauge"),
        ("rampay_journal_batch_records", "histogram"),
        ("rampay_journal_fsync_seconds", "histogram"),
        ("http_server_request_duration_seconds", "histogram"),
        ("dotnet_gc_collections_total", "counter"),
        ("dotnet_process_memory_working_set_bytes", "gauge"),
    ];

    [Fact]
    public async Task Metrics_keep_todays_names_and_types_and_every_series_is_in_operations_md()
    {
        await using var server = await ServerProcess.StartAsync(ServerFixture.TestSettings);
        var api = new Api(server);
        await api.SignUpAsync(deposit: 100); // an HTTP request and commands, so their series exist
        string text = await server.Http.GetStringAsync("/metrics");
        var types = Exposition.Types(text);
        foreach (var (name, type) in TodaysSeries.Concat(NewSeries))
        {
            Assert.True(types.TryGetValue(name, out string? actual), $"/metrics has no {name}:\n{text}");
            Assert.Equal(type, actual);
        }
        // The exporter writes an unlabelled series as name{} value, which Prometheus reads as name value.
        Assert.Contains(Exposition.Samples(text), s => s.Name == "rampay_ready" && s.Labels.Count == 0 && s.Value == 1);

        string operations = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "operations.md"));
        foreach (string name in types.Keys.Where(n => n.StartsWith("rampay_", StringComparison.Ordinal)))
            Assert.True(operations.Contains("`" + name + "`", StringComparison.Ordinal), $"docs/operations.md does not list {name}");
        foreach (var (name, _) in TodaysSeries.Concat(NewSeries))
            Assert.True(operations.Contains("`" + name, StringComparison.Ordinal), $"docs/operations.md does not list {name}");
    }

    [Fact]
    public async Task Prometheus_scraping_the_server_counts_exactly_the_traffic_sent()
    {
        // Fraud scoring on (the embedded model) with two rules, so that all three decisions occur: payments of 1000 or
        // more are held for review, and a sender's payments beyond 15 a day are declined.
        await using var server = await ServerProcess.StartAsync([.. ServerFixture.TestSettings.Where(s => !s.StartsWith("Fraud:", StringComparison.Ordinal)),
            "Fraud:Enabled=true", "Fraud:AmountThreshold=1000", "Fraud:MaxPaymentsPerDay=15"]);
        var api = new Api(server);
        await using var prometheus = await PrometheusProcess.StartAsync(server.HttpBaseAddress);
        await prometheus.WaitForAsync("up{job=\"rampay\"}", 1, "Prometheus's first scrape of the server");
        double depositsBefore = await prometheus.QueryAsync("sum(rampay_commands_applied_total{type=\"deposit\",result=\"ok\"})");

        // 1. Two users; Alice's wallet funded by one HTTP deposit.
        var alice = await api.SignUpAsync(deposit: 1_000_000);
        var bob = await api.SignUpAsync();

        // 2. N payments Alice → Bob over HTTP; fraud scoring posts, holds or declines each: tally what the client heard.
        const int N = 20;
        int posted = 0, held = 0, declined = 0;
        for (int i = 0; i < N; i++)
        {
            var r = await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = i % 5 == 4 ? 5_000 : 10 + i, currency = "USD", capture = true });
            if (r.Status == HttpStatusCode.Created)
            {
                string status = r.Body!.Str("status");
                if (status == "posted") posted++;
                else if (status == "held_for_review") held++;
                else Assert.Fail($"unexpected payment status {status}: {r.Raw}");
            }
            else
            {
                r.ExpectError(HttpStatusCode.UnprocessableEntity, "fraud_suspected");
                declined++;
            }
        }

        Assert.True(posted > 0 && held > 0 && declined > 0, $"posted {posted}, held {held}, declined {declined}: the rules should give each decision");

        // 3. M payments the ledger refuses (Bob has far less than that): 422 insufficient_funds, never scored.
        const int M = 5;
        for (int i = 0; i < M; i++)
            (await api.PostAsync("/v1/payments", bob.Token, new { from_account = bob.WalletId, to_account = alice.WalletId, amount = 900_000_000, currency = "USD", capture = true }))
                .ExpectError(HttpStatusCode.UnprocessableEntity, "insufficient_funds");

        // 4. K requests refused before the engine: a body that is not JSON is a 400 on the same route.
        const int K = 3;
        for (int i = 0; i < K; i++)
            Assert.Equal(HttpStatusCode.BadRequest, (await api.SendAsync(HttpMethod.Post, "/v1/payments", alice.Token, rawBody: "{not json", idempotencyKey: Api.NewKey())).Status);

        // 5. Over TCP: a Hello, F batches of D deposits each, a Ping.
        const int F = 4, D = 2;
        var (connection, _) = await WireConnection.OpenAsync(server.TcpEndPoint, alice.Token);
        await using (connection)
        {
            for (int f = 0; f < F; f++)
            {
                var results = await connection.RoundTripAsync((ulong)(100 + f), [.. Enumerable.Range(0, D).Select(_ => Wire.Deposit(Api.NewKey(), alice.WalletId, 7))]);
                Assert.All(results, r => Assert.Equal(ResultCode.Ok, r.Code));
            }
            await connection.SendPingAsync(200);
            Assert.Equal(FrameType.Pong, (await connection.ReceiveAsync()).Type);
        }

        // What Prometheus has now must be exactly that traffic (waiting for a scrape that saw all of it).
        int created = posted + held;
        await prometheus.WaitForAsync("sum(rampay_tcp_frames_sent_total{type=\"pong\"})", 1, "a scrape after the traffic");
        var expected = new (string Query, double Value)[]
        {
            ("sum(http_server_request_duration_seconds_count{http_route=\"/v1/payments\",http_request_method=\"POST\",http_response_status_code=\"201\"})", created),
            ("sum(http_server_request_duration_seconds_count{http_route=\"/v1/payments\",http_request_method=\"POST\",http_response_status_code=\"422\"})", M + declined),
            ("sum(http_server_request_duration_seconds_count{http_route=\"/v1/payments\",http_request_method=\"POST\",http_response_status_code=\"400\"})", K),
            ("sum(http_server_request_duration_seconds_bucket{http_route=\"/v1/payments\",le=\"+Inf\"})", N + M + K),
            ("sum(rampay_commands_applied_total{type=\"transfer\",result=\"ok\"})", created),
            ("sum(rampay_commands_applied_total{type=\"transfer\",result=\"fraud_suspected\"})", declined),
            ("sum(rampay_commands_applied_total{type=\"transfer\",result=\"insufficient_funds\"})", M),
            ("sum(rampay_commands_applied_total{type=\"transfer\"})", N + M),
            ("sum(rampay_commands_applied_total{type=\"deposit\",result=\"ok\"})", depositsBefore + 1 + F * D),
            ("sum(rampay_fraud_decisions_total{decision=\"allow\"})", posted),
            ("sum(rampay_fraud_decisions_total{decision=\"review\"})", held),
            ("sum(rampay_fraud_decisions_total{decision=\"decline\"})", declined),
            ("sum(rampay_tcp_frames_received_total{type=\"hello\"})", 1),
            ("sum(rampay_tcp_frames_received_total{type=\"command_batch\"})", F),
            ("sum(rampay_tcp_frames_received_total{type=\"ping\"})", 1),
            ("sum(rampay_tcp_commands_received_total)", F * D),
            ("sum(rampay_tcp_frames_sent_total{type=\"welcome\"})", 1),
            ("sum(rampay_tcp_frames_sent_total{type=\"result_batch\"})", F),
            ("rampay_ring_capacity_slots", 1 << 16),
        };
        var wrong = new List<string>();
        foreach (var (query, value) in expected)
        {
            double actual = await prometheus.QueryAsync(query);
            output.WriteLine($"{query} = {actual}");
            if (actual != value) wrong.Add($"{query} = {actual}, expected {value}");
        }
        Assert.True(wrong.Count == 0, $"posted {posted}, held {held}, declined {declined}:\n" + string.Join('\n', wrong));

        // Series whose exact value the test cannot know (ticks run every second) but whose bounds it can.
        double journaled = await prometheus.QueryAsync("rampay_journal_sequence");
        double batched = await prometheus.QueryAsync("sum(rampay_journal_batch_records_sum)");
        Assert.True(journaled >= N + M + 1 + F * D && batched <= journaled && batched >= journaled - 5, $"journal sequence {journaled}, records in batches {batched}");
        Assert.True(await prometheus.QueryAsync("sum(rampay_journal_fsync_seconds_count)") > 0);
        Assert.True(await prometheus.QueryAsync("histogram_quantile(0.99, sum by (le) (rampay_journal_fsync_seconds_bucket))") > 0);
        Assert.True(await prometheus.QueryAsync("rampay_writer_commands_total") >= N + M + 1 + F * D);
        Assert.True(await prometheus.QueryAsync("rampay_idempotency_keys") >= N + M + F * D);
        Assert.True(await prometheus.QueryAsync("sum(dotnet_gc_collections_total)") >= 0 && await prometheus.QueryAsync("dotnet_process_memory_working_set_bytes") > 0);
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Directory.Packages.props"))) return dir.FullName;
        throw new InvalidOperationException("no repository root above " + AppContext.BaseDirectory);
    }
}

/// <summary>Reads the Prometheus text exposition format: enough to check names, types, labels and values.</summary>
public static class Exposition
{
    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    /// <summary>Metric family name → type, from the <c># TYPE</c> lines.</summary>
    public static Dictionary<string, string> Types(string text) =>
        text.Split('\n').Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l.Split(' '))
            .ToDictionary(p => p[2], p => p[3], StringComparer.Ordinal);

    public static IEnumerable<Sample> Samples(string text)
    {
        foreach (string line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#') continue;
            int brace = line.IndexOf('{', StringComparison.Ordinal);
            int space = line.LastIndexOf(' ');
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            string name;
            if (brace >= 0 && brace < space)
            {
                name = line[..brace];
                int close = line.LastIndexOf('}');
                foreach (var pair in line[(brace + 1)..close].Split("\",", StringSplitOptions.RemoveEmptyEntries))
                {
                    int eq = pair.IndexOf('=', StringComparison.Ordinal);
                    labels[pair[..eq]] = pair[(eq + 2)..].TrimEnd('"');
                }
            }
            else
            {
                name = line[..space];
            }
            yield return new Sample(name, labels, double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture));
        }
    }
}

/// <summary>
/// Debian's <c>prometheus</c> on a free port with its own storage directory, scraping one target every 500 ms.
/// Disposing kills it (the process this object started, by its handle) and deletes the directory.
/// </summary>
public sealed class PrometheusProcess : IAsyncDisposable
{
    private const string Binary = "/usr/bin/prometheus";
    private readonly Process _process;
    private readonly string _directory;
    private readonly HttpClient _http;
    private readonly System.Text.StringBuilder _output = new();

    private PrometheusProcess(Process process, string directory, Uri api)
    {
        _process = process;
        _directory = directory;
        _http = new HttpClient { BaseAddress = api, Timeout = TimeSpan.FromSeconds(10) };
    }

    /// <summary>Prometheus's HTTP API (<c>api/v1/query_range</c>, ...).</summary>
    public Uri ApiAddress => _http.BaseAddress!;

    public static async Task<PrometheusProcess> StartAsync(Uri target)
    {
        Assert.True(File.Exists(Binary), $"{Binary} is missing: 'bash scripts/services.sh start' installs Debian's prometheus package");
        string dir = Directory.CreateTempSubdirectory("rampay-prometheus-").FullName;
        int port = FreePort();
        File.WriteAllText(Path.Combine(dir, "prometheus.yml"), $"""
            global:
              scrape_interval: 500ms
              scrape_timeout: 400ms
            scrape_configs:
              - job_name: rampay
                metrics_path: /metrics
                static_configs:
                  - targets: ['{target.Authority}']
            """);
        var info = new ProcessStartInfo(Binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { "--config.file=" + Path.Combine(dir, "prometheus.yml"), "--storage.tsdb.path=" + Path.Combine(dir, "data"),
                     $"--web.listen-address=127.0.0.1:{port}", "--log.level=warn" })
            info.ArgumentList.Add(arg);
        var process = Process.Start(info)!;
        var prometheus = new PrometheusProcess(process, dir, new Uri($"http://127.0.0.1:{port}/"));
        process.OutputDataReceived += (_, e) => prometheus.Log(e.Data);
        process.ErrorDataReceived += (_, e) => prometheus.Log(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                if ((await prometheus._http.GetAsync("-/ready")).IsSuccessStatusCode) return prometheus;
            }
            catch (HttpRequestException) { }
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                string output = prometheus.Output;
                await prometheus.DisposeAsync();
                throw new Xunit.Sdk.XunitException("prometheus did not become ready: " + output);
            }
            await Task.Delay(100);
        }
    }

    private void Log(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    private string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>The query's value (a scalar or a one-element vector); 0 when it selects nothing.</summary>
    public async Task<double> QueryAsync(string promql)
    {
        string json = await _http.GetStringAsync("api/v1/query?query=" + Uri.EscapeDataString(promql));
        var body = JsonNode.Parse(json)!;
        Assert.Equal("success", body["status"]!.GetValue<string>());
        var data = body["data"]!;
        JsonNode? value = data["resultType"]!.GetValue<string>() switch
        {
            "scalar" => data["result"],
            "vector" => data["result"]!.AsArray() switch
            {
                [] => null,
                [var one] => one!["value"],
                var many => throw new Xunit.Sdk.XunitException($"{promql} selects {many.Count} series: {json}"),
            },
            var other => throw new Xunit.Sdk.XunitException($"{promql} gives a {other}"),
        };
        return value is null ? 0 : double.Parse(value[1]!.GetValue<string>(), CultureInfo.InvariantCulture);
    }

    /// <summary>Polls until the query's value is at least <paramref name="value"/> (a scrape has seen it), at most 30 s.</summary>
    public async Task WaitForAsync(string promql, double value, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        double last;
        while ((last = await QueryAsync(promql)) < value)
        {
            if (DateTime.UtcNow > deadline) throw new Xunit.Sdk.XunitException($"waited 30 s for {what}: {promql} = {last}. Prometheus said:\n{Output}");
            await Task.Delay(200);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
            }
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
