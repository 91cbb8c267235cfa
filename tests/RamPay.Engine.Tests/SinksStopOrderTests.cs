using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Engine.Tests;

/// <summary>
/// The stop order of the engine and the sinks (benchmarks.md, run J): a server stopped while the sinks' replica was still
/// replaying to the lowest sink checkpoint logged "sinks: the follower stopped for good" with an ObjectDisposedException, because
/// the engine closed the cold stores the replica reads (the payment log, the key store) before the follower had stopped. Now the
/// engine leaves them open until the sinks release them (<see cref="RamPayEngine.ReleaseSinksPaymentFollower"/>), and the
/// replay is cancelled between records when the hub stops. Run in the server's order (SinksService): the engine stops, then the
/// hub, then the release.
/// </summary>
public class SinksStopOrderTests(Xunit.Abstractions.ITestOutputHelper output)
{
    /// <summary>The sinks' replica's ledger as the server's SinksService builds it: the engine's cold tiers, at the sinks' positions.</summary>
    private static LedgerOptions SinksLedger(RamPayEngine engine) =>
        new LedgerOptions { MaxAccounts = 64, MaxPayments = 10_000, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16 } with
        {
            ColdPayments = engine.SinksPaymentTier ?? throw new InvalidOperationException("no sinks' payment tier"),
            ColdKeys = engine.SinksKeyTier ?? throw new InvalidOperationException("no sinks' key tier"),
        };

    private static SinkHub StartHub(TempDataDir dir, RamPayEngine engine, MemorySink sink, ILogger logger)
    {
        var hub = new SinkHub(new SinkHubOptions
        {
            SnapshotDirectory = dir.Snapshots, JournalDirectory = dir.Journal, StateDirectory = Path.Combine(dir.Path, "sinks"),
            Ledger = SinksLedger(engine), BatchChanges = 1024, MaxLagRecords = 0, MaxLagSeconds = 0,
            ResumePosition = engine.SinksAt, Logger = logger,
        }, [sink], () => engine.CompletedSequence, () => 0);
        hub.Start();
        return hub;
    }

    /// <summary>The server's stop order (ServerServices: EngineService.StopAsync, then SinksService.StoppedAsync).</summary>
    private static void StopAsTheServerDoes(RamPayEngine engine, SinkHub hub)
    {
        engine.Stop();
        hub.Stop(TimeSpan.FromSeconds(10));
        hub.Dispose();
        engine.ReleaseSinksPaymentFollower();
    }

    [Fact]
    public void A_stop_while_the_sinks_replica_replays_cancels_it_before_the_stores_close_and_the_sinks_catch_up_at_the_next_start()
    {
        var k = new Commands();
        var rng = new Random(41);
        using var dir = new TempDataDir();
        // No snapshots: a replica for a sink at the journal's end then replays it all (run J: 6 M records from snapshot 10 M).
        var options = ColdPaymentSnapshotTests.Options(dir.Path, 1_700_000_000_000) with { SinksFollowPaymentLog = true, SnapshotEveryCommands = 0 };
        long end;

        // 1. A journal whose replay takes a while and reads the cold stores: 60,000 new payments (256 hot), then 400,000 captures,
        //    voids and refunds of old payments, which a replica replaying from the journal's start reads back from the payment log.
        var completion = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(options, completion))
        {
            var phase1 = ColdPaymentSnapshotTests.NewPayments(k, rng, note: new PaymentNote("n", "https://example.com/h").Encode());
            var r1 = ColdPaymentSnapshotTests.Run(engine, completion, phase1, 0);
            var transfers = Enumerable.Range(0, 40_000).Where(i => phase1[i].Item1.Type == CommandType.Transfer).Select(i => r1[i].Id).ToList();
            var auths = Enumerable.Range(0, 40_000).Where(i => phase1[i].Item1.Type == CommandType.Authorize).Select(i => r1[i].Id).ToList();
            ColdPaymentSnapshotTests.Run(engine, completion, ColdPaymentSnapshotTests.OldPaymentTraffic(k, rng, transfers, auths, 400_000), 100_000);
            Assert.Null(engine.Fault);
            end = engine.CompletedSequence;
            engine.Stop();
        }
        Assert.True(end > 460_000, $"journal ends at {end}");

