namespace RamPay.Journal.Tests;

/// <summary>
/// Journal segment retirement: segments wholly behind the newest snapshot and every consumer go to the archive (or
/// are deleted); readers that need them find them there or get <see cref="JournalArchiveMissingException"/>.
/// Journals here are 195 records in segments of 40: [1..40] [41..80] [81..120] [121..160] [161..195].
/// </summary>
public class RetirementTests
{
    private const int Records = 195;

    private sealed class Layout : IDisposable
    {
        private readonly TempDirectory _temp = new();

        public Layout(int records = Records)
        {
            TestJournal.WriteJournal(Journal, records, batchSize: 10, TestJournal.SegmentOf40Records);
        }

        public string Journal => Path.Combine(_temp.Path, "journal");
        public string Snapshots => Path.Combine(_temp.Path, "snapshots");
        public string Archive => Path.Combine(_temp.Path, "archive");

        public void Snapshot(long sequence) => SnapshotStore.Write(Snapshots, sequence, sequence, [(byte)sequence, 1, 2, 3]);

        public JournalRetirement Retirement(JournalConsumerRegistry consumers, bool archive = true) =>
            new(new JournalRetirementOptions { JournalDirectory = Journal, SnapshotDirectory = Snapshots, ArchiveDirectory = archive ? Archive : null }, consumers);

        public string[] LiveNames() => [.. TestJournal.SegmentPaths(Journal).Select(Path.GetFileName)!];
        public string[] ArchivedNames() => Directory.Exists(Archive) ? [.. TestJournal.SegmentPaths(Archive).Select(Path.GetFileName)!] : [];

        public void Dispose() => _temp.Dispose();
    }

    private sealed class Consumer(string name, long position) : IJournalConsumer
    {
        public string Name => name;
        public long FinishedThroughSequence { get; set; } = position;
    }

    private static string Seg(long first) => SegmentFormat.FileName(first);

    [Fact]
    public void Segments_behind_the_snapshot_and_every_consumer_move_to_the_archive_and_stay_readable()
    {
        using var layout = new Layout();
        layout.Snapshot(100);
        var consumers = new JournalConsumerRegistry();
        using var _ = consumers.Register(new Consumer("sinks", 150));

        RetirementReport report = layout.Retirement(consumers).RetireNow();

        // Records up to 100 are behind both; [81..120] holds 101..120, so [1..40] and [41..80] go.
        Assert.Equal((100L, 2, 80L, true, "snapshot"), (report.Bound, report.SegmentsRetired, report.RetiredThrough, report.Archived, report.HeldBackBy));
        Assert.Equal([Seg(81), Seg(121), Seg(161)], layout.LiveNames());
        Assert.Equal([Seg(1), Seg(41)], layout.ArchivedNames());
        Assert.Equal(2 * TestJournal.SegmentOf40Records, report.BytesRetired);
        Assert.Equal(100, SnapshotStore.ReadRetentionAnchor(OsJournalFileSystem.Instance, layout.Snapshots));
        Assert.Equal(new RetirementManifest(80, layout.Archive), RetirementManifest.Read(OsJournalFileSystem.Instance, layout.Journal));

        // The whole journal still reads, from the archive then the live directory; the writer reopens after it.
        TestJournal.AssertJournalHolds(layout.Journal, Records);
        using var tailer = new JournalTailer(layout.Journal, 0);
        var tailed = new TestJournal.Collector();
        while (tailer.Poll(Records, 64, tailed) > 0) { }
        Assert.Equal(Enumerable.Range(1, Records).Select(i => (long)i), tailed.Records.Select(r => r.Header.Sequence));
        using JournalWriter writer = JournalWriter.Open(TestJournal.Options(layout.Journal, TestJournal.SegmentOf40Records));
        Assert.Equal(Records, writer.LastSequence);
        Assert.True(writer.Recovery.Verified.IsHealthy);

        // A second pass has nothing more to do.
        Assert.Equal(0, layout.Retirement(consumers).RetireNow().SegmentsRetired);
    }

