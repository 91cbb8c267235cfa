using System.Globalization;
using System.Net;
using System.Text;
using RamPay.Analytics;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// The fraud score distribution by model version in the server's own analytics (<c>GET /v1/admin/analytics</c>,
/// docs/analytics.md): every (bucket, model, bin) at every interval equals the count over the ledger's own scored
/// payments, across a SIGKILL and a restart.
/// </summary>
public sealed class AnalyticsScoreTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_score_distribution_of_every_bucket_equals_the_ledgers_scored_payments_across_a_kill()
    {
        // 1. A server with fraud screening on (its default); users; payments of random amounts (some scored high).
        await using var server = await ServerProcess.StartAsync();
        var api = new Api(server);
        var users = new List<TestUser>();
        for (int i = 0; i < 5; i++) users.Add(await api.SignUpAsync(deposit: 5_000_000));
        var rng = new Random(13);
        async Task Pay(int n)
        {
            for (int i = 0; i < n; i++)
            {
                var payer = users[rng.Next(users.Count)];
                var payee = users[(users.IndexOf(payer) + 1 + rng.Next(users.Count - 1)) % users.Count];
                long amount = rng.Next(4) == 0 ? rng.Next(200_000, 900_000) : rng.Next(100, 20_000);
                var r = await api.PostAsync("/v1/payments", payer.Token, new { from_account = payer.WalletId, to_account = payee.WalletId, amount, currency = "USD" });
                Assert.True((int)r.Status < 500, $"payment answered {(int)r.Status}");
            }
        }
        await Pay(40);

        // 2. SIGKILL (the rollups saved at most a second ago, the rest fed again), restart, more payments.
        await server.KillAsync();
        await server.RestartAsync();
        api.ForgetAdminToken();
        var relogged = await Task.WhenAll(users.Select(async u => u with { Token = await api.LoginAsync(u.Email, u.Password) }));
        users.Clear();
        users.AddRange(relogged);
        await Pay(40);

        // 3. Once the consumer has caught up, every interval's cells equal the ledger's (read offline after a clean stop,
        //    then the server started again to answer: the rollups file holds the same as the memory did).
        long from = DateTimeOffset.UtcNow.AddDays(-2).ToUnixTimeSeconds(), to = DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds();
        Assert.Equal(0, await server.StopAsync());
        var ledger = RewardsServerTests.LoadLedger(server.DataDirectory);
        await server.RestartAsync();
        api.ForgetAdminToken();
        string token = await api.AdminTokenAsync();
        long scored = 0;
        foreach (var interval in (Interval[])[Interval.Minute, Interval.Hour, Interval.Day])
        {
            var expected = new SortedDictionary<string, long>(StringComparer.Ordinal);
            for (long id = 1; id <= ledger.PaymentCount; id++)
            {
                if (ledger.GetFraudScore(id) is not { } f) continue;
                var p = ledger.GetPayment(id);
                string key = $"{AnalyticsRollups.StartOf(p.CreatedAtMs, interval)} {p.Currency} {f.ModelVersion} {AnalyticsRollups.ScoreBin(f.Score)}";
                expected[key] = expected.GetValueOrDefault(key) + 1;
            }
            Assert.NotEmpty(expected);
            string name = interval.ToString().ToLowerInvariant();
            SortedDictionary<string, long> actual = [];
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                actual = [];
                long total = 0, fromBuckets = 0;
                var data = (await api.GetAsync($"/v1/admin/analytics?interval={name}&from={from}&to={to}", token)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
                foreach (var node in data)
                {
                    var b = node!;
                    long start = DateTimeOffset.Parse(b.Str("start"), CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();
                    foreach (var cellNode in b["fraud_scores"]!.AsArray())
                    {
                        var cell = cellNode!;
                        string key = $"{start} {b.Str("currency")} {cell.Str("model")} {cell.Long("bin")}";
                        actual[key] = actual.GetValueOrDefault(key) + cell.Long("payments");
                        total += cell.Long("payments");
                    }
                    fromBuckets += b.Long("fraud_scored");
                }
                Assert.Equal(total, fromBuckets); // fraud_scored is the sum of the bucket's cells
                if (expected.SequenceEqual(actual)) break;
                if (DateTime.UtcNow > deadline)
                    Assert.Fail($"{name}: expected\n{string.Join("\n", expected)}\nactual\n{string.Join("\n", actual)}");
                await Task.Delay(250);
            }
            scored = expected.Values.Sum();
            output.WriteLine($"{name}: {expected.Count} (bucket, model, bin) cells equal, {scored} scored payments");
        }
        Assert.True(scored >= 40, $"most payments are scored: {scored}");
    }

    [Fact]
    public void The_rollups_file_keeps_the_scores_and_a_version_1_file_still_loads()
    {
        string dir = Directory.CreateTempSubdirectory("rampay-analytics-").FullName;
        try
        {
            string path = Path.Combine(dir, "analytics.rollups");
            long from = new DateTimeOffset(2026, 10, 31, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds(), to = from + 3 * 86_400_000L;
            var store = new AnalyticsStore(path);
            string json = "{\"type\":\"PaymentCreated\",\"payment\":{\"id\":7,\"kind\":\"transfer\",\"amount\":100,\"currency\":\"USD\",\"from_account\":2,\"to_account\":3,\"created_at\":\"2026-11-01T00:00:01.000Z\"}}";
            var events = new[] { new EventRecord(new EventPosition(1, 0, 0), "PaymentCreated", 1, 0, 2, Encoding.UTF8.GetBytes(json)) };
            var batch = new EventBatch(events, EventBatch.LogSource);
            store.Apply(batch, AnalyticsRollups.Parse(events), new Dictionary<long, PaymentScore> { [7] = new("model-x", 0.93f) }, saveNow: true);
            var loaded = AnalyticsStore.Load(path);
            var cell = Assert.Single(loaded.QueryScores(Interval.Minute, from, to, 0));
            Assert.Equal(("model-x", 9, 1L), (cell.Model, cell.Bin, cell.Payments));
            Assert.Equal(1, loaded.Query(Interval.Day, from, to, 0).Single().Values[(int)Measure.TransfersCreated]);

            // A version 1 file: the same bytes up to the open distinct sets, version 1, nothing after (a file of its own:
            // the store above left its log beside its file, and a version 1 file never had one).
            path = Path.Combine(dir, "v1.rollups");
            var v1 = new AnalyticsRollups();
            v1.Apply(batch);
            using (var buffer = new MemoryStream())
            {
                AnalyticsStore.Write(v1, buffer);
                byte[] bytes = buffer.ToArray();
                int scoresSection = 4 + 4; // i32 model count 0, i32 cell count 0
                int version3Tail = 8 + 8 + 3 * 8 + 8 + 4; // log segment, watermark, 3 oldest-kept starts, beyond retention, CRC
                bytes = bytes[..^(scoresSection + version3Tail)];
                BitConverter.TryWriteBytes(bytes.AsSpan(4, 4), 1);
                File.WriteAllBytes(path, bytes);
            }
            var old = AnalyticsStore.Load(path);
            Assert.Empty(old.QueryScores(Interval.Minute, from, to, 0));
            Assert.Equal(1, old.Query(Interval.Day, from, to, 0).Single().Values[(int)Measure.TransfersCreated]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Event_fields_read_the_documented_example_and_skip_what_they_do_not_know()
    {
        string json = """
            {"event_id":"6-0-1","type":"PaymentApproved","version":1,"sequence":6,"index":0,"ordinal":1,"future":{"a":[1,{"payment":{"id":99}}]},
             "occurred_at":"2023-11-14T22:13:20.042Z","key":2,"client_id":1,
             "payment":{"id":3,"kind":"transfer","status":"posted","from_account":2,"to_account":3,"amount":1000,"currency":"USD",
               "captured":1000,"refunded":0,"parent_id":null,"created_at":"2023-11-14T22:13:20.042Z","expires_at":null,
               "description":"Rent \"March\"","webhook_url":"https://example.com/hook"},
             "balances":{"from":{"id":2,"owner":1,"currency":"USD","balance":9000,"available":9000,"debits_posted":1000,
               "credits_posted":10000,"debits_pending":0,"credits_pending":0,"frozen":false},
               "to":{"id":3,"owner":0,"currency":"USD","balance":6000,"available":6000,"debits_posted":0,"credits_posted":6000,
               "debits_pending":0,"credits_pending":0,"frozen":false}}}
            """;
        Assert.True(EventFields.TryRead(Encoding.UTF8.GetBytes(json), out var f));
        Assert.True(f.Valid && f.HasPayment && !f.HasRefund);
        Assert.Equal((3L, EventPaymentKind.Transfer, 1000L, 1000L, 2L, 3L), (f.PaymentId, f.Kind, f.Amount, f.Captured, f.FromAccount, f.ToAccount));
        Assert.Equal(RamPay.Core.Currency.USD.Code, f.Currency);
        Assert.Equal(DateTimeOffset.Parse("2023-11-14T22:13:20.042Z", CultureInfo.InvariantCulture).ToUnixTimeMilliseconds(), f.CreatedAtMs);
        Assert.Equal((true, 1L, true, 0L), (f.HasFromOwner, f.FromOwner, f.HasToOwner, f.ToOwner));
        Assert.False(EventFields.TryRead("[1,2]"u8, out _));
        Assert.False(EventFields.TryRead("{\"payment\":{\"id\":"u8, out _));
    }
}
