using Npgsql;
using NpgsqlTypes;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Postgres;

/// <summary>
/// Writes the ledger's changes into PostgreSQL as rows (schema: <see cref="Schema"/>): one transaction per batch,
/// rows by binary COPY, and the journal position the batch reaches in the same transaction, so a crash at any point
/// leaves the database at a batch boundary it knows, and the sink resumes right after it: no gap, no duplicate row.
/// <para>
/// New rows (users, accounts, payments, entries, refunds) are copied straight into their tables. Rows that already
/// exist and changed (balances; a payment captured, voided, expired or refunded) are copied into a temporary staging
/// table and applied with one <c>UPDATE ... FROM</c> per table. Within a batch, only an account's or payment's last
/// state is written.
/// </para>
/// </summary>
public sealed class PostgresSink : IChangeSink
{
    public const string SinkName = "postgres";

    private readonly string _connectionString;
    private NpgsqlConnection? _connection;
    private SinkCheckpoint _checkpoint;

    // Per-batch scratch, reused: the sink runs on one thread.
    private readonly List<NewPayment> _newPayments = [];
    private readonly Dictionary<long, int> _newPaymentIndex = [];
    private readonly Dictionary<long, (Payment Payment, long Sequence)> _changedPayments = [];
    private readonly List<(Account Account, long Sequence)> _newAccounts = [];
    private readonly Dictionary<long, int> _newAccountIndex = [];
    private readonly Dictionary<long, (Account Account, long Sequence)> _changedAccounts = [];
    private readonly List<(User User, long Sequence)> _users = [];
    private readonly List<Entry> _entries = [];
    private readonly List<(Payment Refund, long Sequence)> _refunds = [];
    private readonly Dictionary<ushort, string> _currencyText = [];

    private readonly bool? _analyticsRollupTables;

    /// <param name="analyticsRollupTables">The analytics rollup tables (<see cref="AnalyticsViews.Apply"/>): true = on,
    /// false = off (removed), null = as the database has them.</param>
    public PostgresSink(string connectionString, bool? analyticsRollupTables = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        _connectionString = connectionString;
        _analyticsRollupTables = analyticsRollupTables;
    }

    public string Name => SinkName;

    /// <summary>Ledger rows written by the last successful <see cref="Write"/> (entries, payments, accounts, users, refunds).</summary>
    public long LastBatchRows { get; private set; }

    /// <summary>The PostgreSQL backend's process id while open (0 when closed): for CPU accounting in benchmarks.</summary>
    public int BackendProcessId => _connection?.ProcessID ?? 0;

    /// <summary>Ledger entries (debits and credits) among <see cref="LastBatchRows"/>.</summary>
    public long LastBatchEntries { get; private set; }

