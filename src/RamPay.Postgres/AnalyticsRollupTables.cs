using Npgsql;

namespace RamPay.Postgres;

/// <summary>
/// The analytics rollups as tables in PostgreSQL (docs/analytics.md, "In PostgreSQL"; issue 13): the views over
/// <c>payments</c> took 0.6 to 3 s a query at 1M payment rows (a scan and a grouping per query), too slow for a
/// dashboard; these tables hold the same buckets and answer in milliseconds. Kept by statement-level triggers on
/// <c>payments</c> with transition tables, so they change in the sink's own transaction (the COPY of new payments and the
/// UPDATE of changed ones each fire one trigger per batch, not per row) and cannot drift from the rows: each statement
/// adds +1 for every new row and -1 for every old one (an UPDATE is both, so a status change moves a payment between
/// measures); a TRUNCATE (<c>rampay db rebuild</c>) empties them. <c>payments</c> counts the rows of a bucket: a bucket
/// whose rows were all deleted stays with 0 and the views leave it out.
/// <para>
/// Created at the sink's start, under the migrations' lock: the first time, with <c>payments</c> locked against writers,
/// the triggers are created and the tables filled from the existing rows in the same transaction (at 1M rows this took
/// about a minute on the shared build machine), so no row is counted twice or missed. <see cref="AnalyticsViews"/> keeps the
/// views' names and columns and reads these tables; the old scans remain as <c>rampay_analytics_scan</c> and
/// <c>rampay_fraud_scores_scan</c>, for checking (<c>PostgresRollupTableTests</c> compares the two).
/// </para>
/// </summary>
public static class AnalyticsRollupTables
{
    /// <summary>The tables (if missing), the trigger function and the triggers (replaced each start).</summary>
    public const string Sql = """
        CREATE TABLE IF NOT EXISTS rampay_analytics_rollup (
            bucket_interval text NOT NULL, bucket_start timestamptz NOT NULL, currency char(3) NOT NULL,
            payments bigint NOT NULL,
            transfers_created bigint NOT NULL, transfers_created_amount bigint NOT NULL,
            deposits_created bigint NOT NULL, deposits_created_amount bigint NOT NULL,
            authorizations_created bigint NOT NULL, authorizations_created_amount bigint NOT NULL,
            refunds bigint NOT NULL, refunds_amount bigint NOT NULL,
            rewards bigint NOT NULL, rewards_amount bigint NOT NULL,
            reward_reversals bigint NOT NULL, reward_reversals_amount bigint NOT NULL,
            fraud_scored bigint NOT NULL, fraud_declined bigint NOT NULL,
            PRIMARY KEY (bucket_interval, currency, bucket_start));
        CREATE TABLE IF NOT EXISTS rampay_fraud_scores_rollup (
            bucket_interval text NOT NULL, bucket_start timestamptz NOT NULL, currency char(3) NOT NULL,
            fraud_model text NOT NULL, score_bin int NOT NULL, payments bigint NOT NULL,
            PRIMARY KEY (bucket_interval, currency, bucket_start, fraud_model, score_bin));

        CREATE OR REPLACE FUNCTION rampay_rollup_statements(src text) RETURNS text[] LANGUAGE sql IMMUTABLE AS $fn$
        SELECT ARRAY['WITH d AS (' || src || $q$)
        INSERT INTO rampay_analytics_rollup AS r
            SELECT i.bucket_interval,
                   date_trunc(i.bucket_interval, d.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                   d.currency,
                   sum(d.delta),
                   coalesce(sum(d.delta) FILTER (WHERE d.kind = 'transfer' AND d.status <> 'declined'), 0),
                   coalesce(sum(d.delta * d.amount) FILTER (WHERE d.kind = 'transfer' AND d.status <> 'declined'), 0),
                   coalesce(sum(d.delta) FILTER (WHERE d.kind = 'deposit'), 0),
                   coalesce(sum(d.delta * d.amount) FILTER (WHERE d.kind = 'deposit'), 0),
                   coalesce(sum(d.delta) FILTER (WHERE d.kind = 'authorization' AND d.status <> 'declined'), 0),
                   coalesce(sum(d.delta * d.amount) FILTER (WHERE d.kind = 'authorization' AND d.status <> 'declined'), 0),
                   coalesce(sum(d.delta) FILTER (WHERE d.kind = 'refund'), 0),
                   coalesce(sum(d.delta * d.amount) FILTER (WHERE d.kind = 'refund'), 0),
                   coalesce(sum(d.delta) FILTER (WHERE d.kind = 'reward'), 0),
                   coalesce(sum(d.delta * d.amount) FILTER (WHERE d.kind = 'reward'), 0),
                   coalesce(sum(d.delta) FILTER (WHERE d.kind = 'reward_reversal'), 0),
                   coalesce(sum(d.delta * d.amount) FILTER (WHERE d.kind = 'reward_reversal'), 0),
                   coalesce(sum(d.delta) FILTER (WHERE d.fraud_model IS NOT NULL), 0),
                   coalesce(sum(d.delta) FILTER (WHERE d.status = 'declined'), 0)
            FROM d CROSS JOIN (VALUES ('minute'), ('hour'), ('day')) AS i(bucket_interval)
            GROUP BY 1, 2, 3
            ORDER BY 1, 3, 2
            ON CONFLICT (bucket_interval, currency, bucket_start) DO UPDATE SET
                payments = r.payments + EXCLUDED.payments,
                transfers_created = r.transfers_created + EXCLUDED.transfers_created, transfers_created_amount = r.transfers_created_amount + EXCLUDED.transfers_created_amount,
                deposits_created = r.deposits_created + EXCLUDED.deposits_created, deposits_created_amount = r.deposits_created_amount + EXCLUDED.deposits_created_amount,
                authorizations_created = r.authorizations_created + EXCLUDED.authorizations_created, authorizations_created_amount = r.authorizations_created_amount + EXCLUDED.authorizations_created_amount,
                refunds = r.refunds + EXCLUDED.refunds, refunds_amount = r.refunds_amount + EXCLUDED.refunds_amount,
                rewards = r.rewards + EXCLUDED.rewards, rewards_amount = r.rewards_amount + EXCLUDED.rewards_amount,
                reward_reversals = r.reward_reversals + EXCLUDED.reward_reversals, reward_reversals_amount = r.reward_reversals_amount + EXCLUDED.reward_reversals_amount,
                fraud_scored = r.fraud_scored + EXCLUDED.fraud_scored, fraud_declined = r.fraud_declined + EXCLUDED.fraud_declined$q$, 'WITH d AS (' || src || $q$)
        INSERT INTO rampay_fraud_scores_rollup AS r
            SELECT i.bucket_interval,
                   date_trunc(i.bucket_interval, d.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                   d.currency, d.fraud_model, least(9, greatest(0, floor(d.fraud_score * 10)::int)), sum(d.delta)
            FROM d CROSS JOIN (VALUES ('minute'), ('hour'), ('day')) AS i(bucket_interval)
            WHERE d.fraud_model IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5
            ORDER BY 1, 3, 2, 4, 5
            ON CONFLICT (bucket_interval, currency, bucket_start, fraud_model, score_bin) DO UPDATE SET payments = r.payments + EXCLUDED.payments$q$]
        $fn$;

        CREATE OR REPLACE FUNCTION rampay_rollup_payments() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE src text; stmt text;
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                TRUNCATE rampay_analytics_rollup, rampay_fraud_scores_rollup;
                RETURN NULL;
            END IF;
            -- The statement's rows: +1 for each new row, -1 for each old one (an UPDATE is both), so a change of status moves a
            -- payment between measures. Dynamic SQL because a trigger for INSERT has no old rows to name (and DELETE no new).
            src := CASE TG_OP
                WHEN 'INSERT' THEN 'SELECT created_at, currency, kind, status, amount, fraud_model, fraud_score, 1 AS delta FROM rampay_new'
                WHEN 'DELETE' THEN 'SELECT created_at, currency, kind, status, amount, fraud_model, fraud_score, -1 AS delta FROM rampay_old'
                ELSE 'SELECT created_at, currency, kind, status, amount, fraud_model, fraud_score, 1 AS delta FROM rampay_new UNION ALL '
                  || 'SELECT created_at, currency, kind, status, amount, fraud_model, fraud_score, -1 AS delta FROM rampay_old' END;
            FOREACH stmt IN ARRAY rampay_rollup_statements(src) LOOP
                EXECUTE stmt;
            END LOOP;
            RETURN NULL;
        END
        $fn$;

        CREATE OR REPLACE TRIGGER rampay_rollup_insert AFTER INSERT ON payments REFERENCING NEW TABLE AS rampay_new FOR EACH STATEMENT EXECUTE FUNCTION rampay_rollup_payments();
        CREATE OR REPLACE TRIGGER rampay_rollup_update AFTER UPDATE ON payments REFERENCING OLD TABLE AS rampay_old NEW TABLE AS rampay_new FOR EACH STATEMENT EXECUTE FUNCTION rampay_rollup_payments();
        CREATE OR REPLACE TRIGGER rampay_rollup_delete AFTER DELETE ON payments REFERENCING OLD TABLE AS rampay_old FOR EACH STATEMENT EXECUTE FUNCTION rampay_rollup_payments();
        CREATE OR REPLACE TRIGGER rampay_rollup_truncate AFTER TRUNCATE ON payments FOR EACH STATEMENT EXECUTE FUNCTION rampay_rollup_payments();
        """;

