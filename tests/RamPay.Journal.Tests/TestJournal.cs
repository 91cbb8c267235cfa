using System.Buffers.Binary;

namespace RamPay.Journal.Tests;

/// <summary>A unique temporary directory, deleted on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "rampay-journal-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}

/// <summary>Helpers that write and read journals with payloads derived from the sequence, so any record can be checked.</summary>
public static class TestJournal
{
    public const int PayloadBytes = 80;
    public const int RecordBytes = RecordFormat.HeaderSize + PayloadBytes;
    public const byte RecordType = 3;

    /// <summary>A segment size holding exactly 40 test records: small segments, just above the minimum size.</summary>
    public const long SegmentOf40Records = SegmentFormat.HeaderSize + (40 * RecordBytes);

    public static JournalOptions Options(string directory, long segmentSizeBytes = JournalOptions.DefaultSegmentSizeBytes, bool fsync = false) =>
        new() { Directory = directory, SegmentSizeBytes = segmentSizeBytes, Fsync = fsync };

    public static byte[] Payload(long sequence)
    {
        var payload = new byte[PayloadBytes];
        for (int i = 0; i < payload.Length; i++) payload[i] = (byte)((sequence * 31) + i);
        BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(8), sequence);
        return payload;
    }

    public static long Timestamp(long sequence) => 1_700_000_000_000 + sequence;

    /// <summary>Appends records after the writer's last sequence, committing every <paramref name="batchSize"/> records.</summary>
    public static void AppendRecords(JournalWriter writer, int count, int batchSize)
    {
        for (int i = 0; i < count; i++)
        {
            long sequence = writer.LastSequence + 1;
            writer.Append(RecordType, sequence, Timestamp(sequence), Payload(sequence));
            if ((i + 1) % batchSize == 0) writer.Commit();
        }
        writer.Commit();
    }

    public static void WriteJournal(string directory, int count, int batchSize, long segmentSizeBytes = JournalOptions.DefaultSegmentSizeBytes)
    {
        using JournalWriter writer = JournalWriter.Open(Options(directory, segmentSizeBytes));
        AppendRecords(writer, count, batchSize);
    }

    /// <summary>Reads every record and asserts they are exactly sequences 1..<paramref name="expectedLast"/> with their payloads.</summary>
    public static void AssertJournalHolds(string directory, long expectedLast)
    {
        var collector = new Collector();
        JournalReadSummary summary = JournalReader.Read(directory, 0, collector);
        Assert.Null(summary.TornTail);
        Assert.Equal(expectedLast, summary.LastSequence);
        Assert.Equal(expectedLast, collector.Records.Count);
        for (int i = 0; i < collector.Records.Count; i++)
        {
            (RecordHeader header, byte[] payload) = collector.Records[i];
            Assert.Equal(i + 1, header.Sequence);
            Assert.Equal(RecordType, header.Type);
            Assert.Equal(Timestamp(header.Sequence), header.TimestampMs);
            Assert.Equal(Payload(header.Sequence), payload);
        }
    }

    public static string[] SegmentPaths(string directory) =>
        [.. Directory.GetFiles(directory, "journal-*.seg").Order(StringComparer.Ordinal)];

    /// <summary>File offset of a record in a segment of fixed-size test records.</summary>
    public static long OffsetOf(long indexInSegment) => SegmentFormat.HeaderSize + (indexInSegment * RecordBytes);

    public static void FlipByte(string path, long offset)
    {
        using FileStream file = File.Open(path, FileMode.Open, FileAccess.ReadWrite);
        file.Position = offset;
        int value = file.ReadByte();
        file.Position = offset;
        file.WriteByte((byte)(value ^ 0x40));
    }

    public static Dictionary<string, byte[]> Snapshot(string directory) =>
        Directory.GetFiles(directory).ToDictionary(path => path, File.ReadAllBytes);

    public sealed class Collector : IRecordVisitor
    {
        public List<(RecordHeader Header, byte[] Payload)> Records { get; } = [];

        public void OnRecord(in RecordHeader header, ReadOnlySpan<byte> payload) => Records.Add((header, payload.ToArray()));
    }
}
