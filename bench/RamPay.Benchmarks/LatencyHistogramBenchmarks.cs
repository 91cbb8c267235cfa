using System.Numerics;
using BenchmarkDotNet.Attributes;
using HdrHistogram;

namespace RamPay.Benchmarks;

/// <summary>
/// The recording path of the latency histograms: our own log-linear histograms (the code the server's AckLatency and
/// the load tool's LatencyHistogram had before HdrHistogram 2.5.0 was served, kept here as the baseline) against
/// HdrHistogram's, on the same values in the same run. Results are per recorded value.
/// <list type="bullet">
/// <item>Shared (the server's acknowledgement latency, any thread may record): ours = one interlocked increment of a
/// bucket plus a compare-and-swap maximum; HdrHistogram = a <see cref="Recorder"/> over
/// <see cref="LongConcurrentHistogram"/> (3 significant digits), plus the same exact maximum.</item>
/// <item>Single writer (the load tool: one histogram per sender, merged at the end): ours = a plain increment;
/// HdrHistogram = <see cref="LongHistogram"/> (2 significant digits: the same 1/128 resolution as ours).</item>
/// </list>
/// </summary>
[MemoryDiagnoser]
// Run in-process with explicit counts (docs/benchmarks.md gives the command); no job attribute, so --inProcess runs one job only.
public class LatencyHistogramBenchmarks
{
    private const int Values = 1 << 20;
    private readonly long[] _us = new long[Values];
    private readonly long[] _ns = new long[Values];

    private OwnShared _ownShared = null!;
    private Recorder _hdrRecorder = null!;
    private long _hdrMax;
    private OwnSingleWriter _ownSingle = null!;
    private LongHistogram _hdrSingle = null!;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        for (int i = 0; i < Values; i++)
        {
            // Acknowledgements: mostly 0.2..3 ms, one in a thousand up to 2 s.
            _us[i] = i % 1000 == 0 ? random.NextInt64(3_000, 2_000_000) : random.NextInt64(200, 3_000);
            _ns[i] = _us[i] * 1000 + random.Next(1000);
        }
        _ownShared = new OwnShared();
        _hdrRecorder = new Recorder(1, (1L << 32) - 1, 3, (id, low, high, digits) => new LongConcurrentHistogram(id, low, high, digits));
        _ownSingle = new OwnSingleWriter();
        _hdrSingle = new LongHistogram((1L << 36) - 1, 2);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Values)]
    public void Shared_own()
    {
        var h = _ownShared;
        foreach (long v in _us) h.Record(v);
    }

    [Benchmark(OperationsPerInvoke = Values)]
    public void Shared_hdr_recorder()
    {
        var r = _hdrRecorder;
        foreach (long v in _us)
        {
            r.RecordValue(Math.Min(v, (1L << 32) - 1));
            long max = Volatile.Read(ref _hdrMax);
            while (v > max)
            {
                long seen = Interlocked.CompareExchange(ref _hdrMax, v, max);
                if (seen == max) break;
                max = seen;
            }
        }
    }

    [Benchmark(OperationsPerInvoke = Values)]
    public void Single_own()
    {
        var h = _ownSingle;
        foreach (long v in _ns) h.Record(v);
    }

    [Benchmark(OperationsPerInvoke = Values)]
    public void Single_hdr_long_histogram()
    {
        var h = _hdrSingle;
        long max = 0, sum = 0;
        foreach (long v in _ns)
        {
            h.RecordValue(Math.Min(v, (1L << 36) - 1));
            sum += v; // the wrapper keeps the exact sum and maximum, as ours did
            if (v > max) max = v;
        }
        _sink = max + sum;
    }

    private long _sink;
    public long Sink => _sink;

    /// <summary>The old AckLatency's recording (values in µs up to 2^32, 128 sub-buckets per octave).</summary>
    private sealed class OwnShared
    {
        private readonly long[] _live = new long[256 + (32 - 8) * 128];
        private long _max;

        public void Record(long microseconds)
        {
            if (microseconds < 0) microseconds = 0;
            Interlocked.Increment(ref _live[IndexOf(Math.Min(microseconds, (1L << 32) - 1))]);
            long max = Volatile.Read(ref _max);
            while (microseconds > max)
            {
                long seen = Interlocked.CompareExchange(ref _max, microseconds, max);
                if (seen == max) break;
                max = seen;
            }
        }
    }

    /// <summary>The old load tool's LatencyHistogram recording (ns up to 2^36, one writer).</summary>
    private sealed class OwnSingleWriter
    {
        private readonly long[] _counts = new long[256 + (36 - 8) * 128];
        private long _count, _max, _min = long.MaxValue;
        private double _sum;

        public void Record(long nanoseconds)
        {
            if (nanoseconds < 0) nanoseconds = 0;
            _counts[IndexOf(Math.Min(nanoseconds, (1L << 36) - 1))]++;
            _count++;
            _sum += nanoseconds;
            if (nanoseconds > _max) _max = nanoseconds;
            if (nanoseconds < _min) _min = nanoseconds;
        }
    }

    private static int IndexOf(long value)
    {
        if (value < 256) return (int)value;
        int log2 = 63 - BitOperations.LeadingZeroCount((ulong)value);
        int shift = log2 - 7;
        int subBucket = (int)(value >> shift) - 128;
        return 256 + (log2 - 8) * 128 + subBucket;
    }
}
