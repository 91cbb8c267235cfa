using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using RamPay.Analytics;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// Issue 13, "answers are exact", for EVERY measure the rollups report (ExactlyOnceTests checks eight): a workload
/// that makes every kind of event the rollups count (deposits, transfers, authorizations captured in full and in part,
/// voided and expired, refunds in full and in part, payments held for review then approved and declined by an admin,
/// fraud declines, insufficient funds, rewards and their reversals), across a SIGKILL mid-workload, a restart and a
/// clean restart; then every measure of every minute, hour and day bucket, per currency, against values built here
/// from the events themselves (<c>GET /v1/admin/events</c>: each payment's own fields and journaled times), with code of
/// its own written from docs/analytics.md, not the rollups'. Written as numbered steps.
/// </summary>
public sealed class AnalyticsExactTests(ITestOutputHelper output)
{
    private static readonly string[] Settings =
    [
        "Auth:PasswordHashIterations=1000", "RateLimit:RequestsPerSecond=1000000", "RateLimit:Burst=1000000", "Currencies=USD,EUR",
        // Fraud rules a test can trip for certain (as FraudServerFixture): 5,000 or more is held for review, a sender's
        // sixth payment in a day is declined, the model's thresholds are out of reach.
        "Fraud:Enabled=true", "Fraud:ReviewThreshold=2", "Fraud:DeclineThreshold=2", "Fraud:AmountThreshold=5000", "Fraud:MaxPaymentsPerDay=5",
    ];

