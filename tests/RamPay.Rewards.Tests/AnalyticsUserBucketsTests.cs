using RamPay.Analytics;
using RamPay.Core;
using RamPay.Events;

namespace RamPay.Rewards.Tests;

/// <summary>
/// The per-user buckets (<c>GET /v1/analytics/me</c>) against a plain recount of the same payments: the buckets kept at
/// hand per user (<see cref="AnalyticsRollups"/>'s cache) must never send a payment to the wrong minute, hour, day or
/// currency, with times out of order, users paying in two currencies, and more users than the cache holds.
/// </summary>
public sealed class AnalyticsUserBucketsTests
{
    private const long Minute = 60_000, Day = 86_400_000;
    private static readonly ushort[] Currencies = [Currency.USD.Code, Currency.EUR.Code];

    [Fact]
    public void Every_user_bucket_is_the_sum_of_that_users_payments_in_it()
    {
        var random = new Random(6122026);
        long t = 1_800_000_000_000;
        var payments = new List<(long At, long From, long To, ushort Currency, long Amount)>();
        for (int n = 0; n < 20_000; n++)
        {
            // Mostly forward in time (seconds to minutes apart, crossing hours and days), sometimes a few minutes back.
            t += random.Next(10) == 0 ? -random.Next(5 * 60_000) : random.Next(40_000);
            payments.Add((t, random.Next(1, 60), random.Next(0, 60), Currencies[random.Next(2)], random.Next(1, 100_000)));
        }
        Check(payments, batchSize: 333);
    }

    [Fact]
    public void More_users_than_the_cache_holds_are_counted_the_same()
    {
        long t = 1_800_000_000_000;
        int users = AnalyticsRollups.MaxUsersAtHand + 5_000;
        var payments = new List<(long, long, long, ushort, long)>();
        // Twice round all of them: the second pass finds each user gone from the cache (it started again) or still there.
        for (int pass = 0; pass < 2; pass++)
            for (int u = 1; u <= users; u++) payments.Add((t += 7, u, u % 1_000 + 1, Currencies[u % 2], u));
        Check(payments, batchSize: 8_000);
    }

    private static void Check(List<(long At, long From, long To, ushort Currency, long Amount)> payments, int batchSize)
    {
        var rollups = new AnalyticsRollups();
        var expected = new Dictionary<(long, Interval, long, ushort), long[]>();
        long sequence = 0;
        foreach (var chunk in payments.Chunk(batchSize))
        {
            var events = new List<EventRecord>();
            var fields = new EventFields[chunk.Length];
            for (int k = 0; k < chunk.Length; k++)
            {
                var p = chunk[k];
                events.Add(new EventRecord(new EventPosition(++sequence, 0, 1), "PaymentApproved", 1, p.At, p.From, Array.Empty<byte>()));
                fields[k] = Approved(p.Currency, p.Amount, p.From, p.To);
                foreach (var i in AnalyticsRollups.Intervals)
                {
                    long start = AnalyticsRollups.StartOf(p.At, i);
                    Add(expected, (p.From, i, start, p.Currency), 0, p.Amount);
                    if (p.To > 0) Add(expected, (p.To, i, start, p.Currency), 2, p.Amount); // owner 0: a platform account, not a user
                }
            }
            rollups.Apply(new EventBatch(events, "kafka:t/0"), fields, null);
        }
        Assert.Equal(expected.Count, rollups.UserBuckets.Count);
        foreach (var (key, values) in expected)
        {
            Assert.True(rollups.UserBuckets.TryGetValue(key, out var got), $"no bucket {key}");
            Assert.Equal(values, got);
        }
    }

    /// <summary>The fields of a transfer's <c>PaymentApproved</c> between two users' accounts, as the Kafka worker hands them on.</summary>
    internal static EventFields Approved(ushort currency, long amount, long fromOwner, long toOwner)
    {
        var f = EventFields.Empty;
        f.Valid = f.PayloadRead = f.HasPayment = true;
        (f.Type, f.TypeName, f.Kind) = (EventType.PaymentApproved, "PaymentApproved", EventPaymentKind.Transfer);
        (f.Currency, f.Amount, f.Captured) = (currency, amount, amount);
        (f.HasFromOwner, f.FromOwner, f.HasToOwner, f.ToOwner) = (true, fromOwner, true, toOwner);
        return f;
    }

    /// <summary>One payment into a recount's bucket: measure (count) and the next (amount).</summary>
    internal static void Add(Dictionary<(long, Interval, long, ushort), long[]> buckets, (long, Interval, long, ushort) key, int measure, long amount)
    {
        if (!buckets.TryGetValue(key, out var b)) buckets[key] = b = new long[4];
        b[measure]++;
        b[measure + 1] += amount;
    }
}
