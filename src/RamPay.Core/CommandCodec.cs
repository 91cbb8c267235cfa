using System.Buffers.Binary;

namespace RamPay.Core;

/// <summary>
/// The command's byte layout in a journal record's payload: 80 bytes, little-endian, field by field (not a struct
/// dump, so padding and host byte order can never leak into the journal). Frozen by golden tests.
/// <code>
///  0 type u8 | 1 flags u8 | 2 currency u16 | 4 reserved u32 (0) | 8 timestamp_ms i64 | 16 client_id i64
/// 24 key_hi u64 | 32 key_lo u64 | 40 from_account i64 | 48 to_account i64 | 56 payment_id i64
/// 64 amount i64 | 72 argument i64
/// </code>
/// </summary>
public static class CommandCodec
{
    public const int Size = 80;

    public static void Write(Span<byte> dest, in Command c)
    {
        if (dest.Length < Size) throw new ArgumentException("destination shorter than a command", nameof(dest));
        dest[0] = (byte)c.Type;
        dest[1] = c.Flags;
        BinaryPrimitives.WriteUInt16LittleEndian(dest[2..], c.Currency.Code);
        BinaryPrimitives.WriteUInt32LittleEndian(dest[4..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(dest[8..], c.TimestampMs);
        BinaryPrimitives.WriteInt64LittleEndian(dest[16..], c.ClientId);
        BinaryPrimitives.WriteUInt64LittleEndian(dest[24..], c.Key.Hi);
        BinaryPrimitives.WriteUInt64LittleEndian(dest[32..], c.Key.Lo);
        BinaryPrimitives.WriteInt64LittleEndian(dest[40..], c.FromAccount);
        BinaryPrimitives.WriteInt64LittleEndian(dest[48..], c.ToAccount);
        BinaryPrimitives.WriteInt64LittleEndian(dest[56..], c.PaymentId);
        BinaryPrimitives.WriteInt64LittleEndian(dest[64..], c.Amount);
        BinaryPrimitives.WriteInt64LittleEndian(dest[72..], c.Argument);
    }

    /// <summary>Decodes a payload. A payload of the wrong length or with a non-zero reserved field is corrupt.</summary>
    public static bool TryRead(ReadOnlySpan<byte> src, out Command c)
    {
        c = default;
        if (src.Length != Size || BinaryPrimitives.ReadUInt32LittleEndian(src[4..]) != 0) return false;
        c.Type = (CommandType)src[0];
        c.Flags = src[1];
        c.Currency = new Currency(BinaryPrimitives.ReadUInt16LittleEndian(src[2..]));
        c.TimestampMs = BinaryPrimitives.ReadInt64LittleEndian(src[8..]);
        c.ClientId = BinaryPrimitives.ReadInt64LittleEndian(src[16..]);
        c.Key = new IdempotencyKey(BinaryPrimitives.ReadUInt64LittleEndian(src[24..]), BinaryPrimitives.ReadUInt64LittleEndian(src[32..]));
        c.FromAccount = BinaryPrimitives.ReadInt64LittleEndian(src[40..]);
        c.ToAccount = BinaryPrimitives.ReadInt64LittleEndian(src[48..]);
        c.PaymentId = BinaryPrimitives.ReadInt64LittleEndian(src[56..]);
        c.Amount = BinaryPrimitives.ReadInt64LittleEndian(src[64..]);
        c.Argument = BinaryPrimitives.ReadInt64LittleEndian(src[72..]);
        return true;
    }

    public static Command Read(ReadOnlySpan<byte> src) =>
        TryRead(src, out var c) ? c : throw new FormatException("not an 80-byte command payload with a zero reserved field");
}
