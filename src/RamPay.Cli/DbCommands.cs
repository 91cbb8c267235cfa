using System.CommandLine;
using RamPay.Core;
using RamPay.Postgres;
using Command = System.CommandLine.Command;

namespace RamPay.Cli;

/// <summary><c>rampay db rebuild|verify</c>: the PostgreSQL copy of a data directory's ledger.</summary>
public static class DbCommands
{
    public const int ExitDisagrees = 3;

    public static Command Build(Option<DirectoryInfo> data, Option<int> idempotencyKeys, TextWriter output)
    {
        var postgres = new Option<string>("--postgres")
        {
            Description = "Npgsql connection string, e.g. \"Host=127.0.0.1;Username=rampay;Password=rampay;Database=rampay\" (default: $RAMPAY_POSTGRES__CONNECTION)",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("RAMPAY_POSTGRES__CONNECTION") ?? "",
        };
        var batch = new Option<int>("--batch") { Description = "Changes per transaction", DefaultValueFactory = _ => 8192 };

        var rebuild = new Command("rebuild", "Empty the database's RamPay tables and write them again from the whole journal (stop the server first, or use a copy of its data). Prints rows per second.")
        {
            data, postgres, idempotencyKeys, batch,
        };
        rebuild.SetAction(r => Rebuild(r.GetValue(data)!, r.GetValue(postgres)!, r.GetValue(idempotencyKeys), r.GetValue(batch), output));

        var verify = new Command("verify", "Check that the database agrees with the ledger rebuilt from the journal up to the database's checkpoint: every account's balances, every payment, the users, the entries' sums. Changes nothing; exit 3 when they disagree.")
        {
            data, postgres, idempotencyKeys,
        };
        verify.SetAction(r => Verify(r.GetValue(data)!, r.GetValue(postgres)!, r.GetValue(idempotencyKeys), output));

        var yes = new Option<bool>("--yes") { Description = "Confirm: every RamPay row in the database is deleted" };
        var reset = new Command("reset", "Apply the migrations and empty the RamPay tables (checkpoint 0), so that a server's sink starts over from the journal's first record.")
        {
            postgres, yes,
        };
        reset.SetAction(r => Reset(r.GetValue(postgres)!, r.GetValue(yes), output));

        return new Command("db", "The PostgreSQL copy of the ledger (what the server's PostgreSQL sink writes)") { rebuild, verify, reset };
    }

    private static LedgerOptions Ledger(int idempotencyKeys) => new() { IdempotencyMaxKeys = idempotencyKeys };

    private static bool Check(DirectoryInfo data, string postgres, TextWriter output)
    {
        if (string.IsNullOrWhiteSpace(postgres))
        {
            output.WriteLine("error: --postgres (or RAMPAY_POSTGRES__CONNECTION) is required");
            return false;
        }
        string journal = RampayCli.Folder(data).Journal;
        if (!Directory.Exists(journal))
        {
            output.WriteLine($"error: no journal at {journal}");
            return false;
        }
        return true;
    }

    public static int Rebuild(DirectoryInfo data, string postgres, int idempotencyKeys, int batch, TextWriter output)
    {
        if (!Check(data, postgres, output)) return RampayCli.ExitUsage;
        var started = System.Diagnostics.Stopwatch.StartNew();
        var stats = DatabaseTools.Rebuild(postgres, RampayCli.Folder(data), Ledger(idempotencyKeys), batch);
        double seconds = started.Elapsed.TotalSeconds;
        output.WriteLine($"last_sequence     {stats.LastSequence}");
        output.WriteLine($"transactions      {stats.Transactions}");
        output.WriteLine($"rows              {stats.Rows}");
        output.WriteLine($"ledger_entries    {stats.Entries}");
        output.WriteLine($"elapsed_ms        {seconds * 1000:F0}");
        output.WriteLine($"write_ms          {stats.WriteSeconds * 1000:F0}");
        output.WriteLine($"rows_per_s        {stats.Rows / seconds:F0}");
        output.WriteLine($"entries_per_s     {stats.Entries / seconds:F0}");
        output.WriteLine($"records_per_s     {stats.LastSequence / seconds:F0}");
        output.WriteLine($"write_rows_per_s  {stats.Rows / stats.WriteSeconds:F0}");
        // What saturates: CPU per row in this process (sink and follower threads) and in the sink's PostgreSQL backend.
        if (stats.ClientCpuSeconds >= 0) output.WriteLine($"client_cpu_us_row {stats.ClientCpuSeconds * 1e6 / Math.Max(1, stats.Rows):F2}");
        if (stats.BackendCpuSeconds >= 0) output.WriteLine($"server_cpu_us_row {stats.BackendCpuSeconds * 1e6 / Math.Max(1, stats.Rows):F2}");
        return RampayCli.ExitOk;
    }

    public static int Reset(string postgres, bool yes, TextWriter output)
    {
        if (string.IsNullOrWhiteSpace(postgres) || !yes)
        {
            output.WriteLine("error: --postgres (or RAMPAY_POSTGRES__CONNECTION) and --yes are required");
            return RampayCli.ExitUsage;
        }
        using var connection = new Npgsql.NpgsqlConnection(postgres);
        connection.Open();
        int applied = Schema.Migrate(connection);
        Schema.Truncate(connection);
        output.WriteLine($"migrations applied {applied}; RamPay tables emptied");
        return RampayCli.ExitOk;
    }

    public static int Verify(DirectoryInfo data, string postgres, int idempotencyKeys, TextWriter output)
    {
        if (!Check(data, postgres, output)) return RampayCli.ExitUsage;
        var report = DatabaseTools.Verify(postgres, RampayCli.Folder(data), Ledger(idempotencyKeys));
        output.WriteLine($"checkpoint        {report.Checkpoint}");
        output.WriteLine($"users             {report.Users}");
        output.WriteLine($"accounts          {report.Accounts}");
        output.WriteLine($"payments          {report.Payments}");
        output.WriteLine($"ledger_entries    {report.Entries}");
        foreach (var problem in report.Problems) output.WriteLine("problem: " + problem);
        output.WriteLine(report.Agrees ? "the database agrees with the journal" : "the database DISAGREES with the journal");
        return report.Agrees ? RampayCli.ExitOk : ExitDisagrees;
    }
}
