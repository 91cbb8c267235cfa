using Npgsql;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Sinks;

namespace RamPay.Postgres;

/// <summary>What <see cref="DatabaseTools.Verify"/> compared and found.</summary>
public sealed record DatabaseCheckReport(long Checkpoint, long Users, long Accounts, long Payments, long Entries, IReadOnlyList<string> Problems)
{
    public bool Agrees => Problems.Count == 0;
}

/// <summary>What a rebuild wrote: rows of every table, ledger entries among them, and the seconds spent in the sink's writes.</summary>
/// <summary>
/// What <c>rampay db rebuild</c> did. <paramref name="WriteSeconds"/>: time inside the sink's writes.
/// <paramref name="ClientCpuSeconds"/>: this process's CPU (every thread) while the sink wrote, minus nothing: the
/// follower runs beside it on its own thread, so it is included. <paramref name="BackendCpuSeconds"/>: the CPU of the
/// sink's PostgreSQL backend process over the whole rebuild, read from /proc when the server is on this machine (else -1).
/// </summary>
public sealed record RebuildStats(long LastSequence, long Transactions, long Rows, long Entries, double WriteSeconds, double ClientCpuSeconds = -1, double BackendCpuSeconds = -1);

/// <summary>The offline tools behind <c>rampay db rebuild</c> and <c>rampay db verify</c>.</summary>
public static class DatabaseTools
{
    private const int MaxProblemsListed = 20;

    /// <summary>
    /// Empties the database's RamPay tables and writes them again from the whole journal, in batches through the same
    /// <see cref="PostgresSink"/> the server uses. Run it on a stopped server's data (or a copy). Returns the last
    /// sequence written.
    /// </summary>
    public static RebuildStats Rebuild(string connectionString, string dataDirectory, LedgerOptions ledger, int batchChanges, Action<long>? progress = null) =>
        Rebuild(connectionString, new DataFolder(dataDirectory), ledger, batchChanges, progress);

    /// <summary>As <see cref="Rebuild(string, string, LedgerOptions, int, Action{long}?)"/>, with the data folder's journal and snapshots.</summary>
    public static RebuildStats Rebuild(string connectionString, DataFolder data, LedgerOptions ledger, int batchChanges, Action<long>? progress = null)
    {
        using (var connection = new NpgsqlConnection(connectionString))
        {
            connection.Open();
            Schema.Migrate(connection);
            Schema.Truncate(connection);
        }
        using var sink = new PostgresSink(connectionString, analyticsRollupTables: null); // keeps the operator's choice
        var checkpoint = sink.Open();
        Invariant.Check(checkpoint.Sequence == 0, "a truncated database starts at sequence 0");
        // The follower runs on a thread of its own, as in the server (SinkHub), two batches ahead at most: the figure
        // is then the sink's pace, not the sum of the replica's apply and the sink's write.
        using var batches = new System.Collections.Concurrent.BlockingCollection<ChangeBatch>(2);
        using var free = new System.Collections.Concurrent.BlockingCollection<ChangeBatch>(4);
        for (int i = 0; i < 4; i++) free.Add(new ChangeBatch(batchChanges));
        long followerLast = 0;
        Exception? followerError = null;
        var followerThread = new Thread(() =>
        {
            try
            {
                using var follower = new LedgerFollower(data.Snapshots, data.Journal, ledger, afterSequence: 0);
                while (true)
                {
                    var batch = free.Take();
                    int read = follower.Poll(long.MaxValue, batchChanges, batch);
                    if (batch.Count > 0) batches.Add(batch);
                    if (read == 0) break;
                }
                followerLast = follower.LastSequence;
            }
            catch (Exception e)
            {
                followerError = e;
            }
            finally
            {
                batches.CompleteAdding();
            }
        }) { IsBackground = true, Name = "rampay-rebuild-follower" };
        int backendPid = sink.BackendProcessId;
        double backend0 = ProcessCpuSeconds(backendPid);
        followerThread.Start();
        long rows = 0, entries = 0, transactions = 0;
        var writing = new System.Diagnostics.Stopwatch();
        var process = System.Diagnostics.Process.GetCurrentProcess();
        TimeSpan clientCpu = TimeSpan.Zero;
        foreach (var batch in batches.GetConsumingEnumerable())
        {
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            writing.Start();
            sink.Write(batch.Changes, new SinkCheckpoint(batch.LastSequence, batch.LastTimestampMs));
            writing.Stop();
            process.Refresh();
            clientCpu += process.TotalProcessorTime - cpu0;
            rows += sink.LastBatchRows;
            entries += sink.LastBatchEntries;
            transactions++;
            progress?.Invoke(batch.LastSequence);
            batch.Clear();
            free.Add(batch);
        }
        followerThread.Join();
        if (followerError is not null) throw new InvalidOperationException("the rebuild's follower failed: " + followerError.Message, followerError);
        double backend1 = ProcessCpuSeconds(backendPid);
        return new RebuildStats(followerLast, transactions, rows, entries, writing.Elapsed.TotalSeconds, clientCpu.TotalSeconds,
            backend0 >= 0 && backend1 >= 0 ? backend1 - backend0 : -1);
    }

