using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using RamPay.Server.Observability;

namespace RamPay.Server.Tests;

/// <summary>
/// GET /v1/admin/latency (issue 15's latency chart): the acknowledgement latency the server measures itself, per
/// minute. The endpoint's numbers follow real traffic sent to a real server (composed in the test process, as the other
/// API classes' servers, over real HTTP and a real journal); the histogram behind them is checked on known values.
/// </summary>
public class AdminLatencyTests(InProcessServerFixture fixture) : IClassFixture<InProcessServerFixture>
{
    private readonly Api _api = fixture.Api;

    /// <summary>The contract type, read strictly: a field the server writes and RamPay.Contracts lacks (or the reverse) fails.</summary>
    private static readonly JsonSerializerOptions Strict = new(RamPay.Contracts.RamPayJsonContext.Default.Options)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    private async Task<RamPay.Contracts.LatencySeries> SeriesAsync(string admin, string query = "")
    {
        var response = await _api.GetAsync("/v1/admin/latency" + query, admin);
        response.Expect(HttpStatusCode.OK);
        return JsonSerializer.Deserialize<RamPay.Contracts.LatencySeries>(response.Raw, Strict)!;
    }

    [Fact]
    public async Task The_series_counts_the_payments_just_made_and_its_percentiles_lie_within_what_the_client_measured()
    {
        string admin = await _api.AdminTokenAsync();
        var clock = Stopwatch.StartNew();
        var (alice, bob) = await _api.PairAsync(aliceDeposit: 100_000);
        long slowestUs = clock.Elapsed.Ticks / 10; // the whole set-up bounds each of its commands' latency
        var before = await SeriesAsync(admin);
        long countBefore = before.Data.Sum(p => p.Count);

        const int Payments = 25;
        for (int i = 0; i < Payments; i++)
        {
            long start = Stopwatch.GetTimestamp();
            await _api.PayAsync(alice, bob.WalletId, 10 + i);
            slowestUs = Math.Max(slowestUs, (long)Stopwatch.GetElapsedTime(start).TotalMicroseconds + 1);
        }
        var after = await SeriesAsync(admin);
        long countAfter = after.Data.Sum(p => p.Count);
        Assert.True(countAfter - countBefore >= Payments, $"{Payments} payments acknowledged, the series grew by {countAfter - countBefore}");

        Assert.Equal(60, after.IntervalSeconds);
        Assert.True(after.From < after.To && after.To <= DateTimeOffset.UtcNow.AddSeconds(5), $"{after.From} .. {after.To}");
        Assert.NotEmpty(after.Data);
        DateTimeOffset previous = DateTimeOffset.MinValue;
        foreach (var p in after.Data)
        {
            Assert.True(p.Start > previous && p.Start >= after.From && p.Start.Second == 0 && p.Start.Millisecond == 0, $"minute {p.Start}");
            previous = p.Start;
            Assert.True(p.Count > 0);
            Assert.True(0 <= p.P50Us && p.P50Us <= p.P90Us && p.P90Us <= p.P99Us && p.P99Us <= p.P999Us && p.P999Us <= p.MaxUs, $"{p}");
        }
        // The server's own measurement sits inside the client's round trips: nothing of this test took longer than the
        // slowest request (or the set-up as a whole), and a durable reply takes time (fsync).
        var last = after.Data[^1];
        Assert.True(last.MaxUs <= slowestUs, $"max {last.MaxUs} µs, slowest round trip {slowestUs} µs");
        Assert.True(last.MaxUs > 0);

        // A window of one minute holds only the current one.
        var one = await SeriesAsync(admin, "?minutes=1");
        Assert.True(one.Data.Count <= 1 && one.Data.All(p => p.Start >= one.From));
    }

