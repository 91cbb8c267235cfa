using RamPay.Core;
using RamPay.Engine;
using RamPay.Sinks;

namespace RamPay.Kafka.Tests;

/// <summary>
/// The sinks' spool (docs/sinks.md): a batch read back from disk is the batch that was written, change for change
/// and field for field (users, notes, fraud model versions included), in the order written; the spool reports
/// itself drained only when it is; it refuses more past its byte budget (one batch over it still goes).
/// </summary>
public sealed class ChangeSpoolTests
{
    [Fact]
    public void Spooled_batches_read_back_identical_in_order_and_the_spool_is_removed()
    {
        using var dir = new TempDir();
        // Two journals (each builder numbers its idempotency keys from 1): the scenario has notes, the workload volume.
        var batches = Follow(Path.Combine(dir.Path, "a"), Scenario.Commands(), batchChanges: 300)
            .Concat(Follow(Path.Combine(dir.Path, "b"), new CommandBuilder().Workload(seed: 11, wallets: 30, count: 2_000), batchChanges: 300)).ToList();
        Assert.True(batches.Count >= 5);
        Assert.Contains(batches.SelectMany(b => b.Changes.ToArray()), c => c.User is not null);
        Assert.Contains(batches.SelectMany(b => b.Changes.ToArray()), c => c.Note is not null);
        Assert.Contains(batches.SelectMany(b => b.Changes.ToArray()), c => c.Kind == ChangeKind.HoldExpired);

        string spoolDir = Path.Combine(dir.Path, "spool");
        using (var spool = new ChangeSpool(spoolDir, maxBytes: 1L << 30))
        {
            Assert.False(spool.Active);
            foreach (var b in batches) spool.Append(b);
            Assert.True(spool.Active);
            Assert.Equal(batches.Count, spool.Batches);
            Assert.True(spool.Bytes > 0);

            // Capacity 1: a read takes one spooled batch (a batch always goes whole; the next never fits), so each read is one
            // of the batches written (merging small ones: the next test).
            var into = new ChangeBatch(1);
            // Batches still queued in memory go first: the spool gives nothing while the queue is not empty.
            Assert.False(spool.TryRead(into, () => false));
            Assert.True(spool.Active);
            foreach (var expected in batches)
            {
                Assert.True(spool.TryRead(into, () => true));
                Assert.Equal(expected.LastSequence, into.LastSequence);
                Assert.Equal(expected.LastTimestampMs, into.LastTimestampMs);
                Assert.Equal(expected.Count, into.Count);
                for (int i = 0; i < expected.Count; i++)
                {
                    // ValueType.Equals compares every field; User and PaymentNote are records (compared by value).
                    Assert.True(expected.Changes[i].Equals(into.Changes[i]), $"change {i} of the batch ending at {expected.LastSequence} differs after the spool");
                }
            }
            Assert.False(spool.TryRead(into, () => true));
            Assert.False(spool.Active);
            Assert.Equal(0, spool.Batches);
            Assert.Equal(0, spool.Bytes);
            Assert.Empty(Directory.GetFiles(spoolDir));
        }
        Assert.False(Directory.Exists(spoolDir));
    }

