using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace RamPay.Server.Tests;

/// <summary>
/// <c>GET /v1/admin/webhook_deliveries</c> (issue 15, src/RamPay.Server/Http/AdminDeliveriesApi.cs): every user's
/// deliveries for the operators' dead-letter page, filtered by status and paged; and an admin's redelivery to another
/// user's endpoint, which the page's button sends.
/// </summary>
public sealed class AdminDeliveriesTests
{
    /// <summary>A local port with nothing listening: every attempt to it fails with a refused connection.</summary>
    private static int ClosedPort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static async Task<JsonNode> WaitForAsync(Func<Task<JsonNode?>> poll, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (await poll() is { } found) return found;
            if (DateTime.UtcNow > deadline) throw new TimeoutException(what);
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Dead_lettered_deliveries_of_every_user_are_listed_for_admins_only_newest_first_by_page_and_can_be_redelivered()
    {
        await using var server = await ServerProcess.StartAsync("Webhooks:AllowPrivateNetworks=true", "Webhooks:RetryBaseMs=60000", "Fraud:Enabled=false");
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(100_000);
        string admin = await api.AdminTokenAsync();
        string url = $"http://127.0.0.1:{ClosedPort()}/hook";
        var doomed = (await api.PostAsync("/v1/webhook_endpoints", alice.Token, new { url, enabled_events = new[] { "PaymentApproved" } }, key: "")).Expect(HttpStatusCode.Created);
        var kept = (await api.PostAsync("/v1/webhook_endpoints", bob.Token, new { url, enabled_events = new[] { "PaymentApproved" } }, key: "")).Expect(HttpStatusCode.Created);
        for (int i = 0; i < 3; i++) await api.PayAsync(alice, bob.WalletId, 10 + i);

        // Each payment's PaymentApproved is queued to both endpoints and its first attempt fails (nothing listens).
        await WaitForAsync(async () =>
        {
            var page = (await api.GetAsync("/v1/admin/webhook_deliveries?limit=100", admin)).Expect(HttpStatusCode.OK);
            var mine = page["data"]!.AsArray().Where(d => d!.Str("endpoint_id") == doomed.Str("id") && d!.Long("attempts") >= 1).ToList();
            return mine.Count == 3 ? page : null;
        }, "three failed deliveries to alice's endpoint");

        // Those attempts failed (a retry is due): the owner's filter status=failed finds them.
        var failed = (await api.GetAsync($"/v1/webhook_endpoints/{doomed.Str("id")}/deliveries?status=failed", alice.Token)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.True(failed.Count >= 3, failed.ToJsonString());
        Assert.All(failed, a => Assert.Equal("failed", a!.Str("status")));

        // Deleting the endpoint dead-letters its pending deliveries; bob's stay pending.
        (await api.SendAsync(HttpMethod.Delete, $"/v1/webhook_endpoints/{doomed.Str("id")}", alice.Token)).Expect(HttpStatusCode.OK);
        var dead = (await api.GetAsync("/v1/admin/webhook_deliveries?status=dead", admin)).Expect(HttpStatusCode.OK);
        var rows = dead["data"]!.AsArray().Select(d => d!).ToList();
        Assert.Equal(3, rows.Count);
        Assert.All(rows, d =>
        {
            Assert.Equal("dead", d.Str("status"));
            Assert.Equal(doomed.Str("id"), d.Str("endpoint_id"));
            Assert.Equal(alice.UserId, d.Long("owner_user_id"));
            Assert.Equal(url, d.Str("url"));
            Assert.Equal("PaymentApproved", d.Str("event_type"));
            Assert.NotNull(d["last_attempt_at"]);
            Assert.False(string.IsNullOrEmpty(d.Str("last_error")));
        });
        var ids = rows.Select(d => d.Long("delivery_id")).ToList();
        Assert.Equal(ids.OrderDescending(), ids);
        Assert.False(dead["has_more"]!.GetValue<bool>());
        var pending = (await api.GetAsync("/v1/admin/webhook_deliveries?status=pending", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.Equal(3, pending.Count);
        Assert.All(pending, d => Assert.Equal(kept.Str("id"), d!.Str("endpoint_id")));

        // Pages: one at a time, by starting_after, the same rows in the same order.
        var walked = new List<long>();
        string? cursor = null;
        while (true)
        {
            var page = (await api.GetAsync("/v1/admin/webhook_deliveries?status=dead&limit=1" + (cursor is null ? "" : "&starting_after=" + cursor), admin)).Expect(HttpStatusCode.OK);
            walked.AddRange(page["data"]!.AsArray().Select(d => d!.Long("delivery_id")));
            if (!page["has_more"]!.GetValue<bool>()) { Assert.Null(page["next_starting_after"]); break; }
            cursor = page["next_starting_after"]!.ToJsonString();
        }
        Assert.Equal(ids, walked);

        // Users may not list them; bad queries are 400 and name the parameter.
        (await api.GetAsync("/v1/admin/webhook_deliveries?status=dead", alice.Token)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
        (await api.GetAsync("/v1/admin/webhook_deliveries?status=gone", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_status");
        (await api.GetAsync("/v1/admin/webhook_deliveries?limit=0", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_limit");
        (await api.GetAsync("/v1/admin/webhook_deliveries?starting_after=-1", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_request");

        // The page's Redeliver: an admin sends an event again to another user's (live) endpoint.
        string eventId = pending[0]!.Str("event_id");
        var queued = (await api.PostAsync($"/v1/events/{eventId}/redeliver", admin, new { endpoint_id = kept.Str("id") }, key: "")).Expect(HttpStatusCode.Accepted);
        Assert.Equal(eventId, queued.Str("event_id"));
        // A deleted endpoint cannot be sent to again: the page says so rather than offering the button.
        (await api.PostAsync($"/v1/events/{rows[0].Str("event_id")}/redeliver", admin, new { endpoint_id = doomed.Str("id") }, key: ""))
            .ExpectError(HttpStatusCode.NotFound, "webhook_endpoint_not_found");
    }
}
