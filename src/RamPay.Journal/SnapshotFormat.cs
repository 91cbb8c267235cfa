using System.Buffers.Binary;
using System.Globalization;

namespace RamPay.Journal;

public enum SnapshotHeaderStatus : byte
{
    Ok = 0,
    Incomplete = 1,
    BadMagic = 2,
    BadCrc = 3,
    UnsupportedVersion = 4,
    BadReserved = 5,
    BadPayloadLength = 6,
}

/// <summary>The decoded header of a snapshot file.</summary>
public readonly record struct SnapshotHeader(uint Version, long Sequence, long TimestampMs, long PayloadLength, uint PayloadCrc);

/// <summary>
/// Layout of the 64-byte header of <c>snapshot-{sequence:D20}.snap</c>, little-endian, followed by the payload:
/// <code>
///  0 8 bytes "RPSNAPSH"     24 int64 timestamp, unix ms       44..60 zero
///  8 uint32 format version  32 int64 payload length           60 uint32 CRC32C of [0..60)
/// 12 uint32 reserved (0)    40 uint32 CRC32C of the payload
/// 16 int64 sequence (state after applying this journal sequence)
/// </code>
/// </summary>
public static class SnapshotFormat
{
    public const int HeaderSize = 64;
    public const uint CurrentVersion = 1;
    public const string FilePrefix = "snapshot-";
    public const string FileExtension = ".snap";
    public const string TempSuffix = ".tmp";

    /// <summary>A snapshot loads into one array, so its payload is bounded by the largest array.</summary>
    public static long MaxPayloadBytes => Array.MaxLength;

    private const int VersionOffset = 8;
    private const int ReservedOffset = 12;
    private const int SequenceOffset = 16;
    private const int TimestampOffset = 24;
    private const int PayloadLengthOffset = 32;
    private const int PayloadCrcOffset = 40;
    private const int CrcOffset = 60;
    private static ReadOnlySpan<byte> Magic => "RPSNAPSH"u8;

    public static string FileName(long sequence) => SequencedFileName.Format(FilePrefix, sequence, FileExtension);

    public static bool TryParseFileName(string fileName, out long sequence) =>
        SequencedFileName.TryParse(fileName, FilePrefix, FileExtension, out sequence);

    public static void WriteHeader(Span<byte> destination, long sequence, long timestampMs, long payloadLength, uint payloadCrc)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sequence);
        ArgumentOutOfRangeException.ThrowIfNegative(payloadLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(payloadLength, MaxPayloadBytes);
        Span<byte> header = destination[..HeaderSize];
        header.Clear();
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[VersionOffset..], CurrentVersion);
        BinaryPrimitives.WriteInt64LittleEndian(header[SequenceOffset..], sequence);
        BinaryPrimitives.WriteInt64LittleEndian(header[TimestampOffset..], timestampMs);
        BinaryPrimitives.WriteInt64LittleEndian(header[PayloadLengthOffset..], payloadLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header[PayloadCrcOffset..], payloadCrc);
        BinaryPrimitives.WriteUInt32LittleEndian(header[CrcOffset..], Crc32C.Compute(header[..CrcOffset]));
    }

    /// <summary>Validates a snapshot header (magic and CRC before the version, like records and segments).</summary>
    public static SnapshotHeaderStatus TryReadHeader(ReadOnlySpan<byte> source, out SnapshotHeader header)
    {
        header = default;
        if (source.Length < HeaderSize) return SnapshotHeaderStatus.Incomplete;
        ReadOnlySpan<byte> bytes = source[..HeaderSize];
        if (!bytes[..Magic.Length].SequenceEqual(Magic)) return SnapshotHeaderStatus.BadMagic;
        if (BinaryPrimitives.ReadUInt32LittleEndian(bytes[CrcOffset..]) != Crc32C.Compute(bytes[..CrcOffset])) return SnapshotHeaderStatus.BadCrc;
        header = new SnapshotHeader(
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[VersionOffset..]),
            BinaryPrimitives.ReadInt64LittleEndian(bytes[SequenceOffset..]),
            BinaryPrimitives.ReadInt64LittleEndian(bytes[TimestampOffset..]),
            BinaryPrimitives.ReadInt64LittleEndian(bytes[PayloadLengthOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[PayloadCrcOffset..]));
        if (header.Version != CurrentVersion) return SnapshotHeaderStatus.UnsupportedVersion;
        if (BinaryPrimitives.ReadUInt32LittleEndian(bytes[ReservedOffset..]) != 0) return SnapshotHeaderStatus.BadReserved;
        return header.PayloadLength < 0 || header.PayloadLength > MaxPayloadBytes ? SnapshotHeaderStatus.BadPayloadLength : SnapshotHeaderStatus.Ok;
    }
}
