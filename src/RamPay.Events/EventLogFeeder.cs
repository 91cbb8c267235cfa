using System.Diagnostics.Metrics;

namespace RamPay.Events;

/// <summary>
/// Feeds one <see cref="IEventConsumer"/> from the <see cref="EventLog"/> (docs/consumers.md): reads the consumer's
/// checkpoint, hands it the events after it in batches, in stream order, and after a failure backs off and reads the
/// checkpoint again, so what the consumer did not make durable comes again. Runs on its own task, never on the
/// writer's or the sinks' threads.
/// </summary>
public sealed class EventLogFeeder(EventLog log, IEventConsumer consumer, Action<string, Exception?>? report = null)
{
    /// <summary>Events per batch handed to the consumer.</summary>
    public int BatchEvents { get; init; } = 500;
    /// <summary>How often the feeder looks for new events when it has caught up.</summary>
    public TimeSpan IdlePoll { get; init; } = TimeSpan.FromMilliseconds(10);
    public TimeSpan RetryMin { get; init; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan RetryMax { get; init; } = TimeSpan.FromSeconds(10);

    private EventPosition _position;
    private long _positionRow = -1;

    public IEventConsumer Consumer => consumer;
    /// <summary>The last position the consumer reported durable (through its checkpoint or a batch it returned from).</summary>
    public EventPosition Position => _position;
    public long Failures { get; private set; }

    /// <summary>Events in the log after the consumer's position (its lag); -1 before the first read of its checkpoint.</summary>
    public long Lag() => _positionRow < 0 ? -1 : log.CountAfter(_position);

    public async Task RunAsync(CancellationToken stop)
    {
        var backoff = RetryMin;
        bool needCheckpoint = true;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                if (needCheckpoint)
                {
                    _position = await consumer.ReadCheckpointAsync(stop).ConfigureAwait(false);
                    _positionRow = 0;
                    needCheckpoint = false;
                    if (log.DroppedThrough() is { } dropped && _position < dropped)
                        report?.Invoke($"consumer {consumer.Name} is at {_position}, but retention dropped the events through {dropped}: those it had not seen are gone from the log (rampay events derive re-creates them from the journal)", null);
                }
                var events = log.ReadAfter(_position, BatchEvents);
                if (events.Count == 0)
                {
                    await Task.Delay(IdlePoll, stop).ConfigureAwait(false);
                    continue;
                }
                await consumer.HandleAsync(new EventBatch(events, EventBatch.LogSource), stop).ConfigureAwait(false);
                _position = events[^1].Position;
                backoff = RetryMin;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                Failures++;
                report?.Invoke($"consumer {consumer.Name} failed; retrying from its checkpoint in {backoff.TotalMilliseconds:0} ms", e);
                needCheckpoint = true;
                try
                {
                    await Task.Delay(backoff, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                backoff = TimeSpan.FromTicks(Math.Min(RetryMax.Ticks, backoff.Ticks * 2));
            }
        }
    }

}

/// <summary>The meter of the event log, its consumers, webhooks and notifications (exported on /metrics).</summary>
public static class EventsTelemetry
{
    public const string MeterName = "RamPay.Events";
    public static readonly Meter Meter = new(MeterName);
}
