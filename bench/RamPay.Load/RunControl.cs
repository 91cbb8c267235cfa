using System.Diagnostics;

namespace RamPay.Load;

/// <summary>
/// The run's phases on the <see cref="Stopwatch"/> clock, shared by every sender: warm-up (sent, checked, not
/// measured), then the measured phase until the duration has passed or the count is used up.
/// </summary>
internal sealed class RunControl
{
    private readonly bool _counted;
    private long _remaining;
    private volatile bool _stopRequested;

    public RunControl(LoadOptions options)
    {
        StartTimestamp = Stopwatch.GetTimestamp();
        MeasureStartTimestamp = StartTimestamp + Ticks(options.WarmupSeconds);
        _counted = options.Count > 0;
        _remaining = options.Count;
        EndTimestamp = _counted ? long.MaxValue : MeasureStartTimestamp + Ticks(options.DurationSeconds);
    }

    public long StartTimestamp { get; }
    public long MeasureStartTimestamp { get; }
    public long EndTimestamp { get; }
    public bool StopRequested => _stopRequested;

    public static long Ticks(double seconds) => (long)(seconds * Stopwatch.Frequency);

    /// <summary>Ctrl+C: senders stop taking new work; what is in flight is still answered and checked.</summary>
    public void RequestStop() => _stopRequested = true;

    public bool IsMeasured(long timestamp) => timestamp >= MeasureStartTimestamp;

    /// <summary>How many payments (at most <paramref name="wanted"/>) the sender's next request may carry; 0 = stop.</summary>
    public int Take(int wanted)
    {
        if (_stopRequested) return 0;
        long now = Stopwatch.GetTimestamp();
        if (now < MeasureStartTimestamp) return wanted;
        if (now >= EndTimestamp) return 0;
        if (!_counted) return wanted;
        while (true)
        {
            long remaining = Volatile.Read(ref _remaining);
            if (remaining <= 0) return 0;
            int take = (int)Math.Min(wanted, remaining);
            if (Interlocked.CompareExchange(ref _remaining, remaining - take, remaining) == remaining) return take;
        }
    }
}

/// <summary>
/// Spaces one connection's requests to a target rate: request k is due at start + k × interval, whichever sender
/// takes it. A sender that is late sends at once (the schedule catches up); one that is early sleeps when the wait
/// is a millisecond or more, and otherwise sends (timers cannot wait less, and the schedule keeps the average).
/// Latency is measured from the actual send, so with a rate that the pipeline cannot keep up with, the time a
/// request waited for a free slot is not in the figures.
/// </summary>
internal sealed class Pacer(long startTimestamp, double requestsPerSecond)
{
    private readonly double _intervalTicks = requestsPerSecond > 0 ? Stopwatch.Frequency / requestsPerSecond : 0;
    private long _next;

    public ValueTask WaitTurnAsync(CancellationToken ct)
    {
        if (_intervalTicks == 0) return ValueTask.CompletedTask;
        long turn = Interlocked.Increment(ref _next) - 1;
        long due = startTimestamp + (long)(turn * _intervalTicks);
        TimeSpan wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
        return wait >= TimeSpan.FromMilliseconds(1) ? new ValueTask(Task.Delay(wait, ct)) : ValueTask.CompletedTask;
    }
}