    /// <summary>Fills empty tables from every existing row (the triggers' own arithmetic, over <c>payments</c>).</summary>
    public const string BackfillSql = """
        DO $$ DECLARE stmt text; BEGIN
          FOREACH stmt IN ARRAY rampay_rollup_statements('SELECT created_at, currency, kind, status, amount, fraud_model, fraud_score, 1 AS delta FROM payments') LOOP
            EXECUTE stmt;
          END LOOP;
        END $$;
        """;

    /// <summary>
    /// Inside <see cref="AnalyticsViews.Apply"/>'s transaction, before the views: locks <c>payments</c> against writers
    /// (share row exclusive: readers go on), creates or replaces the triggers, and fills the tables when they are new.
    /// Returns whether it filled them.
    /// </summary>
    public static bool Apply(NpgsqlConnection connection, NpgsqlTransaction tx)
    {
        bool exists = Exist(connection, tx);
        using (var lockPayments = new NpgsqlCommand("LOCK TABLE payments IN SHARE ROW EXCLUSIVE MODE", connection, tx)) lockPayments.ExecuteNonQuery();
        using (var create = new NpgsqlCommand(Sql, connection, tx)) create.ExecuteNonQuery();
        if (exists) return false;
        using var fill = new NpgsqlCommand(BackfillSql, connection, tx) { CommandTimeout = 0 }; // a large table takes minutes, once
        fill.ExecuteNonQuery();
        return true;
    }

