using Npgsql;
using RamPay.Postgres;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// The rollup tables behind rampay_analytics and rampay_fraud_scores (src/RamPay.Postgres/AnalyticsRollupTables.cs)
/// against the scans they replaced (rampay_analytics_scan, rampay_fraud_scores_scan), on a real PostgreSQL database of
/// the test's own: rows there before the tables (the backfill), inserted, copied, updated (a status change moves a payment
/// between measures), deleted, truncated.
/// </summary>
[Trait("Category", "Integration")]
public sealed class PostgresRollupTableTests(ITestOutputHelper output)
{
    private const string Columns = "bucket_interval, bucket_start, currency, transfers_created, transfers_created_amount, deposits_created, deposits_created_amount, "
        + "authorizations_created, authorizations_created_amount, refunds, refunds_amount, rewards, rewards_amount, reward_reversals, reward_reversals_amount, fraud_scored, fraud_declined";

    [Fact]
    public async Task The_rollup_tables_equal_the_scans_through_inserts_copies_updates_deletes_and_a_truncate()
    {
        string admin = Environment.GetEnvironmentVariable("RAMPAY_TEST_POSTGRES") is { Length: > 0 } s ? s : "Host=127.0.0.1;Port=5432;Username=rampay;Password=rampay;Database=rampay_test";
        string name = "rampay_rt_" + Guid.NewGuid().ToString("N")[..16];
        await using (var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(admin) { Pooling = false }.ConnectionString))
        {
            await c.OpenAsync();
            await new NpgsqlCommand($"CREATE DATABASE {name}", c).ExecuteNonQueryAsync();
        }
        try
        {
            await using var db = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(admin) { Database = name, Pooling = false }.ConnectionString);
            await db.OpenAsync();
            Schema.Migrate(db);

            // 1. Rows before the rollup tables exist: the first Apply fills them.
            await Insert(db, 1, 3_000);
            AnalyticsViews.Apply(db, rollupTables: true);
            await AssertEqual(db, "after the backfill");

