using System.Text.Json;
using RamPay.Core;
using RamPay.Events;

namespace RamPay.Analytics;

/// <summary>The bucket sizes. Persisted: values frozen.</summary>
public enum Interval : byte
{
    Minute = 1,
    Hour = 2,
    Day = 3,
}

/// <summary>What one bucket counts, per currency. Persisted by index: only ever appended to.</summary>
public enum Measure
{
    PaymentsCreated, PaymentsCreatedAmount,
    TransfersCreated, TransfersCreatedAmount,
    DepositsCreated, DepositsCreatedAmount,
    AuthorizationsCreated, AuthorizationsCreatedAmount,
    TransfersPosted, TransfersPostedAmount,
    DepositsPosted, DepositsPostedAmount,
    Captures, CapturesAmount,
    Voids, VoidsAmount,
    Expired, ExpiredAmount,
    Refunds, RefundsAmount,
    Failed, FailedAmount,
    FraudHeld, FraudDeclined, ReviewApproved, ReviewDeclined,
    Rewards, RewardsAmount, RewardReversals, RewardReversalsAmount,
    ActiveSenders, ActiveReceivers,
}

/// <summary>
/// Rollups of RamPay's events by minute, hour and day (UTC), per currency, and per user (sent and received), in memory.
/// Single-threaded (the consumer's calls are never concurrent); queries copy out under a lock. docs/analytics.md.
/// </summary>
public sealed class AnalyticsRollups
{
    public static readonly int MeasureCount = Enum.GetValues<Measure>().Length;
    public static readonly Interval[] Intervals = [Interval.Minute, Interval.Hour, Interval.Day];
    internal const int UserMeasures = 4; // sent count, sent amount, received count, received amount
    // Distinct senders and receivers are kept for the newest few buckets of each interval (journal order is time order
    // up to the ms that racing producers may differ by), then only their counts remain.
    private const int OpenBucketsKept = 3;

    internal readonly Dictionary<(Interval Interval, long StartMs, ushort Currency), long[]> Buckets = [];
    internal readonly Dictionary<(long User, Interval Interval, long StartMs, ushort Currency), long[]> UserBuckets = [];
    internal readonly Dictionary<(Interval Interval, long StartMs, ushort Currency), (HashSet<long> Senders, HashSet<long> Receivers)> ActiveSets = [];
    internal readonly Dictionary<string, EventPosition> Positions = new(StringComparer.Ordinal);
    internal readonly object Gate = new();

    public long EventsApplied { get; internal set; }

    public static long Size(Interval i) => i switch { Interval.Minute => 60_000, Interval.Hour => 3_600_000, _ => 86_400_000 };
    public static long StartOf(long timeMs, Interval i) => timeMs - (((timeMs % Size(i)) + Size(i)) % Size(i));

    /// <summary>The position through which <paramref name="source"/>'s events are in the rollups.</summary>
    public EventPosition PositionOf(string source) => Positions.GetValueOrDefault(source);

    /// <summary>Adds a batch's events not yet in the rollups (an event at or before the source's position is skipped: redelivery).</summary>
    public void Apply(EventBatch batch)
    {
        lock (Gate)
        {
            var position = Positions.GetValueOrDefault(batch.Source);
            foreach (var e in batch.Events)
            {
                if (e.Position <= position) continue;
                Apply(e);
                position = e.Position;
                EventsApplied++;
            }
            Positions[batch.Source] = position;
        }
    }

