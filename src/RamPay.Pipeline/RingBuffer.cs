namespace RamPay.Pipeline;

/// <summary>
/// Pre-allocated struct slots indexed by sequence. Holds no positions itself: who may touch which slot is
/// decided by an <see cref="ISequencer"/> and the stages' <see cref="SequenceBarrier"/>s.
/// </summary>
public sealed class RingBuffer<T> where T : struct
{
    private readonly T[] _slots;
    private readonly int _mask;

    public RingBuffer(int size)
    {
        RingSize.Require(size, nameof(size));
        _slots = new T[size];
        _mask = size - 1;
    }

    public int Size => _slots.Length;

    /// <summary>The slot for <paramref name="sequence"/>, by reference so structs are written in place.</summary>
    public ref T this[long sequence] => ref _slots[(int)sequence & _mask];
}
