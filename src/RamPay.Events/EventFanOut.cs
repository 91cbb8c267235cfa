namespace RamPay.Events;

/// <summary>
/// Feeds every in-server <see cref="IEventConsumer"/> from the <see cref="EventLog"/> with one read of the log
/// (docs/consumers.md, "The fan-out"): each round reads the next batch once, from the segment files into one reused
/// buffer, and hands the same batch (the same <see cref="EventRecord"/>s, the same bytes) to every consumer, each on a
/// task of its own, each from after its own position. Each consumer keeps its own checkpoint, failures and lag; the
/// contract of <see cref="IEventConsumer"/> is unchanged (at least once, in order, resuming from the checkpoint).
/// <para>
/// Why: with a feeder per consumer, every consumer read back and materialized every event, and the log kept its newest
/// events in memory as objects for them (an array and two objects per event, living long enough to reach the garbage
/// collector's oldest generation). Here a round costs one read and one <see cref="EventRecord"/> per event, whatever
/// the number of consumers, and the buffer is reused: a consumer must not keep an event's <see cref="EventRecord.Json"/>
/// past its <see cref="IEventConsumer.HandleAsync"/> (copy what it keeps).
/// </para>
/// <para>
/// A consumer that is slow or failing does not hold the others beyond <see cref="HoldMax"/>: the round waits that long
/// for every consumer, then leaves the late ones behind (the buffer they still read is theirs; the round takes a new
/// one), and a consumer whose call threw is left behind at once. A consumer left behind is <em>detached</em>: it goes
/// on alone, like a feeder of its own (its checkpoint read again after a failure, with backoff, its own buffer, reading
/// the files from its position) until a read reaches the end of the log, and then joins the rounds again. Memory is
/// bounded by one buffer of at most <see cref="BatchEvents"/> events for the rounds and one per detached consumer.
/// </para>
/// </summary>
public sealed class EventFanOut
{
    private readonly EventLog _log;
    private readonly Action<string, Exception?>? _report;
    private readonly Lane[] _lanes;
    private readonly Lock _gate = new();
    /// <summary>Completed when a detached lane asks to join again (the rounds wake up if they had nobody to feed).</summary>
    private TaskCompletionSource _rejoined = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public EventFanOut(EventLog log, IReadOnlyList<IEventConsumer> consumers, Action<string, Exception?>? report = null)
    {
        ArgumentNullException.ThrowIfNull(log);
        _log = log;
        _report = report;
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var c in consumers)
            if (!names.Add(c.Name)) throw new InvalidOperationException($"two event consumers are named '{c.Name}'");
        _lanes = [.. consumers.Select(c => new Lane(this, c))];
    }

    /// <summary>Events per batch (the bound of one buffer).</summary>
    public int BatchEvents { get; init; } = 1000;
    /// <summary>The longest the rounds sleep when caught up without a wake-up from the log (a safety net only).</summary>
    public TimeSpan IdlePoll { get; init; } = TimeSpan.FromMilliseconds(250);
    /// <summary>The pause after a batch that was not full: what lets events gather into fewer, larger batches (adds at most this to delivery latency).</summary>
    public TimeSpan BatchInterval { get; init; } = TimeSpan.FromMilliseconds(50);
    /// <summary>The longest a round waits for a slow consumer before it leaves it behind (it then goes on alone).</summary>
    public TimeSpan HoldMax { get; init; } = TimeSpan.FromSeconds(2);
    public TimeSpan RetryMin { get; init; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan RetryMax { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>One per consumer, in the order given.</summary>
    public IReadOnlyList<Lane> Lanes => _lanes;
    /// <summary>Rounds that handed a batch on (each one read of the log, whatever the number of consumers).</summary>
    public long Rounds => Interlocked.Read(ref _rounds);
    private long _rounds;

    /// <summary>One consumer's place in the fan-out: its position, failures, lag, and whether it is in the rounds.</summary>
    public sealed class Lane
    {
        private readonly EventFanOut _owner;
        internal Lane(EventFanOut owner, IEventConsumer consumer)
        {
            _owner = owner;
            Consumer = consumer;
        }

        public IEventConsumer Consumer { get; }
        private EventPosition _position;
        private bool _known;
        private long _failures, _detaches;

        /// <summary>The last position the consumer reported durable (through its checkpoint or a batch it returned from).</summary>
        public EventPosition Position { get { lock (_owner._gate) return _position; } }
        internal EventPosition PositionUnlocked => _position;
        internal void SetPosition(EventPosition p)
        {
            lock (_owner._gate)
            {
                _position = p;
                _known = true;
            }
        }

        public long Failures => Interlocked.Read(ref _failures);
        internal void Failed() => Interlocked.Increment(ref _failures);
        /// <summary>Times it was left behind by the rounds (slow or failed) and went on alone.</summary>
        public long Detaches => Interlocked.Read(ref _detaches);
        internal void Detached() => Interlocked.Increment(ref _detaches);
        /// <summary>True while it is fed by the rounds (false at start, until it has caught up, and while left behind).</summary>
        public bool Attached { get; internal set; }
        /// <summary>Asked to join the rounds (set by its own loop, taken by the rounds; under the gate).</summary>
        internal bool Joining;
        /// <summary>Events in the log after its position (its lag); -1 before the first read of its checkpoint.</summary>
        public long Lag()
        {
            EventPosition p;
            lock (_owner._gate)
            {
                if (!_known) return -1;
                p = _position;
            }
            return _owner._log.CountAfter(p);
        }
    }

    /// <summary>Runs the rounds and every detached consumer until <paramref name="stop"/>; returns once all have stopped.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        // At start every consumer is detached: it reads its checkpoint and catches up alone (consumers may be far apart),
        // then joins the rounds.
        var alone = new List<Task>();
        foreach (var lane in _lanes) alone.Add(Task.Run(() => RunAloneAsync(lane, null, null, needCheckpoint: true, stop), CancellationToken.None));
        var rounds = Task.Run(() => RunRoundsAsync(alone, stop), CancellationToken.None);
        await rounds.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        Task[] all;
        lock (alone) all = [.. alone];
        await Task.WhenAll(all).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task RunRoundsAsync(List<Task> alone, CancellationToken stop)
    {
        var attached = new List<Lane>(_lanes.Length);
        var events = new List<EventRecord>(BatchEvents);
        byte[]? buffer = null;
        var calls = new Task?[_lanes.Length];
        var handed = new EventPosition[_lanes.Length];
        try
        {
            while (!stop.IsCancellationRequested)
            {
                Task rejoined;
                lock (_gate)
                {
                    foreach (var lane in _lanes)
                    {
                        if (!lane.Joining) continue;
                        lane.Joining = false;
                        lane.Attached = true;
                        attached.Add(lane);
                    }
                    rejoined = _rejoined.Task;
                }
                // Taken before looking, so that a batch committed between the look and the wait still wakes us.
                var appended = _log.Appended;
                if (attached.Count == 0)
                {
                    await rejoined.WaitAsync(IdlePoll, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                    continue;
                }
                var from = attached[0].PositionUnlocked;
                foreach (var lane in attached)
                    if (lane.PositionUnlocked < from) from = lane.PositionUnlocked;
                events.Clear();
                try
                {
                    _log.ReadAfter(from, BatchEvents, events, ref buffer);
                }
                catch (Exception e) when (!stop.IsCancellationRequested)
                {
                    _report?.Invoke($"the consumers' fan-out could not read the event log; trying again in {RetryMin.TotalMilliseconds:0} ms", e);
                    events.Clear();
                    await Task.Delay(RetryMin, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                    continue;
                }
                if (events.Count == 0)
                {
                    Task woken = Task.WhenAny(appended, rejoined);
                    await woken.WaitAsync(IdlePoll, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                    continue;
                }
                Interlocked.Increment(ref _rounds);
                // The same records to every consumer, each from after its own position (all at one position but just
                // after a join, so the whole list, not a copy, is what they get).
                Array.Clear(calls);
                for (int i = 0; i < attached.Count; i++)
                {
                    var lane = attached[i];
                    var slice = After(events, lane.PositionUnlocked);
                    if (slice is null) continue;
                    handed[i] = slice[^1].Position;
                    var batch = new EventBatch(slice, EventBatch.LogSource);
                    calls[i] = Task.Run(() => lane.Consumer.HandleAsync(batch, stop).AsTask(), CancellationToken.None);
                }
                var pending = calls.Take(attached.Count).Where(t => t is not null).Cast<Task>().ToArray();
                var all = Task.WhenAll(pending);
                if (!all.IsCompleted)
                    await all.WaitAsync(HoldMax, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                stop.ThrowIfCancellationRequested();
                bool bufferLent = false;
                for (int i = attached.Count - 1; i >= 0; i--)
                {
                    var lane = attached[i];
                    if (calls[i] is not { } call) continue;
                    if (call.IsCompletedSuccessfully)
                    {
                        lane.SetPosition(handed[i]);
                        continue;
                    }
                    // Failed, or still running after HoldMax: it goes on alone (a late call keeps the buffer it reads).
                    bool late = !call.IsCompleted;
                    bufferLent |= late;
                    lock (_gate) lane.Attached = false;
                    attached.RemoveAt(i);
                    lane.Detached();
                    if (late) _report?.Invoke($"consumer {lane.Consumer.Name} took more than {HoldMax.TotalMilliseconds:0} ms over a batch; it goes on alone until it catches up", null);
                    var through = handed[i];
                    lock (alone) alone.Add(Task.Run(() => RunAloneAsync(lane, call, through, needCheckpoint: false, stop), CancellationToken.None));
                }
                if (bufferLent)
                {
                    buffer = null;
                    events = new List<EventRecord>(BatchEvents);
                }
                if (events.Count < BatchEvents && BatchInterval > TimeSpan.Zero)
                    await Task.Delay(BatchInterval, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        // A call still running at stop: wait for it, so that no consumer is called after RunAsync returned.
        var running = calls.Where(t => t is { IsCompleted: false }).Cast<Task>().ToArray();
        if (running.Length > 0) await Task.WhenAll(running).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>The events after <paramref name="position"/> (the list itself when all are; null when none is).</summary>
    private static IReadOnlyList<EventRecord>? After(List<EventRecord> events, EventPosition position)
    {
        if (events[0].Position > position) return events;
        if (events[^1].Position <= position) return null;
        int lo = 0, hi = events.Count - 1; // the first after position lies in (0, Count - 1]
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (events[mid].Position > position) hi = mid; else lo = mid + 1;
        }
        return events.GetRange(lo, events.Count - lo);
    }

    /// <summary>
    /// A consumer on its own (at start, after a failure, or left behind as slow): finishes the call it had in flight, then
    /// reads and hands on batches from its position (its checkpoint again after a failure, with backoff) until a read
    /// reaches the end of the log, and asks to join the rounds.
    /// </summary>
    private async Task RunAloneAsync(Lane lane, Task? inFlight, EventPosition? inFlightThrough, bool needCheckpoint, CancellationToken stop)
    {
        var backoff = RetryMin;
        if (inFlight is not null)
        {
            try
            {
                await inFlight.ConfigureAwait(false);
                lane.SetPosition(inFlightThrough!.Value);
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                needCheckpoint = true;
                lane.Failed();
                _report?.Invoke($"consumer {lane.Consumer.Name} failed; retrying from its checkpoint in {backoff.TotalMilliseconds:0} ms", e);
                if (!await Pause(backoff, stop)) return;
                backoff = Twice(backoff);
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return;
            }
        }
        var events = new List<EventRecord>(BatchEvents);
        byte[]? buffer = null;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                if (needCheckpoint)
                {
                    var checkpoint = await lane.Consumer.ReadCheckpointAsync(stop).ConfigureAwait(false);
                    lane.SetPosition(checkpoint);
                    needCheckpoint = false;
                    if (_log.DroppedThrough() is { } dropped && checkpoint < dropped)
                        _report?.Invoke($"consumer {lane.Consumer.Name} is at {checkpoint}, but retention dropped the events through {dropped}: those it had not seen are gone from the log (rampay events derive re-creates them from the journal)", null);
                }
                events.Clear();
                _log.ReadAfter(lane.PositionUnlocked, BatchEvents, events, ref buffer);
                if (events.Count > 0)
                {
                    await lane.Consumer.HandleAsync(new EventBatch(events, EventBatch.LogSource), stop).ConfigureAwait(false);
                    lane.SetPosition(events[^1].Position);
                    backoff = RetryMin;
                }
                if (events.Count < BatchEvents)
                {
                    // At the end of the log (as of that read): the rounds take it from here.
                    lock (_gate)
                    {
                        lane.Joining = true;
                        _rejoined.TrySetResult();
                        _rejoined = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    }
                    return;
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                lane.Failed();
                _report?.Invoke($"consumer {lane.Consumer.Name} failed; retrying from its checkpoint in {backoff.TotalMilliseconds:0} ms", e);
                needCheckpoint = true;
                if (!await Pause(backoff, stop)) return;
                backoff = Twice(backoff);
            }
        }
    }

    private TimeSpan Twice(TimeSpan backoff) => TimeSpan.FromTicks(Math.Min(RetryMax.Ticks, backoff.Ticks * 2));

    private static async Task<bool> Pause(TimeSpan delay, CancellationToken stop)
    {
        try
        {
            await Task.Delay(delay, stop).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
