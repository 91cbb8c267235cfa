namespace RamPay.Core;

/// <summary>
/// Open authorizations ordered by (expiry, payment id): a binary min-heap over a pre-allocated array.
/// Each payment remembers its heap index, so capture and void remove a hold in O(log n).
/// The order is a pure function of the commands applied, so replay rebuilds the same heap.
/// </summary>
internal sealed class HoldQueue(int capacity, PaymentStore payments)
{
    private readonly long[] _heap = new long[capacity];
    private int _count;

    public int Count => _count;
    public int Capacity => _heap.Length;
    public long PeekId => _count == 0 ? 0 : _heap[0];

    public void Add(long paymentId)
    {
        Invariant.Check(_count < _heap.Length, "hold queue is full: the ledger must check capacity first");
        int i = _count++;
        _heap[i] = paymentId;
        payments[paymentId].HoldIndex = i;
        SiftUp(i);
    }

    public void Remove(long paymentId)
    {
        ref var p = ref payments[paymentId];
        int i = p.HoldIndex;
        Invariant.Check(i >= 0 && i < _count && _heap[i] == paymentId, "hold queue index out of step with payment");
        p.HoldIndex = -1;
        int last = --_count;
        if (i == last) return;
        _heap[i] = _heap[last];
        payments[_heap[i]].HoldIndex = i;
        if (!SiftUp(i)) SiftDown(i);
    }

    /// <summary>The ids in heap-array order (the snapshot order).</summary>
    public ReadOnlySpan<long> Items => _heap.AsSpan(0, _count);

    private bool Less(long a, long b)
    {
        long ea = payments[a].ExpiresAtMs, eb = payments[b].ExpiresAtMs;
        return ea < eb || (ea == eb && a < b);
    }

    private bool SiftUp(int i)
    {
        bool moved = false;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (!Less(_heap[i], _heap[parent])) break;
            Swap(i, parent);
            i = parent;
            moved = true;
        }
        return moved;
    }

    private void SiftDown(int i)
    {
        while (true)
        {
            int l = 2 * i + 1;
            if (l >= _count) return;
            int smallest = l + 1 < _count && Less(_heap[l + 1], _heap[l]) ? l + 1 : l;
            if (!Less(_heap[smallest], _heap[i])) return;
            Swap(i, smallest);
            i = smallest;
        }
    }

    private void Swap(int a, int b)
    {
        (_heap[a], _heap[b]) = (_heap[b], _heap[a]);
        payments[_heap[a]].HoldIndex = a;
        payments[_heap[b]].HoldIndex = b;
    }
}
