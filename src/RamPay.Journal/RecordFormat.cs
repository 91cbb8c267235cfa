using System.Buffers.Binary;

namespace RamPay.Journal;

/// <summary>Outcome of parsing one record. Anything but <see cref="Ok"/> means the bytes are not a usable record.</summary>
public enum RecordReadStatus : byte
{
    Ok = 0,
    /// <summary>Fewer bytes than the header or than the record's length field: a torn write or a buffer edge.</summary>
    Incomplete = 1,
    /// <summary>Length field below the header size or above <see cref="RecordFormat.MaxRecordSize"/>.</summary>
    BadLength = 2,
    /// <summary>The checksum does not match: the bytes were damaged or never fully written.</summary>
    BadCrc = 3,
    /// <summary>Version 0, or a checksum-valid record from a newer RamPay that this build cannot read.</summary>
    UnsupportedVersion = 4,
    /// <summary>A reserved field is not zero in a version-1 record.</summary>
    BadReserved = 5,
    /// <summary>Record type 0, which no writer produces.</summary>
    BadType = 6,
}

/// <summary>The decoded 32-byte header of a journal record.</summary>
public readonly record struct RecordHeader(int Length, byte Type, byte Version, long Sequence, long TimestampMs, uint Crc)
{
    public int PayloadLength => Length - RecordFormat.HeaderSize;
}

/// <summary>
/// Layout of one journal record, little-endian, header then payload:
/// <code>
///  0 uint32 total length (header + payload)   16 int64 timestamp, unix ms
///  4 byte   record type (0 is invalid)         24 uint32 CRC32C of [0..24) and [28..length)
///  5 byte   format version                     28 uint32 reserved (0)
///  6 uint16 reserved (0)                       32 payload
///  8 int64  sequence (1-based, +1 per record)
/// </code>
/// The envelope (length at 0, version at 5, CRC at 24 covering everything else) is frozen for all
/// versions, so a reader checks the CRC before the version: a damaged byte reads as
/// <see cref="RecordReadStatus.BadCrc"/>, and only an intact record can claim to come from a newer RamPay.
/// </summary>
public static class RecordFormat
{
    public const int HeaderSize = 32;
    public const byte CurrentVersion = 1;

    /// <summary>Largest payload accepted; bounds every read buffer and the torn-tail search window.</summary>
    public const int MaxPayloadSize = 4096;
    public const int MaxRecordSize = HeaderSize + MaxPayloadSize;

    private const int LengthOffset = 0;
    private const int TypeOffset = 4;
    private const int VersionOffset = 5;
    private const int Reserved16Offset = 6;
    private const int SequenceOffset = 8;
    private const int TimestampOffset = 16;
    private const int CrcOffset = 24;
    private const int Reserved32Offset = 28;

    /// <summary>Writes one record into <paramref name="destination"/> and returns its total length.</summary>
    public static int Write(Span<byte> destination, byte type, long sequence, long timestampMs, ReadOnlySpan<byte> payload)
    {
        int length = RecordLength(type, payload.Length);
        if (sequence < 1) throw new ArgumentOutOfRangeException(nameof(sequence), "sequences are 1-based");
        if (destination.Length < length) throw new ArgumentException($"destination holds {destination.Length} bytes, record needs {length}", nameof(destination));

        Span<byte> record = destination[..length];
        BinaryPrimitives.WriteUInt32LittleEndian(record[LengthOffset..], (uint)length);
        record[TypeOffset] = type;
        record[VersionOffset] = CurrentVersion;
        BinaryPrimitives.WriteUInt16LittleEndian(record[Reserved16Offset..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(record[SequenceOffset..], sequence);
        BinaryPrimitives.WriteInt64LittleEndian(record[TimestampOffset..], timestampMs);
        BinaryPrimitives.WriteUInt32LittleEndian(record[Reserved32Offset..], 0);
        payload.CopyTo(record[HeaderSize..]);
        BinaryPrimitives.WriteUInt32LittleEndian(record[CrcOffset..], ComputeCrc(record));
        return length;
    }

    /// <summary>Validates a record's type and payload size and returns its total length.</summary>
    public static int RecordLength(byte type, int payloadLength)
    {
        if (type == 0) throw new ArgumentOutOfRangeException(nameof(type), "record type 0 is reserved as invalid");
        if ((uint)payloadLength > MaxPayloadSize)
        {
            throw new ArgumentOutOfRangeException(nameof(payloadLength), payloadLength, $"payloads are limited to {MaxPayloadSize} bytes");
        }
        return HeaderSize + payloadLength;
    }

    /// <summary>
    /// Parses the record at the start of <paramref name="source"/> without allocating.
    /// On <see cref="RecordReadStatus.Ok"/> the payload is a slice of <paramref name="source"/>.
    /// </summary>
    public static RecordReadStatus TryRead(ReadOnlySpan<byte> source, out RecordHeader header, out ReadOnlySpan<byte> payload)
    {
        header = default;
        payload = default;
        if (source.Length < HeaderSize) return RecordReadStatus.Incomplete;

        uint length = BinaryPrimitives.ReadUInt32LittleEndian(source);
        if (length < HeaderSize || length > MaxRecordSize) return RecordReadStatus.BadLength;
        if (source.Length < length) return RecordReadStatus.Incomplete;

        ReadOnlySpan<byte> record = source[..(int)length];
        uint storedCrc = BinaryPrimitives.ReadUInt32LittleEndian(record[CrcOffset..]);
        if (storedCrc != ComputeCrc(record)) return RecordReadStatus.BadCrc;

        byte version = record[VersionOffset];
        if (version != CurrentVersion) return RecordReadStatus.UnsupportedVersion;
        if (BinaryPrimitives.ReadUInt16LittleEndian(record[Reserved16Offset..]) != 0
            || BinaryPrimitives.ReadUInt32LittleEndian(record[Reserved32Offset..]) != 0)
        {
            return RecordReadStatus.BadReserved;
        }
        byte type = record[TypeOffset];
        if (type == 0) return RecordReadStatus.BadType;

        header = new RecordHeader(
            (int)length,
            type,
            version,
            BinaryPrimitives.ReadInt64LittleEndian(record[SequenceOffset..]),
            BinaryPrimitives.ReadInt64LittleEndian(record[TimestampOffset..]),
            storedCrc);
        payload = record[HeaderSize..];
        return RecordReadStatus.Ok;
    }

    /// <summary>Reads the version byte of a record whose status was <see cref="RecordReadStatus.UnsupportedVersion"/>, for the error message.</summary>
    internal static byte PeekVersion(ReadOnlySpan<byte> record) => record[VersionOffset];

    private static uint ComputeCrc(ReadOnlySpan<byte> record) =>
        Crc32C.Append(Crc32C.Compute(record[..CrcOffset]), record[Reserved32Offset..]);
}
