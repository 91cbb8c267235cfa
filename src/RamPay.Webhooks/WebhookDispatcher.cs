using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net.Http.Headers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RamPay.Client;
using RamPay.Events;

namespace RamPay.Webhooks;

/// <summary>
/// Sends the outbox's due deliveries (docs/webhooks.md, "Delivery"): signed POSTs through one pooled handler that
/// follows no redirect and checks every connection's address (<see cref="UrlGuard.ConnectAsync"/>), bounded overall and
/// per endpoint, a circuit breaker per endpoint, exponential backoff with jitter, dead letter after
/// <see cref="WebhookOptions.MaxAge"/>, an endpoint disabled after failing for <see cref="WebhookOptions.DisableAfter"/>.
/// Outcomes are written in batches (one transaction, one fsync for many attempts). A crash between a send and its
/// record sends that delivery again after restart: at least once; receivers de-duplicate by <c>RamPay-Event-Id</c>.
/// </summary>
public sealed class WebhookDispatcher : IDisposable
{
    private static readonly Counter<long> Deliveries = EventsTelemetry.Meter.CreateCounter<long>("rampay_webhook_deliveries_total",
        description: "Webhook delivery attempts by outcome: succeeded, failed (will be retried), dead (dead-lettered).");
    private static readonly KeyValuePair<string, object?> Succeeded = new("outcome", "succeeded"), Failed = new("outcome", "failed"), Dead = new("outcome", "dead");

    private readonly IWebhookStore _store;
    private readonly WebhookOptions _options;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;
    private readonly HttpClient _http;
    private readonly SemaphoreSlim _overall;
    private readonly ConcurrentDictionary<long, byte> _inFlight = new();
    // Deliveries whose outcome is committed: they leave _inFlight only before the next Due query, so a stale snapshot
    // (read before the commit) can never send one again with an old attempt number.
    private readonly ConcurrentQueue<long> _finished = new();
    private readonly ConcurrentDictionary<string, EndpointState> _endpoints = new();
    private readonly BatchedOutcomeWriter<WebhookStore.Outcome> _outcomes;
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly object _pendingGaugeLock = new();

    private sealed class EndpointState
    {
        public int InFlight;
        public int ConsecutiveFailures;
        public long OpenUntilMs;
    }

