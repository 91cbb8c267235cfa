using System.Buffers.Binary;
using System.Text;
using System.Text.Unicode;

namespace RamPay.Core;

/// <summary>
/// The string field of command attachments (<see cref="UserProfile"/>, <see cref="PaymentNote"/>): a u16
/// little-endian byte length, then that many UTF-8 bytes. Both directions are strict (a lone surrogate is refused on
/// the way in, invalid UTF-8 on the way out, neither is replaced by U+FFFD), so what decodes is exactly what was
/// encoded: a journaled field replays as the string the host sent.
/// </summary>
internal static class LengthPrefixedUtf8
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The field's encoded size, length prefix included. Throws <see cref="ArgumentException"/> for a string with no UTF-8 form.</summary>
    public static int Size(string value) => 2 + Strict.GetByteCount(value);

    /// <summary>Writes the field at the start of <paramref name="destination"/> (sized with <see cref="Size"/>); returns its size.</summary>
    public static int Write(Span<byte> destination, string value)
    {
        int length = Strict.GetBytes(value, destination[2..]);
        if (length > ushort.MaxValue) throw new ArgumentException($"a field of {length} UTF-8 bytes does not fit its u16 length");
        BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)length);
        return 2 + length;
    }

    /// <summary>Reads one field from the start of <paramref name="bytes"/> and moves past it; false when it is cut short or not UTF-8.</summary>
    public static bool TryRead(ref ReadOnlySpan<byte> bytes, out string value)
    {
        value = "";
        if (bytes.Length < 2) return false;
        int length = BinaryPrimitives.ReadUInt16LittleEndian(bytes);
        if (bytes.Length < 2 + length) return false;
        ReadOnlySpan<byte> utf8 = bytes.Slice(2, length);
        if (!Utf8.IsValid(utf8)) return false;
        value = Encoding.UTF8.GetString(utf8);
        bytes = bytes[(2 + length)..];
        return true;
    }
}
