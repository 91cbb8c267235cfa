using System.Runtime.CompilerServices;

namespace RamPay.Pipeline;

/// <summary>What both sequencers share: the size, the cursor, the gating sequences and waiting for room.</summary>
public abstract class Sequencer : ISequencer
{
    private protected readonly Sequence _cursor = new();
    private readonly object _gatingLock = new();
    private Sequence[] _gatingSequences = [];

    /// <summary>Waits for the minimum of <see cref="_gatingSequences"/>; null while there are none.</summary>
    private SequenceBarrier? _gatingBarrier;
    private bool _producersAlerted;

    private protected Sequencer(int bufferSize, IWaitStrategy waitStrategy)
    {
        RingSize.Require(bufferSize, nameof(bufferSize));
        ArgumentNullException.ThrowIfNull(waitStrategy);
        BufferSize = bufferSize;
        WaitStrategy = waitStrategy;
    }

    public int BufferSize { get; }

    public IWaitStrategy WaitStrategy { get; }

    public long Cursor => _cursor.Value;

    public long Next() => Next(1);

    public abstract long Next(int n);

    public abstract bool TryNext(int n, out long highest);

    public abstract void Publish(long sequence);

    public abstract void Publish(long lo, long hi);

    public abstract bool IsAvailable(long sequence);

    public abstract long GetHighestPublishedSequence(long lowerBound, long availableSequence);

    public abstract long HighestPublishedFrom(long lowerBound);

    public abstract long RemainingCapacity();

    public void AddGatingSequences(params Sequence[] gatingSequences)
    {
        ArgumentNullException.ThrowIfNull(gatingSequences);
        // Copy on write: producers read the array and the barrier without a lock.
        lock (_gatingLock)
        {
            Sequence[] all = [.. _gatingSequences, .. gatingSequences];
            var barrier = new SequenceBarrier(this, all);
            if (_producersAlerted) barrier.Alert();
            Volatile.Write(ref _gatingBarrier, barrier);
            Volatile.Write(ref _gatingSequences, all);
        }
    }

    public void AlertProducers()
    {
        lock (_gatingLock)
        {
            _producersAlerted = true;
            Volatile.Read(ref _gatingBarrier)?.Alert();
        }
    }

    private protected long MinimumGatingSequence(long ceiling) =>
        Sequence.Minimum(Volatile.Read(ref _gatingSequences), ceiling);

    /// <summary>
    /// The rare path, kept out of line so the claim stays small enough to inline: waits until every gating
    /// stage has finished <paramref name="wrapPoint"/> (the slot about to be reused) and returns their minimum.
    /// Producers wait with the consumers' <see cref="WaitStrategy"/>, woken by the stages as they finish
    /// batches, so on a small machine a producer held back by a full ring sleeps instead of taking the core
    /// the stage it waits for needs.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private protected long WaitForCapacity(long wrapPoint, long ceiling)
    {
        SequenceBarrier? gating = Volatile.Read(ref _gatingBarrier);
        return gating is null ? ceiling : gating.WaitFor(wrapPoint);
    }

    private protected void RequireValidCount(int n)
    {
        // One unsigned compare checks 1 <= n <= BufferSize.
        if ((uint)(n - 1) >= (uint)BufferSize)
        {
            ThrowInvalidCount(n);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowInvalidCount(int n) =>
        throw new ArgumentOutOfRangeException(nameof(n), n, $"Must be between 1 and the buffer size {BufferSize}.");
}
