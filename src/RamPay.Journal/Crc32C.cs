using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ArmCrc32 = System.Runtime.Intrinsics.Arm.Crc32;
using X86Sse42 = System.Runtime.Intrinsics.X86.Sse42;

namespace RamPay.Journal;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every journal record,
/// segment header and snapshot. Hardware instructions on x64 (SSE4.2) and ARM64 (CRC32 extension),
/// a slicing-by-8 table elsewhere.
/// </summary>
/// <remarks>
/// Values are "finished" CRCs (initial value and final xor applied), so
/// <c>Append(Compute(a), b) == Compute(a ++ b)</c>: a record's CRC can skip its own CRC field.
/// </remarks>
public static class Crc32C
{
    private const uint ReflectedPolynomial = 0x82F63B78;

    // 8 tables of 256 entries: table k maps a byte to its CRC contribution k bytes further on.
    private static readonly uint[] Table = BuildTable();

    /// <summary>CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>Continues <paramref name="crc"/> (a value returned by this class) over <paramref name="data"/>.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        uint state = ~crc;
        if (X86Sse42.X64.IsSupported) state = UpdateX64(state, data);
        else if (ArmCrc32.Arm64.IsSupported) state = UpdateArm64(state, data);
        else state = UpdateSoftware(state, data);
        return ~state;
    }

    /// <summary>The table path, exposed so tests can prove it equals the hardware path.</summary>
    internal static uint AppendSoftware(uint crc, ReadOnlySpan<byte> data) => ~UpdateSoftware(~crc, data);

    private static uint UpdateX64(uint state, ReadOnlySpan<byte> data)
    {
        ref byte start = ref MemoryMarshal.GetReference(data);
        int length = data.Length;
        int offset = 0;
        ulong wide = state;
        for (; offset <= length - 8; offset += 8)
        {
            wide = X86Sse42.X64.Crc32(wide, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, offset)));
        }
        state = (uint)wide;
        for (; offset < length; offset++)
        {
            state = X86Sse42.Crc32(state, Unsafe.Add(ref start, offset));
        }
        return state;
    }

    private static uint UpdateArm64(uint state, ReadOnlySpan<byte> data)
    {
        ref byte start = ref MemoryMarshal.GetReference(data);
        int length = data.Length;
        int offset = 0;
        for (; offset <= length - 8; offset += 8)
        {
            state = ArmCrc32.Arm64.ComputeCrc32C(state, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, offset)));
        }
        for (; offset < length; offset++)
        {
            state = ArmCrc32.ComputeCrc32C(state, Unsafe.Add(ref start, offset));
        }
        return state;
    }

    private static uint UpdateSoftware(uint state, ReadOnlySpan<byte> data)
    {
        uint[] table = Table;
        int offset = 0;
        for (; offset <= data.Length - 8; offset += 8)
        {
            uint low = state ^ BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(offset, 4));
            uint high = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(offset + 4, 4));
            state = table[(7 * 256) + (low & 0xFF)] ^ table[(6 * 256) + ((low >> 8) & 0xFF)]
                  ^ table[(5 * 256) + ((low >> 16) & 0xFF)] ^ table[(4 * 256) + (low >> 24)]
                  ^ table[(3 * 256) + (high & 0xFF)] ^ table[(2 * 256) + ((high >> 8) & 0xFF)]
                  ^ table[256 + ((high >> 16) & 0xFF)] ^ table[high >> 24];
        }
        for (; offset < data.Length; offset++)
        {
            state = table[(state ^ data[offset]) & 0xFF] ^ (state >> 8);
        }
        return state;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            uint entry = i;
            for (int bit = 0; bit < 8; bit++)
            {
                entry = (entry & 1) != 0 ? (entry >> 1) ^ ReflectedPolynomial : entry >> 1;
            }
            table[i] = entry;
        }
        for (int slice = 1; slice < 8; slice++)
        {
            for (int i = 0; i < 256; i++)
            {
                uint previous = table[((slice - 1) * 256) + i];
                table[(slice * 256) + i] = table[previous & 0xFF] ^ (previous >> 8);
            }
        }
        return table;
    }
}
