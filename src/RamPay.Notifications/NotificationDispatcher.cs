using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RamPay.Events;
using RamPay.Webhooks;

namespace RamPay.Notifications;

/// <summary>
/// Sends the outbox's due messages, shaped like the webhook dispatcher: bounded concurrency per channel (SMTP
/// connections, SMS requests in flight), the webhooks' backoff with jitter (<see cref="Retry"/>), dead letter after
/// <see cref="NotificationOptions.MaxAge"/> or at once on a permanent refusal, outcomes written in batches (one
/// transaction for many). A crash between a send and its record sends that message again after restart: at least once
/// (the email's Message-Id is the same on every attempt, for receivers that de-duplicate).
/// </summary>
public sealed class NotificationDispatcher : IDisposable
{
    private static readonly Counter<long> Sent = EventsTelemetry.Meter.CreateCounter<long>("rampay_notifications_total",
        description: "Notification send attempts by channel (email, sms) and outcome: sent, failed (will be retried), dead (dead-lettered).");

    private readonly INotificationOutbox _store;
    private readonly NotificationOptions _options;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;
    private readonly EmailSender? _email;
    private readonly SmsSender? _sms;
    private readonly SemaphoreSlim? _emailSlots, _smsSlots;
    private readonly ConcurrentDictionary<long, byte> _inFlight = new();
    private readonly ConcurrentQueue<long> _finished = new();
    private readonly BatchedOutcomeWriter<NotificationStore.Outcome> _outcomes;
    private readonly SemaphoreSlim _wake = new(0, 1);

    public NotificationDispatcher(INotificationOutbox store, NotificationOptions options, ILogger<NotificationDispatcher>? logger = null, TimeProvider? clock = null)
    {
        options.Validate();
        _store = store;
        _options = options;
        _clock = clock ?? TimeProvider.System;
        _logger = logger ?? NullLogger<NotificationDispatcher>.Instance;
        _outcomes = new BatchedOutcomeWriter<NotificationStore.Outcome>(store.Record, written =>
        {
            foreach (var o in written) _finished.Enqueue(o.MessageId);
            Wake();
        }, _logger, "notification");
        if (options.Smtp.Enabled)
        {
            _email = new EmailSender(options.Smtp);
            _emailSlots = new SemaphoreSlim(options.Smtp.Connections, options.Smtp.Connections);
        }
        if (options.Sms.Enabled)
        {
            _sms = new SmsSender(options.Sms, options.Timeout);
            _smsSlots = new SemaphoreSlim(options.Sms.MaxConcurrency, options.Sms.MaxConcurrency);
        }
    }

    public bool Enabled => _email is not null || _sms is not null;

    /// <summary>Wakes the loop at once (new messages).</summary>
    public void Wake()
    {
        if (_wake.CurrentCount == 0) try { _wake.Release(); } catch (SemaphoreFullException) { }
    }

    private long Now => _clock.GetUtcNow().ToUnixTimeMilliseconds();

    public async Task RunAsync(CancellationToken stop)
    {
        if (!Enabled) return;
        var writer = Task.Run(_outcomes.RunAsync, CancellationToken.None);
        var running = new ConcurrentDictionary<Task, byte>();
        var skipped = new List<long>();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                while (_finished.TryDequeue(out long finished)) _inFlight.TryRemove(finished, out _);
                // Claimed for Lease: another dispatcher sharing the outbox (a worker of the same group) skips these, and
                // takes them over if this process dies before recording their outcome.
                var due = _store.Claim(Now, 1024, _email is not null, _sms is not null, (long)_options.Lease.TotalMilliseconds);
                int started = 0;
                skipped.Clear();
                foreach (var m in due)
                {
                    // Its outcome is written (that cleared the claim) but the writer has not yet said so (_finished): this claim
                    // is given back at once, or the row would wait out a whole lease before its retry.
                    if (_inFlight.ContainsKey(m.Id)) { skipped.Add(m.Id); continue; }
                    var slots = m.Channel == "email" ? _emailSlots! : _smsSlots!;
                    if (!await slots.WaitAsync(0, stop).ConfigureAwait(false))
                    {
                        if (started > 0) { skipped.Add(m.Id); continue; } // this channel is full; others may still go; given back
                        await slots.WaitAsync(stop).ConfigureAwait(false);
                    }
                    _inFlight[m.Id] = 0;
                    started++;
                    var task = Task.Run(async () =>
                    {
                        try { await AttemptAsync(m, stop).ConfigureAwait(false); }
                        finally { slots.Release(); }
                    }, CancellationToken.None);
                    running[task] = 0;
                    _ = task.ContinueWith(t => running.TryRemove(t, out _), TaskScheduler.Default);
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
            // Attempts in flight finish (bounded by the timeout) and their outcomes are written.
            await Task.WhenAll(running.Keys).WaitAsync(_options.Timeout + TimeSpan.FromSeconds(1)).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
            _outcomes.Complete();
            await writer.ConfigureAwait(false);
        }
    }

    private async Task AttemptAsync(NotificationMessage m, CancellationToken stop)
    {
        int attempt = m.Attempts + 1;
        string? error = null;
        bool permanent = false;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        timeout.CancelAfter(_options.Timeout);
        try
        {
            if (m.Channel == "email") await _email!.SendAsync(m, timeout.Token).ConfigureAwait(false);
            else await _sms!.SendAsync(m, timeout.Token).ConfigureAwait(false);
        }
        catch (SendFailedException e)
        {
            error = Trim(e.Message);
            permanent = e.Permanent;
        }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested)
        {
            error = $"no answer within {_options.Timeout.TotalMilliseconds:0} ms";
        }
        catch (OperationCanceledException)
        {
            // Stopping: no outcome; the message stays pending and is attempted again after restart.
            _finished.Enqueue(m.Id);
            return;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException or MimeKit.ParseException)
        {
            error = Trim(e.Message); // a malformed address or message: no retry makes it better
            permanent = true;
        }
        long done = Now;
        string status;
        long next = 0;
        var channel = new KeyValuePair<string, object?>("channel", m.Channel);
        if (error is null)
        {
            status = "sent";
            Sent.Add(1, channel, new("outcome", "sent"));
        }
        else
        {
            long delay = Retry.BackoffMs(attempt, _options.RetryBase, _options.RetryMax);
            if (permanent || done + delay - m.CreatedMs > (long)_options.MaxAge.TotalMilliseconds)
            {
                status = "dead";
                Sent.Add(1, channel, new("outcome", "dead"));
                _logger.LogWarning("notification {Id} ({Channel} to user {UserId}, {Template}) dead-lettered after {Attempts} attempt(s): {Error}",
                    m.Id, m.Channel, m.UserId, m.Template, attempt, error);
            }
            else
            {
                status = "pending";
                next = done + delay;
                Sent.Add(1, channel, new("outcome", "failed"));
            }
        }
        await _outcomes.WriteAsync(new NotificationStore.Outcome(m.Id, attempt, done, status, next, error)).ConfigureAwait(false);
    }

    private static string Trim(string s) => s.Length > 300 ? s[..300] : s;

    public void Dispose()
    {
        _email?.Dispose();
        _sms?.Dispose();
        _emailSlots?.Dispose();
        _smsSlots?.Dispose();
    }
}
