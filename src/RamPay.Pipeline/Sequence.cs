using System.Runtime.InteropServices;

namespace RamPay.Pipeline;

/// <summary>
/// A position in the ring: the last slot a producer published or a stage finished. Hot sequences are
/// written by one core and read by others, so each sits alone on its cache line: 56 bytes of padding on
/// both sides keep a neighbour's writes from invalidating it (false sharing).
/// </summary>
public sealed class Sequence
{
    public const long InitialValue = -1;

    /// <summary>Bytes before and after the value; with the 8-byte value, a full 64-byte line either side.</summary>
    public const int Padding = 56;

    private PaddedLong _padded;

    public Sequence(long initialValue = InitialValue) => _padded.Value = initialValue;

    /// <summary>Acquire read: a reader that sees the value also sees the writes made before it was set.</summary>
    public long Value => Volatile.Read(ref _padded.Value);

    /// <summary>Release write: everything written before (the slot contents) is visible before the value.</summary>
    public void SetValue(long value) => Volatile.Write(ref _padded.Value, value);

    public bool CompareAndSet(long expected, long value) =>
        Interlocked.CompareExchange(ref _padded.Value, value, expected) == expected;

    public long IncrementAndGet() => Interlocked.Increment(ref _padded.Value);

    public long AddAndGet(long delta) => Interlocked.Add(ref _padded.Value, delta);

    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The smallest of <paramref name="sequences"/>, or <paramref name="ceiling"/> when it is smaller or the array is empty.</summary>
    internal static long Minimum(Sequence[] sequences, long ceiling)
    {
        long minimum = ceiling;
        foreach (Sequence sequence in sequences)
        {
            minimum = Math.Min(minimum, sequence.Value);
        }
        return minimum;
    }

    /// <summary>
    /// The padding lives in a struct because the runtime honours an explicit size on a struct, while on a
    /// class it only places fields and lets the next object start right after the last one.
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 2 * Padding + sizeof(long))]
    private struct PaddedLong
    {
        [FieldOffset(Padding)]
        public long Value;
    }
}
