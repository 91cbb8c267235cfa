using System.Buffers.Binary;
using RamPay.Core;

namespace RamPay.Protocol;

/// <summary>
/// One command's result as the server sends it: 16 bytes, little-endian.
/// <code>
/// 0 result code u8 | 1 flags u8 (bit 0 = replayed) | 2 reserved u16 (0) | 4 reserved u32 (0) | 8 id i64
/// </code>
/// The result code is the <see cref="ResultCode"/> value. Readers accept codes they do not know: the engine appends
/// new codes over time without a protocol version change.
/// </summary>
public record struct WireResult(ResultCode Code, bool Replayed, long Id) : IWireRecord<WireResult>
{
    public const int Size = 16;
    public const byte ReplayedFlag = 0x01;

    static int IWireRecord<WireResult>.RecordBytes => Size;

    public static WireResult From(in CommandResult result) => new(result.Code, result.Replayed, result.Id);

    public readonly CommandResult ToCommandResult() => new() { Code = Code, Replayed = Replayed, Id = Id };

    public static void Write(in WireResult result, Span<byte> dest)
    {
        if (dest.Length < Size) throw new ArgumentException("destination shorter than a wire result", nameof(dest));
        dest[0] = (byte)result.Code;
        dest[1] = result.Replayed ? ReplayedFlag : (byte)0;
        BinaryPrimitives.WriteUInt16LittleEndian(dest[2..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(dest[4..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(dest[8..], result.Id);
    }

    public static bool TryRead(ReadOnlySpan<byte> src, out WireResult result, out string reason)
    {
        result = default;
        if (src.Length != Size)
        {
            reason = "a wire result is 16 bytes";
            return false;
        }
        if ((src[1] & ~ReplayedFlag) != 0 || BinaryPrimitives.ReadUInt16LittleEndian(src[2..]) != 0 || BinaryPrimitives.ReadUInt32LittleEndian(src[4..]) != 0)
        {
            reason = "unknown result flags or non-zero reserved bytes";
            return false;
        }
        result = new WireResult((ResultCode)src[0], (src[1] & ReplayedFlag) != 0, BinaryPrimitives.ReadInt64LittleEndian(src[8..]));
        reason = "";
        return true;
    }
}
