namespace RamPay.Journal.Tests;

public class Crc32CTests
{
    [Fact]
    public void Check_value_of_123456789_is_E3069283()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        Assert.Equal(0xE3069283u, Crc32C.AppendSoftware(0, "123456789"u8));
    }

    [Fact]
    public void Empty_input_is_zero() => Assert.Equal(0u, Crc32C.Compute([]));

    [Fact]
    public void Hardware_equals_software_for_many_lengths_and_offsets()
    {
        var random = new Random(12345);
        var data = new byte[5000];
        random.NextBytes(data);
        for (int length = 0; length <= 300; length++)
        {
            for (int offset = 0; offset < 8; offset++)
            {
                ReadOnlySpan<byte> slice = data.AsSpan(offset, length);
                Assert.Equal(Crc32C.AppendSoftware(0, slice), Crc32C.Compute(slice));
            }
        }
        for (int trial = 0; trial < 50; trial++)
        {
            int length = random.Next(data.Length);
            uint seed = (uint)random.Next();
            Assert.Equal(Crc32C.AppendSoftware(seed, data.AsSpan(0, length)), Crc32C.Append(seed, data.AsSpan(0, length)));
        }
    }

    [Fact]
    public void Append_continues_a_crc_across_splits()
    {
        byte[] data = [.. Enumerable.Range(0, 1000).Select(i => (byte)(i * 7))];
        uint whole = Crc32C.Compute(data);
        for (int split = 0; split <= data.Length; split += 37)
        {
            Assert.Equal(whole, Crc32C.Append(Crc32C.Compute(data.AsSpan(0, split)), data.AsSpan(split)));
        }
    }
}
