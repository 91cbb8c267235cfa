using Npgsql;

namespace RamPay.Postgres.Tests;

/// <summary>The migrations: applied once, however often and from however many connections they run; the tables a user would query.</summary>
[Trait("Category", "Integration")]
public sealed class SchemaTests
{
    [Fact]
    public async Task Migrate_applies_each_migration_once_and_a_second_run_applies_nothing()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using (var connection = await db.OpenAsync())
        {
            Assert.Equal(Schema.Migrations.Count, Schema.Migrate(connection));
            Assert.Equal(0, Schema.Migrate(connection));
        }
        await using (var other = await db.OpenAsync()) Assert.Equal(0, Schema.Migrate(other));

        var applied = await db.RowsAsync("SELECT version, description FROM rampay_schema_migrations ORDER BY version");
        Assert.Equal(Schema.Migrations.Select(m => (object)m.Version), applied.Select(r => r[0]));
        Assert.Equal(Schema.Migrations.Select(m => (object)m.Description), applied.Select(r => r[1]));
        // Versions are numbered 1, 2, 3...: a gap or a repeat would be a mistake in Schema.Migrations.
        Assert.Equal(Enumerable.Range(1, Schema.Migrations.Count), Schema.Migrations.Select(m => m.Version));
    }

    [Fact]
    public async Task Migrate_run_concurrently_from_several_connections_applies_each_migration_exactly_once()
    {
        await using var db = await TestDatabase.CreateAsync();
        // Each round on a fresh schema of the same database (search_path), so every round starts from nothing.
        const int Rounds = 4, Connections = 3;
        for (int round = 0; round < Rounds; round++)
        {
            string schema = $"round{round}";
            await db.ExecuteAsync($"CREATE SCHEMA {schema}");
            string connectionString = new NpgsqlConnectionStringBuilder(db.DirectConnectionString) { SearchPath = schema }.ConnectionString;
            var connections = new List<NpgsqlConnection>();
            for (int i = 0; i < Connections; i++)
            {
                var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync();
                connections.Add(connection);
            }
            using var start = new Barrier(Connections);
            var runs = connections.Select(connection => Task.Run(() =>
            {
                start.SignalAndWait();
                return Schema.Migrate(connection);
            })).ToArray();
            int[] applied = await Task.WhenAll(runs);
            foreach (var connection in connections) await connection.DisposeAsync();

            Assert.Equal(Schema.Migrations.Count, applied.Sum());
            Assert.Equal(Schema.Migrations.Count, await db.ScalarAsync($"SELECT count(*) FROM {schema}.rampay_schema_migrations"));
            Assert.Equal(Schema.Migrations.Count, await db.ScalarAsync($"SELECT count(DISTINCT version) FROM {schema}.rampay_schema_migrations"));
            Assert.Equal(1, await db.ScalarAsync($"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}' AND table_name = 'payments'"));
        }
    }

    [Fact]
    public async Task The_tables_have_the_columns_and_keys_a_user_would_query_and_no_password_hashes()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using (var connection = await db.OpenAsync()) Schema.Migrate(connection);

        var columns = (await db.RowsAsync("""
            SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'
            """)).GroupBy(r => (string)r[0]!).ToDictionary(g => g.Key, g => g.ToDictionary(r => (string)r[1]!, r => (string)r[2]!));

        void Has(string table, params string[] names)
        {
            Assert.True(columns.ContainsKey(table), $"no table {table}");
            foreach (var name in names) Assert.True(columns[table].ContainsKey(name), $"no column {table}.{name}; it has {string.Join(", ", columns[table].Keys)}");
        }
        Has("users", "id", "email", "name", "role", "wallet_account_id", "created_at", "journal_sequence");
        Has("accounts", "id", "owner_user_id", "currency", "is_wallet", "is_funding", "debits_posted", "credits_posted", "debits_pending",
            "credits_pending", "balance", "available", "frozen", "created_at", "journal_sequence");
        Has("payments", "id", "kind", "status", "from_account_id", "to_account_id", "amount", "captured", "refunded", "currency",
            "parent_payment_id", "description", "webhook_url", "created_at", "expires_at", "created_sequence", "journal_sequence");
        Has("ledger_entries", "journal_sequence", "entry_index", "payment_id", "account_id", "direction", "amount", "currency", "posted_at");
        Has("refunds", "id", "payment_id", "amount", "currency", "created_at", "journal_sequence");
        Has("sink_checkpoint", "sink", "journal_sequence", "journal_time", "updated_at");
        Assert.DoesNotContain(columns["users"].Keys, c => c.Contains("password", StringComparison.OrdinalIgnoreCase) || c.Contains("hash", StringComparison.OrdinalIgnoreCase));
        // Money is in minor units, as integers; times carry their zone.
        foreach (var (table, name) in new[] { ("accounts", "balance"), ("accounts", "available"), ("payments", "amount"), ("ledger_entries", "amount"), ("refunds", "amount") })
            Assert.Equal("bigint", columns[table][name]);
        Assert.Equal("timestamp with time zone", columns["payments"]["created_at"]);

        var keys = (await db.RowsAsync("""
            SELECT tc.table_name, string_agg(kcu.column_name, ',' ORDER BY kcu.ordinal_position)
            FROM information_schema.table_constraints tc
            JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
            WHERE tc.table_schema = 'public' AND tc.constraint_type = 'PRIMARY KEY'
            GROUP BY tc.table_name
            """)).ToDictionary(r => (string)r[0]!, r => (string)r[1]!);
        Assert.Equal("id", keys["users"]);
        Assert.Equal("id", keys["accounts"]);
        Assert.Equal("id", keys["payments"]);
        Assert.Equal("id", keys["refunds"]);
        Assert.Equal("journal_sequence,entry_index", keys["ledger_entries"]);
        Assert.Equal("sink", keys["sink_checkpoint"]);

        // balance and available are computed by the database from the posted and pending columns.
        await db.ExecuteAsync("""
            INSERT INTO accounts (id, currency, is_wallet, is_funding, debits_posted, credits_posted, debits_pending, credits_pending, frozen, created_at, journal_sequence)
            VALUES (1, 'USD', true, false, 300, 1000, 200, 0, false, now(), 1)
            """);
        Assert.Equal(700, await db.ScalarAsync("SELECT balance FROM accounts WHERE id = 1"));
        Assert.Equal(500, await db.ScalarAsync("SELECT available FROM accounts WHERE id = 1"));
    }
}
