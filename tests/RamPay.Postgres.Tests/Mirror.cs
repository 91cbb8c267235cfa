using RamPay.Core;
using RamPay.Sinks;
using Xunit.Sdk;

namespace RamPay.Postgres.Tests;

/// <summary>
/// Row-by-row comparison of the database with a ledger, stricter than <see cref="DatabaseTools.Verify"/>: every column
/// of every user, account, payment and refund, and each payment's ledger entries (two per posted movement, the debit
/// on the paying side and the credit on the receiving side, equal amounts), and the checkpoint.
/// </summary>
public static class Mirror
{
    public static async Task AssertMatchesAsync(TestDatabase db, IReadOnlyLedger ledger, long checkpoint, long? checkpointTimeMs = null)
    {
        var problems = new List<string>();
        void P(string message) { if (problems.Count < 40) problems.Add(message); }

        // Checkpoint.
        var cp = await db.RowsAsync("SELECT journal_sequence, journal_time FROM sink_checkpoint WHERE sink = 'postgres'");
        if (cp.Count != 1) P($"sink_checkpoint has {cp.Count} rows for postgres");
        else
        {
            if ((long)cp[0][0]! != checkpoint) P($"checkpoint {cp[0][0]}, expected {checkpoint}");
            if (checkpointTimeMs is { } t && Ms(cp[0][1]) != t) P($"checkpoint time {Ms(cp[0][1])}, expected {t}");
        }

        // Users: every column but a password hash, which the table must not have.
        var users = await db.RowsAsync("SELECT id, email, name, role, wallet_account_id, created_at FROM users ORDER BY id");
        if (users.Count != ledger.UserCount) P($"{users.Count} users in the database, {ledger.UserCount} in the ledger");
        foreach (var r in users)
        {
            long id = (long)r[0]!;
            if (ledger.GetUser(id) is not { } u) { P($"user {id} is not in the ledger"); continue; }
            string role = u.Role == UserRole.Admin ? "admin" : "user";
            if ((string)r[1]! != u.Email || (string)r[2]! != u.Name || (string)r[3]! != role || (long)r[4]! != u.WalletAccountId || Ms(r[5]) != u.CreatedAtMs)
                P($"user {id}: database ({string.Join(", ", r)}), ledger ({u.Email}, {u.Name}, {role}, {u.WalletAccountId}, {u.CreatedAtMs})");
        }

        // Accounts: balances, the generated balance and available, flags, owner, currency, creation time.
        var accounts = await db.RowsAsync("""
            SELECT id, owner_user_id, currency, is_wallet, is_funding, debits_posted, credits_posted, debits_pending, credits_pending,
                   balance, available, frozen, created_at FROM accounts ORDER BY id
            """);
        if (accounts.Count != ledger.AccountCount) P($"{accounts.Count} accounts in the database, {ledger.AccountCount} in the ledger");
        foreach (var r in accounts)
        {
            long id = (long)r[0]!;
            if (!ledger.AccountExists(id)) { P($"account {id} is not in the ledger"); continue; }
            var a = ledger.GetAccount(id);
            object?[] expected =
            [
                id, a.Owner == 0 ? null : a.Owner, a.Currency.ToString(), a.IsWallet, (a.Flags & AccountFlags.Funding) != 0,
                a.DebitsPosted, a.CreditsPosted, a.DebitsPending, a.CreditsPending, a.Posted, a.Available, a.Frozen, a.CreatedAtMs,
            ];
            var actual = r.ToArray();
            actual[12] = Ms(actual[12]);
            if (!expected.SequenceEqual(actual)) P($"account {id}: database ({string.Join(", ", actual)}), ledger ({string.Join(", ", expected)})");
        }

        // Payments: every column.
        var payments = await db.RowsAsync("""
            SELECT id, kind, status, from_account_id, to_account_id, amount, captured, refunded, currency, parent_payment_id,
                   description, webhook_url, created_at, expires_at FROM payments ORDER BY id
            """);
        if (payments.Count != ledger.PaymentCount) P($"{payments.Count} payments in the database, {ledger.PaymentCount} in the ledger");
        foreach (var r in payments)
        {
            long id = (long)r[0]!;
            if (!ledger.PaymentExists(id)) { P($"payment {id} is not in the ledger"); continue; }
            var p = ledger.GetPayment(id);
            var note = ledger.GetPaymentNote(id);
            object?[] expected =
            [
                id, PaymentNames.Kind(p.Kind), PaymentNames.Status(p.Status), p.FromAccount, p.ToAccount, p.Amount, p.Captured, p.Refunded,
                p.Currency.ToString(), p.ParentId == 0 ? null : p.ParentId, note?.Description, note?.WebhookUrl, p.CreatedAtMs,
                p.Kind == PaymentKind.Authorization ? p.ExpiresAtMs : null,
            ];
            var actual = r.ToArray();
            actual[12] = Ms(actual[12]);
            actual[13] = actual[13] is null ? null : Ms(actual[13]);
            if (!expected.SequenceEqual(actual)) P($"payment {id}: database ({string.Join(", ", actual)}), ledger ({string.Join(", ", expected)})");
        }

        // Ledger entries: exactly a debit and a credit per posted movement, nothing for holds.
        var entries = (await db.RowsAsync("""
            SELECT payment_id, journal_sequence, entry_index, account_id, direction, amount, currency, posted_at FROM ledger_entries ORDER BY payment_id, entry_index
            """)).GroupBy(r => (long)r[0]!).ToDictionary(g => g.Key, g => g.ToList());
        long expectedEntries = 0;
        for (long id = 1; id <= ledger.PaymentCount; id++)
        {
            var p = ledger.GetPayment(id);
            long moved = p.Kind == PaymentKind.Authorization ? (p.Status == PaymentStatus.Captured ? p.Captured : 0) : p.Amount;
            entries.TryGetValue(id, out var rows);
            rows ??= [];
            if (moved == 0)
            {
                if (rows.Count != 0) P($"payment {id} ({PaymentNames.Kind(p.Kind)} {PaymentNames.Status(p.Status)}) moved no money but has {rows.Count} entries");
                continue;
            }
            expectedEntries += 2;
            if (rows.Count != 2) { P($"payment {id} ({PaymentNames.Kind(p.Kind)} {PaymentNames.Status(p.Status)}) has {rows.Count} entries, expected 2"); continue; }
            var debit = rows.SingleOrDefault(e => (string)e[4]! == "debit");
            var credit = rows.SingleOrDefault(e => (string)e[4]! == "credit");
            if (debit is null || credit is null) { P($"payment {id}: entries are not one debit and one credit"); continue; }
            if ((long)debit[3]! != p.FromAccount || (long)credit[3]! != p.ToAccount || (long)debit[5]! != moved || (long)credit[5]! != moved
                || (long)debit[1]! != (long)credit[1]! || (string)debit[6]! != p.Currency.ToString() || (string)credit[6]! != p.Currency.ToString()
                || (short)debit[2]! != 0 || (short)credit[2]! != 1)
                P($"payment {id}: entries ({string.Join(", ", debit)}) / ({string.Join(", ", credit)}) for {p.FromAccount} -> {p.ToAccount} {moved} {p.Currency}");
            // A single-phase payment is posted when it is made; a capture later (its own record).
            if (p.Kind != PaymentKind.Authorization && Ms(debit[7]) != p.CreatedAtMs)
                P($"payment {id}: entries posted at {Ms(debit[7])}, the payment was made at {p.CreatedAtMs}");
        }
        foreach (long id in entries.Keys.Where(id => !ledger.PaymentExists(id))) P($"entries name payment {id}, which the ledger does not have");
        long entryRows = entries.Values.Sum(l => l.Count);
        if (entryRows != expectedEntries) P($"{entryRows} ledger entries in the database, {expectedEntries} expected");

        // Refunds: one row per refund payment, naming the payment refunded.
        var refunds = (await db.RowsAsync("SELECT id, payment_id, amount, currency, created_at FROM refunds ORDER BY id")).ToDictionary(r => (long)r[0]!);
        long ledgerRefunds = 0;
        for (long id = 1; id <= ledger.PaymentCount; id++)
        {
            var p = ledger.GetPayment(id);
            if (p.Kind != PaymentKind.Refund) continue;
            ledgerRefunds++;
            if (!refunds.TryGetValue(id, out var r)) { P($"refund {id} has no row in refunds"); continue; }
            if ((long)r[1]! != p.ParentId || (long)r[2]! != p.Amount || (string)r[3]! != p.Currency.ToString() || Ms(r[4]) != p.CreatedAtMs)
                P($"refund {id}: database ({string.Join(", ", r)}), ledger ({p.ParentId}, {p.Amount}, {p.Currency}, {p.CreatedAtMs})");
        }
        if (refunds.Count != ledgerRefunds) P($"{refunds.Count} rows in refunds, {ledgerRefunds} refunds in the ledger");

        if (problems.Count > 0) throw new XunitException($"the database {db.Name} does not mirror the ledger:\n  " + string.Join("\n  ", problems));
    }