    [Fact]
    public async Task Only_an_admin_reads_it_and_a_bad_window_is_refused()
    {
        var user = await _api.SignUpAsync();
        (await _api.GetAsync("/v1/admin/latency", user.Token)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
        string admin = await _api.AdminTokenAsync();
        foreach (string bad in new[] { "0", "1441", "-1", "x", "1.5" })
            (await _api.GetAsync($"/v1/admin/latency?minutes={bad}", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_request");
        var day = await SeriesAsync(admin, "?minutes=1440");
        Assert.InRange((day.To - day.From).TotalMinutes, 1439, 1440);
    }
}

/// <summary>The per-minute histogram behind the endpoint, on a clock of the test's own.</summary>
public class AckLatencyTests
{
    private sealed class Clock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static readonly DateTimeOffset Noon = new(2026, 12, 5, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Percentiles_of_known_values_are_within_the_histograms_precision_and_never_below()
    {
        var clock = new Clock(Noon.AddSeconds(5));
        using var latency = new AckLatency(clock, drainEverySecond: false);
        for (long us = 1; us <= 10_000; us++) latency.Record(us);
        var p = Assert.Single(latency.Since(0));
        Assert.Equal((Noon.ToUnixTimeMilliseconds(), 10_000L, 10_000L), (p.StartMs, p.Count, p.MaxUs));
        foreach (var (got, exact) in new[] { (p.P50Us, 5_000L), (p.P90Us, 9_000L), (p.P99Us, 9_900L), (p.P999Us, 9_990L) })
            Assert.True(got >= exact && got <= exact * 1.008 + 1, $"{got} for {exact}");
    }

    [Fact]
    public void Minutes_are_closed_into_the_ring_in_order_empty_ones_left_out_and_the_ring_is_bounded()
    {
        var clock = new Clock(Noon);
        using var latency = new AckLatency(clock, drainEverySecond: false);
        latency.Record(100);
        latency.Drain();
        // Recorded in the minute's last second, drained at the next minute's start (the timer runs every second): it
        // belongs to the minute that was open since the previous drain.
        latency.Record(150);
        clock.Now = Noon.AddMinutes(1);
        latency.Drain();
        latency.Record(200);
        clock.Now = Noon.AddMinutes(1).AddSeconds(1);
        latency.Drain();
        latency.Record(300);
        latency.Record(400);
        clock.Now = Noon.AddMinutes(3); // minute 2 had nothing: it is left out
        latency.Drain();
        latency.Record(500);
        var points = latency.Since(0);
        Assert.Equal([Noon.ToUnixTimeMilliseconds(), Noon.AddMinutes(1).ToUnixTimeMilliseconds(), Noon.AddMinutes(3).ToUnixTimeMilliseconds()], points.Select(x => x.StartMs));
        Assert.Equal([(2L, 150L), (3L, 400L), (1L, 500L)], points.Select(x => (x.Count, x.MaxUs)));
        Assert.Equal(2, latency.Since(Noon.AddMinutes(1).ToUnixTimeMilliseconds()).Count);

        for (int m = 4; m < 4 + AckLatency.MaxMinutes + 10; m++)
        {
            latency.Record(m);
            clock.Now = Noon.AddMinutes(m);
            latency.Drain();
        }
        var all = latency.Since(0);
        Assert.Equal(AckLatency.MaxMinutes, all.Count); // the ring is full; the newest minute has nothing yet
        Assert.True(all.Zip(all.Skip(1)).All(x => x.First.StartMs < x.Second.StartMs));
        Assert.Equal(Noon.AddMinutes(4 + AckLatency.MaxMinutes + 8).ToUnixTimeMilliseconds(), all[^1].StartMs);
    }

    [Fact]
    public void Recording_allocates_nothing()
    {
        using var latency = new AckLatency(new Clock(Noon), drainEverySecond: false);
        for (int i = 0; i < 10_000; i++) latency.Record(i); // warm: the JIT's tiers, HdrHistogram's first calls
        latency.Drain();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100_000; i++)
        {
            latency.Record(i % 50_000);
            latency.RecordSince(Stopwatch.GetTimestamp());
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(210_000, Assert.Single(latency.Since(0)).Count);
    }

    [Fact]
    public async Task Records_from_many_threads_while_draining_are_all_counted()
    {
        var clock = new Clock(Noon);
        using var latency = new AckLatency(clock, drainEverySecond: false);
        const int Threads = 4, Each = 50_000;
        using var stop = new CancellationTokenSource();
        var drainer = Task.Run(() => { while (!stop.IsCancellationRequested) latency.Drain(); });
        Parallel.For(0, Threads, t => { for (int i = 0; i < Each; i++) latency.Record(i % 5_000); });
        stop.Cancel();
        await drainer;
        Assert.Equal((long)Threads * Each, Assert.Single(latency.Since(0)).Count);
    }
}
