namespace RamPay.Journal.Tests;

/// <summary>
/// Crash and corruption scenarios, each as numbered steps: (1) write records in several batches,
/// (2) damage the files the way a crash or a bad disk would, (3) reopen, which recovers,
/// (4) check exactly what survives and that the writer continues after it.
/// </summary>
public class TornTailTests
{
    private const int Records = 100;
    private const int BatchSize = 8;

    private static string WriteSingleSegment(TempDirectory temp)
    {
        TestJournal.WriteJournal(temp.Path, Records, BatchSize);
        return Assert.Single(TestJournal.SegmentPaths(temp.Path));
    }

    /// <summary>Step 3 and 4 for every repairable case: recovery cut the tail, the writer continues, a later read sees old + new.</summary>
    private static void AssertRecoversTo(TempDirectory temp, string segment, long lastGood, long truncatedBytes)
    {
        // 3. Reopen: the writer runs recovery.
        using (JournalWriter writer = JournalWriter.Open(TestJournal.Options(temp.Path)))
        {
            JournalRecoveryReport report = writer.Recovery;
            Assert.NotNull(report.TruncatedTail);
            Assert.Equal(segment, report.TruncatedTail.FilePath);
            Assert.Equal(TestJournal.OffsetOf(lastGood), report.TruncatedTail.Offset);
            Assert.Equal(lastGood + 1, report.TruncatedTail.Sequence);
            Assert.Equal(truncatedBytes, report.TruncatedBytes);
            Assert.Equal(lastGood, report.LastSequence);
            Assert.Equal(TestJournal.OffsetOf(lastGood), new FileInfo(segment).Length);

            // 4. What survives reads back exactly; the writer continues with the next sequence.
            TestJournal.AssertJournalHolds(temp.Path, lastGood);
            Assert.Equal(lastGood, writer.LastSequence);
            TestJournal.AppendRecords(writer, 10, batchSize: 4);
        }
        TestJournal.AssertJournalHolds(temp.Path, lastGood + 10);
        Assert.Null(JournalRecovery.Recover(temp.Path).TruncatedTail);
    }

    [Fact]
    public void Record_torn_mid_write_is_cut_off()
    {
        using var temp = new TempDirectory();
        // 1. Write 100 records in batches of 8.
        string segment = WriteSingleSegment(temp);
        // 2. Cut the file 50 bytes into the last record.
        using (FileStream file = File.Open(segment, FileMode.Open)) file.SetLength(TestJournal.OffsetOf(Records - 1) + 50);
        // 3, 4.
        AssertRecoversTo(temp, segment, lastGood: Records - 1, truncatedBytes: 50);
    }

    [Fact]
    public void Torn_header_of_the_next_record_is_cut_off()
    {
        using var temp = new TempDirectory();
        // 1.
        string segment = WriteSingleSegment(temp);
        // 2. Only 10 bytes of a further record's header reached the disk.
        using (FileStream file = File.Open(segment, FileMode.Append)) file.Write(new byte[] { 112, 0, 0, 0, 3, 1, 0, 0, 101, 0 });
        // 3, 4.
        AssertRecoversTo(temp, segment, lastGood: Records, truncatedBytes: 10);
    }

    [Fact]
    public void Garbage_after_the_last_record_is_cut_off()
    {
        using var temp = new TempDirectory();
        // 1.
        string segment = WriteSingleSegment(temp);
        // 2. Append 3000 random bytes, then 4096 zeros (a size update that outran its data).
        var garbage = new byte[3000];
        new Random(7).NextBytes(garbage);
        using (FileStream file = File.Open(segment, FileMode.Append))
        {
            file.Write(garbage);
            file.Write(new byte[4096]);
        }
        // 3, 4.
        AssertRecoversTo(temp, segment, lastGood: Records, truncatedBytes: 3000 + 4096);
    }

    [Fact]
    public void Flipped_byte_in_the_last_record_cuts_that_record()
    {
        using var temp = new TempDirectory();
        // 1.
        string segment = WriteSingleSegment(temp);
        // 2. Damage the payload of record 100, which no valid record follows.
        TestJournal.FlipByte(segment, TestJournal.OffsetOf(Records - 1) + RecordFormat.HeaderSize + 5);
        // 3, 4.
        AssertRecoversTo(temp, segment, lastGood: Records - 1, truncatedBytes: TestJournal.RecordBytes);
    }

    [Fact]
    public void Flipped_byte_in_a_middle_record_stops_recovery_and_changes_nothing()
    {
        using var temp = new TempDirectory();
        // 1.
        string segment = WriteSingleSegment(temp);
        // 2. Damage record 50: records 51..100 are valid and were acknowledged.
        long offset = TestJournal.OffsetOf(49);
        TestJournal.FlipByte(segment, offset + 40);
        Dictionary<string, byte[]> before = TestJournal.Snapshot(temp.Path);

        // 3. Reopening refuses, naming file, offset and sequence.
        var error = Assert.Throws<JournalCorruptException>(() => JournalWriter.Open(TestJournal.Options(temp.Path)));
        Assert.Equal(JournalProblemKind.CorruptRecord, error.Problem.Kind);
        Assert.Equal(segment, error.FilePath);
        Assert.Equal(offset, error.Offset);
        Assert.Equal(50, error.Sequence);
        Assert.Contains(segment, error.Message);
        Assert.Contains($"offset {offset}", error.Message);
        Assert.Contains("sequence 50", error.Message);

        // 4. Nothing was cut, and a reader refuses too instead of skipping.
        Assert.Equal(before, TestJournal.Snapshot(temp.Path));
        Assert.Throws<JournalCorruptException>(() => JournalReader.Read(temp.Path, 0, new TestJournal.Collector()));
    }

