namespace RamPay.Pipeline.Tests;

public class RingBufferTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(-4)]
    [InlineData(3)]
    [InlineData(1000)]
    public void Size_must_be_a_power_of_two(int size)
    {
        Assert.Throws<ArgumentException>(() => new RingBuffer<long>(size));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(1024)]
    public void Accepts_powers_of_two(int size)
    {
        Assert.Equal(size, new RingBuffer<long>(size).Size);
    }

    [Fact]
    public void Sequences_one_lap_apart_share_a_slot_written_in_place()
    {
        var ring = new RingBuffer<(long A, long B)>(8);
        ring[3].A = 7;
        ring[11].B = 9;
        Assert.Equal((7, 9), ring[3 + 8 * 1000]);
        Assert.Equal(default, ring[4]);
    }
}
