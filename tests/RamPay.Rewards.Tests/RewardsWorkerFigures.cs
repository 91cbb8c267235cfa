using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// docs/benchmarks.md ("Rewards through the Kafka worker"): rewards/s end to end, the in-server consumer and
/// <c>rampay-worker rewards</c> on Kafka, in the same run on the same machine, with the same payments (fraud screening
/// off, every payment eligible). It asserts only that every payment was rewarded; the figures go to the output.
/// Run: <c>dotnet test tests/RamPay.Rewards.Tests -c Release --filter FullyQualifiedName~RewardsWorkerFigures --logger "console;verbosity=detailed"</c>
/// (<c>RAMPAY_REWARDS_BENCH_PAYMENTS</c>, default 5,000, in batches of 100).
/// </summary>
[Trait("Category", "Figures")]
public sealed class RewardsWorkerFigures(ITestOutputHelper output)
{
    [Fact]
    public async Task Rewards_per_second_in_the_server_and_through_the_Kafka_worker_in_the_same_run()
    {
        int payments = int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_REWARDS_BENCH_PAYMENTS"), out int n) ? n : 5_000;
        output.WriteLine($"load average at start {File.ReadAllText("/proc/loadavg").Trim()}");
        // Interleaved: worker, in-server, worker, in-server.
        for (int run = 0; run < 2; run++)
        {
            output.WriteLine(await Measure(payments, worker: true));
            output.WriteLine(await Measure(payments, worker: false));
        }
        output.WriteLine($"load average at end {File.ReadAllText("/proc/loadavg").Trim()}");
    }

    private static async Task<string> Measure(int count, bool worker)
    {
        string topic = "rampay.rewards.bench";
        await using var broker = worker ? await PrivateKafkaBroker.StartAsync($"{topic}:4") : null;
        int port = FreePort();
        string[] settings = worker
            ? ["Fraud:Enabled=false", "Engine:IdempotencyMaxKeys=1048576", $"Http:Port={port}", $"Kafka:BootstrapServers={broker!.Bootstrap}", $"Kafka:Topic={topic}", "Rewards:InServerConsumer=false"]
            : ["Fraud:Enabled=false", "Engine:IdempotencyMaxKeys=1048576", $"Http:Port={port}"];
        await using var server = await ServerProcess.StartAsync(settings);
        var (api, admin, payers, payee) = await FiguresSetup.StartAsync(server);
        WorkerProcess? process = null;
        try
        {
            if (worker)
            {
                var token = (await api.PostAsync("/v1/admin/service_tokens", admin, new { name = "bench" }, key: "")).Expect(HttpStatusCode.OK);
                process = new WorkerProcess(["rewards", "--kafka", broker!.Bootstrap, "--group", "bench", "--topic", topic, "--server", $"http://127.0.0.1:{port}"],
                    new Dictionary<string, string> { ["RAMPAY_SERVICE_TOKEN"] = token.Str("access_token") });
                var joined = DateTime.UtcNow.AddSeconds(90);
                while (!process.Output.Contains("assigned", StringComparison.Ordinal))
                {
                    if (DateTime.UtcNow > joined) throw new TimeoutException("the worker never joined:\n" + process.Output);
                    await Task.Delay(100);
                }
            }
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, count / 100).Select(async b =>
            {
                var payer = payers[b % payers.Count];
                var batch = Enumerable.Range(0, 100).Select(_ => (object)new { from_account = payer.WalletId, to_account = payee.WalletId, amount = 1_000, currency = "USD" }).ToArray();
                (await api.PostAsync("/v1/payments/batch", payer.Token, new { payments = batch })).Expect(HttpStatusCode.OK);
            }));
            double paid = clock.Elapsed.TotalSeconds;
            await RewardsServerTests.WaitFor(async () => (await api.GetAsync("/v1/admin/rewards?limit=1", admin)).Expect(HttpStatusCode.OK),
                r => r["data"]!.AsArray().Count > 0 && r["data"]![0]!.Long("id") >= count / 100 * 100, "every reward", seconds: 300);
            double rewarded = clock.Elapsed.TotalSeconds;
            return $"{(worker ? "worker on Kafka" : "in-server     ")}: {count / 100 * 100} payments acknowledged in {paid:0.00} s ({count / paid:0}/s); "
                + $"every reward paid {rewarded:0.00} s after the first payment = {count / rewarded:0} rewards/s end to end, lag after the last payment {rewarded - paid:0.00} s";
        }
        finally
        {
            process?.Dispose();
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
