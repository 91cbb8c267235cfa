using System.Runtime.CompilerServices;

namespace RamPay.Core;

/// <summary>
/// Remembers each client command's key, body and result for a window of journaled time, bounded in count.
/// Entries sit in a pre-allocated FIFO ring in the order they were applied, which is also the order of their
/// timestamps (the ledger clock never goes back), so expiry and eviction only ever pop the head. A dictionary
/// sized once at the maximum count maps (client, key) to a ring slot; neither allocates after construction.
/// </summary>
public sealed class IdempotencyTable
{
    internal struct Entry
    {
        public Command Command;
        public CommandResult Result;
    }

    internal readonly record struct ScopedKey(long ClientId, IdempotencyKey Key)
    {
        // The key is the prefix of a SHA-256, so its low bits are already uniform.
        public override int GetHashCode() => (int)(Key.Lo ^ (Key.Lo >> 32)) ^ (int)(ulong)(ClientId * unchecked((long)0x9E3779B97F4A7C15));
    }

    private readonly Entry[] _ring;
    private readonly Dictionary<ScopedKey, int> _index;
    private int _head;
    private int _count;

    public IdempotencyTable(int maxKeys, long windowMs)
    {
        _ring = new Entry[maxKeys];
        _index = new Dictionary<ScopedKey, int>(maxKeys);
        WindowMs = windowMs;
    }

    public long WindowMs { get; }
    public int Capacity => _ring.Length;
    public int Count => _count;
    /// <summary>Keys forgotten before their window ended because the table was full.</summary>
    public long EvictedEarly { get; private set; }
    public long Expired { get; private set; }

    /// <summary>Forgets every key whose window has ended by <paramref name="nowMs"/>.</summary>
    internal void Expire(long nowMs)
    {
        // Each entry is popped once, so the total work is bounded by the number of entries ever added.
        while (_count > 0 && _ring[_head].Command.TimestampMs + WindowMs <= nowMs)
        {
            PopHead();
            Expired++;
        }
    }

    /// <summary>Finds the entry for a key: returns its ring slot, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int Find(long clientId, IdempotencyKey key) =>
        _index.TryGetValue(new ScopedKey(clientId, key), out int slot) ? slot : -1;

    internal ref Entry this[int slot] => ref _ring[slot];

    /// <summary>Remembers a command (whose timestamp is the ledger's time for it) and its result.</summary>
    internal void Add(in Command command, in CommandResult result)
    {
        if (_count == _ring.Length)
        {
            PopHead();
            EvictedEarly++;
        }
        int slot = _head + _count;
        if (slot >= _ring.Length) slot -= _ring.Length;
        _ring[slot].Command = command;
        _ring[slot].Result = result;
        bool added = _index.TryAdd(new ScopedKey(command.ClientId, command.Key), slot);
        Invariant.Check(added, "idempotency key added twice");
        _count++;
    }

    private void PopHead()
    {
        ref var head = ref _ring[_head];
        bool removed = _index.Remove(new ScopedKey(head.Command.ClientId, head.Command.Key));
        Invariant.Check(removed, "idempotency ring and index out of step");
        head = default;
        _head = _head + 1 == _ring.Length ? 0 : _head + 1;
        _count--;
    }

    /// <summary>The entries oldest first (the snapshot order).</summary>
    internal IEnumerable<int> SlotsOldestFirst()
    {
        for (int i = 0; i < _count; i++)
        {
            int slot = _head + i;
            yield return slot >= _ring.Length ? slot - _ring.Length : slot;
        }
    }

    internal void RestoreCounters(long evictedEarly, long expired)
    {
        EvictedEarly = evictedEarly;
        Expired = expired;
    }

    /// <summary>Which field of a new command differs from the remembered one, or Ok when the bodies match.</summary>
    internal static ResultCode Compare(in Command stored, in Command incoming)
    {
        if (stored.Type != incoming.Type) return ResultCode.ExistsWithDifferentType;
        if (stored.FromAccount != incoming.FromAccount) return ResultCode.ExistsWithDifferentFromAccount;
        if (stored.ToAccount != incoming.ToAccount) return ResultCode.ExistsWithDifferentToAccount;
        if (stored.PaymentId != incoming.PaymentId) return ResultCode.ExistsWithDifferentPaymentId;
        if (stored.Amount != incoming.Amount) return ResultCode.ExistsWithDifferentAmount;
        if (stored.Currency != incoming.Currency) return ResultCode.ExistsWithDifferentCurrency;
        if (stored.Flags != incoming.Flags) return ResultCode.ExistsWithDifferentFlags;
        if (stored.Argument != incoming.Argument) return ResultCode.ExistsWithDifferentArgument;
        return ResultCode.Ok;
    }
}
