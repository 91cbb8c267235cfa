using System.Net;
using System.Text.Json.Nodes;
using RamPay.Core;

namespace RamPay.Server.Tests;

/// <summary>
/// The server under rules version 2 and later (4 is its default) keeps every idempotency key for its window, older ones on disk: proven
/// on the cold path through the real server (TCP to drive the keys, HTTP for the retries), with a hot budget far below
/// what the test drives, and a counter saying the answer came from the cold tier.
/// </summary>
public class ColdKeyTierServerTests
{
    // The smallest hot tier the server accepts: generations of one ring (1,024 commands), three of them in memory.
    private const int HotMaxKeys = 3 * 1024;
    private static readonly string[] SmallHotTier =
    [
        .. ServerFixture.TestSettings, "Engine:RingSize=1024", "Tcp:MaxCommandsPerBatch=1000", "Engine:ColdTier:GenerationCommands=1024",
        $"Engine:ColdTier:HotMaxKeys={HotMaxKeys}", "Engine:ColdTier:SegmentKeys=65536",
    ];

    private static object Payment(TestUser from, long to, long amount) => new { from_account = from.WalletId, to_account = to, amount, currency = "USD" };

    /// <summary>Sends <paramref name="payments"/> keyed transfers of 1 from <paramref name="from"/> over TCP, in batches of 1,000.</summary>
    private static async Task DriveAsync(ServerProcess server, TestUser from, long to, int payments)
    {
        var (connection, _) = await WireConnection.OpenAsync(server.TcpEndPoint, from.Token);
        await using var _ = connection;
        string prefix = Api.NewKey();
        for (int b = 0; b < payments / 1_000; b++)
        {
            var batch = Enumerable.Range(0, 1_000).Select(i => Wire.Transfer($"{prefix}-{b}-{i}", from.WalletId, to, 1)).ToArray();
            var results = await connection.RoundTripAsync((ulong)b + 1, batch);
            if (results.FirstOrDefault(r => r.Code != ResultCode.Ok) is { Code: not ResultCode.Ok } bad) Assert.Fail($"batch {b}: {Wire.Describe(bad)}");
        }
    }

    private static async Task<Dictionary<string, double>> MetricsAsync(ServerProcess server)
    {
        string text = await server.Http.GetStringAsync("/metrics");
        return Exposition.Samples(text).Where(s => s.Name.StartsWith("rampay_idempotency_", StringComparison.Ordinal) || s.Name == "rampay_rules_version")
            .GroupBy(s => s.Name).ToDictionary(g => g.Key, g => g.Sum(s => s.Value), StringComparer.Ordinal);
    }

