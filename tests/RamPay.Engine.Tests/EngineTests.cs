using RamPay.Core;
using RamPay.Engine;
using RamPay.Journal;

namespace RamPay.Engine.Tests;

public class EngineTests
{
    private static EngineOptions Options(TempDataDir dir, SteppingClock clock, long snapshotEvery = 0, int ring = 1024) => new()
    {
        DataDirectory = dir.Path,
        Clock = clock.Now,
        RingSize = ring,
        SnapshotEveryCommands = snapshotEvery,
        SnapshotOnStop = false, TickIntervalMs = 0,
        Ledger = new LedgerOptions { MaxAccounts = 1000, MaxPayments = 1 << 20, IdempotencyMaxKeys = 1 << 16 },
    };

    /// <summary>Applies commands to a fresh ledger the way a single producer with this clock would have stamped them.</summary>
    private static Ledger Expected(IReadOnlyList<Command> commands, int count, LedgerOptions options, SteppingClock clock)
    {
        var ledger = new Ledger(options);
        for (int i = 0; i < count; i++)
        {
            var c = commands[i];
            c.TimestampMs = clock.Now();
            ledger.Apply(c, out _);
        }
        return ledger;
    }

    [Fact]
    public void Commands_complete_in_journal_order_with_the_ledger_results_and_survive_a_restart()
    {
        using var dir = new TempDataDir();
        var commands = new Commands().Workload(seed: 1, wallets: 20, count: 3000);
        var completion = new RecordingCompletion();
        var options = Options(dir, new SteppingClock());
        string hash;
        using (var engine = RamPayEngine.Start(options, completion))
        {
            for (int i = 0; i < commands.Count; i++) Assert.Equal(i + 1, engine.Submit(commands[i], correlation: i));
            engine.Stop();
            hash = engine.LedgerAfterStop.ComputeStateHash();
        }

        var completed = completion.Completed.ToArray();
        Assert.Equal(commands.Count, completed.Length);
        for (int i = 0; i < completed.Length; i++)
        {
            Assert.Equal(i + 1, completed[i].Sequence);
            Assert.Equal(i, completed[i].Correlation);
        }
        // The results are the ledger's own: the same commands on a fresh ledger give the same codes.
        var expected = new Ledger(options.Ledger);
        var clock = new SteppingClock();
        for (int i = 0; i < commands.Count; i++)
        {
            var c = commands[i];
            c.TimestampMs = clock.Now();
            expected.Apply(c, out var r);
            Assert.Equal(r, completed[i].Result);
        }
        Assert.Equal(expected.ComputeStateHash(), hash);
        Assert.Contains(completed, c => c.Result.Code == ResultCode.InsufficientFunds);
        Assert.Contains(completed, c => c.Result.Replayed);

        using var restarted = RamPayEngine.Start(options);
        Assert.Equal(commands.Count, restarted.Recovery.LastSequence);
        Assert.Equal(commands.Count, restarted.Recovery.RecordsReplayed);
        Assert.Equal(hash, restarted.Recovery.StateHash);
    }

    [Fact]
    public void A_result_is_released_only_once_its_record_is_in_the_journal()
    {
        using var dir = new TempDataDir();
        var completion = new RecordingCompletion();
        completion.DurableCheck = seq => JournalVerifier.Verify(Path.Combine(dir.Path, "journal")).LastSequence >= seq;
        var commands = new Commands().Workload(seed: 2, wallets: 5, count: 200);
        using (var engine = RamPayEngine.Start(Options(dir, new SteppingClock()), completion))
        {
            foreach (var c in commands) engine.Submit(c);
            engine.Stop();
        }
        Assert.Equal(commands.Count, completion.Completed.Count);
        Assert.Equal(0, completion.NotDurableWhenCompleted);
    }

