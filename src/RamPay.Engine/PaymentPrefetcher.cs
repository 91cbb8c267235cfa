using RamPay.Core;

namespace RamPay.Engine;

/// <summary>
/// The prefetch step for payments (rules version 3 with the payments' cold tier): reads the number of the newest visible
/// generation first, then, for a command that acts on an existing payment (capture, void, refund, review, rewards), reads
/// that payment's newest version from the cold tier into the slot. A payment never written (a recent one) is a miss answered
/// from memory; one that is hot is read anyway and ignored by the writer (hot is authoritative). Runs on the ring's prefetch
/// stage, and in recovery right before each replayed record, so the writer and the replay take the same path.
/// </summary>
public sealed class PaymentPrefetcher(IColdPaymentStore store)
{
    private long _lookups, _found;

    /// <summary>Cold lookups made (commands naming a payment).</summary>
    public long Lookups => Volatile.Read(ref _lookups);
    /// <summary>Lookups that found a version on disk.</summary>
    public long Found => Volatile.Read(ref _found);

    public void Prefetch(in Command command, out PaymentLookup lookup)
    {
        lookup = default;
        // The stamp first: every generation up to it was visible, so the read below searched it.
        lookup.Generation = store.VisibleGeneration;
        lookup.State = PaymentLookupState.Miss;
        if (!PaymentLookup.Targets(command.Type) || command.PaymentId < 1) return;
        Volatile.Write(ref _lookups, _lookups + 1);
        if (store.TryRead(command.PaymentId, out lookup.Payment))
        {
            lookup.State = PaymentLookupState.Found;
            Volatile.Write(ref _found, _found + 1);
        }
    }
}

/// <summary>What the host shows of the payments' tiers (<c>/metrics</c>): the ledger's counters and the store's.</summary>
public readonly record struct PaymentTierStats(
    PaymentTierCounters Ledger, long ColdDiskBytes, long ColdRecordsWritten, long ColdPayments, long ColdIndexBytes, long ColdGarbageRecords,
    long ColdVisibleGeneration, string? ColdFault);
