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
            // With no queries in between, tickets are ring sequences 0, 1, 2...
            for (int i = 0; i < commands.Count; i++) Assert.Equal(i, engine.Submit(commands[i], correlation: i));
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
            foreach (var c in second) engine.Submit(c);
            engine.Stop();
            Assert.Equal(1300, engine.CompletedSequence);
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

public class EngineQueryTests
{
    private static EngineOptions Options(TempDataDir dir) => new()
    {
        DataDirectory = dir.Path, Clock = new SteppingClock().Now, RingSize = 64, SnapshotEveryCommands = 0, SnapshotOnStop = false, TickIntervalMs = 0,
    };

    /// <summary>Records what the output stage saw, in order: command completions and query completions.</summary>
    private sealed class OrderLog : ICommandCompletion
    {
        public readonly System.Collections.Concurrent.ConcurrentQueue<string> Events = new();
        public void OnCompleted(long journalSequence, ref CommandSlot slot) => Events.Enqueue("command " + journalSequence);
    }

    private sealed class BalanceQuery(long account, OrderLog log) : ILedgerQuery
    {
        public long Posted = -1;
        public long Applied;
        public readonly ManualResetEventSlim Done = new();
        public void Execute(IReadOnlyLedger ledger)
        {
            Posted = ledger.GetAccount(account).Posted;
            Applied = ledger.CommandsApplied;
        }

        public void Complete()
        {
            log.Events.Enqueue("query " + Applied);
            Done.Set();
        }
    }

    [Fact]
    public void A_query_sees_every_command_before_it_and_is_answered_after_they_are_completed_without_taking_a_journal_sequence()
    {
        using var dir = new TempDataDir();
        var maker = new Commands();
        var log = new OrderLog();
        using var engine = RamPayEngine.Start(Options(dir), log);
        engine.Submit(maker.Open(AccountFlags.Funding));
        engine.Submit(maker.Open(AccountFlags.DebitsMustNotExceedCredits));
        for (int i = 0; i < 10; i++) engine.Submit(maker.Move(CommandType.Deposit, 1, 2, 7));
        var query = new BalanceQuery(2, log);
        long ticket = engine.Query(query);
        engine.Submit(maker.Move(CommandType.Deposit, 1, 2, 1000));
        Assert.True(query.Done.Wait(TimeSpan.FromSeconds(30)));
        Assert.True(engine.WaitForCompletion(ticket + 1, TimeSpan.FromSeconds(30)));

        // The query saw exactly the 12 commands submitted before it, and none after.
        Assert.Equal(70, query.Posted);
        Assert.Equal(12, query.Applied);
        // The output stage completed it after command 12 and before command 13, which got journal sequence 13.
        var events = log.Events.ToArray();
        Assert.Equal(Enumerable.Range(1, 12).Select(i => "command " + i).Append("query 12").Append("command 13"), events);
        engine.Stop();
        Assert.Equal(13, engine.CompletedSequence);
        Assert.Equal(13, JournalVerifierLastSequence(dir));
    }

