using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace RamPay.Core;

/// <summary>One remembered command under rules version 2: the command (stamped with the ledger time it was applied at), its result, and its place in the key log.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KeyEntry
{
    public Command Command;
    public CommandResult Result;
    /// <summary>0-based position in the key log: the number of keys remembered before this one.</summary>
    public long Index;
}

public enum KeyLookupState : byte
{
    /// <summary>Nobody looked (no prefetch stage: an all-in-memory ledger, or a query slot).</summary>
    NotLooked = 0,
    Miss = 1,
    Found = 2,
}

/// <summary>
/// What the prefetch stage found in the cold tier for a command's key, written into the ring slot before the writer
/// sees it: a fixed-size struct, no allocation. <see cref="Generation"/> is the newest generation that was visible in the
/// cold tier when the prefetch looked (it read that number before looking, so everything up to it was searched).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct KeyLookup
{
    public KeyLookupState State;
    public long Generation;
    public KeyEntry Entry;
}

/// <summary>
/// The cold tier of the key log: a store on disk that the writer never waits on. The engine's prefetch stage reads it
/// before the writer needs an entry; the writer hands it closed generations to write in the background.
/// </summary>
public interface IColdKeyStore
{
    /// <summary>The newest generation (numbered by the writer, from 1, in this run) that lookups are sure to see; 0 = none.</summary>
    long VisibleGeneration { get; }

    /// <summary>The newest version of the key whose log index is below <paramref name="limitIndex"/>. Does I/O.</summary>
    bool TryLookup(long clientId, IdempotencyKey key, long limitIndex, out KeyEntry entry);

    /// <summary>
    /// Hands a closed generation (log entries [<paramref name="firstIndex"/>, <paramref name="endIndex"/>), read through
    /// <see cref="KeyLog.ReadClosed"/>) to the background writer, which may write it only once the journal is durable through
    /// <paramref name="lastSequence"/>. On the writer thread: no I/O, no allocation.
    /// </summary>
    void Flush(KeyLog source, long generation, long firstIndex, long endIndex, long lastSequence);

    /// <summary>Blocks until <paramref name="generation"/> is visible (the rare path: the hot tier is full).</summary>
    void WaitVisible(long generation);

    /// <summary>
    /// Every entry with a log index below this is durable (fsynced) and found by <see cref="TryLookup"/> until the collection
    /// horizon kills it; never decreases. A follower (<see cref="ColdKeyTier.Follower"/>) drops its in-memory copies below it.
    /// Any thread.
    /// </summary>
    long DurableEndIndex => throw new NotSupportedException($"{GetType().Name} cannot serve a follower key log (no durable index)");

    /// <summary>Blocks until <see cref="DurableEndIndex"/> is at least <paramref name="index"/> (a follower's rare path); throws when the store failed.</summary>
    void WaitDurableEnd(long index)
    {
        var spin = new SpinWait();
        while (DurableEndIndex < index) spin.SpinOnce(sleep1Threshold: 10);
    }
}

/// <summary>Where a key log keeps what it does not hold in memory, and how much it holds in memory.</summary>
public sealed record ColdKeyTier
{
    public required IColdKeyStore Store { get; init; }
    /// <summary>Entries kept in memory at most (the hot budget); a multiple of <see cref="GenerationCommands"/>, at least 3 of them.</summary>
    public int HotMaxKeys { get; init; } = 1 << 20;
    /// <summary>Applied commands per generation (at least twice the ring, so that prefetches see a generation before its successor closes).</summary>
    public int GenerationCommands { get; init; } = 1 << 17;
    /// <summary>
    /// A follower's view of a tier another key log (the writer's) fills: a replica ledger (the snapshotter) that re-applies the
    /// journal behind the writer. It never hands anything to the store; it drops entries from memory once the store holds
    /// them durably (<see cref="IColdKeyStore.DurableEndIndex"/>), and reads the store itself (it is not the writer: it may
    /// wait on I/O). Its hot entries plus the store then hold every live key of its state, as the writer's do, so its
    /// snapshots are the writer's (docs/snapshots.md).
    /// </summary>
    public bool Follower { get; init; }