    public WebhookDispatcher(IWebhookStore store, WebhookOptions options, UrlGuard guard, ILogger<WebhookDispatcher>? logger = null, TimeProvider? clock = null)
    {
        options.Validate();
        _store = store;
        _options = options;
        _clock = clock ?? TimeProvider.System;
        _logger = logger ?? NullLogger<WebhookDispatcher>.Instance;
        _outcomes = new BatchedOutcomeWriter<WebhookStore.Outcome>(store.Record, written =>
        {
            foreach (var o in written) _finished.Enqueue(o.DeliveryId);
            Wake();
        }, _logger, "webhook");
        _overall = new SemaphoreSlim(options.MaxConcurrency, options.MaxConcurrency);
        _http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = false,
            UseCookies = false,
            ConnectCallback = guard.ConnectAsync,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            MaxConnectionsPerServer = options.MaxPerEndpoint,
            ConnectTimeout = options.Timeout,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            MaxResponseHeadersLength = 16, // KB
        })
        { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("RamPay-Webhooks/1");
        EventsTelemetry.Meter.CreateObservableGauge("rampay_webhook_pending", () => PendingForGauge(),
            description: "Webhook deliveries not yet delivered nor dead-lettered (in the outbox).");
    }

    private long _pendingCached;
    private long _pendingAtMs = -1;

    private long PendingForGauge()
    {
        lock (_pendingGaugeLock)
        {
            long now = Environment.TickCount64;
            if (now - _pendingAtMs > 500) { _pendingCached = _store.PendingCount(); _pendingAtMs = now; }
            return _pendingCached;
        }
    }

    /// <summary>Wakes the loop at once (new deliveries).</summary>
    public void Wake()
    {
        if (_wake.CurrentCount == 0) try { _wake.Release(); } catch (SemaphoreFullException) { }
    }

    public async Task RunAsync(CancellationToken stop)
    {
        var writer = Task.Run(_outcomes.RunAsync, CancellationToken.None);
        var skipped = new List<long>();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                while (_finished.TryDequeue(out long finished)) _inFlight.TryRemove(finished, out _);
                long now = Now;
                // Claimed for Lease: another dispatcher sharing the store (a worker of the same group) skips these, and takes
                // them over if this process dies before recording their outcome.
                var due = _store.Claim(now, Math.Min(1024, _options.MaxConcurrency * 4), (long)_options.Lease.TotalMilliseconds);
                int started = 0;
                skipped.Clear();
                foreach (var d in due)
                {
                    // Its outcome is written (that cleared the claim) but the writer has not yet said so (_finished): this claim
                    // is given back at once, or the row would wait out a whole lease before its retry.
                    if (_inFlight.ContainsKey(d.Id)) { skipped.Add(d.Id); continue; }
                    var state = _endpoints.GetOrAdd(d.EndpointId, _ => new EndpointState());
                    // Its circuit is open (its deliveries were deferred), or it has its share in flight: given back.
                    if (state.OpenUntilMs > now || Volatile.Read(ref state.InFlight) >= _options.MaxPerEndpoint)
                    {
                        skipped.Add(d.Id);
                        continue;
                    }
                    WebhookEndpoint? endpoint = null;
                    if (!d.EndpointId.StartsWith(WebhookStore.PaymentUrlPrefix, StringComparison.Ordinal))
                    {
                        endpoint = _store.Endpoint(d.EndpointId);
                        if (endpoint is null || !endpoint.Enabled) { skipped.Add(d.Id); continue; } // deleted or disabled: its deliveries wait (or are dead)
                    }
                    await _overall.WaitAsync(stop).ConfigureAwait(false);
                    _inFlight[d.Id] = 0;
                    Interlocked.Increment(ref state.InFlight);
                    started++;
                    _ = Task.Run(async () =>
                    {
                        try { await AttemptAsync(d, endpoint, state, stop).ConfigureAwait(false); }
                        finally
                        {
                            Interlocked.Decrement(ref state.InFlight);
                            _overall.Release();
                        }
                    }, CancellationToken.None);
                }
                if (skipped.Count > 0) _store.Release(skipped);
                if (started == 0) await _wake.WaitAsync(_options.Poll, stop).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            // Let attempts in flight finish (bounded by the timeout) and their outcomes be written.
            for (int i = 0; i < _options.MaxConcurrency; i++) await _overall.WaitAsync(_options.Timeout + TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            _outcomes.Complete();
            await writer.ConfigureAwait(false);
        }
    }

    private long Now => _clock.GetUtcNow().ToUnixTimeMilliseconds();

    private async Task AttemptAsync(WebhookDelivery d, WebhookEndpoint? endpoint, EndpointState state, CancellationToken stop)
    {
        long now = Now;
        int attempt = d.Attempts + 1;
        var secrets = endpoint is not null ? endpoint.SigningSecrets(now).ToList() : UserSecrets(d.Owner, now);
        int code = 0;
        string? error = null;
        var watch = Stopwatch.StartNew();
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, d.Url) { Content = new ByteArrayContent(d.Payload) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.TryAddWithoutValidation(WebhookSignature.HeaderName, WebhookSignature.Header(d.Payload, now / 1000, secrets));
            request.Headers.TryAddWithoutValidation("RamPay-Event-Id", d.EventId);
            request.Headers.TryAddWithoutValidation("RamPay-Event-Type", d.EventType);
            if (!_options.AllowPrivateNetworks && request.RequestUri!.Scheme != "https") throw new WebhookRefusedException("the URL must use https");
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
            timeout.CancelAfter(_options.Timeout);
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            code = (int)response.StatusCode;
            // Read at most MaxResponseBytes of the body (then drop the rest with the connection).
            await using (var body = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false))
            {
                var buffer = new byte[Math.Min(_options.MaxResponseBytes, 4096) + 1];
                int total = 0;
                while (total < _options.MaxResponseBytes)
                {
                    int n = await body.ReadAsync(buffer.AsMemory(0, Math.Min(buffer.Length, _options.MaxResponseBytes - total)), timeout.Token).ConfigureAwait(false);
                    if (n == 0) break;
                    total += n;
                }
            }
            if (code is < 200 or > 299) error = $"HTTP {code}";
        }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested)
        {
            error = $"no answer within {_options.Timeout.TotalMilliseconds:0} ms";
        }
        catch (OperationCanceledException)
        {
            // Stopping: no outcome; the delivery stays pending and is attempted again after restart.
            _inFlight.TryRemove(d.Id, out _);
            return;
        }
        catch (Exception e) when (e is HttpRequestException or WebhookRefusedException or IOException or InvalidOperationException or UriFormatException)
        {
            error = Innermost(e);
        }
        long latency = watch.ElapsedMilliseconds;
        string status;
        long next = 0;
        long done = Now;
        if (error is null)
        {
            status = "succeeded";
            Deliveries.Add(1, Succeeded);
            state.ConsecutiveFailures = 0;
            if (endpoint is { FailingSinceMs: > 0 }) _store.SetFailing(endpoint.Id, 0);
        }
        else
        {
            long delay = Backoff(attempt);
            if (done + delay - d.CreatedMs > (long)_options.MaxAge.TotalMilliseconds)
            {
                status = "dead";
                Deliveries.Add(1, Dead);
            }
            else
            {
                status = "pending";
                next = done + delay;
                Deliveries.Add(1, Failed);
            }
            OnFailure(d, endpoint, state, done);
        }
        await _outcomes.WriteAsync(new WebhookStore.Outcome(d.Id, attempt, done, code, latency, error, status, next)).ConfigureAwait(false);
    }

    private void OnFailure(WebhookDelivery d, WebhookEndpoint? endpoint, EndpointState state, long now)
    {
        if (Interlocked.Increment(ref state.ConsecutiveFailures) >= _options.BreakerFailures && state.OpenUntilMs <= now)
        {
            state.OpenUntilMs = now + (long)_options.BreakerOpen.TotalMilliseconds;
            _store.Defer(d.EndpointId, state.OpenUntilMs);
            _logger.LogWarning("webhook endpoint {EndpointId}: {Failures} failures in a row, circuit open for {OpenSeconds:0} s", d.EndpointId, state.ConsecutiveFailures, _options.BreakerOpen.TotalSeconds);
        }
        if (endpoint is null) return;
        if (endpoint.FailingSinceMs == 0) _store.SetFailing(endpoint.Id, now);
        else if (now - endpoint.FailingSinceMs > (long)_options.DisableAfter.TotalMilliseconds && _store.DisableFailing(endpoint.Id))
        {
            // DisableFailing is true for one caller only (of every process sharing the store): the owner is told once.
            _logger.LogWarning("webhook endpoint {EndpointId} of user {Owner} disabled: every attempt failed for {Hours:0.#} h ({Url})",
                endpoint.Id, endpoint.Owner, _options.DisableAfter.TotalHours, endpoint.Url);
            try { Disabled?.Invoke(endpoint); }
            catch (Exception e) { _logger.LogError(e, "webhook endpoint {EndpointId}: telling its owner it was disabled failed", endpoint.Id); }
        }
    }

    /// <summary>An endpoint was disabled for failing (its owner is to be told).</summary>
    public event Action<WebhookEndpoint>? Disabled;

    private List<string> UserSecrets(long user, long now)
    {
        var (secret, old, until) = _store.UserSecret(user);
        return old is not null && now < until ? [secret, old] : [secret];
    }

    /// <summary>The delay before attempt n+1: RetryBase × 2^(n−1), capped, times a jitter in [0.5, 1.5).</summary>
    public long Backoff(int attempt) => Retry.BackoffMs(attempt, _options.RetryBase, _options.RetryMax);

    private static string Innermost(Exception e)
    {
        while (e.InnerException is not null && e is not WebhookRefusedException) e = e.InnerException;
        string m = e.Message;
        return m.Length > 300 ? m[..300] : m;
    }

    public void Dispose()
    {
        _http.Dispose();
        _overall.Dispose();
    }
}