    [Fact]
    public async Task A_retry_of_a_key_long_gone_from_memory_returns_the_original_payment_from_the_cold_tier()
    {
        await using var server = await ServerProcess.StartAsync([.. SmallHotTier, "Engine:IdempotencyKeyBudget=2000000"]);
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(aliceDeposit: 1_000_000);

        // 1. A payment with a key.
        string key = Api.NewKey();
        var first = (await api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 1_000), key)).Expect(HttpStatusCode.Created);
        long id = first.Long("id");

        // 2. 400,000 keyed payments after it: the hot tier (3,072 keys) is 0.77 % of them; the key is long gone from memory.
        const int driven = 400_000;
        await DriveAsync(server, alice, bob.WalletId, driven);
        var before = await api.StateAsync(alice.WalletId);
        Assert.Equal(1_000_000 - 1_000 - driven, before.Posted);
        var metricsBefore = await MetricsAsync(server);
        Assert.True(metricsBefore["rampay_idempotency_hot_keys"] <= HotMaxKeys, $"{metricsBefore["rampay_idempotency_hot_keys"]} keys in memory");
        Assert.True(metricsBefore["rampay_idempotency_cold_keys"] >= driven - 2 * HotMaxKeys, $"{metricsBefore["rampay_idempotency_cold_keys"]} keys on disk");

        // 3. The retry returns the original payment: same id, replayed, no second debit.
        var retry = await api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 1_000), key);
        Assert.Equal(id, retry.Expect(HttpStatusCode.Created).Long("id"));
        Assert.Equal("true", retry.Header("Idempotent-Replayed"));
        Assert.Equal(before, await api.StateAsync(alice.WalletId));

        // 4. The same key with another body is refused, naming the field, and changes nothing.
        await api.ExpectRejectedAsync(() => api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 1_001), key),
            HttpStatusCode.Conflict, "exists_with_different_amount", alice.WalletId, bob.WalletId);
        Assert.Equal(before, await api.StateAsync(alice.WalletId));

        // 5. Both answers came from the cold tier, and no key was forgotten early.
        var after = await MetricsAsync(server);
        Assert.True(after["rampay_idempotency_cold_hits_total"] - metricsBefore["rampay_idempotency_cold_hits_total"] >= 2,
            $"cold hits {metricsBefore["rampay_idempotency_cold_hits_total"]} -> {after["rampay_idempotency_cold_hits_total"]}");
        Assert.Equal(0, after["rampay_idempotency_keys_evicted_early_total"]);
        Assert.Equal(0, after["rampay_idempotency_cold_faults_total"]);
        Assert.True(after["rampay_idempotency_cold_disk_bytes"] >= (driven - 2 * HotMaxKeys) * 136.0, $"{after["rampay_idempotency_cold_disk_bytes"]} bytes on disk");
        Assert.Equal(RamPay.Engine.EngineOptions.ServerRulesVersion, after["rampay_rules_version"]);
        var ready = await api.GetAsync("/health/ready", null);
        var body = ready.Expect(HttpStatusCode.OK);
        Assert.Equal("ready", body.Str("status"));
        Assert.Equal(RamPay.Engine.EngineOptions.ServerRulesVersion, body["idempotency"]!.Long("rules_version"));

        // 6. After a restart (snapshot at the clean stop, the cold tier reopened) the old key is still honoured.
        Assert.Equal(0, await server.StopAsync());
        await server.RestartAsync();
        retry = await api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 1_000), key);
        Assert.Equal(id, retry.Expect(HttpStatusCode.Created).Long("id"));
        Assert.Equal(before, await api.StateAsync(alice.WalletId));
    }

    [Fact]
    public async Task The_first_start_on_data_written_under_rules_1_journals_the_upgrade_and_keeps_its_keys()
    {
        await using var server = await ServerProcess.StartAsync([.. SmallHotTier, "Engine:RulesVersion=1"]);
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync();
        string key = Api.NewKey();
        long id = (await api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 700), key)).Expect(HttpStatusCode.Created).Long("id");
        Assert.Equal(1, (await MetricsAsync(server))["rampay_rules_version"]);
        await server.StopAsync();

        // The same data folder, started with the default rules (4): the upgrade point is journaled, the key carried over.
        await using var upgraded = ServerProcess.OnDirectory(server.DataDirectory, null, SmallHotTier);
        await upgraded.LaunchAsync();
        var api2 = new Api(upgraded);
        Assert.Equal(RamPay.Engine.EngineOptions.ServerRulesVersion, (await MetricsAsync(upgraded))["rampay_rules_version"]);
        var retry = await api2.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 700), key);
        Assert.Equal(id, retry.Expect(HttpStatusCode.Created).Long("id"));
        Assert.Equal("true", retry.Header("Idempotent-Replayed"));
        Assert.Equal(10_000 - 700, (await api2.StateAsync(alice.WalletId)).Posted);
    }

    [Fact]
    public async Task Keys_forgotten_early_at_the_key_budget_are_counted_and_readiness_says_degraded_with_the_reason()
    {
        await using var server = await ServerProcess.StartAsync([.. SmallHotTier, "Engine:IdempotencyKeyBudget=5000"]);
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(aliceDeposit: 100_000);
        string key = Api.NewKey();
        long id = (await api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 10), key)).Expect(HttpStatusCode.Created).Long("id");
        var ready = (await api.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK);
        Assert.Equal("ready", ready.Str("status"));

        // 20,000 keys within the window against a budget of 5,000: the oldest are forgotten early, loudly.
        await DriveAsync(server, alice, bob.WalletId, 20_000);
        var metrics = await MetricsAsync(server);
        Assert.True(metrics["rampay_idempotency_keys_evicted_early_total"] >= 15_000, $"{metrics["rampay_idempotency_keys_evicted_early_total"]} counted");
        var response = await api.GetAsync("/health/ready", null);
        var degraded = response.Expect(HttpStatusCode.OK); // still serving
        Assert.Equal("degraded", degraded.Str("status"));
        Assert.Contains("key budget of 5000 keys", degraded.Str("degraded_reason"), StringComparison.Ordinal);
        Assert.True(degraded["idempotency"]!.Long("evicted_early") >= 15_000);

        // The first key is one of them: its retry executes again (what the counter and the alert are for).
        var retry = await api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 10), key);
        Assert.NotEqual(id, retry.Expect(HttpStatusCode.Created).Long("id"));
    }
}
