using System.Net;
using System.Text;
using RamPay.Analytics;
using RamPay.Events;
using RamPay.Server;
using RamPay.Server.Tests;
using RamPay.Worker;

namespace RamPay.Rewards.Tests;

/// <summary>
/// Round 4 (docs/analytics.md, docs/benchmarks.md "Rewards and analytics workers, round 4"): the bound on the buckets an
/// analytics query walks (<see cref="AnalyticsRollups.Query"/> and the endpoints, <c>Rewards:AnalyticsMaxBuckets</c>), and
/// the Kafka worker's one-pass decode (envelope and fields in one <see cref="EventFields.TryRead(ReadOnlySpan{byte}, out EventFields, uint)"/>).
/// </summary>
public sealed class AnalyticsBoundAndDecodeTests
{
    private const long Minute = 60_000, Hour = 3_600_000;

    [Fact]
    public void Bucket_count_is_every_bucket_a_range_touches_and_never_overflows()
    {
        Assert.Equal(0, AnalyticsRollups.BucketCount(Interval.Minute, 10 * Minute, 10 * Minute));
        Assert.Equal(0, AnalyticsRollups.BucketCount(Interval.Minute, 10 * Minute, 5 * Minute));
        Assert.Equal(1, AnalyticsRollups.BucketCount(Interval.Minute, 10 * Minute, 10 * Minute + 1));
        Assert.Equal(60, AnalyticsRollups.BucketCount(Interval.Minute, 0, Hour));
        Assert.Equal(61, AnalyticsRollups.BucketCount(Interval.Minute, 1, Hour + 1)); // from inside the first minute to inside the 61st
        Assert.Equal(2, AnalyticsRollups.BucketCount(Interval.Hour, -1, 1)); // the hour before the epoch and the one after
        Assert.Equal(307_445_734_561_826, AnalyticsRollups.BucketCount(Interval.Minute, long.MinValue, long.MaxValue)); // (2^64 + the first partial minute) / 60,000: no overflow
        Assert.True(AnalyticsRollups.BucketCount(Interval.Day, long.MinValue, long.MaxValue) > 0);
    }

