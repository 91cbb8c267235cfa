using RamPay.Analytics;
using RamPay.Core;
using System.Runtime.CompilerServices;

namespace RamPay.Rewards.Tests;

/// <summary>
/// The events behind the analytics golden files (tests/RamPay.Rewards.Tests/Golden/analytics-*): every event type the
/// rollups count, in two currencies, two sources, with fraud scores of two model versions, a review's approval, users on
/// both sides, across three days and out of time order. Frozen: the golden files were written from exactly these, so
/// changing them breaks the golden tests (add a new builder beside this one instead).
/// </summary>
internal static class AnalyticsGolden
{
    public static string Folder([CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "Golden");

    public const long T0 = 1_790_000_000_000; // 2026-09-21T...: a fixed time, nothing to do with today

    /// <summary>
    /// The batches, in order: (source, events, their fields, the scores the server's lookup would give).
    /// <paramref name="lateModel"/>: from batch 3 on, a third model version scores every third payment (the version 3
    /// golden log names it: a model first seen after the snapshot).
    /// </summary>
    public static List<(string Source, List<EventRecord> Events, EventFields[] Fields, Dictionary<long, PaymentScore> Scores)> Batches(bool lateModel = false)
    {
        var batches = new List<(string, List<EventRecord>, EventFields[], Dictionary<long, PaymentScore>)>();
        ushort usd = Currency.USD.Code, eur = Currency.EUR.Code;
        long sequence = 0;
        for (int b = 0; b < 6; b++)
        {
            string source = b % 2 == 0 ? EventBatch.LogSource : "kafka:payments/3";
            var events = new List<EventRecord>();
            var fields = new List<EventFields>();
            var scores = new Dictionary<long, PaymentScore>();
            for (int n = 0; n < 12; n++)
            {
                long k = b * 12 + n;
                // Mostly forward a few minutes at a time, every fifth event 70 minutes back; batch 5 is two days on.
                long at = T0 + k * 211_000 - (k % 5 == 4 ? 70 * 60_000 : 0) + (b == 5 ? 2 * 86_400_000 : 0);
                ushort currency = k % 3 == 0 ? eur : usd;
                long payment = 100 + k, amount = 1_000 + k * 37;
                long from = 10 + k % 7, to = 20 + k % 4;
                var type = (int)(k % 10) switch
                {
                    0 => EventType.PaymentCreated, 1 => EventType.PaymentApproved, 2 => EventType.PaymentCaptured,
                    3 => EventType.PaymentVoided, 4 => EventType.PaymentRefunded, 5 => EventType.PaymentFailed,
                    6 => EventType.AnomalyDetected, 7 => EventType.RewardIssued, 8 => EventType.RewardReversed,
                    _ => EventType.PaymentCreated,
                };
                var f = EventFields.Empty;
                f.Valid = f.PayloadRead = true;
                f.Type = type;
                f.TypeName = EventTypes.Name(type);
                f.HasPayment = true;
                (f.PaymentId, f.Amount, f.Currency, f.FromAccount, f.ToAccount) = (payment, amount, currency, from, to);
                f.Kind = (k % 4) switch { 0 => EventPaymentKind.Transfer, 1 => EventPaymentKind.Deposit, 2 => EventPaymentKind.Authorization, _ => EventPaymentKind.Transfer };
                f.CreatedAtMs = k % 6 == 5 ? long.MinValue : at - 1_000;
                f.Captured = amount / 2;
                f.Reason = (k % 3) switch { 0 => EventReason.Expired, 1 => EventReason.HeldForReview, _ => EventReason.ReviewRejected };
                if (type == EventType.PaymentRefunded) (f.HasRefund, f.RefundId, f.RefundAmount, f.RefundCreatedAtMs) = (true, 900 + k, amount / 3, at - 500);
                (f.HasFromOwner, f.FromOwner) = (k % 8 != 7, 1 + k % 5);
                (f.HasToOwner, f.ToOwner) = (true, k % 6 == 0 ? 0 : 2 + k % 3);
                // One event in twelve is not readable (its position still counts).
                if (n == 11) f = EventFields.Empty;
                int ordinal = type == EventType.PaymentApproved && k % 20 == 1 ? 0 : 1; // a review's approval now and then
                events.Add(new EventRecord(new EventPosition(++sequence, 0, ordinal), f.Valid ? f.TypeName! : "PaymentTeleported", 1, at, from, ReadOnlyMemory<byte>.Empty));
                fields.Add(f);
                if (type == EventType.PaymentCreated) scores[payment] = new(lateModel && b >= 3 && k % 3 == 0 ? "model-c" : k % 2 == 0 ? "model-a" : "model-b", (k % 11) / 10.5f);
            }
            batches.Add((source, events, [.. fields], scores));
        }
        return batches;
    }

    /// <summary>The golden events applied to <paramref name="rollups"/> as a consumer would, batch by batch.</summary>
    public static AnalyticsRollups Apply(AnalyticsRollups rollups)
    {
        foreach (var (source, events, fields, scores) in Batches()) rollups.Apply(new EventBatch(events, source), fields, scores);
        return rollups;
    }

    /// <summary>Every bucket, user bucket and score cell of <paramref name="r"/>, one line each, sorted: two rollups hold the same when these are equal.</summary>
    public static List<string> Lines(AnalyticsRollups r)
    {
        var lines = new List<string>();
        lock (r.Gate)
        {
            foreach (var (k, v) in r.Buckets) lines.Add($"b {k} {string.Join(',', v)}");
            foreach (var (k, v) in r.UserBuckets) lines.Add($"u {k} {string.Join(',', v.Take(4))}");
            foreach (var (k, v) in r.ActiveSets) lines.Add($"a {k} {string.Join(',', v.Senders.Order())} / {string.Join(',', v.Receivers.Order())}");
            foreach (var (k, v) in r.Scores) lines.Add($"s {k.Interval} {k.StartMs} {k.Currency} {r.Models[k.Model]} {k.Bin} {v}");
            foreach (var (k, v) in r.Positions) lines.Add($"p {k} {v}");
            lines.Add($"e {r.EventsApplied}");
            lines.Add($"r {r.UserWatermarkMs} {string.Join(',', r.UserBucketsFromAll.ToArray())} {r.UserPaymentsBeyondRetention}");
        }
        lines.Sort(StringComparer.Ordinal);
        return lines;
    }
}
