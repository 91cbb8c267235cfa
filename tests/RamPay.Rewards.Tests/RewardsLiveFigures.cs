using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// docs/benchmarks.md ("Rewards worker live at 10,000 eligible payments/s"), run by <c>bench/rewards-live.sh</c>: does
/// <c>rampay-worker rewards</c> keep up while the payments arrive, on the same cores as the server and the load? A Release
/// server (fraud off, one rule of 10,000 bps so that every payment of 1..100 minor units earns a reward, its Kafka sink to
/// a private broker of <c>RAMPAY_LIVE_PARTITIONS</c> partitions, the in-server rewards consumer off), one rewards worker in
/// a group, and <c>rampay-load tcp --rate RAMPAY_LIVE_RATE</c> (default 10,000/s) for <c>RAMPAY_LIVE_WARMUP</c> (10 s,
/// not measured) then <c>RAMPAY_LIVE_SECONDS</c> (60 s). Every 0.5 s it samples the payments the server received over
/// TCP (<c>rampay_tcp_commands_received_total</c>) and the newest reward's id (<c>GET /v1/admin/rewards?limit=1</c>:
/// ids count rewards, issued or skipped). The lag is their difference, and in seconds the time since the payments count
/// reached today's rewards count (interpolated between samples). CPU of server, worker and load tool (utime + stime,
/// <c>/proc/PID/stat</c>) runs from the start of the measured phase until the backlog is drained. At the end: one
/// reward per acknowledged payment (newest id = count, every reward listed once with a distinct source payment, none
/// skipped), and the rewards account's paid_out moved by exactly the rewards' sum. Results: one <c>RESULT {json}</c>
/// line. <c>RAMPAY_LIVE_WORKER_ARGS</c>: more flags for the worker (a baseline, say <c>--round-events 8000</c>). Runs only
/// when <c>RAMPAY_REWARDS_LIVE=1</c> (it takes minutes and its own cores).
/// </summary>
[Trait("Category", "Figures")]
public sealed class RewardsLiveFigures(ITestOutputHelper output)
{
    private sealed record Sample(double T, long Payments, long Rewards);

