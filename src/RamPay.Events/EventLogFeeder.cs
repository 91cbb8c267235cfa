using System.Diagnostics.Metrics;

namespace RamPay.Events;

/// <summary>
/// Feeds one <see cref="IEventConsumer"/> from the <see cref="EventLog"/> on its own (the server feeds all of its
/// consumers through one <see cref="EventFanOut"/> instead: one read per batch for all): reads the consumer's
/// checkpoint, hands it the events after it in batches, in stream order, and after a failure backs off and reads the
/// checkpoint again, so what the consumer did not make durable comes again. Runs on its own task, never on the
/// writer's or the sinks' threads.
/// <para>
/// With a log opened with an in-memory tail (<see cref="EventLogOptions.TailEvents"/>, off by default) it takes new
/// events from there (the records the log's writer made, JSON included) and reads the log's segment files only when it is further behind than the tail holds or after a
/// failure; it sleeps until the log commits a batch (<see cref="EventLog.Appended"/>) instead of polling; and after a
/// batch that was not full it waits <see cref="BatchInterval"/>, so that a consumer's fixed cost per batch (its
/// transaction and fsync, its checkpoint) is paid a few times a second, not once per journal batch.
/// </para>
/// </summary>
public sealed class EventLogFeeder(EventLog log, IEventConsumer consumer, Action<string, Exception?>? report = null)
{
    /// <summary>Events per batch handed to the consumer (the bound of what the feeder holds).</summary>
    public int BatchEvents { get; init; } = 1000;
    /// <summary>The longest the feeder sleeps when it has caught up without a wake-up from the log (a safety net only).</summary>
    public TimeSpan IdlePoll { get; init; } = TimeSpan.FromMilliseconds(250);
    /// <summary>The pause after a batch that was not full: what lets events gather into fewer, larger batches (adds at most this to delivery latency).</summary>
    public TimeSpan BatchInterval { get; init; } = TimeSpan.FromMilliseconds(50);
    public TimeSpan RetryMin { get; init; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan RetryMax { get; init; } = TimeSpan.FromSeconds(10);

    private EventPosition _position;
    private long _positionRow = -1;
    /// <summary>The log's row of <see cref="_position"/> when known (-1: find it by position in the log's index).</summary>
    private long _row = -1;
    private long _tailBatches, _fileBatches;

    public IEventConsumer Consumer => consumer;
    /// <summary>The last position the consumer reported durable (through its checkpoint or a batch it returned from).</summary>
    public EventPosition Position => _position;
    public long Failures { get; private set; }
    /// <summary>Batches taken from the log's in-memory tail, and read from its segment files (tests and diagnostics).</summary>
    public long TailBatches => Interlocked.Read(ref _tailBatches);
    public long FileBatches => Interlocked.Read(ref _fileBatches);

    /// <summary>Events in the log after the consumer's position (its lag); -1 before the first read of its checkpoint.</summary>
    public long Lag() => _positionRow < 0 ? -1 : log.CountAfter(_position);

    public async Task RunAsync(CancellationToken stop)
    {
        var backoff = RetryMin;
        bool needCheckpoint = true;
        List<EventRecord>? spare = null;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                if (needCheckpoint)
                {
                    _position = await consumer.ReadCheckpointAsync(stop).ConfigureAwait(false);
                    _positionRow = 0;
                    _row = -1;
                    needCheckpoint = false;
                    if (log.DroppedThrough() is { } dropped && _position < dropped)
                        report?.Invoke($"consumer {consumer.Name} is at {_position}, but retention dropped the events through {dropped}: those it had not seen are gone from the log (rampay events derive re-creates them from the journal)", null);
                }
                // Taken before looking, so that a batch committed between the look and the wait still wakes us.
                var appended = log.Appended;
                // A new list only once the last one went to the consumer (which may keep it): an idle wake allocates nothing.
                var events = spare ?? new List<EventRecord>();
                spare = null;
                long row = _row >= 0 && log.LastRow == _row ? _row : Read(events);
                if (events.Count == 0)
                {
                    spare = events;
                    // WaitAsync, not WhenAny(appended, Task.Delay(...)): a wake-up from the log then ends the wait's timer
                    // at once, where the Delay it replaced stayed queued for its whole IdlePoll after every wake.
                    await appended.WaitAsync(IdlePoll, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                    stop.ThrowIfCancellationRequested();
                    continue;
                }
                await consumer.HandleAsync(new EventBatch(events, EventBatch.LogSource), stop).ConfigureAwait(false);
                _position = events[^1].Position;
                _row = row;
                backoff = RetryMin;
                if (events.Count < BatchEvents && BatchInterval > TimeSpan.Zero)
                    await Task.Delay(BatchInterval, stop).ConfigureAwait(false);
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
                _row = -1;
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

    /// <summary>The events after the position: from the log's tail when it holds the next row, else from its files. Returns the last event's row (-1 when unknown).</summary>
    private long Read(List<EventRecord> events)
    {
        long row = log.ReadTail(_row, _position, BatchEvents, events);
        if (events.Count > 0)
        {
            Interlocked.Increment(ref _tailBatches);
            return row;
        }
        row = log.ReadAfter(_position, BatchEvents, events);
        if (events.Count > 0) Interlocked.Increment(ref _fileBatches);
        return row;
    }
}

/// <summary>The meter of the event log, its consumers, webhooks and notifications (exported on /metrics).</summary>
public static class EventsTelemetry
{
    public const string MeterName = "RamPay.Events";
    public static readonly Meter Meter = new(MeterName);
}