    /// <summary>User plus system CPU seconds of process <paramref name="pid"/> from /proc (Linux, same machine); -1 when unreadable.</summary>
    private static double ProcessCpuSeconds(int pid)
    {
        try
        {
            if (pid <= 0) return -1;
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the command name (which may hold spaces, so split after its closing parenthesis): utime is the 14th field, stime the 15th.
            string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            long ticks = long.Parse(f[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(f[12], System.Globalization.CultureInfo.InvariantCulture);
            return ticks / 100.0; // USER_HZ is 100 on Linux
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return -1;
        }
    }

    /// <summary>
    /// Compares the database with the ledger rebuilt from the journal up to the database's own checkpoint (so a sink
    /// that lags is compared with the state it has reached): every account's balances, every payment's status and
    /// amounts, the users, the entries' sums per account, counts and totals. Changes nothing.
    /// </summary>
    public static DatabaseCheckReport Verify(string connectionString, string dataDirectory, LedgerOptions ledgerOptions) =>
        Verify(connectionString, new DataFolder(dataDirectory), ledgerOptions);

    /// <summary>As <see cref="Verify(string, string, LedgerOptions)"/>, with the data folder's journal and snapshots.</summary>
    public static DatabaseCheckReport Verify(string connectionString, DataFolder data, LedgerOptions ledgerOptions)
    {
        using var connection = new NpgsqlConnection(connectionString);
        connection.Open();
        if (Scalar(connection, "SELECT CASE WHEN to_regclass('sink_checkpoint') IS NULL THEN 0 ELSE 1 END") == 0)
            return new DatabaseCheckReport(0, 0, 0, 0, 0, ["the database has no RamPay tables: start the server with RamPay:Postgres:Connection, or run `rampay db rebuild`"]);
        long checkpoint = Scalar(connection, "SELECT coalesce((SELECT journal_sequence FROM sink_checkpoint WHERE sink = 'postgres'), 0)");
        var warnings = new List<string>();
        var (ledger, _, _, last) = EngineRecovery.Load(data.Snapshots, data.Journal, ledgerOptions, useSnapshot: true, checkpoint, warnings);
        var problems = new List<string>();
        void Problem(string message)
        {
            if (problems.Count < MaxProblemsListed) problems.Add(message);
            else if (problems.Count == MaxProblemsListed) problems.Add("... (more problems not listed)");
        }
        if (last != checkpoint) Problem($"the database is at journal sequence {checkpoint} but the journal ends at {last}");

        long users = CompareUsers(connection, ledger, Problem);
        long accounts = CompareAccounts(connection, ledger, Problem);
        long payments = ComparePayments(connection, ledger, Problem);
        long entries = CompareEntries(connection, ledger, Problem);
        return new DatabaseCheckReport(checkpoint, users, accounts, payments, entries, problems);
    }

    private static long CompareUsers(NpgsqlConnection connection, Ledger ledger, Action<string> problem)
    {
        long rows = 0;
        using var cmd = new NpgsqlCommand("SELECT id, email, wallet_account_id FROM users ORDER BY id", connection);
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            rows++;
            long id = r.GetInt64(0);
            var user = ledger.GetUser(id);
            if (user is null) { problem($"user {id} is in the database, not in the ledger"); continue; }
            if (user.Email != r.GetString(1) || user.WalletAccountId != r.GetInt64(2)) problem($"user {id} differs (email or wallet)");
        }
        if (rows != ledger.UserCount) problem($"{rows} users in the database, {ledger.UserCount} in the ledger");
        return rows;
    }

    private static long CompareAccounts(NpgsqlConnection connection, Ledger ledger, Action<string> problem)
    {
        long rows = 0;
        using var cmd = new NpgsqlCommand(
            "SELECT id, currency, debits_posted, credits_posted, debits_pending, credits_pending, frozen, coalesce(owner_user_id, 0) FROM accounts ORDER BY id", connection);
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            rows++;
            long id = r.GetInt64(0);
            if (!ledger.AccountExists(id)) { problem($"account {id} is in the database, not in the ledger"); continue; }
            var a = ledger.GetAccount(id);
            if (a.Currency.ToString() != r.GetString(1) || a.DebitsPosted != r.GetInt64(2) || a.CreditsPosted != r.GetInt64(3)
                || a.DebitsPending != r.GetInt64(4) || a.CreditsPending != r.GetInt64(5) || a.Frozen != r.GetBoolean(6) || a.Owner != r.GetInt64(7))
            {
                problem($"account {id}: database debits/credits posted {r.GetInt64(2)}/{r.GetInt64(3)} pending {r.GetInt64(4)}/{r.GetInt64(5)} frozen {r.GetBoolean(6)}; " +
                        $"ledger {a.DebitsPosted}/{a.CreditsPosted} pending {a.DebitsPending}/{a.CreditsPending} frozen {a.Frozen}");
            }
        }
        if (rows != ledger.AccountCount) problem($"{rows} accounts in the database, {ledger.AccountCount} in the ledger");
        return rows;
    }

