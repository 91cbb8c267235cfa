namespace RamPay.Journal.Tests;

public class JournalWriterTests
{
    [Fact]
    public void Committed_records_read_back_in_order_with_fsync_on()
    {
        using var temp = new TempDirectory();
        using (JournalWriter writer = JournalWriter.Open(TestJournal.Options(temp.Path, fsync: true)))
        {
            TestJournal.AppendRecords(writer, 50, batchSize: 16);
            Assert.Equal(50, writer.DurableSequence);
        }
        TestJournal.AssertJournalHolds(temp.Path, 50);
    }

    [Fact]
    public void Durable_sequence_moves_only_on_commit()
    {
        using var temp = new TempDirectory();
        using JournalWriter writer = JournalWriter.Open(TestJournal.Options(temp.Path));
        writer.Append(TestJournal.RecordType, 1, 0, TestJournal.Payload(1));
        writer.Append(TestJournal.RecordType, 2, 0, TestJournal.Payload(2));
        Assert.Equal(2, writer.LastSequence);
        Assert.Equal(0, writer.DurableSequence);
        Assert.Equal(2 * TestJournal.RecordBytes, writer.PendingBytes);
        writer.Commit();
        Assert.Equal(2, writer.DurableSequence);
        Assert.Equal(0, writer.PendingBytes);
    }

