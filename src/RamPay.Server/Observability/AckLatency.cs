using System.Diagnostics;
using System.Numerics;

namespace RamPay.Server.Observability;

/// <summary>
/// Acknowledgement latency over time, kept by the server itself for <c>GET /v1/admin/latency</c> (the operators'
/// latency chart, docs/web.md): the time from a command's submission to its durable reply (HTTP and TCP alike), one
/// summary per minute (count, p50, p90, p99, p99.9, max in microseconds) in a bounded ring of the last
/// <see cref="MaxMinutes"/> minutes.
/// <para>
/// Recorded by <see cref="Hosting.EngineHost"/> on the engine's output thread as each submission completes (never the
/// writer thread): an index computation and two interlocked adds, nothing allocated. A timer (every second) drains the
/// live histogram into the current minute's by exchanging each bucket with zero, so a record racing with the drain is
/// never lost (it stays in the bucket and is drained the next second: at worst one second late in the series). When the
/// minute changes the finished minute is summarised into the ring and its histogram cleared.
/// </para>
/// <para>
/// The histogram is log-linear in the manner of HdrHistogram: values below 256 µs exact, then every power of two cut into
/// 128 buckets, so a reported percentile is at most 0.79 % above the true value (the bucket's highest, capped at the
/// exact maximum); values up to 2^32 µs (71 minutes) are tracked, longer ones counted in the top bucket.
/// </para>
/// <para>
/// Why ours and not HdrHistogram 2.5.0 (served since December; the load tool's histogram uses it): recording here must
/// be safe from any thread, and HdrHistogram's way to do that, a <c>Recorder</c> over a <c>LongConcurrentHistogram</c>,
/// cost 749 ns per value against 148 ns for this (medians, BenchmarkDotNet, same run, 2026-12-05, on a shared 2-core
/// machine at load average ~50, so both are inflated; bench/RamPay.Benchmarks LatencyHistogramBenchmarks, Shared_*;
/// docs/benchmarks.md). Neither allocates (AckLatencyTests.Recording_allocates_nothing).
/// </para>
/// </summary>
public sealed class AckLatency : IDisposable
{
    /// <summary>The ring's length: a day of minutes.</summary>
    public const int MaxMinutes = 1440;
    public const int IntervalSeconds = 60;

    private const int SubBucketBits = 7;
    private const int SubBuckets = 1 << SubBucketBits;
    private const int ExactLimit = 2 * SubBuckets;
    private const int ExactLimitLog2 = SubBucketBits + 1;
    private const int MaxLog2 = 32;
    private const long MaxTrackableUs = (1L << MaxLog2) - 1;
    internal const int BucketCount = ExactLimit + (MaxLog2 - ExactLimitLog2) * SubBuckets;
    private const long MsPerMinute = 60_000;

    private static readonly double MicrosecondsPerTick = 1e6 / Stopwatch.Frequency;

    // The output thread's side: counts since the last drain, and the largest value since then.
    private readonly long[] _live = new long[BucketCount];
    private long _liveMax;

    // The drain's side (under _lock): the current minute's histogram and the ring of finished minutes.
    private readonly object _lock = new();
    private readonly long[] _minute = new long[BucketCount];
    private long _minuteCount;
    private long _minuteMax;
    private long _minuteStartMs = -1;
    private readonly Point[] _ring = new Point[MaxMinutes];
    private int _ringNext;
    private int _ringCount;

    private readonly TimeProvider _time;
    private readonly ITimer? _timer;

    /// <summary>One finished (or the current) minute, in microseconds.</summary>
    public readonly record struct Point(long StartMs, long Count, long P50Us, long P90Us, long P99Us, long P999Us, long MaxUs);