    private static long ComparePayments(NpgsqlConnection connection, Ledger ledger, Action<string> problem)
    {
        long rows = 0;
        using var cmd = new NpgsqlCommand(
            "SELECT id, kind, status, from_account_id, to_account_id, amount, captured, refunded, coalesce(parent_payment_id, 0) FROM payments ORDER BY id", connection);
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            rows++;
            long id = r.GetInt64(0);
            if (!ledger.PaymentExists(id)) { problem($"payment {id} is in the database, not in the ledger"); continue; }
            var p = ledger.GetPayment(id);
            if (PaymentNames.Kind(p.Kind) != r.GetString(1) || PaymentNames.Status(p.Status) != r.GetString(2) || p.FromAccount != r.GetInt64(3)
                || p.ToAccount != r.GetInt64(4) || p.Amount != r.GetInt64(5) || p.Captured != r.GetInt64(6) || p.Refunded != r.GetInt64(7) || p.ParentId != r.GetInt64(8))
            {
                problem($"payment {id}: database {r.GetString(1)} {r.GetString(2)} amount {r.GetInt64(5)} captured {r.GetInt64(6)} refunded {r.GetInt64(7)}; " +
                        $"ledger {PaymentNames.Kind(p.Kind)} {PaymentNames.Status(p.Status)} amount {p.Amount} captured {p.Captured} refunded {p.Refunded}");
            }
        }
        if (rows != ledger.PaymentCount) problem($"{rows} payments in the database, {ledger.PaymentCount} in the ledger");
        return rows;
    }

    /// <summary>Each account's debit and credit entries must sum to its posted debits and credits; all debits to all credits.</summary>
    private static long CompareEntries(NpgsqlConnection connection, Ledger ledger, Action<string> problem)
    {
        var seen = new HashSet<long>();
        decimal allDebits = 0, allCredits = 0;
        using (var cmd = new NpgsqlCommand("""
            SELECT account_id, coalesce(sum(amount) FILTER (WHERE direction = 'debit'), 0), coalesce(sum(amount) FILTER (WHERE direction = 'credit'), 0)
            FROM ledger_entries GROUP BY account_id
            """, connection))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                long id = r.GetInt64(0);
                decimal debits = r.GetDecimal(1), credits = r.GetDecimal(2);
                allDebits += debits;
                allCredits += credits;
                seen.Add(id);
                if (!ledger.AccountExists(id)) { problem($"entries name account {id}, which the ledger does not have"); continue; }
                var a = ledger.GetAccount(id);
                if (debits != a.DebitsPosted || credits != a.CreditsPosted)
                    problem($"account {id}: entries sum to debits {debits} credits {credits}; the ledger has posted {a.DebitsPosted}/{a.CreditsPosted}");
            }
        }
        for (long id = 1; id <= ledger.AccountCount; id++)
        {
            if (seen.Contains(id)) continue;
            var a = ledger.GetAccount(id);
            if (a.DebitsPosted != 0 || a.CreditsPosted != 0) problem($"account {id} has posted money in the ledger but no entries in the database");
        }
        if (allDebits != allCredits) problem($"all entries' debits ({allDebits}) differ from all credits ({allCredits})");
        return Scalar(connection, "SELECT count(*) FROM ledger_entries");
    }

    private static long Scalar(NpgsqlConnection connection, string sql)
    {
        using var cmd = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
