using RamPay.Cli;
using RamPay.Core;
using RamPay.Engine;

namespace RamPay.Postgres.Tests;

/// <summary><c>rampay db rebuild</c> and <c>rampay db verify</c>, run in-process as the CLI parses them, on a journal from <c>rampay simulate</c>.</summary>
[Trait("Category", "Integration")]
public sealed class DbCommandTests
{
    private static (int Exit, string Output) Rampay(params string[] args)
    {
        var output = new StringWriter();
        int exit = RampayCli.Build(output).Parse(args).Invoke();
        return (exit, output.ToString());
    }

    private static string Field(string output, string name) =>
        output.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith(name + " ", StringComparison.Ordinal))?[name.Length..].Trim()
        ?? throw new Xunit.Sdk.XunitException($"no '{name}' in:\n{output}");

    [Fact]
    public async Task Rebuild_twice_writes_the_same_rows_verify_agrees_and_reports_a_tampered_row_with_exit_3()
    {
        await using var db = await TestDatabase.CreateAsync();
        var data = Directory.CreateTempSubdirectory("rampay-pg-cli-");
        try
        {
            var (exit, output) = Rampay("simulate", "--data", data.FullName, "--count", "5000", "--wallets", "40", "--seed", "3");
            Assert.True(exit == 0, output);
            Assert.Equal("5000", Field(output, "last_sequence"));

            (exit, output) = Rampay("db", "rebuild", "--data", data.FullName, "--postgres", db.ConnectionString, "--batch", "700");
            Assert.True(exit == 0, output);
            Assert.Equal("5000", Field(output, "last_sequence"));
            Assert.True(long.Parse(Field(output, "transactions"), System.Globalization.CultureInfo.InvariantCulture) >= 5000 / 700);
            string first = await Mirror.DumpAsync(db);

            // The rows are the ledger's (the same one `rampay replay` rebuilds, from the snapshot simulate left).
            var (ledger, _, _, last) = EngineRecovery.Load(Path.Combine(data.FullName, "snapshots"), Path.Combine(data.FullName, "journal"), new LedgerOptions(), useSnapshot: true, []);
            Assert.Equal(5000, last);
            await Mirror.AssertMatchesAsync(db, ledger, 5000);

            (exit, output) = Rampay("db", "verify", "--data", data.FullName, "--postgres", db.ConnectionString);
            Assert.True(exit == 0, output);
            Assert.Equal("5000", Field(output, "checkpoint"));
            Assert.Equal(ledger.PaymentCount.ToString(System.Globalization.CultureInfo.InvariantCulture), Field(output, "payments"));
            Assert.Contains("the database agrees with the journal", output);

            // Again, with other batch boundaries: the same rows.
            (exit, output) = Rampay("db", "rebuild", "--data", data.FullName, "--postgres", db.ConnectionString, "--batch", "64");
            Assert.True(exit == 0, output);
            Assert.Equal(first, await Mirror.DumpAsync(db));

            // One balance changed behind RamPay's back: verify names the account and exits 3.
            await db.ExecuteAsync("UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = 7");
            (exit, output) = Rampay("db", "verify", "--data", data.FullName, "--postgres", db.ConnectionString);
            Assert.True(exit == DbCommands.ExitDisagrees, output);
            Assert.Contains("problem: account 7:", output);
            Assert.Contains("DISAGREES", output);

            // So does a payment's status, and a missing entry (the sums no longer match the posted balances).
            await db.ExecuteAsync("UPDATE payments SET status = 'voided' WHERE id = (SELECT min(id) FROM payments WHERE status = 'captured')");
            long entryAccount = await db.ScalarAsync("SELECT account_id FROM ledger_entries WHERE account_id <> 1 ORDER BY journal_sequence LIMIT 1");
            await db.ExecuteAsync($"DELETE FROM ledger_entries WHERE (journal_sequence, entry_index) = (SELECT journal_sequence, entry_index FROM ledger_entries WHERE account_id = {entryAccount} ORDER BY journal_sequence LIMIT 1)");
            var report = DatabaseTools.Verify(db.DirectConnectionString, data.FullName, new LedgerOptions());
            Assert.False(report.Agrees);
            Assert.Contains(report.Problems, p => p.StartsWith("account 7:", StringComparison.Ordinal));
            Assert.Contains(report.Problems, p => p.StartsWith("payment ", StringComparison.Ordinal) && p.Contains("voided", StringComparison.Ordinal));
            Assert.Contains(report.Problems, p => p.StartsWith($"account {entryAccount}: entries sum", StringComparison.Ordinal));

            // A rebuild repairs it.
            Assert.Equal(0, Rampay("db", "rebuild", "--data", data.FullName, "--postgres", db.ConnectionString).Exit);
            Assert.Equal(first, await Mirror.DumpAsync(db));

            // The journal grows past the database (a sink that lags): verify compares with the state at the database's checkpoint.
            (exit, output) = Rampay("simulate", "--data", data.FullName, "--count", "1000", "--wallets", "40", "--seed", "4");
            Assert.True(exit == 0, output);
            Assert.Equal("6000", Field(output, "last_sequence"));
            (exit, output) = Rampay("db", "verify", "--data", data.FullName, "--postgres", db.ConnectionString);
            Assert.True(exit == 0, output);
            Assert.Equal("5000", Field(output, "checkpoint"));
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }

    [Fact]
    public void Db_commands_without_a_database_or_journal_are_usage_errors()
    {
        var data = Directory.CreateTempSubdirectory("rampay-pg-cli-");
        try
        {
            var (exit, output) = Rampay("db", "verify", "--data", data.FullName, "--postgres", TestDatabase.AdminConnectionString);
            Assert.Equal(RampayCli.ExitUsage, exit);
            Assert.Contains("no journal", output);
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }
}
