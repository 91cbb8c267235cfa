using System.Text;

namespace RamPay.Core.Tests;

/// <summary>
/// Builds command bodies (no key, no timestamp, no client): the one place commands are made.
/// Stamp them with <see cref="CmdExtensions"/> or run them through <see cref="TestLedger"/>.
/// </summary>
internal static class Cmd
{
    public static Command Open(AccountFlags flags, Currency currency, long owner = 0) =>
        new() { Type = CommandType.OpenAccount, Flags = (byte)flags, Currency = currency, Argument = owner };

    public static Command Deposit(long from, long to, long amount, Currency currency) =>
        new() { Type = CommandType.Deposit, FromAccount = from, ToAccount = to, Amount = amount, Currency = currency };

    public static Command Transfer(long from, long to, long amount, Currency currency) =>
        new() { Type = CommandType.Transfer, FromAccount = from, ToAccount = to, Amount = amount, Currency = currency };

    public static Command Authorize(long from, long to, long amount, Currency currency, long timeoutMs = 0) =>
        new() { Type = CommandType.Authorize, FromAccount = from, ToAccount = to, Amount = amount, Currency = currency, Argument = timeoutMs };

    /// <summary>Amount 0 captures the whole authorization; currency None means "the payment's".</summary>
    public static Command Capture(long paymentId, long amount = 0, Currency currency = default) =>
        new() { Type = CommandType.Capture, PaymentId = paymentId, Amount = amount, Currency = currency };

    public static Command Void(long paymentId) =>
        new() { Type = CommandType.Void, PaymentId = paymentId };

    public static Command Refund(long paymentId, long amount, Currency currency) =>
        new() { Type = CommandType.Refund, PaymentId = paymentId, Amount = amount, Currency = currency };

    public static Command Freeze(long account) => new() { Type = CommandType.Freeze, FromAccount = account };

    public static Command Unfreeze(long account) => new() { Type = CommandType.Unfreeze, FromAccount = account };

    public static Command Tick(long timestampMs) => new() { Type = CommandType.Tick, TimestampMs = timestampMs };
}

internal static class CmdExtensions
{
    public static Command WithKey(this Command c, string key) => c with { Key = IdempotencyKey.FromString(key) };
    public static Command At(this Command c, long timestampMs) => c with { TimestampMs = timestampMs };
    public static Command By(this Command c, long clientId) => c with { ClientId = clientId };

    public static CommandResult ApplyTo(this Command c, Ledger ledger)
    {
        ledger.Apply(in c, out var result);
        return result;
    }
}

/// <summary>
/// A ledger plus a test clock and a key counter. Every Run stamps key/time/client, applies, and checks
/// <see cref="Ledger.VerifyInvariants"/> afterwards, so every state-changing test ends with the invariants checked.
/// </summary>
internal sealed class TestLedger
{
    public const long DefaultClient = 7;
    public const long Start = 1_000_000;

    /// <summary>Small limits: the defaults would pre-allocate ~200 MB per ledger.</summary>
    public static LedgerOptions SmallOptions => new()
    {
        MaxAccounts = 64,
        MaxPayments = 1 << 16,
        InitialPaymentCapacity = 0,
        MaxOpenHolds = 64,
        IdempotencyMaxKeys = 4096,
    };

    private int _keySeq;

    public TestLedger(LedgerOptions? options = null) : this(new Ledger(options ?? SmallOptions)) { }

    public TestLedger(Ledger ledger)
    {
        Ledger = ledger;
        Now = Math.Max(Start, ledger.ClockMs);
    }

    public Ledger Ledger { get; }
    /// <summary>The timestamp the next Run stamps (unless told otherwise).</summary>
    public long Now { get; set; }
    public long Client { get; set; } = DefaultClient;

