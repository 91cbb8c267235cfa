using System.Diagnostics;
using HdrHistogram;

namespace RamPay.Load;

/// <summary>
/// A latency histogram in nanoseconds: HdrHistogram's <see cref="LongHistogram"/> (2 significant digits: every power of
/// two is cut into 128 buckets, so a reported value, a bucket's highest value capped at the exact maximum, is at most
/// 0.79 % above the true one), with the exact count, sum, minimum and maximum beside it. Range: up to 2^36 ns (68.7 s);
/// longer values are counted in the top bucket while <see cref="Max"/> stays exact.
/// <para>
/// One writer per histogram and no synchronisation: each sender records into its own, and the report merges them
/// with <see cref="Add"/> once the senders have stopped. Recording is an index computation and an increment, and
/// allocates nothing.
/// </para>
/// </summary>
public sealed class LatencyHistogram
{
    public const long MaxTrackableNanoseconds = (1L << 36) - 1;
    private const int SignificantDigits = 2;

    private static readonly double NanosecondsPerTick = 1e9 / Stopwatch.Frequency;

    private readonly LongHistogram _counts = new(MaxTrackableNanoseconds, SignificantDigits);

    public long Count { get; private set; }
    /// <summary>Exact, including values above the trackable range.</summary>
    public long Max { get; private set; }
    public long Min { get; private set; } = long.MaxValue;
    public double Mean => Count == 0 ? 0 : _sum / Count;
    private double _sum;

    /// <summary>Records the time between two <see cref="Stopwatch.GetTimestamp"/> readings.</summary>
    public void RecordTicks(long stopwatchTicks) =>
        Record(Stopwatch.Frequency == 1_000_000_000 ? stopwatchTicks : (long)(stopwatchTicks * NanosecondsPerTick));

    public void Record(long nanoseconds)
    {
        if (nanoseconds < 0) nanoseconds = 0;
        _counts.RecordValue(Math.Min(nanoseconds, MaxTrackableNanoseconds));
        Count++;
        _sum += nanoseconds;
        if (nanoseconds > Max) Max = nanoseconds;
        if (nanoseconds < Min) Min = nanoseconds;
    }

    /// <summary>Adds another histogram's counts (mergeable: the merge of parts equals the histogram of the whole).</summary>
    public void Add(LatencyHistogram other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Count == 0) return;
        _counts.Add(other._counts);
        Count += other.Count;
        _sum += other._sum;
        Max = Math.Max(Max, other.Max);
        Min = Math.Min(Min, other.Min);
    }

    /// <summary>
    /// The value at <paramref name="percentile"/> (0..100): the smallest recorded value with at least
    /// <see cref="RankOf"/> values at or below it, rounded up to its bucket's highest value (so never reported lower
    /// than it was) and capped at <see cref="Max"/>. 0 when empty. (Not HdrHistogram's own GetValueAtPercentile, which
    /// rounds the rank to nearest and can report a value below the nearest-rank one.)
    /// </summary>
    public long ValueAtPercentile(double percentile)
    {
        if (Count == 0) return 0;
        long rank = RankOf(percentile, Count);
        foreach (var v in _counts.RecordedValues())
        {
            if (v.TotalCountToThisValue < rank) continue;
            long highest = _counts.HighestEquivalentValue(v.ValueIteratedTo);
            // The top bucket also holds everything beyond the range, so its only trustworthy value is the exact max.
            return highest >= MaxTrackableNanoseconds ? Max : Math.Min(highest, Max);
        }
        return Max;
    }

    /// <summary>The 1-based rank of a percentile among <paramref name="count"/> sorted values (nearest-rank method).</summary>
    public static long RankOf(double percentile, long count)
    {
        if (percentile is < 0 or > 100 || double.IsNaN(percentile)) throw new ArgumentOutOfRangeException(nameof(percentile));
        return Math.Clamp((long)Math.Ceiling(percentile / 100.0 * count), 1, count);
    }
}
