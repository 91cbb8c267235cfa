using System.Diagnostics;
using System.Net;
using System.Text;
using RamPay.Analytics;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// The figures of docs/benchmarks.md ("Rewards and analytics"), as tests so that they cannot rot. They assert only what
/// must hold whatever the machine (every reward paid, every bucket there); the numbers go to the test output.
/// Run: <c>dotnet test tests/RamPay.Rewards.Tests -c Release --filter Category=Figures --logger "console;verbosity=detailed"</c>.
/// </summary>
[Trait("Category", "Figures")]
public sealed class RewardsFigures(ITestOutputHelper output)
{
    [Fact]
    public async Task Rewards_per_second_the_in_server_consumer_sustains_beside_the_payments_that_earn_them()
    {
        const int Batches = 100, PerBatch = 100; // the server takes batches of at most 100
        await using var server = await ServerProcess.StartAsync("Engine:IdempotencyMaxKeys=1048576");
        var (api, admin, payers, payee) = await FiguresSetup.StartAsync(server);

        // Payments as fast as clients send batches of 100; every one is eligible (different users, 1 % of 1,000 = 10).
        var clock = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, Batches).Select(async b =>
        {
            var payer = payers[b % payers.Count];
            var payments = Enumerable.Range(0, PerBatch).Select(_ => (object)new { from_account = payer.WalletId, to_account = payee.WalletId, amount = 1_000, currency = "USD" }).ToArray();
            (await api.PostAsync("/v1/payments/batch", payer.Token, new { payments })).Expect(HttpStatusCode.OK);
        }).ToList();
        await Task.WhenAll(tasks);
        double paymentsSeconds = clock.Elapsed.TotalSeconds;
        long declined = 0;
        var rewards = await RewardsServerTests.WaitFor(async () => (await api.GetAsync("/v1/admin/rewards?limit=1", admin)).Expect(HttpStatusCode.OK),
            n => n["data"]!.AsArray().Count > 0 && n["data"]![0]!.Long("id") >= Batches * PerBatch - Declined(server, ref declined), "every reward", seconds: 300);
        double rewardsSeconds = clock.Elapsed.TotalSeconds;
        long count = rewards["data"]![0]!.Long("id");
        output.WriteLine($"load average {File.ReadAllText("/proc/loadavg").Trim()}");
        output.WriteLine($"{Batches * PerBatch} payments acknowledged in {paymentsSeconds:0.00} s = {Batches * PerBatch / paymentsSeconds:0} payments/s");
        output.WriteLine($"{count} rewards paid, the last {rewardsSeconds:0.00} s after the first payment = {count / rewardsSeconds:0} rewards/s end to end; lag after the last payment {rewardsSeconds - paymentsSeconds:0.00} s");
    }

    /// <summary>Payments fraud screening declined or held earn nothing (the server scores by default): read from the metrics.</summary>
    private static long Declined(ServerProcess server, ref long cached)
    {
        string metrics = server.Http.GetStringAsync("/metrics").GetAwaiter().GetResult();
        long sum = 0;
        foreach (string line in metrics.Split('\n'))
            if (line.StartsWith("rampay_fraud_decisions_total{", StringComparison.Ordinal) && !line.Contains("allow", StringComparison.Ordinal))
                sum += (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        cached = sum;
        return cached;
    }

    [Fact]
    public void Analytics_query_time_for_thirty_days_at_minute_buckets()
    {
        // 30 days with a payment every minute, in two currencies: 86,400 minute buckets.
        var rollups = new AnalyticsRollups();
        long start = new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();
        const int Minutes = 30 * 24 * 60;
        var events = new List<EventRecord>();
        for (int m = 0; m < Minutes; m++)
        {
            foreach (string currency in (string[])["USD", "EUR"])
            {
                long at = start + m * 60_000L + 1_000;
                string time = DateTimeOffset.FromUnixTimeMilliseconds(at).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture);
                string json = $"{{\"type\":\"PaymentCreated\",\"payment\":{{\"id\":{m + 1},\"kind\":\"transfer\",\"status\":\"posted\",\"from_account\":2,\"to_account\":3,\"amount\":100,\"currency\":\"{currency}\",\"captured\":100,\"refunded\":0,\"created_at\":\"{time}\"}}}}";
                events.Add(new EventRecord(new EventPosition(events.Count + 1, 0, 0), "PaymentCreated", 1, at, 2, Encoding.UTF8.GetBytes(json)));
            }
        }
        // CPU time as well as wall time: on the shared machine a thread gets a fraction of a core, and the CPU seconds
        // the work took are what tells whether the consumer could keep up on a core of its own.
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var build = Stopwatch.StartNew();
        rollups.Apply(new EventBatch(events, EventBatch.LogSource));
        double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
        output.WriteLine($"{events.Count} events into the rollups in {build.Elapsed.TotalMilliseconds:0} ms = {events.Count / build.Elapsed.TotalSeconds:0} events/s; "
            + $"CPU {cpuSeconds * 1000:0} ms = {events.Count / cpuSeconds:0} events per CPU second");
        var times = new List<double>();
        int buckets = 0;
        for (int run = 0; run < 7; run++)
        {
            var t = Stopwatch.StartNew();
            buckets = rollups.Query(Interval.Minute, start, start + Minutes * 60_000L, 0).Count;
            times.Add(t.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        Assert.Equal(2 * Minutes, buckets);
        output.WriteLine($"load average {File.ReadAllText("/proc/loadavg").Trim()}");
        output.WriteLine($"query: 30 days at minute buckets, both currencies ({buckets} buckets): median {times[3]:0.0} ms (min {times[0]:0.0}, max {times[^1]:0.0}) over 7 runs");
    }
}