    public string NextKey() => "key-" + (++_keySeq).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Stamps key (a fresh one unless given), timestamp (Now unless given) and client, applies (with the attachment,
    /// if any: a payment note's encoding, say), verifies.
    /// </summary>
    public CommandResult Run(Command body, string? key = null, long? at = null, long? client = null, byte[]? attachment = null)
    {
        var c = body;
        c.TimestampMs = at ?? Now;
        c.ClientId = client ?? Client;
        if (c.Type != CommandType.Tick) c.Key = IdempotencyKey.FromString(key ?? NextKey());
        return RunExact(c, attachment);
    }

    /// <summary>Applies the command as it is (e.g. without a key) and verifies the invariants.</summary>
    public CommandResult RunExact(in Command c, ReadOnlySpan<byte> attachment = default)
    {
        Ledger.Apply(in c, attachment, out var result);
        Ledger.VerifyInvariants();
        return result;
    }

    public CommandResult Tick(long at)
    {
        Now = Math.Max(Now, at);
        return RunExact(Cmd.Tick(at));
    }

    /// <summary>Runs and asserts Ok (not replayed); returns the result's id. A note goes as the command's attachment.</summary>
    public long Ok(Command body, string? key = null, long? at = null, PaymentNote? note = null)
    {
        var r = Run(body, key, at, attachment: note?.Encode());
        Assert.True(r.IsOk && !r.Replayed, $"expected ok for {body.Type}, got {r}");
        return r.Id;
    }

    /// <summary>Runs and asserts the exact (non-replayed) rejection, with no id.</summary>
    public void Rejects(ResultCode expected, Command body, string? key = null, long? at = null, byte[]? attachment = null)
    {
        var before = LedgerView.Of(Ledger);
        var r = Run(body, key, at, attachment: attachment);
        Assert.Equal(ResultCodes.Name(expected), ResultCodes.Name(r.Code));
        Assert.False(r.Replayed);
        Assert.Equal(0, r.Id);
        // A rejection changes nothing but the clock/command counter and the remembered key.
        Assert.Equal(before with { IdempotencyKeys = before.IdempotencyKeys + 1 }, LedgerView.Of(Ledger));
    }

    public long OpenWallet(Currency currency, long owner = 0) => Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, currency, owner));
    public long OpenFunding(Currency currency) => Ok(Cmd.Open(AccountFlags.Funding, currency));
    public long OpenPlain(Currency currency) => Ok(Cmd.Open(AccountFlags.None, currency));

    /// <summary>The usual start: a funding account, and two wallets of which the first holds <paramref name="deposit"/>.</summary>
    public (long Fund, long Payer, long Payee) OpenFundedPair(Currency currency, long deposit)
    {
        long fund = OpenFunding(currency), payer = OpenWallet(currency), payee = OpenWallet(currency);
        Deposit(fund, payer, deposit, currency);
        return (fund, payer, payee);
    }

    /// <summary>Deposits into an account from the given funding account.</summary>
    public long Deposit(long funding, long to, long amount, Currency currency) => Ok(Cmd.Deposit(funding, to, amount, currency));

    public Account Account(long id) => Ledger.GetAccount(id);
    public Payment Payment(long id) => Ledger.GetPayment(id);
    public long Available(long id) => Ledger.GetAccount(id).Available;
    public long Posted(long id) => Ledger.GetAccount(id).Posted;

    public long[] History(long account, long beforeId = 0, int max = 64)
    {
        var buffer = new long[max];
        int n = Ledger.History(account, beforeId, buffer);
        return buffer[..n];
    }
}

/// <summary>
/// Everything observable about a ledger except the clock and the command counter (which every Apply moves),
/// as a value with structural equality, so "no state change" is one Assert.Equal with a readable diff.
/// </summary>
internal sealed record LedgerView(string Accounts, string Payments, long PaymentCount, int OpenHolds, int IdempotencyKeys,
    Int128 DebitsPosted, Int128 CreditsPosted, Int128 DebitsPending, Int128 CreditsPending)
{
    public static LedgerView Of(Ledger l)
    {
        var accounts = new StringBuilder();
        for (long id = 1; id <= l.AccountCount; id++)
        {
            var a = l.GetAccount(id);
            accounts.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"{a.Id}:{a.Currency}:{a.Flags}:dp={a.DebitsPosted},cp={a.CreditsPosted},dq={a.DebitsPending},cq={a.CreditsPending},frozen={a.Frozen},last={a.LastPaymentId};");
        }
        var payments = new StringBuilder();
        for (long id = 1; id <= l.PaymentCount; id++)
        {
            var p = l.GetPayment(id);
            payments.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"{p.Id}:{p.Kind}:{p.Status}:{p.FromAccount}->{p.ToAccount}:{p.Amount}/{p.Captured}/{p.Refunded}:{p.Currency}:exp={p.ExpiresAtMs}:parent={p.ParentId};");
            if (l.GetPaymentNote(id) is { } note) payments.Append(System.Globalization.CultureInfo.InvariantCulture, $"note({id})={note};");
        }
        return new LedgerView(accounts.ToString(), payments.ToString(), l.PaymentCount, l.OpenHoldCount, l.Idempotency.Count,
            l.TotalDebitsPosted, l.TotalCreditsPosted, l.TotalDebitsPending, l.TotalCreditsPending);
    }
}

