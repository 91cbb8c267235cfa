using RamPay.Core;

namespace RamPay.Engine.Tests;

/// <summary>
/// The cold tier of idempotency keys, proven on the cold path: the hot budget is 1% of the keys driven, retried keys are
/// served from disk (counted in <see cref="KeyTierStats.ColdHits"/>), and the state equals the all-in-memory ledger's.
/// </summary>
public class ColdTierTests
{
    private const int Ring = 256;
    private const int Generation = 2 * Ring;
    private const int HotMaxKeys = 4 * Generation; // 2,048 keys in memory

    private static EngineOptions Options(string dir, long startMs, long snapshotEvery = 0, bool snapshotOnStop = false, long budget = 300_000) => new()
    {
        DataDirectory = dir, Clock = new SteppingClock(startMs, stepMs: 1).Now, RingSize = Ring, MaxBatchSize = Ring, TickIntervalMs = 0,
        SnapshotEveryCommands = snapshotEvery, SnapshotsToKeep = 1, SnapshotOnStop = snapshotOnStop, Fsync = false,
        Ledger = new LedgerOptions { MaxAccounts = 64, MaxPayments = 1 << 20, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16 },
        RulesVersion = 2, IdempotencyKeyBudget = budget,
        ColdTier = new ColdTierOptions { HotMaxKeys = HotMaxKeys, GenerationCommands = Generation, SegmentKeys = 4096 },
    };

    /// <summary>
    /// Deposits with fresh keys; every 8th command a retry of one sent at least 10,000 commands earlier (long gone from
    /// memory), every 50th that key with another amount. Correlation = the index of the first sending.
    /// </summary>
    internal static List<(Command Command, long FirstIndex, bool Conflict)> Traffic(int count, int seed)
    {
        var rng = new Random(seed);
        var k = new Commands();
        var list = new List<(Command, long, bool)> { (k.Open(AccountFlags.Funding), 0, false) };
        for (int i = 0; i < 8; i++) list.Add((k.Open(AccountFlags.DebitsMustNotExceedCredits), list.Count, false));
        while (list.Count < count)
        {
            int n = list.Count;
            if (n > 12_000 && n % 8 == 0)
            {
                int old = rng.Next(10, n - 10_000);
                list.Add(list[old]); // a retry of a changed body is refused again
            }
            else if (n > 12_000 && n % 50 == 1)
            {
                int old = rng.Next(10, n - 10_000);
                var (c, first, _) = list[old];
                list.Add((c with { Amount = c.Amount + 1 }, first, true));
            }
            else list.Add((k.Move(CommandType.Deposit, 1, 2 + rng.Next(8), rng.Next(1, 1_000)), n, false));
        }
        return list;
    }