    [Fact]
    public void Small_spooled_batches_are_read_back_merged_up_to_the_readers_capacity_in_order()
    {
        using var dir = new TempDir();
        var batches = Follow(dir.Path, new CommandBuilder().Workload(seed: 5, wallets: 20, count: 2_000), batchChanges: 10);
        Assert.True(batches.Count >= 100, $"{batches.Count} batches");
        using var spool = new ChangeSpool(Path.Combine(dir.Path, "spool"), maxBytes: 1L << 30);
        foreach (var b in batches) spool.Append(b);

        var into = new ChangeBatch(100);
        var read = new List<Change>();
        var ends = batches.Select(b => b.LastSequence).ToHashSet();
        int reads = 0;
        long last = 0;
        while (spool.TryRead(into, () => true))
        {
            reads++;
            Assert.True(into.Count <= 100, $"a read of {into.Count} changes, past the capacity of 100");
            Assert.True(into.LastSequence > last, "reads out of order");
            Assert.Contains(into.LastSequence, ends); // a read ends where a spooled batch ended: batches are never split
            last = into.LastSequence;
            read.AddRange(into.Changes.ToArray());
        }
        var expected = batches.SelectMany(b => b.Changes.ToArray()).ToList();
        Assert.Equal(expected.Count, read.Count);
        for (int i = 0; i < expected.Count; i++) Assert.True(expected[i].Equals(read[i]), $"change {i} differs after the spool");
        Assert.Equal(batches[^1].LastSequence, last);
        // Batches of at most 10 changes merged up to 100: far fewer reads than batches (each read holds more than 90).
        Assert.True(reads * 5 < batches.Count, $"{reads} reads for {batches.Count} batches: not merged");
        Assert.False(spool.Active);
    }

    [Fact]
    public void The_spool_stops_taking_batches_past_its_budget_and_a_zero_budget_means_no_spool()
    {
        using var dir = new TempDir();
        var batches = Follow(dir.Path, new CommandBuilder().Workload(seed: 3, wallets: 10, count: 600), batchChanges: 100);
        using var spool = new ChangeSpool(Path.Combine(dir.Path, "spool"), maxBytes: 1);
        Assert.True(spool.HasRoom); // empty: one batch may go even over the budget
        spool.Append(batches[0]);
        Assert.False(spool.HasRoom);
        using var none = new ChangeSpool(Path.Combine(dir.Path, "none"), maxBytes: 0);
        Assert.False(none.HasRoom);
    }

    [Fact]
    public void A_spool_left_by_an_earlier_process_is_deleted_at_start()
    {
        using var dir = new TempDir();
        string spoolDir = Path.Combine(dir.Path, "spool");
        Directory.CreateDirectory(spoolDir);
        File.WriteAllText(Path.Combine(spoolDir, "000000000000.batch"), "stale");
        using var spool = new ChangeSpool(spoolDir, maxBytes: 1 << 20);
        Assert.False(Directory.Exists(spoolDir));
        Assert.Equal(0, spool.Batches);
        Assert.False(spool.TryRead(new ChangeBatch(10), () => true));
    }

    /// <summary>Journals <paramref name="commands"/> with a real engine and turns them into batches with the sinks' follower.</summary>
    private static List<ChangeBatch> Follow(string root, List<Submitted> commands, int batchChanges)
    {
        long now = LedgerChanges.StartMs;
        var options = new EngineOptions
        {
            DataDirectory = Path.Combine(root, "data"), Clock = () => now += LedgerChanges.StepMs, Fsync = false,
            SnapshotEveryCommands = 0, SnapshotOnStop = false, TickIntervalMs = 0, Ledger = LedgerChanges.LedgerOptions,
        };
        using (var engine = RamPayEngine.Start(options))
        {
            foreach (var c in commands) engine.Submit(c.Command, 0, c.Attachment);
            engine.Stop();
        }
        using var follower = new LedgerFollower(options.SnapshotDirectory, options.JournalDirectory, options.Ledger, afterSequence: 0);
        var batches = new List<ChangeBatch>();
        while (true)
        {
            var batch = new ChangeBatch(batchChanges);
            if (follower.Poll(commands.Count, batchChanges, batch) == 0) break;
            batches.Add(batch);
        }
        return batches;
    }
}

