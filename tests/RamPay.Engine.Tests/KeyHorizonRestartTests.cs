using System.Diagnostics;
using RamPay.Core;
using RamPay.Journal;

namespace RamPay.Engine.Tests;

/// <summary>
/// The cold key tier's collection horizon across a restart (<see cref="SnapshotHorizon"/>): a start takes the facts of the
/// snapshots an earlier run wrote from <see cref="SnapshotHorizon.FileName"/>, so the tier goes on collecting at once. Before,
/// a start knew no snapshot's facts and collected nothing until it had written <c>keep</c> snapshots of its own; the 200 M
/// long run (2026-12-06) restarted at 100 M payments with the tier near its capacity and stopped FATAL
/// (<c>ColdTierFullException</c>, "the horizon at snapshot 0") 17 M keys later.
/// </summary>
public class KeyHorizonRestartTests
{
    private const int Ring = 256;
    private const int Generation = 2 * Ring;

    private static EngineOptions Options(string dir, long startMs) => new()
    {
        DataDirectory = dir, Clock = new SteppingClock(startMs, stepMs: 1).Now, RingSize = Ring, MaxBatchSize = Ring, TickIntervalMs = 0,
        SnapshotEveryCommands = 10_000, SnapshotOffWriter = true, SnapshotsToKeep = 2, SnapshotOnStop = false, Fsync = false,
        Ledger = new LedgerOptions { MaxAccounts = 64, MaxPayments = 1 << 20, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16 },
        RulesVersion = 2, IdempotencyKeyBudget = 20_000,
        ColdTier = new ColdTierOptions { HotMaxKeys = 4 * Generation, GenerationCommands = Generation, SegmentKeys = 1024 },
    };