    [Fact]
    public void Retried_keys_long_gone_from_memory_are_served_from_the_cold_tier_and_the_state_equals_the_all_in_memory_one()
    {
        const int count = 200_000;
        var traffic = Traffic(count, seed: 5);
        using var dir = new TempDataDir();
        var completion = new RecordingCompletion();
        string live;
        KeyTierStats stats;
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_000_000), completion))
        {
            for (int i = 0; i < traffic.Count; i++) engine.Submit(traffic[i].Command, correlation: i);
            Assert.True(engine.WaitForCompletion(engine.Query(new NoQuery()), TimeSpan.FromMinutes(2)));
            stats = engine.KeyTier;
            engine.Stop();
            live = engine.LedgerAfterStop.ComputeStateHash();
            Assert.True(engine.LedgerAfterStop.KeyLog!.HotCount <= HotMaxKeys);
        }

        // Every retry returned the first result; every changed body was refused naming the amount.
        var byCorrelation = completion.Completed.Where(c => c.Sequence > 1).ToDictionary(c => c.Correlation, c => c.Result);
        int retries = 0, conflicts = 0;
        for (int i = 0; i < traffic.Count; i++)
        {
            var (_, first, conflict) = traffic[i];
            var r = byCorrelation[i];
            if (conflict)
            {
                Assert.Equal(ResultCode.ExistsWithDifferentAmount, r.Code);
                conflicts++;
            }
            else if (first != i)
            {
                var original = byCorrelation[first];
                Assert.True(r.Replayed, $"command {i} retries {first} but was executed again: {r}");
                Assert.True(original.Id == r.Id, $"command {i} retries {first}: {r} but the first gave {original}");
                retries++;
            }
        }
        Assert.True(retries > 20_000 && conflicts > 3_000, $"{retries} retries, {conflicts} conflicts");
        // The cold path, not a bigger hot one: 2,048 keys in memory for 200,000 driven, and the retries hit the disk.
        Assert.True(stats.ColdHits >= retries + conflicts, $"cold hits {stats.ColdHits} < {retries + conflicts}");
        Assert.True(stats.HotKeys <= HotMaxKeys, $"hot keys {stats.HotKeys}");
        Assert.True(stats.ColdEntriesWritten > count - 3 * HotMaxKeys - retries - conflicts, $"cold entries written {stats.ColdEntriesWritten}");
        Assert.Equal(0, stats.EvictedEarly);
        Assert.Null(stats.ColdFault);

        // The same journal replayed by an all-in-memory ledger (no cold tier, no prefetch) reaches the same state.
        var (memory, _, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, Options(dir.Path, 0).Ledger, useSnapshot: false, []);
        Assert.False(memory.KeyLog!.HasColdTier);
        Assert.Equal(live, memory.ComputeStateHash());

        // And a restart (no snapshot: the whole journal replayed through the prefetch step over the cold tier) too.
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_800_000_000_000)))
        {
            Assert.Equal(live, engine.Recovery.StateHash);
            Assert.True(engine.KeyTier.ColdHits > 20_000, $"replay served {engine.KeyTier.ColdHits} keys from the cold tier"); // replay went through the prefetch step
        }
    }

    /// <summary>
    /// Crash around a generation flush, as numbered steps. The cold tier can be ahead of the state recovery starts from
    /// (generations written after the snapshot) or behind it (generations lost in the crash): both must recover the same
    /// state, and keys retired before the crash must still be honoured.
    /// </summary>
    [Fact]
    public void A_crash_around_a_generation_flush_recovers_the_same_state_whether_the_cold_tier_is_ahead_or_behind()
    {
        var traffic = Traffic(60_000, seed: 9);
        using var dir = new TempDataDir();
        string cold = Path.Combine(dir.Path, "cold");
        string saved = Path.Combine(dir.Path, "cold-at-step-1");

        // 1. Run 1 applies 30,000 commands and stops with a snapshot: many generations are in the cold tier.
        var first = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_000_000, snapshotOnStop: true, budget: 100_000), first))
        {
            for (int i = 0; i < 30_000; i++) engine.Submit(traffic[i].Command, correlation: i);
        }
        // 2. Keep a copy of the cold tier as it is now (the state of the disk if run 2's flushes never reached it).
        CopyDirectory(cold, saved);

        // 3. Run 2 applies 20,000 more and "crashes": no snapshot at stop, so the cold tier now holds generations newer
        //    than the snapshot recovery will start from.
        string live;
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_100_000, snapshotOnStop: false, budget: 100_000)))
        {
            for (int i = 30_000; i < 50_000; i++) engine.Submit(traffic[i].Command, correlation: i);
            engine.Stop();
            live = engine.LedgerAfterStop.ComputeStateHash();
            Assert.True(engine.KeyTier.ColdEntriesWritten > 10_000);
        }

        // 4. Recovery with the cold tier ahead of the snapshot: snapshot (step 1) + replay of run 2 through the prefetch.
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_200_000, budget: 100_000)))
            Assert.Equal(live, engine.Recovery.StateHash);

        // 4b. A reader without the cold tier (a tool, the sinks' replica) does not trust the snapshot's partial key set: it
        //     replays the whole journal and reaches the same state.
        var warnings = new List<string>();
        var (tool, toolSnapshot, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, Options(dir.Path, 0).Ledger, useSnapshot: true, warnings);
        Assert.Equal(0, toolSnapshot);
        Assert.Contains(warnings, w => w.Contains("cold tier", StringComparison.Ordinal));
        Assert.Equal(live, tool.ComputeStateHash());

        // 5. Recovery with the cold tier behind (run 2's generations lost): the replay rebuilds them in memory.
        Directory.Delete(cold, recursive: true);
        CopyDirectory(saved, cold);
        var after = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_300_000, budget: 100_000), after))
        {
            Assert.Equal(live, engine.Recovery.StateHash);
            // 6. Keys of run 1, retired to the cold tier long before the crash, are still honoured.
            var retry = traffic[100].Command;
            long ticket = engine.Submit(retry, correlation: 100);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(30)));
            Assert.True(engine.KeyTier.ColdHits >= 1);
        }
        var original = first.Completed.Single(c => c.Correlation == 100).Result;
        var again = after.Completed.Single(c => c.Correlation == 100).Result;
        Assert.True(again.Replayed);
        Assert.Equal(original.Id, again.Id);
    }

    /// <summary>
    /// With periodic snapshots the collection horizon moves, and whole segments whose keys are all dead in the oldest kept
    /// snapshot's state are deleted: the disk stays bounded by the budget while the state still equals the all-in-memory
    /// ledger's, live, after a restart, and after a replay of the whole journal.
    /// </summary>
    [Fact]
    public void Dead_segments_are_deleted_as_snapshots_move_the_horizon_and_the_state_is_unchanged()
    {
        const int count = 150_000;
        const long budget = 20_000;
        var traffic = Traffic(count, seed: 11);
        using var dir = new TempDataDir();
        string live;
        KeyTierStats stats;
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_000_000, snapshotEvery: 5_000, budget: budget)))
        {
            for (int i = 0; i < traffic.Count; i++) engine.Submit(traffic[i].Command, correlation: i);
            Assert.True(engine.WaitForCompletion(engine.Query(new NoQuery()), TimeSpan.FromMinutes(2)));
            stats = engine.KeyTier;
            engine.Stop();
            live = engine.LedgerAfterStop.ComputeStateHash();
        }
        Assert.True(stats.ColdSegmentsDropped > 10, $"{stats.ColdSegmentsDropped} segments dropped");
        // Kept: the budget, the keys since the oldest kept snapshot, and the segments straddling both edges.
        Assert.True(stats.ColdKeys <= budget + 5_000 + 3 * 4096, $"{stats.ColdKeys} keys on disk");
        Assert.True(stats.EvictedEarly > 0); // the retries of keys older than the budget were executed again, counted
        Assert.True(stats.ColdHits > 1_000, $"{stats.ColdHits} cold hits");
        long files = Directory.GetFiles(Path.Combine(dir.Path, "cold"), "*.seg").Length;
        Assert.True(files <= (budget + 5_000) / 4096 + 3, $"{files} segment files");

        var (memory, _, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, Options(dir.Path, 0).Ledger, useSnapshot: false, []);
        Assert.Equal(live, memory.ComputeStateHash());
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_800_000_000_000, snapshotEvery: 5_000, budget: budget)))
            Assert.Equal(live, engine.Recovery.StateHash);
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    private sealed class NoQuery : ILedgerQuery
    {
        public void Execute(IReadOnlyLedger ledger) { }
        public void Complete() { }
    }
}
