using System.Net;
using System.Text.Json.Nodes;
using RamPay.Client;
using RamPay.Server.Tests;
using RamPay.Webhooks;

namespace RamPay.Events.Tests;

/// <summary>Webhooks against a real server process and a real HTTP receiver (docs/webhooks.md).</summary>
public sealed class WebhookTests
{
    private static readonly string[] Fast = ["Webhooks:AllowPrivateNetworks=true", "Webhooks:RetryBaseMs=100", "Webhooks:BreakerFailures=1000", "Fraud:Enabled=false"];

    private static async Task<JsonNode> Register(Api api, TestUser user, string url, params string[] events) =>
        (await api.PostAsync("/v1/webhook_endpoints", user.Token, new { url, enabled_events = events, description = "test" }, key: "")).Expect(HttpStatusCode.Created);

    private static async Task WaitUntil(Func<bool> done, string what, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!done())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(what);
            await Task.Delay(50);
        }
    }

    private static List<WebhookReceiver.Received> Approved(WebhookReceiver r) => [.. r.Requests.Where(x => x.EventType == "PaymentApproved")];

    [Fact]
    public async Task Signed_deliveries_survive_500s_a_receiver_down_and_a_SIGKILL_and_each_party_gets_its_cut()
    {
        using var receiver = new WebhookReceiver();
        using var bobs = new WebhookReceiver();
        using var payUrl = new WebhookReceiver();
        await using var server = await ServerProcess.StartAsync(Fast);
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(1_000_000);
        var endpoint = await Register(api, alice, receiver.Url(), "Payment*");
        string secret = endpoint.Str("secret");
        Assert.StartsWith("whsec_", secret);
        var bobEndpoint = await Register(api, bob, bobs.Url(), "*");

        // 1. 500 three times, then 200: the first payment's events arrive after retries.
        receiver.Script(500, 500, 500);
        var ids = new List<long>();
        for (int i = 0; i < 5; i++) ids.Add((await api.PayAsync(alice, bob.WalletId, 100 + i)).Long("id"));
        await WaitUntil(() => ids.All(id => Approved(receiver).Any(r => JsonNode.Parse(r.Body)!["payment"]!.Long("id") == id)), "alice's endpoint got every PaymentApproved");
        foreach (var r in receiver.Requests.Where(r => r.EventType is not null))
        {
            Assert.True(WebhookSignature.Verify(r.Body, r.Signature, secret, TimeSpan.FromMinutes(5)), $"signature of {r.EventId}");
            Assert.False(WebhookSignature.Verify(r.Body, r.Signature, "whsec_wrong", TimeSpan.FromMinutes(5)));
            var json = JsonNode.Parse(r.Body)!;
            Assert.Equal(r.EventId, json.Str("event_id"));
            Assert.StartsWith("Payment", json.Str("type"), StringComparison.Ordinal);
            Assert.Null(json["balances"]!["to"]); // the payer's cut: not Bob's balances
        }
        // The receiver has seen every PaymentApproved, but a request it answered 500 counts there too: the attempts'
        // outcomes (and the retries of those 500s) reach the store a moment later, so wait for the store to show them.
        JsonArray deliveries;
        var settled = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            deliveries = (await api.GetAsync($"/v1/webhook_endpoints/{endpoint.Str("id")}/deliveries", alice.Token)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
            bool done = deliveries.Count(d => d!["status_code"]?.GetValue<int>() == 500) >= 3 && deliveries.All(d => d!.Str("status") != "pending");
            if (done || DateTime.UtcNow > settled) break;
            await Task.Delay(50);
        }
        Assert.True(deliveries.Count(d => d!["status_code"]?.GetValue<int>() == 500) == 3,
            $"3 attempts answered 500, in: {deliveries.ToJsonString()}; the receiver saw: {string.Join(", ", receiver.Requests.Select(r => $"{r.EventType} {r.EventId}"))}");
        Assert.Contains(deliveries, d => d!.Str("status") == "succeeded");
        Assert.All(deliveries, d => Assert.True(d!["latency_ms"] is null || d!.Long("latency_ms") >= 0));
        // Bob's endpoint: the payee's cut, and no UserRegistered of anyone else.
        await WaitUntil(() => Approved(bobs).Count >= ids.Count, "bob's endpoint got every PaymentApproved");
        foreach (var r in Approved(bobs))
        {
            var json = JsonNode.Parse(r.Body)!;
            Assert.Null(json["balances"]!["from"]);
            Assert.NotNull(json["balances"]!["to"]);
        }
        Assert.DoesNotContain(bobs.Requests, r => r.EventType == "UserRegistered");

        // Authorization: Bob cannot see, change or list Alice's endpoint or its deliveries.
        (await api.GetAsync($"/v1/webhook_endpoints/{endpoint.Str("id")}", bob.Token)).ExpectError(HttpStatusCode.NotFound, "webhook_endpoint_not_found");
        (await api.GetAsync($"/v1/webhook_endpoints/{endpoint.Str("id")}/deliveries", bob.Token)).ExpectError(HttpStatusCode.NotFound, "webhook_endpoint_not_found");
        (await api.SendAsync(HttpMethod.Delete, $"/v1/webhook_endpoints/{endpoint.Str("id")}", bob.Token)).ExpectError(HttpStatusCode.NotFound, "webhook_endpoint_not_found");
        var bobsList = (await api.GetAsync("/v1/webhook_endpoints", bob.Token)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.Equal([bobEndpoint.Str("id")], bobsList.Select(e => e!.Str("id")));
        Assert.All(bobsList, e => Assert.Null(e!["secret"])); // the secret is shown only at creation

        // 2. A payment's own webhook_url, signed with the payer's own secret.
        string userSecret = (await api.GetAsync("/v1/webhook_secret", alice.Token)).Expect(HttpStatusCode.OK).Str("secret");
        var own = (await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 77, currency = "USD", webhook_url = payUrl.Url("/own") })).Expect(HttpStatusCode.Created);
        await WaitUntil(() => payUrl.Requests.Any(r => r.EventType == "PaymentApproved"), "the payment's webhook_url got its events");
        Assert.All(payUrl.Requests, r => Assert.True(WebhookSignature.Verify(r.Body, r.Signature, userSecret, TimeSpan.FromMinutes(5))));
        Assert.All(payUrl.Requests, r => Assert.Equal(own.Long("id"), JsonNode.Parse(r.Body)!["payment"]!.Long("id")));

        // 3. The receiver goes down; payments go on; SIGKILL with deliveries pending; restart with the receiver up.
        receiver.Down();
        var later = new List<long>();
        for (int i = 0; i < 10; i++) later.Add((await api.PayAsync(alice, bob.WalletId, 500 + i)).Long("id"));
        await Task.Delay(700); // some attempts fail meanwhile
        await server.KillAsync();
        receiver.Up();
        await server.RestartAsync();
        await WaitUntil(() => later.All(id => Approved(receiver).Any(r => JsonNode.Parse(r.Body)!["payment"]!.Long("id") == id)), "every payment made while the receiver was down was delivered after the restart", 90);
        foreach (var r in receiver.Requests.Where(r => r.EventType is not null))
            Assert.True(WebhookSignature.Verify(r.Body, r.Signature, secret, TimeSpan.FromMinutes(5)));
        var dead = (await api.GetAsync($"/v1/webhook_endpoints/{endpoint.Str("id")}/deliveries?status=dead", alice.Token)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.Empty(dead);
    }

    [Fact]
    public async Task Rotation_signs_with_both_secrets_during_the_overlap_and_redeliver_sends_again()
    {
        using var receiver = new WebhookReceiver();
        await using var server = await ServerProcess.StartAsync(Fast);
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(100_000);
        var endpoint = await Register(api, alice, receiver.Url(), "PaymentApproved");
        string old = endpoint.Str("secret");
        string rotated = (await api.PostAsync($"/v1/webhook_endpoints/{endpoint.Str("id")}/rotate_secret", alice.Token, null, key: "")).Expect(HttpStatusCode.OK).Str("secret");
        Assert.NotEqual(old, rotated);
        await api.PayAsync(alice, bob.WalletId, 10);
        await WaitUntil(() => Approved(receiver).Count >= 1, "delivered");
        var r = Approved(receiver)[0];
        Assert.Equal(2, r.Signature!.Split(',').Count(p => p.StartsWith("v1=", StringComparison.Ordinal)));
        Assert.True(WebhookSignature.Verify(r.Body, r.Signature, old, TimeSpan.FromMinutes(5)));
        Assert.True(WebhookSignature.Verify(r.Body, r.Signature, rotated, TimeSpan.FromMinutes(5)));
        // A stale timestamp is refused.
        Assert.False(WebhookSignature.Verify(r.Body, r.Signature, rotated, TimeSpan.FromMinutes(5), DateTimeOffset.UtcNow.AddMinutes(10)));

        var again = (await api.PostAsync($"/v1/events/{r.EventId}/redeliver", alice.Token, new { endpoint_id = endpoint.Str("id") }, key: "")).Expect(HttpStatusCode.Accepted);
        Assert.Equal(1, again.Long("queued"));
        await WaitUntil(() => Approved(receiver).Count(x => x.EventId == r.EventId) >= 2, "redelivered");
        // Bob may not redeliver Alice's event to Alice's endpoint.
        (await api.PostAsync($"/v1/events/{r.EventId}/redeliver", bob.Token, new { endpoint_id = endpoint.Str("id") }, key: "")).ExpectError(HttpStatusCode.NotFound, "webhook_endpoint_not_found");

        // Disabled: nothing is sent; enabled again: what waited is sent.
        (await api.PostAsync($"/v1/webhook_endpoints/{endpoint.Str("id")}", alice.Token, new { status = "disabled" }, key: "")).Expect(HttpStatusCode.OK);
        int before = Approved(receiver).Count;
        await api.PayAsync(alice, bob.WalletId, 11);
        await Task.Delay(1500);
        Assert.Equal(before, Approved(receiver).Count);
        (await api.PostAsync($"/v1/webhook_endpoints/{endpoint.Str("id")}", alice.Token, new { status = "enabled" }, key: "")).Expect(HttpStatusCode.OK);
        await WaitUntil(() => Approved(receiver).Count > before, "sent after re-enabling");
    }

    [Fact]
    public async Task A_receiver_that_does_not_answer_in_time_is_a_failed_attempt_then_delivered()
    {
        using var receiver = new WebhookReceiver { Delay = TimeSpan.FromSeconds(3) };
        await using var server = await ServerProcess.StartAsync([.. Fast, "Webhooks:TimeoutMs=500"]);
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(100_000);
        var endpoint = await Register(api, alice, receiver.Url(), "PaymentApproved");
        await api.PayAsync(alice, bob.WalletId, 10);
        var id = endpoint.Str("id");
        await WaitUntil(() => receiver.Requests.Count >= 2, "retried after a timeout");
        receiver.Delay = TimeSpan.Zero;
        JsonArray attempts = [];
        await WaitUntil(() =>
        {
            attempts = api.GetAsync($"/v1/webhook_endpoints/{id}/deliveries", alice.Token).GetAwaiter().GetResult().Expect(HttpStatusCode.OK)["data"]!.AsArray();
            return attempts.Any(a => a!.Str("status") == "succeeded");
        }, "delivered once the receiver is fast");
        Assert.Contains(attempts, a => a!["error"]?.GetValue<string>()?.Contains("no answer within 500 ms", StringComparison.Ordinal) == true);
    }

    [Fact]
    public async Task SSRF_private_addresses_and_http_are_refused_at_registration_without_the_setting()
    {
        await using var server = await ServerProcess.StartAsync();
        var api = new Api(server);
        var user = await api.SignUpAsync();
        foreach (var url in new[] { "http://example.com/hook", "https://127.0.0.1/hook", "https://localhost/hook", "https://169.254.169.254/latest", "https://10.1.2.3/", "https://[::1]/", "https://user:pw@example.com/", "ftp://example.com/" })
            (await api.PostAsync("/v1/webhook_endpoints", user.Token, new { url, enabled_events = new[] { "*" } }, key: "")).ExpectError(HttpStatusCode.BadRequest, "invalid_url");
        (await api.PostAsync("/v1/webhook_endpoints", user.Token, new { url = "https://203.0.113.5/", enabled_events = new[] { "Pay*ment" } }, key: "")).ExpectError(HttpStatusCode.BadRequest, "invalid_enabled_events");
    }

    [Fact]
    public async Task A_name_that_later_resolves_to_loopback_is_refused_at_connect_time()
    {
        using var receiver = new WebhookReceiver();
        // The name resolves to a public address when registered, and to 127.0.0.1 when the dispatcher connects.
        int calls = 0;
        var guard = new UrlGuard(allowPrivateNetworks: false, (host, _) => Task.FromResult(Interlocked.Increment(ref calls) == 1 ? new[] { IPAddress.Parse("93.184.216.34") } : new[] { IPAddress.Loopback }));
        Assert.Null(await guard.CheckAsync($"https://rebind.example:{receiver.Port}/hook", CancellationToken.None));
        using var handler = new SocketsHttpHandler { ConnectCallback = guard.ConnectAsync, AllowAutoRedirect = false, UseProxy = false };
        using var http = new HttpClient(handler);
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => http.PostAsync($"http://rebind.example:{receiver.Port}/hook", new StringContent("{}")));
        Assert.IsType<WebhookRefusedException>(error.InnerException);
        Assert.Empty(receiver.Requests);
        Assert.True(UrlGuard.IsForbidden(IPAddress.Parse("::ffff:127.0.0.1")));
        Assert.True(UrlGuard.IsForbidden(IPAddress.Parse("100.64.0.1")));
        Assert.False(UrlGuard.IsForbidden(IPAddress.Parse("93.184.216.34")));
    }
}
