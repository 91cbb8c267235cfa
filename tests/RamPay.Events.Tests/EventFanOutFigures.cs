using System.Diagnostics;
using RamPay.Analytics;
using RamPay.Rewards;
using RamPay.Sinks;
using RamPay.Webhooks;
using Xunit.Abstractions;

namespace RamPay.Events.Tests;

/// <summary>
/// docs/benchmarks.md ("The consumers' fan-out"): the CPU and the garbage of feeding the server's default consumers
/// (webhooks with no endpoint, analytics, rewards with no rule) from the event log, in this process, the old way (a
/// feeder per consumer, the log's in-memory tail of 16,384 events) against the fan-out (one read per batch, no tail),
/// in interleaved rounds. The log is written at about the server's events-on rate (batches of 100 commands every
/// 10 ms, about 20,000 events/s) while the consumers run, so the figures include the log's writer. CPU is the process's
/// (every thread), so it bends far less than a rate on a shared machine. Asserts only that every consumer saw every event.
/// Run: <c>dotnet test tests/RamPay.Events.Tests -c Release --filter FullyQualifiedName~EventFanOutFigures --logger "console;verbosity=detailed"</c>
/// (<c>RAMPAY_FANOUT_BENCH_COMMANDS</c>, default 20,000).
/// </summary>
[Trait("Category", "Figures")]
public sealed class EventFanOutFigures(ITestOutputHelper output)
{
    private sealed class NoRewardCommands : IRewardCommands
    {
        public Task<IReadOnlyList<RewardOutcome>> IssueAsync(IReadOnlyList<long> paymentIds, CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<RewardOutcome>>([]);
        public Task<IReadOnlyList<RewardOutcome>> ReverseAsync(IReadOnlyList<(long PaymentId, long RefundId)> refunds, CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<RewardOutcome>>([]);
        public Task<IReadOnlyList<RewardOutcome>> RetrySkippedAsync(IReadOnlyList<long> topUpIds, CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<RewardOutcome>>([]);
    }

    [Fact]
    public async Task Feeding_the_default_consumers_per_feeder_with_a_tail_and_through_the_fan_out()
    {
        int count = int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_FANOUT_BENCH_COMMANDS"), out int n) ? n : 20_000;
        var changes = LedgerChanges.Run(new CommandBuilder().Workload(seed: 21, wallets: 500, count: count));
        var batches = LedgerChanges.Batches(changes, 100);
        output.WriteLine($"{changes.Length} changes in {batches.Count} batches; load average {File.ReadAllText("/proc/loadavg").Trim()}");
        var results = new Dictionary<bool, List<(double UsPerEvent, double BytesPerEvent, int Gen0, int Gen1, int Gen2)>> { [false] = [], [true] = [] };
        for (int round = 0; round < 3; round++)
        {
            foreach (bool fanOut in new[] { false, true })
            {
                var r = await Run(batches, fanOut);
                results[fanOut].Add(r);
                output.WriteLine($"round {round + 1} {(fanOut ? "fan-out        " : "feeders + tail ")}: {r.UsPerEvent:0.00} µs CPU and {r.BytesPerEvent:0} bytes allocated per event; GCs gen0 {r.Gen0}, gen1 {r.Gen1}, gen2 {r.Gen2}");
            }
        }
        foreach (bool fanOut in new[] { false, true })
        {
            var l = results[fanOut];
            output.WriteLine($"median {(fanOut ? "fan-out        " : "feeders + tail ")}: {Median(l.Select(x => x.UsPerEvent)):0.00} µs CPU, {Median(l.Select(x => x.BytesPerEvent)):0} bytes per event");
        }
        output.WriteLine($"load average {File.ReadAllText("/proc/loadavg").Trim()}");
    }

    private static double Median(IEnumerable<double> xs)
    {
        var s = xs.Order().ToArray();
        return s[s.Length / 2];
    }

    private static async Task<(double UsPerEvent, double BytesPerEvent, int Gen0, int Gen1, int Gen2)> Run(List<(Change[] Changes, SinkCheckpoint Through)> batches, bool fanOut)
    {
        using var dir = new TempDir();
        using var log = new EventLog(new EventLogOptions { Directory = Path.Combine(dir.Path, "events"), TailEvents = fanOut ? 0 : 16_384, Retention = TimeSpan.FromDays(36_500) });
        using var webhooks = new WebhookStore(Path.Combine(dir.Path, "webhooks"));
        var analytics = new AnalyticsStore(Path.Combine(dir.Path, "analytics.rollups"));
        IEventConsumer[] consumers =
        [
            new WebhookConsumer(webhooks),
            new AnalyticsConsumer(analytics),
            new RewardsConsumer(new NoRewardCommands(), Path.Combine(dir.Path, "rewards.checkpoint")),
        ];
        using var stop = new CancellationTokenSource();
        Func<long> lag;
        Task run;
        if (fanOut)
        {
            var f = new EventFanOut(log, consumers);
            run = f.RunAsync(stop.Token);
            lag = () => f.Lanes.Sum(l => l.Lag() < 0 ? 1 : l.Lag());
        }
        else
        {
            var feeders = consumers.Select(c => new EventLogFeeder(log, c)).ToArray();
            run = Task.WhenAll(feeders.Select(f => Task.Run(() => f.RunAsync(stop.Token))));
            lag = () => feeders.Sum(f => f.Lag() < 0 ? 1 : f.Lag());
        }
        await Task.Delay(300); // the consumers have read their checkpoints and wait on the empty log
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        int g0 = GC.CollectionCount(0), g1 = GC.CollectionCount(1), g2 = GC.CollectionCount(2);
        // The writer at about the server's events-on rate, on a thread of its own (as the sinks' runner is).
        var writer = new Thread(() =>
        {
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < batches.Count; i++)
            {
                log.Append(batches[i].Changes, batches[i].Through);
                long due = (i + 1) * 10L;
                long wait = due - clock.ElapsedMilliseconds;
                if (wait > 0) Thread.Sleep((int)wait);
            }
        }) { Name = "fanout-bench-writer" };
        writer.Start();
        writer.Join();
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (lag() != 0 && DateTime.UtcNow < deadline) await Task.Delay(5);
        Assert.Equal(0, lag());
        double events = log.LastRow;
        var used = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        long bytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        var gcs = (GC.CollectionCount(0) - g0, GC.CollectionCount(1) - g1, GC.CollectionCount(2) - g2);
        stop.Cancel();
        await run;
        Assert.Equal(log.LastRow, analytics.Rollups.EventsApplied);
        return (used.TotalMicroseconds / events, bytes / events, gcs.Item1, gcs.Item2, gcs.Item3);
    }
}
