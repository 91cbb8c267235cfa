using System.Diagnostics;

namespace RamPay.Load;

/// <summary>
/// A log-linear latency histogram in nanoseconds, in the manner of HdrHistogram (which NuGet does not serve here).
/// <para>
/// Values below 256 ns have a bucket each (exact). Above, every power of two [2^e, 2^(e+1)) is cut into 128 equal
/// buckets, so a bucket is at most 1/128 of its lower bound wide, and a reported value (a bucket's highest value,
/// never more than the largest recorded) is at most 0.79% above the true one. Range: up to 2^36 ns (68.7 s), in 3,840
/// buckets (30 KiB); longer values are counted in the top bucket while <see cref="Max"/> stays exact.
/// </para>
/// <para>
/// One writer per histogram and no synchronisation: each sender records into its own, and the report merges them
/// with <see cref="Add"/> once the senders have stopped. Recording is an index computation and an increment.
/// </para>
/// </summary>
public sealed class LatencyHistogram
{
    private const int SubBucketBits = 7;
    private const int SubBuckets = 1 << SubBucketBits;
    /// <summary>Values below this are their own bucket: 2 × 128, the first value whose octave is cut into 128 buckets of width 2.</summary>
    private const int ExactLimit = 2 * SubBuckets;
    private const int ExactLimitLog2 = SubBucketBits + 1;
    private const int MaxLog2 = 36;
    public const long MaxTrackableNanoseconds = (1L << MaxLog2) - 1;
    private const int BucketCount = ExactLimit + (MaxLog2 - ExactLimitLog2) * SubBuckets;

    private static readonly double NanosecondsPerTick = 1e9 / Stopwatch.Frequency;

    private readonly long[] _counts = new long[BucketCount];

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
        _counts[IndexOf(Math.Min(nanoseconds, MaxTrackableNanoseconds))]++;
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
        for (int i = 0; i < BucketCount; i++) _counts[i] += other._counts[i];
        Count += other.Count;
        _sum += other._sum;
        Max = Math.Max(Max, other.Max);
        Min = Math.Min(Min, other.Min);
    }

    /// <summary>
    /// The value at <paramref name="percentile"/> (0..100): the smallest recorded value with at least
    /// <see cref="RankOf"/> values at or below it, rounded up to its bucket's highest value (so never reported lower
    /// than it was) and capped at <see cref="Max"/>. 0 when empty.
    /// </summary>
    public long ValueAtPercentile(double percentile)
    {
        if (Count == 0) return 0;
        long rank = RankOf(percentile, Count);
        long seen = 0;
        for (int i = 0; i < BucketCount; i++)
        {
            seen += _counts[i];
            // The top bucket also holds everything beyond the range, so its only trustworthy value is the exact max.
            if (seen >= rank) return i == BucketCount - 1 ? Max : Math.Min(HighestValueOf(i), Max);
        }
        return Max;
    }

    /// <summary>The 1-based rank of a percentile among <paramref name="count"/> sorted values (nearest-rank method).</summary>
    public static long RankOf(double percentile, long count)
    {
        if (percentile is < 0 or > 100 || double.IsNaN(percentile)) throw new ArgumentOutOfRangeException(nameof(percentile));
        return Math.Clamp((long)Math.Ceiling(percentile / 100.0 * count), 1, count);
    }

    internal static int IndexOf(long value)
    {
        if (value < ExactLimit) return (int)value;
        int log2 = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)value);
        int shift = log2 - SubBucketBits;
        int subBucket = (int)(value >> shift) - SubBuckets; // the 7 bits after the leading one: 0..127
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
}
