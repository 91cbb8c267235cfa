using System.Runtime.CompilerServices;

namespace RamPay.Core;

/// <summary>
/// Rules version 3: payments without a ceiling, some of them only in the cold tier. The state hash can then no longer list
/// every payment (most are on disk, and what is resident is not logical state), so it covers them by a running digest: every
/// version of every payment, in the order the ledger made it (each new payment, the payment a command acted on after the
/// command, each hold as it lapses), with each note's bytes as the payment is made. Integer arithmetic only, the same on
/// every machine; the same journal gives the same digest with or without a cold tier, live or replayed.
/// </summary>
public sealed partial class Ledger
{
    private ulong _paymentDigestA = 0x452821E638D01377, _paymentDigestB = 0xBE5466CF34E90C6C;

    public (ulong A, ulong B) PaymentDigest => (_paymentDigestA, _paymentDigestB);

    /// <summary>After a command executed under rules version 3: mixes the payment it acted on and the payments it made.</summary>
    private void MixPayments(in Command command, ReadOnlySpan<byte> attachment, long paymentsBefore)
    {
        if (PaymentLookup.Targets(command.Type) && _payments.Contains(command.PaymentId) && command.PaymentId <= paymentsBefore)
            MixChanged(_payments[command.PaymentId]);
        for (long id = paymentsBefore + 1; id <= _payments.Count; id++)
        {
            MixPayment(_payments[id]);
            if (!attachment.IsEmpty && _notes.ContainsKey(id)) MixBytes(attachment);
        }
    }

    /// <summary>A payment that existed before this command, after the command acted on it (or its hold lapsed).</summary>
    private void MixChanged(in Payment p)
    {
        MixPayment(p);
        _payments.Changed(p.Id, _commandsApplied); // a follower's note of when (docs/snapshots.md)
    }

    /// <summary>
    /// The snapshotter's replica (a follower of the payments' cold tier) before writing a snapshot: drops from memory what the
    /// writer's store holds durably at this count, so that the snapshot's resident part stays small. Nothing for other ledgers.
    /// </summary>
    public void TrimPaymentsForSnapshot() => _payments.TrimForSnapshot();

    /// <summary>
    /// A query is about to read the ledger on the writer: payments only the cold tier holds come from
    /// <paramref name="prefetched"/> (read by the prefetch stage); one not there throws <see cref="ColdPaymentNeededException"/>
    /// when <paramref name="noIo"/>, else is read from the store on this thread (counted). <see cref="EndQuery"/> after it.
    /// </summary>
    public void BeginQuery(QueryPrefetch? prefetched, bool noIo) => _payments.BeginQuery(prefetched, noIo);

    public void EndQuery() => _payments.EndQuery();

    /// <summary>Query reads of cold payments served by the prefetch stage's copies, and queries sent round again for one.</summary>
    public (long PrefetchHits, long Retries) QueryColdReads => (Volatile.Read(ref _payments.QueryPrefetchHits), Volatile.Read(ref _payments.QueryColdRetries));

    private void MixPayment(in Payment p)
    {
        ulong a = _paymentDigestA, b = _paymentDigestB;
        Step(ref a, ref b, (ulong)p.Id);
        Step(ref a, ref b, (ulong)p.FromAccount);
        Step(ref a, ref b, (ulong)p.ToAccount);
        Step(ref a, ref b, (ulong)p.Amount);
        Step(ref a, ref b, (ulong)p.Captured);
        Step(ref a, ref b, (ulong)p.Refunded);
        Step(ref a, ref b, (ulong)p.CreatedAtMs);
        Step(ref a, ref b, (ulong)p.ExpiresAtMs);
        Step(ref a, ref b, (ulong)p.ParentId);
        Step(ref a, ref b, (ulong)p.PrevForFrom);
        Step(ref a, ref b, (ulong)p.PrevForTo);
        Step(ref a, ref b, p.Currency.Code | (ulong)p.Kind << 16 | (ulong)p.Status << 24 | (ulong)(ushort)p.FraudReasons << 32 | (ulong)p.FraudModel << 48);
        Step(ref a, ref b, BitConverter.SingleToUInt32Bits(p.FraudScore));
        _paymentDigestA = a;
        _paymentDigestB = b;
    }

    private void MixBytes(ReadOnlySpan<byte> bytes)
    {
        ulong a = _paymentDigestA, b = _paymentDigestB;
        Step(ref a, ref b, (ulong)(uint)bytes.Length | 1UL << 63);
        while (bytes.Length >= 8)
        {
            Step(ref a, ref b, System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(bytes));
            bytes = bytes[8..];
        }
        ulong tail = 0;
        for (int i = 0; i < bytes.Length; i++) tail |= (ulong)bytes[i] << (8 * i);
        Step(ref a, ref b, tail);
        _paymentDigestA = a;
        _paymentDigestB = b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(ref ulong a, ref ulong b, ulong v)
    {
        a = (a ^ v) * 0x9E3779B97F4A7C15;
        a ^= a >> 29;
        b = (b + v + (a >> 17)) * 0xBF58476D1CE4E5B9;
        b ^= b >> 31;
    }

    /// <summary>
    /// At the upgrade to rules version 3: the payments made so far (all in memory: older rules keep every one) enter the
    /// digest in id order, with their notes, and the ceiling goes. Once, at a journaled point: replay does the same.
    /// </summary>
    private void StartPaymentDigest()
    {
        for (long id = 1; id <= _payments.Count; id++)
        {
            MixPayment(_payments[id]);
            if (_notes.TryGetValue(id, out var note)) MixBytes(note.Encode());
        }
        _payments.Capacity = long.MaxValue;
        _payments.Activate();
    }
}