    private void Apply(EventRecord e)
    {
        using var doc = e.Parse();
        var root = doc.RootElement;
        bool hasPayment = root.TryGetProperty("payment", out var payment) && payment.ValueKind == JsonValueKind.Object;
        long amount = hasPayment ? Long(payment, "amount") : 0;
        string? kind = hasPayment ? payment.GetProperty("kind").GetString() : null;
        string? reason = root.TryGetProperty("reason", out var r) ? r.GetString() : null;
        long at = e.OccurredAtMs;
        var currency = Cur(hasPayment ? payment : default);
        switch (e.Type)
        {
            case "PaymentCreated":
                at = Time(payment, "created_at", at);
                Add(at, currency, Measure.PaymentsCreated, Measure.PaymentsCreatedAmount, amount);
                if (kind == "transfer") Add(at, currency, Measure.TransfersCreated, Measure.TransfersCreatedAmount, amount);
                else if (kind == "deposit") Add(at, currency, Measure.DepositsCreated, Measure.DepositsCreatedAmount, amount);
                else if (kind == "authorization") Add(at, currency, Measure.AuthorizationsCreated, Measure.AuthorizationsCreatedAmount, amount);
                if (kind != "deposit") Active(at, currency, Long(payment, "from_account"), Long(payment, "to_account"));
                break;
            case "PaymentApproved":
                // Ordinal 0: a review's approval (a creation's approval is its second event).
                if (e.Position.Ordinal == 0) Add(at, currency, Measure.ReviewApproved, null, 0);
                if (kind == "deposit") Add(at, currency, Measure.DepositsPosted, Measure.DepositsPostedAmount, amount);
                else Add(at, currency, Measure.TransfersPosted, Measure.TransfersPostedAmount, amount);
                Users(root, at, currency, amount);
                break;
            case "PaymentAuthorized":
                if (e.Position.Ordinal == 0) Add(at, currency, Measure.ReviewApproved, null, 0);
                break;
            case "PaymentCaptured":
                long captured = Long(payment, "captured");
                Add(at, currency, Measure.Captures, Measure.CapturesAmount, captured);
                Users(root, at, currency, captured);
                break;
            case "PaymentVoided":
                if (reason == "expired") Add(at, currency, Measure.Expired, Measure.ExpiredAmount, amount);
                else Add(at, currency, Measure.Voids, Measure.VoidsAmount, amount);
                break;
            case "PaymentRefunded":
                var refund = root.GetProperty("refund");
                long refunded = Long(refund, "amount");
                at = Time(refund, "created_at", at);
                Add(at, currency, Measure.Refunds, Measure.RefundsAmount, refunded);
                Users(root, at, currency, refunded);
                break;
            case "PaymentFailed":
                if (reason == "review_rejected") Add(at, currency, Measure.ReviewDeclined, null, 0);
                else Add(at, currency, Measure.Failed, Measure.FailedAmount, amount);
                break;
            case "AnomalyDetected":
                Add(at, currency, reason == "held_for_review" ? Measure.FraudHeld : Measure.FraudDeclined, null, 0);
                break;
            case "RewardIssued":
            case "RewardReversed":
                at = Time(payment, "created_at", at);
                bool issued = e.Type == "RewardIssued";
                Add(at, currency, issued ? Measure.Rewards : Measure.RewardReversals, issued ? Measure.RewardsAmount : Measure.RewardReversalsAmount, amount);
                Users(root, at, currency, amount);
                break;
        }
    }

    private static long Long(JsonElement o, string name) =>
        o.ValueKind == JsonValueKind.Object && o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;

    private static long Time(JsonElement o, string name, long fallback) =>
        o.ValueKind == JsonValueKind.Object && o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.TryGetDateTimeOffset(out var t)
            ? t.ToUnixTimeMilliseconds() : fallback;

    private static ushort Cur(JsonElement payment) =>
        payment.ValueKind == JsonValueKind.Object && payment.TryGetProperty("currency", out var c) && c.ValueKind == JsonValueKind.String
        && Currency.TryParse(c.GetString(), out var currency) ? currency.Code : (ushort)0;

    private void Add(long at, ushort currency, Measure count, Measure? sum, long amount)
    {
        foreach (var i in Intervals)
        {
            var b = Bucket(i, StartOf(at, i), currency);
            b[(int)count]++;
            if (sum is { } s) b[(int)s] += amount;
        }
    }

    private long[] Bucket(Interval i, long start, ushort currency)
    {
        var key = (i, start, currency);
        if (!Buckets.TryGetValue(key, out var b)) Buckets[key] = b = new long[MeasureCount];
        return b;
    }

    private void Active(long at, ushort currency, long from, long to)
    {
        foreach (var i in Intervals)
        {
            long start = StartOf(at, i);
            var key = (i, start, currency);
            if (!ActiveSets.TryGetValue(key, out var sets))
            {
                ActiveSets[key] = sets = ([], []);
                // Forget the distinct sets of buckets well behind this one: their counts stay.
                long horizon = start - OpenBucketsKept * Size(i);
                foreach (var old in ActiveSets.Keys.Where(k => k.Interval == i && k.StartMs < horizon).ToList()) ActiveSets.Remove(old);
            }
            var b = Bucket(i, start, currency);
            if (sets.Senders.Add(from)) b[(int)Measure.ActiveSenders]++;
            if (sets.Receivers.Add(to)) b[(int)Measure.ActiveReceivers]++;
        }
    }

