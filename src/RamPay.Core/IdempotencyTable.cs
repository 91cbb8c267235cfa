using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

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
        _index = new Dictionary<ScopedKey, int>(maxKeys + 1);
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

    /// <summary>
    /// Looks a command's key up and, when it is new, reserves the next ring slot for it in the same hash probe (a miss
    /// followed by an insert is the common case, and one probe instead of two is most of its cost). Returns the slot;
    /// <paramref name="existed"/> tells whether it holds an earlier command (to compare) or awaits <see cref="Complete"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int FindOrReserve(in Command command, out bool existed)
    {
        ref int slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_index, new ScopedKey(command.ClientId, command.Key), out existed);
        if (existed) return slot;
        if (_count == _ring.Length)
        {
            // Full: the oldest key goes. The index was sized one above the ring, so the insert above could not have
            // resized it, and a removal never moves entries: the reference to the new value is still good.
            PopHead();
            EvictedEarly++;
        }
        int next = _head + _count;
        if (next >= _ring.Length) next -= _ring.Length;
        slot = next;
        _count++;
        return next;
    }

    /// <summary>Fills a slot reserved by <see cref="FindOrReserve"/> with the command (stamped with the ledger's time) and its result.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Complete(int slot, in Command command, long nowMs, in CommandResult result)
    {
        ref var entry = ref _ring[slot];
        entry.Command = command;
        entry.Command.TimestampMs = nowMs;
        entry.Result = result;
    }

    internal ref Entry this[int slot] => ref _ring[slot];

    /// <summary>Remembers a command and its result (snapshot load: the command carries its own ledger time).</summary>
    internal void Add(in Command command, in CommandResult result)
    {
        int slot = FindOrReserve(command, out bool existed);
        Invariant.Check(!existed, "idempotency key added twice");
        Complete(slot, command, command.TimestampMs, result);
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

    /// <summary>
    /// The answer to a command whose key is remembered (under either rules version): the stored result again, marked
    /// replayed, when the bodies match; otherwise exists_with_different_&lt;field&gt;, and nothing is applied.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static CommandResult Answer(in Command stored, in CommandResult storedResult, in Command incoming)
    {
        ResultCode difference = Compare(stored, incoming);
        return difference == ResultCode.Ok ? storedResult with { Replayed = true } : new CommandResult { Code = difference };
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