    [Fact]
    public void Replay_gives_the_same_state_hash_twice_and_from_a_snapshot_plus_tail()
    {
        using var dir = new TempDataDir();
        var commands = new Commands().Workload(seed: 3, wallets: 30, count: 5000);
        var options = Options(dir, new SteppingClock(), snapshotEvery: 1500);
        string live;
        using (var engine = RamPayEngine.Start(options))
        {
            foreach (var c in commands) engine.Submit(c);
            engine.Stop();
            live = engine.LedgerAfterStop.ComputeStateHash();
        }
        Assert.NotEmpty(Directory.GetFiles(dir.Snapshots, "*.snap"));

        var w = new List<string>();
        var full1 = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: false, w);
        var full2 = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: false, w);
        var fromSnapshot = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: true, w);
        Assert.Empty(w);
        Assert.Equal(0, full1.SnapshotSequence);
        Assert.Equal(commands.Count, full1.Replayed);
        Assert.True(fromSnapshot.SnapshotSequence > 0, "a snapshot should have been used");
        Assert.Equal(commands.Count - fromSnapshot.SnapshotSequence, fromSnapshot.Replayed);
        Assert.Equal(live, full1.Ledger.ComputeStateHash());
        Assert.Equal(live, full2.Ledger.ComputeStateHash());
        Assert.Equal(live, fromSnapshot.Ledger.ComputeStateHash());
        Assert.Equal(live, Expected(commands, commands.Count, options.Ledger, new SteppingClock()).ComputeStateHash());
    }

    [Fact]
    public void Engine_continues_after_restart_and_a_snapshot_on_stop()
    {
        using var dir = new TempDataDir();
        var maker = new Commands();
        var first = maker.Workload(seed: 4, wallets: 10, count: 1000);
        var clock = new SteppingClock();
        var options = Options(dir, clock) with { SnapshotOnStop = true };
        using (var engine = RamPayEngine.Start(options)) { foreach (var c in first) engine.Submit(c); }

        var second = new List<Command>();
        for (int i = 0; i < 300; i++) second.Add(maker.Move(CommandType.Transfer, 2 + i % 10, 2 + (i + 1) % 10, 5));
        string hash;
        using (var engine = RamPayEngine.Start(options))
        {
            Assert.Equal(1000, engine.Recovery.SnapshotSequence);
            Assert.Equal(0, engine.Recovery.RecordsReplayed);
            Assert.Equal(1001, engine.Submit(second[0]));
            foreach (var c in second.Skip(1)) engine.Submit(c);
            engine.Stop();
            hash = engine.LedgerAfterStop.ComputeStateHash();
        }
        var all = first.Concat(second).ToList();
        Assert.Equal(Expected(all, all.Count, options.Ledger, new SteppingClock()).ComputeStateHash(), hash);
    }

    [Fact]
    public void Several_producers_submit_concurrently_and_every_command_completes_exactly_once_in_sequence_order()
    {
        using var dir = new TempDataDir();
        var completion = new RecordingCompletion();
        var options = Options(dir, new SteppingClock(), ring: 64) with { Fsync = false };
        const int producers = 3, perProducer = 4000;
        var maker = new Commands();
        using var engine = RamPayEngine.Start(options, completion);
        engine.Submit(maker.Open(AccountFlags.Funding));
        engine.Submit(maker.Open(AccountFlags.DebitsMustNotExceedCredits));
        var batches = Enumerable.Range(0, producers)
            .Select(p => Enumerable.Range(0, perProducer).Select(_ => maker.Move(CommandType.Deposit, 1, 2, 1)).ToArray()).ToArray();
        var threads = Enumerable.Range(0, producers).Select(p => new Thread(() =>
        {
            var mine = batches[p];
            for (int i = 0; i < mine.Length; i++)
            {
                if (i % 50 == 0) engine.SubmitBatch(mine.AsSpan(i, 10), firstCorrelation: p * 1_000_000L + i);
                if (i % 50 < 10) continue;
                engine.Submit(mine[i], p * 1_000_000L + i);
            }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) Assert.True(t.Join(TimeSpan.FromSeconds(60)), "a producer did not finish");
        engine.Stop();

        var completed = completion.Completed.ToArray();
        Assert.Equal(2 + producers * perProducer, completed.Length);
        for (int i = 0; i < completed.Length; i++) Assert.Equal(i + 1, completed[i].Sequence);
        var perProducerOrder = completed.Skip(2).GroupBy(c => c.Correlation / 1_000_000).ToList();
        Assert.Equal(producers, perProducerOrder.Count);
        foreach (var g in perProducerOrder)
        {
            var order = g.Select(c => c.Correlation % 1_000_000).ToArray();
            Assert.Equal(Enumerable.Range(0, perProducer).Select(i => (long)i), order);
        }
        Assert.All(completed, c => Assert.Equal(ResultCode.Ok, c.Result.Code));
        Assert.Equal(producers * perProducer, engine.LedgerAfterStop.GetAccount(2).Posted);
    }

    [Fact]
    public void A_stopped_engine_refuses_commands()
    {
        using var dir = new TempDataDir();
        var engine = RamPayEngine.Start(Options(dir, new SteppingClock()));
        engine.Stop();
        Assert.Throws<ObjectDisposedException>(() => engine.Submit(new Commands().Open(AccountFlags.Funding)));
        using var running = RamPayEngine.Start(Options(dir, new SteppingClock()));
        Assert.Throws<InvalidOperationException>(() => running.LedgerAfterStop);
    }
}

public class EngineFaultTests
{
    private sealed class ThrowingCompletion(long failAt) : ICommandCompletion
    {
        public void OnCompleted(long journalSequence, ref CommandSlot slot)
        {
            if (journalSequence == failAt) throw new InvalidOperationException("completion failed on purpose");
        }
    }

    [Fact]
    public void A_failed_stage_releases_producers_waiting_on_a_full_ring_with_its_fault()
    {
        using var dir = new TempDataDir();
        var maker = new Commands();
        var engine = RamPayEngine.Start(new EngineOptions
        {
            DataDirectory = dir.Path, Clock = new SteppingClock().Now, RingSize = 16, Fsync = false,
            SnapshotEveryCommands = 0, SnapshotOnStop = false, TickIntervalMs = 0,
        }, new ThrowingCompletion(failAt: 5));
        Exception? caught = null;
        var producer = new Thread(() =>
        {
            try
            {
                // The output stage dies at 5, so the 16-slot ring fills and a claim must end in the fault, not hang.
                for (int i = 0; i < 1000; i++) engine.Submit(maker.Open(AccountFlags.Funding));
            }
            catch (Exception e)
            {
                caught = e;
            }
        });
        producer.Start();
        Assert.True(producer.Join(TimeSpan.FromSeconds(30)), "the producer was stranded on a full ring");
        var aggregate = Assert.IsType<AggregateException>(caught);
        Assert.Contains(aggregate.InnerExceptions, e => e.Message == "completion failed on purpose");
        Assert.ThrowsAny<Exception>(engine.Stop);
    }
}

public class EngineTickTests
{
    private sealed class ManualClock
    {
        public long NowMs = 1_700_000_000_000;
        public long Now() => Volatile.Read(ref NowMs);
    }

    private sealed class TickWatcher : ICommandCompletion
    {
        public long TicksCompleted;
        public void OnCompleted(long journalSequence, ref CommandSlot slot)
        {
            if (slot.Command.Type == CommandType.Tick) Interlocked.Increment(ref TicksCompleted);
        }
    }

    [Fact]
    public void The_ticker_journals_ticks_that_expire_a_hold_with_no_other_command_and_replay_expires_it_the_same()
    {
        using var dir = new TempDataDir();
        var clock = new ManualClock();
        var watcher = new TickWatcher();
        var maker = new Commands();
        var options = new EngineOptions
        {
            DataDirectory = dir.Path, Clock = clock.Now, TickIntervalMs = 10, SnapshotEveryCommands = 0, SnapshotOnStop = false,
        };
        string hash;
        using (var engine = RamPayEngine.Start(options, watcher))
        {
            engine.Submit(maker.Open(AccountFlags.Funding));
            engine.Submit(maker.Open(AccountFlags.DebitsMustNotExceedCredits));
            engine.Submit(maker.Open(AccountFlags.DebitsMustNotExceedCredits));
            engine.Submit(maker.Move(CommandType.Deposit, 1, 2, 500));
            engine.Submit(maker.Move(CommandType.Authorize, 2, 3, 200) with { Argument = 1_000 });
            // Time passes with no command: only the ticker can carry it into the journal.
            Interlocked.Add(ref clock.NowMs, 5_000);
            long seen = Volatile.Read(ref watcher.TicksCompleted);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (Volatile.Read(ref watcher.TicksCompleted) < seen + 2 && DateTime.UtcNow < deadline) Thread.Sleep(5);
            Assert.True(Volatile.Read(ref watcher.TicksCompleted) >= seen + 2, "the ticker did not tick");
            engine.Stop();
            var ledger = engine.LedgerAfterStop;
            Assert.Equal(PaymentStatus.Expired, ledger.GetPayment(2).Status);
            Assert.Equal(500, ledger.GetAccount(2).Available);
            hash = ledger.ComputeStateHash();
        }
        var replayed = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: false, []);
        Assert.Equal(PaymentStatus.Expired, replayed.Ledger.GetPayment(2).Status);
        Assert.Equal(hash, replayed.Ledger.ComputeStateHash());
    }
}
