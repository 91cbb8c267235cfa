using System.Diagnostics;
using RamPay.Client;
using RamPay.Webhooks;
using Xunit.Abstractions;

namespace RamPay.Events.Tests;

/// <summary>
/// Deliveries per second from the outbox to a local receiver, signing included (docs/benchmarks.md, "Webhooks"): the
/// real dispatcher, store (SQLite, synchronous=FULL) and HTTP stack. Also a test: every delivery arrives with a valid
/// signature and the outbox ends with nothing pending.
/// </summary>
public sealed class WebhookThroughputTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Delivers_a_queued_backlog_with_valid_signatures_and_reports_the_rate()
    {
        int count = int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_WEBHOOK_BENCH_COUNT"), out int n) ? n : 5_000;
        using var receiver = new WebhookReceiver();
        // Baseline in the same run: the same receiver, plain POSTs of the same bodies at the same concurrency, no
        // signing, no outbox. What the dispatcher adds is the difference.
        double baseline = await PlainPostsPerSecond(receiver, count, 64);
        while (!receiver.Requests.IsEmpty) receiver.Requests.TryDequeue(out _);
        using var store = new WebhookStore(Path.Combine(_dir.Path, "webhooks"));
        var endpoint = store.Create(1, true, receiver.Url(), ["*"], null, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var payload = System.Text.Encoding.UTF8.GetBytes(new string('x', 600)); // about a transfer event's size
        var deliveries = Enumerable.Range(1, count).Select(i => new WebhookStore.NewDelivery(endpoint.Id, 1, endpoint.Url, $"{i}-0-1", "PaymentApproved", payload)).ToList();
        store.Enqueue(deliveries, "bench", null, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        using var dispatcher = new WebhookDispatcher(store, new WebhookOptions { AllowPrivateNetworks = true, MaxConcurrency = 64, MaxPerEndpoint = 64 }, new UrlGuard(true));
        using var stop = new CancellationTokenSource();
        var watch = Stopwatch.StartNew();
        var run = dispatcher.RunAsync(stop.Token);
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (store.PendingCount() > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        double seconds = watch.Elapsed.TotalSeconds;
        stop.Cancel();
        await run;
        Assert.Equal(0, store.PendingCount());
        var received = receiver.Requests.ToList();
        Assert.Equal(count, received.Select(r => r.EventId).Distinct().Count());
        Assert.All(received, r => Assert.True(WebhookSignature.Verify(r.Body, r.Signature, endpoint.Secret, TimeSpan.FromMinutes(5))));
        output.WriteLine($"webhooks: {count} deliveries in {seconds:F2} s = {count / seconds:F0}/s; baseline plain POSTs {baseline:F0}/s (load average {File.ReadAllText("/proc/loadavg").Trim()})");
    }

    private static async Task<double> PlainPostsPerSecond(WebhookReceiver receiver, int count, int concurrency)
    {
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, UseProxy = false });
        var body = new byte[600];
        int next = 0;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= count)
            {
                using var content = new ByteArrayContent(body);
                using var response = await http.PostAsync(receiver.Url(), content);
                Assert.True(response.IsSuccessStatusCode);
            }
        }));
        return count / watch.Elapsed.TotalSeconds;
    }
}
