using RamPay.Core;
using RamPay.Engine;
using RamPay.Journal;
using RamPay.Sinks;

namespace RamPay.Simulation.Tests;

/// <summary>
/// Journal retirement through the real engine: after segments are retired, a restart (snapshot plus the live tail)
/// reaches the same state hash; whatever needs the journal from record 1 (a replay without a snapshot, the sinks'
/// follower from checkpoint 0 as <c>rampay db rebuild</c> runs it, a sink behind the live journal) reads the archive,
/// and without one fails with <see cref="JournalArchiveMissingException"/>.
/// </summary>
public sealed class RetirementRecoveryTests : IDisposable
{
    private const int Commands = 3000;
    private readonly string _root = Directory.CreateTempSubdirectory("rampay-retire-").FullName;
    private long _clockMs = 1_700_000_000_000;
    private long _keys;

    private string Data => Path.Combine(_root, "data");
    private string Journal => Path.Combine(Data, "journal");
    private string Snapshots => Path.Combine(Data, "snapshots");
    private string Archive => Path.Combine(_root, "archive");

    private static readonly LedgerOptions Ledger = new() { MaxAccounts = 64, MaxPayments = 1 << 16, InitialPaymentCapacity = 1024, IdempotencyMaxKeys = 1024 };

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private EngineOptions Options(int snapshotsToKeep = 3) => new()
    {
        SnapshotsToKeep = snapshotsToKeep,
        DataDirectory = Data,
        Clock = () => _clockMs += 977,
        RingSize = 256,
        MaxBatchSize = 64,
        Fsync = false,
        SegmentSizeBytes = 16 * 1024, // about 140 commands a segment
        SnapshotEveryCommands = 700,
        SnapshotOnStop = true,
        TickIntervalMs = 0,
        Ledger = Ledger,
    };

    /// <summary>Runs <paramref name="count"/> commands through an engine, stops it (final snapshot), returns the state hash.</summary>
    private string RunEngine(int count, int seed, int snapshotsToKeep = 3)
    {
        var random = new Random(seed);
        using var engine = RamPayEngine.Start(Options(snapshotsToKeep));
        bool fresh = engine.Recovery.LastSequence == 0;
        for (int i = 0; i < count; i++)
        {
            int roll = random.Next(100);
            var command = fresh && i == 0 ? new Command { Type = CommandType.OpenAccount, Flags = (byte)AccountFlags.Funding }
                : fresh && i <= 8 ? new Command { Type = CommandType.OpenAccount, Flags = (byte)AccountFlags.DebitsMustNotExceedCredits, Argument = 100 + i }
                : roll < 25 ? new Command { Type = CommandType.Deposit, FromAccount = 1, ToAccount = 2 + random.Next(8), Amount = random.Next(1, 10_000) }
                : roll < 70 ? new Command { Type = CommandType.Transfer, FromAccount = 2 + random.Next(8), ToAccount = 2 + random.Next(8), Amount = random.Next(1, 3_000) }
                : roll < 85 ? new Command { Type = CommandType.Authorize, FromAccount = 2 + random.Next(8), ToAccount = 2 + random.Next(8), Amount = random.Next(1, 3_000) }
                : new Command { Type = CommandType.Capture, PaymentId = 1 + random.Next(1 + i / 2) };
            command.ClientId = 1;
            command.Currency = Currency.USD;
            command.Key = IdempotencyKey.FromString("retire-" + ++_keys);
            engine.Submit(command);
        }
        engine.Stop();
        return engine.LedgerAfterStop.ComputeStateHash();
    }

    private RetirementReport Retire(bool archive, long consumer = long.MaxValue)
    {
        var consumers = new JournalConsumerRegistry();
        return new JournalRetirement(new JournalRetirementOptions { JournalDirectory = Journal, SnapshotDirectory = Snapshots, ArchiveDirectory = archive ? Archive : null }, consumers)
            .RetireNow(consumer);
    }

    private string FullReplayHash() => EngineRecovery.Load(Snapshots, Journal, Ledger, useSnapshot: false, []).Ledger.ComputeStateHash();