        // 2. Start with the sinks on: a sink at checkpoint end - 1,000, whose replica replays the journal up to there (no snapshot
        //    before it) through the cold stores before it hands anything on.
        long checkpoint = end - 1_000;
        var sink = new MemorySink(checkpoint);
        var log = new ExceptionLogger();
        var stop = new Stopwatch();
        using (var engine = RamPayEngine.Start(options with { Clock = new SteppingClock(1_700_000_500_000, stepMs: 1).Now }))
        {
            var payments = (RamPay.Storage.PaymentLogStore)engine.SinksPaymentTier!.Store;
            long readsBefore = payments.ReadsIssued; // the engine is idle: from now on only the replica reads the log
            var hub = StartHub(dir, engine, sink, log);
            // 3. Stop during the replay, once it reads old payments from the log, in the server's order (the engine first, which
            //    used to close the stores under the replica).
            var wait = Stopwatch.StartNew();
            while (payments.ReadsIssued < readsBefore + 100 && !hub.ReplicaReady)
            {
                Assert.True(wait.Elapsed < TimeSpan.FromMinutes(2), "the replica did not start reading the payment log");
                Thread.Yield();
            }
            output.WriteLine($"the replica read {payments.ReadsIssued - readsBefore} old payments after {wait.ElapsedMilliseconds} ms; replica ready: {hub.ReplicaReady}");
            Assert.False(hub.ReplicaReady, "the replica finished its replay before the stop: the journal is too short for this machine");
            stop.Start();
            StopAsTheServerDoes(engine, hub);
            stop.Stop();

            // 4. No fatal follower error, no ObjectDisposedException; the replay was cancelled (it did not run to the end), and
            //    nothing was handed to the sink.
            Assert.True(hub.FollowerStopped);
            Assert.Null(hub.FollowerError);
            Assert.True(hub.StoppedDuringReplay, "the follower was not stopped in its replay");
            Assert.DoesNotContain(log.Entries, e => e.Level >= LogLevel.Error);
            Assert.DoesNotContain(log.Entries, e => e.Exception is ObjectDisposedException);
            Assert.Contains(log.Entries, e => e.Message.Contains("stopped while the follower's replica was replaying", StringComparison.Ordinal));
            Assert.Equal(checkpoint, sink.Checkpoint.Sequence);
            Assert.True(hub.FollowerSequence < checkpoint, $"the follower reached {hub.FollowerSequence}");
            output.WriteLine($"stopped during the replay in {stop.ElapsedMilliseconds} ms");
        }

