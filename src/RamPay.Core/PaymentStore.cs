namespace RamPay.Core;

/// <summary>
/// Payments indexed by id, in chunks of 64 Ki so that growth never copies and never moves a payment.
/// A chunk is allocated only when the ledger's payment count crosses into it: retained state, not garbage.
/// </summary>
internal sealed class PaymentStore
{
    internal const int ChunkShift = 16;
    internal const int ChunkSize = 1 << ChunkShift;
    private const int ChunkMask = ChunkSize - 1;

    private readonly Payment[][] _chunks;
    private long _count;

    public PaymentStore(long maxPayments, long initialCapacity)
    {
        _chunks = new Payment[(maxPayments + ChunkSize - 1) >> ChunkShift][];
        for (long i = 0; i < initialCapacity; i += ChunkSize) _chunks[i >> ChunkShift] = new Payment[ChunkSize];
        Capacity = maxPayments;
    }

    public long Capacity { get; }
    public long Count => _count;

    /// <summary>The payment with this id (1-based). The caller checks the id is in range.</summary>
    public ref Payment this[long id]
    {
        get
        {
            long index = id - 1;
            return ref _chunks[index >> ChunkShift][index & ChunkMask];
        }
    }

    public bool Contains(long id) => id >= 1 && id <= _count;

    /// <summary>Adds a zeroed payment and returns it; its id is <see cref="Count"/> afterwards.</summary>
    public ref Payment Add()
    {
        Invariant.Check(_count < Capacity, "payment store is full: the ledger must check capacity first");
        long index = _count;
        var chunk = _chunks[index >> ChunkShift] ??= new Payment[ChunkSize];
        _count++;
        ref var p = ref chunk[index & ChunkMask];
        p = default;
        p.Id = _count;
        p.HoldIndex = -1;
        return ref p;
    }
}
