namespace RamPay.Pipeline.Tests;

/// <summary>The contract every <see cref="ISequencer"/> keeps; each implementation runs it through a subclass.</summary>
public abstract class SequencerContractTests
{
    protected abstract ISequencer Create(int bufferSize, IWaitStrategy waitStrategy);

    private ISequencer Create(int bufferSize) => Create(bufferSize, new BlockingWaitStrategy());

    [Theory]
    [InlineData(0)]
    [InlineData(6)]
    [InlineData(-8)]
    public void Buffer_size_must_be_a_power_of_two(int size)
    {
        Assert.Throws<ArgumentException>(() => Create(size));
    }

    [Fact]
    public void Claims_consecutive_sequences_starting_at_zero()
    {
        ISequencer sequencer = Create(16);
        Assert.Equal(-1, sequencer.Cursor);
        Assert.Equal(0, sequencer.Next());
        Assert.Equal(1, sequencer.Next());
        Assert.Equal(5, sequencer.Next(4));
        Assert.True(sequencer.TryNext(3, out long highest));
        Assert.Equal(8, highest);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(17)]
    public void Claim_count_must_fit_the_ring(int n)
    {
        ISequencer sequencer = Create(16);
        Assert.Throws<ArgumentOutOfRangeException>(() => sequencer.Next(n));
        Assert.Throws<ArgumentOutOfRangeException>(() => sequencer.TryNext(n, out _));
    }

    [Fact]
    public void A_slot_is_available_only_once_published()
    {
        ISequencer sequencer = Create(16);
        long sequence = sequencer.Next();
        Assert.False(sequencer.IsAvailable(sequence));
        sequencer.Publish(sequence);
        Assert.True(sequencer.IsAvailable(sequence));
        Assert.Equal(sequence, sequencer.Cursor);
        Assert.Equal(sequence, sequencer.GetHighestPublishedSequence(sequence, sequencer.Cursor));
    }

    [Fact]
    public void Publishing_a_range_makes_all_of_it_available()
    {
        ISequencer sequencer = Create(16);
        long hi = sequencer.Next(5);
        sequencer.Publish(hi - 4, hi);
        for (long sequence = 0; sequence <= hi; sequence++)
        {
            Assert.True(sequencer.IsAvailable(sequence));
        }
        Assert.False(sequencer.IsAvailable(hi + 1));
        Assert.Equal(hi, sequencer.GetHighestPublishedSequence(0, hi));
    }

    [Fact]
    public void Consumers_see_the_published_prefix_of_what_follows_their_position()
    {
        ISequencer sequencer = Create(8);
        long hi = sequencer.Next(3);
        Assert.True(sequencer.HighestPublishedFrom(0) < 0);
        sequencer.Publish(hi - 2, hi - 1);
        Assert.Equal(hi - 1, sequencer.HighestPublishedFrom(0));
        Assert.True(sequencer.HighestPublishedFrom(hi) < hi);
        sequencer.Publish(hi);
        Assert.Equal(hi, sequencer.HighestPublishedFrom(1));
    }

    [Fact]
    public void Without_gating_sequences_a_producer_is_never_held_back()
    {
        ISequencer sequencer = Create(4);
        TestSupport.ClaimAndPublish(sequencer, 100);
        Assert.Equal(99, sequencer.Cursor);
        Assert.Equal(4, sequencer.RemainingCapacity());
    }

    [Fact]
    public void A_full_ring_refuses_TryNext_and_blocks_Next_until_the_gating_stage_advances()
    {
        ISequencer sequencer = Create(4);
        var consumer = new Sequence();
        sequencer.AddGatingSequences(consumer);
        TestSupport.ClaimAndPublish(sequencer, 3);
        Assert.Equal(1, sequencer.RemainingCapacity());
        Assert.False(sequencer.TryNext(2, out _));
        TestSupport.ClaimAndPublish(sequencer, 1);

        Assert.Equal(0, sequencer.RemainingCapacity());
        Assert.False(sequencer.TryNext(1, out _));
        var blocked = new BackgroundCall<long>(sequencer.Next);
        Assert.False(blocked.Finished(TestSupport.StaysBlocked), "Next() claimed a slot the consumer has not finished.");

        Advance(sequencer, consumer, 0);
        Assert.Equal(4, blocked.Result);
        Assert.False(sequencer.TryNext(1, out _));
        Advance(sequencer, consumer, 2);
        Assert.Equal(2, sequencer.RemainingCapacity());
        Assert.True(sequencer.TryNext(2, out long highest));
        Assert.Equal(6, highest);
    }

    [Fact]
    public void The_slowest_gating_stage_holds_producers_back()
    {
        ISequencer sequencer = Create(4);
        var fast = new Sequence();
        var slow = new Sequence();
        sequencer.AddGatingSequences(fast, slow);
        TestSupport.ClaimAndPublish(sequencer, 4);
        Advance(sequencer, fast, 3);
        Assert.False(sequencer.TryNext(1, out _));
        Advance(sequencer, slow, 1);
        Assert.True(sequencer.TryNext(2, out long highest));
        Assert.Equal(5, highest);
        Assert.False(sequencer.TryNext(1, out _));
    }

