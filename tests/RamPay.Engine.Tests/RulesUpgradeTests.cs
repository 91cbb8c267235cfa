using RamPay.Core;

namespace RamPay.Engine.Tests;

/// <summary>
/// The journaled upgrade point: an engine with newer rules, started on data written under older ones, journals one
/// UpgradeRules command; the journal before it replays to the old state hash, and the whole journal to the live state.
/// </summary>
public class RulesUpgradeTests
{
    private static EngineOptions Options(string dir, long startMs, int rules) => new()
    {
        DataDirectory = dir, Clock = new SteppingClock(startMs, stepMs: 5).Now, RingSize = 1024, TickIntervalMs = 0,
        SnapshotEveryCommands = 0, SnapshotOnStop = false, Fsync = false, Ledger = GoldenJournal.GoldenLedgerOptions,
        RulesVersion = rules, IdempotencyKeyBudget = 100_000,
    };

    [Fact]
    public void The_golden_journal_keeps_its_hash_an_upgrade_is_journaled_once_and_the_new_rules_apply_from_it()
    {
        var expected = GoldenJournal.ReadExpected();
        using var dir = new TempDataDir();
        GoldenJournal.CopyGoldenTo(dir.Path);
        // Journaled time continues after the golden journal's last command.
        var (goldenLedger, _, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, GoldenJournal.GoldenLedgerOptions, useSnapshot: false, []);
        long after = goldenLedger.ClockMs + 1_000;

        // 1. Start with rules version 2 on the old data: recovery reaches the old hash, then one UpgradeRules is journaled.
        var k = new Commands();
        string live;
        long last;
        var completion = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(Options(dir.Path, after, rules: 2), completion))
        {
            Assert.Equal(expected.StateHash, engine.Recovery.StateHash);
            Assert.Equal(expected.LastSequence + 1, engine.CompletedSequence);
            // 2. Under the new rules a key outlives the 256 keys version 1 kept: 600 payments, then the first one again.
            var first = k.Move(CommandType.Deposit, 1, 2, 10);
            engine.Submit(first, correlation: 1);
            for (int i = 0; i < 600; i++) engine.Submit(k.Move(CommandType.Deposit, 1, 2 + i % 20, 1), correlation: 2);
            engine.Submit(first, correlation: 3);
            engine.Stop();
            var l = engine.LedgerAfterStop;
            Assert.Equal(2, l.RulesVersion);
            Assert.Equal(expected.IdempotencyEvictedEarly, l.IdempotencyEvictedEarly); // carried over, and nothing forgotten early since the upgrade
            live = l.ComputeStateHash();
            last = engine.CompletedSequence;
        }
        var results = completion.Completed.ToArray();
        var firstResult = results.Single(r => r.Correlation == 1).Result;
        var retried = results.Single(r => r.Correlation == 3).Result;
        Assert.True(firstResult.IsOk && !firstResult.Replayed);
        Assert.True(retried.Replayed);
        Assert.Equal(firstResult.Id, retried.Id);

        // 3. A restart journals nothing more and recovers the live state.
        using (var engine = RamPayEngine.Start(Options(dir.Path, after + 100_000, rules: 2)))
        {
            Assert.Equal(last, engine.CompletedSequence);
            Assert.Equal(live, engine.Recovery.StateHash);
        }

        // 4. Replay: up to the upgrade point the old hash; the whole journal the live one.
        var (before, _, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, GoldenJournal.GoldenLedgerOptions, useSnapshot: false, expected.LastSequence, []);
        Assert.Equal(expected.StateHash, before.ComputeStateHash());
        Assert.Equal(1, before.RulesVersion);
        var (whole, _, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, GoldenJournal.GoldenLedgerOptions, useSnapshot: false, []);
        Assert.Equal(live, whole.ComputeStateHash());
    }

    [Fact]
    public void An_engine_under_old_rules_leaves_old_data_as_it_is()
    {
        var expected = GoldenJournal.ReadExpected();
        using var dir = new TempDataDir();
        GoldenJournal.CopyGoldenTo(dir.Path);
        using var engine = RamPayEngine.Start(Options(dir.Path, 1_800_000_000_000, rules: 1));
        Assert.Equal(expected.LastSequence, engine.CompletedSequence);
        engine.Stop();
        Assert.Equal(expected.StateHash, engine.LedgerAfterStop.ComputeStateHash());
    }

    [Fact]
    public void A_new_data_directory_starts_at_the_newest_rules_through_the_same_journaled_command()
    {
        using var dir = new TempDataDir();
        string hash;
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_000_000, rules: Ledger.NewestRulesVersion)))
        {
            Assert.Equal(1, engine.CompletedSequence);
            engine.Stop();
            Assert.Equal(Ledger.NewestRulesVersion, engine.LedgerAfterStop.RulesVersion);
            Assert.Equal(100_000, engine.LedgerAfterStop.KeyLog!.Budget);
            hash = engine.LedgerAfterStop.ComputeStateHash();
        }
        var (replayed, _, _, last) = EngineRecovery.Load(dir.Snapshots, dir.Journal, GoldenJournal.GoldenLedgerOptions, useSnapshot: false, []);
        Assert.Equal(1, last);
        Assert.Equal(Ledger.NewestRulesVersion, replayed.RulesVersion);
        Assert.Equal(hash, replayed.ComputeStateHash());
    }
}