    [Fact]
    public async Task Every_measure_of_every_bucket_matches_the_events_across_a_kill_and_restarts()
    {
        await using var server = await ServerProcess.StartAsync(Settings);
        var api = new Api(server);

        // 1. A funded rewards account in USD and a 2 % cashback rule; a first round of the whole workload in USD and EUR.
        string admin = await api.AdminTokenAsync();
        (await api.PostAsync("/v1/admin/rewards/top_up", admin, new { amount = 10_000_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        (await api.PostAsync("/v1/admin/reward_rules", admin, new { name = "two percent", percent_bps = 200, currency = "USD" })).Expect(HttpStatusCode.Created);
        await Round(api, admin, "USD", output);
        await Round(api, admin, "EUR", output);
        // Two accounts that pay each other in every phase: the distinct senders and receivers of a bucket must count them
        // once across the kill and the restarts (the sets are saved with the rollups).
        var x = await api.SignUpAsync(deposit: 10_000);
        var y = await api.SignUpAsync(deposit: 10_000);
        await PayEachOther(api, x, y);

        // 2. Payments in flight from twelve senders at once, one after another each, and the server SIGKILLed under
        //    them: some answered, some journaled but never answered, some never journaled.
        var senders = new List<TestUser>();
        for (int i = 0; i < 12; i++) senders.Add(await api.SignUpAsync(deposit: 100_000));
        int answered = 0, sent = 0;
        bool killing = false;
        var lanes = senders.Select((s, n) => Task.Run(async () =>
        {
            var rng = new Random(n);
            // Up to 100 each: from the sixth on they are declined by fraud screening (velocity); some are held (amount).
            for (int k = 0; k < 100; k++)
            {
                Interlocked.Increment(ref sent);
                try
                {
                    await api.PostAsync("/v1/payments", s.Token, new { from_account = s.WalletId, to_account = senders[rng.Next(senders.Count)].WalletId, amount = rng.Next(1, 6_000), currency = "USD" });
                    Interlocked.Increment(ref answered);
                }
                catch (Exception) when (Volatile.Read(ref killing)) { return; } // any failure before the kill fails the test
            }
        })).ToList();
        // The kill comes once 40 are answered, wherever the lanes are (never at a chosen time: the machine may be slow).
        var killBy = DateTime.UtcNow.AddSeconds(120);
        while (Volatile.Read(ref answered) < 40 && DateTime.UtcNow < killBy) await Task.Delay(5);
        Volatile.Write(ref killing, true);
        await server.KillAsync();
        await Task.WhenAll(lanes);
        output.WriteLine($"killed after {answered} of {sent} payments sent were answered");
        Assert.True(answered < sent, "the kill came after every payment was answered: nothing was in flight");

        // 3. Start again on the same folder and finish the workload.
        async Task StartAgainAndPay()
        {
            await server.RestartAsync();
            api = new Api(server);
            admin = await api.AdminTokenAsync();
            (x, y) = (x with { Token = await api.LoginAsync(x.Email, x.Password) }, y with { Token = await api.LoginAsync(y.Email, y.Password) });
            await PayEachOther(api, x, y);
        }
        await StartAgainAndPay();
        await Round(api, admin, "USD", output);

        // 4. A clean stop and start, and one more round after it.
        Assert.Equal(0, await server.StopAsync());
        await StartAgainAndPay();
        await Round(api, admin, "EUR", output);
        await Round(api, admin, "USD", output);

        // 5. The events are the payments' (retried until the last holds have lapsed and their events are in the log).
        var settle = DateTime.UtcNow.AddSeconds(120);
        while (true)
        {
            string? wrong = await EventsDisagreeWithPayments(api, admin, await AllEvents(api, admin), output);
            if (wrong is null) break;
            if (DateTime.UtcNow > settle) Assert.Fail(wrong);
            await Task.Delay(500);
        }

        // 6. Every measure of every bucket, per currency, at each interval, built from the events, equals the endpoint's.
        //    The consumers run behind the writer: compare until they match, with a generous deadline.
        string describe = "";
        var deadline = DateTime.UtcNow.AddSeconds(120);
        Dictionary<(Interval, long, string), long[]> expected = [], served = [];
        while (true)
        {
            served.Clear();
            var events = await AllEvents(api, admin);
            expected = Expected(events);
            var mismatches = new List<string>();
            long from = expected.Keys.Min(k => k.Item2) / 1000 - 86_400, to = expected.Keys.Max(k => k.Item2) / 1000 + 86_400;
            foreach (var interval in AnalyticsRollups.Intervals)
                foreach (var currency in new[] { "USD", "EUR" })
                {
                    string name = interval.ToString().ToLowerInvariant();
                    var data = (await api.GetAsync($"/v1/admin/analytics?interval={name}&from={from}&to={to}&currency={currency}", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
                    var actual = data.ToDictionary(b => DateTimeOffset.Parse(b!.Str("start"), CultureInfo.InvariantCulture).ToUnixTimeMilliseconds(),
                        b => Enum.GetValues<Measure>().Select(m => b!.Long(AnalyticsRollups.MeasureName(m))).ToArray());
                    foreach (var (start, values) in actual) served[(interval, start, currency)] = values;
                    var mine = expected.Where(e => e.Key.Item1 == interval && e.Key.Item3 == currency).ToDictionary(e => e.Key.Item2, e => e.Value);
                    foreach (long start in mine.Keys.Union(actual.Keys).Order())
                    {
                        var e = mine.GetValueOrDefault(start) ?? new long[AnalyticsRollups.MeasureCount];
                        var a = actual.GetValueOrDefault(start) ?? new long[AnalyticsRollups.MeasureCount];
                        foreach (var m in Enum.GetValues<Measure>())
                            if (e[(int)m] != a[(int)m])
                                mismatches.Add($"{name} {DateTimeOffset.FromUnixTimeMilliseconds(start):O} {currency} {AnalyticsRollups.MeasureName(m)}: expected {e[(int)m]}, got {a[(int)m]}");
                    }
                }
            if (mismatches.Count == 0) break;
            describe = $"{mismatches.Count} mismatches, the first:\n" + string.Join("\n", mismatches.Take(15));
            if (DateTime.UtcNow > deadline) Assert.Fail($"analytics never matched the events:\n{describe}");
            await Task.Delay(500);
        }

        // 7. The workload made every measure (a measure never made would be compared as 0 = 0, proving nothing), and the
        //    hour and day buckets the endpoint answers are the sums of its minutes (every measure but the distinct senders
        //    and receivers, which are distinct over the whole bucket).
        foreach (var m in Enum.GetValues<Measure>())
            Assert.True(expected.Where(e => e.Key.Item1 == Interval.Day).Sum(e => e.Value[(int)m]) > 0, $"the workload made no {AnalyticsRollups.MeasureName(m)}");
        foreach (var coarse in new[] { Interval.Hour, Interval.Day })
            foreach (var (key, values) in served.Where(e => e.Key.Item1 == coarse))
                foreach (var m in Enum.GetValues<Measure>().Where(m => m is not (Measure.ActiveSenders or Measure.ActiveReceivers)))
                    Assert.Equal(values[(int)m], served.Where(e => e.Key.Item1 == Interval.Minute && e.Key.Item3 == key.Item3
                        && AnalyticsRollups.StartOf(e.Key.Item2, coarse) == key.Item2).Sum(e => e.Value[(int)m]));
        output.WriteLine($"{expected.Count(e => e.Key.Item1 == Interval.Minute)} minute buckets match, every measure");
    }

    /// <summary>
    /// Null when every payment the ledger holds, read back one by one, is accounted for by the events (its kind,
    /// accounts, amount, currency and creation time; its status, captured and refunded amounts as its last event left
    /// them, refunds summed from the events), or is an attempt declined by fraud screening (a payment with no
    /// PaymentCreated, counted as fraud_declined and failed); else the first disagreement.
    /// </summary>
    private static async Task<string?> EventsDisagreeWithPayments(Api api, string admin, List<JsonNode> events, ITestOutputHelper output)
    {
        var last = new Dictionary<long, JsonNode>();
        var created = new Dictionary<long, JsonNode>();
        var refunded = new Dictionary<long, long>();
        foreach (var e in events)
        {
            if (e["payment"] is not JsonObject p || p["id"] is null) continue;
            long id = p.Long("id");
            last[id] = p;
            if (e.Str("type") is "PaymentCreated" or "RewardIssued" or "RewardReversed") created.TryAdd(id, p);
            if (e["refund"] is JsonObject r)
            {
                created.TryAdd(r.Long("id"), r);
                last[r.Long("id")] = r;
                refunded[id] = refunded.GetValueOrDefault(id) + r.Long("amount");
            }
        }
        long max = last.Keys.Max();
        int declined = 0;
        for (long id = 1; id <= max; id++)
        {
            var p = await api.PaymentAsync(id, admin);
            if (!created.TryGetValue(id, out var c))
            {
                if (p.Str("status") != "declined") return $"payment {id} ({p.ToJsonString()}) is in no event's creation and was not declined";
                declined++;
                continue;
            }
            foreach (var field in new[] { "kind", "currency", "from_account", "to_account", "amount", "created_at" })
                if (!JsonNode.DeepEquals(c[field], p[field])) return $"payment {id}: {field} is {p[field]?.ToJsonString()}, its creation's event says {c[field]?.ToJsonString()}";
            var now = last[id];
            foreach (var field in new[] { "status", "captured", "refunded" })
                if (!JsonNode.DeepEquals(now[field], p[field])) return $"payment {id}: {field} is {p[field]?.ToJsonString()}, its last event says {now[field]?.ToJsonString()}";
            if (refunded.GetValueOrDefault(id) != p.Long("refunded")) return $"payment {id}: refunded {p.Long("refunded")}, its refunds' events sum to {refunded.GetValueOrDefault(id)}";
        }
        Assert.True(declined > 0, "no payment was declined by fraud screening");
        output.WriteLine($"{max} payments accounted for by the events ({declined} declined by fraud screening)");
        return null;
    }

    private static async Task PayEachOther(Api api, TestUser x, TestUser y)
    {
        await api.PayAsync(x, y.WalletId, 10);
        await api.PayAsync(y, x.WalletId, 10);
    }

    /// <summary>
    /// One round of the whole workload in a currency, by fresh users (the velocity rule counts a sender's payments per
    /// day). Rewards and their reversals only in USD (the rule's currency).
    /// </summary>
    private static async Task Round(Api api, string admin, string currency, ITestOutputHelper output)
    {
        var a = await api.SignUpAsync(currency, deposit: 100_000);
        var b = await api.SignUpAsync(currency, deposit: 50_000);
        var c = await api.SignUpAsync(currency);
        var d = await api.SignUpAsync(currency, deposit: 1_000);
        async Task<JsonNode> Pay(TestUser from, TestUser to, long amount, bool capture = true, long hold = 0) =>
            (await api.PostAsync("/v1/payments", from.Token, hold > 0
                ? new { from_account = from.WalletId, to_account = to.WalletId, amount, currency, capture, hold_timeout_ms = hold }
                : new { from_account = from.WalletId, to_account = to.WalletId, amount, currency, capture, hold_timeout_ms = 0L })).Expect(HttpStatusCode.Created);

        var full = await Pay(a, b, 1_000);
        var part = await Pay(a, b, 2_000);
        var captureAll = await Pay(a, b, 3_000, capture: false);
        (await api.PostAsync($"/v1/payments/{captureAll.Long("id")}/capture", b.Token, new { })).Expect(HttpStatusCode.OK);
        var capturePart = await Pay(b, a, 1_500, capture: false);
        (await api.PostAsync($"/v1/payments/{capturePart.Long("id")}/capture", a.Token, new { amount = 500 })).Expect(HttpStatusCode.OK);
        var voided = await Pay(a, c, 800, capture: false);
        (await api.PostAsync($"/v1/payments/{voided.Long("id")}/void", a.Token, new { })).Expect(HttpStatusCode.OK);
        await Pay(b, a, 700, capture: false, hold: 1_000); // lapses: the server's tick expires it
        (await api.PostAsync("/v1/payments", c.Token, new { from_account = c.WalletId, to_account = a.WalletId, amount = 100, currency }))
            .ExpectError((HttpStatusCode)422, "insufficient_funds");
        var approve = await Pay(b, c, 6_000);
        var decline = await Pay(b, a, 7_000);
        Assert.Equal("held_for_review", approve.Str("status"));
        Assert.Equal("held_for_review", decline.Str("status"));
        (await api.PostAsync($"/v1/payments/{approve.Long("id")}/review", admin, new { decision = "approve" })).Expect(HttpStatusCode.OK);
        (await api.PostAsync($"/v1/payments/{decline.Long("id")}/review", admin, new { decision = "decline" })).Expect(HttpStatusCode.OK);
        // Accounts that only ever authorize or are authorized to (active senders and receivers count authorizations too).
        var e = await api.SignUpAsync(currency, deposit: 1_000);
        var f = await api.SignUpAsync(currency);
        await Pay(e, f, 100, capture: false);
        for (int i = 0; i < 5; i++) await Pay(d, a, 10);
        (await api.PostAsync("/v1/payments", d.Token, new { from_account = d.WalletId, to_account = a.WalletId, amount = 10, currency }))
            .ExpectError((HttpStatusCode)422, "fraud_suspected");

        // Refunds in full and in part; in USD after the rewards of the two payments are paid, so that they are reversed.
        if (currency == "USD")
        {
            var deadline = DateTime.UtcNow.AddSeconds(120);
            var ids = new[] { full.Long("id"), part.Long("id") };
            while (true)
            {
                var rewards = (await api.GetAsync("/v1/admin/rewards?limit=100", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
                if (ids.All(id => rewards.Any(r => r!.Long("source_payment_id") == id))) break;
                if (DateTime.UtcNow > deadline) Assert.Fail($"payments {string.Join(",", ids)} were never rewarded");
                await Task.Delay(250);
            }
        }
        (await api.PostAsync($"/v1/payments/{full.Long("id")}/refunds", b.Token, new { amount = 1_000, currency })).Expect(HttpStatusCode.Created);
        (await api.PostAsync($"/v1/payments/{part.Long("id")}/refunds", b.Token, new { amount = 700, currency })).Expect(HttpStatusCode.Created);
        output.WriteLine($"a round in {currency} done");
    }

    /// <summary>Every event the server holds (admin: all), oldest first.</summary>
    private static async Task<List<JsonNode>> AllEvents(Api api, string admin)
    {
        var all = new List<JsonNode>();
        string path = "/v1/events?limit=100";
        while (true)
        {
            var page = (await api.GetAsync(path, admin)).Expect(HttpStatusCode.OK);
            var data = page["data"]!.AsArray();
            all.AddRange(data.Select(e => e!));
            if (!page["has_more"]!.GetValue<bool>() || data.Count == 0) break;
            path = $"/v1/events?limit=100&starting_after={data[^1]!.Str("event_id")}";
        }
        all.Reverse();
        return all;
    }

    private static long Ms(string iso) => DateTimeOffset.Parse(iso, CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();

    /// <summary>
    /// Every measure of every (interval, bucket start, currency), from the events, by docs/analytics.md's definitions:
    /// creations at the payment's <c>created_at</c>, refunds at the refund's, rewards at the reward payment's; everything
    /// else at the event's <c>occurred_at</c>. A review's approval is an approval of a payment that was held for review.
    /// Active senders and receivers: the distinct paying and receiving accounts of the bucket's created transfers and
    /// authorizations.
    /// </summary>
    private static Dictionary<(Interval, long, string), long[]> Expected(List<JsonNode> events)
    {
        var buckets = new Dictionary<(Interval, long, string), long[]>();
        var senders = new Dictionary<(Interval, long, string), HashSet<long>>();
        var receivers = new Dictionary<(Interval, long, string), HashSet<long>>();
        var held = new HashSet<long>();
        void Add(long at, string currency, Measure measure, long value)
        {
            foreach (var i in AnalyticsRollups.Intervals)
            {
                var key = (i, AnalyticsRollups.StartOf(at, i), currency);
                if (!buckets.TryGetValue(key, out var b)) buckets[key] = b = new long[AnalyticsRollups.MeasureCount];
                b[(int)measure] += value;
            }
        }
        foreach (var e in events)
        {
            if (e["payment"] is not JsonObject p) continue;
            string type = e.Str("type"), kind = p.Str("kind"), currency = p.Str("currency");
            long occurred = Ms(e.Str("occurred_at")), amount = p.Long("amount");
            string? reason = e["reason"]?.GetValue<string>();
            switch (type)
            {
                case "PaymentCreated":
                {
                    long at = Ms(p.Str("created_at"));
                    Add(at, currency, Measure.PaymentsCreated, 1);
                    Add(at, currency, Measure.PaymentsCreatedAmount, amount);
                    var (count, sum) = kind switch
                    {
                        "transfer" => (Measure.TransfersCreated, Measure.TransfersCreatedAmount),
                        "deposit" => (Measure.DepositsCreated, Measure.DepositsCreatedAmount),
                        "authorization" => (Measure.AuthorizationsCreated, Measure.AuthorizationsCreatedAmount),
                        _ => throw new InvalidDataException($"a payment of kind {kind} created"),
                    };
                    Add(at, currency, count, 1);
                    Add(at, currency, sum, amount);
                    if (kind != "deposit")
                        foreach (var i in AnalyticsRollups.Intervals)
                        {
                            var key = (i, AnalyticsRollups.StartOf(at, i), currency);
                            if (!senders.TryGetValue(key, out var s)) senders[key] = s = [];
                            if (!receivers.TryGetValue(key, out var r)) receivers[key] = r = [];
                            s.Add(p.Long("from_account"));
                            r.Add(p.Long("to_account"));
                        }
                    break;
                }
                case "PaymentApproved":
                    if (held.Remove(p.Long("id"))) Add(occurred, currency, Measure.ReviewApproved, 1);
                    Add(occurred, currency, kind == "deposit" ? Measure.DepositsPosted : Measure.TransfersPosted, 1);
                    Add(occurred, currency, kind == "deposit" ? Measure.DepositsPostedAmount : Measure.TransfersPostedAmount, amount);
                    break;
                case "PaymentAuthorized":
                    if (held.Remove(p.Long("id"))) Add(occurred, currency, Measure.ReviewApproved, 1);
                    break;
                case "PaymentCaptured":
                    Add(occurred, currency, Measure.Captures, 1);
                    Add(occurred, currency, Measure.CapturesAmount, p.Long("captured"));
                    break;
                case "PaymentVoided":
                    Add(occurred, currency, reason == "expired" ? Measure.Expired : Measure.Voids, 1);
                    Add(occurred, currency, reason == "expired" ? Measure.ExpiredAmount : Measure.VoidsAmount, amount);
                    break;
                case "PaymentRefunded":
                {
                    var refund = e["refund"]!;
                    long at = Ms(refund.Str("created_at"));
                    Add(at, currency, Measure.Refunds, 1);
                    Add(at, currency, Measure.RefundsAmount, refund.Long("amount"));
                    break;
                }
                case "PaymentFailed":
                    if (reason == "review_rejected") { held.Remove(p.Long("id")); Add(occurred, currency, Measure.ReviewDeclined, 1); }
                    else { Add(occurred, currency, Measure.Failed, 1); Add(occurred, currency, Measure.FailedAmount, amount); }
                    break;
                case "AnomalyDetected":
                    if (reason == "held_for_review") held.Add(p.Long("id"));
                    Add(occurred, currency, reason == "held_for_review" ? Measure.FraudHeld : Measure.FraudDeclined, 1);
                    break;
                case "RewardIssued":
                case "RewardReversed":
                {
                    long at = Ms(p.Str("created_at"));
                    bool issued = type == "RewardIssued";
                    Add(at, currency, issued ? Measure.Rewards : Measure.RewardReversals, 1);
                    Add(at, currency, issued ? Measure.RewardsAmount : Measure.RewardReversalsAmount, e["reward"]!.Long("amount"));
                    break;
                }
            }
        }
        foreach (var (key, s) in senders) buckets[key][(int)Measure.ActiveSenders] = s.Count;
        foreach (var (key, r) in receivers) buckets[key][(int)Measure.ActiveReceivers] = r.Count;
        return buckets;
    }
}
