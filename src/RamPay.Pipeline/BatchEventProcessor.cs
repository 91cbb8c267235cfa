namespace RamPay.Pipeline;

/// <summary>
/// Runs one <see cref="IBatchHandler{T}"/> on its own dedicated thread: waits on its barrier, hands the
/// handler every available slot in batches of at most <c>maxBatchSize</c>, then advances its
/// <see cref="Sequence"/>, which releases the slots to the stages after it and, at the end, to producers.
/// </summary>
public sealed class BatchEventProcessor<T> where T : struct
{
    private readonly RingBuffer<T> _ring;
    private readonly SequenceBarrier _barrier;
    private readonly IBatchHandler<T> _handler;
    private readonly int _maxBatchSize;
    private readonly Thread _thread;
    private int _started;
    private volatile bool _running;
    private volatile Exception? _fault;

    public BatchEventProcessor(RingBuffer<T> ring, SequenceBarrier barrier, IBatchHandler<T> handler, int maxBatchSize, string name)
    {
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(barrier);
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchSize, 1);
        ArgumentException.ThrowIfNullOrEmpty(name);
        _ring = ring;
        _barrier = barrier;
        _handler = handler;
        _maxBatchSize = maxBatchSize;
        // Background: a pipeline someone forgot to shut down must not keep the process alive.
        _thread = new Thread(Run) { Name = name, IsBackground = true };
    }

    /// <summary>The last sequence this stage finished.</summary>
    public Sequence Sequence { get; } = new();

    public SequenceBarrier Barrier => _barrier;

    public string Name => _thread.Name!;

    public int MaxBatchSize => _maxBatchSize;

    /// <summary>True from <see cref="Start"/> until the thread has left its loop, by halt or by failure.</summary>
    public bool IsRunning => _running;

    /// <summary>What the handler threw, if it did; the stage stopped there and its sequence stays before that batch.</summary>
    public Exception? Fault => _fault;

    public void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException($"Stage '{Name}' was already started.");
        }
        _running = true;
        _thread.Start();
    }

    /// <summary>Asks the stage to stop after the batch in hand; returns at once (see <see cref="Join"/>).</summary>
    public void Halt() => _barrier.Alert();

    /// <summary>Waits for the thread to end; true if it did (or was never started) within <paramref name="timeout"/>.</summary>
    public bool Join(TimeSpan timeout) => Volatile.Read(ref _started) == 0 || _thread.Join(timeout);

    private void Run()
    {
        try
        {
            _handler.OnStart();
            long next = Sequence.Value + 1;
            while (true)
            {
                long available = _barrier.WaitFor(next);
                long last = Math.Min(available, next + _maxBatchSize - 1);
                _handler.OnBatch(_ring, next, last);
                Sequence.SetValue(last);
                _barrier.WaitStrategy.SignalAllWhenBlocking();
                next = last + 1;
            }
        }
        catch (AlertException)
        {
            // Halted: the batch in hand, if any, was finished before the barrier threw.
        }
        catch (Exception e)
        {
            _fault = e;
            // This stage will never free a slot again: release producers waiting for room rather than strand them.
            _barrier.Sequencer.AlertProducers();
        }
        finally
        {
            try
            {
                _handler.OnShutdown();
            }
            catch (Exception e)
            {
                _fault ??= e;
            }
            _running = false;
        }
    }
}
