using Npgsql;

namespace RamPay.Postgres;

/// <summary>
/// The analytics rollups in PostgreSQL (docs/analytics.md, "In PostgreSQL"; issue 13): SQL views, so anyone with a SQL
/// client or a BI tool reads the same buckets as <c>GET /v1/admin/analytics</c> without RamPay in between. They read
/// the rollup tables that triggers on <c>payments</c> keep in the sink's own transactions (<see cref="AnalyticsRollupTables"/>):
/// the first version scanned <c>payments</c> per query, 0.6 to 3 s at 1M rows; those scans remain as
/// <c>rampay_analytics_scan</c> and <c>rampay_fraud_scores_scan</c>, for checking.
/// <list type="bullet">
/// <item><c>rampay_analytics(bucket_interval, bucket_start, currency, ...)</c>: per minute, hour and day (UTC) the
/// measures the payments table settles exactly: created transfers, deposits and authorizations (a payment declined by
/// fraud screening was never created), refunds, rewards and their reversals, each a count and an amount; and
/// <c>fraud_scored</c>, <c>fraud_declined</c>.</item>
/// <item><c>rampay_fraud_scores(bucket_interval, bucket_start, currency, fraud_model, score_bin, payments)</c>: the
/// score distribution by model version, ten bins of 0.1 (<c>score_bin</c> 0 = [0, 0.1), ..., 9 = [0.9, 1]).</item>
/// </list>
/// Applied by the sink at start, after the migrations (<c>CREATE OR REPLACE</c>, under the migrations' advisory lock
/// so that two servers starting together do not race). A change that alters existing columns needs a DROP first: add
/// columns at the end only.
/// </summary>
public static class AnalyticsViews
{
    private const long LockId = 0x52616d506179; // the migrations' lock: views depend on their tables

    public const string Sql = """
        CREATE OR REPLACE VIEW rampay_analytics_scan AS
        SELECT i.bucket_interval,
               date_trunc(i.bucket_interval, p.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket_start,
               p.currency,
               count(*) FILTER (WHERE p.kind = 'transfer' AND p.status <> 'declined')                 AS transfers_created,
               coalesce(sum(p.amount) FILTER (WHERE p.kind = 'transfer' AND p.status <> 'declined'), 0)::bigint AS transfers_created_amount,
               count(*) FILTER (WHERE p.kind = 'deposit')                                              AS deposits_created,
               coalesce(sum(p.amount) FILTER (WHERE p.kind = 'deposit'), 0)::bigint                    AS deposits_created_amount,
               count(*) FILTER (WHERE p.kind = 'authorization' AND p.status <> 'declined')            AS authorizations_created,
               coalesce(sum(p.amount) FILTER (WHERE p.kind = 'authorization' AND p.status <> 'declined'), 0)::bigint AS authorizations_created_amount,
               count(*) FILTER (WHERE p.kind = 'refund')                                               AS refunds,
               coalesce(sum(p.amount) FILTER (WHERE p.kind = 'refund'), 0)::bigint                     AS refunds_amount,
               count(*) FILTER (WHERE p.kind = 'reward')                                               AS rewards,
               coalesce(sum(p.amount) FILTER (WHERE p.kind = 'reward'), 0)::bigint                     AS rewards_amount,
               count(*) FILTER (WHERE p.kind = 'reward_reversal')                                      AS reward_reversals,
               coalesce(sum(p.amount) FILTER (WHERE p.kind = 'reward_reversal'), 0)::bigint            AS reward_reversals_amount,
               count(*) FILTER (WHERE p.fraud_model IS NOT NULL)                                       AS fraud_scored,
               count(*) FILTER (WHERE p.status = 'declined')                                           AS fraud_declined
        FROM payments p
        CROSS JOIN (VALUES ('minute'), ('hour'), ('day')) AS i(bucket_interval)
        GROUP BY 1, 2, 3;
        COMMENT ON VIEW rampay_analytics_scan IS 'rampay_analytics computed by a scan of payments (slow on large tables: for checking the rollup tables).';

        CREATE OR REPLACE VIEW rampay_fraud_scores_scan AS
        SELECT i.bucket_interval,
               date_trunc(i.bucket_interval, p.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket_start,
               p.currency,
               p.fraud_model,
               least(9, greatest(0, floor(p.fraud_score * 10)::int)) AS score_bin,
               count(*) AS payments
        FROM payments p
        CROSS JOIN (VALUES ('minute'), ('hour'), ('day')) AS i(bucket_interval)
        WHERE p.fraud_model IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5;
        COMMENT ON VIEW rampay_fraud_scores_scan IS 'rampay_fraud_scores computed by a scan of payments (slow on large tables: for checking the rollup tables).';

        """;