    [SkippableFact]
    public async Task Rewards_worker_keeps_up_with_payments_arriving_at_a_fixed_rate()
    {
        Skip.IfNot(Environment.GetEnvironmentVariable("RAMPAY_REWARDS_LIVE") == "1", "RAMPAY_REWARDS_LIVE is not 1 (bench/rewards-live.sh sets it)");
        double rate = Env("RAMPAY_LIVE_RATE", 10_000), seconds = Env("RAMPAY_LIVE_SECONDS", 60), warmup = Env("RAMPAY_LIVE_WARMUP", 10);
        int partitions = (int)Env("RAMPAY_LIVE_PARTITIONS", 32), connections = (int)Env("RAMPAY_LIVE_CONNECTIONS", 4);
        string loadBefore = Load();

        string topic = "rampay.rewards.live";
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:{partitions}");
        int port = RewardsWorkerTests.FreePort();
        // No HTTP rate limit: the end check pages through every reward (7,000+ requests at 100 a page), and once the worker
        // keeps up the server answers them faster than the default 1,000 requests a second.
        await using var server = await ServerProcess.StartAsync(["Fraud:Enabled=false", $"Http:Port={port}", "RateLimit:RequestsPerSecond=0",
            $"Kafka:BootstrapServers={broker.Bootstrap}", $"Kafka:Topic={topic}", "Rewards:InServerConsumer=false"]);
        var api = new Api(server);
        string admin = await api.AdminTokenAsync();
        (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = 1_000_000_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        // 100 %: the load's payments are 1..100 minor units, and a cashback of 0 is not eligible; at 10,000 bps each earns its amount.
        (await api.PostAsync("/v1/admin/reward_rules", admin, new { name = "live", percent_bps = 10_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        var token = (await api.PostAsync("/v1/admin/service_tokens", admin, new { name = "live" }, key: "")).Expect(HttpStatusCode.OK);
        string[] workerArgs = (Environment.GetEnvironmentVariable("RAMPAY_LIVE_WORKER_ARGS") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        using var worker = new WorkerProcess(["rewards", "--kafka", broker.Bootstrap, "--group", "live-rewards", "--topic", topic, "--server", $"http://127.0.0.1:{port}", .. workerArgs],
            new Dictionary<string, string> { ["RAMPAY_SERVICE_TOKEN"] = token.Str("access_token") });
        if (!await WorkerProcess.AllJoinedAsync(TimeSpan.FromSeconds(90), worker)) throw new TimeoutException("the worker never joined:\n" + worker.Tail());
        long paidOutBefore = await PaidOut(api, admin);

        string json = Path.Combine(Path.GetTempPath(), $"rampay-live-{Guid.NewGuid():N}.json");
        var clock = Stopwatch.StartNew();
        using var load = StartLoad(server, rate, seconds, warmup, connections, json, clock);
        var samples = new List<Sample>();
        double? measureStart = null;
        Dictionary<string, long>? serverAt0 = null, workerAt0 = null, loadAt0 = null, loadAtEnd = null;
        // Sample until the load has ended and every payment it made is rewarded.
        long acknowledged = -1;
        double? driveEnd = null, drained = null;
        var deadline = DateTime.UtcNow.AddSeconds(warmup + seconds + 300);
        while (drained is null)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not drained: {Describe(samples)}\n{worker.Tail()}");
            if (worker.HasExited) throw new InvalidOperationException("the worker exited:\n" + worker.Tail());
            // The mock broker keeps only the newest part of each partition: a worker further behind than that is reset past
            // events it never read, and those payments are never rewarded. The run is void then, not slow: say so at once.
            if (worker.Output.Contains("Offset out of range", StringComparison.Ordinal))
                throw new InvalidOperationException($"the worker fell further behind than the mock broker keeps (events dropped, offsets reset): {Describe(samples)}; fewer payments per partition (more RAMPAY_LIVE_PARTITIONS, a shorter run) or a lower rate");
            double t = clock.Elapsed.TotalSeconds;
            if (measureStart is null && load.SetUpAt is { } setUp && t >= setUp + warmup)
            {
                measureStart = t;
                serverAt0 = WorkerCostFigures.ThreadTicks(server.ProcessId);
                workerAt0 = WorkerCostFigures.ThreadTicks(worker.Id);
                loadAt0 = WorkerCostFigures.ThreadTicks(load.Id);
            }
            if (measureStart is { } m0 && driveEnd is null && t >= m0 + seconds) driveEnd = t; // the load stops sending now (its own clock, within a sample)
            // The load tool's CPU: its last reading while it lives (it exits after its own short self-check).
            if (measureStart is not null && !load.HasExited && WorkerCostFigures.ThreadTicks(load.Id) is { Count: > 0 } loadTicks) loadAtEnd = loadTicks;
            var sample = new Sample(t, await TcpPayments(server), await NewestReward(api, admin));
            samples.Add(sample);
            if (acknowledged < 0 && load.HasExited)
            {
                if (load.ExitCode is not (0 or 1)) throw new InvalidOperationException($"rampay-load failed (exit {load.ExitCode}):\n{load.Output}");
                acknowledged = JsonNode.Parse(await File.ReadAllTextAsync(json))!.Long("payments_acknowledged");
            }
            if (acknowledged >= 0 && sample.Rewards >= acknowledged) drained = clock.Elapsed.TotalSeconds;
            else await Task.Delay(TimeSpan.FromSeconds(Math.Max(0, t + 0.5 - clock.Elapsed.TotalSeconds)));
        }
        var serverCpu = WorkerCostFigures.Minus(WorkerCostFigures.ThreadTicks(server.ProcessId), serverAt0!);
        var workerCpu = WorkerCostFigures.Minus(WorkerCostFigures.ThreadTicks(worker.Id), workerAt0!);
        var loadCpu = WorkerCostFigures.Minus(loadAtEnd ?? [], loadAt0!);
        string loadAfter = Load();
        var summary = JsonNode.Parse(await File.ReadAllTextAsync(json))!;
        File.Delete(json);

        // The checks: one reward per acknowledged payment, none skipped, each for a different payment, paid exactly.
        Assert.Equal(0, summary.Long("payments_unknown")); // a payment whose fate the load does not know would make the count uncertain
        var (count, distinct, skipped, sum) = await AllRewards(api, admin);
        long paidOut = await PaidOut(api, admin) - paidOutBefore;
        output.WriteLine($"checks: {acknowledged} payments acknowledged, {count} rewards ({distinct} distinct source payments, {skipped} skipped), sum {sum}, paid_out moved {paidOut}");
        Assert.Equal(acknowledged, count);
        Assert.Equal(count, distinct);
        Assert.Equal(0, skipped);
        Assert.Equal(sum, paidOut);

        // The figures, over the measured phase [measureStart, driveEnd]; lag samples inside it.
        double m = measureStart!.Value, e = driveEnd!.Value;
        var steady = samples.Where(s => s.T >= m && s.T <= e).ToList();
        var lagCount = steady.Select(s => (double)Math.Max(0, s.Payments - s.Rewards)).Order().ToList();
        var lagSeconds = steady.Select(s => LagSeconds(samples, s)).Order().ToList();
        Sample first = steady[0], last = steady[^1];
        Sample atEnd = samples.First(s => s.T >= e);
        long measuredPayments = summary.Long("measured_payments");
        double span = drained.Value - m;
        double Us(Dictionary<string, long> ticks) => Math.Round(ticks.GetValueOrDefault(WorkerCostFigures.ProcessKey) * 1e4 / measuredPayments, 1);
        double Cores(Dictionary<string, long> ticks, double over) => Math.Round(ticks.GetValueOrDefault(WorkerCostFigures.ProcessKey) / 100.0 / over, 2);
        var result = new Dictionary<string, object>
        {
            ["rate_asked"] = rate,
            ["seconds"] = seconds,
            ["partitions"] = partitions,
            ["worker_args"] = string.Join(' ', workerArgs),
            ["payments_per_s"] = summary["payments_per_second"]!.GetValue<double>(),
            ["payments_acknowledged"] = acknowledged,
            ["rewards_per_s"] = Math.Round((last.Rewards - first.Rewards) / (last.T - first.T), 1),
            ["payments_received_per_s"] = Math.Round((last.Payments - first.Payments) / (last.T - first.T), 1),
            ["lag_p50"] = Percentile(lagCount, 50), ["lag_p99"] = Percentile(lagCount, 99), ["lag_max"] = lagCount[^1],
            ["lag_s_p50"] = Math.Round(Percentile(lagSeconds, 50), 2), ["lag_s_p99"] = Math.Round(Percentile(lagSeconds, 99), 2), ["lag_s_max"] = Math.Round(lagSeconds[^1], 2),
            ["backlog_at_end"] = Math.Max(0, atEnd.Payments - atEnd.Rewards),
            ["drain_s"] = Math.Round(drained.Value - e, 2),
            ["cpu_us_per_payment_server"] = Us(serverCpu), ["cpu_us_per_payment_worker"] = Us(workerCpu), ["cpu_us_per_payment_load"] = Us(loadCpu),
            ["cores_server"] = Cores(serverCpu, span), ["cores_worker"] = Cores(workerCpu, span), ["cores_load"] = Cores(loadCpu, e - m),
            ["load_before"] = double.Parse(loadBefore, CultureInfo.InvariantCulture), ["load_after"] = double.Parse(loadAfter, CultureInfo.InvariantCulture),
            ["rewards"] = count, ["rewards_sum"] = sum, ["checks"] = "passed",
        };
        foreach (var (name, ticks) in new[] { ("server", serverCpu), ("worker", workerCpu) })
            foreach (var (thread, t) in ticks.Where(x => x.Key != WorkerCostFigures.ProcessKey && x.Value > 0).OrderByDescending(x => x.Value).Take(12))
                output.WriteLine($"cpu.{name}.{thread.Replace(' ', '_')} {t * 1e4 / measuredPayments:0.0} µs/payment");
        output.WriteLine("samples (t, payments, rewards): " + string.Join(" ", samples.Select(s => F($"{s.T:0.0}:{s.Payments}:{s.Rewards}"))));
        output.WriteLine("RESULT " + JsonSerializer.Serialize(result));
    }

    /// <summary>Seconds since the payments count first reached this sample's rewards count (interpolated between samples).</summary>
    private static double LagSeconds(List<Sample> samples, Sample now)
    {
        for (int i = 0; i < samples.Count; i++)
        {
            if (samples[i].Payments < now.Rewards) continue;
            if (i == 0) return now.T - samples[0].T;
            Sample a = samples[i - 1], b = samples[i];
            double reached = a.T + (b.T - a.T) * (now.Rewards - a.Payments) / Math.Max(1, b.Payments - a.Payments);
            return Math.Max(0, now.T - reached);
        }
        return 0;
    }

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static string Describe(List<Sample> samples) => samples.Count == 0 ? "no samples" : F($"last sample {samples[^1]}");

    /// <summary>Every reward, paged newest first: how many, how many distinct source payments, how many skipped, the sum paid.</summary>
    private static async Task<(long Count, long Distinct, long Skipped, long Sum)> AllRewards(Api api, string admin)
    {
        var sources = new HashSet<long>();
        long count = 0, skipped = 0, sum = 0;
        string path = "/v1/admin/rewards?limit=100";
        while (true)
        {
            var page = (await api.GetAsync(path, admin)).Expect(HttpStatusCode.OK);
            foreach (var node in page["data"]!.AsArray())
            {
                var r = node!;
                count++;
                sources.Add(r.Long("source_payment_id"));
                if (r["status"]!.GetValue<string>() == "skipped") skipped++;
                sum += r.Long("paid_out");
            }
            if (page["next_after"] is not { } next) return (count, sources.Count, skipped, sum);
            path = F($"/v1/admin/rewards?limit=100&after={next.GetValue<long>()}");
        }
    }

    private static async Task<long> PaidOut(Api api, string admin)
    {
        var funding = (await api.GetAsync("/v1/admin/rewards/funding", admin)).Expect(HttpStatusCode.OK);
        return funding["data"]!.AsArray().Single(a => a!["currency"]!.GetValue<string>() == "USD")!.Long("paid_out");
    }

    private static async Task<long> NewestReward(Api api, string admin)
    {
        var newest = (await api.GetAsync("/v1/admin/rewards?limit=1", admin)).Expect(HttpStatusCode.OK);
        return newest["data"]!.AsArray().Count > 0 ? newest["data"]![0]!.Long("id") : 0;
    }

    private static async Task<long> TcpPayments(ServerProcess server)
    {
        long total = 0;
        foreach (string line in (await server.Http.GetStringAsync("/metrics")).Split('\n'))
            if (line.StartsWith("rampay_tcp_commands_received_total", StringComparison.Ordinal))
                total += (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        return total;
    }

    private LoadProcess StartLoad(ServerProcess server, double rate, double seconds, double warmup, int connections, string json, Stopwatch clock)
    {
        string dll = Environment.GetEnvironmentVariable("RAMPAY_LOAD_DLL") is { Length: > 0 } configured ? configured : FindLoadDll();
        string[] args = [dll, "tcp", "--http", server.HttpBaseAddress.ToString(), "--tcp", $"{server.TcpEndPoint.Address}:{server.TcpEndPoint.Port}",
            "--rate", F($"{rate}"), "--duration", F($"{seconds}"), "--warmup", F($"{warmup}"), "--connections", F($"{connections}"), "--json", json, "--sample", "0"];
        output.WriteLine("$ dotnet " + string.Join(' ', args));
        return new LoadProcess(args, clock);
    }

    /// <summary>bench/RamPay.Load's Release build, above the test folder.</summary>
    private static string FindLoadDll()
    {
        for (string? dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
        {
            string candidate = Path.Combine(dir, "bench", "RamPay.Load", "bin", "Release", "net10.0", "rampay-load.dll");
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException("rampay-load.dll not found: build bench/RamPay.Load -c Release or set RAMPAY_LOAD_DLL");
    }

    /// <summary><c>dotnet rampay-load.dll ...</c>: its output kept, and the time (on the caller's clock) it printed its "setup:" line (the warm-up begins then).</summary>
    private sealed class LoadProcess : IDisposable
    {
        private readonly Process _process;
        private readonly System.Text.StringBuilder _output = new();
        private readonly Stopwatch _clock;
        private double? _setUpAt;

        public LoadProcess(string[] args, Stopwatch clock)
        {
            _clock = clock;
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in args) start.ArgumentList.Add(a);
            _process = Process.Start(start) ?? throw new InvalidOperationException("rampay-load did not start");
            _process.OutputDataReceived += (_, e) => Add(e.Data);
            _process.ErrorDataReceived += (_, e) => Add(e.Data);
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        private void Add(string? line)
        {
            if (line is null) return;
            lock (_output)
            {
                _output.AppendLine(line);
                if (_setUpAt is null && line.StartsWith("setup:", StringComparison.Ordinal)) _setUpAt = _clock.Elapsed.TotalSeconds;
            }
        }

        /// <summary>When the "setup:" line came, in seconds on the caller's clock.</summary>
        public double? SetUpAt { get { lock (_output) return _setUpAt; } }
        public int Id => _process.Id;
        public bool HasExited => _process.HasExited;
        public int ExitCode => _process.ExitCode;
        public string Output { get { lock (_output) return _output.ToString(); } }

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill();
            _process.Dispose();
        }
    }

    private static double Env(string name, double fallback) =>
        double.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : fallback;

    private static string Load() => File.ReadAllText("/proc/loadavg").Split(' ')[0];

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
