using RamPay.Worker;

namespace RamPay.Rewards.Tests;

/// <summary>
/// How often a flushing consumer's effects are made durable and its offsets committed while events keep coming
/// (<see cref="WorkerOptions.FlushIntervalMs"/>): every 250 ms, spaced out to ten times a slow flush's duration, so that
/// a large state (the analytics worker rewrites its whole rollups file) never takes more than about a tenth of the
/// consuming thread.
/// </summary>
public sealed class WorkerFlushIntervalTests
{
    private static readonly WorkerOptions Options = new() { Consumer = "analytics", BootstrapServers = "127.0.0.1:9092", Group = "g" };

    [Fact]
    public void A_quick_flush_comes_every_250_ms_and_a_slow_one_at_ten_times_its_duration()
    {
        Assert.Equal(250, Options.FlushEveryMs);
        Assert.Equal(250, Options.FlushIntervalMs(0));
        Assert.Equal(250, Options.FlushIntervalMs(25)); // 25 ms of a 250 ms interval: a tenth
        Assert.Equal(260, Options.FlushIntervalMs(26));
        Assert.Equal(4_000, Options.FlushIntervalMs(400));
        Assert.Equal(1_000, (Options with { FlushEveryMs = 1_000 }).FlushIntervalMs(40));
    }
}
