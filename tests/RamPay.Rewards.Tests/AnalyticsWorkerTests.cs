using System.Net;
using RamPay.Analytics;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// <c>rampay-worker analytics</c> on a Kafka topic, SIGKILLed mid-stream: its rollups file counts every transfer exactly
/// once. The worker saves the file only when it flushes (before it commits the offsets of what the file holds, at most
/// every 500 ms), so a SIGKILL loses what was applied since the last save and the restarted worker reads it again from
/// the committed offsets; the positions saved in the file skip what it already holds.
/// </summary>
[Trait("Category", "Integration")]
public sealed class AnalyticsWorkerTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_analytics_worker_counts_every_transfer_once_across_a_SIGKILL()
    {
        string topic = "rampay.analytics.worker";
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:4");
        await using var server = await ServerProcess.StartAsync($"Kafka:BootstrapServers={broker.Bootstrap}", $"Kafka:Topic={topic}", "Fraud:Enabled=false");
        var api = new Api(server);
        var payers = new List<TestUser>();
        for (int i = 0; i < 4; i++) payers.Add(await api.SignUpAsync(deposit: 10_000_000));
        var payee = await api.SignUpAsync();
        string outDir = Path.Combine(Path.GetTempPath(), "rampay-analytics-worker-" + Guid.NewGuid().ToString("N"));
        string file = Path.Combine(outDir, "analytics.rollups");
        WorkerProcess Start() => new(["analytics", "--kafka", broker.Bootstrap, "--group", "analytics-test", "--topic", topic, "--out", outDir]);
        int made = 0;
        async Task Pay(int batches)
        {
            for (int b = 0; b < batches; b++)
            {
                var payer = payers[b % payers.Count];
                var batch = Enumerable.Range(0, 100).Select(i => (object)new { from_account = payer.WalletId, to_account = payee.WalletId, amount = 100 + i, currency = "USD" }).ToArray();
                (await api.PostAsync("/v1/payments/batch", payer.Token, new { payments = batch })).Expect(HttpStatusCode.OK);
                made += 100;
            }
        }
        try
        {
            // 1. A first worker, payments while it consumes; SIGKILL once its file holds some but not all of them.
            var first = Start();
            try
            {
                Assert.True(await WorkerProcess.AllJoinedAsync(TimeSpan.FromSeconds(90), first), first.Tail());
                await Pay(10);
                var deadline = DateTime.UtcNow.AddMinutes(3);
                while (Transfers(file) == 0)
                {
                    if (DateTime.UtcNow > deadline || first.HasExited) throw new TimeoutException("the analytics worker saved nothing:\n" + first.Tail());
                    await Task.Delay(20);
                }
                await Pay(10);
                first.Kill();
                output.WriteLine($"killed with {Transfers(file)} of {made} transfers in the file");
            }
            finally
            {
                first.Dispose();
            }

            // 2. More payments while no worker runs; a second worker on the same folder and group.
            await Pay(10);
            using var second = Start();
            Assert.True(await WorkerProcess.AllJoinedAsync(TimeSpan.FromSeconds(90), second), second.Tail());
            await Pay(10);
            var until = DateTime.UtcNow.AddMinutes(3);
            while (Transfers(file) != made)
            {
                Assert.True(Transfers(file) <= made, $"{Transfers(file)} transfers counted of {made}: one counted twice");
                if (DateTime.UtcNow > until || second.HasExited) throw new TimeoutException($"{Transfers(file)} of {made} transfers in the file:\n" + second.Tail());
                await Task.Delay(50);
            }
            await Task.Delay(1_500); // two flush intervals more: nothing may be counted again
            var day = Days(file);
            Assert.Equal(made, day.Sum(b => b.Values[(int)Measure.TransfersCreated]));
            Assert.Equal(made, day.Sum(b => b.Values[(int)Measure.TransfersPosted]));
            Assert.Equal(Enumerable.Range(0, 100).Sum(i => 100L + i) * (made / 100), day.Sum(b => b.Values[(int)Measure.TransfersCreatedAmount]));
        }
        finally
        {
            try { Directory.Delete(outDir, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Transfers created in the saved files (the snapshot, when there is one yet, and the log; 0 before the first save).</summary>
    private static long Transfers(string file) => Days(file).Sum(b => b.Values[(int)Measure.TransfersCreated]);

    /// <summary>The day buckets of the saved file, yesterday to tomorrow (Query walks the range bucket by bucket).</summary>
    private static List<(long StartMs, RamPay.Core.Currency Currency, long[] Values)> Days(string file)
    {
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        return AnalyticsStore.Load(file).Query(Interval.Day, now - 86_400_000, now + 86_400_000, 0);
    }
}
