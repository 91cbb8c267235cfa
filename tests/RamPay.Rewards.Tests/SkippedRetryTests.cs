using System.Net;
using RamPay.Core;
using RamPay.Server.Tests;

namespace RamPay.Rewards.Tests;

/// <summary>
/// Skipped rewards are retried after a top-up of the rewards account (docs/rewards.md, "Retry after a top-up"): oldest
/// first, as many as the new balance covers, each once per top-up, and never paid twice. A real server process.
/// </summary>
public sealed class SkippedRetryTests
{
    [Fact]
    public async Task A_top_up_pays_the_skipped_rewards_it_covers_oldest_first_and_each_reward_once()
    {
        await using var server = await ServerProcess.StartAsync("Fraud:Enabled=false");
        var api = new Api(server);
        string admin = await api.AdminTokenAsync();

        // 1. A 10 % rule and an empty rewards account: three payments, three skipped rewards (100, 200, 300).
        (await api.PostAsync("/v1/admin/reward_rules", admin, new { name = "ten percent", percent_bps = 1_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        var (alice, bob) = await api.PairAsync(10_000);
        long[] paid = new long[3];
        for (int i = 0; i < 3; i++) paid[i] = (await api.PayAsync(alice, bob.WalletId, 1_000 * (i + 1))).Long("id");
        await RewardsServerTests.WaitFor(async () => (await api.GetAsync("/v1/admin/rewards?status=skipped", admin)).Expect(HttpStatusCode.OK),
            n => n["data"]!.AsArray().Count == 3, "three skipped rewards");

        // 2. A top-up of 350 covers the oldest two (100 + 200): they are paid; the third (300) stays skipped.
        (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = 350, currency = "USD" })).Expect(HttpStatusCode.Created);
        var issued = await RewardsServerTests.WaitFor(async () => (await api.GetAsync("/v1/admin/rewards?status=issued", admin)).Expect(HttpStatusCode.OK),
            n => n["data"]!.AsArray().Count == 2, "two rewards paid after the top-up");
        Assert.Equal(new[] { paid[0], paid[1] }, issued["data"]!.AsArray().Select(r => r!.Long("source_payment_id")).Order());
        var skipped = (await api.GetAsync("/v1/admin/rewards?status=skipped", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.Equal(paid[2], Assert.Single(skipped)!.Long("source_payment_id"));
        Assert.Equal(10_000 - 6_000 + 300, (await api.AccountAsync(alice.WalletId, alice.Token)).Long("available"));

        // 3. A second top-up pays the third; a third top-up finds nothing to retry.
        (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = 1_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        await RewardsServerTests.WaitFor(async () => (await api.GetAsync("/v1/admin/rewards?status=issued", admin)).Expect(HttpStatusCode.OK),
            n => n["data"]!.AsArray().Count == 3, "all three rewards paid");
        (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = 1_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        // The service call itself, as a worker would make it for that top-up: nothing left to retry.
        long lastTopUp = (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = 10, currency = "USD" })).Expect(HttpStatusCode.Created)["payment"]!.Long("id");
        Assert.Empty((await api.PostAsync("/v1/service/rewards/retry", admin, new { top_up_ids = new[] { lastTopUp } }, key: "")).Expect(HttpStatusCode.OK)["outcomes"]!.AsArray());
        // A payment that is no top-up is ignored.
        Assert.Empty((await api.PostAsync("/v1/service/rewards/retry", admin, new { top_up_ids = new[] { paid[0] } }, key: "")).Expect(HttpStatusCode.OK)["outcomes"]!.AsArray());
        Assert.Equal(10_000 - 6_000 + 600, (await api.AccountAsync(alice.WalletId, alice.Token)).Long("available"));
        await Task.Delay(500); // the consumer's handling of the last top-ups
        Assert.Equal(0, await server.StopAsync());

        // 4. Offline: one reward per payment, all issued, the ledger balances.
        var ledger = RewardsServerTests.LoadLedger(server.DataDirectory);
        Assert.Equal(3, ledger.RewardCount);
        foreach (long id in paid)
        {
            var reward = Assert.Single(ledger.RewardsOfPayment(id));
            Assert.Equal(RewardStatus.Issued, reward.Status);
            Assert.Equal(ledger.GetPayment(id).Amount / 10, reward.PaidOut);
        }
    }
}