    /// <summary>Money a user sent or received (the owners of balances.from and balances.to; platform accounts, owner 0, are not users).</summary>
    private void Users(JsonElement root, long at, ushort currency, long amount)
    {
        if (!root.TryGetProperty("balances", out var balances) || balances.ValueKind != JsonValueKind.Object) return;
        long sender = balances.TryGetProperty("from", out var f) ? Long(f, "owner") : 0;
        long receiver = balances.TryGetProperty("to", out var t) ? Long(t, "owner") : 0;
        foreach (var i in Intervals)
        {
            long start = StartOf(at, i);
            if (sender > 0) { var u = User(sender, i, start, currency); u[0]++; u[1] += amount; }
            if (receiver > 0) { var u = User(receiver, i, start, currency); u[2]++; u[3] += amount; }
        }
    }

    private long[] User(long user, Interval i, long start, ushort currency)
    {
        var key = (user, i, start, currency);
        if (!UserBuckets.TryGetValue(key, out var u)) UserBuckets[key] = u = new long[UserMeasures];
        return u;
    }

    /// <summary>The non-empty buckets of [fromMs, toMs) at <paramref name="interval"/>, oldest first; currency 0 = every currency.</summary>
    public List<(long StartMs, Currency Currency, long[] Values)> Query(Interval interval, long fromMs, long toMs, ushort currency)
    {
        var list = new List<(long, Currency, long[])>();
        var currencies = new List<ushort>();
        lock (Gate)
        {
            if (currency != 0) currencies.Add(currency);
            else currencies.AddRange(Buckets.Keys.Select(k => k.Currency).Distinct().Order());
            for (long start = StartOf(fromMs, interval); start < toMs; start += Size(interval))
                foreach (ushort c in currencies)
                    if (Buckets.TryGetValue((interval, start, c), out var b)) list.Add((start, new Currency(c), (long[])b.Clone()));
        }
        return list;
    }

    /// <summary>A user's sent and received totals per bucket: [sent count, sent amount, received count, received amount].</summary>
    public List<(long StartMs, Currency Currency, long[] Values)> QueryUser(long user, Interval interval, long fromMs, long toMs)
    {
        var list = new List<(long, Currency, long[])>();
        lock (Gate)
        {
            var currencies = UserBuckets.Keys.Where(k => k.User == user && k.Interval == Interval.Day).Select(k => k.Currency).Distinct().Order().ToList();
            for (long start = StartOf(fromMs, interval); start < toMs; start += Size(interval))
                foreach (ushort c in currencies)
                    if (UserBuckets.TryGetValue((user, interval, start, c), out var u)) list.Add((start, new Currency(c), (long[])u.Clone()));
        }
        return list;
    }

    public static string MeasureName(Measure m) => m switch
    {
        Measure.PaymentsCreated => "payments_created", Measure.PaymentsCreatedAmount => "payments_created_amount",
        Measure.TransfersCreated => "transfers_created", Measure.TransfersCreatedAmount => "transfers_created_amount",
        Measure.DepositsCreated => "deposits_created", Measure.DepositsCreatedAmount => "deposits_created_amount",
        Measure.AuthorizationsCreated => "authorizations_created", Measure.AuthorizationsCreatedAmount => "authorizations_created_amount",
        Measure.TransfersPosted => "transfers_posted", Measure.TransfersPostedAmount => "transfers_posted_amount",
        Measure.DepositsPosted => "deposits_posted", Measure.DepositsPostedAmount => "deposits_posted_amount",
        Measure.Captures => "captures", Measure.CapturesAmount => "captures_amount",
        Measure.Voids => "voids", Measure.VoidsAmount => "voids_amount",
        Measure.Expired => "expired", Measure.ExpiredAmount => "expired_amount",
        Measure.Refunds => "refunds", Measure.RefundsAmount => "refunds_amount",
        Measure.Failed => "failed", Measure.FailedAmount => "failed_amount",
        Measure.FraudHeld => "fraud_held_for_review", Measure.FraudDeclined => "fraud_declined",
        Measure.ReviewApproved => "review_approved", Measure.ReviewDeclined => "review_declined",
        Measure.Rewards => "rewards", Measure.RewardsAmount => "rewards_amount",
        Measure.RewardReversals => "reward_reversals", Measure.RewardReversalsAmount => "reward_reversals_amount",
        Measure.ActiveSenders => "active_senders", Measure.ActiveReceivers => "active_receivers",
        _ => throw new ArgumentOutOfRangeException(nameof(m)),
    };
}
