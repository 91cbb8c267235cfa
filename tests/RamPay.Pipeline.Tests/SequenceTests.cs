namespace RamPay.Pipeline.Tests;

public class SequenceTests
{
    [Fact]
    public void Starts_at_minus_one()
    {
        Assert.Equal(-1, new Sequence().Value);
        Assert.Equal(41, new Sequence(41).Value);
    }

    /// <summary>Object header and method table (16 bytes), 56 bytes of padding, the value, 56 more.</summary>
    [Fact]
    public void Each_instance_carries_its_padding()
    {
        var keep = new Sequence[100];
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < keep.Length; i++)
        {
            keep[i] = new Sequence();
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(16 + 56 + 8 + 56, allocated / keep.Length);
    }

    [Fact]
    public void Updates()
    {
        var sequence = new Sequence();
        sequence.SetValue(5);
        Assert.Equal(5, sequence.Value);
        Assert.False(sequence.CompareAndSet(4, 9));
        Assert.Equal(5, sequence.Value);
        Assert.True(sequence.CompareAndSet(5, 9));
        Assert.Equal(10, sequence.IncrementAndGet());
        Assert.Equal(13, sequence.AddAndGet(3));
        Assert.Equal(13, sequence.Value);
    }

    [Fact]
    public void Concurrent_increments_are_not_lost()
    {
        var sequence = new Sequence(0);
        Action increment = () =>
        {
            for (int i = 0; i < 100_000; i++)
            {
                sequence.IncrementAndGet();
            }
        };
        TestSupport.RunAll(increment, increment, increment);
        Assert.Equal(300_000, sequence.Value);
    }
}
