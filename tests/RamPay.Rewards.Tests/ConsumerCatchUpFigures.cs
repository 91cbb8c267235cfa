using System.Diagnostics;
using System.Globalization;
using System.Net;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// docs/benchmarks.md ("Rewards and analytics consumers catching up"): how fast the in-server rewards and analytics
/// consumers work through a backlog, apart from how fast HTTP clients can make payments. A server with the rewards
/// consumer off takes the payments (fraud screening off, so every one is eligible under a 1 % rule) and stops; the same
/// data directory is started again with the consumer on and without the analytics rollups file, so both consumers start
/// from the beginning of the event log; the clock runs from that start until each consumer's lag
/// (<c>rampay_consumer_lag_events</c>) is 0 and the newest reward's id equals the payment count.
/// It asserts only that every payment was rewarded once; the figures go to the output.
/// Run: <c>dotnet test tests/RamPay.Rewards.Tests -c Release --filter FullyQualifiedName~ConsumerCatchUpFigures --logger "console;verbosity=detailed"</c>
/// (<c>RAMPAY_REWARDS_BENCH_PAYMENTS</c>, default 20,000, in batches of 100).
/// </summary>
[Trait("Category", "Figures")]
public sealed class ConsumerCatchUpFigures(ITestOutputHelper output)
{
    [Fact]
    public async Task Rewards_and_analytics_consumers_catch_up_on_a_backlog()
    {
        int count = (int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_REWARDS_BENCH_PAYMENTS"), out int n) ? n : 20_000) / 100 * 100;
        string[] common = ["Fraud:Enabled=false", "Engine:IdempotencyMaxKeys=1048576"];
        await using var first = await ServerProcess.StartAsync([.. common, "Rewards:InServerConsumer=false"]);
        var (api, admin, payers, payee) = await FiguresSetup.StartAsync(first);
        var clock = Stopwatch.StartNew();
        await WorkerCostFigures.Pay(api, payers, payee, count);
        output.WriteLine($"{count} payments acknowledged in {clock.Elapsed.TotalSeconds:0.00} s ({count / clock.Elapsed.TotalSeconds:0}/s), the rewards consumer off");
        await first.StopAsync();
        foreach (string f in Directory.GetFiles(Path.Combine(first.DataDirectory, "consumers"), "analytics.rollups*")) File.Delete(f); // the snapshot and its log

        await using var second = ServerProcess.OnDirectory(first.DataDirectory, null, [.. common]);
        output.WriteLine($"load average before {File.ReadAllText("/proc/loadavg").Trim()}");
        clock.Restart();
        await second.LaunchAsync();
        double started = clock.Elapsed.TotalSeconds;
        double? rewardsDone = null, analyticsDone = null;
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (rewardsDone is null || analyticsDone is null)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the consumers did not catch up: rewards {rewardsDone}, analytics {analyticsDone}\n{second.Output}");
            string metrics = await second.Http.GetStringAsync("/metrics");
            double now = clock.Elapsed.TotalSeconds;
            if (analyticsDone is null && Lag(metrics, "analytics") == 0) analyticsDone = now;
            if (rewardsDone is null && Lag(metrics, "rewards") == 0)
            {
                var newest = (await new Api(second).GetAsync("/v1/admin/rewards?limit=1", await new Api(second).AdminTokenAsync())).Expect(HttpStatusCode.OK);
                if (newest["data"]!.AsArray().Count > 0 && newest["data"]![0]!.Long("id") >= count) rewardsDone = clock.Elapsed.TotalSeconds;
            }
            await Task.Delay(50);
        }
        var api2 = new Api(second);
        var rewards = (await api2.GetAsync("/v1/admin/rewards?limit=1", await api2.AdminTokenAsync())).Expect(HttpStatusCode.OK);
        Assert.Equal(count, rewards["data"]![0]!.Long("id")); // one reward per payment, none twice
        output.WriteLine($"load average after {File.ReadAllText("/proc/loadavg").Trim()}");
        output.WriteLine($"server ready {started:0.00} s after launch");
        output.WriteLine($"rewards: {count} rewards {rewardsDone:0.00} s after launch = {count / (rewardsDone!.Value - started):0} payments/s after ready");
        output.WriteLine($"analytics: caught up {analyticsDone:0.00} s after launch = {count / (analyticsDone!.Value - started):0} payments/s after ready (with the rewards' events too)");
    }

    /// <summary>rampay_consumer_lag_events of one consumer in Prometheus text (whatever other labels the exporter adds), or null.</summary>
    internal static double? Lag(string metrics, string consumer)
    {
        foreach (string line in metrics.Split('\n'))
            if (line.StartsWith("rampay_consumer_lag_events{", StringComparison.Ordinal) && line.Contains($"consumer=\"{consumer}\"", StringComparison.Ordinal))
                return double.Parse(line[(line.LastIndexOf('}') + 2)..].Split(' ')[0], CultureInfo.InvariantCulture);
        return null;
    }
}
