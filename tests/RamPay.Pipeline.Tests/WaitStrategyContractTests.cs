namespace RamPay.Pipeline.Tests;

/// <summary>The contract every <see cref="IWaitStrategy"/> keeps; each strategy runs it through a subclass.</summary>
public abstract class WaitStrategyContractTests
{
    protected abstract IWaitStrategy Create();

    private (ISequencer Sequencer, SequenceBarrier Barrier) CreateBarrier(params Sequence[] dependents)
    {
        var sequencer = new MultiProducerSequencer(16, Create());
        return (sequencer, new SequenceBarrier(sequencer, dependents));
    }

    private static BackgroundCall<long> WaitInBackground(SequenceBarrier barrier, long sequence) =>
        new(() => barrier.WaitFor(sequence));

    [Fact]
    public void Returns_at_once_with_everything_already_published()
    {
        (ISequencer sequencer, SequenceBarrier barrier) = CreateBarrier();
        TestSupport.ClaimAndPublish(sequencer, 5);
        Assert.Equal(4, barrier.WaitFor(2));
    }

    [Fact]
    public void A_waiter_wakes_when_its_sequence_is_published()
    {
        (ISequencer sequencer, SequenceBarrier barrier) = CreateBarrier();
        TestSupport.ClaimAndPublish(sequencer, 2);
        BackgroundCall<long> waiter = WaitInBackground(barrier, 3);
        long claimed = sequencer.Next(2);
        sequencer.Publish(claimed - 1);
        Assert.False(waiter.Finished(TestSupport.StaysBlocked), "Returned before its sequence was published.");

        sequencer.Publish(claimed);
        Assert.Equal(3, waiter.Result);
    }

    [Fact]
    public void A_waiter_on_other_stages_wakes_only_when_they_finish_the_sequence()
    {
        var upstream = new Sequence();
        (ISequencer sequencer, SequenceBarrier barrier) = CreateBarrier(upstream);
        TestSupport.ClaimAndPublish(sequencer, 10);
        BackgroundCall<long> waiter = WaitInBackground(barrier, 5);
        upstream.SetValue(4);
        sequencer.WaitStrategy.SignalAllWhenBlocking();
        Assert.False(waiter.Finished(TestSupport.StaysBlocked), "Returned before the upstream stage finished the sequence.");

        upstream.SetValue(7);
        sequencer.WaitStrategy.SignalAllWhenBlocking();
        Assert.Equal(7, waiter.Result);
    }

    [Fact]
    public void Alert_wakes_a_waiter_with_AlertException_until_cleared()
    {
        (ISequencer sequencer, SequenceBarrier barrier) = CreateBarrier();
        BackgroundCall<long> waiter = WaitInBackground(barrier, 0);
        Assert.False(waiter.Finished(TestSupport.StaysBlocked));

        barrier.Alert();
        Assert.IsType<AlertException>(waiter.Error);
        Assert.True(barrier.IsAlerted);
        Assert.Throws<AlertException>(() => barrier.WaitFor(0));

        barrier.ClearAlert();
        TestSupport.ClaimAndPublish(sequencer, 1);
        Assert.Equal(0, barrier.WaitFor(0));
    }

    [Fact]
    public void Many_waiters_and_publishes_lose_no_wake_up()
    {
        const int count = 5_000;
        var sequencer = new MultiProducerSequencer(16, Create());
        Action[] consumers = [.. Enumerable.Range(0, 2).Select(_ =>
        {
            // Each consumer gates the producer like a stage would, so no slot is reused before it is seen and
            // the producer, too, waits (and blocks) whenever the small ring is full.
            var consumed = new Sequence();
            sequencer.AddGatingSequences(consumed);
            var barrier = new SequenceBarrier(sequencer);
            return (Action)(() =>
            {
                while (consumed.Value < count - 1)
                {
                    consumed.SetValue(barrier.WaitFor(consumed.Value + 1));
                    sequencer.WaitStrategy.SignalAllWhenBlocking();
                }
            });
        })];
        Action produce = () =>
        {
            for (int i = 0; i < count; i++)
            {
                // Paced so the consumers often get as far as blocking, which is where wake-ups get lost.
                Thread.Yield();
                TestSupport.ClaimAndPublish(sequencer, 1);
            }
        };
        TestSupport.RunAll([.. consumers, produce]);
    }
}

public class BlockingWaitStrategyTests : WaitStrategyContractTests
{
    protected override IWaitStrategy Create() => new BlockingWaitStrategy();
}

public class SpinThenYieldWaitStrategyTests : WaitStrategyContractTests
{
    protected override IWaitStrategy Create() => new SpinThenYieldWaitStrategy();

    [Fact]
    public void Spin_count_must_not_be_negative()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SpinThenYieldWaitStrategy(-1));
    }
}

public class SpinThenBlockWaitStrategyTests : WaitStrategyContractTests
{
    protected override IWaitStrategy Create() => new SpinThenBlockWaitStrategy();

    [Fact]
    public void Spin_and_yield_counts_must_not_be_negative()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SpinThenBlockWaitStrategy(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SpinThenBlockWaitStrategy(yieldIterations: -1));
    }
}