        // 5. Start again: the sink catches up from its checkpoint, one change for every command after it, in order.
        using (var engine = RamPayEngine.Start(options with { Clock = new SteppingClock(1_700_001_000_000, stepMs: 1).Now }))
        {
            var hub = StartHub(dir, engine, sink, log);
            var wait = Stopwatch.StartNew();
            while (!hub.ReplicaReady && hub.FollowerError is null) Thread.Sleep(1);
            output.WriteLine($"the replica replayed {checkpoint:N0} records in {wait.ElapsedMilliseconds} ms");
            while (sink.Checkpoint.Sequence < end)
            {
                Assert.True(wait.Elapsed < TimeSpan.FromMinutes(5) && hub.FollowerError is null, $"the sink reached {sink.Checkpoint.Sequence} of {end}: {hub.FollowerError}");
                Thread.Sleep(10);
            }
            StopAsTheServerDoes(engine, hub);
            Assert.Null(hub.FollowerError);
        }
        Assert.Equal(Enumerable.Range((int)checkpoint + 1, (int)(end - checkpoint)).Select(i => (long)i), sink.CommandSequences);
        Assert.DoesNotContain(log.Entries, e => e.Level >= LogLevel.Error || e.Exception is ObjectDisposedException);
    }

    /// <summary>A sink in memory that survives its hub (the test's "database"): its checkpoint and the command changes it was given.</summary>
    private sealed class MemorySink(long checkpoint) : IChangeSink
    {
        private readonly object _gate = new();
        private readonly List<long> _commands = [];
        private SinkCheckpoint _checkpoint = new(checkpoint, 0);

        public string Name => "memory";
        public SinkCheckpoint Checkpoint { get { lock (_gate) return _checkpoint; } }
        public List<long> CommandSequences { get { lock (_gate) return [.. _commands]; } }

        public SinkCheckpoint Open() => Checkpoint;

        public void Write(ReadOnlySpan<Change> changes, SinkCheckpoint through)
        {
            lock (_gate)
            {
                foreach (ref readonly var c in changes)
                    if (c.Kind == ChangeKind.Command) _commands.Add(c.Sequence);
                _checkpoint = through;
            }
        }

        public void Dispose() { }
    }

    /// <summary>Every log entry with its exception (the hub logs a follower's fatal error with it).</summary>
    private sealed class ExceptionLogger : ILogger
    {
        public sealed record Entry(LogLevel Level, string Message, Exception? Exception);
        private readonly ConcurrentQueue<Entry> _entries = new();
        public IReadOnlyList<Entry> Entries => _entries.ToArray();
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _entries.Enqueue(new Entry(logLevel, formatter(state, exception), exception));
    }
}

