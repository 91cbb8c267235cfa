namespace RamPay.Journal.Tests;

/// <summary>
/// Frozen on-disk layouts. The hex literals were computed from the documented layouts by an
/// independent script, not by this code: a failure here means files written by an older RamPay
/// would no longer read. Change the format version instead of these literals.
/// </summary>
public class GoldenLayoutTests
{
    // length 48, type 7, version 1, sequence 42, timestamp 1700000000000, CRC 0x47F89744, payload 00..0F.
    private const string RecordHex =
        "30000000" + "07" + "01" + "0000" + "2A00000000000000" + "0068E5CF8B010000" + "4497F847" + "00000000"
        + "000102030405060708090A0B0C0D0E0F";

    // "RPJOURNL", version 1, reserved, first sequence 1000, zero padding, CRC 0xE66B46F1.
    private const string SegmentHeaderHex =
        "52504A4F55524E4C" + "01000000" + "00000000" + "E803000000000000"
        + "000000000000000000000000000000000000" + "000000000000000000000000000000000000" + "F1466BE6";

    // "RPSNAPSH", version 1, reserved, sequence 42, timestamp 1700000000000, payload length 5,
    // payload CRC 0x9A71BB4C, zero padding, header CRC 0x388E66F5, then "hello".
    private const string SnapshotFileHex =
        "5250534E41505348" + "01000000" + "00000000" + "2A00000000000000" + "0068E5CF8B010000" + "0500000000000000"
        + "4CBB719A" + "00000000000000000000000000000000" + "F5668E38" + "68656C6C6F";

    private static readonly byte[] GoldenPayload = [.. Enumerable.Range(0, 16).Select(i => (byte)i)];

    [Fact]
    public void Record_layout_is_frozen()
    {
        var buffer = new byte[64];
        int length = RecordFormat.Write(buffer, type: 7, sequence: 42, timestampMs: 1_700_000_000_000, GoldenPayload);
        Assert.Equal(RecordHex, Convert.ToHexString(buffer, 0, length));
    }

    [Fact]
    public void Golden_record_parses()
    {
        byte[] bytes = Convert.FromHexString(RecordHex);
        Assert.Equal(RecordReadStatus.Ok, RecordFormat.TryRead(bytes, out RecordHeader header, out ReadOnlySpan<byte> payload));
        Assert.Equal(new RecordHeader(48, 7, 1, 42, 1_700_000_000_000, 0x47F89744), header);
        Assert.Equal(GoldenPayload, payload.ToArray());
    }

    [Fact]
    public void Segment_header_layout_is_frozen()
    {
        var buffer = new byte[SegmentFormat.HeaderSize];
        SegmentFormat.WriteHeader(buffer, 1000);
        Assert.Equal(SegmentHeaderHex, Convert.ToHexString(buffer));
        Assert.Equal(SegmentHeaderStatus.Ok, SegmentFormat.TryReadHeader(Convert.FromHexString(SegmentHeaderHex), out uint version, out long first));
        Assert.Equal(1u, version);
        Assert.Equal(1000, first);
        Assert.Equal("journal-00000000000000001000.seg", SegmentFormat.FileName(1000));
    }

    [Fact]
    public void Snapshot_file_layout_is_frozen()
    {
        using var temp = new TempDirectory();
        string path = SnapshotStore.Write(temp.Path, 42, 1_700_000_000_000, "hello"u8);
        Assert.Equal("snapshot-00000000000000000042.snap", Path.GetFileName(path));
        Assert.Equal(SnapshotFileHex, Convert.ToHexString(File.ReadAllBytes(path)));
    }

    [Fact]
    public void Sizes_are_what_the_format_promises()
    {
        Assert.Equal(32, RecordFormat.HeaderSize);
        Assert.Equal(1, RecordFormat.CurrentVersion);
        Assert.Equal(64, SegmentFormat.HeaderSize);
        Assert.Equal(64, SnapshotFormat.HeaderSize);
    }
}
