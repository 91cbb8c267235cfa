using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RamPay.Client;
using RamPay.Core;
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
    /// <summary>Claimed deliveries not yet started, in claim order, with the time of their claim (the loop's thread only).</summary>
    private readonly List<(WebhookDelivery Delivery, long ClaimedMs, EndpointState State)> _ready = [];
    /// <summary>The most deliveries <see cref="_ready"/> holds: a bound, and a few passes' worth of attempts.</summary>
    private readonly int _readyCapacity;
    /// <summary>The most deliveries one endpoint has claimed and not started (twice its bound in flight).</summary>
    private readonly int _endpointShare;
    /// <summary>
    /// A claim that skips the endpoints at their share walks every due row of theirs to find the others' (neither store
    /// has an index that skips an endpoint): with one busy endpoint and a backlog of 20,000 rows, one such claim on every
    /// poll and after every outcome batch cost more than the deliveries (docs/benchmarks.md, "Webhook delivery, round 5").
    /// When one found all there was, the next is not tried before this time while as many endpoints are at their share
    /// (<see cref="_dryFull"/>); a claim that skips none is never held back. The loop's thread only.
    /// </summary>
    private long _dryUntilMs;
    private int _dryFull;
    /// <summary>1 when new deliveries were added, or an endpoint has room for more: the loop claims on its next pass.</summary>
    private int _claimNeeded = 1;
    /// <summary>Signing keys (a secret's UTF-8 bytes) by secret, so an attempt does not encode its secret again; bounded.</summary>
    private readonly ConcurrentDictionary<string, byte[]> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Uri> _uris = new(StringComparer.Ordinal);
    private readonly object _pendingGaugeLock = new();

    private sealed class EndpointState
    {
        public int InFlight;
        /// <summary>Claimed and waiting in <see cref="_ready"/> (the loop's thread only).</summary>
        public int Held;
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
        _endpointShare = 2 * Math.Min(options.MaxPerEndpoint, options.MaxConcurrency);
        _readyCapacity = Math.Max(_endpointShare, Math.Min(4096, 2 * options.MaxConcurrency));
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
            // Only the start of a body is read (MaxResponseBytes); without this the handler would go on reading the rest (up to 1 MB
            // and 2 s by default) in the background to reuse the connection. A receiver's body is not ours to download: drop
            // such a connection instead (a small body read whole still returns its connection to the pool).
            MaxResponseDrainSize = 0,
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

    /// <summary>New deliveries were added: the loop claims and starts them at once.</summary>
    public void Wake()
    {
        Volatile.Write(ref _claimNeeded, 1);
        WakeLoop();
    }

    private void WakeLoop()
    {
        if (_wake.CurrentCount == 0) try { _wake.Release(); } catch (SemaphoreFullException) { }
    }

    /// <summary>
    /// The loop: claims due deliveries into a bounded list of its own (<see cref="_ready"/>), starts from it every attempt
    /// the bounds allow, and goes back to the store only when that list has room for an endpoint below its share, when new
    /// deliveries were added, or every <see cref="WebhookOptions.Poll"/>. An endpoint at its bound keeps its claimed
    /// deliveries here (at most <see cref="_endpointShare"/>; the next claims skip it) instead of giving them back and
    /// claiming them again on every pass, which cost two SQLite transactions per <see cref="WebhookOptions.MaxPerEndpoint"/>
    /// attempts (docs/benchmarks.md, "Webhook delivery, round 4"). A held delivery not started within half its lease is
    /// given back, so a claim never runs out while this process still means to attempt it.
    /// </summary>
    public async Task RunAsync(CancellationToken stop)
    {
        var writer = Task.Run(_outcomes.RunAsync, CancellationToken.None);
        var release = new List<long>();
        long lastClaimMs = long.MinValue;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                while (_finished.TryDequeue(out long finished)) _inFlight.TryRemove(finished, out _);
                long now = Now;
                bool claimed = false;
                if (Interlocked.Exchange(ref _claimNeeded, 0) != 0 || now - lastClaimMs >= (long)_options.Poll.TotalMilliseconds)
                {
                    lastClaimMs = now;
                    claimed = ClaimMore(now, release);
                }
                int started = StartReady(now, release, stop);
                if (release.Count > 0)
                {
                    _store.Release(release);
                    release.Clear();
                }
                if (started == 0 && !claimed) await _wake.WaitAsync(_options.Poll, stop).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            // What is held unstarted goes back at once (another worker of the group may take it; a local store clears its
            // claims at open anyway).
            try { _store.Release(_ready.Select(r => r.Delivery.Id).ToList()); }
            catch (Exception e) { _logger.LogWarning(e, "webhook claims could not be given back; they are taken again when their lease runs out"); }
            _ready.Clear();
            // Let attempts in flight finish (bounded by the timeout) and their outcomes be written.
            for (int i = 0; i < _options.MaxConcurrency; i++) await _overall.WaitAsync(_options.Timeout + TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            _outcomes.Complete();
            await writer.ConfigureAwait(false);
        }
    }

    /// <summary>Claims into <see cref="_ready"/> while it has room, skipping endpoints that hold their share or whose circuit is open. True when anything was claimed.</summary>
    private bool ClaimMore(long now, List<long> release)
    {
        bool any = false;
        var skip = new List<string>();
        // A few claims a pass at most: each takes at most one endpoint's share, so that one endpoint's backlog (the oldest
        // rows) cannot fill the list; the endpoint is then skipped and the next claim reaches the others.
        for (int round = 0; round < 4 && _ready.Count < _readyCapacity; round++)
        {
            skip.Clear();
            int full = 0;
            foreach (var (id, state) in _endpoints)
            {
                if (state.Held >= _endpointShare) { skip.Add(id); full++; }
                else if (state.OpenUntilMs > now) skip.Add(id);
            }
            // The last claim that skipped endpoints at their share found all there was for the others: do not walk their
            // backlog again yet (see _dryUntilMs), unless fewer endpoints are at their share now.
            if (full > 0 && full >= _dryFull && now < _dryUntilMs) break;
            int max = Math.Min(_readyCapacity - _ready.Count, _endpointShare);
            long began = Stopwatch.GetTimestamp();
            var due = _store.Claim(now, max, (long)_options.Lease.TotalMilliseconds, skip);
            if (full > 0 && due.Count < max)
            {
                // Found all there was: the next such claim waits at least a few polls, and at least 20 times what this one
                // took, so that these claims cost at most ~5 % of a core whatever the backlog.
                long tookMs = (long)Stopwatch.GetElapsedTime(began).TotalMilliseconds;
                _dryUntilMs = now + Math.Max(4 * (long)_options.Poll.TotalMilliseconds, 20 * tookMs);
                _dryFull = full;
            }
            foreach (var d in due)
            {
                // Its outcome is written (that cleared the claim) but the writer has not yet said so (_finished): this claim
                // is given back at once, or the row would wait out a whole lease before its retry.
                if (_inFlight.ContainsKey(d.Id)) { release.Add(d.Id); continue; }
                var state = _endpoints.GetOrAdd(d.EndpointId, _ => new EndpointState());
                state.Held++;
                _ready.Add((d, now, state));
                any = true;
            }
            if (due.Count < max) break;
        }
        return any;
    }

    /// <summary>
    /// Starts the held deliveries the bounds allow (overall, per endpoint, circuit), oldest claim first; keeps the rest in
    /// order. The loop runs a pass after every attempt that ends, so a pass must cost little for the deliveries it cannot
    /// start: those are kept on the bounds alone (their endpoint's state travels with them), and the endpoint's record is
    /// read only for a delivery about to start. Reading it first, for every held delivery on every pass (up to 512 of them,
    /// a lock and a list walk each), was a scan per completed attempt.
    /// </summary>
    private int StartReady(long now, List<long> release, CancellationToken stop)
    {
        int started = 0, kept = 0;
        long holdLimitMs = (long)_options.Lease.TotalMilliseconds / 2;
        bool full = stop.IsCancellationRequested; // no slot left overall (or stopping): the rest are only checked for giving back
        for (int i = 0; i < _ready.Count; i++)
        {
            var (d, claimedMs, state) = _ready[i];
            bool giveBack = now - claimedMs > holdLimitMs || state.OpenUntilMs > now; // held too long, or its circuit opened (the store deferred them)
            if (!giveBack && (full || Volatile.Read(ref state.InFlight) >= _options.MaxPerEndpoint))
            {
                _ready[kept++] = _ready[i];
                continue;
            }
            WebhookEndpoint? endpoint = null;
            if (!giveBack && !d.EndpointId.StartsWith(WebhookStore.PaymentUrlPrefix, StringComparison.Ordinal))
            {
                endpoint = _store.Endpoint(d.EndpointId);
                giveBack = endpoint is null || !endpoint.Enabled; // deleted or disabled: its deliveries wait (or are dead)
            }
            if (giveBack)
            {
                state.Held--;
                release.Add(d.Id);
                continue;
            }
            if (!_overall.Wait(0))
            {
                full = true;
                _ready[kept++] = _ready[i];
                continue;
            }
            state.Held--;
            // Half its share started since the last claim: claim more of it (once per crossing, not on every start).
            if (state.Held == _endpointShare / 2 - 1) Volatile.Write(ref _claimNeeded, 1);
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
                    WakeLoop(); // a slot is free: start the next held delivery without waiting for the poll
                }
            }, CancellationToken.None);
        }
        _ready.RemoveRange(kept, _ready.Count - kept);
        return started;
    }

    private long Now => _clock.GetUtcNow().ToUnixTimeMilliseconds();

    private async Task AttemptAsync(WebhookDelivery d, WebhookEndpoint? endpoint, EndpointState state, CancellationToken stop)
    {
        long now = Now;
        int attempt = d.Attempts + 1;
        var (secret, oldSecret) = endpoint is not null
            ? (endpoint.Secret, endpoint.OldSecret is { } o && now < endpoint.OldSecretUntilMs ? o : null)
            : UserSecrets(d.Owner, now);
        int code = 0;
        string? error = null;
        long startedAt = Stopwatch.GetTimestamp();
        try
        {
            var uri = UriOf(d.Url);
            if (!_options.AllowPrivateNetworks && uri.Scheme != "https") throw new WebhookRefusedException("the URL must use https");
            using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(d.Payload) };
            request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
            request.Headers.TryAddWithoutValidation(WebhookSignature.HeaderName, Sign(d.Payload, now / 1000, secret, oldSecret));
            request.Headers.TryAddWithoutValidation("RamPay-Event-Id", d.EventId);
            request.Headers.TryAddWithoutValidation("RamPay-Event-Type", d.EventType);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
            timeout.CancelAfter(_options.Timeout);
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            code = (int)response.StatusCode;
            // Read at most MaxResponseBytes of the body (then drop the rest with the connection).
            await using (var body = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false))
            {
                // A pooled buffer: a new 4 KB array per attempt was 40 MB/s of garbage at 10,000 deliveries/s.
                int size = Math.Min(_options.MaxResponseBytes, 4096) + 1;
                byte[] buffer = ArrayPool<byte>.Shared.Rent(size);
                try
                {
                    int total = 0;
                    while (total < _options.MaxResponseBytes)
                    {
                        int n = await body.ReadAsync(buffer.AsMemory(0, Math.Min(size, _options.MaxResponseBytes - total)), timeout.Token).ConfigureAwait(false);
                        if (n == 0) break;
                        total += n;
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
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
            // Stopping: no outcome; the delivery stays pending and is attempted again after restart (or at once by
            // another worker of the group: its claim is given back).
            _inFlight.TryRemove(d.Id, out _);
            try { _store.Release([d.Id]); }
            catch (Exception e) { _logger.LogDebug(e, "webhook delivery {DeliveryId}: its claim could not be given back; it is taken again when its lease runs out", d.Id); }
            return;
        }
        catch (Exception e) when (e is HttpRequestException or WebhookRefusedException or IOException or InvalidOperationException or UriFormatException)
        {
            error = Innermost(e);
        }
        long latency = (long)Stopwatch.GetElapsedTime(startedAt).TotalMilliseconds;
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

    private (string Secret, string? Old) UserSecrets(long user, long now)
    {
        var (secret, old, until) = _store.UserSecret(user);
        return (secret, old is not null && now < until ? old : null);
    }

    /// <summary>
    /// The <c>RamPay-Signature</c> value: <see cref="WebhookSignature.Header(ReadOnlySpan{byte}, long, ReadOnlySpan{byte}, byte[])"/>
    /// (the client's one implementation) with each secret's key bytes kept here.
    /// </summary>
    public string Sign(byte[] body, long timestamp, string secret, string? oldSecret) =>
        WebhookSignature.Header(body, timestamp, Key(secret), oldSecret is null ? null : Key(oldSecret));

    private byte[] Key(string secret)
    {
        if (_keys.TryGetValue(secret, out var key)) return key;
        if (_keys.Count >= 100_000) _keys.Clear(); // rotated-out secrets would pile up: start over (a bound, rarely reached)
        return _keys[secret] = WebhookSignature.Key(secret);
    }

    /// <summary>A delivery URL parsed once (most deliveries go to a few URLs), bounded like the keys.</summary>
    private Uri UriOf(string url)
    {
        if (_uris.TryGetValue(url, out var uri)) return uri;
        if (_uris.Count >= 100_000) _uris.Clear();
        return _uris[url] = new Uri(url, UriKind.Absolute);
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
