namespace RamPay.Pipeline.Tests;

public class PipelineTests
{
    /// <summary>
    /// The shape of the engine: a journaler and the business logic in parallel, output after both. A and B
    /// mark each sequence they finish (and stall now and then, so they drift apart); C fails the stage if it
    /// ever sees a sequence one of them has not marked, or sequences out of order.
    /// </summary>
    [Theory]
    [InlineData(ProducerType.Single, nameof(SpinThenBlockWaitStrategy))]
    [InlineData(ProducerType.Multi, nameof(SpinThenBlockWaitStrategy))]
    [InlineData(ProducerType.Single, nameof(BlockingWaitStrategy))]
    [InlineData(ProducerType.Multi, nameof(SpinThenYieldWaitStrategy))]
    public void Output_sees_a_slot_only_after_both_parallel_stages_finished_it(ProducerType producerType, string strategy)
    {
        const int count = 100_000;
        var pipeline = new Pipeline<long>(64, producerType, TestSupport.CreateStrategy(strategy), maxBatchSize: 16);
        int[] finishedByA = new int[count];
        int[] finishedByB = new int[count];
        long nextForC = 0;
        BatchEventProcessor<long> a = pipeline.HandleWith(Marker(finishedByA, stallEvery: 7), "journaler");
        BatchEventProcessor<long> b = pipeline.HandleWith(Marker(finishedByB, stallEvery: 11), "logic");
        pipeline.After(a, b).HandleWith(new DelegateHandler<long>((ring, first, last) =>
        {
            for (long sequence = first; sequence <= last; sequence++)
            {
                Assert.Equal(nextForC, sequence);
                Assert.Equal(sequence * 2, ring[sequence]);
                Assert.Equal(1, Volatile.Read(ref finishedByA[sequence]));
                Assert.Equal(1, Volatile.Read(ref finishedByB[sequence]));
                nextForC++;
            }
        }), "output");
        pipeline.Start();

        Action produce = () =>
        {
            for (long i = 0; i < count; i++)
            {
                long sequence = pipeline.Sequencer.Next();
                pipeline.Ring[sequence] = sequence * 2;
                pipeline.Sequencer.Publish(sequence);
            }
        };
        TestSupport.RunAll(produce);
        pipeline.Shutdown(TestSupport.Timeout);

        Assert.Null(pipeline.Fault);
        Assert.Equal(count, nextForC);
        Assert.All(finishedByA, mark => Assert.Equal(1, mark));
        Assert.All(finishedByB, mark => Assert.Equal(1, mark));
    }

    private static DelegateHandler<long> Marker(int[] finished, int stallEvery) => new((_, first, last) =>
    {
        for (long sequence = first; sequence <= last; sequence++)
        {
            Assert.Equal(0, finished[sequence]);
            Volatile.Write(ref finished[sequence], 1);
        }
        if (last % stallEvery == 0)
        {
            Thread.Yield();
        }
    });

    [Fact]
    public void Producers_are_gated_on_the_last_stage_not_the_first()
    {
        using var release = new ManualResetEventSlim();
        var pipeline = new Pipeline<long>(8, ProducerType.Multi, new SpinThenBlockWaitStrategy());
        BatchEventProcessor<long> a = pipeline.HandleWith(new DelegateHandler<long>((_, _, _) => { }));
        BatchEventProcessor<long> b = pipeline.HandleWith(new DelegateHandler<long>((_, _, _) => { }));
        pipeline.After(a, b).HandleWith(new DelegateHandler<long>((_, _, _) => Assert.True(release.Wait(TestSupport.Timeout))));
        pipeline.Start();

        for (int i = 0; i < 8; i++)
        {
            Assert.True(pipeline.Sequencer.TryNext(1, out long sequence));
            pipeline.Sequencer.Publish(sequence);
        }
        Assert.True(SpinWait.SpinUntil(() => a.Sequence.Value == 7 && b.Sequence.Value == 7, TestSupport.Timeout));
        Assert.False(pipeline.Sequencer.TryNext(1, out _));
        Assert.Equal(0, pipeline.Sequencer.RemainingCapacity());

        release.Set();
        Assert.True(SpinWait.SpinUntil(() => pipeline.Sequencer.TryNext(1, out _), TestSupport.Timeout));
        pipeline.Sequencer.Publish(8);
        pipeline.Shutdown(TestSupport.Timeout);
    }

    [Fact]
    public void Shutdown_drains_everything_published_before_halting()
    {
        const int count = 1_000;
        var pipeline = new Pipeline<long>(1024, ProducerType.Single, new BlockingWaitStrategy(), maxBatchSize: 10);
        long handled = 0;
        var slow = new DelegateHandler<long>((_, first, last) =>
        {
            Thread.Sleep(1);
            handled += last - first + 1;
        });
        pipeline.HandleWith(slow);
        pipeline.Start();
        TestSupport.ClaimAndPublish(pipeline.Sequencer, count);

        pipeline.Shutdown(TestSupport.Timeout);

        Assert.Equal(count, handled);
        Assert.Equal(1, slow.ShutdownCount);
        Assert.All(pipeline.Stages, stage => Assert.False(stage.IsRunning));
    }

    [Fact]
    public void A_failed_stage_is_reported_by_Fault_and_by_Shutdown()
    {
        var failure = new InvalidOperationException("broken invariant");
        var pipeline = new Pipeline<long>(16, ProducerType.Single, new SpinThenBlockWaitStrategy());
        BatchEventProcessor<long> first = pipeline.HandleWith(new DelegateHandler<long>((_, _, _) => throw failure));
        pipeline.After(first).HandleWith(new DelegateHandler<long>((_, _, _) => Assert.Fail("Ran after a failed stage.")));
        pipeline.Start();
        pipeline.ThrowIfFaulted();
        TestSupport.ClaimAndPublish(pipeline.Sequencer, 3);

        Assert.True(first.Join(TestSupport.Timeout));
        Assert.Same(failure, pipeline.Fault);
        Assert.Same(failure, Assert.Throws<AggregateException>(pipeline.ThrowIfFaulted).InnerException);
        AggregateException thrown = Assert.Throws<AggregateException>(() => pipeline.Shutdown(TestSupport.Timeout));
        Assert.Same(failure, Assert.Single(thrown.InnerExceptions));
    }

    [Fact]
    public void Stages_can_only_be_wired_before_start_and_within_the_pipeline()
    {
        var pipeline = new Pipeline<long>(16, ProducerType.Single, new BlockingWaitStrategy());
        var other = new Pipeline<long>(16, ProducerType.Single, new BlockingWaitStrategy());
        var handler = new DelegateHandler<long>((_, _, _) => { });
        BatchEventProcessor<long> foreign = other.HandleWith(handler);
        Assert.Throws<ArgumentException>(() => pipeline.After(foreign));
        Assert.Throws<ArgumentException>(() => pipeline.After());

        pipeline.HandleWith(handler);
        pipeline.Start();
        Assert.Throws<InvalidOperationException>(() => pipeline.HandleWith(handler));
        Assert.Throws<InvalidOperationException>(pipeline.Start);
        pipeline.Shutdown(TestSupport.Timeout);
    }

    [Fact]
    public void Ring_size_must_be_a_power_of_two()
    {
        Assert.Throws<ArgumentException>(() => new Pipeline<long>(100, ProducerType.Multi, new BlockingWaitStrategy()));
    }
}
