using System.Diagnostics;
using RamPay.Core;
using RamPay.Journal;
using RamPay.Storage;

namespace RamPay.Engine.Tests;

/// <summary>
/// Periodic snapshots off the writer with the cold key tier on (the server's default): the snapshotter's replica follows the
/// writer's cold store (<see cref="ColdKeyTier.Follower"/>), so its snapshots hold a small hot section and lean on the store
/// for the rest, exactly as the writer's would. Proven on the cold path: 2,048 keys in memory for 120,000 driven.
/// </summary>
public class ColdTierSnapshotTests
{
    private const int Ring = 256;
    private const int Generation = 2 * Ring;
    private const int HotMaxKeys = 4 * Generation; // 2,048 keys in memory

    private static EngineOptions Options(string dir, long startMs, long snapshotEvery, bool offWriter = true) => new()
    {
        DataDirectory = dir, Clock = new SteppingClock(startMs, stepMs: 1).Now, RingSize = Ring, MaxBatchSize = Ring, TickIntervalMs = 0,
        SnapshotEveryCommands = snapshotEvery, SnapshotOffWriter = offWriter, SnapshotsToKeep = 2, SnapshotOnStop = false, Fsync = false,
        SegmentSizeBytes = 1 << 20, // about 9,000 records a segment: retirement has whole segments to retire
        Ledger = new LedgerOptions { MaxAccounts = 64, MaxPayments = 1 << 20, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16 },
        RulesVersion = 2, IdempotencyKeyBudget = 300_000,
        ColdTier = new ColdTierOptions { HotMaxKeys = HotMaxKeys, GenerationCommands = Generation, SegmentKeys = 4096 },
    };

    /// <summary>Deposits with fresh keys; every 8th command (past the first 12,000) a retry of one sent at least 10,000 commands earlier.</summary>
    private static List<(Command Command, long FirstIndex)> Traffic(int count, int seed)
    {
        var rng = new Random(seed);
        var k = new Commands();
        var list = new List<(Command, long)> { (k.Open(AccountFlags.Funding), 0) };
        for (int i = 0; i < 8; i++) list.Add((k.Open(AccountFlags.DebitsMustNotExceedCredits), list.Count));
        while (list.Count < count)
        {
            int n = list.Count;
            if (n > 12_000 && n % 8 == 0) list.Add(list[rng.Next(10, n - 10_000)]);
            else list.Add((k.Move(CommandType.Deposit, 1, 2 + rng.Next(8), rng.Next(1, 1_000)), n));
        }
        return list;
    }

    private static void WaitFor(Func<bool> condition, string what) => EngineTestWaits.WaitFor(condition, what, 120);

    private static long[] SnapshotSequences(TempDataDir dir) => EngineTestWaits.SnapshotSequences(dir.Snapshots);