    [Fact]
    public async Task QueryAsync_returns_the_answer_and_a_failing_read_faults_only_its_task()
    {
        using var dir = new TempDataDir();
        var maker = new Commands();
        using var engine = RamPayEngine.Start(Options(dir));
        engine.Submit(maker.Open(AccountFlags.Funding));
        var counts = await engine.QueryAsync(l => (l.AccountCount, l.PaymentCount));
        Assert.Equal((1, 0L), counts);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => engine.QueryAsync(l => l.GetAccount(99)));
        // The writer is unharmed: commands and queries still flow.
        engine.Submit(maker.Open(AccountFlags.DebitsMustNotExceedCredits));
        Assert.Equal(2, await engine.QueryAsync(l => l.AccountCount));
    }

    private sealed class AccountReadBack(long accountId) : ICommandReadBack
    {
        public long Posted = -1;
        public ResultCode Code;
        public long ClockMs;

        public void Execute(IReadOnlyLedger ledger, in CommandResult result)
        {
            Code = result.Code;
            Posted = ledger.GetAccount(accountId).Posted;
            ClockMs = ledger.ClockMs;
        }
    }

    [Fact]
    public void A_read_back_sees_the_ledger_right_after_its_own_command_and_is_released_by_the_ring()
    {
        using var dir = new TempDataDir();
        var maker = new Commands();
        using var engine = RamPayEngine.Start(Options(dir));
        engine.Submit(maker.Open(AccountFlags.Funding));
        engine.Submit(maker.Open(AccountFlags.DebitsMustNotExceedCredits));
        var first = new AccountReadBack(2);
        var second = new AccountReadBack(2);
        var rejected = new AccountReadBack(2);
        engine.Submit(maker.Move(CommandType.Deposit, 1, 2, 40), 0, null, first);
        engine.Submit(maker.Move(CommandType.Deposit, 1, 2, 2), 0, null, second);
        long ticket = engine.Submit(maker.Move(CommandType.Transfer, 2, 1, 1_000), 0, null, rejected);
        Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(30)));
        // Each saw its own command applied and the next one not yet: the read runs in the same pass as the apply.
        Assert.Equal((ResultCode.Ok, 40L), (first.Code, first.Posted));
        Assert.Equal((ResultCode.Ok, 42L), (second.Code, second.Posted));
        Assert.Equal((ResultCode.InsufficientFunds, 42L), (rejected.Code, rejected.Posted));
        Assert.True(first.ClockMs > 0);
    }

    [Fact]
    public void Queries_interleaved_with_commands_from_several_threads_leave_the_journal_contiguous_and_replay_equal()
    {
        using var dir = new TempDataDir();
        var maker = new Commands();
        var options = Options(dir);
        string hash;
        using (var engine = RamPayEngine.Start(options))
        {
            engine.Submit(maker.Open(AccountFlags.Funding));
            engine.Submit(maker.Open(AccountFlags.DebitsMustNotExceedCredits));
            var deposits = Enumerable.Range(0, 3000).Select(_ => maker.Move(CommandType.Deposit, 1, 2, 3)).ToArray();
            var writer = new Thread(() => { foreach (var c in deposits) engine.Submit(c); });
            var reads = new List<long>();
            var reader = new Thread(() =>
            {
                for (int i = 0; i < 300; i++) reads.Add(engine.QueryAsync(l => l.GetAccount(2).Posted).GetAwaiter().GetResult());
            });
            writer.Start();
            reader.Start();
            Assert.True(writer.Join(TimeSpan.FromSeconds(60)) && reader.Join(TimeSpan.FromSeconds(60)));
            engine.Stop();
            hash = engine.LedgerAfterStop.ComputeStateHash();
            Assert.Equal(3002, engine.CompletedSequence);
            // Each read saw a whole number of deposits, and reads never went back in time.
            Assert.All(reads, r => Assert.Equal(0, r % 3));
            Assert.Equal(reads.Order(), reads);
        }
        Assert.Equal(3002, JournalVerifierLastSequence(dir));
        Assert.Equal(hash, EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: false, []).Ledger.ComputeStateHash());
    }

    private static long JournalVerifierLastSequence(TempDataDir dir)
    {
        var report = RamPay.Journal.JournalVerifier.Verify(dir.Journal);
        Assert.Empty(report.Problems);
        return report.LastSequence;
    }
}

public class EngineUserTests
{
    [Fact]
    public async Task A_registered_user_is_journaled_with_its_profile_and_survives_a_restart_and_a_snapshot()
    {
        using var dir = new TempDataDir();
        var options = new EngineOptions { DataDirectory = dir.Path, Clock = new SteppingClock().Now, TickIntervalMs = 0, SnapshotEveryCommands = 0, SnapshotOnStop = false };
        var completion = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(options, completion))
        {
            var (command, attachment) = new UserProfile("ada@example.com", "Ada", "pbkdf2$hash").ToCommand(UserRole.Admin, Currency.USD);
            command.ClientId = 1;
            command.Key = IdempotencyKey.FromString("register:ada@example.com");
            engine.Submit(command, correlation: 0, attachment);
            var user = await engine.QueryAsync(l => l.FindUserByEmail("Ada@Example.com"));
            Assert.NotNull(user);
            Assert.Equal((1L, UserRole.Admin, 1L), (user.Id, user.Role, user.WalletAccountId));
            engine.Stop();
        }
        var result = Assert.Single(completion.Completed).Result;
        Assert.Equal((ResultCode.Ok, 1L, 1L), (result.Code, result.Id, result.SecondaryId));

        // Journal replay and a snapshot both bring the user back.
        foreach (bool snapshotOnStop in new[] { false, true })
        {
            using var engine = RamPayEngine.Start(options with { SnapshotOnStop = true });
            var user = await engine.QueryAsync(l => l.GetUser(1));
            Assert.Equal(("ada@example.com", "Ada", "pbkdf2$hash"), (user!.Email, user.Name, user.PasswordHash));
            Assert.Equal(snapshotOnStop ? 1 : 0, engine.Recovery.SnapshotSequence);
        }
        var inspect = new StringWriter();
        RamPay.Cli.RampayCli.Build(inspect).Parse(["inspect", "--data", dir.Path, "--from", "1", "--to", "1"]).Invoke();
        Assert.Contains("RegisterUser", inspect.ToString());
        Assert.Contains("attachment=", inspect.ToString());
    }

    [Fact]
    public void An_attachment_larger_than_a_record_allows_is_refused_before_it_reaches_the_ring()
    {
        using var dir = new TempDataDir();
        using var engine = RamPayEngine.Start(new EngineOptions { DataDirectory = dir.Path, TickIntervalMs = 0, SnapshotOnStop = false });
        Assert.Throws<ArgumentOutOfRangeException>(() => engine.Submit(new Command { Type = CommandType.RegisterUser }, 0, new byte[RecordTypes.MaxAttachmentBytes + 1]));
    }
}