    [Fact]
    public void Out_of_order_sequence_bad_type_and_oversized_payload_throw_and_change_nothing()
    {
        using var temp = new TempDirectory();
        using JournalWriter writer = JournalWriter.Open(TestJournal.Options(temp.Path));
        TestJournal.AppendRecords(writer, 3, batchSize: 3);
        Assert.Throws<InvalidOperationException>(() => writer.Append(1, 3, 0, new byte[8]));
        Assert.Throws<InvalidOperationException>(() => writer.Append(1, 5, 0, new byte[8]));
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.Append(0, 4, 0, new byte[8]));
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.Append(1, 4, 0, new byte[RecordFormat.MaxPayloadSize + 1]));
        Assert.Equal(3, writer.LastSequence);
        Assert.Equal(0, writer.PendingBytes);
        TestJournal.AppendRecords(writer, 2, batchSize: 2);
        TestJournal.AssertJournalHolds(temp.Path, 5);
    }

    [Fact]
    public void Segments_roll_and_reads_cross_them()
    {
        using var temp = new TempDirectory();
        // Batches of 7 straddle the segment ends (40 records each).
        long segmentBytes = TestJournal.SegmentOf40Records;
        TestJournal.WriteJournal(temp.Path, 1000, batchSize: 7, segmentBytes);

        string[] segments = TestJournal.SegmentPaths(temp.Path);
        Assert.Equal(25, segments.Length);
        Assert.Equal(SegmentFormat.FileName(1), Path.GetFileName(segments[0]));
        Assert.Equal(SegmentFormat.FileName(961), Path.GetFileName(segments[^1]));
        Assert.All(segments, path => Assert.True(new FileInfo(path).Length <= segmentBytes));
        TestJournal.AssertJournalHolds(temp.Path, 1000);

        var range = new TestJournal.Collector();
        JournalReadSummary summary = JournalReader.ReadRange(temp.Path, 455, 472, range);
        Assert.Equal(18, summary.RecordsVisited);
        Assert.Equal(Enumerable.Range(455, 18).Select(i => (long)i), range.Records.Select(r => r.Header.Sequence));

        var tail = new TestJournal.Collector();
        Assert.Equal(500, JournalReader.Read(temp.Path, 500, tail).RecordsVisited);
        Assert.Equal(501, tail.Records[0].Header.Sequence);

        JournalVerifyReport report = JournalVerifier.Verify(temp.Path);
        Assert.True(report.IsHealthy, report.ToString());
        Assert.Equal((1000, 1, 1000, 25), (report.Records, report.FirstSequence, report.LastSequence, report.Segments.Count));
    }

    [Fact]
    public void Reopened_writer_continues_in_the_last_segment()
    {
        using var temp = new TempDirectory();
        long segmentBytes = TestJournal.SegmentOf40Records;
        TestJournal.WriteJournal(temp.Path, 100, batchSize: 4, segmentBytes);
        using (JournalWriter writer = JournalWriter.Open(TestJournal.Options(temp.Path, segmentBytes)))
        {
            Assert.Equal(100, writer.LastSequence);
            Assert.Null(writer.Recovery.TruncatedTail);
            TestJournal.AppendRecords(writer, 30, batchSize: 3);
        }
        Assert.Equal(4, TestJournal.SegmentPaths(temp.Path).Length);
        TestJournal.AssertJournalHolds(temp.Path, 130);
    }

    [Fact]
    public void Full_batch_buffer_commits_instead_of_growing_past_its_limit()
    {
        using var temp = new TempDirectory();
        var options = new JournalOptions { Directory = temp.Path, Fsync = false, BatchBufferInitialBytes = 8192, BatchBufferMaxBytes = 16384 };
        using (JournalWriter writer = JournalWriter.Open(options))
        {
            for (long sequence = 1; sequence <= 1000; sequence++)
            {
                writer.Append(TestJournal.RecordType, sequence, TestJournal.Timestamp(sequence), TestJournal.Payload(sequence));
                Assert.True(writer.PendingBytes <= options.BatchBufferMaxBytes);
            }
            Assert.True(writer.DurableSequence > 0);
            writer.Commit();
        }
        TestJournal.AssertJournalHolds(temp.Path, 1000);
    }

    [Fact]
    public void Append_and_commit_allocate_nothing_in_steady_state()
    {
        using var temp = new TempDirectory();
        using JournalWriter writer = JournalWriter.Open(TestJournal.Options(temp.Path));
        byte[] payload = TestJournal.Payload(1);
        long sequence = 0;
        void Cycles(int count)
        {
            for (int cycle = 0; cycle < count; cycle++)
            {
                for (int i = 0; i < 16; i++)
                {
                    sequence++;
                    writer.Append(TestJournal.RecordType, sequence, sequence, payload);
                }
                writer.Commit();
            }
        }

        Cycles(2000); // warm-up: the first segment, JIT tiers, the batch buffer at its working size
        long before = GC.GetAllocatedBytesForCurrentThread();
        Cycles(5000);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(sequence, writer.DurableSequence);
    }

    [Fact]
    public void Deleting_segments_below_a_snapshot_keeps_the_tail_and_the_rest_readable()
    {
        using var temp = new TempDirectory();
        long segmentBytes = TestJournal.SegmentOf40Records;
        using (JournalWriter writer = JournalWriter.Open(TestJournal.Options(temp.Path, segmentBytes)))
        {
            TestJournal.AppendRecords(writer, 195, batchSize: 10);
            // A snapshot at 100: records 1..100 are no longer needed, but [81..120] holds 101..120, so only [1..40] and [41..80] go.
            Assert.Equal(2, writer.DeleteSegmentsBefore(101));
            // Asking for everything may delete all but the tail segment [161..195].
            Assert.Equal(2, writer.DeleteSegmentsBefore(long.MaxValue));
            TestJournal.AppendRecords(writer, 5, batchSize: 5);
        }
        Assert.Equal([SegmentFormat.FileName(161)], TestJournal.SegmentPaths(temp.Path).Select(Path.GetFileName));

        var collector = new TestJournal.Collector();
        JournalReader.Read(temp.Path, 160, collector);
        Assert.Equal(Enumerable.Range(161, 40).Select(i => (long)i), collector.Records.Select(r => r.Header.Sequence));
        var missing = Assert.Throws<JournalArchiveMissingException>(() => JournalReader.Read(temp.Path, 0, collector));
        Assert.Equal(JournalProblemKind.MissingRecords, missing.Problem.Kind);
        Assert.Null(missing.ArchiveDirectory);

        using JournalWriter reopened = JournalWriter.Open(TestJournal.Options(temp.Path, segmentBytes));
        Assert.Equal(200, reopened.LastSequence);
    }

    [Fact]
    public void Empty_directory_is_an_empty_journal()
    {
        using var temp = new TempDirectory();
        string directory = Path.Combine(temp.Path, "not-yet-created");
        Assert.Equal(0, JournalReader.Read(directory, 0, new TestJournal.Collector()).RecordsVisited);
        Assert.True(JournalVerifier.Verify(directory).IsHealthy);
        using JournalWriter writer = JournalWriter.Open(TestJournal.Options(directory));
        Assert.Equal(0, writer.LastSequence);
        Assert.Empty(TestJournal.SegmentPaths(directory));
        TestJournal.AppendRecords(writer, 1, batchSize: 1);
        TestJournal.AssertJournalHolds(directory, 1);
    }
}
