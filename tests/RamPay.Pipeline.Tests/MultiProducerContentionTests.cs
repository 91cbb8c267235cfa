namespace RamPay.Pipeline.Tests;

/// <summary>
/// Four producers race through a ring small enough to wrap thousands of times. The consumer checks that it
/// sees every sequence once, in order, and each producer's values in the order that producer wrote them;
/// it then blanks the slot, so a slot read before it was (re)written, or overwritten before it was read,
/// shows up as a blank or as a gap in some producer's values.
/// </summary>
public class MultiProducerContentionTests
{
    private const int Producers = 4;
    private const int ClaimsPerProducer = 250_000;
    private const int Blank = -1;

    private struct Slot
    {
        public int Producer;
        public long Value;
    }

    [Theory]
    [InlineData(64, false, nameof(SpinThenBlockWaitStrategy))]
    [InlineData(64, true, nameof(SpinThenBlockWaitStrategy))]
    [InlineData(1024, false, nameof(BlockingWaitStrategy))]
    [InlineData(1024, true, nameof(SpinThenYieldWaitStrategy))]
    public void Every_slot_is_seen_once_and_each_producers_values_in_order(int ringSize, bool batched, string strategy)
    {
        var pipeline = new Pipeline<Slot>(ringSize, ProducerType.Multi, TestSupport.CreateStrategy(strategy), maxBatchSize: 100);
        for (long sequence = 0; sequence < ringSize; sequence++)
        {
            pipeline.Ring[sequence].Producer = Blank;
        }
        long[] nextValue = new long[Producers];
        long nextSequence = 0;
        pipeline.HandleWith(new DelegateHandler<Slot>((ring, first, last) =>
        {
            Assert.Equal(nextSequence, first);
            Assert.InRange(last - first + 1, 1, 100);
            for (long sequence = first; sequence <= last; sequence++)
            {
                ref Slot slot = ref ring[sequence];
                Assert.InRange(slot.Producer, 0, Producers - 1);
                Assert.Equal(nextValue[slot.Producer], slot.Value);
                nextValue[slot.Producer]++;
                slot.Producer = Blank;
            }
            nextSequence = last + 1;
        }), "checker");
        pipeline.Start();

        TestSupport.RunAll([.. Enumerable.Range(0, Producers).Select(id => (Action)(() => Produce(pipeline, id, batched)))]);
        pipeline.Shutdown(TestSupport.Timeout);

        Assert.Equal((long)Producers * ClaimsPerProducer, nextSequence);
        Assert.All(nextValue, count => Assert.Equal(ClaimsPerProducer, count));
    }

    private static void Produce(Pipeline<Slot> pipeline, int producer, bool batched)
    {
        ISequencer sequencer = pipeline.Sequencer;
        long value = 0;
        int batchSize = 0;
        while (value < ClaimsPerProducer)
        {
            // Batches of 1 to 16 slots, varying so that producers' claims interleave unevenly.
            batchSize = batchSize % 16 + 1;
            int n = batched ? (int)Math.Min(batchSize, ClaimsPerProducer - value) : 1;
            long hi = n == 1 ? sequencer.Next() : sequencer.Next(n);
            long lo = hi - n + 1;
            for (long sequence = lo; sequence <= hi; sequence++)
            {
                ref Slot slot = ref pipeline.Ring[sequence];
                slot.Producer = producer;
                slot.Value = value++;
            }
            if (n == 1)
            {
                sequencer.Publish(hi);
            }
            else
            {
                sequencer.Publish(lo, hi);
            }
        }
    }
}
