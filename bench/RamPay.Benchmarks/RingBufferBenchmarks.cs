using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using RamPay.Pipeline;

namespace RamPay.Benchmarks;

/// <summary>
/// The ring against System.Threading.Channels on the same work: producers pass a 16-byte struct, one
/// consumer sums it. Results are per item. The channels use their fastest usual loops (TryWrite, then
/// WaitToWriteAsync when full; WaitToReadAsync, then TryRead until empty) and the same capacity as the ring.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 2, iterationCount: 7)]
public class RingBufferBenchmarks
{
    /// <summary>Divisible by 3 producers and by the 16-slot claim, so every producer claims whole batches.</summary>
    private const int Items = 960_000;
    private const int Capacity = 1024;
    private const int ClaimBatch = 16;

    private Pipeline<Item>? _pipeline;
    private SumHandler? _sum;

    [Params(1, 3)]
    public int Producers { get; set; }

    public struct Item
    {
        public long A;
        public long B;
    }

    [GlobalSetup(Targets = [nameof(Ring_Next1), nameof(Ring_Next16)])]
    public void SetupSpinThenBlock() => StartRing(new SpinThenBlockWaitStrategy());

    [GlobalSetup(Target = nameof(Ring_Next1_SpinThenYield))]
    public void SetupSpinThenYield() => StartRing(new SpinThenYieldWaitStrategy());

    [GlobalCleanup]
    public void Cleanup() => _pipeline?.Shutdown();

    [Benchmark(Baseline = true, OperationsPerInvoke = Items)]
    public long Channel_Bounded() => RunChannel(Channel.CreateBounded<Item>(new BoundedChannelOptions(Capacity)
    {
        SingleReader = true,
        SingleWriter = Producers == 1,
        FullMode = BoundedChannelFullMode.Wait,
    }));

    [Benchmark(OperationsPerInvoke = Items)]
    public long Channel_Unbounded() => RunChannel(Channel.CreateUnbounded<Item>(new UnboundedChannelOptions
    {
        SingleReader = true,
        SingleWriter = Producers == 1,
    }));

    [Benchmark(OperationsPerInvoke = Items)]
    public long Ring_Next1() => RunRing(ProduceOneAtATime);

    [Benchmark(OperationsPerInvoke = Items)]
    public long Ring_Next16() => RunRing(ProduceInBatches);

    [Benchmark(OperationsPerInvoke = Items)]
    public long Ring_Next1_SpinThenYield() => RunRing(ProduceOneAtATime);

    private void StartRing(IWaitStrategy waitStrategy)
    {
        _pipeline = new Pipeline<Item>(Capacity, Producers == 1 ? ProducerType.Single : ProducerType.Multi, waitStrategy);
        _sum = new SumHandler();
        _pipeline.HandleWith(_sum, "sum");
        _pipeline.Start();
    }

    private long RunChannel(Channel<Item> channel)
    {
        Task<long> consumer = Task.Run(() => Consume(channel.Reader));
        Task[] producers = [.. Enumerable.Range(0, Producers).Select(_ => Task.Run(() => Produce(channel.Writer, Items / Producers)))];
        Task.WaitAll(producers);
        channel.Writer.Complete();
        return consumer.GetAwaiter().GetResult();
    }

    private static async Task Produce(ChannelWriter<Item> writer, int count)
    {
        for (int i = 0; i < count; i++)
        {
            var item = new Item { A = i, B = 1 };
            while (!writer.TryWrite(item))
            {
                await writer.WaitToWriteAsync();
            }
        }
    }

    private static async Task<long> Consume(ChannelReader<Item> reader)
    {
        long sum = 0;
        while (await reader.WaitToReadAsync())
        {
            while (reader.TryRead(out Item item))
            {
                sum += item.A + item.B;
            }
        }
        return sum;
    }

    /// <summary>The benchmark thread is producer 0; the others get their own threads, as a ring's producers would.</summary>
    private long RunRing(Action<Pipeline<Item>, int> produce)
    {
        Pipeline<Item> pipeline = _pipeline!;
        _sum!.Expect(pipeline.Sequencer.Cursor + Items);
        Thread[] others = [.. Enumerable.Range(1, Producers - 1).Select(_ => new Thread(() => produce(pipeline, Items / Producers)))];
        foreach (Thread thread in others)
        {
            thread.Start();
        }
        produce(pipeline, Items / Producers);
        foreach (Thread thread in others)
        {
            thread.Join();
        }
        _sum.Done.Wait();
        return _sum.Sum;
    }

    private static void ProduceOneAtATime(Pipeline<Item> pipeline, int count)
    {
        ISequencer sequencer = pipeline.Sequencer;
        RingBuffer<Item> ring = pipeline.Ring;
        for (int i = 0; i < count; i++)
        {
            long sequence = sequencer.Next();
            ref Item item = ref ring[sequence];
            item.A = i;
            item.B = 1;
            sequencer.Publish(sequence);
        }
    }

    private static void ProduceInBatches(Pipeline<Item> pipeline, int count)
    {
        ISequencer sequencer = pipeline.Sequencer;
        RingBuffer<Item> ring = pipeline.Ring;
        for (int i = 0; i < count; i += ClaimBatch)
        {
            long hi = sequencer.Next(ClaimBatch);
            long lo = hi - (ClaimBatch - 1);
            for (long sequence = lo; sequence <= hi; sequence++)
            {
                ref Item item = ref ring[sequence];
                item.A = i;
                item.B = 1;
            }
            sequencer.Publish(lo, hi);
        }
    }

    private sealed class SumHandler : IBatchHandler<Item>
    {
        private long _lastSequence;

        public long Sum { get; private set; }

        public ManualResetEventSlim Done { get; } = new();

        /// <summary>Called before the run's first publish, which makes the target visible to the consumer.</summary>
        public void Expect(long lastSequence)
        {
            Done.Reset();
            _lastSequence = lastSequence;
        }

        public void OnBatch(RingBuffer<Item> ring, long first, long last)
        {
            long sum = Sum;
            for (long sequence = first; sequence <= last; sequence++)
            {
                ref Item item = ref ring[sequence];
                sum += item.A + item.B;
            }
            Sum = sum;
            if (last == _lastSequence)
            {
                Done.Set();
            }
        }
    }
}
