using Npgsql;

namespace RamPay.Postgres;

/// <summary>
/// The database schema, as numbered migrations. Applied at start-up by <see cref="Schema.Migrate"/>: each in its own
/// transaction, under an advisory lock, recorded in <c>rampay_schema_migrations</c>, so running it twice (or from two
/// processes at once) applies each migration exactly once. Applied migrations are frozen: a change is a new one.
/// </summary>
public static class Schema
{
    /// <summary>Any constant: it names the lock that serialises migrations across processes.</summary>
    private const long MigrationLockId = 0x52616d506179; // "RamPay"

    public sealed record Migration(int Version, string Description, string Sql);

    public static readonly IReadOnlyList<Migration> Migrations =
    [
        new(1, "users, accounts, payments, ledger entries, refunds, sink checkpoint", """
            CREATE TABLE users (
                id                 bigint PRIMARY KEY,
                email              text NOT NULL UNIQUE,
                name               text NOT NULL,
                role               text NOT NULL,
                wallet_account_id  bigint NOT NULL,
                created_at         timestamptz NOT NULL,
                journal_sequence   bigint NOT NULL
            );
            COMMENT ON TABLE users IS 'Registered users (RamPay journal: RegisterUser). No password hashes leave the ledger.';

            CREATE TABLE accounts (
                id                 bigint PRIMARY KEY,
                owner_user_id      bigint,
                currency           char(3) NOT NULL,
                is_wallet          boolean NOT NULL,
                is_funding         boolean NOT NULL,
                debits_posted      bigint NOT NULL,
                credits_posted     bigint NOT NULL,
                debits_pending     bigint NOT NULL,
                credits_pending    bigint NOT NULL,
                balance            bigint GENERATED ALWAYS AS (credits_posted - debits_posted) STORED,
                available          bigint GENERATED ALWAYS AS (credits_posted - debits_posted - debits_pending) STORED,
                frozen             boolean NOT NULL,
                created_at         timestamptz NOT NULL,
                journal_sequence   bigint NOT NULL
            );
            COMMENT ON TABLE accounts IS 'Ledger accounts with their current balances, in minor units. journal_sequence: the last change.';
            CREATE INDEX accounts_owner ON accounts (owner_user_id);

            CREATE TABLE payments (
                id                 bigint PRIMARY KEY,
                kind               text NOT NULL,
                status             text NOT NULL,
                from_account_id    bigint NOT NULL,
                to_account_id      bigint NOT NULL,
                amount             bigint NOT NULL,
                captured           bigint NOT NULL,
                refunded           bigint NOT NULL,
                currency           char(3) NOT NULL,
                parent_payment_id  bigint,
                description        text,
                webhook_url        text,
                created_at         timestamptz NOT NULL,
                expires_at         timestamptz,
                created_sequence   bigint NOT NULL,
                journal_sequence   bigint NOT NULL
            );
            COMMENT ON TABLE payments IS 'Every payment (transfer, deposit, authorization, refund) with its current status and amounts.';
            CREATE INDEX payments_from ON payments (from_account_id, id);
            CREATE INDEX payments_to ON payments (to_account_id, id);

            CREATE TABLE ledger_entries (
                journal_sequence   bigint NOT NULL,
                entry_index        smallint NOT NULL,
                payment_id         bigint NOT NULL,
                account_id         bigint NOT NULL,
                direction          text NOT NULL CHECK (direction IN ('debit', 'credit')),
                amount             bigint NOT NULL CHECK (amount > 0),
                currency           char(3) NOT NULL,
                posted_at          timestamptz NOT NULL,
                PRIMARY KEY (journal_sequence, entry_index)
            );
            COMMENT ON TABLE ledger_entries IS 'Append-only: one row per posted debit and per posted credit. Holds (pending) are not entries.';
            CREATE INDEX ledger_entries_account ON ledger_entries (account_id);

            CREATE TABLE refunds (
                id                 bigint PRIMARY KEY,
                payment_id         bigint NOT NULL,
                amount             bigint NOT NULL,
                currency           char(3) NOT NULL,
                created_at         timestamptz NOT NULL,
                journal_sequence   bigint NOT NULL
            );
            COMMENT ON TABLE refunds IS 'Refunds (also in payments, kind refund): id is the refund payment, payment_id the one refunded.';
            CREATE INDEX refunds_payment ON refunds (payment_id);

            CREATE TABLE sink_checkpoint (
                sink               text PRIMARY KEY,
                journal_sequence   bigint NOT NULL,
                journal_time       timestamptz,
                updated_at         timestamptz NOT NULL
            );
            COMMENT ON TABLE sink_checkpoint IS 'The last RamPay journal record whose rows are in this database, written in the same transaction as those rows.';
            """),
        new(2, "fraud screening: a payment's score, model version and reasons", """
            ALTER TABLE payments
                ADD COLUMN fraud_score    real,
                ADD COLUMN fraud_model    text,
                ADD COLUMN fraud_reasons  text[];
            COMMENT ON COLUMN payments.fraud_score IS 'Fraud score 0..1 given in the writer (null: not scored); statuses held_for_review and declined come from it.';
            """),
    ];

    /// <summary>Applies the migrations this database lacks; returns how many it applied.</summary>
    public static int Migrate(NpgsqlConnection connection)
    {
        // Under the lock too: CREATE TABLE IF NOT EXISTS is not safe against itself, two sessions creating the table at
        // once fail one of them with a unique violation on pg_type (two servers, or server and rebuild, starting together).
        using (var tx = connection.BeginTransaction())
        {
            using (var lockCmd = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({MigrationLockId})", connection, tx)) lockCmd.ExecuteNonQuery();
            using (var create = new NpgsqlCommand("""
                CREATE TABLE IF NOT EXISTS rampay_schema_migrations (
                    version      int PRIMARY KEY,
                    description  text NOT NULL,
                    applied_at   timestamptz NOT NULL DEFAULT now()
                )
                """, connection, tx))
            {
                create.ExecuteNonQuery();
            }
            tx.Commit();
        }
        int applied = 0;
        foreach (var migration in Migrations)
        {
            using var tx = connection.BeginTransaction();
            using (var lockCmd = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({MigrationLockId})", connection, tx)) lockCmd.ExecuteNonQuery();
            using (var check = new NpgsqlCommand("SELECT count(*) FROM rampay_schema_migrations WHERE version = @v", connection, tx))
            {
                check.Parameters.AddWithValue("v", migration.Version);
                if ((long)check.ExecuteScalar()! > 0)
                {
                    tx.Commit();
                    continue;
                }
            }
            using (var run = new NpgsqlCommand(migration.Sql, connection, tx)) run.ExecuteNonQuery();
            using (var record = new NpgsqlCommand("INSERT INTO rampay_schema_migrations (version, description) VALUES (@v, @d)", connection, tx))
            {
                record.Parameters.AddWithValue("v", migration.Version);
                record.Parameters.AddWithValue("d", migration.Description);
                record.ExecuteNonQuery();
            }
            tx.Commit();
            applied++;
        }
        return applied;
    }

    /// <summary>Empties every RamPay table (not the migrations): the start of <c>rampay db rebuild</c>.</summary>
    public static void Truncate(NpgsqlConnection connection)
    {
        using var cmd = new NpgsqlCommand("TRUNCATE users, accounts, payments, ledger_entries, refunds, sink_checkpoint", connection);
        cmd.ExecuteNonQuery();
    }
}
