using System.Diagnostics;

namespace RamPay.Pipeline;

public enum ProducerType
{
    /// <summary>Exactly one thread claims and publishes: <see cref="SingleProducerSequencer"/>.</summary>
    Single,

    /// <summary>Any number of threads claim and publish: <see cref="MultiProducerSequencer"/>.</summary>
    Multi,
}

/// <summary>
/// Wires a ring, its sequencer and the stages that consume it. Stages added with <see cref="HandleWith"/>
/// consume published slots in parallel; a stage added with <c>After(a, b).HandleWith(c)</c> sees a slot
/// only once both a and b have finished it. Producers are gated on the last stages (those no other stage
/// waits on), so a full ring holds producers back instead of overwriting unfinished slots.
/// </summary>
public sealed class Pipeline<T> where T : struct
{
    public const int DefaultMaxBatchSize = 256;
    public static readonly TimeSpan DefaultShutdownTimeout = TimeSpan.FromSeconds(30);

    private readonly List<BatchEventProcessor<T>> _stages = [];
    private readonly HashSet<BatchEventProcessor<T>> _waitedOn = [];
    private readonly int _maxBatchSize;
    private bool _started;

    public Pipeline(int ringSize, ProducerType producerType, IWaitStrategy waitStrategy, int maxBatchSize = DefaultMaxBatchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchSize, 1);
        Ring = new RingBuffer<T>(ringSize);
        Sequencer = producerType switch
        {
            ProducerType.Single => new SingleProducerSequencer(ringSize, waitStrategy),
            ProducerType.Multi => new MultiProducerSequencer(ringSize, waitStrategy),
            _ => throw new ArgumentOutOfRangeException(nameof(producerType), producerType, null),
        };
        _maxBatchSize = maxBatchSize;
    }

    public RingBuffer<T> Ring { get; }

    public ISequencer Sequencer { get; }

    public IReadOnlyList<BatchEventProcessor<T>> Stages => _stages;

    /// <summary>The first stage failure, if any stage's handler threw.</summary>
    public Exception? Fault
    {
        get
        {
            foreach (BatchEventProcessor<T> stage in _stages)
            {
                if (stage.Fault is { } fault)
                {
                    return fault;
                }
            }
            return null;
        }
    }

    /// <summary>
    /// Throws <see cref="AggregateException"/> with each failed stage's exception, if any stage failed. Cheap
    /// enough for a producer to call before each claim: a failed stage never frees its slots again, so
    /// producers would otherwise wait on a full ring forever.
    /// </summary>
    public void ThrowIfFaulted()
    {
        if (Fault is not null)
        {
            throw new AggregateException("A pipeline stage failed.", _stages.Select(stage => stage.Fault).OfType<Exception>());
        }
    }

    /// <summary>Adds a stage that consumes published slots, in parallel with the other such stages.</summary>
    public BatchEventProcessor<T> HandleWith(IBatchHandler<T> handler, string? name = null) => AddStage(handler, name, []);

    /// <summary>Starts describing a stage that sees a slot only after every one of <paramref name="upstream"/> finished it.</summary>
    public Dependents After(params BatchEventProcessor<T>[] upstream)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        if (upstream.Length == 0 || upstream.Any(stage => !_stages.Contains(stage)))
        {
            throw new ArgumentException("Name at least one stage, each added to this pipeline.", nameof(upstream));
        }
        return new Dependents(this, upstream);
    }

    public void Start()
    {
        RequireNotStarted();
        _started = true;
        Sequencer.AddGatingSequences([.. _stages.Where(stage => !_waitedOn.Contains(stage)).Select(stage => stage.Sequence)]);
        foreach (BatchEventProcessor<T> stage in _stages)
        {
            stage.Start();
        }
    }

    /// <summary><see cref="Shutdown(TimeSpan)"/> with <see cref="DefaultShutdownTimeout"/>.</summary>
    public void Shutdown() => Shutdown(DefaultShutdownTimeout);

    /// <summary>
    /// Stop the producers first. Waits until every stage has finished every claimed slot (so a claimed but
    /// never published slot makes this time out), then halts the stages and waits for their threads.
    /// Throws <see cref="TimeoutException"/> if that takes longer than <paramref name="timeout"/>, and
    /// <see cref="AggregateException"/> with each stage's failure if any stage failed.
    /// </summary>
    public void Shutdown(TimeSpan timeout)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        bool drained = WaitUntilDrained(deadline);
        foreach (BatchEventProcessor<T> stage in _stages)
        {
            stage.Halt();
        }
        bool joined = _stages.All(stage => stage.Join(Remaining(deadline)));

        ThrowIfFaulted();
        if (!drained || !joined)
        {
            throw new TimeoutException($"The pipeline did not {(drained ? "stop" : "drain")} within {timeout}.");
        }
    }

    private bool WaitUntilDrained(long deadline)
    {
        long published = Sequencer.Cursor;
        var spinner = new SpinWait();
        while (_stages.Any(stage => stage.Sequence.Value < published))
        {
            if (Fault is not null || Stopwatch.GetTimestamp() > deadline)
            {
                return false;
            }
            spinner.SpinOnce();
        }
        return true;
    }

    private static TimeSpan Remaining(long deadline) =>
        TimeSpan.FromSeconds(Math.Max(0, deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);

    private BatchEventProcessor<T> AddStage(IBatchHandler<T> handler, string? name, BatchEventProcessor<T>[] upstream)
    {
        RequireNotStarted();
        var barrier = new SequenceBarrier(Sequencer, [.. upstream.Select(stage => stage.Sequence)]);
        var stage = new BatchEventProcessor<T>(Ring, barrier, handler, _maxBatchSize, name ?? $"pipeline-stage-{_stages.Count}");
        _stages.Add(stage);
        _waitedOn.UnionWith(upstream);
        return stage;
    }

    private void RequireNotStarted()
    {
        if (_started)
        {
            throw new InvalidOperationException("Stages can only be added, and the pipeline started, once, before it runs.");
        }
    }

    /// <summary>The stages a new stage will wait on; finish with <see cref="HandleWith"/>.</summary>
    public readonly struct Dependents
    {
        private readonly Pipeline<T> _pipeline;
        private readonly BatchEventProcessor<T>[] _upstream;

        internal Dependents(Pipeline<T> pipeline, BatchEventProcessor<T>[] upstream)
        {
            _pipeline = pipeline;
            _upstream = [.. upstream];
        }

        public BatchEventProcessor<T> HandleWith(IBatchHandler<T> handler, string? name = null) =>
            _pipeline.AddStage(handler, name, _upstream);
    }
}