    public void Validate()
    {
        if (GenerationCommands < 1) throw new ArgumentException("GenerationCommands must be at least 1");
        if (HotMaxKeys < 3L * GenerationCommands) throw new ArgumentException("HotMaxKeys must hold at least three generations");
    }
}

/// <summary>
/// Idempotency under rules version 2: a log of every command remembered, in the order applied (which is time order).
/// The logical rule, applied identically live and on replay: a key's newest entry is honoured while
/// <c>entry.Timestamp + window &gt; clock</c> and <c>entry.Index &gt;= inserted - budget</c>; keys leave only by journaled
/// time or, past the budget (the cold tier's disk budget, a count), oldest first, counted in <see cref="EvictedEarly"/>.
/// Which entries sit in memory (hot) and which only on disk (cold) is no part of the logical state: the state hash covers
/// the counters, a running digest of every entry ever remembered, and the block marks that decide the counting.
/// </summary>
public sealed class KeyLog
{
    /// <summary>Entries per block of the time marks that decide whether a key dropped for the budget was still in its window.</summary>
    public const int MarkBlockShift = 10;

    private readonly long _windowMs;
    private long _budget;
    private long _inserted;
    private long _evictedEarly;
    private ulong _digestA = 0x243F6A8885A308D3, _digestB = 0x13198A2E03707344;
    // Marks: the journaled time of the newest entry of each block of 1,024, for the blocks the budget still covers.
    private long[] _marks;

    // The hot tier: entries [_hotFirst, _inserted) in a power-of-two ring, and the newest hot version of each key.
    private KeyEntry[] _hot;
    private readonly Dictionary<IdempotencyTable.ScopedKey, long> _hotIndex;
    private long _hotFirst;

    // Generations (with a cold tier only).
    private readonly ColdKeyTier? _cold;
    private long _generation = 1;          // the open generation
    private long _generationStart;         // its first log index
    private long _generationCommands;      // commands applied in it
    private long _retiredThrough;          // generations up to this one have left memory
    private readonly long[] _closedEnd;    // end index of each closed, not yet retired generation, by generation % length
    private long _closedFirst = 1;         // the oldest closed, not retired generation
    private readonly bool _follower;       // a follower retires by the store's durable index instead (ColdKeyTier.Follower)
    // The most entries held in memory before MakeRoom: HotMaxKeys with a cold tier (the array is rounded up to a power of
    // two, and the budget is the setting, not the array), the array's length without one (it grows).
    private long _hotLimit;

