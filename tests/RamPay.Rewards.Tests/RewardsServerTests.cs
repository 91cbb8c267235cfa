using System.Net;
using System.Text.Json.Nodes;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Server;
using RamPay.Server.Hosting;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>Rewards and analytics in a real server process on the embedded default (docs/rewards.md, docs/analytics.md).</summary>
public sealed class RewardsServerTests(ITestOutputHelper output)
{
    internal static async Task<JsonNode> WaitFor(Func<Task<JsonNode>> read, Func<JsonNode, bool> done, string what, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var node = await read();
            if (done(node)) return node;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{what} never happened: {node.ToJsonString()}");
            await Task.Delay(100);
        }
    }

    private static object Rule(int bps, string name = "cashback") => new { name, percent_bps = bps, currency = "USD" };

    [Fact]
    public async Task Cashback_is_paid_once_shows_in_history_and_is_reversed_by_a_refund()
    {
        await using var server = await ServerProcess.StartAsync();
        var api = new Api(server);
        string admin = await api.AdminTokenAsync();

        // 1. The USD rewards account was opened at start; it is empty until topped up.
        var funding = (await api.GetAsync("/v1/admin/rewards/funding", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.Contains(funding, f => f!.Str("currency") == "USD" && f!.Long("balance") == 0);
        (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = 1_000, currency = "USD" }, key: "")).ExpectError(HttpStatusCode.BadRequest, "idempotency_key_required");
        var topUp = (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = 100_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        Assert.Equal(100_000, topUp["funding"]!.Long("balance"));

        // 2. A rule: 1.5 %, then payments.
        var rule = (await api.PostAsync("/v1/admin/reward_rules", admin, Rule(150))).Expect(HttpStatusCode.Created);
        long ruleId = rule.Long("id");
        Assert.Equal("active", rule.Str("status"));
        var (alice, bob) = await api.PairAsync(50_000);
        long paid = (await api.PayAsync(alice, bob.WalletId, 12_345)).Long("id");

        // 3. The consumer pays floor(12,345 × 150 / 10,000) = 185 to alice, once.
        var mine = await WaitFor(async () => (await api.GetAsync("/v1/rewards", alice.Token)).Expect(HttpStatusCode.OK),
            n => n["data"]!.AsArray().Count > 0, "alice's reward");
        var reward = mine["data"]![0]!;
        Assert.Equal(paid, reward.Long("source_payment_id"));
        Assert.Equal(185, reward.Long("amount"));
        Assert.Equal("issued", reward.Str("status"));
        var history = await api.HistoryAsync(alice.WalletId, alice.Token);
        var payout = history.First(p => p.Str("kind") == "reward");
        Assert.Equal(paid, payout.Long("reward_for"));
        Assert.Equal(50_000 - 12_345 + 185, (await api.AccountAsync(alice.WalletId, alice.Token)).Long("available"));
        Assert.Empty((await api.GetAsync("/v1/rewards", bob.Token)).Expect(HttpStatusCode.OK)["data"]!.AsArray());

        // 4. A second issue through the service endpoint (as a redelivered event would) pays nothing.
        var again = (await api.PostAsync("/v1/service/rewards/issue", admin, new { payment_ids = new[] { paid } }, key: "")).Expect(HttpStatusCode.OK);
        Assert.Empty(again["outcomes"]!.AsArray()); // already issued: not even sent
        Assert.Equal(50_000 - 12_345 + 185, (await api.AccountAsync(alice.WalletId, alice.Token)).Long("available"));

        // 5. A refund of a third reverses a third: floor(185 × 4,115 / 12,345) = 61.
        (await api.PostAsync($"/v1/payments/{paid}/refunds", bob.Token, new { amount = 4_115, currency = "USD" })).Expect(HttpStatusCode.Created);
        var reversed = await WaitFor(async () => (await api.GetAsync("/v1/rewards", alice.Token)).Expect(HttpStatusCode.OK),
            n => n["data"]![0]!.Long("reversed") > 0, "the reversal");
        Assert.Equal(61, reversed["data"]![0]!.Long("reversed"));
        Assert.Equal(0, reversed["data"]![0]!.Long("owed"));

        // 6. Change the rule (5 % from now on), end it; the admin lists; the service role may not read users' data.
        (await api.PostAsync($"/v1/admin/reward_rules/{ruleId}", admin, Rule(500))).Expect(HttpStatusCode.OK);
        var ended = (await api.PostAsync($"/v1/admin/reward_rules/{ruleId}/end", admin, new { })).Expect(HttpStatusCode.OK);
        Assert.Equal("ended", ended.Str("status"));
        Assert.Equal(3, ended["versions"]!.AsArray().Count);
        (await api.PostAsync($"/v1/admin/reward_rules/{ruleId}/end", admin, new { })).ExpectError(HttpStatusCode.UnprocessableEntity, "reward_rule_ended");
        var all = (await api.GetAsync("/v1/admin/rewards?status=issued", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.Single(all);
        Assert.Empty((await api.GetAsync("/v1/admin/rewards?status=skipped", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray());
        (await api.GetAsync("/v1/admin/rewards?status=paid", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_status");
        string serviceToken = (await api.PostAsync("/v1/admin/service_tokens", admin, new { name = "worker" }, key: "")).Expect(HttpStatusCode.OK).Str("access_token");
        Assert.Equal(HttpStatusCode.Forbidden, (await api.GetAsync($"/v1/accounts/{alice.WalletId}", serviceToken)).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await api.GetAsync("/v1/admin/reward_rules", serviceToken)).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await api.PostAsync("/v1/service/rewards/issue", alice.Token, new { payment_ids = new[] { paid } })).Status);
        (await api.PostAsync("/v1/service/rewards/issue", serviceToken, new { payment_ids = new[] { paid } }, key: "")).Expect(HttpStatusCode.OK);
        (await api.PostAsync("/v1/service/rewards/issue", serviceToken, new { payment_ids = Array.Empty<long>() }, key: "")).ExpectError(HttpStatusCode.BadRequest, "invalid_request");

        // 7. Bad rules are 400s and change nothing.
        (await api.PostAsync("/v1/admin/reward_rules", admin, Rule(0))).ExpectError(HttpStatusCode.BadRequest, "invalid_reward_rule");
        (await api.PostAsync("/v1/admin/reward_rules", admin, new { name = "x", percent_bps = 10, currency = "USD", starts_at = "soon" })).ExpectError(HttpStatusCode.BadRequest, "invalid_time");
        (await api.PostAsync("/v1/admin/reward_rules/99", admin, Rule(10))).ExpectError(HttpStatusCode.NotFound, "reward_rule_not_found");
        Assert.Single((await api.GetAsync("/v1/admin/reward_rules", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray());

        // 8. Analytics: the admin's rollups and alice's own totals, by unix seconds and by ISO 8601.
        long from = DateTimeOffset.UtcNow.AddHours(-1).ToUnixTimeSeconds();
        var rollups = await WaitFor(async () => (await api.GetAsync($"/v1/admin/analytics?interval=day&from={from}&currency=USD", admin)).Expect(HttpStatusCode.OK),
            n => n["data"]!.AsArray().Sum(b => b!.Long("rewards")) == 1 && n["data"]!.AsArray().Sum(b => b!.Long("refunds")) == 1, "analytics");
        Assert.Equal(12_345, rollups["data"]!.AsArray().Sum(b => b!.Long("transfers_posted_amount")));
        string iso = DateTimeOffset.UtcNow.AddHours(-1).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        var me = (await api.GetAsync($"/v1/analytics/me?interval=hour&from={iso}", alice.Token)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.Equal(12_345 + 61, me.Sum(b => b!.Long("sent_amount"))); // the payment, the reversal
        Assert.Equal(50_000 + 185 + 4_115, me.Sum(b => b!.Long("received_amount"))); // deposit, reward, refund
        (await api.GetAsync("/v1/admin/analytics?interval=week", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_interval");
        (await api.GetAsync("/v1/admin/analytics?from=yesterday", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_time");
        (await api.GetAsync("/v1/admin/analytics?from=100&to=50", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_range");
        (await api.GetAsync("/v1/admin/analytics?interval=minute&from=0", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_range");
        Assert.Equal(HttpStatusCode.Forbidden, (await api.GetAsync("/v1/admin/analytics", alice.Token)).Status);

        // 9. The metrics the dashboards and alerts use.
        string metrics = await server.Http.GetStringAsync("/metrics");
        Assert.Contains("rampay_rewards_funding_balance_minor{currency=\"USD\"", metrics);
        Assert.Contains("rampay_rewards_issued_total", metrics);
        Assert.Contains("rampay_consumer_lag_events{consumer=\"rewards\"", metrics);
        output.WriteLine(string.Join("\n", metrics.Split('\n').Where(l => l.StartsWith("rampay_rewards", StringComparison.Ordinal) || l.StartsWith("rampay_consumer", StringComparison.Ordinal))));
    }

    [Fact]
    public async Task An_empty_rewards_account_records_skipped_rewards_and_moves_nothing()
    {
        await using var server = await ServerProcess.StartAsync();
        var api = new Api(server);
        string admin = await api.AdminTokenAsync();
        (await api.PostAsync("/v1/admin/reward_rules", admin, Rule(1_000))).Expect(HttpStatusCode.Created);
        var (alice, bob) = await api.PairAsync(5_000);
        long paid = (await api.PayAsync(alice, bob.WalletId, 1_000)).Long("id");
        var skipped = await WaitFor(async () => (await api.GetAsync("/v1/admin/rewards?status=skipped", admin)).Expect(HttpStatusCode.OK),
            n => n["data"]!.AsArray().Count > 0, "a skipped reward");
        Assert.Equal(paid, skipped["data"]![0]!.Long("source_payment_id"));
        Assert.Equal("insufficient_funds", skipped["data"]![0]!.Str("skip_reason"));
        Assert.Equal(4_000, (await api.AccountAsync(alice.WalletId, alice.Token)).Long("available"));
        // Topped up, the consumer retries it (docs/rewards.md, "Retry of skipped rewards after a top-up"): the same reward
        // is paid; a retry through the service endpoint then finds nothing to send.
        (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = 1_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        var issued = await WaitFor(async () => (await api.GetAsync("/v1/admin/rewards?status=issued", admin)).Expect(HttpStatusCode.OK),
            n => n["data"]!.AsArray().Count > 0, "the skipped reward paid after the top-up");
        Assert.Equal(skipped["data"]![0]!.Long("id"), issued["data"]![0]!.Long("id"));
        var retried = (await api.PostAsync("/v1/service/rewards/issue", admin, new { payment_ids = new[] { paid } }, key: "")).Expect(HttpStatusCode.OK);
        Assert.Empty(retried["outcomes"]!.AsArray());
        Assert.Equal(4_100, (await api.AccountAsync(alice.WalletId, alice.Token)).Long("available"));
    }

    /// <summary>The server's own ledger, rebuilt offline from its data directory (the server must be stopped).</summary>
    internal static Ledger LoadLedger(string dataDirectory)
    {
        var engine = ServerComposition.EngineOptionsFrom(new ServerOptions { DataDirectory = dataDirectory }, new DataFolder(dataDirectory));
        var (ledger, _, _, _) = EngineRecovery.Load(engine.SnapshotDirectory, engine.JournalDirectory, engine.Ledger, useSnapshot: true, []);
        ledger.VerifyInvariants(); // debits equal credits, every reward against its payments (LedgerRewards.VerifyRewards)
        return ledger;
    }
}
