using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;

namespace RamPay.Journal.Tests;

public class RecordFormatTests
{
    /// <summary>Rewrites a record's CRC after a test edited it on purpose, so only the edit is "wrong".</summary>
    internal static void Reseal(Span<byte> record) =>
        BinaryPrimitives.WriteUInt32LittleEndian(record[24..], Crc32C.Append(Crc32C.Compute(record[..24]), record[28..]));

    private static byte[] ValidRecord()
    {
        var buffer = new byte[TestJournal.RecordBytes];
        RecordFormat.Write(buffer, 5, 9, 1234, TestJournal.Payload(9));
        return buffer;
    }

    [Fact]
    public void Round_trips_any_payload_type_sequence_and_timestamp()
    {
        Prop.ForAll<byte[], long, long>((payload, sequence, timestamp) =>
        {
            if (payload.Length > RecordFormat.MaxPayloadSize || sequence < 1) return true;
            byte type = (byte)(1 + (timestamp & 0x7F));
            var buffer = new byte[RecordFormat.MaxRecordSize];
            int length = RecordFormat.Write(buffer, type, sequence, timestamp, payload);
            RecordReadStatus status = RecordFormat.TryRead(buffer.AsSpan(0, length), out RecordHeader header, out ReadOnlySpan<byte> read);
            return status == RecordReadStatus.Ok && header.Length == length && header.Type == type && header.Sequence == sequence
                && header.TimestampMs == timestamp && read.SequenceEqual(payload);
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Any_single_bit_flip_is_detected()
    {
        byte[] record = ValidRecord();
        for (int bit = 0; bit < record.Length * 8; bit++)
        {
            byte[] damaged = (byte[])record.Clone();
            damaged[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.NotEqual(RecordReadStatus.Ok, RecordFormat.TryRead(damaged, out _, out _));
        }
    }

    [Fact]
    public void Short_input_is_incomplete_not_an_error()
    {
        byte[] record = ValidRecord();
        for (int length = 0; length < record.Length; length++)
        {
            Assert.Equal(RecordReadStatus.Incomplete, RecordFormat.TryRead(record.AsSpan(0, length), out _, out _));
        }
    }

    [Fact]
    public void Lengths_outside_the_limits_are_bad_length()
    {
        byte[] record = ValidRecord();
        BinaryPrimitives.WriteUInt32LittleEndian(record, RecordFormat.HeaderSize - 1);
        Assert.Equal(RecordReadStatus.BadLength, RecordFormat.TryRead(record, out _, out _));
        BinaryPrimitives.WriteUInt32LittleEndian(record, RecordFormat.MaxRecordSize + 1);
        Assert.Equal(RecordReadStatus.BadLength, RecordFormat.TryRead(record, out _, out _));
    }

    [Fact]
    public void An_intact_record_from_a_newer_version_is_unsupported_not_corrupt()
    {
        byte[] record = ValidRecord();
        record[5] = RecordFormat.CurrentVersion + 1;
        Assert.Equal(RecordReadStatus.BadCrc, RecordFormat.TryRead(record, out _, out _));
        Reseal(record);
        Assert.Equal(RecordReadStatus.UnsupportedVersion, RecordFormat.TryRead(record, out _, out _));
    }

    [Fact]
    public void Sealed_nonzero_reserved_fields_and_type_zero_are_rejected()
    {
        byte[] reserved = ValidRecord();
        reserved[28] = 1;
        Reseal(reserved);
        Assert.Equal(RecordReadStatus.BadReserved, RecordFormat.TryRead(reserved, out _, out _));

        byte[] typeZero = ValidRecord();
        typeZero[4] = 0;
        Reseal(typeZero);
        Assert.Equal(RecordReadStatus.BadType, RecordFormat.TryRead(typeZero, out _, out _));
    }

    [Fact]
    public void Writer_refuses_oversized_payloads_type_zero_and_small_destinations()
    {
        var buffer = new byte[RecordFormat.MaxRecordSize + 1];
        Assert.Throws<ArgumentOutOfRangeException>(() => RecordFormat.Write(buffer, 1, 1, 0, new byte[RecordFormat.MaxPayloadSize + 1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => RecordFormat.Write(buffer, 0, 1, 0, new byte[8]));
        Assert.Throws<ArgumentOutOfRangeException>(() => RecordFormat.Write(buffer, 1, 0, 0, new byte[8]));
        Assert.Throws<ArgumentException>(() => RecordFormat.Write(new byte[40], 1, 1, 0, new byte[9]));
        Assert.Equal(RecordFormat.MaxRecordSize, RecordFormat.Write(buffer, 1, 1, 0, new byte[RecordFormat.MaxPayloadSize]));
    }
}
