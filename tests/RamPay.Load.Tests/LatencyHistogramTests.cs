namespace RamPay.Load.Tests;

public sealed class LatencyHistogramTests
{
    private static readonly double[] Percentiles = [0, 0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100];
    private const double MaxRelativeError = 0.01;

    /// <summary>Every percentile the histogram reports is within 1% of the nearest-rank value of the sorted data, and never below it.</summary>
    private static void AssertMatchesSorted(LatencyHistogram h, long[] values)
    {
        long[] sorted = values.Order().ToArray();
        Assert.Equal(sorted.Length, h.Count);
        Assert.Equal(sorted[^1], h.Max);
        Assert.Equal(sorted[0], h.Min);
        foreach (double p in Percentiles)
        {
            long exact = sorted[LatencyHistogram.RankOf(p, sorted.Length) - 1];
            long reported = h.ValueAtPercentile(p);
            Assert.True(reported >= exact, $"p{p}: reported {reported} below the true {exact}");
            Assert.True(reported - exact <= exact * MaxRelativeError, $"p{p}: reported {reported}, true {exact}: {(reported - exact) / (double)exact:P3} off");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Log_uniform_values_from_1_microsecond_to_60_seconds(int seed)
    {
        var random = new Random(seed);
        long[] values = Enumerable.Range(0, 200_000).Select(_ => (long)Math.Exp(random.NextDouble() * (Math.Log(60e9) - Math.Log(1e3)) + Math.Log(1e3))).ToArray();
        var h = new LatencyHistogram();
        foreach (long v in values) h.Record(v);
        AssertMatchesSorted(h, values);
    }

    [Fact]
    public void A_narrow_cluster_with_a_long_tail()
    {
        // What a real run looks like: most answers near 1 ms, a few slow ones.
        var random = new Random(7);
        long[] values = Enumerable.Range(0, 100_000)
            .Select(i => i % 1000 == 0 ? random.NextInt64(50_000_000, 2_000_000_000) : 1_000_000 + (long)(random.NextDouble() * 300_000))
            .ToArray();
        var h = new LatencyHistogram();
        foreach (long v in values) h.Record(v);
        AssertMatchesSorted(h, values);
    }

    [Fact]
    public void Small_values_are_exact()
    {
        long[] values = Enumerable.Range(0, 256).Select(i => (long)i).Concat([0, 5, 255]).ToArray();
        var h = new LatencyHistogram();
        foreach (long v in values) h.Record(v);
        long[] sorted = values.Order().ToArray();
        foreach (double p in Percentiles) Assert.Equal(sorted[LatencyHistogram.RankOf(p, sorted.Length) - 1], h.ValueAtPercentile(p));
    }

    [Fact]
    public void Recording_allocates_nothing()
    {
        var h = new LatencyHistogram();
        for (int i = 0; i < 10_000; i++) h.Record(i * 997L); // warm: the JIT's tiers, HdrHistogram's first calls
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100_000; i++)
        {
            h.Record(i * 7_919L);
            h.RecordTicks(i);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(210_000, h.Count);
    }

    [Fact]
    public void Merging_parts_gives_the_histogram_of_the_whole()
    {
        var random = new Random(11);
        long[] values = Enumerable.Range(0, 50_000).Select(_ => random.NextInt64(1_000, 5_000_000_000)).ToArray();
        var whole = new LatencyHistogram();
        var parts = Enumerable.Range(0, 4).Select(_ => new LatencyHistogram()).ToArray();
        for (int i = 0; i < values.Length; i++)
        {
            whole.Record(values[i]);
            parts[i % 4].Record(values[i]);
        }
        var merged = new LatencyHistogram();
        foreach (LatencyHistogram part in parts) merged.Add(part);
        merged.Add(new LatencyHistogram()); // an empty part changes nothing (its Min is not 0)

        foreach (double p in Percentiles) Assert.Equal(whole.ValueAtPercentile(p), merged.ValueAtPercentile(p));
        Assert.Equal(whole.Mean, merged.Mean, 6);
        AssertMatchesSorted(merged, values);
    }

    [Fact]
    public void Values_beyond_the_range_count_in_the_top_bucket_and_keep_an_exact_max()
    {
        var h = new LatencyHistogram();
        h.Record(1_000);
        h.Record(100_000_000_000); // 100 s
        Assert.Equal(100_000_000_000, h.Max);
        Assert.Equal(100_000_000_000, h.ValueAtPercentile(100));
        Assert.Equal(1_000, h.ValueAtPercentile(50), 1_000 / 128.0);
    }

    [Fact]
    public void An_empty_histogram_reports_zero()
    {
        var h = new LatencyHistogram();
        Assert.Equal(0, h.ValueAtPercentile(99));
        Assert.Equal(0, h.Mean);
        Assert.Equal(0, h.Count);
    }
}