    private long FirstLiveSequence() =>
        Directory.GetFiles(Journal, "journal-*.seg").Select(p => SegmentFormat.TryParseFileName(Path.GetFileName(p), out long f) ? f : 0).Min();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Recovery_after_retirement_reaches_the_same_state_hash(bool archive)
    {
        // 1. Run, stop (final snapshot). The full journal replays to the engine's state.
        string hash = RunEngine(Commands, seed: 1);
        Assert.Equal(hash, FullReplayHash());

        // 2. Retire: everything behind the newest snapshot goes (no consumer holds anything back).
        RetirementReport report = Retire(archive);
        Assert.True(report.SegmentsRetired >= 10, report.ToString());
        Assert.True(FirstLiveSequence() > 1000, $"first live sequence {FirstLiveSequence()}");

        // 3. Restart: the snapshot plus the live tail give the same state; sequence continuity is checked from the snapshot.
        using (var engine = RamPayEngine.Start(Options()))
        {
            Assert.Equal(hash, engine.Recovery.StateHash);
            Assert.True(engine.Recovery.SnapshotSequence >= report.Bound);
            engine.Stop();
        }

        // 4. More commands, more retirement, another restart: still consistent.
        string later = RunEngine(1000, seed: 2);
        Retire(archive);
        using (var engine = RamPayEngine.Start(Options()))
        {
            Assert.Equal(later, engine.Recovery.StateHash);
            engine.Stop();
        }

        // 5. A replay from record 1: through the archive, or a named error when there is none.
        if (archive)
        {
            Assert.Equal(later, FullReplayHash());
        }
        else
        {
            var error = Assert.Throws<JournalArchiveMissingException>(FullReplayHash);
            Assert.Null(error.ArchiveDirectory);
            Assert.Contains("RamPay:Journal:ArchiveDirectory", error.Message);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Rebuild_from_record_one_reads_the_archive_or_names_it_missing(bool archive)
    {
        string hash = RunEngine(Commands, seed: 3);
        Assert.True(Retire(archive).SegmentsRetired > 0);
        long last = JournalVerifier.Verify(Journal).LastSequence;

        // What `rampay db rebuild` does: the sinks' follower from checkpoint 0, to the journal's end.
        if (archive)
        {
            using var follower = new LedgerFollower(Snapshots, Journal, Ledger, afterSequence: 0);
            var batch = new ChangeBatch(4096);
            while (follower.LastSequence < last)
            {
                batch.Clear();
                Assert.True(follower.Poll(last, 4096, batch) > 0);
            }
            Assert.Equal(hash, ((Ledger)follower.Ledger).ComputeStateHash());
        }
        else
        {
            var error = Assert.Throws<JournalArchiveMissingException>(() =>
            {
                using var follower = new LedgerFollower(Snapshots, Journal, Ledger, afterSequence: 0);
                follower.Poll(last, 4096, new ChangeBatch(4096));
            });
            Assert.Equal(JournalProblemKind.MissingRecords, error.Problem.Kind);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Rampay_replay_without_a_snapshot_reads_the_archive_or_says_it_is_missing(bool archive)
    {
        string hash = RunEngine(Commands, seed: 6);
        Assert.True(Retire(archive).SegmentsRetired > 0);
        var output = new StringWriter();
        int exit = RamPay.Cli.RampayCli.Run(["replay", "--data", Data, "--no-snapshot", "--idempotency-max-keys", "1024"], output);
        if (archive)
        {
            Assert.Equal(RamPay.Cli.RampayCli.ExitOk, exit);
            Assert.Contains($"state_hash        {hash}", output.ToString());
        }
        else
        {
            Assert.Equal(RamPay.Cli.RampayCli.ExitJournalProblems, exit);
            Assert.StartsWith("error: MissingRecords in ", output.ToString());
            Assert.Contains("reading the journal: record 1 was requested but records up to", output.ToString());
            Assert.Contains("no journal archive was configured", output.ToString());
        }
    }

    [Fact]
    public void A_sink_behind_keeps_what_it_needs_and_resumes_without_the_archive()
    {
        // A sink whose checkpoint is 1,000 holds retirement back to the newest snapshot at or before it (about 700:
        // the engine snapshots at the end of the batch that passes every 700 commands).
        string hash = RunEngine(Commands, seed: 4, snapshotsToKeep: 10);
        long anchor = Directory.GetFiles(Snapshots, "*.snap")
            .Select(p => SnapshotFormat.TryParseFileName(Path.GetFileName(p), out long s) ? s : 0).Where(s => s <= 1000).Max();
        Assert.InRange(anchor, 700, 800);
        RetirementReport report = Retire(archive: false, consumer: 1000);
        Assert.Equal(anchor, report.Bound);
        Assert.True(report.SegmentsRetired > 0 && report.RetiredThrough <= anchor, report.ToString());

        // More snapshots are written and pruned to the newest 3; the anchor is kept for the sink.
        string later = RunEngine(3000, seed: 5);
        string[] kept = [.. Directory.GetFiles(Snapshots, "*.snap").Select(Path.GetFileName)!];
        Assert.Equal(4, kept.Length);
        Assert.Contains(SnapshotFormat.FileName(anchor), kept);

        // The sink restarts at its checkpoint: replica from the anchor snapshot and the live journal, no archive needed.
        long last = JournalVerifier.Verify(Journal).LastSequence;
        using var follower = new LedgerFollower(Snapshots, Journal, Ledger, afterSequence: 1000);
        Assert.Equal(anchor, follower.SnapshotSequence);
        var batch = new ChangeBatch(4096);
        while (follower.LastSequence < last)
        {
            batch.Clear();
            Assert.True(follower.Poll(last, 4096, batch) > 0);
        }
        Assert.Equal(later, ((Ledger)follower.Ledger).ComputeStateHash());
        Assert.NotEqual(hash, later);
    }
}