    /// <summary>What dashboards read with the rollup tables on: the tables the triggers keep, same names and columns.</summary>
    public const string OverTablesSql = """
        -- What dashboards read: the rollup tables the triggers keep (AnalyticsRollupTables), same names and columns as before.
        CREATE OR REPLACE VIEW rampay_analytics AS
        SELECT bucket_interval, bucket_start, currency, transfers_created, transfers_created_amount, deposits_created, deposits_created_amount,
               authorizations_created, authorizations_created_amount, refunds, refunds_amount, rewards, rewards_amount,
               reward_reversals, reward_reversals_amount, fraud_scored, fraud_declined
        FROM rampay_analytics_rollup WHERE payments > 0;
        COMMENT ON VIEW rampay_analytics IS 'RamPay analytics rollups per minute/hour/day (UTC) and currency, over payments: the buckets of GET /v1/admin/analytics (docs/analytics.md).';

        CREATE OR REPLACE VIEW rampay_fraud_scores AS
        SELECT bucket_interval, bucket_start, currency, fraud_model, score_bin, payments
        FROM rampay_fraud_scores_rollup WHERE payments > 0;
        COMMENT ON VIEW rampay_fraud_scores IS 'RamPay fraud score distribution per bucket, currency and model version: ten bins of 0.1 (docs/analytics.md).';
        """;

    /// <summary>What dashboards read with the rollup tables off: the scans, same names and columns.</summary>
    public const string OverScansSql = """
        CREATE OR REPLACE VIEW rampay_analytics AS SELECT * FROM rampay_analytics_scan;
        COMMENT ON VIEW rampay_analytics IS 'RamPay analytics rollups per minute/hour/day (UTC) and currency, over payments: the buckets of GET /v1/admin/analytics (docs/analytics.md).';
        CREATE OR REPLACE VIEW rampay_fraud_scores AS SELECT * FROM rampay_fraud_scores_scan;
        COMMENT ON VIEW rampay_fraud_scores IS 'RamPay fraud score distribution per bucket, currency and model version: ten bins of 0.1 (docs/analytics.md).';
        """;

    /// <summary>
    /// Creates or replaces the views (after <see cref="Schema.Migrate"/>). <paramref name="rollupTables"/>: true = the
    /// views read rollup tables kept by triggers (fast queries; each sink statement on <c>payments</c> pays for the
    /// triggers), false = the views scan <c>payments</c> and the tables and triggers are removed (the sink's full pace),
    /// null = whatever this database has now (<c>rampay db rebuild</c>, which must not change the operator's choice).
    /// Returns whether the rollup tables are on.
    /// </summary>
    public static bool Apply(NpgsqlConnection connection, bool? rollupTables)
    {
        using var tx = connection.BeginTransaction();
        using (var lockCmd = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({LockId})", connection, tx)) lockCmd.ExecuteNonQuery();
        bool on = rollupTables ?? AnalyticsRollupTables.Exist(connection, tx);
        using (var scans = new NpgsqlCommand(Sql, connection, tx)) scans.ExecuteNonQuery();
        if (on)
        {
            AnalyticsRollupTables.Apply(connection, tx); // the tables the views read, before the views
            using var create = new NpgsqlCommand(OverTablesSql, connection, tx);
            create.ExecuteNonQuery();
        }
        else
        {
            using (var create = new NpgsqlCommand(OverScansSql, connection, tx)) create.ExecuteNonQuery();
            AnalyticsRollupTables.Remove(connection, tx); // after the views stopped reading them
        }
        tx.Commit();
        return on;
    }
}
