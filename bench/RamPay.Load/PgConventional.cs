using System.Diagnostics;
using Npgsql;

namespace RamPay.Load;

/// <summary>
/// The baseline RamPay's PostgreSQL sink is compared with: the conventional design, where each payment is its own
/// PostgreSQL transaction that locks both accounts' rows (in id order, so two payments never deadlock), checks the
/// balance, updates both, and inserts the payment and its two ledger entries, committed durably (synchronous_commit
/// on, the server's default). Several connections pay at once between wallets drawn at random, as clients would.
/// Its tables live in their own schema (<c>conventional</c>), dropped and made again at each run.
/// </summary>
public static class PgConventional
{
    public sealed record Options(string Connection, int Connections, int Wallets, double DurationSeconds, double WarmupSeconds, int Seed);

    public sealed record Result(long Payments, long Rejected, double Seconds)
    {
        public double PaymentsPerSecond => Payments / Seconds;
        /// <summary>Ledger entries (a debit and a credit per payment).</summary>
        public double EntriesPerSecond => 2 * Payments / Seconds;
    }

    public static async Task<Result> RunAsync(Options o, TextWriter output, CancellationToken cancel)
    {
        await using var data = NpgsqlDataSource.Create(o.Connection);
        await using (var setup = await data.OpenConnectionAsync(cancel))
        {
            await Execute(setup, """
                DROP SCHEMA IF EXISTS conventional CASCADE;
                CREATE SCHEMA conventional;
                CREATE TABLE conventional.accounts (id bigint PRIMARY KEY, currency char(3) NOT NULL, balance bigint NOT NULL CHECK (balance >= 0));
                CREATE TABLE conventional.payments (
                    id bigserial PRIMARY KEY, from_account_id bigint NOT NULL, to_account_id bigint NOT NULL, amount bigint NOT NULL,
                    currency char(3) NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
                CREATE INDEX ON conventional.payments (from_account_id, id);
                CREATE INDEX ON conventional.payments (to_account_id, id);
                CREATE TABLE conventional.ledger_entries (
                    id bigserial PRIMARY KEY, payment_id bigint NOT NULL, account_id bigint NOT NULL, direction text NOT NULL,
                    amount bigint NOT NULL, currency char(3) NOT NULL, posted_at timestamptz NOT NULL DEFAULT now());
                CREATE INDEX ON conventional.ledger_entries (account_id);
                """, cancel);
            await Execute(setup, $"INSERT INTO conventional.accounts SELECT g, 'USD', 1000000000 FROM generate_series(1, {o.Wallets}) g", cancel);
        }
        output.WriteLine($"pg-conventional: {o.Connections} connections, {o.Wallets} wallets, {o.WarmupSeconds} s warm-up then {o.DurationSeconds} s");

        long payments = 0, rejected = 0;
        bool measuring = false;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var workers = Enumerable.Range(0, o.Connections).Select(i => Task.Run(async () =>
        {
            var rng = new Random(o.Seed * 7919 + i);
            await using var connection = await data.OpenConnectionAsync(stop.Token);
            while (!stop.IsCancellationRequested)
            {
                long from = 1 + rng.Next(o.Wallets), to = 1 + rng.Next(o.Wallets - 1);
                if (to >= from) to++;
                bool ok = await PayAsync(connection, from, to, 1 + rng.Next(100));
                if (Volatile.Read(ref measuring)) Interlocked.Increment(ref ok ? ref payments : ref rejected);
            }
        }, stop.Token)).ToArray();

        await Task.Delay(TimeSpan.FromSeconds(o.WarmupSeconds), cancel);
        Volatile.Write(ref measuring, true);
        var clock = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(o.DurationSeconds), cancel);
        Volatile.Write(ref measuring, false);
        double seconds = clock.Elapsed.TotalSeconds;
        long counted = Interlocked.Read(ref payments), countedRejected = Interlocked.Read(ref rejected);
        await stop.CancelAsync();
        try { await Task.WhenAll(workers); } catch (OperationCanceledException) { } catch (NpgsqlException) when (stop.IsCancellationRequested) { }
        var result = new Result(counted, countedRejected, seconds);
        output.WriteLine($"  payments          {result.Payments} committed, {result.Rejected} rejected, in {seconds:F2} s");
        output.WriteLine($"  payments_per_s    {result.PaymentsPerSecond:F0}");
        output.WriteLine($"  entries_per_s     {result.EntriesPerSecond:F0}");
        return result;
    }

    /// <summary>One payment, one transaction: lock both rows, check, move, record. False when the payer lacks the funds.</summary>
    private static async Task<bool> PayAsync(NpgsqlConnection connection, long from, long to, long amount)
    {
        await using var tx = await connection.BeginTransactionAsync();
        long balance = -1;
        await using (var lockRows = new NpgsqlCommand("SELECT id, balance FROM conventional.accounts WHERE id IN (@a, @b) ORDER BY id FOR UPDATE", connection, tx))
        {
            lockRows.Parameters.AddWithValue("a", from);
            lockRows.Parameters.AddWithValue("b", to);
            await using var reader = await lockRows.ExecuteReaderAsync();
            while (await reader.ReadAsync()) if (reader.GetInt64(0) == from) balance = reader.GetInt64(1);
        }
        if (balance < amount)
        {
            await tx.RollbackAsync();
            return false;
        }
        var batch = new NpgsqlBatch(connection, tx)
        {
            BatchCommands =
            {
                new("UPDATE conventional.accounts SET balance = balance - $1 WHERE id = $2") { Parameters = { new() { Value = amount }, new() { Value = from } } },
                new("UPDATE conventional.accounts SET balance = balance + $1 WHERE id = $2") { Parameters = { new() { Value = amount }, new() { Value = to } } },
                new("""
                    WITH p AS (INSERT INTO conventional.payments (from_account_id, to_account_id, amount, currency, status) VALUES ($1, $2, $3, 'USD', 'posted') RETURNING id)
                    INSERT INTO conventional.ledger_entries (payment_id, account_id, direction, amount, currency)
                    SELECT p.id, $1, 'debit', $3, 'USD' FROM p UNION ALL SELECT p.id, $2, 'credit', $3, 'USD' FROM p
                    """) { Parameters = { new() { Value = from }, new() { Value = to }, new() { Value = amount } } },
            },
        };
        await using (batch) await batch.ExecuteNonQueryAsync();
        await tx.CommitAsync();
        return true;
    }

    private static async Task Execute(NpgsqlConnection connection, string sql, CancellationToken cancel)
    {
        await using var cmd = new NpgsqlCommand(sql, connection);
        await cmd.ExecuteNonQueryAsync(cancel);
    }
}