    /// <summary>Whether this database has the rollup tables (they exist exactly when their triggers do).</summary>
    public static bool Exist(NpgsqlConnection connection, NpgsqlTransaction tx)
    {
        using var probe = new NpgsqlCommand("SELECT to_regclass('rampay_analytics_rollup') IS NOT NULL", connection, tx);
        return (bool)probe.ExecuteScalar()!;
    }

    /// <summary>
    /// Turns the rollup tables off: the triggers first (the sink's statements stop paying for them), then the tables and
    /// the functions. Turned on again later, the tables are new and filled from the rows again (<see cref="Apply"/>).
    /// </summary>
    public static void Remove(NpgsqlConnection connection, NpgsqlTransaction tx)
    {
        using var drop = new NpgsqlCommand("""
            DROP TRIGGER IF EXISTS rampay_rollup_insert ON payments;
            DROP TRIGGER IF EXISTS rampay_rollup_update ON payments;
            DROP TRIGGER IF EXISTS rampay_rollup_delete ON payments;
            DROP TRIGGER IF EXISTS rampay_rollup_truncate ON payments;
            DROP TABLE IF EXISTS rampay_analytics_rollup, rampay_fraud_scores_rollup;
            DROP FUNCTION IF EXISTS rampay_rollup_payments();
            DROP FUNCTION IF EXISTS rampay_rollup_statements(text);
            """, connection, tx);
        drop.ExecuteNonQuery();
    }
}