    [Fact]
    public void A_consumer_behind_the_snapshot_keeps_its_segments_and_the_snapshot_it_rebuilds_from()
    {
        using var layout = new Layout();
        var consumers = new JournalConsumerRegistry();
        var sinks = new Consumer("sinks", 0);
        using var registration = consumers.Register(sinks);
        layout.Snapshot(45);
        layout.Snapshot(100);

        // Position 0 (not known yet): nothing goes.
        RetirementReport held = layout.Retirement(consumers).RetireNow();
        Assert.Equal((0L, 0, "sinks"), (held.Bound, held.SegmentsRetired, held.HeldBackBy));
        Assert.Equal(5, layout.LiveNames().Length);

        // At 90 the consumer rebuilds from snapshot 45 (the newest at or before it): only [1..40] may go.
        sinks.FinishedThroughSequence = 90;
        RetirementReport partial = layout.Retirement(consumers).RetireNow();
        Assert.Equal((45L, 1, 40L, "sinks"), (partial.Bound, partial.SegmentsRetired, partial.RetiredThrough, partial.HeldBackBy));
        Assert.Equal([Seg(1)], layout.ArchivedNames());

        // Pruning to the newest 3 snapshots keeps the anchor at 45 as well.
        foreach (long s in new long[] { 120, 140, 160 }) layout.Snapshot(s);
        Assert.Equal(
            [SnapshotFormat.FileName(45), SnapshotFormat.FileName(120), SnapshotFormat.FileName(140), SnapshotFormat.FileName(160)],
            Directory.GetFiles(layout.Snapshots, "*.snap").Select(Path.GetFileName).Order(StringComparer.Ordinal));

        // The consumer moves on: the bound follows the snapshots, and the old anchor may then be pruned.
        sinks.FinishedThroughSequence = 170;
        RetirementReport more = layout.Retirement(consumers).RetireNow();
        Assert.Equal((160L, 3, 160L, "snapshot"), (more.Bound, more.SegmentsRetired, more.RetiredThrough, more.HeldBackBy));
        Assert.Equal([Seg(161)], layout.LiveNames());
        layout.Snapshot(180);
        Assert.DoesNotContain(SnapshotFormat.FileName(45), Directory.GetFiles(layout.Snapshots).Select(Path.GetFileName));

        // An unregistered consumer no longer holds anything back.
        registration.Dispose();
        Assert.Equal(long.MaxValue, consumers.LowestPosition(out _));
        TestJournal.AssertJournalHolds(layout.Journal, Records);
    }

    [Fact]
    public void Without_an_archive_retired_segments_are_deleted_and_a_full_read_names_the_missing_archive()
    {
        using var layout = new Layout();
        layout.Snapshot(130);
        RetirementReport report = layout.Retirement(new JournalConsumerRegistry(), archive: false).RetireNow();
        Assert.Equal((3, 120L, false), (report.SegmentsRetired, report.RetiredThrough, report.Archived));
        Assert.Equal([Seg(121), Seg(161)], layout.LiveNames());
        Assert.False(Directory.Exists(layout.Archive));

        var error = Assert.Throws<JournalArchiveMissingException>(() => JournalReader.Read(layout.Journal, 0, new TestJournal.Collector()));
        Assert.Null(error.ArchiveDirectory);
        Assert.Equal(JournalProblemKind.MissingRecords, error.Problem.Kind);
        Assert.Contains("RamPay:Journal:ArchiveDirectory", error.Message);
        using (var tailer = new JournalTailer(layout.Journal, 0)) Assert.Throws<JournalArchiveMissingException>(() => tailer.Poll(Records, 10, new TestJournal.Collector()));

        // What recovery needs (after the snapshot) still reads.
        var tail = new TestJournal.Collector();
        Assert.Equal(Records - 130, JournalReader.Read(layout.Journal, 130, tail).RecordsVisited);
    }

    [Fact]
    public void A_missing_or_incomplete_archive_is_named_not_skipped()
    {
        using var layout = new Layout();
        layout.Snapshot(130);
        layout.Retirement(new JournalConsumerRegistry()).RetireNow();
        Assert.Equal([Seg(1), Seg(41), Seg(81)], layout.ArchivedNames());

        // A segment lost from the middle of the archive: a hole, reported as the archive's, not as corruption.
        File.Delete(Path.Combine(layout.Archive, Seg(41)));
        var hole = Assert.Throws<JournalArchiveMissingException>(() => JournalReader.Read(layout.Journal, 0, new TestJournal.Collector()));
        Assert.Equal(layout.Archive, hole.ArchiveDirectory);
        Assert.Contains("archive incomplete", hole.Message);

        Directory.Delete(layout.Archive, recursive: true);
        var gone = Assert.Throws<JournalArchiveMissingException>(() => JournalReader.Read(layout.Journal, 0, new TestJournal.Collector()));
        Assert.Contains("archive directory missing", gone.Message);
        Assert.Contains(layout.Archive, gone.Message);
    }