internal static class StateBytes
{
    /// <summary>Bytes per account and per payment in the state encoding (LedgerSnapshot.cs), and the fixed header before the accounts.</summary>
    public const int HeaderSize = 108, AccountSize = 8 * 8 + 2 + 1 + 1, PaymentSize = 11 * 8 + 2 + 1 + 1 + 4 + 2 + 2, PaymentSizeVersion2 = 11 * 8 + 2 + 1 + 1;

    /// <summary>The fraud section of a ledger that never configured fraud scoring: what version 3 appended to the end.</summary>
    public static int UnusedFraudSectionSize
    {
        get
        {
            using var ms = new MemoryStream();
            using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) new RamPay.Fraud.FraudState(1, RamPay.Fraud.FraudModelCatalog.Empty).Write(w);
            return (int)ms.Length;
        }
    }

    /// <summary>
    /// The version-2 encoding of a ledger that never scored a payment, cut out of its current encoding: each payment
    /// without its fraud fields, and no fraud section. What a snapshot taken before fraud scoring holds.
    /// </summary>
    public static byte[] AsVersion2(byte[] current, Ledger ledger)
    {
        Assert.Null(ledger.FraudModel);
        int paymentsAt = HeaderSize + ledger.AccountCount * AccountSize + 8;
        var v2 = new List<byte>(current[..paymentsAt]);
        for (int i = 0; i < ledger.PaymentCount; i++)
        {
            int at = paymentsAt + i * PaymentSize;
            v2.AddRange(current[at..(at + PaymentSizeVersion2)]);
        }
        v2.AddRange(current[(paymentsAt + (int)ledger.PaymentCount * PaymentSize)..^UnusedFraudSectionSize]);
        byte[] bytes = [.. v2];
        BitConverter.TryWriteBytes(bytes.AsSpan(4), 2);
        return bytes;
    }

    public static byte[] Write(Ledger ledger)
    {
        using var ms = new MemoryStream();
        ledger.WriteState(ms);
        return ms.ToArray();
    }

    /// <summary>
    /// SHA-256 of WriteState's bytes, computed here. It is what <see cref="Ledger.ComputeStateHash"/> documents it returns;
    /// tests of other behaviour compare this so that they do not depend on ComputeStateHash itself (which has its own tests).
    /// </summary>
    public static string Hash(Ledger ledger) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Write(ledger)));

    public static Ledger Read(byte[] bytes, LedgerOptions options)
    {
        using var ms = new MemoryStream(bytes);
        return Ledger.ReadState(ms, options);
    }
}

/// <summary>
/// What one measured round cost this thread: bytes allocated, and beside them what the runtime did on the thread in the same
/// time (methods the JIT compiled here, gen-0 collections in the process), so that a failing allocation test says whether its
/// bytes came with runtime work. CI has twice seen a few KB in every one of 3 rounds of 20,000 commands (never here, alone or
/// in the suite, loaded or not, with tiering, PGO or processor count changed): a cost per command would be far more than that
/// in every round. The allocation tests therefore run up to <see cref="MaxRounds"/> rounds and pass on the first that allocates
/// nothing, and print these samples when none does.
/// </summary>
internal readonly record struct AllocationSample(long Bytes, long MethodsJitted, int Gen0Collections, double ElapsedMs)
{
    public const int MaxRounds = 6;

    public static Probe Start() => new(GC.GetAllocatedBytesForCurrentThread(), System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: true),
        GC.CollectionCount(0), System.Diagnostics.Stopwatch.GetTimestamp());

    public override string ToString() => $"{Bytes} B ({MethodsJitted} methods jitted on the thread, {Gen0Collections} gen-0 GCs, {ElapsedMs:F0} ms)";

    public static string Describe(IEnumerable<AllocationSample> rounds) =>
        "bytes allocated per round: " + string.Join("; ", rounds.Select((s, i) => $"round {i}: {s}"));

    public readonly record struct Probe(long Bytes, long Jitted, int Gen0, long Timestamp)
    {
        /// <summary>Reads the allocation counter first, so that nothing this method does is counted.</summary>
        public AllocationSample Stop()
        {
            long bytes = GC.GetAllocatedBytesForCurrentThread();
            return new(bytes - Bytes, System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: true) - Jitted,
                GC.CollectionCount(0) - Gen0, System.Diagnostics.Stopwatch.GetElapsedTime(Timestamp).TotalMilliseconds);
        }
    }
}
