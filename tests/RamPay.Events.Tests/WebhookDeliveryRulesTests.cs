using System.Net;
using System.Net.Sockets;
using System.Text;
using RamPay.Webhooks;

namespace RamPay.Events.Tests;

/// <summary>
/// The delivery rules of docs/webhooks.md ("Delivery", "Security") that the server tests do not reach, on the real
/// dispatcher and its own HTTP handler: a redirect is not followed (a 3xx is a failed attempt), only the start of a
/// response body is read, the SSRF check runs at connect time in the dispatcher itself, a delivery still failing after
/// MaxAge is dead-lettered, and the retry delays are the documented exponential backoff with jitter.
/// </summary>
public sealed class WebhookDeliveryRulesTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static long NowMs => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private static async Task WaitUntil(Func<bool> done, string what, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!done())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(what);
            await Task.Delay(20);
        }
    }

    /// <summary>One delivery to <paramref name="url"/>, run through a dispatcher until <paramref name="done"/>; the endpoint's attempts, newest first.</summary>
    private async Task<List<WebhookAttempt>> DeliverOne(string url, WebhookOptions options, UrlGuard guard, Func<WebhookStore, WebhookEndpoint, bool> done, string what)
    {
        using var store = new WebhookStore(Path.Combine(_dir.Path, "webhooks"));
        var endpoint = store.Create(1, true, url, ["*"], null, NowMs);
        store.Enqueue([new WebhookStore.NewDelivery(endpoint.Id, 1, endpoint.Url, "7-0-1", "PaymentApproved", "{\"event_id\":\"7-0-1\"}"u8.ToArray())], "test", null, NowMs);
        using var dispatcher = new WebhookDispatcher(store, options, guard);
        using var stop = new CancellationTokenSource();
        var run = dispatcher.RunAsync(stop.Token);
        try
        {
            await WaitUntil(() => done(store, endpoint), what);
        }
        finally
        {
            stop.Cancel();
            await run;
        }
        return store.Attempts(endpoint.Id, null, 100);
    }

    private static bool Attempted(WebhookStore store, WebhookEndpoint e) => store.Attempts(e.Id, null, 1).Count > 0;

    [Fact]
    public async Task A_redirect_is_not_followed_and_is_a_failed_attempt()
    {
        using var target = new WebhookReceiver();
        // 307 keeps the method and body: a client that followed it would POST the event to the target.
        await using var redirecting = new RawHttpServer($"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target.Url()}\r\nContent-Length: 0\r\n\r\n", stall: false);
        var attempts = await DeliverOne(redirecting.Url, new WebhookOptions { AllowPrivateNetworks = true, RetryBase = TimeSpan.FromHours(1), RetryMax = TimeSpan.FromHours(1) },
            new UrlGuard(true), Attempted, "the attempt recorded");
        var attempt = Assert.Single(attempts);
        Assert.Equal((307, "HTTP 307", "pending"), (attempt.StatusCode, attempt.Error, attempt.Status)); // failed, a retry due
        Assert.Equal(1, redirecting.Requests);
        Assert.Empty(target.Requests);
        // The request itself: a POST of JSON with the documented headers.
        Assert.StartsWith("POST /hook HTTP/1.1\r\n", redirecting.LastHeaders, StringComparison.Ordinal);
        foreach (var header in new[] { "Content-Type: application/json\r\n", "RamPay-Event-Id: 7-0-1\r\n", "RamPay-Event-Type: PaymentApproved\r\n", "RamPay-Signature: t=" })
            Assert.Contains(header, redirecting.LastHeaders, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Only_the_start_of_a_response_body_is_read()
    {
        // A 2xx whose 100 MB body never arrives: 64 KB are sent, then nothing, the connection held open. A dispatcher
        // that read the body to its end would wait for the attempt's timeout and record a failure; one that reads at
        // most MaxResponseBytes records the 2xx as delivered.
        await using var endless = new RawHttpServer("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 104857600\r\n\r\n" + new string('x', 64 * 1024), stall: true);
        var attempts = await DeliverOne(endless.Url, new WebhookOptions { AllowPrivateNetworks = true, Timeout = TimeSpan.FromSeconds(20), RetryBase = TimeSpan.FromHours(1), RetryMax = TimeSpan.FromHours(1) },
            new UrlGuard(true), Attempted, "the attempt recorded");
        var attempt = Assert.Single(attempts);
        Assert.Equal((200, null, "succeeded"), (attempt.StatusCode, attempt.Error, attempt.Status));
    }

    [Fact]
    public async Task The_dispatcher_refuses_a_name_that_resolves_to_loopback_when_it_connects()
    {
        using var receiver = new WebhookReceiver();
        // Registered while the name pointed elsewhere; now it resolves to 127.0.0.1, where the receiver listens.
        var guard = new UrlGuard(allowPrivateNetworks: false, (_, _) => Task.FromResult(new[] { IPAddress.Loopback }));
        var attempts = await DeliverOne($"https://rebind.example:{receiver.Port}/hook", new WebhookOptions { RetryBase = TimeSpan.FromHours(1), RetryMax = TimeSpan.FromHours(1) },
            guard, Attempted, "the attempt recorded");
        var attempt = Assert.Single(attempts);
        Assert.Equal((0, "pending"), (attempt.StatusCode, attempt.Status));
        Assert.Contains("refused at connect time", attempt.Error, StringComparison.Ordinal);
        Assert.Empty(receiver.Requests);
    }

    [Fact]
    public async Task A_delivery_still_failing_after_MaxAge_is_dead_lettered_and_not_tried_again()
    {
        using var receiver = new WebhookReceiver();
        receiver.Script([.. Enumerable.Repeat(500, 10_000)]);
        var options = new WebhookOptions
        {
            AllowPrivateNetworks = true, MaxAge = TimeSpan.FromSeconds(2), RetryBase = TimeSpan.FromMilliseconds(100),
            RetryMax = TimeSpan.FromMilliseconds(400), BreakerFailures = 10_000,
        };
        var attempts = await DeliverOne(receiver.Url(), options, new UrlGuard(true),
            (store, e) => store.Attempts(e.Id, "dead", 1).Count > 0, "the delivery dead-lettered");
        // Newest first: the last attempt is dead, every earlier one failed with a retry due; nothing is pending.
        Assert.True(attempts.Count >= 2, $"{attempts.Count} attempts");
        Assert.Equal("dead", attempts[0].Status);
        Assert.All(attempts.Skip(1), a => Assert.Equal("pending", a.Status));
        Assert.All(attempts, a => Assert.Equal(500, a.StatusCode));
        Assert.Equal(Enumerable.Range(1, attempts.Count).Reverse(), attempts.Select(a => a.Attempt));
        Assert.Equal(attempts.Count, receiver.Requests.Count);
        using var reopened = new WebhookStore(Path.Combine(_dir.Path, "webhooks"));
        Assert.Equal(0, reopened.PendingCount());
        Assert.Empty(reopened.Claim(NowMs + 3_600_000, 10, 60_000)); // a dead delivery is never due again
    }

    [Fact]
    public async Task After_BreakerFailures_failures_in_a_row_the_circuit_opens_and_the_endpoints_other_deliveries_wait()
    {
        using var receiver = new WebhookReceiver();
        receiver.Script([.. Enumerable.Repeat(500, 100)]);
        using var store = new WebhookStore(Path.Combine(_dir.Path, "webhooks"));
        var endpoint = store.Create(1, true, receiver.Url(), ["*"], null, NowMs);
        store.Enqueue([.. Enumerable.Range(1, 10).Select(i => new WebhookStore.NewDelivery(endpoint.Id, 1, endpoint.Url, $"7-0-{i}", "PaymentApproved", "{}"u8.ToArray()))], "test", null, NowMs);
        // One at a time (MaxPerEndpoint 1), so the third attempt could only start after the second's failure was counted.
        var options = new WebhookOptions
        {
            AllowPrivateNetworks = true, MaxPerEndpoint = 1, BreakerFailures = 2, BreakerOpen = TimeSpan.FromHours(1),
            RetryBase = TimeSpan.FromHours(1), RetryMax = TimeSpan.FromHours(1),
        };
        using var dispatcher = new WebhookDispatcher(store, options, new UrlGuard(true));
        using var stop = new CancellationTokenSource();
        var run = dispatcher.RunAsync(stop.Token);
        await WaitUntil(() => store.Attempts(endpoint.Id, null, 10).Count >= 2, "two failed attempts recorded");
        await Task.Delay(1_000); // time for a third attempt, were the circuit closed (a negative check: the count may only stay)
        stop.Cancel();
        await run;
        Assert.Equal(2, receiver.Requests.Count);
        Assert.Equal(2, store.Attempts(endpoint.Id, null, 10).Count);
        Assert.Equal(10, store.PendingCount()); // the 8 untried wait for the circuit, the 2 failed for their retry: none lost
    }

    [Fact]
    public async Task A_rotated_out_secret_signs_until_its_overlap_ends_and_not_after()
    {
        using var receiver = new WebhookReceiver();
        using var store = new WebhookStore(Path.Combine(_dir.Path, "webhooks"));
        var during = store.Create(1, true, receiver.Url("/during"), ["*"], null, NowMs);
        var after = store.Create(1, true, receiver.Url("/after"), ["*"], null, NowMs);
        string duringNew = store.RotateSecret(during.Id, NowMs + 3_600_000); // overlap: an hour from now
        string afterNew = store.RotateSecret(after.Id, NowMs - 1);            // overlap already over
        store.Enqueue([new WebhookStore.NewDelivery(during.Id, 1, store.Endpoint(during.Id)!.Url, "7-0-1", "PaymentApproved", "{}"u8.ToArray()),
            new WebhookStore.NewDelivery(after.Id, 1, store.Endpoint(after.Id)!.Url, "7-0-1", "PaymentApproved", "{}"u8.ToArray())], "test", null, NowMs);
        using var dispatcher = new WebhookDispatcher(store, new WebhookOptions { AllowPrivateNetworks = true }, new UrlGuard(true));
        using var stop = new CancellationTokenSource();
        var run = dispatcher.RunAsync(stop.Token);
        await WaitUntil(() => receiver.Requests.Count >= 2, "both delivered");
        stop.Cancel();
        await run;
        var d = receiver.Requests.Single(r => r.Path == "/during");
        var a = receiver.Requests.Single(r => r.Path == "/after");
        Assert.Equal(2, d.Signature!.Split(',').Count(p => p.StartsWith("v1=", StringComparison.Ordinal)));
        Assert.True(RamPay.Client.WebhookSignature.Verify(d.Body, d.Signature, during.Secret, TimeSpan.FromMinutes(5)));
        Assert.True(RamPay.Client.WebhookSignature.Verify(d.Body, d.Signature, duringNew, TimeSpan.FromMinutes(5)));
        Assert.Equal(1, a.Signature!.Split(',').Count(p => p.StartsWith("v1=", StringComparison.Ordinal)));
        Assert.False(RamPay.Client.WebhookSignature.Verify(a.Body, a.Signature, after.Secret, TimeSpan.FromMinutes(5)));
        Assert.True(RamPay.Client.WebhookSignature.Verify(a.Body, a.Signature, afterNew, TimeSpan.FromMinutes(5)));
    }

    [Fact]
    public void Retry_delays_double_from_the_base_up_to_the_cap_with_jitter_of_half_either_way()
    {
        var retryBase = TimeSpan.FromSeconds(2);
        var max = TimeSpan.FromHours(1);
        for (int attempt = 1; attempt <= 40; attempt++)
        {
            double nominal = Math.Min(retryBase.TotalMilliseconds * Math.Pow(2, attempt - 1), max.TotalMilliseconds);
            var delays = Enumerable.Range(0, 500).Select(_ => Retry.BackoffMs(attempt, retryBase, max)).ToList();
            Assert.All(delays, d => Assert.InRange(d, (long)(nominal * 0.5), (long)(nominal * 1.5)));
            Assert.True(delays.Distinct().Count() > 100, $"attempt {attempt}: no jitter ({delays.Distinct().Count()} distinct delays)");
        }
        // The first retries come within seconds; by the 12th the cap (1 h) holds.
        Assert.InRange(Retry.BackoffMs(1, retryBase, max), 1_000, 3_000);
        Assert.InRange(Retry.BackoffMs(12, retryBase, max), 1_800_000, 5_400_000);
    }

    /// <summary>
    /// A raw HTTP/1.1 server on 127.0.0.1: reads each request (headers and Content-Length body), answers the scripted
    /// bytes, then closes the connection, or keeps it open without sending more (<paramref name="stall"/>).
    /// </summary>
    private sealed class RawHttpServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly List<TcpClient> _held = [];
        private readonly Task _loop;
        private int _requests;

        public RawHttpServer(string response, bool stall)
        {
            _listener.Start();
            _loop = Task.Run(() => Loop(Encoding.ASCII.GetBytes(response), stall));
        }

        public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/hook";
        public int Requests => Volatile.Read(ref _requests);
        /// <summary>The header block of the last request (request line and headers).</summary>
        public string? LastHeaders { get; private set; }

        private async Task Loop(byte[] response, bool stall)
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
                catch (Exception) { return; }
                _ = Task.Run(async () =>
                {
                    try
                    {
                        var stream = client.GetStream();
                        await ReadRequest(stream);
                        Interlocked.Increment(ref _requests);
                        await stream.WriteAsync(response, _stop.Token);
                        await stream.FlushAsync(_stop.Token);
                        if (stall) lock (_held) _held.Add(client);
                        else client.Dispose();
                    }
                    catch (Exception)
                    {
                        client.Dispose();
                    }
                });
            }
        }

        private async Task ReadRequest(NetworkStream stream)
        {
            var seen = new List<byte>();
            var one = new byte[1];
            while (!(seen.Count >= 4 && seen[^4] == '\r' && seen[^3] == '\n' && seen[^2] == '\r' && seen[^1] == '\n'))
            {
                if (await stream.ReadAsync(one, _stop.Token) == 0) throw new IOException("closed before the headers ended");
                seen.Add(one[0]);
            }
            string headers = Encoding.ASCII.GetString([.. seen]);
            LastHeaders = headers;
            var length = headers.Split("\r\n").FirstOrDefault(h => h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
            int left = length is null ? 0 : int.Parse(length["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
            var body = new byte[4096];
            while (left > 0)
            {
                int n = await stream.ReadAsync(body.AsMemory(0, Math.Min(left, body.Length)), _stop.Token);
                if (n == 0) throw new IOException("closed in the body");
                left -= n;
            }
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Stop();
            try { await _loop; } catch (Exception) { }
            lock (_held) foreach (var c in _held) c.Dispose();
            _stop.Dispose();
        }
    }
}