    /// <summary>Every RamPay table's rows as text, in key order (the checkpoint without its wall-clock updated_at): two databases with equal dumps hold the same rows.</summary>
    public static async Task<string> DumpAsync(TestDatabase db)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var (table, order) in new[]
                 {
                     ("users", "id"), ("accounts", "id"), ("payments", "id"), ("ledger_entries", "journal_sequence, entry_index"), ("refunds", "id"),
                 })
        {
            sb.Append("# ").AppendLine(table);
            foreach (var row in await db.RowsAsync($"SELECT * FROM {table} ORDER BY {order}"))
                sb.AppendLine(string.Join(" | ", row.Select(v => v is DateTime dt ? Ms(dt).ToString(System.Globalization.CultureInfo.InvariantCulture) : Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? "NULL")));
        }
        sb.AppendLine("# sink_checkpoint");
        foreach (var row in await db.RowsAsync("SELECT sink, journal_sequence, journal_time FROM sink_checkpoint ORDER BY sink"))
            sb.AppendLine($"{row[0]} | {row[1]} | {Ms(row[2])}");
        return sb.ToString();
    }

    /// <summary>A timestamptz as unix milliseconds.</summary>
    public static long Ms(object? value) => value switch
    {
        DateTime dt => new DateTimeOffset(DateTime.SpecifyKind(dt, DateTimeKind.Utc)).ToUnixTimeMilliseconds(),
        DateTimeOffset dto => dto.ToUnixTimeMilliseconds(),
        _ => throw new XunitException($"not a timestamp: {value ?? "null"}"),
    };

    /// <summary>
    /// <see cref="DatabaseTools.Verify"/> must agree, and be at <paramref name="checkpoint"/> (at least there, for a
    /// server that still runs: its ticks keep the sink writing).
    /// </summary>
    public static DatabaseCheckReport AssertVerifyAgrees(TestDatabase db, string dataDirectory, LedgerOptions ledger, long checkpoint, bool stillRunning = false)
    {
        var report = DatabaseTools.Verify(db.DirectConnectionString, dataDirectory, ledger);
        Assert.True(report.Agrees, "rampay db verify disagrees:\n  " + string.Join("\n  ", report.Problems));
        if (stillRunning) Assert.True(report.Checkpoint >= checkpoint, $"verify saw checkpoint {report.Checkpoint}, before {checkpoint}");
        else Assert.Equal(checkpoint, report.Checkpoint);
        return report;
    }

    /// <summary>Waits until the hub's (only) sink has written through <paramref name="sequence"/>; fails with the sink's state on a fatal error or timeout.</summary>
    public static async Task WaitForCheckpointAsync(SinkHub hub, long sequence, TimeSpan? timeout = null)
    {
        var runner = hub.Sinks[0];
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (runner.Checkpoint.Sequence < sequence)
        {
            if (hub.FollowerError is { } fe) throw new XunitException($"the follower stopped: {fe}");
            if (runner.Error is { Fatal: true } e) throw new XunitException($"the sink stopped for good: {e.Message}");
            if (DateTime.UtcNow > deadline)
                throw new XunitException($"the sink did not reach {sequence} in time: checkpoint {runner.Checkpoint.Sequence}, follower {hub.FollowerSequence}, " +
                                         $"connected {runner.Connected}, failures {runner.Failures}, last error {runner.Error?.Message ?? "none"}");
            await Task.Delay(10);
        }
    }
}
