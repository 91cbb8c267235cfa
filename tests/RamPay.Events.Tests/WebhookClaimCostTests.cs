using System.Reflection;
using System.Text;
using RamPay.Webhooks;

namespace RamPay.Events.Tests;

/// <summary>
/// What the dispatcher asks of its store while one endpoint is at its bound with a backlog behind it (docs/webhooks.md,
/// "How the dispatcher claims"; docs/benchmarks.md, "Webhook delivery, round 5"): a claim that skips the busy endpoint
/// walks its whole backlog to find the others' rows, so it must not run on every poll.
/// </summary>
public sealed class WebhookClaimCostTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static long NowMs => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>The store, with its claims counted: those that skipped endpoints, and those of them that found nothing.</summary>
    public class CountingStore : DispatchProxy
    {
        public IWebhookStore Inner = null!;
        public int SkippingClaims, EmptySkippingClaims;

        protected override object? Invoke(MethodInfo? method, object?[]? args)
        {
            try
            {
                object? result = method!.Invoke(Inner, args);
                if (method.Name == nameof(IWebhookStore.Claim) && args![3] is IReadOnlyCollection<string> { Count: > 0 })
                {
                    Interlocked.Increment(ref SkippingClaims);
                    if (((List<WebhookDelivery>)result!).Count == 0) Interlocked.Increment(ref EmptySkippingClaims);
                }
                return result;
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                throw e.InnerException;
            }
        }
    }

    [Fact]
    public async Task A_busy_endpoints_backlog_is_not_walked_on_every_poll_and_another_endpoint_still_gets_its_deliveries()
    {
        using var slow = new WebhookReceiver { Delay = TimeSpan.FromMilliseconds(200) };
        using var fast = new WebhookReceiver();
        using var inner = new WebhookStore(Path.Combine(_dir.Path, "webhooks"));
        var store = DispatchProxy.Create<IWebhookStore, CountingStore>();
        var counting = (CountingStore)(object)store;
        counting.Inner = inner;
        var slowEndpoint = inner.Create(1, true, slow.Url(), ["*"], null, NowMs);
        var fastEndpoint = inner.Create(1, true, fast.Url(), ["*"], null, NowMs);
        inner.Enqueue([.. Enumerable.Range(1, 3_000).Select(i => new WebhookStore.NewDelivery(slowEndpoint.Id, 1, slowEndpoint.Url, $"slow-{i}", "PaymentApproved", Encoding.UTF8.GetBytes($"{{\"n\":{i}}}")))],
            "test", null, NowMs - 1_000);
        var options = new WebhookOptions { AllowPrivateNetworks = true, MaxConcurrency = 64, MaxPerEndpoint = 4 };
        using var dispatcher = new WebhookDispatcher(store, options, new UrlGuard(true));
        using var stop = new CancellationTokenSource();
        var run = dispatcher.RunAsync(stop.Token);

        // 1. Three seconds with the slow endpoint at its bound (4 in flight, 8 held) and nothing else due.
        await Task.Delay(TimeSpan.FromSeconds(3));
        int skipping = Volatile.Read(ref counting.SkippingClaims), empty = Volatile.Read(ref counting.EmptySkippingClaims);
        // A poll is 20 ms: walking the backlog on each was ~150 claims in 3 s. Now one at most every 4 polls (80 ms).
        Assert.InRange(empty, 1, 3_000 / (4 * (int)options.Poll.TotalMilliseconds) + 3);
        Assert.True(skipping <= empty + 3, $"{skipping} skipping claims, {empty} of them empty");
        Assert.True(slow.Requests.Count >= 8, $"the slow endpoint got {slow.Requests.Count}");

        // 2. New deliveries for another endpoint behind that backlog are still claimed promptly (within a window, not a lease).
        var added = DateTime.UtcNow;
        inner.Enqueue([.. Enumerable.Range(1, 20).Select(i => new WebhookStore.NewDelivery(fastEndpoint.Id, 1, fastEndpoint.Url, $"fast-{i}", "PaymentApproved", Encoding.UTF8.GetBytes($"{{\"n\":{i}}}")))],
            "test", null, NowMs);
        dispatcher.Wake();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (fast.Requests.Count < 20 && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.Equal(20, fast.Requests.Select(r => r.EventId).Distinct().Count());
        Assert.True(DateTime.UtcNow - added < TimeSpan.FromSeconds(5), $"the other endpoint waited {(DateTime.UtcNow - added).TotalMilliseconds:0} ms");
        stop.Cancel();
        await run;
        // Each delivery sent once (every attempt succeeded).
        Assert.Equal(slow.Requests.Count, slow.Requests.Select(r => r.EventId).Distinct().Count());
    }
}