    /// <param name="drainEverySecond">false in unit tests, which call <see cref="Drain"/> themselves.</param>
    public AckLatency(TimeProvider? time = null, bool drainEverySecond = true)
    {
        _time = time ?? TimeProvider.System;
        if (drainEverySecond) _timer = _time.CreateTimer(_ => Drain(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>Records one acknowledgement that was submitted at <paramref name="submittedTimestamp"/> (<see cref="Stopwatch.GetTimestamp"/>).</summary>
    public void RecordSince(long submittedTimestamp) => Record((long)((Stopwatch.GetTimestamp() - submittedTimestamp) * MicrosecondsPerTick));

    /// <summary>Records one latency in microseconds (the output thread, or a test).</summary>
    public void Record(long microseconds)
    {
        if (microseconds < 0) microseconds = 0;
        Interlocked.Increment(ref _live[IndexOf(Math.Min(microseconds, MaxTrackableUs))]);
        long max = Volatile.Read(ref _liveMax);
        while (microseconds > max)
        {
            long seen = Interlocked.CompareExchange(ref _liveMax, microseconds, max);
            if (seen == max) break;
            max = seen;
        }
    }

    /// <summary>Moves what was recorded into the current minute; when the minute changed, first closes the previous one.</summary>
    public void Drain()
    {
        lock (_lock)
        {
            long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            long minute = now - now % MsPerMinute;
            long count = 0;
            for (int i = 0; i < BucketCount; i++)
            {
                if (Volatile.Read(ref _live[i]) == 0) continue;
                long n = Interlocked.Exchange(ref _live[i], 0);
                _minute[i] += n;
                count += n;
            }
            // The maximum after the buckets: a value recorded in between is then in this maximum and maybe next second's
            // counts, so the maximum stays an upper bound of what was counted (percentiles are capped by it).
            long max = Interlocked.Exchange(ref _liveMax, 0);
            // What was drained was recorded since the last drain (a second ago): it belongs to the minute that was open
            // then, so it is added before that minute is closed.
            if (_minuteStartMs < 0) _minuteStartMs = minute;
            _minuteCount += count;
            _minuteMax = Math.Max(_minuteMax, max);
            if (minute != _minuteStartMs)
            {
                if (_minuteCount > 0)
                {
                    _ring[_ringNext] = Summary();
                    _ringNext = (_ringNext + 1) % MaxMinutes;
                    _ringCount = Math.Min(_ringCount + 1, MaxMinutes);
                }
                Array.Clear(_minute);
                _minuteCount = 0;
                _minuteMax = 0;
                _minuteStartMs = minute;
            }
        }
    }

    /// <summary>
    /// The minutes that started at or after <paramref name="fromMs"/> and had any acknowledgement, oldest first, the
    /// current (unfinished) minute last. Drains first, so what was acknowledged before the call is in it.
    /// </summary>
    public List<Point> Since(long fromMs)
    {
        Drain();
        lock (_lock)
        {
            var points = new List<Point>(Math.Min(_ringCount + 1, MaxMinutes + 1));
            for (int k = 0; k < _ringCount; k++)
            {
                var p = _ring[(_ringNext - _ringCount + k + MaxMinutes) % MaxMinutes];
                if (p.StartMs >= fromMs) points.Add(p);
            }
            if (_minuteCount > 0 && _minuteStartMs >= fromMs) points.Add(Summary());
            return points;
        }
    }

    private Point Summary() => new(_minuteStartMs, _minuteCount, At(50), At(90), At(99), At(99.9), _minuteMax);

    /// <summary>The nearest-rank percentile of the current minute, as its bucket's highest value capped at the exact max.</summary>
    private long At(double percentile)
    {
        long rank = Math.Clamp((long)Math.Ceiling(percentile / 100.0 * _minuteCount), 1, _minuteCount);
        long seen = 0;
        for (int i = 0; i < BucketCount; i++)
        {
            seen += _minute[i];
            if (seen >= rank) return i == BucketCount - 1 ? _minuteMax : Math.Min(HighestValueOf(i), _minuteMax);
        }
        return _minuteMax;
    }

    internal static int IndexOf(long value)
    {
        if (value < ExactLimit) return (int)value;
        int log2 = 63 - BitOperations.LeadingZeroCount((ulong)value);
        int shift = log2 - SubBucketBits;
        int subBucket = (int)(value >> shift) - SubBuckets;
        return ExactLimit + (log2 - ExactLimitLog2) * SubBuckets + subBucket;
    }

    internal static long HighestValueOf(int index)
    {
        if (index < ExactLimit) return index;
        int octave = (index - ExactLimit) / SubBuckets;
        int subBucket = (index - ExactLimit) % SubBuckets;
        int shift = octave + ExactLimitLog2 - SubBucketBits;
        long lowest = (long)(SubBuckets + subBucket) << shift;
        return lowest + (1L << shift) - 1;
    }

    public void Dispose() => _timer?.Dispose();
}
