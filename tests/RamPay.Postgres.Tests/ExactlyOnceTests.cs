using RamPay.Journal;
using RamPay.Sinks;
using Xunit.Abstractions;

namespace RamPay.Postgres.Tests;

/// <summary>
/// The sink writes each record exactly once whatever happens to PostgreSQL or to the sink: its connection killed in
/// the middle of transactions, the database refusing connections for a while, the hub stopped mid-stream and a new
/// one started on the same database and data directory (from a snapshot at or before the database's checkpoint).
/// </summary>
[Trait("Category", "Integration")]
public sealed class ExactlyOnceTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_sinks_connection_killed_again_and_again_mid_write_loses_and_duplicates_nothing()
    {
        await using var db = await TestDatabase.CreateAsync();
        using var run = EngineRun.Start();
        var steps = RandomWorkload.Build(seed: 11, count: 2_500);
        using var sink = new PostgresSink(db.ConnectionString);
        // Seven changes a transaction: hundreds of transactions, so the kills land in the middle of many.
        using var hub = run.StartHub(sink, batchChanges: 7, queueBatches: 2);
        var runner = hub.Sinks[0];

        var producing = Task.Run(async () =>
        {
            foreach (var chunk in steps.Chunk(100))
            {
                RandomWorkload.Run(run, chunk);
                await Task.Delay(10);
            }
        });
        int rounds = 0, terminated = 0, inTransaction = 0;
        var rng = new Random(11);
        while (!(producing.IsCompleted && (terminated >= 30 || runner.Checkpoint.Sequence >= steps.Count)))
        {
            var (t, tx) = await db.TerminateBackendsAsync();
            rounds++;
            terminated += t;
            inTransaction += tx;
            await Task.Delay(rng.Next(2, 30));
            if (rounds > 2_000) break;
        }
        await producing;
        long head = run.DurableSequence;
        Assert.Equal(steps.Count, head);
        await Mirror.WaitForCheckpointAsync(hub, head);
        output.WriteLine($"{rounds} rounds, {terminated} backends terminated ({inTransaction} inside a transaction); the sink failed {runner.Failures} times, wrote {runner.BatchesWritten} batches");

        Assert.True(terminated >= 10, $"only {terminated} backends were terminated");
        Assert.True(inTransaction > 0, "no kill landed inside a write");
        Assert.True(runner.Failures > 0, "the sink never failed");
        Assert.True(runner.Error is null && runner.Connected, $"the sink ended in error: {runner.Error}");

        var ledger = run.Stop();
        await Mirror.AssertMatchesAsync(db, ledger, head, run.DurableTimestampMs);
        Mirror.AssertVerifyAgrees(db, run.DataDirectory, EngineRun.LedgerOptions, head);
        // Nothing twice (the keys would refuse it, and the counts agree with the ledger above).
        Assert.Equal(0, await db.ScalarAsync("SELECT count(*) - count(DISTINCT id) FROM payments"));
        Assert.Equal(0, await db.ScalarAsync("SELECT count(*) - count(DISTINCT (journal_sequence, entry_index)) FROM ledger_entries"));
    }

    [Fact]
    public async Task PostgreSQL_refusing_connections_makes_the_lag_grow_and_back_pressure_turn_on_and_the_sink_catches_up_after()
    {
        await using var db = await TestDatabase.CreateAsync();
        using var run = EngineRun.Start();
        var steps = RandomWorkload.Build(seed: 12, count: 1_500);
        using var sink = new PostgresSink(db.ConnectionString);
        using var hub = run.StartHub(sink, batchChanges: 50, maxLagRecords: 300);
        var runner = hub.Sinks[0];

        RandomWorkload.Run(run, steps.Take(500));
        await Mirror.WaitForCheckpointAsync(hub, 500);
        Assert.False(hub.IsOverLagLimit(out _));
        Assert.True(runner.Connected);

        await db.TakeDownAsync();
        bool down = true;
        try
        {
            // The engine does not wait for the sink: every command is durable and applied.
            RandomWorkload.Run(run, steps.Skip(500).Take(200));
            Assert.Equal(700, run.DurableSequence);
            await WaitUntilAsync(() => !runner.Connected && runner.Failures > 0, "the sink to find PostgreSQL gone");
            Assert.Equal(500, runner.Checkpoint.Sequence);
            Assert.Equal(200, runner.Lag(run.DurableSequence, run.DurableTimestampMs).Records);
            Assert.False(hub.IsOverLagLimit(out _)); // 200 behind, the limit is 300

            RandomWorkload.Run(run, steps.Skip(700));
            Assert.Equal(1_500, run.DurableSequence);
            var lag = runner.Lag(run.DurableSequence, run.DurableTimestampMs);
            Assert.Equal(1_000, lag.Records);
            Assert.True(lag.Seconds > 0, $"lag {lag}");
            Assert.True(hub.IsOverLagLimit(out string reason));
            Assert.Contains("postgres", reason);

            // It keeps retrying, and writes nothing while the database is away.
            long failures = runner.Failures;
            await WaitUntilAsync(() => runner.Failures >= failures + 3, "more retries");
            Assert.Equal(500, runner.Checkpoint.Sequence);
            // The queue to the sink is bounded: the follower waits, the journal keeps the rest.
            Assert.True(hub.FollowerSequence < 1_000, $"the follower read up to {hub.FollowerSequence} while the sink was at 500");
            Assert.False(runner.Error?.Fatal ?? false);

            await db.BringUpAsync();
            down = false;
        }
        finally
        {
            if (down) await db.BringUpAsync();
        }

        await Mirror.WaitForCheckpointAsync(hub, 1_500);
        Assert.Equal(0, runner.Lag(run.DurableSequence, run.DurableTimestampMs).Records);
        Assert.False(hub.IsOverLagLimit(out _));
        await WaitUntilAsync(() => runner.Connected && runner.Error is null, "the sink to report itself connected");

        var ledger = run.Stop();
        await Mirror.AssertMatchesAsync(db, ledger, 1_500, run.DurableTimestampMs);
        Mirror.AssertVerifyAgrees(db, run.DataDirectory, EngineRun.LedgerOptions, 1_500);
    }

    /// <summary>
    /// A hub stopped with no drain in the middle of the stream, and a new hub and sink started on the same database
    /// and data directory while the engine keeps writing: the new follower starts from the database's checkpoint,
    /// from the latest snapshot at or before it (later ones exist and must not be used), and the rows end equal.
    /// </summary>
    [Fact]
    public async Task A_new_hub_resumes_from_the_database_checkpoint_from_a_snapshot_at_or_before_it()
    {
        await using var db = await TestDatabase.CreateAsync();
        using var run = EngineRun.Start(snapshotEveryCommands: 100, snapshotsToKeep: 100);
        var steps = RandomWorkload.Build(seed: 13, count: 3_000);
        foreach (var chunk in steps.Take(2_000).Chunk(50)) RandomWorkload.Run(run, chunk);

        long stoppedAt;
        using (var sink = new PostgresSink(db.ConnectionString))
        using (var hub = run.StartHub(sink, batchChanges: 3))
        {
            await Mirror.WaitForCheckpointAsync(hub, 600);
            hub.Stop(TimeSpan.Zero);
            stoppedAt = hub.Sinks[0].Checkpoint.Sequence;
        }
        Assert.InRange(stoppedAt, 600, 1_900); // mid-stream
        Assert.Equal(stoppedAt, await db.ScalarAsync("SELECT journal_sequence FROM sink_checkpoint"));

        // Snapshots exist beyond the checkpoint; the replica must start from one at or before it.
        Assert.True(SnapshotStore.TryLoadLatest(run.SnapshotDirectory, out var newest, out _) && newest.Sequence > stoppedAt, $"no snapshot after {stoppedAt}");
        using (var follower = new LedgerFollower(run.SnapshotDirectory, run.JournalDirectory, EngineRun.LedgerOptions, stoppedAt))
        {
            Assert.InRange(follower.SnapshotSequence, Math.Max(1, stoppedAt - 150), stoppedAt);
            Assert.Equal(stoppedAt, follower.LastSequence);
        }

        using (var sink = new PostgresSink(db.ConnectionString))
        using (var hub = run.StartHub(sink, batchChanges: 40))
        {
            var more = Task.Run(() => RandomWorkload.Run(run, steps.Skip(2_000)));
            await more;
            await Mirror.WaitForCheckpointAsync(hub, 3_000);
            Assert.Equal(0, hub.Sinks[0].Failures); // a record written twice would have failed on a key
        }
        var ledger = run.Stop();
        await Mirror.AssertMatchesAsync(db, ledger, 3_000, run.DurableTimestampMs);
        Mirror.AssertVerifyAgrees(db, run.DataDirectory, EngineRun.LedgerOptions, 3_000);
    }

    /// <summary>
    /// The follower and the sink used directly, stopped and resumed three times: from nothing, from a checkpoint between
    /// snapshots (the replica starts at the snapshot before it), and from a checkpoint a snapshot sits exactly on.
    /// </summary>
    [Fact]
    public async Task A_follower_resumes_from_a_snapshot_before_or_exactly_at_the_checkpoint()
    {
        await using var db = await TestDatabase.CreateAsync();
        using var run = EngineRun.Start(snapshotEveryCommands: 50, snapshotsToKeep: 20);
        // One command at a time, so each is a batch of its own and snapshots land exactly every 50 records.
        foreach (var step in RandomWorkload.Build(seed: 14, count: 400))
        {
            if (step.AdvanceMs > 0) run.AdvanceClock(step.AdvanceMs);
            run.Execute(step.Command, step.Attachment);
        }
        long lastTimestamp = run.DurableTimestampMs;
        var ledger = run.Stop();

        long WriteThrough(long expectedCheckpoint, long through)
        {
            using var sink = new PostgresSink(db.ConnectionString);
            Assert.Equal(expectedCheckpoint, sink.Open().Sequence);
            using var follower = new LedgerFollower(run.SnapshotDirectory, run.JournalDirectory, EngineRun.LedgerOptions, expectedCheckpoint);
            var batch = new ChangeBatch(16);
            while (follower.LastSequence < through)
            {
                follower.Poll(through, 16, batch);
                sink.Write(batch.Changes, new SinkCheckpoint(batch.LastSequence, batch.LastTimestampMs));
                batch.Clear();
            }
            return follower.SnapshotSequence;
        }

        Assert.Equal(0, WriteThrough(0, 130));
        Assert.Equal(100, WriteThrough(130, 200));
        Assert.Equal(200, WriteThrough(200, 400));
        await Mirror.AssertMatchesAsync(db, ledger, 400, lastTimestamp);
        Mirror.AssertVerifyAgrees(db, run.DataDirectory, EngineRun.LedgerOptions, 400);
    }

    /// <summary>
    /// PostgreSQL away when the hub starts: the sink keeps connecting, the lag counts from the checkpoint the last
    /// run noted in the data folder (not from zero), and once the database is back the sink opens and catches up.
    /// </summary>
    [Fact]
    public async Task A_sink_unreachable_at_start_counts_its_lag_from_the_noted_checkpoint_and_catches_up_when_back()
    {
        await using var db = await TestDatabase.CreateAsync();
        using var run = EngineRun.Start();
        var steps = RandomWorkload.Build(seed: 15, count: 900);
        RandomWorkload.Run(run, steps.Take(300));
        using (var sink = new PostgresSink(db.ConnectionString))
        using (var hub = run.StartHub(sink))
            await Mirror.WaitForCheckpointAsync(hub, 300);

        await db.TakeDownAsync();
        bool down = true;
        try
        {
            RandomWorkload.Run(run, steps.Skip(300).Take(300));
            using var sink = new PostgresSink(db.ConnectionString);
            using var hub = run.StartHub(sink, maxLagRecords: 250);
            var runner = hub.Sinks[0];
            await WaitUntilAsync(() => runner.Failures >= 2, "the sink to fail to connect");
            Assert.False(runner.Opened);
            Assert.Equal(300, runner.Checkpoint.Sequence); // the hint, until the database answers
            Assert.Equal(300, runner.Lag(run.DurableSequence, run.DurableTimestampMs).Records);
            Assert.True(hub.IsOverLagLimit(out _));
            Assert.Equal(0, hub.FollowerSequence); // the follower waits to hear the checkpoint

            await db.BringUpAsync();
            down = false;
            RandomWorkload.Run(run, steps.Skip(600));
            await Mirror.WaitForCheckpointAsync(hub, 900);
            Assert.True(runner.Opened && runner.Connected);
            Assert.False(hub.IsOverLagLimit(out _));
        }
        finally
        {
            if (down) await db.BringUpAsync();
        }
        var ledger = run.Stop();
        await Mirror.AssertMatchesAsync(db, ledger, 900, run.DurableTimestampMs);
        Mirror.AssertVerifyAgrees(db, run.DataDirectory, EngineRun.LedgerOptions, 900);
    }

    /// <summary>
    /// A database ahead of the journal (it holds records this data folder does not: the folder was replaced) must not
    /// be written to: the follower stops with an error that says so, and the rows stay as they were.
    /// </summary>
    [Fact]
    public async Task A_database_ahead_of_the_journal_stops_the_follower_and_is_left_alone()
    {
        await using var db = await TestDatabase.CreateAsync();
        using (var first = EngineRun.Start())
        {
            RandomWorkload.Run(first, RandomWorkload.Build(seed: 16, count: 500));
            first.Stop();
            using var sink = new PostgresSink(db.ConnectionString);
            using var hub = first.StartHub(sink);
            await Mirror.WaitForCheckpointAsync(hub, 500);
        }
        string before = await Mirror.DumpAsync(db);

        using var second = EngineRun.Start();
        RandomWorkload.Run(second, RandomWorkload.Build(seed: 17, count: 200));
        using (var sink = new PostgresSink(db.ConnectionString))
        using (var hub = second.StartHub(sink))
        {
            await WaitUntilAsync(() => hub.FollowerError is not null, "the follower to refuse the database");
            Assert.Contains("before the sink checkpoint 500", hub.FollowerError);
            Assert.Equal(500, hub.Sinks[0].Checkpoint.Sequence);
        }
        Assert.Equal(before, await Mirror.DumpAsync(db));
        Assert.False(DatabaseTools.Verify(db.DirectConnectionString, second.DataDirectory, EngineRun.LedgerOptions).Agrees);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what, int timeoutSeconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new Xunit.Sdk.XunitException($"timed out waiting for {what}");
            await Task.Delay(10);
        }
    }
}
