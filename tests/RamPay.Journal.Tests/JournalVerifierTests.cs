namespace RamPay.Journal.Tests;

public class JournalVerifierTests
{
    [Fact]
    public void Reports_every_problem_with_its_location_and_changes_no_byte()
    {
        using var temp = new TempDirectory();
        // 1. Five 40-record segments.
        TestJournal.WriteJournal(temp.Path, 200, batchSize: 9, TestJournal.SegmentOf40Records);
        string[] segments = TestJournal.SegmentPaths(temp.Path);
        // 2. Corrupt record 10 in segment 0, remove segment 2, tear the tail of the last one.
        TestJournal.FlipByte(segments[0], TestJournal.OffsetOf(9) + 35);
        File.Delete(segments[2]);
        using (FileStream file = File.Open(segments[4], FileMode.Open)) file.SetLength(file.Length - 7);
        Dictionary<string, byte[]> before = TestJournal.Snapshot(temp.Path);

        // 3.
        JournalVerifyReport report = JournalVerifier.Verify(temp.Path);

        // 4. Problems in file order; the gap after a damaged segment is not claimed, the one after an intact segment is.
        Assert.Equal(before, TestJournal.Snapshot(temp.Path));
        Assert.False(report.IsHealthy);
        Assert.Equal(
            [
                (JournalProblemKind.CorruptRecord, segments[0], TestJournal.OffsetOf(9), 10L),
                (JournalProblemKind.SequenceGap, segments[3], 0L, 81L),
                (JournalProblemKind.TornTail, segments[4], TestJournal.OffsetOf(39), 200L),
            ],
            report.Problems.Select(p => (p.Kind, p.FilePath, p.Offset, p.Sequence)));
        Assert.Equal(4, report.Segments.Count);
        Assert.Equal(9 + 40 + 40 + 39, report.Records);
        Assert.Equal(before.Values.Sum(bytes => (long)bytes.Length), report.Bytes);
        Assert.Contains("TornTail", report.ToString());
    }

    [Fact]
    public void Healthy_journal_reports_counts_and_ranges()
    {
        using var temp = new TempDirectory();
        TestJournal.WriteJournal(temp.Path, 90, batchSize: 13, TestJournal.SegmentOf40Records);
        JournalVerifyReport report = JournalVerifier.Verify(temp.Path);
        Assert.True(report.IsHealthy, report.ToString());
        Assert.Equal((3, 90L, 1L, 90L), (report.Segments.Count, report.Records, report.FirstSequence, report.LastSequence));
        Assert.Equal([40L, 40L, 10L], report.Segments.Select(s => s.Records));
    }
}