    /// <summary>
    /// A crash after each numbered step of a pass: 1 anchor written, 2 manifest written, then per segment 3 copied to
    /// the temporary name, 4 copy flushed, 5 renamed in the archive, 6 archive flushed, 7 deleted from the journal, and
    /// 8 the journal directory flushed. After each: every segment is in the journal or the archive (never neither), the
    /// whole journal reads, the writer reopens, and the next pass finishes the job with no leftovers.
    /// (Loss of what was not flushed at a power cut is the simulation's part: tests/RamPay.Simulation.Tests.)
    /// </summary>
    [Theory]
    [InlineData(JournalRetirement.Step.AnchorWritten)]
    [InlineData(JournalRetirement.Step.ManifestWritten)]
    [InlineData(JournalRetirement.Step.CopiedToTemporary)]
    [InlineData(JournalRetirement.Step.CopyFlushed)]
    [InlineData(JournalRetirement.Step.RenamedInArchive)]
    [InlineData(JournalRetirement.Step.ArchiveDirectoryFlushed)]
    [InlineData(JournalRetirement.Step.DeletedFromJournal)]
    [InlineData(JournalRetirement.Step.JournalDirectoryFlushed)]
    public void A_crash_between_the_steps_of_a_move_never_loses_a_segment(JournalRetirement.Step crashAfter)
    {
        for (int occurrence = 1; occurrence <= 2; occurrence++)
        {
            using var layout = new Layout();
            layout.Snapshot(100);
            var consumers = new JournalConsumerRegistry();
            var crashing = layout.Retirement(consumers);
            int seen = 0;
            crashing.AfterStep = (step, _) =>
            {
                if (step == crashAfter && ++seen == occurrence) throw new SimulatedCrash();
            };
            if (crashAfter is JournalRetirement.Step.AnchorWritten or JournalRetirement.Step.ManifestWritten or JournalRetirement.Step.JournalDirectoryFlushed && occurrence == 2)
            {
                // These happen once per pass: the pass completes.
                crashing.RetireNow();
            }
            else
            {
                Assert.Throws<SimulatedCrash>(() => crashing.RetireNow());
            }

            // 1. Never neither: each of the five segments is live or archived under its real name.
            string[] everywhere = [.. layout.LiveNames(), .. layout.ArchivedNames()];
            foreach (long first in new long[] { 1, 41, 81, 121, 161 }) Assert.Contains(Seg(first), everywhere);
            // 2. Every record reads, in order, with its payload.
            TestJournal.AssertJournalHolds(layout.Journal, Records);
            // 3. Recovery of the live journal is clean.
            using (JournalWriter writer = JournalWriter.Open(TestJournal.Options(layout.Journal, TestJournal.SegmentOf40Records)))
            {
                Assert.Equal(Records, writer.LastSequence);
                Assert.True(writer.Recovery.Verified.IsHealthy);
            }
            // 4. The next pass finishes: each segment in exactly one place, no temporary copy left.
            layout.Retirement(consumers).RetireNow();
            Assert.Equal([Seg(81), Seg(121), Seg(161)], layout.LiveNames());
            Assert.Equal([Seg(1), Seg(41)], layout.ArchivedNames());
            Assert.Empty(Directory.GetFiles(layout.Archive, "*.tmp"));
            TestJournal.AssertJournalHolds(layout.Journal, Records);
        }
    }

    [Fact]
    public void Only_a_snapshot_whose_crcs_check_bounds_retirement()
    {
        using var layout = new Layout();
        layout.Snapshot(45);
        layout.Snapshot(130);
        string newest = Path.Combine(layout.Snapshots, SnapshotFormat.FileName(130));
        TestJournal.FlipByte(newest, SnapshotFormat.HeaderSize + 1);

        RetirementReport report = layout.Retirement(new JournalConsumerRegistry()).RetireNow();
        Assert.Equal((45L, 1), (report.Bound, report.SegmentsRetired));
    }

    [Fact]
    public void The_archive_cannot_be_the_journal()
    {
        using var layout = new Layout();
        Assert.Throws<ArgumentException>(() => new JournalRetirement(
            new JournalRetirementOptions { JournalDirectory = layout.Journal, SnapshotDirectory = layout.Snapshots, ArchiveDirectory = layout.Journal + "/" },
            new JournalConsumerRegistry()));
    }

    [Fact]
    public void Retirement_manifest_layout_is_frozen()
    {
        // The CRCs were computed by an independent script (CRC32C of the first three lines with their newlines).
        using var temp = new TempDirectory();
        new RetirementManifest(80, "/srv/rampay/archive").Write(OsJournalFileSystem.Instance, temp.Path);
        Assert.Equal("rampay-journal-retired 1\nthrough 80\narchive /srv/rampay/archive\ncrc 762d0675\n", File.ReadAllText(Path.Combine(temp.Path, "retired.manifest")));
        new RetirementManifest(80, null).Write(OsJournalFileSystem.Instance, temp.Path);
        Assert.Equal("rampay-journal-retired 1\nthrough 80\narchive -\ncrc cf187845\n", File.ReadAllText(Path.Combine(temp.Path, "retired.manifest")));
        Assert.Equal(new RetirementManifest(80, null), RetirementManifest.Read(OsJournalFileSystem.Instance, temp.Path));

        File.WriteAllText(Path.Combine(temp.Path, "retired.manifest"), "rampay-journal-retired 1\nthrough 81\narchive -\ncrc cf187845\n");
        var bad = Assert.Throws<JournalCorruptException>(() => RetirementManifest.Read(OsJournalFileSystem.Instance, temp.Path));
        Assert.Equal(JournalProblemKind.BadRetirementManifest, bad.Problem.Kind);
    }

    private sealed class SimulatedCrash : Exception;
}