    /// <summary>What a stage does when it finishes a batch: a producer may be blocked waiting for it.</summary>
    private static void Advance(ISequencer sequencer, Sequence stage, long value)
    {
        stage.SetValue(value);
        sequencer.WaitStrategy.SignalAllWhenBlocking();
    }

    /// <summary>
    /// A model check from a fixed seed: random claims (blocking or not) and consumer progress; TryNext must
    /// succeed exactly when the ring has room, and a claim never reaches a slot the consumer has not finished.
    /// </summary>
    [Theory]
    [InlineData(1, 1)]
    [InlineData(8, 2)]
    [InlineData(64, 3)]
    public void Claims_match_a_model_of_the_free_space(int size, int seed)
    {
        var random = new Random(seed);
        ISequencer sequencer = Create(size);
        var consumer = new Sequence();
        sequencer.AddGatingSequences(consumer);
        long claimed = -1;
        for (int step = 0; step < 10_000; step++)
        {
            int n = random.Next(1, size + 1);
            long free = size - (claimed - consumer.Value);
            Assert.Equal(free, sequencer.RemainingCapacity());
            if (n > free)
            {
                Assert.False(sequencer.TryNext(n, out _));
            }
            else
            {
                long highest = random.Next(2) == 0 ? sequencer.Next(n) : TryNextOrFail(sequencer, n);
                Assert.Equal(claimed + n, highest);
                Assert.True(highest - size <= consumer.Value);
                sequencer.Publish(claimed + 1, highest);
                claimed = highest;
            }
            Advance(sequencer, consumer, random.Next((int)consumer.Value, (int)claimed + 1));
        }
    }

    private static long TryNextOrFail(ISequencer sequencer, int n)
    {
        Assert.True(sequencer.TryNext(n, out long highest));
        return highest;
    }

    [Theory]
    [InlineData(nameof(BlockingWaitStrategy))]
    [InlineData(nameof(SpinThenYieldWaitStrategy))]
    [InlineData(nameof(SpinThenBlockWaitStrategy))]
    public void One_producer_through_a_small_ring_is_seen_in_order(string strategy)
    {
        const int count = 200_000;
        ISequencer sequencer = Create(64, TestSupport.CreateStrategy(strategy));
        var ring = new RingBuffer<long>(sequencer.BufferSize);
        long expected = 0;
        var handler = new DelegateHandler<long>((r, first, last) =>
        {
            for (long sequence = first; sequence <= last; sequence++)
            {
                Assert.Equal(expected, sequence);
                Assert.Equal(expected * 3, r[sequence]);
                expected++;
            }
        });
        var consumer = new BatchEventProcessor<long>(ring, new SequenceBarrier(sequencer), handler, 32, "consumer");
        sequencer.AddGatingSequences(consumer.Sequence);
        consumer.Start();

        TestSupport.RunAll(() =>
        {
            for (long i = 0; i < count; i++)
            {
                long sequence = sequencer.Next();
                ring[sequence] = i * 3;
                sequencer.Publish(sequence);
            }
        });
        SpinWait.SpinUntil(() => consumer.Sequence.Value == count - 1 || consumer.Fault is not null, TestSupport.Timeout);
        consumer.Halt();
        Assert.True(consumer.Join(TestSupport.Timeout));
        Assert.Null(consumer.Fault);
        Assert.Equal(count, expected);
    }
}

public class SingleProducerSequencerTests : SequencerContractTests
{
    protected override ISequencer Create(int bufferSize, IWaitStrategy waitStrategy) =>
        new SingleProducerSequencer(bufferSize, waitStrategy);
}

public class MultiProducerSequencerTests : SequencerContractTests
{
    protected override ISequencer Create(int bufferSize, IWaitStrategy waitStrategy) =>
        new MultiProducerSequencer(bufferSize, waitStrategy);

    [Fact]
    public void Out_of_order_publishing_exposes_only_the_contiguous_prefix()
    {
        ISequencer sequencer = Create(8, new BlockingWaitStrategy());
        long first = sequencer.Next();
        long second = sequencer.Next();
        long third = sequencer.Next();
        sequencer.Publish(third);
        sequencer.Publish(first);

        Assert.Equal(2, sequencer.Cursor);
        Assert.False(sequencer.IsAvailable(second));
        Assert.Equal(first, sequencer.GetHighestPublishedSequence(0, sequencer.Cursor));
        var barrier = new SequenceBarrier(sequencer);
        Assert.Equal(first, barrier.HighestAvailable(0));
        Assert.Equal(first, barrier.HighestAvailable(1));

        sequencer.Publish(second);
        Assert.Equal(third, barrier.HighestAvailable(1));
    }

    [Fact]
    public void A_flag_from_the_previous_lap_does_not_count_as_published()
    {
        ISequencer sequencer = Create(4, new BlockingWaitStrategy());
        TestSupport.ClaimAndPublish(sequencer, 4);
        long nextLap = sequencer.Next();
        Assert.Equal(4, nextLap);
        Assert.False(sequencer.IsAvailable(nextLap));
        Assert.Equal(3, sequencer.GetHighestPublishedSequence(4, nextLap));
    }
}