    public KeyLog(long budget, long windowMs, ColdKeyTier? cold)
    {
        Invariant.Check(budget >= 1, "the key budget must be at least 1");
        _budget = budget;
        _windowMs = windowMs;
        _marks = new long[MarksFor(budget)];
        _cold = cold;
        _follower = cold is { Follower: true };
        int hot = cold is null ? 1 << 12 : (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)cold.HotMaxKeys);
        _hot = new KeyEntry[hot];
        _hotLimit = cold is null ? hot : cold.HotMaxKeys;
        _hotIndex = new Dictionary<IdempotencyTable.ScopedKey, long>(cold is null ? 1 << 12 : cold.HotMaxKeys + 1);
        _closedEnd = cold is null ? [] : new long[cold.HotMaxKeys / cold.GenerationCommands + 2];
    }

    private static int MarksFor(long budget) => checked((int)((budget >> MarkBlockShift) + 2));

    public long Budget => _budget;
    public long WindowMs => _windowMs;
    /// <summary>Entries ever remembered (the next entry's index).</summary>
    public long Inserted => _inserted;
    /// <summary>Keys forgotten before their window ended because the budget was reached (see docs/storage.md for the exact rule).</summary>
    public long EvictedEarly => _evictedEarly;
    public (ulong A, ulong B) Digest => (_digestA, _digestB);
    public bool HasColdTier => _cold is not null;

    // Counters of where lookups were served from: not logical state (they differ between a live run and a replay).
    public long HotHits { get; private set; }
    /// <summary>Keys found in the cold tier by the prefetch stage and honoured.</summary>
    public long ColdHits { get; private set; }
    /// <summary>Lookups the writer had to make itself (a stale prefetch after a forced retirement, or a recovery's future entry).</summary>
    public long WriterColdReads { get; private set; }
    /// <summary>Times the writer waited for the background writer because the hot tier was full.</summary>
    public long HotFullWaits { get; private set; }
    public long HotCount => _inserted - _hotFirst;
    public long RetiredThrough => _retiredThrough;

    /// <summary>
    /// Finds the key's newest entry and says whether it is still honoured. Hot entries first (they are authoritative: the
    /// newest version of a key is always hot while it is), then the prefetched cold result, which is complete for every
    /// retired generation when its stamp is at least the last retired one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryFindLive(in Command command, in KeyLookup prefetched, long now, out KeyEntry found)
    {
        if (_hotIndex.TryGetValue(new IdempotencyTable.ScopedKey(command.ClientId, command.Key), out long index))
        {
            found = _hot[index & (_hot.Length - 1)];
            HotHits++;
            return IsLive(found, now);
        }
        // Nothing has ever left memory (in this run or, for a state loaded from a snapshot, before it): hot is complete.
        if (_cold is null || _hotFirst == 0)
        {
            found = default;
            return false;
        }
        return FindCold(command, prefetched, now, out found);
    }

    private bool FindCold(in Command command, in KeyLookup prefetched, long now, out KeyEntry found)
    {
        bool hit;
        if (prefetched.State != KeyLookupState.NotLooked && prefetched.Generation >= _retiredThrough
            && (prefetched.State == KeyLookupState.Miss || prefetched.Entry.Index < _inserted))
        {
            hit = prefetched.State == KeyLookupState.Found;
            found = prefetched.Entry;
        }
        else
        {
            hit = SlowLookup(command, out found);
        }
        if (hit && IsLive(found, now))
        {
            ColdHits++;
            return true;
        }
        return false;
    }

    /// <summary>The rare path: the writer reads the cold tier itself (out of line: it does I/O).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool SlowLookup(in Command command, out KeyEntry found)
    {
        WriterColdReads++;
        return _cold!.Store.TryLookup(command.ClientId, command.Key, _inserted, out found);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsLive(in KeyEntry e, long now) => e.Index >= _inserted - _budget && e.Command.TimestampMs + _windowMs > now;

    /// <summary>Remembers a command just executed (or, at an upgrade, one carried over from rules version 1).</summary>
    internal void Insert(in Command command, long now, in CommandResult result)
    {
        long index = _inserted;
        if (index - _hotFirst >= _hotLimit) MakeRoom(now);
        ref var e = ref _hot[index & (_hot.Length - 1)];
        e.Command = command;
        e.Command.TimestampMs = now;
        e.Result = result;
        e.Index = index;
        _hotIndex[new IdempotencyTable.ScopedKey(command.ClientId, command.Key)] = index;
        _inserted = index + 1;
        Invariant.Check(_inserted - _hotFirst <= _hotLimit, "the hot tier holds more keys than its limit");
        Mix(e);
        _marks[(index >> MarkBlockShift) % _marks.Length] = now;
        if (index >= _budget)
        {
            // The budget drops the oldest entry. Counted when its block's newest entry was still in its window: an entry
            // that was is counted for certain; one that had just expired in a block that had not may be counted too.
            long dropped = index - _budget;
            if (_marks[(dropped >> MarkBlockShift) % _marks.Length] + _windowMs > now) _evictedEarly++;
        }
    }

    internal void CarryEvictedEarly(long count) => _evictedEarly = count;

    /// <summary>Carries a key over from rules version 1 at the upgrade, closing generations as they fill (the hot tier is bounded).</summary>
    internal void CarryOver(in Command command, in CommandResult result, long lastSequence)
    {
        Insert(command, command.TimestampMs, result);
        if (_cold is not null && !_follower && _inserted - _generationStart >= _cold.GenerationCommands) CloseGeneration(lastSequence);
    }

    /// <summary>A running digest of every entry remembered, in order: the logical key set follows from it, the counters and the clock.</summary>
    private void Mix(in KeyEntry e)
    {
        ref readonly var c = ref e.Command;
        ulong a = _digestA, b = _digestB;
        Step(ref a, ref b, (ulong)e.Index);
        Step(ref a, ref b, (ulong)c.ClientId);
        Step(ref a, ref b, c.Key.Hi);
        Step(ref a, ref b, c.Key.Lo);
        Step(ref a, ref b, (ulong)c.Type | (ulong)c.Flags << 8 | (ulong)c.Currency.Code << 16 | (ulong)(byte)e.Result.Code << 32);
        Step(ref a, ref b, (ulong)c.TimestampMs);
        Step(ref a, ref b, (ulong)c.FromAccount);
        Step(ref a, ref b, (ulong)c.ToAccount);
        Step(ref a, ref b, (ulong)c.PaymentId);
        Step(ref a, ref b, (ulong)c.Amount);
        Step(ref a, ref b, (ulong)c.Argument);
        Step(ref a, ref b, (ulong)e.Result.Id);
        Step(ref a, ref b, (ulong)e.Result.SecondaryId);
        _digestA = a;
        _digestB = b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(ref ulong a, ref ulong b, ulong v)
    {
        // Two 64-bit lanes of multiply-xorshift: integer arithmetic only, the same on every machine.
        a = (a ^ v) * 0x9E3779B97F4A7C15;
        a ^= a >> 29;
        b = (b + v + (a >> 17)) * 0xBF58476D1CE4E5B9;
        b ^= b >> 31;
    }

    /// <summary>
    /// After each applied command (with a cold tier): closes the generation every <see cref="ColdKeyTier.GenerationCommands"/>
    /// commands and hands it to the background writer, and retires (drops from memory) every closed generation that was
    /// visible in the cold tier when this command was prefetched: every later command's prefetch saw it too, since stamps
    /// never decrease in ring order. Changes memory only, never logical state.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void AfterCommand(in KeyLookup prefetched, long commandsApplied)
    {
        if (_cold is null) return;
        if (_follower)
        {
            // A follower looks at the store's durable index once a generation's worth of commands, not per command.
            if (++_generationCommands >= _cold.GenerationCommands)
            {
                _generationCommands = 0;
                RetireDurable();
            }
            return;
        }
        if (prefetched.State != KeyLookupState.NotLooked && prefetched.Generation > _retiredThrough && _closedFirst < _generation)
            RetireThrough(Math.Min(prefetched.Generation, _generation - 1));
        if (++_generationCommands >= _cold.GenerationCommands) CloseGeneration(commandsApplied);
    }

    private void CloseGeneration(long lastSequence) => CloseGeneration(lastSequence, _inserted);

    private void CloseGeneration(long lastSequence, long end)
    {
        var cold = _cold!;
        long g = _generation;
        _closedEnd[g % _closedEnd.Length] = end;
        cold.Store.Flush(this, g, _generationStart, end, lastSequence);
        _generation = g + 1;
        _generationStart = end;
        _generationCommands = 0;
    }

    private void RetireThrough(long generation)
    {
        for (long g = _closedFirst; g <= generation; g++)
        {
            long end = _closedEnd[g % _closedEnd.Length];
            for (long i = _hotFirst; i < end; i++)
            {
                ref var e = ref _hot[i & (_hot.Length - 1)];
                var key = new IdempotencyTable.ScopedKey(e.Command.ClientId, e.Command.Key);
                // Only when this entry is still the key's newest hot version.
                if (_hotIndex.TryGetValue(key, out long newest) && newest == i) _hotIndex.Remove(key);
                e = default;
            }
            _hotFirst = end;
            _closedFirst = g + 1;
            _retiredThrough = g;
        }
    }

    /// <summary>
    /// A follower drops from memory every entry the store holds durably. Safe because (1) a dropped entry is found by the
    /// follower's own lookups (<see cref="SlowLookup"/>, limited to its <see cref="Inserted"/>: the store may be ahead), and (2)
    /// the store destroys only entries dead in the oldest kept snapshot's state, which the follower's state is at or after.
    /// </summary>
    public void RetireDurable()
    {
        Invariant.Check(_follower, "only a follower key log retires by the store's durable index");
        long end = Math.Min(_cold!.Store.DurableEndIndex, _inserted);
        for (long i = _hotFirst; i < end; i++)
        {
            ref var e = ref _hot[i & (_hot.Length - 1)];
            var key = new IdempotencyTable.ScopedKey(e.Command.ClientId, e.Command.Key);
            if (_hotIndex.TryGetValue(key, out long newest) && newest == i) _hotIndex.Remove(key);
            e = default;
        }
        if (end > _hotFirst) _hotFirst = end;
    }

    /// <summary>
    /// A follower before a snapshot: drops what the store holds, then waits (the follower is not the writer) until at most
    /// <c>HotMaxKeys - GenerationCommands</c> entries are left in memory, so that the writer can load the snapshot's hot
    /// section and still close generations. The writer's hot tier is as large, the follower is behind it, and every closed
    /// generation of the writer's becomes durable once the journal is: at most the writer's open generation stays behind.
    /// </summary>
    public void RetireDurableForSnapshot()
    {
        Invariant.Check(_follower, "only a follower key log retires by the store's durable index");
        long maxHot = _cold!.HotMaxKeys - _cold.GenerationCommands;
        long need = _inserted - maxHot;
        if (need > _hotFirst) _cold!.Store.WaitDurableEnd(need);
        RetireDurable();
    }

    /// <summary>The hot tier is full: without a cold tier it grows (after dropping dead entries); with one the writer waits.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void MakeRoom(long now)
    {
        if (_follower)
        {
            // A follower is behind the writer, whose hot tier is as large: the store catches up with it. Counted as a wait.
            HotFullWaits++;
            _cold!.Store.WaitDurableEnd(_hotFirst + 1);
            RetireDurable();
            return;
        }
        if (_cold is null)
        {
            while (_hotFirst < _inserted && !IsLive(_hot[_hotFirst & (_hot.Length - 1)], now))
            {
                ref var e = ref _hot[_hotFirst & (_hot.Length - 1)];
                var key = new IdempotencyTable.ScopedKey(e.Command.ClientId, e.Command.Key);
                if (_hotIndex.TryGetValue(key, out long newest) && newest == _hotFirst) _hotIndex.Remove(key);
                e = default;
                _hotFirst++;
            }
            if (_inserted - _hotFirst < _hotLimit) return;
            var grown = new KeyEntry[_hot.Length * 2];
            for (long i = _hotFirst; i < _inserted; i++) grown[i & (grown.Length - 1)] = _hot[i & (_hot.Length - 1)];
            _hot = grown;
            _hotLimit = grown.Length;
            return;
        }
        // The background writer is behind: wait for the oldest closed generation, retire it, and from now on a command
        // prefetched before it became visible is looked up again by the writer (SlowLookup). Back-pressure, counted.
        Invariant.Check(_closedFirst < _generation, "the hot tier is full but no generation is closed: HotMaxKeys is below three generations");
        HotFullWaits++;
        _cold.Store.WaitVisible(_closedFirst);
        RetireThrough(_closedFirst);
    }

    /// <summary>An entry of a closed generation, for the background writer (any thread: closed entries do not change until retired).</summary>
    public void ReadClosed(long index, out KeyEntry entry)
    {
        entry = _hot[index & (_hot.Length - 1)];
        Invariant.Check(entry.Index == index, "a closed key-log entry was read after it was retired");
    }

    /// <summary>The hot entries oldest first (a snapshot's physical section).</summary>
    internal IEnumerable<long> HotIndices()
    {
        for (long i = _hotFirst; i < _inserted; i++) yield return i;
    }

    internal ref KeyEntry HotAt(long index) => ref _hot[index & (_hot.Length - 1)];

    // --- state encoding (LedgerSnapshot.cs) ---

    internal void WriteLogical(BinaryWriter w)
    {
        w.Write(_budget); w.Write(_windowMs); w.Write(_inserted); w.Write(_evictedEarly); w.Write(_digestA); w.Write(_digestB);
        w.Write(_marks.Length);
        foreach (long m in _marks) w.Write(m);
    }

    internal static KeyLog ReadLogical(BinaryReader r, long windowMs, ColdKeyTier? cold)
    {
        long budget = r.ReadInt64(), window = r.ReadInt64();
        if (budget < 1) throw new InvalidDataException($"key budget {budget} is not positive");
        if (window != windowMs) throw new InvalidDataException($"the state's idempotency window is {window} ms; this ledger is configured with {windowMs} ms");
        var log = new KeyLog(budget, windowMs, cold);
        log._inserted = r.ReadInt64(); log._evictedEarly = r.ReadInt64(); log._digestA = r.ReadUInt64(); log._digestB = r.ReadUInt64();
        int marks = r.ReadInt32();
        if (marks != log._marks.Length) throw new InvalidDataException($"state holds {marks} key marks; a budget of {budget} needs {log._marks.Length}");
        for (int i = 0; i < marks; i++) log._marks[i] = r.ReadInt64();
        log._hotFirst = log._inserted;
        log._generationStart = log._inserted;
        return log;
    }

    /// <summary>Physical: the hot entries, so that entries the cold tier may not have made durable survive a restart.</summary>
    internal void WriteHot(BinaryWriter w, Span<byte> buffer)
    {
        // 1 when entries older than the hot ones may still be live and are only in the cold tier: a reader without it
        // (a tool, the sinks' replica) must not start from this snapshot (EngineRecovery replays the journal instead).
        w.Write((byte)(_cold is not null && _hotFirst > 0 ? 1 : 0));
        w.Write(_inserted - _hotFirst);
        for (long i = _hotFirst; i < _inserted; i++)
        {
            ref var e = ref _hot[i & (_hot.Length - 1)];
            w.Write(e.Index);
            CommandCodec.Write(buffer, e.Command);
            w.Write(buffer);
            w.Write((byte)e.Result.Code); w.Write(e.Result.Id); w.Write(e.Result.SecondaryId);
        }
    }

    internal void ReadHot(BinaryReader r, Span<byte> buffer)
    {
        byte needsCold = r.ReadByte();
        if (needsCold > 1) throw new InvalidDataException($"hot keys flag {needsCold}");
        if (needsCold == 1 && _cold is null) throw new SnapshotNeedsColdTierException();
        long count = r.ReadInt64();
        if (count < 0 || count > _inserted) throw new InvalidDataException($"state holds {count} hot keys of {_inserted}");
        // Against the array, not the limit: a snapshot may hold up to the array's length (earlier versions filled it); the
        // loaded full generations are closed below, so the next Insert above the limit retires them (MakeRoom).
        if (_cold is not null && count >= _hot.Length)
            throw new InvalidDataException($"state holds {count} hot keys; this engine's hot tier holds {_hot.Length} (raise HotMaxKeys)");
        long first = _inserted - count;
        while (_cold is null && count > _hot.Length) _hot = new KeyEntry[_hot.Length * 2];
        if (_cold is null) _hotLimit = _hot.Length;
        for (long i = first; i < _inserted; i++)
        {
            ref var e = ref _hot[i & (_hot.Length - 1)];
            e.Index = r.ReadInt64();
            if (e.Index != i) throw new InvalidDataException($"hot key {i} holds index {e.Index}");
            r.BaseStream.ReadExactly(buffer);
            e.Command = CommandCodec.Read(buffer);
            e.Result = new CommandResult { Code = (ResultCode)r.ReadByte(), Id = r.ReadInt64(), SecondaryId = r.ReadInt64() };
            _hotIndex[new IdempotencyTable.ScopedKey(e.Command.ClientId, e.Command.Key)] = i;
        }
        _hotFirst = first;
        // The loaded entries are handed to the cold tier as generations like any others (it skips what it already has):
        // they are durable (a snapshot is written only once its journal is), so no sequence needs waiting for.
        _generationStart = first;
        if (_cold is not null && !_follower)
            while (_inserted - _generationStart >= _cold.GenerationCommands) CloseGeneration(0, _generationStart + _cold.GenerationCommands);
    }
}

/// <summary>A journaled UpgradeRules names rules newer than this RamPay knows: the journal was written by a newer RamPay.</summary>
public sealed class RulesVersionNotSupportedException(long version, int newest)
    : InvalidOperationException($"the journal moves the ledger to rules version {version}; this RamPay knows versions 1 to {newest}: run a newer RamPay");

/// <summary>A snapshot whose key log keeps older keys in the cold tier, read without one: start from the journal instead.</summary>
public sealed class SnapshotNeedsColdTierException()
    : IOException("this snapshot keeps older idempotency keys in the cold tier, which this reader does not have");
