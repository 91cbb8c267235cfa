using RamPay.Core;
using RamPay.Pipeline;

namespace RamPay.Engine;

/// <summary>
/// The prefetch step: looks a command's key up in the cold tier and writes what it found, with the number of the newest
/// generation visible when it looked (read first), into a fixed-size struct. The ring's prefetch stage runs it for every
/// slot before the writer sees the slot; recovery runs the same step right before replaying each record.
/// </summary>
public sealed class KeyPrefetcher(IColdKeyStore store)
{
    private long _lookups;

    /// <summary>Cold lookups made (a command with a key).</summary>
    public long Lookups => Volatile.Read(ref _lookups);

    public void Prefetch(in Command command, out KeyLookup lookup) => Prefetch(command, out lookup, long.MaxValue);

    /// <summary>
    /// As the other overload, looking only at entries below <paramref name="limitIndex"/>: recovery passes the replayed key
    /// log's count, so that the cold tier's entries of the commands being replayed (written before the crash: the tier is
    /// ahead of the snapshot) are skipped in its index, not read from disk and then refused by the writer (each of those
    /// cost a record read plus the writer's own second lookup).
    /// </summary>
    public void Prefetch(in Command command, out KeyLookup lookup, long limitIndex)
    {
        // The stamp is read before the lookup: every generation up to it was visible, so the lookup searched it.
        lookup = default;
        lookup.Generation = store.VisibleGeneration;
        if (command.Key.IsEmpty || command.Type is CommandType.Tick or CommandType.ConfigureFraud or CommandType.UpgradeRules)
        {
            lookup.State = KeyLookupState.Miss;
            return;
        }
        _lookups++;
        lookup.State = store.TryLookup(command.ClientId, command.Key, limitIndex, out lookup.Entry) ? KeyLookupState.Found : KeyLookupState.Miss;
    }
}

/// <summary>
/// The ring stage before the business logic: prefetches each command's key, and the payment it acts on (with the payments'
/// cold tier), into its slot. Queries pass, except one sent round again for a cold payment: it is read for it here.
/// </summary>
internal sealed class PrefetchStage(KeyPrefetcher? prefetcher, PaymentPrefetcher? payments, FraudStageStep? fraud = null) : IBatchHandler<CommandSlot>
{
    // prefetcher null: no cold tier, the stage is there for the fraud step only (rules version 4, FraudStageStep.cs).

    public void OnBatch(RingBuffer<CommandSlot> ring, long first, long last)
    {
        for (long seq = first; seq <= last; seq++)
        {
            ref var slot = ref ring[seq];
            if (slot.Query is not null)
            {
                // A query sent round again for a cold payment (RamPayEngine.DelegateQuery): read it here, not on the writer.
                if (payments is not null && slot.Query is IColdRetryQuery { Needed: { } needed } retry)
                    payments.PrefetchQuery(needed, retry.Prefetched ??= new QueryPrefetch());
                continue;
            }
            prefetcher?.Prefetch(slot.Command, out slot.Prefetched);
            if (payments is null) slot.PaymentPrefetched = default;
            else payments.Prefetch(slot.Command, out slot.PaymentPrefetched);
            fraud?.OnSlot(ref slot, seq); // after the lookups: the fraud step may wait for the writer at a sync point
        }
    }
}

/// <summary>The journal sequence known durable, for the cold tier's writer: everything while recovery replays, then the journaler's.</summary>
internal sealed class DurableWatermark
{
    private long _sequence = long.MaxValue;
    public long Value => Volatile.Read(ref _sequence);
    public void Set(long sequence) => Volatile.Write(ref _sequence, sequence);
}

/// <summary>What the host shows of the key tiers (<c>/metrics</c>, <c>/health/ready</c>). Read racily from the writer's counters: fine for gauges.</summary>
public readonly record struct KeyTierStats(
    int RulesVersion, long KeysRemembered, long KeyBudget, long EvictedEarly, long HotKeys, long HotHits, long ColdHits,
    long WriterColdReads, long HotFullWaits, long ColdLookups, long ColdEntriesWritten, long ColdVisibleGeneration,
    long ColdDiskBytes, long ColdSegmentsDropped, string? ColdFault, long ColdKeys = 0, long ColdIndexBytes = 0, long ColdReads = 0,
    long ColdKeysHeldForSinks = 0);
