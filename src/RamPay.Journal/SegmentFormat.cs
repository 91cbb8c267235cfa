using System.Buffers.Binary;
using System.Globalization;

namespace RamPay.Journal;

/// <summary>
/// Layout of the 64-byte header at the start of every segment file, little-endian:
/// <code>
///  0 8 bytes "RPJOURNL"     16 int64 first sequence held by the segment
///  8 uint32 format version  24..60 zero
/// 12 uint32 reserved (0)    60 uint32 CRC32C of [0..60)
/// </code>
/// File names are <c>journal-{firstSequence:D20}.seg</c>, so a directory listing sorts in sequence order.
/// </summary>
public static class SegmentFormat
{
    public const int HeaderSize = 64;
    public const uint CurrentVersion = 1;
    public const string FilePrefix = "journal-";
    public const string FileExtension = ".seg";

    /// <summary>Suffix of a segment being created; a file with it never holds acknowledged records.</summary>
    public const string TempSuffix = ".tmp";

    private const int VersionOffset = 8;
    private const int ReservedOffset = 12;
    private const int FirstSequenceOffset = 16;
    private const int CrcOffset = 60;
    private static ReadOnlySpan<byte> Magic => "RPJOURNL"u8;

    public static string FileName(long firstSequence) => SequencedFileName.Format(FilePrefix, firstSequence, FileExtension);

    /// <summary>Parses the first sequence out of a segment file name; false for any other file.</summary>
    public static bool TryParseFileName(string fileName, out long firstSequence) =>
        SequencedFileName.TryParse(fileName, FilePrefix, FileExtension, out firstSequence);

    public static void WriteHeader(Span<byte> destination, long firstSequence)
    {
        if (firstSequence < 1) throw new ArgumentOutOfRangeException(nameof(firstSequence), "sequences are 1-based");
        Span<byte> header = destination[..HeaderSize];
        header.Clear();
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[VersionOffset..], CurrentVersion);
        BinaryPrimitives.WriteInt64LittleEndian(header[FirstSequenceOffset..], firstSequence);
        BinaryPrimitives.WriteUInt32LittleEndian(header[CrcOffset..], Crc32C.Compute(header[..CrcOffset]));
    }

    /// <summary>
    /// Validates a segment header. The magic and the CRC are checked before the version, so only an
    /// intact header can claim to come from a newer RamPay.
    /// </summary>
    public static SegmentHeaderStatus TryReadHeader(ReadOnlySpan<byte> source, out uint version, out long firstSequence)
    {
        version = 0;
        firstSequence = 0;
        if (source.Length < HeaderSize) return SegmentHeaderStatus.Incomplete;
        ReadOnlySpan<byte> header = source[..HeaderSize];
        if (!header[..Magic.Length].SequenceEqual(Magic)) return SegmentHeaderStatus.BadMagic;
        if (BinaryPrimitives.ReadUInt32LittleEndian(header[CrcOffset..]) != Crc32C.Compute(header[..CrcOffset]))
        {
            return SegmentHeaderStatus.BadCrc;
        }
        version = BinaryPrimitives.ReadUInt32LittleEndian(header[VersionOffset..]);
        if (version != CurrentVersion) return SegmentHeaderStatus.UnsupportedVersion;
        if (BinaryPrimitives.ReadUInt32LittleEndian(header[ReservedOffset..]) != 0) return SegmentHeaderStatus.BadReserved;
        firstSequence = BinaryPrimitives.ReadInt64LittleEndian(header[FirstSequenceOffset..]);
        return firstSequence >= 1 ? SegmentHeaderStatus.Ok : SegmentHeaderStatus.BadFirstSequence;
    }
}

public enum SegmentHeaderStatus : byte
{
    Ok = 0,
    Incomplete = 1,
    BadMagic = 2,
    BadCrc = 3,
    UnsupportedVersion = 4,
    BadReserved = 5,
    BadFirstSequence = 6,
}
