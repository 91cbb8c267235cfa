using System.Runtime.InteropServices;

namespace RamPay.Pipeline;

/// <summary>
/// For exactly one producer thread: claiming is plain arithmetic on fields only that thread touches, with no
/// atomic instruction; publishing is one release write of the cursor.
/// </summary>
public sealed class SingleProducerSequencer : Sequencer
{
    private ProducerState _producer = new() { Next = Sequence.InitialValue, CachedGating = Sequence.InitialValue };

    public SingleProducerSequencer(int bufferSize, IWaitStrategy waitStrategy)
        : base(bufferSize, waitStrategy)
    {
    }

    public override long Next(int n)
    {
        RequireValidCount(n);
        long current = _producer.Next;
        long next = current + n;
        long wrapPoint = next - BufferSize;
        // The cached minimum is re-read from the gating stages only when the claim would reach past it:
        // once per lap of the ring at most, while the consumers keep up.
        if (wrapPoint > _producer.CachedGating)
        {
            _producer.CachedGating = WaitForCapacity(wrapPoint, current);
        }
        _producer.Next = next;
        return next;
    }

    public override bool TryNext(int n, out long highest)
    {
        RequireValidCount(n);
        long current = _producer.Next;
        long next = current + n;
        long wrapPoint = next - BufferSize;
        if (wrapPoint > _producer.CachedGating)
        {
            long minimum = MinimumGatingSequence(current);
            _producer.CachedGating = minimum;
            if (wrapPoint > minimum)
            {
                highest = Sequence.InitialValue;
                return false;
            }
        }
        _producer.Next = next;
        highest = next;
        return true;
    }

    public override void Publish(long sequence)
    {
        _cursor.SetValue(sequence);
        WaitStrategy.SignalAllWhenBlocking();
    }

    /// <summary>Slots are claimed in order by one thread, so publishing the highest publishes the range.</summary>
    public override void Publish(long lo, long hi) => Publish(hi);

    public override bool IsAvailable(long sequence)
    {
        long cursor = _cursor.Value;
        return sequence <= cursor && sequence > cursor - BufferSize;
    }

    public override long GetHighestPublishedSequence(long lowerBound, long availableSequence) => availableSequence;

    public override long HighestPublishedFrom(long lowerBound) => _cursor.Value;

    public override long RemainingCapacity()
    {
        long produced = Volatile.Read(ref _producer.Next);
        return BufferSize - (produced - MinimumGatingSequence(produced));
    }

    /// <summary>
    /// The producer's private counters, padded so its writes to them never invalidate the line holding the
    /// fields consumers read (the cursor reference, the buffer size).
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 2 * Sequence.Padding + 2 * sizeof(long))]
    private struct ProducerState
    {
        /// <summary>The highest sequence claimed.</summary>
        [FieldOffset(Sequence.Padding)]
        public long Next;

        /// <summary>The gating stages' minimum when last read; they only move forward, so it is a safe lower bound.</summary>
        [FieldOffset(Sequence.Padding + sizeof(long))]
        public long CachedGating;
    }
}