    [Fact]
    public void Queries_refuse_a_range_of_more_buckets_than_their_bound_and_answer_one_of_exactly_the_bound()
    {
        var rollups = new AnalyticsRollups();
        var batch = new EventBatch([Event(1, "PaymentCreated", 30 * Minute)], "kafka:t/0");
        rollups.Apply(batch);
        Assert.Single(rollups.Query(Interval.Minute, 0, Hour, 0, maxBuckets: 60));
        Assert.Empty(rollups.QueryUser(7, Interval.Minute, 0, Hour, maxBuckets: 60));
        Assert.Empty(rollups.QueryScores(Interval.Minute, 0, Hour, 0, maxBuckets: 60));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => rollups.Query(Interval.Minute, 0, Hour + 1, 0, maxBuckets: 60));
        Assert.Contains("61 buckets", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => rollups.QueryUser(7, Interval.Minute, 0, Hour + 1, maxBuckets: 60));
        Assert.Throws<ArgumentOutOfRangeException>(() => rollups.QueryScores(Interval.Minute, 0, Hour + 1, 0, maxBuckets: 60));
        Assert.Throws<ArgumentOutOfRangeException>(() => rollups.Query(Interval.Minute, 0, Minute, 0, maxBuckets: 0));
        // The default bound: 31 days of minutes, the whole of time at day buckets is refused.
        Assert.Single(rollups.Query(Interval.Minute, 0, 31 * 24 * Hour, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => rollups.Query(Interval.Minute, 0, 31 * 24 * Hour + 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => rollups.Query(Interval.Day, long.MinValue, long.MaxValue, 0));
    }

    [Fact]
    public void The_setting_is_validated()
    {
        Assert.Equal(AnalyticsRollups.DefaultMaxBuckets, new ServerOptions().Rewards.AnalyticsMaxBuckets);
        foreach (long bad in new long[] { 0, -1, 1_000_001 })
        {
            var e = Assert.Throws<OptionsException>(() => new ServerOptions.RewardsSettings { AnalyticsMaxBuckets = bad }.Validate());
            Assert.Contains("RamPay:Rewards:AnalyticsMaxBuckets", e.Message);
        }
        new ServerOptions.RewardsSettings { AnalyticsMaxBuckets = 1 }.Validate();
    }

    [Fact]
    [Trait("Category", "Integration")]
    public async Task The_endpoints_answer_400_invalid_range_above_the_configured_bound()
    {
        await using var server = await ServerProcess.StartAsync("Rewards:AnalyticsMaxBuckets=60");
        var api = new Api(server);
        string admin = await api.AdminTokenAsync();
        var user = await api.SignUpAsync();
        const long from = 1_800_000_000; // unix seconds, on a minute
        (await api.GetAsync($"/v1/admin/analytics?interval=minute&from={from}&to={from + 3600}", admin)).Expect(HttpStatusCode.OK);
        var error = await api.GetAsync($"/v1/admin/analytics?interval=minute&from={from}&to={from + 3601}", admin);
        error.ExpectError(HttpStatusCode.BadRequest, "invalid_range");
        Assert.Contains("61 buckets; at most 60", error.Raw);
        (await api.GetAsync($"/v1/admin/analytics?interval=hour&from={from}&to={from + 59 * 3600}", admin)).Expect(HttpStatusCode.OK);
        (await api.GetAsync($"/v1/admin/analytics?interval=hour&from={from}&to={from + 61 * 3600}", admin)).ExpectError(HttpStatusCode.BadRequest, "invalid_range");
        (await api.GetAsync($"/v1/analytics/me?interval=minute&from={from}&to={from + 3600}", user.Token)).Expect(HttpStatusCode.OK);
        (await api.GetAsync($"/v1/analytics/me?interval=minute&from={from}&to={from + 3601}", user.Token)).ExpectError(HttpStatusCode.BadRequest, "invalid_range");
    }

    [Fact]
    [Trait("Category", "Integration")]
    public async Task A_users_range_older_than_the_retention_is_400_range_not_retained_and_the_default_range_starts_at_the_oldest_kept()
    {
        // 1. A server that keeps a user's minutes for 2 minutes and hours for 2 hours; a payment between two users.
        await using var server = await ServerProcess.StartAsync("Rewards:AnalyticsUserRetention=minute=2m,hour=2h");
        var api = new Api(server);
        var payer = await api.SignUpAsync(deposit: 100_000);
        var payee = await api.SignUpAsync();
        (await api.PostAsync("/v1/payments", payer.Token, new { from_account = payer.WalletId, to_account = payee.WalletId, amount = 1_234, currency = "USD" })).Expect(HttpStatusCode.Created);
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        // 2. The default range (the last 24 hours) at minutes starts at the oldest minute kept, and holds the payment
        //    once the consumer has it.
        System.Text.Json.Nodes.JsonArray data = [];
        for (var deadline = DateTime.UtcNow.AddSeconds(20); DateTime.UtcNow < deadline && data.Count == 0; await Task.Delay(100))
            data = (await api.GetAsync("/v1/analytics/me?interval=minute", payee.Token)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.Equal(1_234, (long)Assert.Single(data)!["received_amount"]!);

        // 3. Asked from before the oldest minute kept (2 minutes back from the newest payment's minute): 400, naming the
        //    retention and the setting; from the last minute: 200. Hours alike; days are kept for ever.
        var refused = await api.GetAsync($"/v1/analytics/me?interval=minute&from={now - 3600}", payee.Token);
        refused.ExpectError(HttpStatusCode.BadRequest, "range_not_retained");
        Assert.Contains("kept for 2m (RamPay:Rewards:AnalyticsUserRetention)", refused.Raw);
        (await api.GetAsync($"/v1/analytics/me?interval=minute&from={now - 60}", payee.Token)).Expect(HttpStatusCode.OK);
        (await api.GetAsync($"/v1/analytics/me?interval=hour&from={now - 5 * 3600}", payee.Token)).ExpectError(HttpStatusCode.BadRequest, "range_not_retained");
        (await api.GetAsync($"/v1/analytics/me?interval=hour&from={now - 3600}", payee.Token)).Expect(HttpStatusCode.OK);
        (await api.GetAsync($"/v1/analytics/me?interval=day&from={now - 30 * 86_400}", payee.Token)).Expect(HttpStatusCode.OK);
        // The platform's buckets are not per user: kept for ever.
        (await api.GetAsync($"/v1/admin/analytics?interval=minute&from={now - 3600}", await api.AdminTokenAsync())).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public void The_retention_setting_is_validated()
    {
        Assert.Equal(AnalyticsRetention.DefaultText, new ServerOptions().Rewards.AnalyticsUserRetention);
        var e = Assert.ThrowsAny<Exception>(() => new ServerOptions.RewardsSettings { AnalyticsUserRetention = "minute=1m" }.Validate());
        Assert.Contains("RamPay:Rewards:AnalyticsUserRetention", e.Message);
        new ServerOptions.RewardsSettings { AnalyticsUserRetention = "minute=3h,hour=forever" }.Validate();
    }

    private const string Approved = """
        {"event_id":"6-0-1","type":"PaymentApproved","version":1,"sequence":6,"index":2,"ordinal":1,"occurred_at":"2023-11-14T22:13:20.042Z","key":2,"client_id":1,
         "payment":{"id":3,"kind":"transfer","status":"posted","from_account":2,"to_account":3,"amount":1000,"currency":"USD","captured":1000,"refunded":0,
           "parent_id":null,"created_at":"2023-11-14T22:13:20.042Z","expires_at":null},
         "balances":{"from":{"id":2,"owner":1},"to":{"id":3,"owner":4}}}
        """;

    [Fact]
    public void The_worker_decodes_a_message_and_reads_its_fields_in_one_pass()
    {
        byte[] value = Encoding.UTF8.GetBytes(Approved);
        var record = KafkaEventSource.Decode(value, 1_700_000_000_042, offset: 5, out var f);
        Assert.Equal((new EventPosition(6, 2, 1), "PaymentApproved", 1, 1_700_000_000_042L, 2L), (record.Position, record.Type, record.Version, record.OccurredAtMs, record.KeyAccount));
        Assert.Same(EventTypes.Name(EventType.PaymentApproved), record.Type); // the constant, not a string per message
        Assert.Same(value, System.Runtime.InteropServices.MemoryMarshal.TryGetArray(record.Json, out var segment) ? segment.Array : null);
        Assert.True(f.Valid && f.PayloadRead && f.HasPayment);
        Assert.Equal((EventType.PaymentApproved, 3L, 1000L, 1L, 4L), (f.Type, f.PaymentId, f.Amount, f.FromOwner, f.ToOwner));
        // The same fields as the consumers' own read of the bytes.
        Assert.True(EventFields.TryRead(value, out var again));
        Assert.Equal(again, f);

        // A type left out of the mask: the envelope only (the record is the same), the payload not read.
        var skipped = KafkaEventSource.Decode(value, 1_700_000_000_042, offset: 5, out var g, EventFields.Bit(EventType.PaymentCreated));
        Assert.Equal(record, skipped with { Json = record.Json });
        Assert.True(g.Valid && !g.PayloadRead && !g.HasPayment);
        Assert.Equal((6L, 2, 1, 2L), (g.Sequence, g.Index, g.Ordinal, g.Key));
        // No types (what the source asks for a consumer that takes no fields: webhooks, notifications): the envelope only.
        Assert.Equal(record, KafkaEventSource.Decode(value, 1_700_000_000_042, 5, out var none, 0) with { Json = record.Json });
        Assert.True(none.Valid && !none.PayloadRead && !none.HasPayment);
        // In the mask: everything.
        KafkaEventSource.Decode(value, 0, 5, out var h, RewardsConsumer.FieldTypes);
        Assert.Equal(again, h);

        // A type this reader does not know keeps its name; bytes that are no event are refused, naming the offset.
        var unknown = KafkaEventSource.Decode(Encoding.UTF8.GetBytes("""{"type":"PaymentTeleported","version":3,"sequence":9,"index":0,"ordinal":0,"key":1}"""), 0, 6, out var u);
        Assert.Equal(("PaymentTeleported", 3, (EventType)0), (unknown.Type, unknown.Version, u.Type));
        Assert.Contains("offset 7", Assert.Throws<InvalidDataException>(() => KafkaEventSource.Decode("""{"type":"PaymentCreated","sequence":0}"""u8.ToArray(), 0, 7, out _)).Message);
        Assert.Throws<InvalidDataException>(() => KafkaEventSource.Decode("[]"u8.ToArray(), 0, 8, out _));
    }

    [Fact]
    public void Rewards_select_the_same_payments_from_the_source_fields_as_from_the_bytes()
    {
        byte[] value = Encoding.UTF8.GetBytes(Approved);
        var created = Encoding.UTF8.GetBytes(Approved.Replace("\"PaymentApproved\"", "\"PaymentCreated\"").Replace("\"ordinal\":1", "\"ordinal\":0"));
        var events = new List<EventRecord>();
        var fields = new List<EventFields>();
        foreach (var (bytes, offset) in new[] { (created, 1L), (value, 2L) })
        {
            events.Add(KafkaEventSource.Decode(bytes, 0, offset, out var f, RewardsConsumer.FieldTypes));
            fields.Add(f);
        }
        Assert.False(fields[0].PayloadRead);
        var fromFields = RewardsConsumer.Select(events, [.. fields]);
        var fromBytes = RewardsConsumer.Select(events);
        Assert.Equal([3L], fromFields.Settled);
        Assert.Equal(fromBytes.Settled, fromFields.Settled);
    }

    private static EventRecord Event(long sequence, string type, long createdMs)
    {
        string created = DateTimeOffset.FromUnixTimeMilliseconds(createdMs).ToString("O", System.Globalization.CultureInfo.InvariantCulture);
        string json = "{\"type\":\"" + type + "\",\"version\":1,\"sequence\":" + sequence + ",\"index\":0,\"ordinal\":0,\"key\":2,\"payment\":{\"id\":" + sequence
            + ",\"kind\":\"transfer\",\"from_account\":2,\"to_account\":3,\"amount\":1000,\"currency\":\"USD\",\"created_at\":\"" + created + "\"}}";
        return new EventRecord(new EventPosition(sequence, 0, 0), type, 1, createdMs, 2, Encoding.UTF8.GetBytes(json));
    }
}