    [Fact]
    public void Flipped_byte_in_a_non_last_segment_stops_recovery()
    {
        using var temp = new TempDirectory();
        // 1. 100 records over three 40-record segments.
        TestJournal.WriteJournal(temp.Path, Records, BatchSize, TestJournal.SegmentOf40Records);
        string[] segments = TestJournal.SegmentPaths(temp.Path);
        Assert.Equal(3, segments.Length);
        // 2. Damage the LAST record of the middle segment: in a non-last segment even that is corruption.
        TestJournal.FlipByte(segments[1], TestJournal.OffsetOf(39) + 20);
        Dictionary<string, byte[]> before = TestJournal.Snapshot(temp.Path);
        // 3.
        var error = Assert.Throws<JournalCorruptException>(() => JournalWriter.Open(TestJournal.Options(temp.Path)));
        // 4.
        Assert.Equal((JournalProblemKind.CorruptRecord, segments[1], TestJournal.OffsetOf(39), 80L), (error.Problem.Kind, error.FilePath, error.Offset, error.Sequence));
        Assert.Equal(before, TestJournal.Snapshot(temp.Path));
    }

    [Fact]
    public void Missing_middle_segment_is_a_sequence_gap()
    {
        using var temp = new TempDirectory();
        // 1.
        TestJournal.WriteJournal(temp.Path, Records, BatchSize, TestJournal.SegmentOf40Records);
        string[] segments = TestJournal.SegmentPaths(temp.Path);
        // 2. Lose the middle segment.
        File.Delete(segments[1]);
        // 3.
        var error = Assert.Throws<JournalCorruptException>(() => JournalRecovery.Recover(temp.Path));
        // 4. The gap is named, and the reader refuses to deliver across it.
        Assert.Equal((JournalProblemKind.SequenceGap, segments[2], 41L), (error.Problem.Kind, error.FilePath, error.Sequence));
        Assert.Throws<JournalCorruptException>(() => JournalReader.Read(temp.Path, 0, new TestJournal.Collector()));
    }

    [Fact]
    public void Repeated_sequence_inside_a_segment_is_corruption_even_with_valid_crcs()
    {
        using var temp = new TempDirectory();
        // 1.
        string segment = WriteSingleSegment(temp);
        // 2. A checksum-valid record with a repeated sequence: a writer bug, not a torn write.
        var record = new byte[TestJournal.RecordBytes];
        RecordFormat.Write(record, TestJournal.RecordType, Records, 0, TestJournal.Payload(Records));
        using (FileStream file = File.Open(segment, FileMode.Append)) file.Write(record);
        // 3.
        var error = Assert.Throws<JournalCorruptException>(() => JournalRecovery.Recover(temp.Path));
        // 4.
        Assert.Equal((JournalProblemKind.SequenceMismatch, TestJournal.OffsetOf(Records), Records + 1L), (error.Problem.Kind, error.Offset, error.Sequence));
    }

    [Fact]
    public void Record_from_a_newer_RamPay_is_refused_not_truncated()
    {
        using var temp = new TempDirectory();
        // 1.
        string segment = WriteSingleSegment(temp);
        // 2. A newer RamPay appended an intact record of format version 2.
        var record = new byte[TestJournal.RecordBytes];
        RecordFormat.Write(record, TestJournal.RecordType, Records + 1, 0, TestJournal.Payload(Records + 1));
        record[5] = 2;
        RecordFormatTests.Reseal(record);
        using (FileStream file = File.Open(segment, FileMode.Append)) file.Write(record);
        long length = new FileInfo(segment).Length;
        // 3.
        var error = Assert.Throws<JournalVersionException>(() => JournalWriter.Open(TestJournal.Options(temp.Path)));
        // 4.
        Assert.Contains("newer RamPay", error.Message);
        Assert.Equal(length, new FileInfo(segment).Length);
    }

    [Fact]
    public void Segment_creation_interrupted_before_its_rename_leaves_a_temporary_file_that_recovery_removes()
    {
        using var temp = new TempDirectory();
        // 1.
        WriteSingleSegment(temp);
        // 2. A crash between creating the next segment's temporary file and renaming it.
        string leftover = Path.Combine(temp.Path, SegmentFormat.FileName(Records + 1) + SegmentFormat.TempSuffix);
        File.WriteAllBytes(leftover, new byte[17]);
        // 3.
        using (JournalWriter writer = JournalWriter.Open(TestJournal.Options(temp.Path)))
        {
            // 4.
            Assert.Equal([leftover], writer.Recovery.RemovedTemporaryFiles);
            Assert.False(File.Exists(leftover));
            TestJournal.AppendRecords(writer, 5, batchSize: 5);
        }
        TestJournal.AssertJournalHolds(temp.Path, Records + 5);
    }

    [Fact]
    public void Reader_stops_at_an_unrecovered_torn_tail_and_reports_it()
    {
        using var temp = new TempDirectory();
        // 1.
        string segment = WriteSingleSegment(temp);
        // 2.
        using (FileStream file = File.Open(segment, FileMode.Open)) file.SetLength(file.Length - 1);
        // 3. Read without recovering (an inspection of a crashed journal).
        var collector = new TestJournal.Collector();
        JournalReadSummary summary = JournalReader.Read(temp.Path, 0, collector);
        // 4.
        Assert.Equal(Records - 1, summary.LastSequence);
        Assert.Equal(JournalProblemKind.TornTail, summary.TornTail?.Kind);
    }
}
