using System.Text;
using RamPay.Client;
using RamPay.Webhooks;

namespace RamPay.Events.Tests;

/// <summary>
/// The dispatcher's bounds after issue 12's delivery round (docs/webhooks.md, "Delivery"): the claimed deliveries it
/// holds per endpoint, the bound per endpoint in flight, one slow endpoint's backlog not holding another back, each
/// delivery sent once when every attempt succeeds, and its signatures the client's.
/// </summary>
public sealed class WebhookDispatcherBoundsTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static long NowMs => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private static List<WebhookStore.NewDelivery> Backlog(WebhookEndpoint endpoint, string prefix, int count) =>
        [.. Enumerable.Range(1, count).Select(i => new WebhookStore.NewDelivery(endpoint.Id, 1, endpoint.Url, $"{prefix}-{i}", "PaymentApproved", Encoding.UTF8.GetBytes($"{{\"n\":{i}}}")))];

    private static async Task WaitUntil(Func<bool> done, string what, int seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!done())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(what);
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task One_endpoint_never_has_more_than_MaxPerEndpoint_in_flight_and_each_delivery_is_sent_once()
    {
        using var receiver = new WebhookReceiver { Delay = TimeSpan.FromMilliseconds(30) };
        using var store = new WebhookStore(Path.Combine(_dir.Path, "webhooks"));
        var endpoint = store.Create(1, true, receiver.Url(), ["*"], null, NowMs);
        store.Enqueue(Backlog(endpoint, "a", 300), "test", null, NowMs);
        using var dispatcher = new WebhookDispatcher(store, new WebhookOptions { AllowPrivateNetworks = true, MaxConcurrency = 64, MaxPerEndpoint = 5 }, new UrlGuard(true));
        using var stop = new CancellationTokenSource();
        var run = dispatcher.RunAsync(stop.Token);
        await WaitUntil(() => store.PendingCount() == 0, "the backlog delivered", 120);
        stop.Cancel();
        await run;
        var got = receiver.Requests.ToList();
        Assert.Equal(300, got.Count); // every attempt succeeded: nothing sent twice
        Assert.Equal(300, got.Select(r => r.EventId).Distinct().Count());
        Assert.InRange(receiver.MaxInFlight, 2, 5); // the bound holds, and it was used
        Assert.All(got, r => Assert.True(WebhookSignature.Verify(r.Body, r.Signature, endpoint.Secret, TimeSpan.FromMinutes(5))));
    }

    [Fact]
    public async Task A_slow_endpoints_older_backlog_does_not_hold_another_endpoint_back()
    {
        using var slow = new WebhookReceiver { Delay = TimeSpan.FromMilliseconds(500) };
        using var fast = new WebhookReceiver();
        using var store = new WebhookStore(Path.Combine(_dir.Path, "webhooks"));
        var slowEndpoint = store.Create(1, true, slow.Url(), ["*"], null, NowMs);
        var fastEndpoint = store.Create(1, true, fast.Url(), ["*"], null, NowMs);
        // The slow endpoint's 2,000 deliveries are older (due first); at 4 in flight and 0.5 s each they take minutes.
        store.Enqueue(Backlog(slowEndpoint, "slow", 2_000), "test", null, NowMs - 1_000);
        store.Enqueue(Backlog(fastEndpoint, "fast", 50), "test", null, NowMs);
        using var dispatcher = new WebhookDispatcher(store, new WebhookOptions { AllowPrivateNetworks = true, MaxConcurrency = 64, MaxPerEndpoint = 4 }, new UrlGuard(true));
        using var stop = new CancellationTokenSource();
        var run = dispatcher.RunAsync(stop.Token);
        // Claims skip an endpoint holding its share (2 x 4 claimed, unstarted): the fast one's are claimed at once.
        await WaitUntil(() => fast.Requests.Count >= 50, "the fast endpoint's deliveries", 20);
        int slowSoFar = slow.Requests.Count;
        Assert.True(slowSoFar < 200, $"the slow endpoint had {slowSoFar} already");
        // The slow one goes on at its bound (its first requests may not have arrived yet when the fast ones are done).
        await WaitUntil(() => slow.Requests.Count >= 12, "the slow endpoint's first deliveries", 30);
        Assert.InRange(slow.MaxInFlight, 1, 4);
        stop.Cancel();
        await run;
        // Stopped: what was claimed and not started, or cut short by the stop, is given back (pending, claimable at once
        // by anyone); only recorded successes left the outbox.
        Assert.InRange(store.PendingCount(), 2_000 - slow.Requests.Count, 2_000 - slow.Requests.Count + 4);
        Assert.Equal(store.PendingCount(), store.Claim(NowMs, 5_000, 60_000).Count);
    }

    [Fact]
    public void Signatures_are_the_clients_with_one_secret_and_two_during_a_rotation()
    {
        using var store = new WebhookStore(Path.Combine(_dir.Path, "webhooks"));
        using var dispatcher = new WebhookDispatcher(store, new WebhookOptions(), new UrlGuard(false));
        var body = Encoding.UTF8.GetBytes("{\"id\":\"evt\",\"type\":\"PaymentApproved\",\"data\":\"" + new string('é', 300) + "\"}");
        string a = WebhookStore.NewSecret(), b = WebhookStore.NewSecret();
        // The reference: the documented rule written out plainly (docs/webhooks.md), not the code under test.
        static string Reference(byte[] body, long t, params string[] secrets)
        {
            var signed = Encoding.ASCII.GetBytes(t.ToString(System.Globalization.CultureInfo.InvariantCulture) + ".").Concat(body).ToArray();
            return "t=" + t.ToString(System.Globalization.CultureInfo.InvariantCulture)
                + string.Concat(secrets.Select(s => ",v1=" + Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData(Encoding.UTF8.GetBytes(s), signed))));
        }
        Assert.Equal(Reference(body, 1_765_000_000, a), dispatcher.Sign(body, 1_765_000_000, a, null));
        Assert.Equal(Reference(body, 1_765_000_000, a, b), dispatcher.Sign(body, 1_765_000_000, a, b));
        Assert.Equal(Reference([], 0, b), dispatcher.Sign([], 0, b, null)); // the key cache gives the same key again
        Assert.Equal(Reference(body, 1_765_000_001, b), dispatcher.Sign(body, 1_765_000_001, b, null));
        Assert.Equal(Reference(body, -1, a), dispatcher.Sign(body, -1, a, null));
        Assert.Equal(Reference(body, 1_765_000_000, a, b), WebhookSignature.Header(body, 1_765_000_000, [a, b]));
        Assert.True(WebhookSignature.Verify(body, dispatcher.Sign(body, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), a, b), b, TimeSpan.FromMinutes(5)));
        Assert.Throws<ArgumentException>(() => WebhookSignature.Header(body, 0, []));
    }
}
