namespace RamPay.Pipeline.Tests;

public class BatchEventProcessorTests
{
    private readonly SingleProducerSequencer _sequencer = new(1024, new SpinThenBlockWaitStrategy());
    private readonly RingBuffer<long> _ring = new(1024);

    private BatchEventProcessor<long> CreateProcessor(IBatchHandler<long> handler, int maxBatchSize = 64)
    {
        var processor = new BatchEventProcessor<long>(_ring, new SequenceBarrier(_sequencer), handler, maxBatchSize, "test-stage");
        _sequencer.AddGatingSequences(processor.Sequence);
        return processor;
    }

    private static void WaitUntil(Func<bool> condition) =>
        Assert.True(SpinWait.SpinUntil(condition, TestSupport.Timeout), "The condition did not come true in time.");

    [Fact]
    public void Batches_take_everything_available_up_to_the_maximum()
    {
        var batchSizes = new List<long>();
        BatchEventProcessor<long> processor = CreateProcessor(
            new DelegateHandler<long>((_, first, last) => batchSizes.Add(last - first + 1)), maxBatchSize: 7);
        TestSupport.ClaimAndPublish(_sequencer, 1000);

        processor.Start();
        WaitUntil(() => processor.Sequence.Value == 999);
        processor.Halt();
        Assert.True(processor.Join(TestSupport.Timeout));

        Assert.Equal(1000, batchSizes.Sum());
        Assert.All(batchSizes[..^1], size => Assert.Equal(7, size));
        Assert.Equal(1000 % 7, batchSizes[^1]);
    }

    [Fact]
    public void Runs_on_a_named_thread_and_calls_start_and_shutdown_once()
    {
        string? threadName = null;
        var handler = new DelegateHandler<long>((_, _, _) => threadName = Thread.CurrentThread.Name);
        BatchEventProcessor<long> processor = CreateProcessor(handler);
        Assert.False(processor.IsRunning);

        processor.Start();
        Assert.True(processor.IsRunning);
        Assert.Throws<InvalidOperationException>(processor.Start);
        TestSupport.ClaimAndPublish(_sequencer, 3);
        WaitUntil(() => processor.Sequence.Value == 2);
        processor.Halt();

        Assert.True(processor.Join(TestSupport.Timeout));
        Assert.False(processor.IsRunning);
        Assert.Null(processor.Fault);
        Assert.Equal("test-stage", threadName);
        Assert.Equal(1, handler.StartCount);
        Assert.Equal(1, handler.ShutdownCount);
    }

    [Fact]
    public void Halt_stops_after_the_batch_in_hand()
    {
        using var inBatch = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        BatchEventProcessor<long> processor = CreateProcessor(new DelegateHandler<long>((_, _, _) =>
        {
            inBatch.Set();
            Assert.True(release.Wait(TestSupport.Timeout));
        }));
        processor.Start();
        TestSupport.ClaimAndPublish(_sequencer, 5);
        Assert.True(inBatch.Wait(TestSupport.Timeout));

        processor.Halt();
        Assert.False(processor.Join(TestSupport.StaysBlocked), "Halt abandoned the batch in hand.");
        TestSupport.ClaimAndPublish(_sequencer, 5);
        release.Set();

        Assert.True(processor.Join(TestSupport.Timeout));
        Assert.Null(processor.Fault);
        Assert.InRange(processor.Sequence.Value, 0, 4);
    }

    [Fact]
    public void A_handler_exception_stops_the_stage_and_is_exposed_as_its_fault()
    {
        var failure = new InvalidOperationException("broken invariant");
        var handler = new DelegateHandler<long>((_, first, last) =>
        {
            if (first <= 5 && 5 <= last)
            {
                throw failure;
            }
        });
        BatchEventProcessor<long> processor = CreateProcessor(handler, maxBatchSize: 1);
        processor.Start();
        TestSupport.ClaimAndPublish(_sequencer, 10);

        Assert.True(processor.Join(TestSupport.Timeout));
        Assert.False(processor.IsRunning);
        Assert.Same(failure, processor.Fault);
        Assert.Equal(4, processor.Sequence.Value);
        Assert.Equal(1, handler.ShutdownCount);
    }

    [Fact]
    public void Halting_before_start_ends_the_thread_at_once()
    {
        var handler = new DelegateHandler<long>((_, _, _) => Assert.Fail("No batch was published."));
        BatchEventProcessor<long> processor = CreateProcessor(handler);
        processor.Halt();
        processor.Start();
        Assert.True(processor.Join(TestSupport.Timeout));
        Assert.Null(processor.Fault);
    }
}
