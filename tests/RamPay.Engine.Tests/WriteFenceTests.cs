using RamPay.Core;
using RamPay.Engine;

namespace RamPay.Engine.Tests;

public class WriteFenceTests
{
    /// <summary>Says yes until <see cref="Closed"/> is set, and counts the questions.</summary>
    private sealed class SwitchFence : IWriteFence
    {
        public volatile bool Closed;
        public int Checks;

        public void CheckCanWrite()
        {
            Interlocked.Increment(ref Checks);
            if (Closed) throw new InvalidOperationException("the fence is closed");
        }
    }

    private static EngineOptions Options(TempDataDir dir, IWriteFence fence) => new()
    {
        DataDirectory = dir.Path, Clock = new SteppingClock().Now, Fsync = false,
        SnapshotEveryCommands = 0, SnapshotOnStop = true, TickIntervalMs = 0, WriteFence = fence,
    };

    [Fact]
    public void The_journaler_asks_the_fence_per_batch_and_a_closed_fence_faults_the_engine_before_anything_is_written()
    {
        using var dir = new TempDataDir();
        var fence = new SwitchFence();
        var maker = new Commands();
        var engine = RamPayEngine.Start(Options(dir, fence));
        long ticket = engine.Submit(maker.Open(AccountFlags.Funding));
        Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(30)));
        Assert.InRange(Volatile.Read(ref fence.Checks), 2, 2); // before the append and before the commit

        fence.Closed = true;
        long refused = engine.Submit(maker.Open(AccountFlags.Funding));
        var fault = Assert.ThrowsAny<Exception>(() => engine.WaitForCompletion(refused, TimeSpan.FromSeconds(30)));
        Assert.Contains("the fence is closed", fault.ToString(), StringComparison.Ordinal);
        Assert.NotNull(engine.Fault);
        Assert.ThrowsAny<Exception>(engine.Stop); // and the stop writes no snapshot either

        // Only the first command reached the disk; no snapshot was written.
        using var reopened = RamPayEngine.Start(Options(dir, new SwitchFence()) with { SnapshotOnStop = false });
        Assert.Equal(1, reopened.Recovery.LastSequence);
        Assert.Equal(0, reopened.Recovery.SnapshotSequence);
    }

    /// <summary>
    /// The writer applies a batch in parallel with the journaler and, when a periodic snapshot is due, waits for that
    /// batch to be durable. If the journaler fails meanwhile the batch never will be: the writer must fail too, not
    /// spin for ever (it did: the stop then timed out with a thread still spinning).
    /// </summary>
    [Fact]
    public void A_writer_waiting_to_snapshot_fails_when_the_journaler_fails_instead_of_spinning()
    {
        using var dir = new TempDataDir();
        var fence = new SwitchFence();
        var engine = RamPayEngine.Start(Options(dir, fence) with { SnapshotEveryCommands = 1, SnapshotOnStop = false });
        var maker = new Commands();
        Assert.True(engine.WaitForCompletion(engine.Submit(maker.Open(AccountFlags.Funding)), TimeSpan.FromSeconds(30)));
        fence.Closed = true;
        long refused = engine.Submit(maker.Open(AccountFlags.Funding));
        Assert.ThrowsAny<Exception>(() => engine.WaitForCompletion(refused, TimeSpan.FromSeconds(30)));

        var stopped = Assert.ThrowsAny<Exception>(engine.Stop);
        Assert.IsNotType<TimeoutException>(stopped);
        Assert.Contains("the journal stage failed while a snapshot waited for it", stopped.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_snapshot_asks_the_fence_too()
    {
        using var dir = new TempDataDir();
        var fence = new SwitchFence();
        var engine = RamPayEngine.Start(Options(dir, fence));
        long ticket = engine.Submit(new Commands().Open(AccountFlags.Funding));
        Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(30)));
        fence.Closed = true;
        Assert.ThrowsAny<Exception>(engine.Stop);
        Assert.False(Directory.Exists(dir.Snapshots) && Directory.EnumerateFiles(dir.Snapshots).Any());
    }
}