    private static void Drive(RamPayEngine engine, Commands k, int count)
    {
        long ticket = 0;
        for (int i = 0; i < count; i++) ticket = engine.Submit(k.Move(CommandType.Deposit, 1, 2, 1 + i % 1_000), correlation: i);
        Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromMinutes(2)));
    }

    private static void WaitFor(Func<bool> condition, string what) => EngineTestWaits.WaitFor(condition, what, 120);

    private static long[] SnapshotSequences(TempDataDir dir) => EngineTestWaits.SnapshotSequences(dir.Snapshots);

    [Fact]
    public void A_restart_takes_the_kept_snapshots_horizon_from_the_facts_file_and_collects_at_once()
    {
        using var dir = new TempDataDir();
        var k = new Commands();
        string facts = Path.Combine(dir.Snapshots, SnapshotHorizon.FileName);
        long horizon;

        // 1. Run 1: 50,000 deposits with fresh keys (budget 20,000), a snapshot every 10,000 commands, 2 kept: the horizon is
        //    the older kept snapshot's, and the facts file lists both kept snapshots.
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_000_000), new RecordingCompletion()))
        {
            var setup = new List<Command> { k.Open(AccountFlags.Funding), k.Open(AccountFlags.DebitsMustNotExceedCredits) };
            long ticket = 0;
            foreach (var c in setup) ticket = engine.Submit(c, correlation: -1);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromMinutes(1)));
            Drive(engine, k, 50_000);
            WaitFor(() => engine.Counters.LastSnapshotSequence >= 50_000, "the snapshot at 50,000");
            Assert.Null(engine.Fault);
            engine.Stop();
            // Read after the stop: the snapshotter publishes its count before the horizon, and a loaded machine may see
            // one without the other; and a snapshotter that is behind takes one snapshot where it stands, so which two
            // are kept depends on timing.
            horizon = engine.ColdKeyHorizonSequence;
        }
        long[] kept = SnapshotSequences(dir);
        Assert.Equal(2, kept.Length);
        Assert.Equal(kept[0], horizon);
        var written = SnapshotHorizon.Parse(File.ReadAllText(facts));
        Assert.Equal(kept, written.Select(f => f.Sequence));
        Assert.All(written, f => Assert.True(f.DeadBelowIndex > 0, $"snapshot {f.Sequence}: keys below {f.DeadBelowIndex} are dead"));

        // 2. Restart: before any snapshot of its own, the tier's horizon is the older kept snapshot's again.
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_100_000), new RecordingCompletion()))
        {
            Assert.Equal(kept[^1], engine.Recovery.SnapshotSequence);
            Assert.Equal(horizon, engine.ColdKeyHorizonSequence);
            // 3. New snapshots move it on, and the file with it.
            //    (Driven in steps, each waited for: a snapshotter that is behind takes one snapshot where it stands, not one per interval.)
            for (int step = 1; step <= 3; step++)
            {
                Drive(engine, k, 10_000);
                long through = kept[^1] + step * 10_000;
                WaitFor(() => engine.Counters.LastSnapshotSequence >= through, $"a snapshot at {through} after the restart");
            }
            WaitFor(() => engine.ColdKeyHorizonSequence > kept[^1], "the horizon past the restart's snapshot");
            Assert.Null(engine.Fault);
            engine.Stop();
        }
        Assert.Equal(SnapshotSequences(dir),
            SnapshotHorizon.Parse(File.ReadAllText(facts)).Select(f => f.Sequence));

        // 4. Without the file (data from before it existed, or a crash before it was first written) a start knows no facts:
        //    nothing is collected until this run has written its own kept snapshots (the behaviour before, which is safe).
        File.Delete(facts);
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_200_000), new RecordingCompletion()))
        {
            Assert.Equal(0, engine.ColdKeyHorizonSequence);
            engine.Stop();
        }
    }

    [Fact]
    public void A_snapshot_missing_from_the_file_leaves_the_horizon_at_an_older_one_never_a_newer()
    {
        using var dir = new TempDataDir();
        var k = new Commands();
        string facts = Path.Combine(dir.Snapshots, SnapshotHorizon.FileName);

        // 1. Run 1 as above: two kept snapshots and their facts.
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_000_000), new RecordingCompletion()))
        {
            long ticket = 0;
            foreach (var c in new[] { k.Open(AccountFlags.Funding), k.Open(AccountFlags.DebitsMustNotExceedCredits) }) ticket = engine.Submit(c, correlation: -1);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromMinutes(1)));
            Drive(engine, k, 35_000);
            WaitFor(() => engine.Counters.LastSnapshotSequence >= 30_000, "the snapshot at 30,000");
            engine.Stop();
        }
        var written = SnapshotHorizon.Parse(File.ReadAllText(facts));
        Assert.Equal(2, written.Count);

        // 2. A crash between the newest snapshot's publication and the file's update: the file lacks the newest snapshot.
        File.WriteAllText(facts, SnapshotHorizon.Format(written.Take(1)));

        // 3. Restart: one known snapshot of the two kept is fewer than the kept count, so no horizon yet (the older one would
        //    also be safe; a newer one would not be, since recovery may fall back to the older).
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_100_000), new RecordingCompletion()))
        {
            Assert.Equal(0, engine.ColdKeyHorizonSequence);
            // 4. The next snapshot of this run joins the known one: the horizon is the older, known snapshot's.
            Drive(engine, k, 12_000);
            WaitFor(() => engine.ColdKeyHorizonSequence != 0, "a snapshot after the restart");
            Assert.Equal(written[0].Sequence, engine.ColdKeyHorizonSequence);
            engine.Stop();
        }
    }

    [Fact]
    public void The_facts_file_layout_is_pinned()
    {
        // Golden: one line per snapshot, oldest first, "sequence deadBelowIndex expiredAtOrBeforeMs".
        const string golden = "20001 -5 1699999913600000\n40001 12 1700000001000\n";
        var facts = SnapshotHorizon.Parse(golden);
        Assert.Equal([(20001L, -5L, 1699999913600000L), (40001L, 12L, 1700000001000L)], facts);
        Assert.Equal(golden, SnapshotHorizon.Format(facts));
        Assert.Throws<InvariantViolationException>(() => SnapshotHorizon.Parse("40001 12 1\n20001 -5 1\n"));
        Assert.Throws<InvariantViolationException>(() => SnapshotHorizon.Parse("40001 12\n"));
    }
}