/// <summary>
/// A start with the sinks lagging several snapshots behind (their restart point, the journal retention anchor, older than every
/// index checkpoint the payment log keeps by count) reads the log from an index checkpoint, not whole: the store keeps the newest
/// checkpoint at or before the anchor (<see cref="RamPay.Storage.PaymentLogStoreOptions.KeepCheckpointAtOrBefore"/>). Before, at
/// 200 M payments such a start read ~23 GB of log.
/// </summary>
public class PaymentIndexSinksRestartTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const long SinksAt = 30_000;

    private static EngineOptions Options(string dir, long startMs)
    {
        var o = ColdPaymentSnapshotTests.Options(dir, startMs);
        return o with
        {
            SinksFollowPaymentLog = true, SnapshotEveryCommands = 5_000, SnapshotsToKeep = 1, SegmentSizeBytes = 64 << 10,
            // An index checkpoint every 2 × the index's size (~0.5 MiB of log: a few thousand payments), three kept.
            ColdTier = o.ColdTier! with { Payments = o.ColdTier.Payments! with { IndexCheckpointEveryBytes = 1 } },
        };
    }

    private static List<long> CheckpointStamps(EngineOptions options) =>
        [.. Directory.GetFiles(Path.Combine(options.ColdDirectory, "payments"), "payments-index-*.ckpt")
            .Select(p => long.Parse(Path.GetFileNameWithoutExtension(p)["payments-index-".Length..], System.Globalization.CultureInfo.InvariantCulture))
            .Order()];

    private static long Anchor(TempDataDir dir) => RamPay.Journal.SnapshotStore.ReadRetentionAnchor(RamPay.Journal.OsJournalFileSystem.Instance, dir.Snapshots);

    [Fact]
    public void Sinks_behind_every_checkpoint_kept_by_count_restart_from_the_checkpoint_kept_for_them()
    {
        using var dir = new TempDataDir();
        var options = Options(dir.Path, 1_700_000_000_000);
        long end;

        // 1. 60,000 commands with the sinks stuck at 30,000 (their replica is not run: a sink down): journal retirement after each
        //    snapshot, as the server runs it, makes snapshot 30,000 the retention anchor; index checkpoints land every few thousand.
        var completion = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(options, completion))
        {
            var retirement = new RamPay.Journal.JournalRetirement(new RamPay.Journal.JournalRetirementOptions { JournalDirectory = dir.Journal, SnapshotDirectory = dir.Snapshots },
                new RamPay.Journal.JournalConsumerRegistry());
            engine.SnapshotWritten = _ => retirement.RetireNow(extraPosition: SinksAt);
            ColdPaymentSnapshotTests.Run(engine, completion, ColdPaymentSnapshotTests.NewPayments(new Commands(), new Random(7), new PaymentNote("n", "https://example.com/h").Encode()), 0);
            EngineTestWaits.WaitFor(() => engine.SnapshotterSequence >= engine.CompletedSequence, "the snapshotter's replica");
            EngineTestWaits.WaitFor(() => Anchor(dir) > 20_000, "an anchor after 20,000");
            engine.SnapshotWritten = null;
            Assert.Null(engine.Fault);
            end = engine.CompletedSequence;
            engine.Stop();
        }

        // 2. The case: the three newest checkpoints (kept by count) are all after the sinks' restart point (the anchor, the newest
        //    snapshot at or before 30,000); one more, at or before it, was kept for them.
        long anchor = Anchor(dir);
        var stamps = CheckpointStamps(options);
        output.WriteLine($"index checkpoints on disk: {string.Join(", ", stamps)}; the sinks' restart point (anchor) {anchor:N0}");
        Assert.Equal(4, stamps.Count);
        Assert.True(stamps[0] <= anchor && stamps[1] > anchor, $"checkpoints {string.Join(", ", stamps)}, anchor {anchor}");

        // 3. Restart with the sinks on: the payment log's start reads from that checkpoint and the log after it, not the whole log.
        using (var engine = RamPayEngine.Start(options with { Clock = new SteppingClock(1_700_000_500_000, stepMs: 1).Now }))
        {
            Assert.Contains(RamPay.Storage.PaymentLogStore.CheckpointName(stamps[0]), engine.PaymentLogRecoveredFrom);
            Assert.DoesNotContain(engine.Recovery.Warnings, w => w.Contains("whole log", StringComparison.Ordinal));
            output.WriteLine($"restart: {engine.PaymentLogRecoveredFrom}");

            // 4. The sinks' replica restarts at 30,000 (from the anchor) and follows the log to the end.
            var ledger = new LedgerOptions { MaxAccounts = 64, MaxPayments = 10_000, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16 } with
            {
                ColdPayments = engine.SinksPaymentTier, ColdKeys = engine.SinksKeyTier,
            };
            using var follower = new LedgerFollower(dir.Snapshots, dir.Journal, ledger, SinksAt);
            Assert.Equal(anchor, follower.SnapshotSequence);
            var batch = new ChangeBatch(4096);
            while (follower.LastSequence < end)
            {
                batch.Clear();
                Assert.True(follower.Poll(end, 4096, batch) > 0, "the journal ended early");
            }
            Assert.Empty(follower.Warnings);
            engine.Stop();
        }
    }
    /// <summary>
    /// The restart with the sinks behind, measured (docs/benchmarks.md, "The sinks' stop order and restart point"): run on demand
    /// with <c>RAMPAY_BENCH_SINKS_RESTART_PAYMENTS=3000000</c> (else it returns at once). One run writes the payments with the sinks
    /// stuck at 80 % of them; then the data directory is copied twice: as this change leaves it (the checkpoint at or before the
    /// sinks' restart point kept) and as the old pruning left it (only the newest three), and each is restarted three times,
    /// interleaved. Printed: the engine's start time and the payment log bytes its start read.
    /// </summary>
    [Fact]
    [Trait("Category", "Benchmark")]
    public void Restart_with_the_sinks_behind_measured_on_demand()
    {
        if (!long.TryParse(Environment.GetEnvironmentVariable("RAMPAY_BENCH_SINKS_RESTART_PAYMENTS"), out long count)) return;
        using var dir = new TempDataDir();
        var o = ColdPaymentSnapshotTests.Options(dir.Path, 1_700_000_000_000);
        var options = o with
        {
            SinksFollowPaymentLog = true, SnapshotEveryCommands = 100_000, SnapshotsToKeep = 2, SegmentSizeBytes = 8 << 20,
            RingSize = 4096, MaxBatchSize = 1024, IdempotencyKeyBudget = 1_000_000,
            Ledger = o.Ledger with { MaxPayments = 1 << 18 },
            ColdTier = o.ColdTier! with
            {
                HotMaxKeys = 1 << 16, GenerationCommands = 1 << 13, KeyCapacity = count / 5 + 2_000_000, // room for the keys the stuck sinks hold
                Payments = o.ColdTier.Payments! with { HotPayments = 1 << 16, ChunkShift = 12, IndexCheckpointEveryBytes = 16 << 20 },
            },
        };
        long sinksAt = count * 4 / 5;
        var write = Stopwatch.StartNew();
        using (var engine = RamPayEngine.Start(options))
        {
            var retirement = new RamPay.Journal.JournalRetirement(new RamPay.Journal.JournalRetirementOptions { JournalDirectory = dir.Journal, SnapshotDirectory = dir.Snapshots },
                new RamPay.Journal.JournalConsumerRegistry());
            engine.SnapshotWritten = _ => retirement.RetireNow(extraPosition: sinksAt);
            var k = new Commands();
            var rng = new Random(3);
            long ticket = engine.Submit(k.Open(AccountFlags.Funding), 0);
            for (int w = 0; w < 8; w++) engine.Submit(k.Open(AccountFlags.DebitsMustNotExceedCredits), 0);
            for (int w = 0; w < 8; w++) engine.Submit(k.Move(CommandType.Deposit, 1, 2 + w, 1_000_000_000_000_000), 0);
            for (long i = 17; i < count; i++)
            {
                long from = 2 + rng.Next(8), to = 2 + (from - 2 + 1 + rng.Next(7)) % 8;
                ticket = engine.Submit(k.Move(CommandType.Transfer, from, to, rng.Next(100, 10_000)), 0);
                if (i % 65_536 == 0) engine.SinksAt(sinksAt); // as the hub reports after each poll: the key store's hold follows
            }
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromMinutes(30)));
            EngineTestWaits.WaitFor(() => engine.SnapshotterSequence >= engine.CompletedSequence, "the snapshotter's replica", 1800);
            engine.SnapshotWritten = null;
            Assert.Null(engine.Fault);
            engine.Stop();
        }
        long anchor = Anchor(dir);
        var stamps = CheckpointStamps(options);
        output.WriteLine($"{count:N0} payments written in {write.Elapsed.TotalSeconds:F1} s; anchor {anchor:N0}; index checkpoints {string.Join(", ", stamps)}");

        using var oldDir = new TempDataDir();
        ColdPaymentSnapshotTests.CopyDirectory(dir.Path, oldDir.Path);
        var oldOptions = options with { DataDirectory = oldDir.Path };
        string payments = Path.Combine(oldOptions.ColdDirectory, "payments");
        foreach (long stamp in stamps.OrderDescending().Skip(3)) File.Delete(Path.Combine(payments, RamPay.Storage.PaymentLogStore.CheckpointName(stamp)));

        var times = new Dictionary<string, List<double>> { ["new"] = [], ["old"] = [] };
        for (int round = 0; round < 3; round++)
        {
            foreach (var (name, opts) in new[] { ("new", options), ("old", oldOptions) })
            {
                double load = double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
                var clock = Stopwatch.StartNew();
                using var engine = RamPayEngine.Start(opts with { Clock = new SteppingClock(1_700_100_000_000 + round, stepMs: 1).Now });
                double seconds = clock.Elapsed.TotalSeconds;
                times[name].Add(seconds);
                output.WriteLine($"round {round + 1} {name}: start {seconds:F2} s (recovery {engine.Recovery.Elapsed.TotalSeconds:F2} s, load {load:F1}); payment log: {engine.PaymentLogRecoveredFrom}");
                engine.Stop();
            }
        }
        foreach (var (name, list) in times) output.WriteLine($"{name}: median start {list.Order().ElementAt(list.Count / 2):F2} s");
    }
}