            // 2. The triggers: an INSERT, a COPY (the sink's way), UPDATEs of status and amounts, DELETEs.
            await Insert(db, 3_001, 1_000);
            await using (var w = await db.BeginBinaryImportAsync("COPY payments (id, kind, status, from_account_id, to_account_id, amount, captured, refunded, currency, created_at, created_sequence, journal_sequence, fraud_score, fraud_model) FROM STDIN (FORMAT BINARY)"))
            {
                var rng = new Random(5);
                for (long id = 4_001; id <= 5_000; id++)
                {
                    await w.StartRowAsync();
                    await w.WriteAsync(id); await w.WriteAsync("transfer"); await w.WriteAsync("posted"); await w.WriteAsync(2L); await w.WriteAsync(3L);
                    long amount = rng.Next(1, 10_000);
                    await w.WriteAsync(amount); await w.WriteAsync(amount); await w.WriteAsync(0L); await w.WriteAsync(id % 2 == 0 ? "USD" : "EUR");
                    await w.WriteAsync(new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero).AddSeconds(id * 7).UtcDateTime, NpgsqlTypes.NpgsqlDbType.TimestampTz);
                    await w.WriteAsync(id); await w.WriteAsync(id);
                    await w.WriteAsync((float)rng.NextDouble()); await w.WriteAsync(id % 3 == 0 ? "model-b" : "model-a");
                }
                await w.CompleteAsync();
            }
            await Execute(db, "UPDATE payments SET status = 'declined' WHERE id % 11 = 0 AND kind IN ('transfer', 'authorization')");
            await Execute(db, "UPDATE payments SET status = 'posted', amount = amount + 1 WHERE id % 13 = 0 AND status = 'held_for_review'");
            await Execute(db, "DELETE FROM payments WHERE id % 17 = 0");
            await Execute(db, "DELETE FROM payments WHERE id BETWEEN 100 AND 140"); // whole minutes emptied: their rows stay with 0, the view leaves them out
            await AssertEqual(db, "after inserts, a copy, updates and deletes");

            // 3. A second start: Apply again does not fill twice.
            AnalyticsViews.Apply(db, rollupTables: true);
            await AssertEqual(db, "after a second Apply");

            // 4. Turned off (the setting's default): the views scan payments, the tables and the triggers are gone; null (what
            //    `rampay db rebuild` passes) keeps off; turned on again, the tables are refilled from the rows; null keeps on.
            Assert.False(AnalyticsViews.Apply(db, rollupTables: false));
            Assert.Equal(0L, await Scalar(db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'rampay_rollup_%'"));
            Assert.Equal(0L, await Scalar(db, "SELECT count(*) FROM pg_class WHERE relname IN ('rampay_analytics_rollup', 'rampay_fraud_scores_rollup')"));
            await Execute(db, "UPDATE payments SET status = 'declined' WHERE id % 19 = 0 AND kind = 'transfer'"); // changed while off
            await AssertEqual(db, "off");
            Assert.False(AnalyticsViews.Apply(db, rollupTables: null));
            Assert.True(AnalyticsViews.Apply(db, rollupTables: true));
            Assert.Equal(4L, await Scalar(db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'rampay_rollup_%'"));
            await AssertEqual(db, "on again (refilled)");
            Assert.True(AnalyticsViews.Apply(db, rollupTables: null));
            await Insert(db, 10_000, 500);
            await AssertEqual(db, "on, kept by a null Apply");

            // 5. TRUNCATE (rampay db rebuild) empties them.
            await Execute(db, "TRUNCATE payments");
            Assert.Equal(0L, await Scalar(db, "SELECT count(*) FROM rampay_analytics"));
            Assert.Equal(0L, await Scalar(db, "SELECT count(*) FROM rampay_analytics_rollup"));
            Assert.Equal(0L, await Scalar(db, "SELECT count(*) FROM rampay_fraud_scores_rollup"));
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await using var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(admin) { Pooling = false }.ConnectionString);
            await c.OpenAsync();
            await new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", c).ExecuteNonQueryAsync();
        }
    }

    /// <summary>Payments of every kind and status the views tell apart, over a few hours in two currencies, some scored by two models.</summary>
    private static Task Insert(NpgsqlConnection db, long first, int count) => Execute(db, $"""
        INSERT INTO payments (id, kind, status, from_account_id, to_account_id, amount, captured, refunded, currency, created_at, created_sequence, journal_sequence, fraud_score, fraud_model)
        SELECT g, k.kind, CASE WHEN g % 7 = 0 THEN 'declined' WHEN g % 5 = 0 THEN 'held_for_review' ELSE 'posted' END, 2, 3,
               1 + (g * 7919) % 50000, 1 + (g * 7919) % 50000, 0, CASE WHEN g % 3 = 0 THEN 'EUR' ELSE 'USD' END,
               timestamptz '2026-11-01 00:00:00+00' + g * interval '7 second', g, g,
               CASE WHEN g % 4 <> 0 THEN ((g * 31) % 1000) / 1000.0 END,
               CASE WHEN g % 4 <> 0 THEN CASE WHEN g % 2 = 0 THEN 'model-a' ELSE 'model-b' END END
        FROM generate_series({first}, {first + count - 1}) g
        CROSS JOIN LATERAL (SELECT (ARRAY['transfer', 'deposit', 'authorization', 'refund', 'reward', 'reward_reversal', 'transfer'])[1 + g % 7] AS kind) k
        """);

    private async Task AssertEqual(NpgsqlConnection db, string when)
    {
        long onlyRollup = await Scalar(db, $"SELECT count(*) FROM (SELECT {Columns} FROM rampay_analytics EXCEPT ALL SELECT {Columns} FROM rampay_analytics_scan) x");
        long onlyScan = await Scalar(db, $"SELECT count(*) FROM (SELECT {Columns} FROM rampay_analytics_scan EXCEPT ALL SELECT {Columns} FROM rampay_analytics) x");
        long scoresOnlyRollup = await Scalar(db, "SELECT count(*) FROM (SELECT * FROM rampay_fraud_scores EXCEPT ALL SELECT * FROM rampay_fraud_scores_scan) x");
        long scoresOnlyScan = await Scalar(db, "SELECT count(*) FROM (SELECT * FROM rampay_fraud_scores_scan EXCEPT ALL SELECT * FROM rampay_fraud_scores) x");
        long buckets = await Scalar(db, "SELECT count(*) FROM rampay_analytics");
        long cells = await Scalar(db, "SELECT count(*) FROM rampay_fraud_scores");
        output.WriteLine($"{when}: {buckets} buckets, {cells} score cells; differing rows {onlyRollup}/{onlyScan}, {scoresOnlyRollup}/{scoresOnlyScan}");
        Assert.True(buckets > 0 && cells > 0, when);
        Assert.Equal((0L, 0L, 0L, 0L), (onlyRollup, onlyScan, scoresOnlyRollup, scoresOnlyScan));
    }

    private static async Task Execute(NpgsqlConnection db, string sql)
    {
        await using var cmd = new NpgsqlCommand(sql, db);
        await cmd.ExecuteNonQueryAsync();
    }

    private static async Task<long> Scalar(NpgsqlConnection db, string sql)
    {
        await using var cmd = new NpgsqlCommand(sql, db);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
