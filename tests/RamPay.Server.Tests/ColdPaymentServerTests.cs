using System.Net;
using RamPay.Core;

namespace RamPay.Server.Tests;

/// <summary>
/// Rules version 3, the server's default: payments without a ceiling, settled old ones on disk. Through the real server: a
/// data folder written under rules version 2 moves to 3 at its first start with the default (the journaled upgrade point),
/// and old payments, far outside a small hot tier, are read, refunded and paged, across periodic snapshots off the writer
/// (the snapshotter's replica follows the payment log) and a SIGKILL.
/// </summary>
public class ColdPaymentServerTests
{
    private const int HotPayments = 1024;
    private static readonly string[] SmallHotTiers =
    [
        .. ServerFixture.TestSettings, "Engine:RingSize=1024", "Tcp:MaxCommandsPerBatch=1000", "Engine:ColdTier:GenerationCommands=1024",
        "Engine:ColdTier:HotMaxKeys=3072", "Engine:ColdTier:SegmentKeys=65536",
        $"Engine:ColdTier:HotPayments={HotPayments}", "Engine:ColdTier:PaymentChunkShift=8", "Engine:ColdTier:PaymentSegmentBytes=1048576",
        "Engine:SnapshotEveryCommands=10000",
    ];

    /// <summary>Sends <paramref name="payments"/> keyed transfers of 1 over TCP in batches of 1,000; returns their payment ids.</summary>
    private static async Task<List<long>> DriveAsync(ServerProcess server, TestUser from, long to, int payments)
    {
        var (connection, _) = await WireConnection.OpenAsync(server.TcpEndPoint, from.Token);
        await using var _ = connection;
        string prefix = Api.NewKey();
        var ids = new List<long>();
        for (int b = 0; b < payments / 1_000; b++)
        {
            var batch = Enumerable.Range(0, 1_000).Select(i => Wire.Transfer($"{prefix}-{b}-{i}", from.WalletId, to, 1)).ToArray();
            var results = await connection.RoundTripAsync((ulong)b + 1, batch);
            if (results.FirstOrDefault(r => r.Code != ResultCode.Ok) is { Code: not ResultCode.Ok } bad) Assert.Fail($"batch {b}: {Wire.Describe(bad)}");
            ids.AddRange(results.Select(r => r.Id));
        }
        return ids;
    }

    [Fact]
    public async Task Data_under_rules_2_upgrades_to_3_and_old_payments_are_read_refunded_and_paged_across_snapshots_and_a_kill()
    {
        // 1. A data folder written under rules version 2: a keyed payment, and an authorization left open.
        await using var server = await ServerProcess.StartAsync([.. SmallHotTiers, "Engine:RulesVersion=2"]);
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(aliceDeposit: 1_000_000);
        string key = Api.NewKey();
        long first = (await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 500, currency = "USD" }, key))
            .Expect(HttpStatusCode.Created).Long("id");
        long auth = (await api.PayAsync(alice, bob.WalletId, 300, capture: false)).Long("id");
        Assert.Equal(0, await server.StopAsync());

        // 2. The same folder under rules 3 (pinned: the server's default is 4 since, which keeps 3's payments and adds the
        //    fraud stage): the upgrade point is journaled once; the key and both payments carry over.
        await using var upgraded = ServerProcess.OnDirectory(server.DataDirectory, null, [.. SmallHotTiers, "Engine:RulesVersion=3"]);
        await upgraded.LaunchAsync();
        api = new Api(upgraded);
        string metrics = await upgraded.Http.GetStringAsync("/metrics");
        Assert.Equal(3, Exposition.Samples(metrics).Single(s => s.Name == "rampay_rules_version").Value);
        var retry = await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 500, currency = "USD" }, key);
        Assert.Equal(first, retry.Expect(HttpStatusCode.Created).Long("id"));
        Assert.Equal("true", retry.Header("Idempotent-Replayed"));

        // 3. 60,000 payments: the hot tier (1,024) is 1.7 % of them; the first payments left memory long ago.
        var ids = await DriveAsync(upgraded, alice, bob.WalletId, 60_000);
        var old = await api.PaymentAsync(first);
        Assert.Equal((500L, "posted"), (old.Long("amount"), old.Str("status")));
        // An old authorization is hot state (an open hold): captured as any.
        (await api.PostAsync($"/v1/payments/{auth}/capture", bob.Token, new { amount = 300 })).Expect(HttpStatusCode.OK);
        // Refunds of payments long gone from memory: the second is refused as for a recent one, and changes nothing.
        for (int i = 0; i < 200; i++)
            (await api.PostAsync($"/v1/payments/{ids[i * 100]}/refunds", bob.Token, new { amount = 1 }, Api.NewKey())).Expect(HttpStatusCode.Created);
        await api.ExpectRejectedAsync(() => api.PostAsync($"/v1/payments/{ids[0]}/refunds", bob.Token, new { amount = 1 }, Api.NewKey()),
            HttpStatusCode.UnprocessableEntity, "amount_exceeds_captured", alice.WalletId, bob.WalletId);
        var refunded = await api.PaymentAsync(ids[100]);
        Assert.Equal(1, refunded.Long("refunded"));

        // 4. A deep history page of old payments costs one page: ids 150 deep through the chain, newest first.
        var page = (await api.GetAsync($"/v1/accounts/{alice.WalletId}/payments?limit=50&after={ids[1_000]}", alice.Token)).Expect(HttpStatusCode.OK);
        var listed = page["data"]!.AsArray().Select(p => p!.Long("id")).ToList();
        Assert.Equal(Enumerable.Range(0, 50).Select(i => ids[999 - i]).ToList(), listed);

        // 5. Let a periodic snapshot (the replica's) land, then SIGKILL: the restart loads it and replays the tail.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Exposition.Samples(await upgraded.Http.GetStringAsync("/metrics")).Where(s => s.Name == "rampay_snapshot_last_sequence").Sum(s => s.Value) < 40_000)
        {
            Assert.True(DateTime.UtcNow < deadline, "no periodic snapshot after 60,000 payments");
            await Task.Delay(100);
        }
        var before = await api.StateAsync(alice.WalletId);
        await upgraded.KillAsync();
        await upgraded.RestartAsync();
        api = new Api(upgraded);
        Assert.Equal(before, await api.StateAsync(alice.WalletId));
        Assert.Equal(1, (await api.PaymentAsync(ids[100])).Long("refunded"));
        Assert.Equal("captured", (await api.PaymentAsync(auth)).Str("status"));
        (await api.PostAsync($"/v1/payments/{ids[50]}/refunds", bob.Token, new { amount = 1 }, Api.NewKey())).Expect(HttpStatusCode.Created);
        retry = await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 500, currency = "USD" }, key);
        Assert.Equal(first, retry.Expect(HttpStatusCode.Created).Long("id"));
    }

    [Fact]
    public async Task Under_the_default_rules_MaxPayments_no_longer_refuses()
    {
        await using var server = await ServerProcess.StartAsync([.. ServerFixture.TestSettings, "Engine:MaxPayments=4"]);
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync();
        for (int i = 0; i < 10; i++) await api.PayAsync(alice, bob.WalletId, 100);
        Assert.Equal(10_000 - 1_000, (await api.StateAsync(alice.WalletId)).Posted);
    }
}
