using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using RamPay.Core;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// <c>rampay-worker rewards</c> against Kafka (issue 13): real processes, the server's Kafka sink on a broker of the
/// test's own (librdkafka's mock cluster), two rewards workers in one consumer group, the in-server rewards consumer
/// off. Access tokens live 20 s, so the workers must renew theirs (rotating refresh tokens) while they run and after
/// the server was SIGKILLed and restarted. Numbered steps.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RewardsWorkerTests(ITestOutputHelper output)
{
    private const int TokenLifetimeSeconds = 20;

    [Fact]
    public async Task Two_rewards_workers_on_Kafka_reward_every_payment_once_across_a_worker_SIGKILL_a_server_SIGKILL_and_token_renewals()
    {
        // 1. A broker, a server on a fixed free port (a restart keeps the workers' --server URL), rewards funded, a 2 % rule.
        string topic = "rampay.rewards.worker";
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:4");
        int port = FreePort();
        await using var server = await ServerProcess.StartAsync($"Kafka:BootstrapServers={broker.Bootstrap}", $"Kafka:Topic={topic}", "Fraud:Enabled=false",
            "Rewards:InServerConsumer=false", $"Jwt:TokenLifetimeSeconds={TokenLifetimeSeconds}", $"Http:Port={port}");
        var api = new Api(server);
        string admin = await api.AdminTokenAsync();
        (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = 100_000_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        (await api.PostAsync("/v1/admin/reward_rules", admin, new { name = "two percent", percent_bps = 200, currency = "USD" })).Expect(HttpStatusCode.Created);
        // The in-server rewards consumer is off (RamPay:Rewards:InServerConsumer=false): only the workers pay rewards.
        string metrics = await server.Http.GetStringAsync("/metrics");
        Assert.DoesNotContain("rampay_consumer_lag_events{consumer=\"rewards\"", metrics);
        Assert.Contains("rampay_consumer_lag_events{consumer=\"analytics\"", metrics);
        var users = new List<TestUser>();
        for (int i = 0; i < 6; i++) users.Add(await api.SignUpAsync(deposit: 10_000_000));

        // 2. Two workers, each with a service token of its own (refresh tokens rotate: one per process) and a token file.
        string dir = Directory.CreateTempSubdirectory("rampay-rewards-workers-").FullName;
        try
        {
            WorkerProcess Start(string name, JsonNode token) => new(
                ["rewards", "--kafka", broker.Bootstrap, "--group", "rewarders", "--topic", topic, "--server", $"http://127.0.0.1:{port}", "--token-file", Path.Combine(dir, name + ".token")],
                new Dictionary<string, string> { ["RAMPAY_SERVICE_TOKEN"] = token.Str("access_token"), ["RAMPAY_SERVICE_REFRESH_TOKEN"] = token.Str("refresh_token") });
            api.ForgetAdminToken(); // tokens are short-lived here: a fresh one for each admin step
            admin = await api.AdminTokenAsync();
            var tokenA = (await api.PostAsync("/v1/admin/service_tokens", admin, new { name = "a" }, key: "")).Expect(HttpStatusCode.OK);
            var tokenB = (await api.PostAsync("/v1/admin/service_tokens", admin, new { name = "b" }, key: "")).Expect(HttpStatusCode.OK);
            Assert.Equal("service", tokenA.Str("role"));
            Assert.False(string.IsNullOrEmpty(tokenA.Str("refresh_token")));
            using var a = Start("a", tokenA);
            using var b = Start("b", tokenB);
            await WaitUntil(() => Task.FromResult(a.Joined && b.Joined), "both workers in the group", a, b);

            var rng = new Random(13);
            int round = 0;
            async Task<List<Task<ApiResponse>>> Pay()
            {
                // Tokens live 20 s: log in again before each round.
                api.ForgetAdminToken();
                users = [.. await Task.WhenAll(users.Select(async u => u with { Token = await api.LoginAsync(u.Email, u.Password) }))];
                round++;
                return [.. users.Select((payer, p) => api.PostAsync("/v1/payments/batch", payer.Token, new
                {
                    payments = Enumerable.Range(0, 20).Select(k => (object)new
                    {
                        from_account = payer.WalletId, to_account = users[(p + 1 + k % (users.Count - 1)) % users.Count].WalletId,
                        amount = rng.Next(100, 50_000), currency = "USD",
                    }).ToArray(),
                }))];
            }

            // 3. A round, all rewarded.
            foreach (var t in await Pay()) (await t).Expect(HttpStatusCode.OK);
            await AllRewarded(server, api, a, b, atLeast: 120);

            // 4. SIGKILL worker a while a round is in flight; b takes its partitions over after the session timeout.
            var inFlight = await Pay();
            a.Kill();
            foreach (var t in inFlight) (await t).Expect(HttpStatusCode.OK);
            await AllRewarded(server, api, a, b, atLeast: 240);

            // 5. b has renewed its token by now (more than 2/3 of 20 s have passed) and keeps its file current.
            await WaitUntil(() => Task.FromResult(b.Output.Contains("service token renewed", StringComparison.Ordinal)), "a renewal", a, b);
            Assert.NotEqual(tokenB.Str("refresh_token"), JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "b.token")))!.Str("refresh_token"));

            // 6. SIGKILL the server while a round is in flight; it stays down longer than a token lives; then again.
            var lost = await Pay();
            await Task.Delay(100);
            await server.KillAsync();
            foreach (var t in lost)
            {
                try { await t; } catch (Exception e) when (e is HttpRequestException or TaskCanceledException or InvalidOperationException) { }
            }
            await Task.Delay(TimeSpan.FromSeconds(TokenLifetimeSeconds + 2));
            await server.RestartAsync();
            api = new Api(server);
            // 7. Worker a again, with its first (long used) tokens in the environment: it starts from its token file, whose
            //    access token expired while it was down, renews on the server's 401 and takes partitions back.
            using var a2 = Start("a", tokenA);
            await WaitUntil(() => Task.FromResult(a2.Joined), "worker a back in the group", a2, b);
            foreach (var t in await Pay()) (await t).Expect(HttpStatusCode.OK);
            await AllRewarded(server, api, a2, b, atLeast: 360);
            Assert.DoesNotContain("cannot be renewed", a2.Output + b.Output, StringComparison.Ordinal);

            // 8. The ledger rebuilt offline balances, and every eligible payment has exactly one reward of the right amount.
            Assert.Equal(0, await server.StopAsync());
            var ledger = RewardsServerTests.LoadLedger(server.DataDirectory);
            int eligible = 0;
            for (long id = 1; id <= ledger.PaymentCount; id++)
            {
                var p = ledger.GetPayment(id);
                var rewards = ledger.RewardsOfPayment(id);
                if (p.Kind != PaymentKind.Transfer || p.Status != PaymentStatus.Posted) { Assert.Empty(rewards); continue; }
                eligible++;
                var reward = Assert.Single(rewards);
                Assert.Equal(RewardStatus.Issued, reward.Status);
                Assert.Equal(p.Captured * 200 / 10_000, reward.Amount);
            }
            Assert.Equal(eligible, ledger.RewardCount);
            Assert.True(eligible >= 360, $"{eligible} eligible payments");
            output.WriteLine($"{ledger.PaymentCount} payments, {eligible} eligible, each rewarded once; worker b:\n{b.Tail()}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Waits until the server's analytics count as many rewards as posted transfers (at least <paramref name="atLeast"/>),
    /// with the analytics consumer caught up with the event log, on two polls a second apart with the same counts. Equal
    /// counts alone are not enough: analytics behind the log can pass through a point where every transfer it has seen is
    /// rewarded while a later one (a payment of the round lost to the server's SIGKILL, journaled all the same) is not yet.
    /// </summary>
    private static async Task AllRewarded(ServerProcess server, Api api, WorkerProcess a, WorkerProcess b, int atLeast)
    {
        long transfers = 0, rewards = 0, settled = -1;
        double? lag = null;
        await WaitUntil(async () =>
        {
            api.ForgetAdminToken();
            var r = await api.GetAsync($"/v1/admin/analytics?interval=day&currency=USD&from={DateTimeOffset.UtcNow.AddDays(-1).ToUnixTimeSeconds()}", await api.AdminTokenAsync());
            if (r.Status != HttpStatusCode.OK) return false;
            var data = r.Body!["data"]!.AsArray();
            transfers = data.Sum(x => x!.Long("transfers_posted"));
            rewards = data.Sum(x => x!.Long("rewards"));
            lag = ConsumerCatchUpFigures.Lag(await server.Http.GetStringAsync("/metrics"), "analytics");
            bool equal = transfers >= atLeast && rewards == transfers && lag == 0;
            if (!equal) { settled = -1; return false; }
            if (settled == transfers) return true;
            settled = transfers;
            await Task.Delay(1_000);
            return false;
        }, () => $"every transfer rewarded ({rewards} rewards, {transfers} transfers, analytics lag {lag})", a, b);
    }

    private static Task WaitUntil(Func<Task<bool>> done, string what, WorkerProcess a, WorkerProcess b) => WaitUntil(done, () => what, a, b);

    private static async Task WaitUntil(Func<Task<bool>> done, Func<string> what, WorkerProcess a, WorkerProcess b)
    {
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!await done())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{what()} never happened.\nworker a:\n{a.Tail()}\nworker b:\n{b.Tail()}");
            await Task.Delay(200);
        }
    }

    internal static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
