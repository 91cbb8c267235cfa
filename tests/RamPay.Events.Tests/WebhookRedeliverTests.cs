using System.Net;
using System.Text.Json.Nodes;
using RamPay.Server.Tests;

namespace RamPay.Events.Tests;

/// <summary>
/// Issue 12: <c>POST /v1/events/{id}/redeliver {endpoint_id?}</c> "(owner or admin) sends a dead-lettered or any past
/// event again, to one endpoint or to every endpoint subscribed to it". An owner reaches their own subscribed endpoints;
/// an admin without <c>endpoint_id</c> reaches every subscribed endpoint, each with its owner's cut; a third user none.
/// </summary>
public sealed class WebhookRedeliverTests
{
    private static async Task WaitUntil(Func<bool> done, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!done())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(what);
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Without_an_endpoint_the_owner_reaches_theirs_and_an_admin_every_subscribed_one_each_with_its_cut()
    {
        using var alices = new WebhookReceiver();
        using var bobs = new WebhookReceiver();
        await using var server = await ServerProcess.StartAsync("Webhooks:AllowPrivateNetworks=true", "Webhooks:RetryBaseMs=100", "Fraud:Enabled=false");
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(10_000);
        var carol = await api.SignUpAsync();
        string admin = await api.AdminTokenAsync();
        var endpoints = new List<string>();
        foreach (var (user, receiver) in new[] { (alice, alices), (bob, bobs) })
            endpoints.Add((await api.PostAsync("/v1/webhook_endpoints", user.Token, new { url = receiver.Url(), enabled_events = new[] { "PaymentApproved" } }, key: "")).Expect(HttpStatusCode.Created).Str("id"));
        await api.PayAsync(alice, bob.WalletId, 25);
        int Count(WebhookReceiver r) => r.Requests.Count(x => x.EventType == "PaymentApproved");
        await WaitUntil(() => Count(alices) == 1 && Count(bobs) == 1, "both parties' endpoints got the PaymentApproved");
        string id = alices.Requests.First(x => x.EventType == "PaymentApproved").EventId!;

        // 1. The owner, without endpoint_id: their own endpoint only.
        Assert.Equal(1, (await api.PostAsync($"/v1/events/{id}/redeliver", alice.Token, new { }, key: "")).Expect(HttpStatusCode.Accepted).Long("queued"));
        await WaitUntil(() => Count(alices) == 2, "alice's endpoint got it again");
        // 2. A user the event is not about: not found, nothing queued.
        (await api.PostAsync($"/v1/events/{id}/redeliver", carol.Token, new { }, key: "")).ExpectError(HttpStatusCode.NotFound, "event_not_found");
        // 3. An admin, without endpoint_id: every endpoint subscribed to the event, each with its owner's cut.
        Assert.Equal(2, (await api.PostAsync($"/v1/events/{id}/redeliver", admin, new { }, key: "")).Expect(HttpStatusCode.Accepted).Long("queued"));
        await WaitUntil(() => Count(alices) == 3 && Count(bobs) == 2, "both endpoints got it from the admin's redelivery");
        var toBob = JsonNode.Parse(bobs.Requests.Last(x => x.EventType == "PaymentApproved").Body)!;
        Assert.Null(toBob["balances"]!["from"]); // the payee's cut, as on the first delivery
        var toAlice = JsonNode.Parse(alices.Requests.Last(x => x.EventType == "PaymentApproved").Body)!;
        Assert.Null(toAlice["balances"]!["to"]); // the payer's cut
        await Task.Delay(500);
        Assert.Equal((3, 2), (Count(alices), Count(bobs))); // each redelivery sent once

        // The deliveries list filtered by status: alice's three attempts all succeeded, none failed or dead.
        JsonArray succeeded = [];
        await WaitUntil(() => (succeeded = api.GetAsync($"/v1/webhook_endpoints/{endpoints[0]}/deliveries?status=succeeded", alice.Token).GetAwaiter().GetResult()
            .Expect(HttpStatusCode.OK)["data"]!.AsArray()).Count == 3, "alice's three succeeded attempts listed");
        Assert.All(succeeded, a => Assert.Equal(("succeeded", id), (a!.Str("status"), a!.Str("event_id"))));
        foreach (var status in new[] { "failed", "dead", "pending" })
            Assert.Empty((await api.GetAsync($"/v1/webhook_endpoints/{endpoints[0]}/deliveries?status={status}", alice.Token)).Expect(HttpStatusCode.OK)["data"]!.AsArray());
    }
}
