using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// docs/benchmarks.md ("Rewards and analytics workers: CPU per event"), run by <c>bench/rewards.sh</c>: where the time of a
/// reward goes when <c>rampay-worker rewards</c> works through a Kafka backlog, and what an event costs
/// <c>rampay-worker analytics</c>. A server (fraud off, one 1 % rule, its Kafka sink to a private broker with 4 partitions,
/// the in-server rewards consumer off) and both workers warm up on a first round of payments (a tenth of the count, at
/// least 2,000: the JIT's tiers are not the figure); both workers are then stopped (SIGSTOP), the server takes
/// <c>RAMPAY_REWARDS_BENCH_PAYMENTS</c> eligible payments over HTTP and its sinks and in-server consumers catch up; then
/// the rewards worker continues (SIGCONT) on that backlog, and the CPU counters (utime + stime of every thread of the
/// worker and of the server, from <c>/proc/PID/task/*/stat</c>) run until the newest reward id equals the payment count
/// and the server's sinks and consumers are idle again (so the server's figure includes everything a reward costs it:
/// the HTTP call, the engine, the journal, the sinks' and the in-server consumers' work on the reward's events); the
/// rate runs from the first reward of the backlog (the group's rejoin after SIGCONT left out). Then the analytics worker
/// continues on the payments' and rewards' events; its clock runs from its first to its last committed batch.
/// Figures are printed as <c>FIGURE name value</c> lines (per-thread groups as <c>FIGURE cpu.PROCESS.THREAD µs</c>);
/// it asserts only that every payment was rewarded exactly once.
/// </summary>
[Trait("Category", "Figures")]
public sealed partial class WorkerCostFigures(ITestOutputHelper output)
{
    [Fact]
    public async Task Rewards_and_analytics_workers_cpu_per_event_on_a_Kafka_backlog()
    {
        int count = (int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_REWARDS_BENCH_PAYMENTS"), out int n) ? n : 20_000) / 100 * 100;
        string topic = "rampay.rewards.cost";
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:4");
        int port = RewardsWorkerTests.FreePort();
        await using var server = await ServerProcess.StartAsync(["Fraud:Enabled=false", "Engine:IdempotencyMaxKeys=1048576", $"Http:Port={port}",
            $"Kafka:BootstrapServers={broker.Bootstrap}", $"Kafka:Topic={topic}", "Rewards:InServerConsumer=false"]);
        var (api, admin, payers, payee) = await FiguresSetup.StartAsync(server);
        var token = (await api.PostAsync("/v1/admin/service_tokens", admin, new { name = "bench" }, key: "")).Expect(HttpStatusCode.OK);
        string outDir = Path.Combine(Path.GetTempPath(), "rampay-analytics-bench-" + Guid.NewGuid().ToString("N"));
        int metricsPort = RewardsWorkerTests.FreePort();
        using var rewards = new WorkerProcess(["rewards", "--kafka", broker.Bootstrap, "--group", "bench-rewards", "--topic", topic, "--server", $"http://127.0.0.1:{port}"],
            new Dictionary<string, string> { ["RAMPAY_SERVICE_TOKEN"] = token.Str("access_token") });
        using var analytics = new WorkerProcess(["analytics", "--kafka", broker.Bootstrap, "--group", "bench-analytics", "--topic", topic, "--out", outDir,
            "--http-port", metricsPort.ToString(CultureInfo.InvariantCulture)]);
        using var analyticsHttp = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{metricsPort}"), Timeout = TimeSpan.FromSeconds(30) };
        try
        {
            if (!await WorkerProcess.AllJoinedAsync(TimeSpan.FromSeconds(90), rewards, analytics)) throw new TimeoutException("the workers never joined:\n" + rewards.Tail() + analytics.Tail());

            // 1. Warm-up: both workers (and the server's reward path) JIT-compiled and tiered up on a first round of payments.
            int warm = Math.Max(2_000, count / 10) / 100 * 100;
            await Pay(api, payers, payee, warm);
            await RewardedAsync(api, admin, warm, rewards);
            await Idle(server);
            long warmEvents = await SettledAsync(analyticsHttp, analytics);
            output.WriteLine($"warm-up: {warm} payments rewarded, analytics at {warmEvents} events");

            // 2. The backlog, with both workers stopped (SIGSTOP: the group drops them after its session timeout; they rejoin on SIGCONT).
            Signal(rewards.Id, "STOP");
            Signal(analytics.Id, "STOP");
            var clock = Stopwatch.StartNew();
            await Pay(api, payers, payee, count);
            output.WriteLine($"{count} payments acknowledged in {clock.Elapsed.TotalSeconds:0.00} s ({count / clock.Elapsed.TotalSeconds:0}/s), the workers stopped");
            await Idle(server);
            output.WriteLine($"FIGURE load.start {Load()}");

            // 3. The rewards worker on the backlog.
            var serverBefore = ThreadTicks(server.ProcessId);
            var workerBefore = ThreadTicks(rewards.Id);
            clock.Restart();
            Signal(rewards.Id, "CONT");
            double first = await RewardedAsync(api, admin, warm + count, rewards, warm, clock) ?? 0;
            double done = clock.Elapsed.TotalSeconds;
            var workerTicks = Minus(ThreadTicks(rewards.Id), workerBefore);
            await Idle(server);
            var serverTicks = Minus(ThreadTicks(server.ProcessId), serverBefore);
            var newest = (await api.GetAsync("/v1/admin/rewards?limit=1", admin)).Expect(HttpStatusCode.OK);
            Assert.Equal(warm + count, newest["data"]![0]!.Long("id")); // one reward per payment, none twice
            // The rate from the first reward on: the rejoin after SIGCONT (the group's session timeout) is not the worker's work.
            output.WriteLine($"FIGURE rewards.per_s {count / (done - first):0}");
            output.WriteLine($"FIGURE rewards.seconds {done - first:0.00}");
            Report("rewards.worker", workerTicks, count);
            Report("rewards.server", serverTicks, count);

            // 4. The analytics worker on what came since the warm-up: the payments' and the rewards' events.
            var analyticsBefore = ThreadTicks(analytics.Id);
            clock.Restart();
            Signal(analytics.Id, "CONT");
            long events = await SettledAsync(analyticsHttp, analytics, warmEvents, clock) - warmEvents;
            double last = _lastChange - _firstChange;
            var analyticsTicks = Minus(_ticksAtLastChange, analyticsBefore);
            output.WriteLine($"FIGURE analytics.events {events}");
            output.WriteLine($"FIGURE analytics.per_s {events / last:0}");
            output.WriteLine($"FIGURE analytics.seconds {last:0.00}");
            Report("analytics.worker", analyticsTicks, events);
        }
        finally
        {
            Signal(rewards.Id, "CONT");
            Signal(analytics.Id, "CONT");
            try { Directory.Delete(outDir, recursive: true); } catch (IOException) { }
        }
        output.WriteLine($"FIGURE load.end {Load()}");
    }


    internal const string ProcessKey = "(process)";
    private double _lastChange, _firstChange;
    private Dictionary<string, long> _ticksAtLastChange = [];

    /// <summary>Transfers of 1,000 from the payers in turn to the payee, in batches of 100, 50 batches in flight.</summary>
    internal static async Task Pay(Api api, List<TestUser> payers, TestUser payee, int count)
    {
        using var gate = new SemaphoreSlim(50);
        await Task.WhenAll(Enumerable.Range(0, count / 100).Select(async b =>
        {
            await gate.WaitAsync();
            try
            {
                var payer = payers[b % payers.Count];
                var batch = Enumerable.Range(0, 100).Select(_ => (object)new { from_account = payer.WalletId, to_account = payee.WalletId, amount = 1_000, currency = "USD" }).ToArray();
                (await api.PostAsync("/v1/payments/batch", payer.Token, new { payments = batch })).Expect(HttpStatusCode.OK);
            }
            finally
            {
                gate.Release();
            }
        }));
    }

    /// <summary>Waits until the newest reward's id is <paramref name="count"/> (every payment so far rewarded once).</summary>
    private static async Task<double?> RewardedAsync(Api api, string admin, int count, WorkerProcess worker, int from = int.MaxValue, Stopwatch? clock = null)
    {
        double? first = null;
        var deadline = DateTime.UtcNow.AddMinutes(8);
        while (true)
        {
            if (DateTime.UtcNow > deadline || worker.HasExited) throw new TimeoutException("the rewards worker did not catch up:\n" + worker.Tail());
            var newest = (await api.GetAsync("/v1/admin/rewards?limit=1", admin)).Expect(HttpStatusCode.OK);
            long id = newest["data"]!.AsArray().Count > 0 ? newest["data"]![0]!.Long("id") : 0;
            if (first is null && id > from) first = clock?.Elapsed.TotalSeconds;
            if (id >= count) return first;
            await Task.Delay(20);
        }
    }

    /// <summary>
    /// Waits until the analytics worker's committed events stop moving for 3 s (above <paramref name="above"/>); the
    /// time of the last move (by <paramref name="clock"/>) and the worker's CPU then are kept.
    /// </summary>
    private async Task<long> SettledAsync(HttpClient http, WorkerProcess worker, long above = 0, Stopwatch? clock = null)
    {
        clock ??= Stopwatch.StartNew();
        long events = -1;
        var deadline = DateTime.UtcNow.AddMinutes(8);
        while (true)
        {
            if (DateTime.UtcNow > deadline || worker.HasExited) throw new TimeoutException("the analytics worker did not finish:\n" + worker.Tail());
            long now = await WorkerEvents(http);
            if (now != events)
            {
                if (events >= 0 && events == above && now > above) _firstChange = clock.Elapsed.TotalSeconds;
                events = now;
                _lastChange = clock.Elapsed.TotalSeconds;
                _ticksAtLastChange = ThreadTicks(worker.Id);
            }
            else if (events > above && clock.Elapsed.TotalSeconds - _lastChange > 3) return events;
            await Task.Delay(20);
        }
    }

    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>CPU per item of each thread group (thread names without digits) and in all, in µs.</summary>
    private void Report(string name, Dictionary<string, long> ticks, long items)
    {
        double usPerTick = 1e6 / 100; // USER_HZ
        // The process's own counter is the total: it keeps the time of threads that ended in between (the thread pool
        // retires idle threads), which the per-thread figures lose; what they miss is shown as "ended threads".
        long total = ticks.GetValueOrDefault(ProcessKey);
        long jit = ticks.GetValueOrDefault(".NET Tiered Com");
        long threads = ticks.Where(x => x.Key != ProcessKey).Sum(x => Math.Max(0, x.Value));
        output.WriteLine($"FIGURE cpu.{name}.total_us {total * usPerTick / items:0.0}");
        // Without the tiered JIT's background thread: what a long run converges to (it still includes tier-0 compiles on the callers' threads).
        output.WriteLine($"FIGURE cpu.{name}.total_without_jit_us {(total - jit) * usPerTick / items:0.0}");
        foreach (var (thread, t) in ticks.Where(x => x.Key != ProcessKey).OrderByDescending(x => x.Value).Where(x => x.Value > 0))
            output.WriteLine($"FIGURE cpu.{name}.thread.{thread.Replace(' ', '_')} {t * usPerTick / items:0.0}");
        if (total > threads) output.WriteLine($"FIGURE cpu.{name}.thread.ended_threads {(total - threads) * usPerTick / items:0.0}");
    }

    /// <summary>utime + stime (clock ticks) of a process's threads, summed by thread name without its digits.</summary>
    internal static Dictionary<string, long> ThreadTicks(int pid)
    {
        var byName = new Dictionary<string, long>();
        try
        {
            foreach (string task in Directory.GetDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    string stat = File.ReadAllText(Path.Combine(task, "stat"));
                    int close = stat.LastIndexOf(')');
                    string comm = Digits().Replace(stat[(stat.IndexOf('(') + 1)..close], "#");
                    string[] f = stat[(close + 2)..].Split(' ');
                    long t = long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
                    byName[comm] = byName.GetValueOrDefault(comm) + t;
                }
                catch (IOException) { } // a thread that ended between the listing and the read
            }
        }
        catch (DirectoryNotFoundException) { }
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            byName[ProcessKey] = long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
        }
        catch (IOException) { }
        return byName;
    }

    internal static Dictionary<string, long> Minus(Dictionary<string, long> after, Dictionary<string, long> before) =>
        after.ToDictionary(x => x.Key, x => x.Value - before.GetValueOrDefault(x.Key));

    /// <summary>Waits until every sink and in-server consumer of the server has no lag left, read twice 300 ms apart.</summary>
    private static async Task Idle(ServerProcess server)
    {
        var deadline = DateTime.UtcNow.AddMinutes(5);
        int quiet = 0;
        while (quiet < 2)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the server's sinks did not catch up");
            string metrics = await server.Http.GetStringAsync("/metrics");
            bool idle = metrics.Split('\n').Where(l => l.StartsWith("rampay_sink_lag_records{", StringComparison.Ordinal) || l.StartsWith("rampay_consumer_lag_events{", StringComparison.Ordinal))
                .All(l => l[(l.LastIndexOf('}') + 2)..].Split(' ')[0] == "0");
            quiet = idle ? quiet + 1 : 0;
            await Task.Delay(300);
        }
    }

    private static async Task<long> WorkerEvents(HttpClient http)
    {
        try
        {
            foreach (string line in (await http.GetStringAsync("/metrics")).Split('\n'))
                if (line.StartsWith("rampay_worker_events_total", StringComparison.Ordinal))
                    return (long)double.Parse(line[(line.LastIndexOf('}') + 2)..].Split(' ')[0], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { } // not listening yet, or too slow to answer on a crowded machine: read again
        return 0;
    }

    private static string Load() => File.ReadAllText("/proc/loadavg").Split(' ')[0];

    [GeneratedRegex("[0-9]+")]
    private static partial Regex Digits();
}
