namespace RamPay.Journal.Tests;

public class SnapshotStoreTests
{
    private static byte[] State(long sequence) => [.. Enumerable.Range(0, 1000).Select(i => (byte)(i + sequence))];

    [Fact]
    public void Latest_snapshot_loads_and_only_the_newest_three_are_kept()
    {
        using var temp = new TempDirectory();
        foreach (long sequence in new long[] { 100, 200, 300, 400 }) SnapshotStore.Write(temp.Path, sequence, sequence * 10, State(sequence));

        Assert.Equal(
            [SnapshotFormat.FileName(200), SnapshotFormat.FileName(300), SnapshotFormat.FileName(400)],
            Directory.GetFiles(temp.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.True(SnapshotStore.TryLoadLatest(temp.Path, out SnapshotInfo info, out byte[] payload));
        Assert.Equal((400L, 4000L, 1000L), (info.Sequence, info.TimestampMs, info.PayloadLength));
        Assert.Empty(info.Warnings);
        Assert.Equal(State(400), payload);
    }

    [Fact]
    public void Corrupt_newest_snapshot_is_reported_and_the_previous_one_used()
    {
        using var temp = new TempDirectory();
        SnapshotStore.Write(temp.Path, 100, 1, State(100));
        string newest = SnapshotStore.Write(temp.Path, 200, 2, State(200));
        TestJournal.FlipByte(newest, SnapshotFormat.HeaderSize + 500);

        Assert.True(SnapshotStore.TryLoadLatest(temp.Path, out SnapshotInfo info, out byte[] payload));
        Assert.Equal(100, info.Sequence);
        Assert.Equal(State(100), payload);
        string warning = Assert.Single(info.Warnings);
        Assert.Contains(newest, warning);
        Assert.Contains("payload CRC", warning);
    }

    [Fact]
    public void Truncated_or_header_damaged_snapshots_are_skipped_and_none_valid_is_false()
    {
        using var temp = new TempDirectory();
        string first = SnapshotStore.Write(temp.Path, 100, 1, State(100));
        string second = SnapshotStore.Write(temp.Path, 200, 2, State(200));
        using (FileStream file = File.Open(second, FileMode.Open)) file.SetLength(file.Length - 1);
        TestJournal.FlipByte(first, 20);

        Assert.False(SnapshotStore.TryLoadLatest(temp.Path, out SnapshotInfo info, out byte[] payload));
        Assert.Empty(payload);
        Assert.Equal(2, info.Warnings.Count);
    }

    [Fact]
    public void Streaming_write_matches_the_buffer_write_and_leaves_no_temporary_file()
    {
        using var temp = new TempDirectory();
        string streamed = SnapshotStore.Write(Path.Combine(temp.Path, "a"), 7, 70, stream =>
        {
            byte[] state = State(7);
            for (int offset = 0; offset < state.Length; offset += 300) stream.Write(state, offset, Math.Min(300, state.Length - offset));
        }, keepCount: 1);
        string buffered = SnapshotStore.Write(Path.Combine(temp.Path, "b"), 7, 70, State(7));
        Assert.Equal(File.ReadAllBytes(buffered), File.ReadAllBytes(streamed));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(streamed)!));
    }

    [Fact]
    public void Snapshot_from_a_newer_RamPay_is_named_in_the_warnings()
    {
        using var temp = new TempDirectory();
        SnapshotStore.Write(temp.Path, 100, 1, State(100));
        string newer = SnapshotStore.Write(temp.Path, 200, 2, State(200));
        byte[] bytes = File.ReadAllBytes(newer);
        Span<byte> header = bytes.AsSpan(0, SnapshotFormat.HeaderSize);
        Assert.Equal(SnapshotHeaderStatus.Ok, SnapshotFormat.TryReadHeader(header, out SnapshotHeader parsed));
        header[8] = 2; // format version 2, header CRC resealed
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(header[60..], Crc32C.Compute(header[..60]));
        File.WriteAllBytes(newer, bytes);

        Assert.True(SnapshotStore.TryLoadLatest(temp.Path, out SnapshotInfo info, out _));
        Assert.Equal(100, info.Sequence);
        Assert.Contains("newer RamPay", Assert.Single(info.Warnings));
        Assert.Equal(200, parsed.Sequence);
    }
}
