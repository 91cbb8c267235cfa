using System.Globalization;
using System.Net;
using Npgsql;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// The analytics rollups in PostgreSQL (src/RamPay.Postgres/AnalyticsViews.cs): a real server with the PostgreSQL sink on
/// a database of the test's own; the views' buckets equal the server's own <c>GET /v1/admin/analytics</c> answer bucket by
/// bucket, at every interval; the fraud score distribution by model equals sums over the ledger's payments.
/// </summary>
[Trait("Category", "Integration")]
public sealed class PostgresRollupTests(ITestOutputHelper output)
{
    private static readonly string[] Compared =
    [
        "transfers_created", "transfers_created_amount", "deposits_created", "deposits_created_amount",
        "authorizations_created", "authorizations_created_amount", "refunds", "refunds_amount",
        "rewards", "rewards_amount", "reward_reversals", "reward_reversals_amount",
    ];

    [Fact]
    public async Task The_views_hold_the_servers_buckets_and_the_fraud_score_distribution()
    {
        string admin = Environment.GetEnvironmentVariable("RAMPAY_TEST_POSTGRES") is { Length: > 0 } s ? s : "Host=127.0.0.1;Port=5432;Username=rampay;Password=rampay;Database=rampay_test";
        string name = "rampay_rw_" + Guid.NewGuid().ToString("N")[..16];
        await using (var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(admin) { Pooling = false }.ConnectionString))
        {
            await c.OpenAsync();
            await new NpgsqlCommand($"CREATE DATABASE {name}", c).ExecuteNonQueryAsync();
        }
        string database = new NpgsqlConnectionStringBuilder(admin) { Database = name, Pooling = false }.ConnectionString;
        try
        {
            // 1. A server with the sink (fraud screening on, its default), rewards funded, a rule; payments, refunds, an authorization.
            await using var server = await ServerProcess.StartAsync($"Postgres:Connection={database}");
            var api = new Api(server);
            string token = await api.AdminTokenAsync();
            (await api.PostAsync("/v1/admin/rewards/top_up", token, new { amount = 10_000_000, currency = "USD" })).Expect(HttpStatusCode.Created);
            (await api.PostAsync("/v1/admin/reward_rules", token, new { name = "three percent", percent_bps = 300, currency = "USD" })).Expect(HttpStatusCode.Created);
            var users = new List<TestUser>();
            for (int i = 0; i < 5; i++) users.Add(await api.SignUpAsync(deposit: 1_000_000));
            var rng = new Random(4);
            var paid = new List<(long Id, long Amount, TestUser Payee)>();
            for (int i = 0; i < 60; i++)
            {
                var payer = users[i % users.Count];
                var payee = users[(i + 1 + rng.Next(users.Count - 1)) % users.Count];
                var r = await api.PostAsync("/v1/payments", payer.Token, new { from_account = payer.WalletId, to_account = payee.WalletId, amount = rng.Next(100, 90_000), currency = "USD" });
                if (r.Status == HttpStatusCode.Created && r.Body!.Str("status") == "posted") paid.Add((r.Body!.Long("id"), r.Body!.Long("amount"), payee));
            }
            foreach (var (id, amount, payee) in paid.Take(6))
                (await api.PostAsync($"/v1/payments/{id}/refunds", payee.Token, new { amount = amount / 2, currency = "USD" })).Expect(HttpStatusCode.Created);
            (await api.PostAsync("/v1/payments", users[0].Token, new { from_account = users[0].WalletId, to_account = users[1].WalletId, amount = 700, currency = "USD", capture = false })).Expect(HttpStatusCode.Created);

            // 2. Every interval: the views' buckets equal the API's (once the sink and the consumers have caught up).
            long from = DateTimeOffset.UtcNow.AddDays(-1).ToUnixTimeSeconds(), to = DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds();
            foreach (string interval in (string[])["minute", "hour", "day"])
            {
                string describe = "";
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (true)
                {
                    var data = (await api.GetAsync($"/v1/admin/analytics?interval={interval}&from={from}&to={to}&currency=USD", token)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
                    var fromApi = data.Select(b => (Start: DateTimeOffset.Parse(b!.Str("start"), CultureInfo.InvariantCulture).ToUnixTimeMilliseconds(), Values: Compared.Select(m => b!.Long(m)).ToArray()))
                        .Where(b => b.Values.Any(v => v != 0)).ToDictionary(b => b.Start, b => b.Values);
                    var fromSql = await ViewBuckets(database, interval);
                    var mismatches = fromApi.Keys.Union(fromSql.Keys).Order()
                        .Where(k => !fromApi.TryGetValue(k, out var a) || !fromSql.TryGetValue(k, out var q) || !a.SequenceEqual(q))
                        .Select(k => $"{k}: api [{string.Join(",", fromApi.GetValueOrDefault(k) ?? [])}] sql [{string.Join(",", fromSql.GetValueOrDefault(k) ?? [])}]").ToList();
                    if (mismatches.Count == 0 && fromApi.Count > 0 && fromApi.Values.Sum(v => v[8]) > 0 && fromApi.Values.Sum(v => v[6]) > 0)
                    {
                        output.WriteLine($"{interval}: {fromApi.Count} buckets equal");
                        break;
                    }
                    describe = string.Join("\n", mismatches.Take(10));
                    if (DateTime.UtcNow > deadline) Assert.Fail($"{interval}: the views never matched the API:\n{describe}");
                    await Task.Delay(250);
                }
            }

            // 3. The fraud score distribution: per minute and bin, the view equals the ledger's own scored payments.
            Assert.Equal(0, await server.StopAsync());
            var ledger = RewardsServerTests.LoadLedger(server.DataDirectory);
            var expected = new SortedDictionary<(long, int), long>();
            var models = new HashSet<ushort>();
            for (long id = 1; id <= ledger.PaymentCount; id++)
            {
                var p = ledger.GetPayment(id);
                if (p.FraudModel == 0) continue;
                models.Add(p.FraudModel);
                var key = (p.CreatedAtMs - p.CreatedAtMs % 60_000, Math.Clamp((int)MathF.Floor(p.FraudScore * 10f), 0, 9));
                expected[key] = expected.GetValueOrDefault(key) + 1;
            }
            Assert.NotEmpty(expected);
            var actual = new SortedDictionary<(long, int), long>();
            var sqlModels = new HashSet<string>();
            await using (var c = new NpgsqlConnection(database))
            {
                await c.OpenAsync();
                await using var cmd = new NpgsqlCommand("SELECT bucket_start, score_bin, fraud_model, payments FROM rampay_fraud_scores WHERE bucket_interval = 'minute' AND currency = 'USD'", c);
                await using var reader = await cmd.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    var key = (new DateTimeOffset(reader.GetDateTime(0)).ToUnixTimeMilliseconds(), reader.GetInt32(1));
                    actual[key] = actual.GetValueOrDefault(key) + reader.GetInt64(3);
                    sqlModels.Add(reader.GetString(2));
                }
            }
            Assert.Equal(expected, actual);
            Assert.Equal(models.Count, sqlModels.Count);
            output.WriteLine($"fraud scores: {expected.Values.Sum()} scored payments in {expected.Count} (minute, bin) cells, models {string.Join(",", sqlModels)}");
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await using var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(admin) { Pooling = false }.ConnectionString);
            await c.OpenAsync();
            await new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", c).ExecuteNonQueryAsync();
        }
    }

    private static async Task<Dictionary<long, long[]>> ViewBuckets(string database, string interval)
    {
        var result = new Dictionary<long, long[]>();
        await using var c = new NpgsqlConnection(database);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand($"SELECT bucket_start, {string.Join(", ", Compared)} FROM rampay_analytics WHERE bucket_interval = @i AND currency = 'USD'", c);
        cmd.Parameters.AddWithValue("i", interval);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var values = Enumerable.Range(1, Compared.Length).Select(i => reader.GetInt64(i)).ToArray();
            if (values.Any(v => v != 0)) result[new DateTimeOffset(reader.GetDateTime(0)).ToUnixTimeMilliseconds()] = values;
        }
        return result;
    }
}