/// <summary>
/// The hub with two sinks of the test's own (no outside server): one fails every write until the test lets it, the
/// other works. The working one reaches the journal's end while the failing one is stuck (its batches spooled), each
/// sink's back-pressure limit is its own, and once the failing one may write it receives every change, once, in order.
/// </summary>
public sealed class SinkHubIsolationTests
{
    private sealed class RecordingSink(string name) : IChangeSink
    {
        public volatile bool Down;
        public readonly List<(long Sequence, int Index)> Written = [];
        public readonly List<int> WriteSizes = [];
        private SinkCheckpoint _checkpoint;
        public string Name => name;
        public SinkCheckpoint Open() => Down ? throw new IOException($"{name} is down") : _checkpoint;
        public void Write(ReadOnlySpan<Change> changes, SinkCheckpoint through)
        {
            if (Down) throw new IOException($"{name} is down");
            Assert.True(through.Sequence > _checkpoint.Sequence, "a write that does not move the checkpoint");
            WriteSizes.Add(changes.Length);
            foreach (ref readonly var c in changes) Written.Add((c.Sequence, c.Index));
            _checkpoint = through;
        }
        public void Dispose() { }
    }

    [Fact]
    public void A_sink_that_fails_does_not_hold_back_the_other_and_gets_every_change_in_order_when_it_recovers()
    {
        using var dir = new TempDir();
        var commands = new CommandBuilder().Workload(seed: 7, wallets: 40, count: 4_000);
        long[] now = [LedgerChanges.StartMs];
        var engineOptions = Journal(dir.Path, commands, now);
        long head = commands.Count;
        var expected = LedgerChanges.Run(commands).Select(c => (c.Sequence, c.Index)).ToList();
        var good = new RecordingSink("good");
        var bad = new RecordingSink("bad");
        var hub = new SinkHub(new SinkHubOptions
        {
            SnapshotDirectory = engineOptions.SnapshotDirectory, JournalDirectory = engineOptions.JournalDirectory,
            StateDirectory = Path.Combine(dir.Path, "sinks"), Ledger = engineOptions.Ledger, BatchChanges = 64, QueueBatches = 2,
            RetryMin = TimeSpan.FromMilliseconds(5), RetryMax = TimeSpan.FromMilliseconds(20),
            MaxLagRecords = 0, MaxLagSeconds = 0,
            Limits = new Dictionary<string, SinkLimits> { ["bad"] = new(MaxLagRecords: 100, MaxLagSeconds: 0) },
        }, [good, bad], () => head, () => now[0]);
        using (hub)
        {
            hub.Start();
            var goodRunner = hub.Sinks[0];
            var badRunner = hub.Sinks[1];
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!(badRunner.Opened && badRunner.Checkpoint.Sequence > 0) && clock.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(1);
            bad.Down = true; // fails from its next write on, after it has told the hub its checkpoint
            while (goodRunner.Checkpoint.Sequence < head && clock.Elapsed < TimeSpan.FromSeconds(60)) Thread.Sleep(5);
            Assert.Equal(head, goodRunner.Checkpoint.Sequence);
            Assert.True(badRunner.Checkpoint.Sequence < head - 100, $"the failing sink is at {badRunner.Checkpoint.Sequence}");
            Assert.True(badRunner.BatchesSpooledTotal > 0);
            Assert.True(hub.IsOverLagLimit(out string reason));
            Assert.Contains("bad sink", reason, StringComparison.Ordinal);
            Assert.Contains("limit 100", reason, StringComparison.Ordinal);
            Assert.Equal(new SinkLimits(0, 0), goodRunner.Limits);

            bad.Down = false;
            while (badRunner.Checkpoint.Sequence < head && clock.Elapsed < TimeSpan.FromSeconds(90)) Thread.Sleep(5);
            Assert.Equal(head, badRunner.Checkpoint.Sequence);
            Assert.False(hub.IsOverLagLimit(out _));
            Assert.Equal(0, badRunner.SpooledBatches);
        }
        Assert.Equal(expected, good.Written);
        // The failing sink wrote a prefix before it failed, then the rest: every change once, in order.
        Assert.Equal(expected, bad.Written);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "sinks", "bad.spool")));
    }

    [Fact]
    public void A_sink_behind_writes_the_small_batches_waiting_for_it_together_up_to_BatchChanges()
    {
        // 1. A journal of 4,000 workload commands.
        using var dir = new TempDir();
        var commands = new CommandBuilder().Workload(seed: 9, wallets: 40, count: 4_000);
        long[] now = [LedgerChanges.StartMs];
        var engineOptions = Journal(dir.Path, commands, now);
        var expected = LedgerChanges.Run(commands).Select(c => (c.Sequence, c.Index)).ToList();
        // 2. The durable head moves a few records at a time, as under live load: the follower hands on what each poll
        //    finds (a few changes), not full batches.
        long[] head = [1];
        var sink = new RecordingSink("behind");
        var good = new RecordingSink("good"); // keeps up: the hub spools the other's batches only while another sink is idle
        var hub = new SinkHub(new SinkHubOptions
        {
            SnapshotDirectory = engineOptions.SnapshotDirectory, JournalDirectory = engineOptions.JournalDirectory,
            StateDirectory = Path.Combine(dir.Path, "sinks"), Ledger = engineOptions.Ledger, BatchChanges = 256, QueueBatches = 4,
            RetryMin = TimeSpan.FromMilliseconds(5), RetryMax = TimeSpan.FromMilliseconds(20), MaxLagRecords = 0, MaxLagSeconds = 0,
            IdlePoll = TimeSpan.FromMilliseconds(1),
        }, [good, sink], () => Volatile.Read(ref head[0]), () => now[0]);
        using (hub)
        {
            hub.Start();
            var runner = hub.Sinks[1];
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!(runner.Opened && runner.Checkpoint.Sequence > 0) && clock.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(1);
            // 3. The sink goes down while the head crawls to the end: its small batches fill its queue (4), then its spool.
            sink.Down = true;
            int writesBefore = sink.WriteSizes.Count;
            while (Volatile.Read(ref head[0]) < commands.Count)
            {
                Volatile.Write(ref head[0], Math.Min(commands.Count, head[0] + 3));
                Thread.Sleep(1);
            }
            while (hub.FollowerSequence < commands.Count && clock.Elapsed < TimeSpan.FromSeconds(60)) Thread.Sleep(5);
            Assert.True(runner.BatchesSpooledTotal > 20, $"{runner.BatchesSpooledTotal} batches spooled: the follower's batches were not small");
            long spooled = runner.BatchesSpooledTotal;
            // 4. Up again: it catches up with writes that each carry many of the waiting batches, every change once, in order.
            sink.Down = false;
            while (runner.Checkpoint.Sequence < commands.Count && clock.Elapsed < TimeSpan.FromSeconds(90)) Thread.Sleep(5);
            Assert.Equal(commands.Count, runner.Checkpoint.Sequence);
            var after = sink.WriteSizes.Skip(writesBefore).ToList();
            Assert.True(after.Count * 4 < spooled, $"{after.Count} writes for {spooled} spooled batches: they were not merged");
            Assert.True(after.Max() > 64, $"the largest write had {after.Max()} changes");
            Assert.True(after.Take(after.Count - 1).All(n => n <= 256 * 2), "a merged write past BatchChanges");
        }
        Assert.Equal(expected, sink.Written);
        Assert.Equal(expected, good.Written);
    }

    /// <summary>Journals <paramref name="commands"/> with a real engine under <paramref name="root"/>; <paramref name="now"/>[0] is its clock, which the hub then reads.</summary>
    private static EngineOptions Journal(string root, List<Submitted> commands, long[] now)
    {
        var options = new EngineOptions
        {
            DataDirectory = Path.Combine(root, "data"), Clock = () => now[0] += LedgerChanges.StepMs, Fsync = false,
            SnapshotEveryCommands = 0, SnapshotOnStop = false, TickIntervalMs = 0, Ledger = LedgerChanges.LedgerOptions,
        };
        using (var engine = RamPayEngine.Start(options))
        {
            foreach (var c in commands) engine.Submit(c.Command, 0, c.Attachment);
            engine.Stop();
        }
        return options;
    }
}