    [Fact]
    public void With_the_cold_tier_on_the_snapshotter_takes_the_periodic_snapshots_and_a_crash_recovers_the_same_state_with_old_keys_answered_from_disk()
    {
        const int count = 120_000;
        const int firstRun = 100_000;
        var traffic = Traffic(count, seed: 17);
        using var dir = new TempDataDir();
        var first = new RecordingCompletion();
        string live;
        long lastSnapshot;

        // 1. Run 1: 100,000 commands with the cold tier on, a periodic snapshot every 20,000 taken off the writer.
        var options = Options(dir.Path, 1_700_000_000_000, snapshotEvery: 20_000);
        Assert.True(options.TakesSnapshotsOffWriter);
        using (var engine = RamPayEngine.Start(options, first))
        {
            Assert.True(engine.SnapshotsOffWriter, "with the cold tier on, the snapshotter must take the periodic snapshots");
            long ticket = 0;
            for (int i = 0; i < firstRun; i++) ticket = engine.Submit(traffic[i].Command, correlation: i);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromMinutes(2)));
            // +1: the upgrade to rules version 2 is the journal's first record.
            WaitFor(() => engine.Counters.LastSnapshotSequence == 100_000, "the snapshot at 100,000");
            Assert.Null(engine.Fault);
            Assert.True(engine.KeyTier.HotKeys <= HotMaxKeys, $"{engine.KeyTier.HotKeys} keys in memory");
            Assert.True(engine.KeyTier.ColdHits > 5_000, $"{engine.KeyTier.ColdHits} cold hits");
            lastSnapshot = engine.Counters.LastSnapshotSequence;
            // 2. Crash: stop without a snapshot (no drain of the cold tier's queue either: the snapshot holds what it has not written).
            engine.Stop();
            live = engine.LedgerAfterStop.ComputeStateHash();
        }
        long journalEnd = firstRun + 1;
        long[] kept = SnapshotSequences(dir);
        Assert.Equal([80_000L, 100_000], kept);

        // 3. Each kept snapshot is the state the journal alone replays to at its sequence, and holds only a small hot section:
        //    the rest of its keys are in the cold tier (read through a follower view of the store, as the snapshotter reads it).
        var memoryOptions = Options(dir.Path, 0, 0).Ledger; // no cold tier: every key in memory
        using (var store = new KeySegmentStore(new KeySegmentStoreOptions { Directory = Path.Combine(dir.Path, "cold"), KeyCapacity = 300_000, SegmentKeys = 4096, Fsync = false }))
        {
            var follower = memoryOptions with { ColdKeys = new ColdKeyTier { Store = store, HotMaxKeys = HotMaxKeys, GenerationCommands = Generation, Follower = true } };
            foreach (long sequence in kept)
            {
                Assert.True(SnapshotStore.TryLoadLatest(dir.Snapshots, sequence, out var info, out var payload));
                Assert.Equal(sequence, info.Sequence);
                var loaded = Ledger.ReadState(new MemoryStream(payload), follower);
                Assert.True(loaded.KeyLog!.HotCount < HotMaxKeys, $"snapshot {sequence} holds {loaded.KeyLog.HotCount} hot keys");
                Assert.True(loaded.KeyLog.Inserted > 10 * HotMaxKeys);
                var (replayed, _, _, last) = EngineRecovery.Load(dir.Snapshots, dir.Journal, memoryOptions, useSnapshot: false, sequence, []);
                Assert.Equal(sequence, last);
                Assert.Equal(replayed.ComputeStateHash(), loaded.ComputeStateHash());
            }
        }

        // 3b. Journal retirement (no sink: the bound is the newest snapshot) retires the segments behind it; recovery needs none.
        var retirement = new JournalRetirement(new JournalRetirementOptions { JournalDirectory = dir.Journal, SnapshotDirectory = dir.Snapshots },
            new JournalConsumerRegistry()).RetireNow();
        Assert.True(retirement.SegmentsRetired >= 8, retirement.ToString());
        Assert.True(retirement.RetiredThrough <= lastSnapshot && retirement.RetiredThrough > lastSnapshot - 20_000, retirement.ToString());

        // 4. Restart: recovery loads the newest periodic snapshot, replays only the tail, and reaches the crashed run's state.
        var after = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_200_000, snapshotEvery: 20_000), after))
        {
            Assert.Equal(lastSnapshot, engine.Recovery.SnapshotSequence);
            Assert.Equal(journalEnd - lastSnapshot, engine.Recovery.RecordsReplayed);
            Assert.Equal(live, engine.Recovery.StateHash);

            // 5. Retries of keys first sent long before the snapshot (gone from memory then) are answered from the cold tier.
            long coldHitsBefore = engine.KeyTier.ColdHits;
            long ticket = 0;
            for (int i = 100; i < 1_100; i++) ticket = engine.Submit(traffic[i].Command, correlation: i);
            // And the rest of the traffic, retries included, through further snapshots off the writer.
            for (int i = firstRun; i < count; i++) ticket = engine.Submit(traffic[i].Command, correlation: i);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromMinutes(2)));
            Assert.True(engine.KeyTier.ColdHits - coldHitsBefore >= 1_000, $"{engine.KeyTier.ColdHits - coldHitsBefore} cold hits for 1,000 old retries");
            WaitFor(() => engine.Counters.LastSnapshotSequence == journalEnd + 20_000, "a snapshot after the restart");
            Assert.Null(engine.Fault);
            engine.Stop();
            live = engine.LedgerAfterStop.ComputeStateHash();
        }
        var firstResults = first.Completed.Where(c => c.Sequence > 1).ToDictionary(c => c.Correlation, c => c.Result);
        foreach (var (_, correlation, result) in after.Completed.Where(c => c.Correlation is >= 100 and < 1_100 && c.Sequence <= journalEnd + 1_000))
        {
            Assert.True(result.Replayed, $"retry of {correlation} was executed again: {result}");
            Assert.Equal(firstResults[traffic[(int)correlation].FirstIndex].Id, result.Id);
        }
        Assert.Equal(1_000, after.Completed.Count(c => c.Sequence <= journalEnd + 1_000));

        // 6. The next restart reaches the same final state; the journal from record 1 is gone (retired, no archive), and says so.
        Assert.Throws<JournalArchiveMissingException>(() => EngineRecovery.Load(dir.Snapshots, dir.Journal, memoryOptions, useSnapshot: false, []));
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_800_000_000_000, snapshotEvery: 20_000)))
        {
            Assert.True(engine.Recovery.SnapshotSequence >= journalEnd + 20_000);
            Assert.Equal(live, engine.Recovery.StateHash);
        }
    }

    /// <summary>
    /// A restart whose cold tier is ahead of the snapshot (the keys of the tail were written before the crash) replays the
    /// tail without reading those entries: the prefetch during replay looks only below the replayed key count, so the only
    /// record reads are the tail's genuine retries of old keys, and the writer never has to look again itself.
    /// </summary>
    [Fact]
    public void Replay_with_the_cold_tier_ahead_of_the_snapshot_reads_only_the_old_keys_it_needs()
    {
        var traffic = Traffic(50_000, seed: 23);
        using var dir = new TempDataDir();
        // 1. 50,000 commands, snapshots at 20,000 and 40,000 off the writer; stop without one: the tail is 10,001 records, and
        //    the cold tier holds most of their keys already (the tier is ahead of the snapshot).
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_000_000, snapshotEvery: 20_000)))
        {
            long ticket = 0;
            for (int i = 0; i < traffic.Count; i++) ticket = engine.Submit(traffic[i].Command, correlation: i);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromMinutes(2)));
            WaitFor(() => engine.Counters.LastSnapshotSequence == 40_000, "the snapshot at 40,000");
            engine.Stop();
            AssertColdHolds(dir, 42_000); // most of the tail's keys: the writer hands generations over every 512 commands
        }
        // 2. The restart replays the tail: retries in it (every 8th command, of keys at least 10,000 old) are read from the
        //    cold tier; the tail's own keys, already in the tier, are not.
        int retriesInTail = Enumerable.Range(40_000, 10_000).Count(i => traffic[i].FirstIndex != i);
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_100_000, snapshotEvery: 0)))
        {
            Assert.Equal(40_000, engine.Recovery.SnapshotSequence);
            Assert.Equal(10_001, engine.Recovery.RecordsReplayed);
            var keys = engine.KeyTier;
            Assert.Equal(0, keys.WriterColdReads);
            Assert.True(keys.ColdHits >= retriesInTail, $"{keys.ColdHits} cold hits for {retriesInTail} retries");
            Assert.True(keys.ColdReads <= 2L * retriesInTail, $"{keys.ColdReads} record reads for {retriesInTail} retries in the tail");
        }
    }

    /// <summary>The cold tier's files hold at least <paramref name="keys"/> entries (read by opening the store).</summary>
    private static void AssertColdHolds(TempDataDir dir, long keys)
    {
        using var store = new KeySegmentStore(new KeySegmentStoreOptions { Directory = Path.Combine(dir.Path, "cold"), KeyCapacity = 300_000, SegmentKeys = 4096, Fsync = false });
        Assert.True(store.FlushedThroughIndex >= keys, $"the cold tier holds {store.FlushedThroughIndex} keys");
    }
}
