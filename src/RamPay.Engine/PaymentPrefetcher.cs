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

    /// <summary>Cold payments read for queries (<see cref="ColdPaymentNeededException"/>), off the writer.</summary>
    public long QueryReads => Volatile.Read(ref _queryReads);
    private long _queryReads;

    /// <summary>
    /// A query the writer sent round again (<see cref="ColdPaymentNeededException"/>): reads the payment it named, with its note,
    /// and, for a history page, the account's chain from it (each version's links to the account's previous payment are fixed at
    /// its creation, so any version of it gives them), until a payment the store does not hold (a recent one: the writer has it).
    /// On the prefetch stage's thread: the disk is read here, not on the writer.
    /// </summary>
    public void PrefetchQuery(ColdPaymentNeededException needed, QueryPrefetch into)
    {
        long id = needed.PaymentId;
        int left = Math.Max(1, needed.Chain);
        while (id > 0 && left-- > 0)
        {
            if (!store.TryRead(id, out var payment, out long version)) return;
            into.Add(id, payment, version, store.ReadNote(id));
            Volatile.Write(ref _queryReads, _queryReads + 1);
            if (needed.AccountId == 0) return;
            id = payment.FromAccount == needed.AccountId ? payment.PrevForFrom : payment.ToAccount == needed.AccountId ? payment.PrevForTo : 0;
        }
    }
}

/// <summary>What the host shows of the payments' tiers (<c>/metrics</c>): the ledger's counters and the store's.</summary>
public readonly record struct PaymentTierStats(
    PaymentTierCounters Ledger, long ColdDiskBytes, long ColdRecordsWritten, long ColdPayments, long ColdIndexBytes, long ColdGarbageRecords,
    long ColdVisibleGeneration, string? ColdFault, long QueryPrefetchHits = 0, long QueryRetries = 0, long QueryPrefetchReads = 0);