    public SinkCheckpoint Open()
    {
        CloseConnection();
        var connection = new NpgsqlConnection(_connectionString);
        try
        {
            connection.Open();
            Schema.Migrate(connection);
            AnalyticsViews.Apply(connection, _analyticsRollupTables); // issue 13: the analytics rollups as views (over rollup tables when on)
            Execute(connection, null, "INSERT INTO sink_checkpoint (sink, journal_sequence, updated_at) VALUES ('postgres', 0, now()) ON CONFLICT (sink) DO NOTHING");
            Execute(connection, null, """
                CREATE TEMP TABLE IF NOT EXISTS stage_accounts (
                    id bigint, debits_posted bigint, credits_posted bigint, debits_pending bigint, credits_pending bigint,
                    frozen boolean, journal_sequence bigint) ON COMMIT DELETE ROWS;
                CREATE TEMP TABLE IF NOT EXISTS stage_payments (
                    id bigint, status text, captured bigint, refunded bigint, journal_sequence bigint, fraud_reasons text[]) ON COMMIT DELETE ROWS;
                """);
            _checkpoint = ReadCheckpoint(connection, null, forUpdate: false);
            _connection = connection;
            return _checkpoint;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    public void Write(ReadOnlySpan<Change> changes, SinkCheckpoint through)
    {
        var connection = _connection ?? throw new InvalidOperationException("the sink is not open");
        Invariant.Check(through.Sequence > _checkpoint.Sequence, "a batch must move the checkpoint forward");
        Collect(changes);
        try
        {
            using var tx = connection.BeginTransaction();
            // Two writers must never interleave: the row lock on the checkpoint serialises them, and a checkpoint
            // that moved since Open means another process wrote (a second RamPay on the same database).
            var current = ReadCheckpoint(connection, tx, forUpdate: true);
            if (current.Sequence != _checkpoint.Sequence)
                throw new InvalidOperationException($"the database checkpoint is {current.Sequence}, this sink expected {_checkpoint.Sequence}: another writer is using this database");

            CopyUsers(connection);
            CopyNewAccounts(connection);
            CopyNewPayments(connection);
            CopyEntries(connection);
            CopyRefunds(connection);
            UpdateAccounts(connection, tx);
            UpdatePayments(connection, tx);

            using (var cmd = new NpgsqlCommand("UPDATE sink_checkpoint SET journal_sequence = @s, journal_time = @t, updated_at = now() WHERE sink = 'postgres'", connection, tx))
            {
                cmd.Parameters.AddWithValue("s", through.Sequence);
                cmd.Parameters.AddWithValue("t", Time(through.TimestampMs));
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
            _checkpoint = through;
            LastBatchEntries = _entries.Count;
            LastBatchRows = _users.Count + _newAccounts.Count + _changedAccounts.Count + _newPayments.Count + _changedPayments.Count + _entries.Count + _refunds.Count;
        }
        catch
        {
            // The transaction rolled back; the runner re-opens (a new connection) and re-sends from the checkpoint.
            CloseConnection();
            throw;
        }
    }

    /// <summary>Sorts a batch's changes into new rows, changed rows and entries.</summary>
    private void Collect(ReadOnlySpan<Change> changes)
    {
        _newPayments.Clear(); _newPaymentIndex.Clear(); _changedPayments.Clear();
        _newAccounts.Clear(); _newAccountIndex.Clear(); _changedAccounts.Clear();
        _users.Clear(); _entries.Clear(); _refunds.Clear();
        foreach (ref readonly var c in changes)
        {
            if (!c.ChangedState) continue;
            var type = c.Kind == ChangeKind.Command ? c.Command.Type : CommandType.None;
            bool createsPayment = type is CommandType.Deposit or CommandType.Transfer or CommandType.Authorize or CommandType.Refund
                || (type is CommandType.IssueReward or CommandType.ReverseReward && c.Payment.Id != 0);
            bool createsAccount = type is CommandType.OpenAccount or CommandType.RegisterUser or CommandType.OpenRewardsAccount;

            if (c.User is { } user) _users.Add((user, c.Sequence));
            if (c.From.Id != 0) Account(c.From, c.Sequence, isNew: createsAccount);
            if (c.To.Id != 0) Account(c.To, c.Sequence, isNew: false);
            if (c.Payment.Id != 0)
            {
                if (createsPayment)
                {
                    _newPaymentIndex.Add(c.Payment.Id, _newPayments.Count);
                    _newPayments.Add(new NewPayment(c.Payment, c.Note, c.FraudModelVersion, c.Sequence, c.Sequence));
                }
                else
                {
                    Payment(c.Payment, c.Sequence);
                }
            }
            if (c.Parent.Id != 0) Payment(c.Parent, c.Sequence);

            switch (type)
            {
                case CommandType.Deposit:
                case CommandType.Transfer:
                    // Only money that moved: a transfer held for review or declined by fraud screening posts nothing.
                    if (c.Result.Code == ResultCode.Ok && c.Payment.Status == PaymentStatus.Posted)
                        Entries(c, c.Payment.FromAccount, c.Payment.ToAccount, c.Payment.Amount);
                    break;
                case CommandType.Review:
                    // An approved held transfer posts now; an approved authorization stays a hold; a decline moves nothing.
                    if (c.Payment.Kind == PaymentKind.Transfer && c.Payment.Status == PaymentStatus.Posted)
                        Entries(c, c.Payment.FromAccount, c.Payment.ToAccount, c.Payment.Amount);
                    break;
                case CommandType.Capture:
                    if (c.Payment.Captured > 0) Entries(c, c.Payment.FromAccount, c.Payment.ToAccount, c.Payment.Captured);
                    break;
                case CommandType.Refund:
                    Entries(c, c.Payment.FromAccount, c.Payment.ToAccount, c.Payment.Amount);
                    _refunds.Add((c.Payment, c.Sequence));
                    break;
                case CommandType.IssueReward or CommandType.ReverseReward when c.Payment.Id != 0:
                    // A cashback payout or its reversal (payments of kind reward / reward_reversal, parent = the source payment).
                    Entries(c, c.Payment.FromAccount, c.Payment.ToAccount, c.Payment.Amount);
                    break;
            }
        }
    }

    private void Account(in Account account, long sequence, bool isNew)
    {
        if (isNew)
        {
            _newAccountIndex.Add(account.Id, _newAccounts.Count);
            _newAccounts.Add((account, sequence));
        }
        else if (_newAccountIndex.TryGetValue(account.Id, out int i))
        {
            _newAccounts[i] = (account, sequence); // opened in this batch: insert its latest state
        }
        else
        {
            _changedAccounts[account.Id] = (account, sequence);
        }
    }

    private void Payment(in Payment payment, long sequence)
    {
        if (_newPaymentIndex.TryGetValue(payment.Id, out int i))
        {
            _newPayments[i] = _newPayments[i] with { Payment = payment, Sequence = sequence }; // made in this batch: insert its latest state
        }
        else
        {
            _changedPayments[payment.Id] = (payment, sequence);
        }
    }

    private void Entries(in Change c, long debit, long credit, long amount)
    {
        _entries.Add(new Entry(c.Sequence, 0, c.Payment.Id, debit, Debit: true, amount, c.Payment.Currency, c.TimestampMs));
        _entries.Add(new Entry(c.Sequence, 1, c.Payment.Id, credit, Debit: false, amount, c.Payment.Currency, c.TimestampMs));
    }

    private void CopyUsers(NpgsqlConnection connection)
    {
        if (_users.Count == 0) return;
        using var w = connection.BeginBinaryImport("COPY users (id, email, name, role, wallet_account_id, created_at, journal_sequence) FROM STDIN (FORMAT BINARY)");
        foreach (var (u, seq) in _users)
        {
            w.StartRow();
            w.Write(u.Id, NpgsqlDbType.Bigint);
            w.Write(u.Email, NpgsqlDbType.Text);
            w.Write(u.Name, NpgsqlDbType.Text);
            w.Write(u.Role == UserRole.Admin ? "admin" : "user", NpgsqlDbType.Text);
            w.Write(u.WalletAccountId, NpgsqlDbType.Bigint);
            w.Write(Time(u.CreatedAtMs), NpgsqlDbType.TimestampTz);
            w.Write(seq, NpgsqlDbType.Bigint);
        }
        w.Complete();
    }

    private void CopyNewAccounts(NpgsqlConnection connection)
    {
        if (_newAccounts.Count == 0) return;
        using var w = connection.BeginBinaryImport("""
            COPY accounts (id, owner_user_id, currency, is_wallet, is_funding, debits_posted, credits_posted, debits_pending,
                           credits_pending, frozen, created_at, journal_sequence) FROM STDIN (FORMAT BINARY)
            """);
        foreach (var (a, seq) in _newAccounts)
        {
            w.StartRow();
            w.Write(a.Id, NpgsqlDbType.Bigint);
            if (a.Owner == 0) w.WriteNull(); else w.Write(a.Owner, NpgsqlDbType.Bigint);
            w.Write(CurrencyText(a.Currency), NpgsqlDbType.Char);
            w.Write(a.IsWallet, NpgsqlDbType.Boolean);
            w.Write((a.Flags & AccountFlags.Funding) != 0, NpgsqlDbType.Boolean);
            w.Write(a.DebitsPosted, NpgsqlDbType.Bigint);
            w.Write(a.CreditsPosted, NpgsqlDbType.Bigint);
            w.Write(a.DebitsPending, NpgsqlDbType.Bigint);
            w.Write(a.CreditsPending, NpgsqlDbType.Bigint);
            w.Write(a.Frozen, NpgsqlDbType.Boolean);
            w.Write(Time(a.CreatedAtMs), NpgsqlDbType.TimestampTz);
            w.Write(seq, NpgsqlDbType.Bigint);
        }
        w.Complete();
    }

    private void CopyNewPayments(NpgsqlConnection connection)
    {
        if (_newPayments.Count == 0) return;
        using var w = connection.BeginBinaryImport("""
            COPY payments (id, kind, status, from_account_id, to_account_id, amount, captured, refunded, currency, parent_payment_id,
                           description, webhook_url, created_at, expires_at, created_sequence, journal_sequence,
                           fraud_score, fraud_model, fraud_reasons) FROM STDIN (FORMAT BINARY)
            """);
        foreach (var c in _newPayments)
        {
            var p = c.Payment;
            w.StartRow();
            w.Write(p.Id, NpgsqlDbType.Bigint);
            w.Write(PaymentNames.Kind(p.Kind), NpgsqlDbType.Text);
            w.Write(PaymentNames.Status(p.Status), NpgsqlDbType.Text);
            w.Write(p.FromAccount, NpgsqlDbType.Bigint);
            w.Write(p.ToAccount, NpgsqlDbType.Bigint);
            w.Write(p.Amount, NpgsqlDbType.Bigint);
            w.Write(p.Captured, NpgsqlDbType.Bigint);
            w.Write(p.Refunded, NpgsqlDbType.Bigint);
            w.Write(CurrencyText(p.Currency), NpgsqlDbType.Char);
            if (p.ParentId == 0) w.WriteNull(); else w.Write(p.ParentId, NpgsqlDbType.Bigint);
            if (c.Note?.Description is { } d) w.Write(d, NpgsqlDbType.Text); else w.WriteNull();
            if (c.Note?.WebhookUrl is { } u) w.Write(u, NpgsqlDbType.Text); else w.WriteNull();
            w.Write(Time(p.CreatedAtMs), NpgsqlDbType.TimestampTz);
            if (p.Kind == PaymentKind.Authorization) w.Write(Time(p.ExpiresAtMs), NpgsqlDbType.TimestampTz); else w.WriteNull();
            w.Write(c.CreatedSequence, NpgsqlDbType.Bigint);
            w.Write(c.Sequence, NpgsqlDbType.Bigint);
            WriteFraud(w, p, c.FraudModel);
        }
        w.Complete();
    }

    /// <summary>A payment's fraud columns: null when it was not scored.</summary>
    private static void WriteFraud(NpgsqlBinaryImporter w, in Payment p, string? model)
    {
        if (p.FraudModel == 0)
        {
            w.WriteNull();
            w.WriteNull();
            w.WriteNull();
            return;
        }
        w.Write(p.FraudScore, NpgsqlDbType.Real);
        if (model is null) w.WriteNull(); else w.Write(model, NpgsqlDbType.Text);
        w.Write(RamPay.Fraud.FraudReasonNames.Names(p.FraudReasons).ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text);
    }

    private void CopyEntries(NpgsqlConnection connection)
    {
        if (_entries.Count == 0) return;
        using var w = connection.BeginBinaryImport("""
            COPY ledger_entries (journal_sequence, entry_index, payment_id, account_id, direction, amount, currency, posted_at)
            FROM STDIN (FORMAT BINARY)
            """);
        foreach (var e in _entries)
        {
            w.StartRow();
            w.Write(e.Sequence, NpgsqlDbType.Bigint);
            w.Write(e.Index, NpgsqlDbType.Smallint);
            w.Write(e.PaymentId, NpgsqlDbType.Bigint);
            w.Write(e.AccountId, NpgsqlDbType.Bigint);
            w.Write(e.Debit ? "debit" : "credit", NpgsqlDbType.Text);
            w.Write(e.Amount, NpgsqlDbType.Bigint);
            w.Write(CurrencyText(e.Currency), NpgsqlDbType.Char);
            w.Write(Time(e.AtMs), NpgsqlDbType.TimestampTz);
        }
        w.Complete();
    }

    private void CopyRefunds(NpgsqlConnection connection)
    {
        if (_refunds.Count == 0) return;
        using var w = connection.BeginBinaryImport("COPY refunds (id, payment_id, amount, currency, created_at, journal_sequence) FROM STDIN (FORMAT BINARY)");
        foreach (var (r, seq) in _refunds)
        {
            w.StartRow();
            w.Write(r.Id, NpgsqlDbType.Bigint);
            w.Write(r.ParentId, NpgsqlDbType.Bigint);
            w.Write(r.Amount, NpgsqlDbType.Bigint);
            w.Write(CurrencyText(r.Currency), NpgsqlDbType.Char);
            w.Write(Time(r.CreatedAtMs), NpgsqlDbType.TimestampTz);
            w.Write(seq, NpgsqlDbType.Bigint);
        }
        w.Complete();
    }

    private void UpdateAccounts(NpgsqlConnection connection, NpgsqlTransaction tx)
    {
        if (_changedAccounts.Count == 0) return;
        using (var w = connection.BeginBinaryImport("COPY stage_accounts (id, debits_posted, credits_posted, debits_pending, credits_pending, frozen, journal_sequence) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var (a, seq) in _changedAccounts.Values)
            {
                w.StartRow();
                w.Write(a.Id, NpgsqlDbType.Bigint);
                w.Write(a.DebitsPosted, NpgsqlDbType.Bigint);
                w.Write(a.CreditsPosted, NpgsqlDbType.Bigint);
                w.Write(a.DebitsPending, NpgsqlDbType.Bigint);
                w.Write(a.CreditsPending, NpgsqlDbType.Bigint);
                w.Write(a.Frozen, NpgsqlDbType.Boolean);
                w.Write(seq, NpgsqlDbType.Bigint);
            }
            w.Complete();
        }
        int updated = Execute(connection, tx, """
            UPDATE accounts a SET debits_posted = s.debits_posted, credits_posted = s.credits_posted, debits_pending = s.debits_pending,
                credits_pending = s.credits_pending, frozen = s.frozen, journal_sequence = s.journal_sequence
            FROM stage_accounts s WHERE a.id = s.id
            """);
        if (updated != _changedAccounts.Count)
            throw new InvalidOperationException($"{_changedAccounts.Count - updated} changed accounts have no row in the database: it does not match this journal (run `rampay db rebuild`)");
    }

    private void UpdatePayments(NpgsqlConnection connection, NpgsqlTransaction tx)
    {
        if (_changedPayments.Count == 0) return;
        using (var w = connection.BeginBinaryImport("COPY stage_payments (id, status, captured, refunded, journal_sequence, fraud_reasons) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var (p, seq) in _changedPayments.Values)
            {
                w.StartRow();
                w.Write(p.Id, NpgsqlDbType.Bigint);
                w.Write(PaymentNames.Status(p.Status), NpgsqlDbType.Text);
                w.Write(p.Captured, NpgsqlDbType.Bigint);
                w.Write(p.Refunded, NpgsqlDbType.Bigint);
                w.Write(seq, NpgsqlDbType.Bigint);
                if (p.FraudModel == 0) w.WriteNull(); else w.Write(RamPay.Fraud.FraudReasonNames.Names(p.FraudReasons).ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text);
            }
            w.Complete();
        }
        int updated = Execute(connection, tx, """
            UPDATE payments p SET status = s.status, captured = s.captured, refunded = s.refunded, journal_sequence = s.journal_sequence,
                fraud_reasons = coalesce(s.fraud_reasons, p.fraud_reasons)
            FROM stage_payments s WHERE p.id = s.id
            """);
        if (updated != _changedPayments.Count)
            throw new InvalidOperationException($"{_changedPayments.Count - updated} changed payments have no row in the database: it does not match this journal (run `rampay db rebuild`)");
    }

    private static SinkCheckpoint ReadCheckpoint(NpgsqlConnection connection, NpgsqlTransaction? tx, bool forUpdate)
    {
        using var cmd = new NpgsqlCommand(
            "SELECT journal_sequence, journal_time FROM sink_checkpoint WHERE sink = 'postgres'" + (forUpdate ? " FOR UPDATE" : ""), connection, tx);
        using var reader = cmd.ExecuteReader();
        if (!reader.Read()) throw new InvalidOperationException("the sink_checkpoint row for 'postgres' is missing");
        long sequence = reader.GetInt64(0);
        long ms = reader.IsDBNull(1) ? 0 : new DateTimeOffset(reader.GetFieldValue<DateTime>(1)).ToUnixTimeMilliseconds();
        return new SinkCheckpoint(sequence, ms);
    }

    private static int Execute(NpgsqlConnection connection, NpgsqlTransaction? tx, string sql)
    {
        using var cmd = new NpgsqlCommand(sql, connection, tx);
        return cmd.ExecuteNonQuery();
    }

    internal static DateTime Time(long unixMs) => DateTime.UnixEpoch.AddMilliseconds(unixMs);

    private string CurrencyText(Currency currency)
    {
        if (!_currencyText.TryGetValue(currency.Code, out var text)) _currencyText[currency.Code] = text = currency.ToString();
        return text;
    }

    private void CloseConnection()
    {
        _connection?.Dispose();
        _connection = null;
    }

    public void Dispose() => CloseConnection();

    /// <summary>A payment made in this batch: its latest state, and the record that made it.</summary>
    private readonly record struct NewPayment(Payment Payment, PaymentNote? Note, string? FraudModel, long CreatedSequence, long Sequence);

    private readonly record struct Entry(long Sequence, short Index, long PaymentId, long AccountId, bool Debit, long Amount, Currency Currency, long AtMs);
}
