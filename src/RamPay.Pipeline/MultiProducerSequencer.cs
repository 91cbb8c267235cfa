using System.Numerics;

namespace RamPay.Pipeline;

/// <summary>
/// For any number of producer threads: a slot is claimed by compare-and-set on the cursor, so the cursor
/// says what is claimed, not what is published. Each slot has an availability flag, the lap number of the
/// sequence last published there, so a consumer never reads a slot that a slower producer has not finished,
/// even when producers publish out of order.
/// </summary>
public sealed class MultiProducerSequencer : Sequencer
{
    private readonly Sequence _gatingCache = new();
    private readonly int[] _availableLap;
    private readonly int _indexMask;
    private readonly int _lapShift;

    public MultiProducerSequencer(int bufferSize, IWaitStrategy waitStrategy)
        : base(bufferSize, waitStrategy)
    {
        _availableLap = new int[bufferSize];
        // Lap -1: nothing published yet, not even sequence 0 (lap 0).
        Array.Fill(_availableLap, -1);
        _indexMask = bufferSize - 1;
        _lapShift = BitOperations.Log2((uint)bufferSize);
    }

    public override long Next(int n)
    {
        RequireValidCount(n);
        while (true)
        {
            long current = _cursor.Value;
            long next = current + n;
            long wrapPoint = next - BufferSize;
            if (wrapPoint > _gatingCache.Value)
            {
                // Another producer may claim meanwhile; the loop re-reads the cursor either way.
                _gatingCache.SetValue(WaitForCapacity(wrapPoint, current));
            }
            else if (_cursor.CompareAndSet(current, next))
            {
                return next;
            }
        }
    }

    public override bool TryNext(int n, out long highest)
    {
        RequireValidCount(n);
        while (true)
        {
            long current = _cursor.Value;
            long next = current + n;
            long wrapPoint = next - BufferSize;
            if (wrapPoint > _gatingCache.Value)
            {
                long minimum = MinimumGatingSequence(current);
                _gatingCache.SetValue(minimum);
                if (wrapPoint > minimum)
                {
                    highest = Sequence.InitialValue;
                    return false;
                }
            }
            else if (_cursor.CompareAndSet(current, next))
            {
                highest = next;
                return true;
            }
        }
    }

    public override void Publish(long sequence)
    {
        SetAvailable(sequence);
        WaitStrategy.SignalAllWhenBlocking();
    }

    public override void Publish(long lo, long hi)
    {
        for (long sequence = lo; sequence <= hi; sequence++)
        {
            SetAvailable(sequence);
        }
        WaitStrategy.SignalAllWhenBlocking();
    }

    public override bool IsAvailable(long sequence) =>
        Volatile.Read(ref _availableLap[(int)sequence & _indexMask]) == Lap(sequence);

    public override long GetHighestPublishedSequence(long lowerBound, long availableSequence)
    {
        for (long sequence = lowerBound; sequence <= availableSequence; sequence++)
        {
            if (!IsAvailable(sequence))
            {
                return sequence - 1;
            }
        }
        return availableSequence;
    }

    /// <summary>
    /// Reads only the flags, never the cursor: the cursor's cache line is what the producers fight over with
    /// compare-and-set, and a consumer polling it too makes every claim slower (measured: about half the
    /// throughput with three producers on two cores). One lap ahead is as far as a flag can be trusted and as
    /// far as it needs to go: the caller has not finished <paramref name="lowerBound"/>, so no producer can
    /// have claimed <paramref name="lowerBound"/> + BufferSize yet.
    /// </summary>
    public override long HighestPublishedFrom(long lowerBound) =>
        GetHighestPublishedSequence(lowerBound, lowerBound + BufferSize - 1);

    public override long RemainingCapacity()
    {
        long produced = _cursor.Value;
        return BufferSize - (produced - MinimumGatingSequence(produced));
    }

    /// <summary>Release write: the slot's contents are visible before its flag says it is published.</summary>
    private void SetAvailable(long sequence) =>
        Volatile.Write(ref _availableLap[(int)sequence & _indexMask], Lap(sequence));

    /// <summary>
    /// Truncating to int is harmless: a slot only ever holds the flag of the current lap or the one before,
    /// and those differ after truncation too.
    /// </summary>
    private int Lap(long sequence) => (int)(sequence >> _lapShift);
}
