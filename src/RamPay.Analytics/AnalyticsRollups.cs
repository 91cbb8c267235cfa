using RamPay.Core;
using RamPay.Events;

namespace RamPay.Analytics;

/// <summary>A payment's fraud score and the version of the model that gave it, as the ledger holds them.</summary>
public readonly record struct PaymentScore(string Model, float Score);

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
/// Applied one batch at a time (under <c>Gate</c>; the analytics worker parses its partitions' batches side by side and applies them in turn); queries copy out under the same lock. docs/analytics.md.
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
    /// <summary>The fraud score distribution: scored payments per (interval, bucket, currency, model, bin of 0.1).</summary>
    internal readonly Dictionary<(Interval Interval, long StartMs, ushort Currency, ushort Model, byte Bin), long> Scores = [];
    /// <summary>The model versions <see cref="Scores"/> names, by index (persisted in this order; only appended to).</summary>
    internal readonly List<string> Models = [];
    private readonly Dictionary<string, ushort> _modelIndex = new(StringComparer.Ordinal);
    internal readonly object Gate = new();

    public long EventsApplied { get; internal set; }

    public AnalyticsRollups() : this(AnalyticsRetention.Forever) { }

    public AnalyticsRollups(AnalyticsRetention retention) => _retention = retention;

    public static long Size(Interval i) => i switch { Interval.Minute => 60_000, Interval.Hour => 3_600_000, _ => 86_400_000 };
    public static long StartOf(long timeMs, Interval i) => timeMs - (((timeMs % Size(i)) + Size(i)) % Size(i));

    /// <summary>The default of the most buckets one query may span (31 days of minutes): the server's <c>Rewards:AnalyticsMaxBuckets</c>.</summary>
    public const long DefaultMaxBuckets = 31L * 24 * 60;

    /// <summary>
    /// How many buckets of <paramref name="interval"/> a query of [fromMs, toMs) walks (the one holding fromMs up to the
    /// last starting before toMs); 0 for an empty range. In 128-bit arithmetic, so no pair of longs overflows it.
    /// </summary>
    public static long BucketCount(Interval interval, long fromMs, long toMs)
    {
        if (toMs <= fromMs) return 0;
        Int128 size = Size(interval), from = fromMs;
        Int128 start = from - (((from % size) + size) % size);
        return (long)Int128.Min((toMs - start + size - 1) / size, long.MaxValue);
    }

    /// <summary>A query's range checked against its bound (a query walks every bucket of its range, under the rollups' lock).</summary>
    private static void CheckRange(Interval interval, long fromMs, long toMs, long maxBuckets)
    {
        if (maxBuckets < 1) throw new ArgumentOutOfRangeException(nameof(maxBuckets), maxBuckets, "the bound must be positive");
        long count = BucketCount(interval, fromMs, toMs);
        if (count > maxBuckets)
            throw new ArgumentOutOfRangeException(nameof(toMs), count, $"the range spans {count} buckets of a {interval.ToString().ToLowerInvariant()}; at most {maxBuckets} per query");
    }

    /// <summary>The position through which <paramref name="source"/>'s events are in the rollups.</summary>
    public EventPosition PositionOf(string source) => Positions.GetValueOrDefault(source);

    /// <summary>Adds a batch's events not yet in the rollups (an event at or before the source's position is skipped: redelivery).</summary>
    public void Apply(EventBatch batch) => Apply(batch, Parse(batch.Events), null);

    /// <summary>Each event's fields (<see cref="EventFields.Valid"/> false for bytes that are no JSON object: such an event counts nowhere).</summary>
    public static EventFields[] Parse(IReadOnlyList<EventRecord> events)
    {
        var fields = new EventFields[events.Count];
        for (int i = 0; i < fields.Length; i++) EventFields.TryRead(events[i].Json.Span, out fields[i]);
        return fields;
    }

    /// <summary>
    /// The payments whose scores the batch's events would count (<see cref="Apply(EventBatch, EventFields[], IReadOnlyDictionary{long, PaymentScore}?)"/>):
    /// each payment's first event, <c>PaymentCreated</c>, or <c>PaymentFailed</c> with <c>fraud_suspected</c> for one declined
    /// (which has no PaymentCreated). Every scored payment has exactly one of them.
    /// </summary>
    public static List<long> ScoreCandidates(IReadOnlyList<EventRecord> events, EventFields[] fields)
    {
        var ids = new List<long>();
        for (int i = 0; i < fields.Length; i++)
            if (IsFirstEvent(events[i], in fields[i])) ids.Add(fields[i].PaymentId);
        return ids;
    }

    private static bool IsFirstEvent(EventRecord e, in EventFields f) =>
        f.Valid && f.HasPayment && f.PaymentId > 0
        && (e.Type == "PaymentCreated" || (e.Type == "PaymentFailed" && f.Reason == EventReason.FraudSuspected));

    /// <summary>
    /// Adds a batch's events not yet in the rollups, with the fraud scores of the payments they create
    /// (<paramref name="scores"/>: a payment's score and model version as the ledger holds them; null = not known here,
    /// as in a Kafka worker, which then counts no scores).
    /// </summary>
    public void Apply(EventBatch batch, EventFields[] fields, IReadOnlyDictionary<long, PaymentScore>? scores)
    {
        Invariant.Check(fields.Length == batch.Events.Count, "one EventFields per event");
        lock (Gate)
        {
            var position = Positions.GetValueOrDefault(batch.Source);
            var before = position;
            bool logged = false;
            try
            {
                for (int i = 0; i < fields.Length; i++)
                {
                    var e = batch.Events[i];
                    if (e.Position <= position) continue;
                    ref readonly var f = ref fields[i];
                    // The type as the fields read it from the JSON (the same as the record's); a record whose JSON names none by its type.
                    var type = f.Valid ? (f.Type != 0 ? f.Type : TypeOf(e.Type)) : 0;
                    PaymentScore? score = f.Valid && scores is not null && IsFirstEvent(e, in f) && scores.TryGetValue(f.PaymentId, out var s) ? s : null;
                    ApplyEvent(e.Position, e.OccurredAtMs, type, in f, score);
                    if (Log is { } log)
                    {
                        if (!logged) log.BeginBatch(batch.Source);
                        logged = true;
                        log.Add(e.Position, e.OccurredAtMs, type, in f, score, this);
                    }
                    position = e.Position;
                }
            }
            catch when (logged)
            {
                Log!.AbortBatch(); // an event the rollups refuse (InvalidDataException) throws: the log keeps no part of its batch
                throw;
            }
            if (logged) Log!.EndBatch();
            if (position != before) Positions[batch.Source] = position; // as a replay of the log sets it: only when an event was applied
        }
    }

    /// <summary>
    /// Where the events applied are written down as they are applied (<see cref="AnalyticsLog"/>: what
    /// <see cref="ApplyEvent"/> reads of each, so that replaying it rebuilds exactly these rollups); null = nowhere.
    /// </summary>
    internal AnalyticsLog.Buffer? Log { get; set; }

    /// <summary>
    /// One event into the rollups: everything an event does, whether it comes from a batch or from the log's replay
    /// (<paramref name="type"/> 0 = fields not read, or a type the rollups do not count: only the count of events moves).
    /// </summary>
    internal void ApplyEvent(EventPosition position, long occurredAtMs, EventType type, in EventFields f, PaymentScore? score)
    {
        if (type != 0)
        {
            Apply(position, occurredAtMs, type, in f);
            if (score is { } s) AddScore(Time(f.CreatedAtMs, occurredAtMs), f.Currency, s);
        }
        EventsApplied++;
    }

    /// <summary>The bin of a score: 0 = [0, 0.1), ..., 9 = [0.9, 1]; float arithmetic, as PostgreSQL's <c>floor(real * 10)</c> in rampay_fraud_scores.</summary>
    public static byte ScoreBin(float score) => (byte)Math.Clamp((int)MathF.Floor(score * 10f), 0, 9);

    private void AddScore(long at, ushort currency, PaymentScore score)
    {
        if (!_modelIndex.TryGetValue(score.Model, out ushort model))
        {
            Invariant.Check(Models.Count < ushort.MaxValue, "too many fraud model versions");
            model = (ushort)Models.Count;
            Models.Add(score.Model);
            _modelIndex[score.Model] = model;
        }
        byte bin = ScoreBin(score.Score);
        foreach (var i in Intervals)
        {
            var key = (i, StartOf(at, i), currency, model, bin);
            Scores[key] = Scores.GetValueOrDefault(key) + 1;
            Bucket(i, key.Item2, currency); // so the endpoint lists the bucket the cell belongs to
        }
    }

    internal int ModelIndexOf(string model) => _modelIndex[model];

    /// <summary>Registers a model version read from the file (in its index order).</summary>
    internal void AddModel(string model)
    {
        _modelIndex.Add(model, (ushort)Models.Count);
        Models.Add(model);
    }

    /// <summary>The score distribution of [fromMs, toMs) at <paramref name="interval"/>: (bucket start, currency, model version, bin, payments), oldest first.</summary>
    public List<(long StartMs, Currency Currency, string Model, int Bin, long Payments)> QueryScores(Interval interval, long fromMs, long toMs, ushort currency, long maxBuckets = DefaultMaxBuckets)
    {
        CheckRange(interval, fromMs, toMs, maxBuckets);
        lock (Gate)
        {
            return [.. Scores.Where(kv => kv.Key.Interval == interval && kv.Key.StartMs >= StartOf(fromMs, interval) && kv.Key.StartMs < toMs && (currency == 0 || kv.Key.Currency == currency))
                .OrderBy(kv => kv.Key.StartMs).ThenBy(kv => kv.Key.Currency).ThenBy(kv => Models[kv.Key.Model], StringComparer.Ordinal).ThenBy(kv => kv.Key.Bin)
                .Select(kv => (kv.Key.StartMs, new Currency(kv.Key.Currency), Models[kv.Key.Model], (int)kv.Key.Bin, kv.Value))];
        }
    }

    private void Apply(EventPosition position, long occurredAtMs, EventType type, in EventFields f)
    {
        long amount = f.Amount;
        var kind = f.Kind;
        long at = occurredAtMs;
        ushort currency = f.HasPayment ? f.Currency : (ushort)0;
        switch (type)
        {
            case EventType.PaymentCreated:
                at = Time(f.CreatedAtMs, at);
                Add(at, currency, Measure.PaymentsCreated, Measure.PaymentsCreatedAmount, amount);
                if (kind == EventPaymentKind.Transfer) Add(at, currency, Measure.TransfersCreated, Measure.TransfersCreatedAmount, amount);
                else if (kind == EventPaymentKind.Deposit) Add(at, currency, Measure.DepositsCreated, Measure.DepositsCreatedAmount, amount);
                else if (kind == EventPaymentKind.Authorization) Add(at, currency, Measure.AuthorizationsCreated, Measure.AuthorizationsCreatedAmount, amount);
                if (kind != EventPaymentKind.Deposit) Active(at, currency, f.FromAccount, f.ToAccount);
                break;
            case EventType.PaymentApproved:
                // Ordinal 0: a review's approval (a creation's approval is its second event).
                if (position.Ordinal == 0) Add(at, currency, Measure.ReviewApproved, null, 0);
                if (kind == EventPaymentKind.Deposit) Add(at, currency, Measure.DepositsPosted, Measure.DepositsPostedAmount, amount);
                else Add(at, currency, Measure.TransfersPosted, Measure.TransfersPostedAmount, amount);
                Users(in f, at, currency, amount);
                break;
            case EventType.PaymentAuthorized:
                if (position.Ordinal == 0) Add(at, currency, Measure.ReviewApproved, null, 0);
                break;
            case EventType.PaymentCaptured:
                Add(at, currency, Measure.Captures, Measure.CapturesAmount, f.Captured);
                Users(in f, at, currency, f.Captured);
                break;
            case EventType.PaymentVoided:
                if (f.Reason == EventReason.Expired) Add(at, currency, Measure.Expired, Measure.ExpiredAmount, amount);
                else Add(at, currency, Measure.Voids, Measure.VoidsAmount, amount);
                break;
            case EventType.PaymentRefunded:
                if (!f.HasRefund) throw new InvalidDataException($"event {position} (PaymentRefunded) has no refund");
                at = Time(f.RefundCreatedAtMs, at);
                Add(at, currency, Measure.Refunds, Measure.RefundsAmount, f.RefundAmount);
                Users(in f, at, currency, f.RefundAmount);
                break;
            case EventType.PaymentFailed:
                if (f.Reason == EventReason.ReviewRejected) Add(at, currency, Measure.ReviewDeclined, null, 0);
                else Add(at, currency, Measure.Failed, Measure.FailedAmount, amount);
                break;
            case EventType.AnomalyDetected:
                Add(at, currency, f.Reason == EventReason.HeldForReview ? Measure.FraudHeld : Measure.FraudDeclined, null, 0);
                break;
            case EventType.RewardIssued:
            case EventType.RewardReversed:
                at = Time(f.CreatedAtMs, at);
                bool issued = type == EventType.RewardIssued;
                Add(at, currency, issued ? Measure.Rewards : Measure.RewardReversals, issued ? Measure.RewardsAmount : Measure.RewardReversalsAmount, amount);
                Users(in f, at, currency, amount);
                break;
        }
    }

    private static readonly Dictionary<string, EventType> TypesByName = EventTypes.All.ToDictionary(EventTypes.Name, StringComparer.Ordinal);
    private static EventType TypeOf(string name) => TypesByName.GetValueOrDefault(name);

    private static long Time(long timeMs, long fallback) => timeMs == long.MinValue ? fallback : timeMs;

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
        // Events come in time order, so nearly every one lands in the bucket the previous one did: that bucket is kept at
        // hand per interval (buckets are never removed, so the reference stays the dictionary's).
        ref var hot = ref _hot[(int)i];
        if (hot.Values is not null && hot.StartMs == start && hot.Currency == currency) return hot.Values;
        var key = (i, start, currency);
        if (!Buckets.TryGetValue(key, out var b))
        {
            Buckets[key] = b = new long[MeasureCount];
            NoteCurrency(currency);
        }
        hot = (start, currency, b);
        return b;
    }

    /// <summary>The currencies any bucket counts, in order: what a query over every currency, or over a user's, walks (a handful; not a scan of the buckets' keys).</summary>
    private readonly List<ushort> _currencies = [];

    internal void NoteCurrency(ushort currency)
    {
        int at = _currencies.BinarySearch(currency);
        if (at < 0) _currencies.Insert(~at, currency);
    }

    /// <summary>The bucket each interval's last event went to (index: <see cref="Interval"/>).</summary>
    private readonly (long StartMs, ushort Currency, long[]? Values)[] _hot = new (long, ushort, long[]?)[4];

    private void Active(long at, ushort currency, long from, long to)
    {
        foreach (var i in Intervals)
        {
            long start = StartOf(at, i);
            var key = (i, start, currency);
            ref var hot = ref _hotSets[(int)i];
            var sets = hot.Sets;
            if (sets.Senders is null || hot.StartMs != start || hot.Currency != currency)
            {
                if (!ActiveSets.TryGetValue(key, out sets))
                {
                    ActiveSets[key] = sets = ([], []);
                    // Forget the distinct sets of buckets well behind this one: their counts stay.
                    long horizon = start - OpenBucketsKept * Size(i);
                    foreach (var old in ActiveSets.Keys.Where(k => k.Interval == i && k.StartMs < horizon).ToList()) ActiveSets.Remove(old);
                }
                hot = (start, currency, sets);
            }
            var b = Bucket(i, start, currency);
            if (sets.Senders.Add(from)) b[(int)Measure.ActiveSenders]++;
            if (sets.Receivers.Add(to)) b[(int)Measure.ActiveReceivers]++;
        }
    }

    /// <summary>The distinct sets each interval's last transfer went to (like <see cref="_hot"/>; a set forgotten above is never the one at hand, which is always the newest).</summary>
    private readonly (long StartMs, ushort Currency, (HashSet<long> Senders, HashSet<long> Receivers) Sets)[] _hotSets = new (long, ushort, (HashSet<long>, HashSet<long>))[4];

    /// <summary>Money a user sent or received (the owners of balances.from and balances.to; platform accounts, owner 0, are not users).</summary>
    private void Users(in EventFields f, long at, ushort currency, long amount)
    {
        long sender = f.HasFromOwner ? f.FromOwner : 0;
        long receiver = f.HasToOwner ? f.ToOwner : 0;
        if (sender > 0) AddUser(sender, at, currency, 0, amount);
        if (receiver > 0) AddUser(receiver, at, currency, 2, amount);
    }

    /// <summary>One payment into a user's buckets of every interval: measures <paramref name="measure"/> (count) and the next one (amount).</summary>
    private void AddUser(long user, long at, ushort currency, int measure, long amount)
    {
        if (at > _userWatermarkMs) AdvanceUserWatermark(at);
        // The user's buckets of the minute, hour and day its last payment went to are kept at hand: one lookup of a
        // (user, currency) key instead of one per interval of a 4-field key, which was ~9 % of the worker's CPU at
        // 200,000 events/s (docs/benchmarks.md, "Analytics worker: reading the fields"). An array held here is always
        // the dictionary's while its bucket is retained, and a bucket older than the retention is never written
        // (below), so one that was dropped is never written through the cache either.
        if (!_usersAtHand.TryGetValue((user, currency), out var hot))
        {
            if (_usersAtHand.Count >= MaxUsersAtHand) _usersAtHand.Clear(); // a cache: its bound is its only limit
            _usersAtHand[(user, currency)] = hot = new UserAtHand();
        }
        foreach (var i in Intervals)
        {
            long start = StartOf(at, i);
            if (start < _userBucketsFrom[(int)i])
            {
                UserPaymentsBeyondRetention++; // older than what is kept: counting it would make a dropped bucket partial
                continue;
            }
            ref var slot = ref hot.Buckets[(int)i];
            if (slot.Values is null || slot.StartMs != start) slot = (start, UserBucket(user, i, start, currency));
            slot.Values![measure]++;
            slot.Values[measure + 1] += amount;
        }
    }

    private long[] UserBucket(long user, Interval i, long start, ushort currency)
    {
        var key = (user, i, start, currency);
        if (UserBuckets.TryGetValue(key, out var values)) return values;
        UserBuckets[key] = values = new long[UserMeasures];
        if (_retention.For(i) != 0) Dated(i, start).Add((user, currency));
        return values;
    }

    /// <summary>A user's buckets at hand per interval (index: <see cref="Interval"/>).</summary>
    private sealed class UserAtHand
    {
        public readonly (long StartMs, long[]? Values)[] Buckets = new (long, long[]?)[4];
    }

    private readonly Dictionary<(long User, ushort Currency), UserAtHand> _usersAtHand = [];

    /// <summary>Users kept at hand before the cache starts again (about 100 bytes each).</summary>
    internal const int MaxUsersAtHand = 1 << 17;

    // ---- retention of the per-user buckets (AnalyticsRetention; docs/analytics.md, "Retention") ----

    private readonly AnalyticsRetention _retention;

    /// <summary>The newest time a user's payment was counted at: the stream's "now", which the retention counts back from.</summary>
    private long _userWatermarkMs = long.MinValue;

    /// <summary>
    /// Per interval (index: <see cref="Interval"/>), the start of the oldest user bucket kept: older ones were dropped, a
    /// payment older than it is not counted, and a query reaching before it is refused (<see cref="UserBucketsFrom"/>).
    /// Only ever moves forward, also when the retention is made longer (what was dropped stays dropped).
    /// </summary>
    private readonly long[] _userBucketsFrom = [long.MinValue, long.MinValue, long.MinValue, long.MinValue];

    /// <summary>The keys of the user buckets of intervals with a retention, by bucket start: what to drop when the start passes out of it.</summary>
    private readonly Dictionary<long, List<(long User, ushort Currency)>>[] _byStart = [[], [], [], []];

    /// <summary>Payments that reached a user's bucket older than its retention, so were not counted there (they count in the newer intervals).</summary>
    public long UserPaymentsBeyondRetention { get; internal set; }

    public AnalyticsRetention Retention => _retention;

    /// <summary>The start of the oldest user bucket of <paramref name="interval"/> the rollups hold whole (long.MinValue: none dropped yet).</summary>
    public long UserBucketsFrom(Interval interval)
    {
        lock (Gate) return _userBucketsFrom[(int)interval];
    }

    private List<(long User, ushort Currency)> Dated(Interval i, long start)
    {
        ref var list = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_byStart[(int)i], start, out _);
        return list ??= [];
    }

    /// <summary>The stream's time moved on: when it enters a new minute, each interval's retention moves with it and what falls out of it is dropped.</summary>
    private void AdvanceUserWatermark(long at)
    {
        long minute = StartOf(at, Interval.Minute);
        bool newMinute = _userWatermarkMs == long.MinValue || minute != StartOf(_userWatermarkMs, Interval.Minute);
        _userWatermarkMs = at;
        if (newMinute) DropUserBucketsOutOfRetention();
    }

    private void DropUserBucketsOutOfRetention()
    {
        if (_userWatermarkMs == long.MinValue) return;
        foreach (var i in Intervals)
        {
            long keep = _retention.For(i);
            if (keep == 0) continue;
            long from = StartOf(_userWatermarkMs, i) - keep;
            if (from <= _userBucketsFrom[(int)i]) continue;
            _userBucketsFrom[(int)i] = from;
            var byStart = _byStart[(int)i];
            foreach (long start in byStart.Keys.Where(s => s < from).ToList())
            {
                foreach (var (user, currency) in byStart[start]) UserBuckets.Remove((user, i, start, currency));
                byStart.Remove(start);
            }
        }
    }

    /// <summary>After a load: the retention state as the file gives it, then what the retention (maybe another than when the file was written) drops.</summary>
    internal void RestoreRetention(long watermarkMs, ReadOnlySpan<long> bucketsFrom, long beyondRetention)
    {
        _userWatermarkMs = watermarkMs;
        for (int i = 1; i <= 3; i++) _userBucketsFrom[i] = bucketsFrom[i - 1];
        UserPaymentsBeyondRetention = beyondRetention;
        foreach (var key in UserBuckets.Keys)
            if (_retention.For(key.Interval) != 0) Dated(key.Interval, key.StartMs).Add((key.User, key.Currency));
        DropUserBucketsOutOfRetention();
    }

    internal long UserWatermarkMs => _userWatermarkMs;
    internal ReadOnlySpan<long> UserBucketsFromAll => _userBucketsFrom.AsSpan(1, 3);

    /// <summary>
    /// The non-empty buckets of [fromMs, toMs) at <paramref name="interval"/>, oldest first; currency 0 = every currency.
    /// A range of more than <paramref name="maxBuckets"/> buckets (<see cref="BucketCount"/>) throws
    /// <see cref="ArgumentOutOfRangeException"/> (the endpoint answers 400 before it asks): the walk holds the lock.
    /// </summary>
    public List<(long StartMs, Currency Currency, long[] Values)> Query(Interval interval, long fromMs, long toMs, ushort currency, long maxBuckets = DefaultMaxBuckets)
    {
        CheckRange(interval, fromMs, toMs, maxBuckets);
        var list = new List<(long, Currency, long[])>();
        var currencies = new List<ushort>();
        lock (Gate)
        {
            if (currency != 0) currencies.Add(currency);
            else currencies.AddRange(_currencies);
            for (long start = StartOf(fromMs, interval); start < toMs; start += Size(interval))
                foreach (ushort c in currencies)
                    if (Buckets.TryGetValue((interval, start, c), out var b)) list.Add((start, new Currency(c), (long[])b.Clone()));
        }
        return list;
    }

    /// <summary>A user's sent and received totals per bucket: [sent count, sent amount, received count, received amount].</summary>
    public List<(long StartMs, Currency Currency, long[] Values)> QueryUser(long user, Interval interval, long fromMs, long toMs, long maxBuckets = DefaultMaxBuckets)
    {
        CheckRange(interval, fromMs, toMs, maxBuckets);
        var list = new List<(long, Currency, long[])>();
        lock (Gate)
        {
            for (long start = StartOf(fromMs, interval); start < toMs; start += Size(interval))
                foreach (ushort c in _currencies) // a user's buckets are in currencies some bucket counts (Users follows Add)
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
