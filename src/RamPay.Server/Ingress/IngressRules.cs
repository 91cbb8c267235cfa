using RamPay.Core;
using RamPay.Server.Auth;

namespace RamPay.Server.Ingress;

/// <summary>The input of a request a refusal is about; <see cref="IngressInputs.Name"/> gives its name in the HTTP API.</summary>
public enum IngressInput : byte
{
    None = 0,
    IdempotencyKey,
    Amount,
    Currency,
    FromAccount,
    ToAccount,
    PaymentId,
    HoldTimeout,
}

public static class IngressInputs
{
    /// <summary>The header or JSON member that carries the input over HTTP (the wire's field of the same meaning in docs/protocol.md).</summary>
    public static string? Name(IngressInput input) => input switch
    {
        IngressInput.IdempotencyKey => IdempotencyKeys.Header,
        IngressInput.Amount => "amount",
        IngressInput.Currency => "currency",
        IngressInput.FromAccount => "from_account",
        IngressInput.ToAccount => "to_account",
        IngressInput.PaymentId => "payment_id",
        IngressInput.HoldTimeout => "hold_timeout_ms",
        _ => null,
    };
}

/// <summary>
/// A command refused at ingress, before it reaches the ring: the ledger's result code for it (the same code over HTTP
/// and TCP) and the input it is about. <see cref="None"/> (code Ok) admits the command.
/// </summary>
public readonly record struct IngressRefusal(ResultCode Code, IngressInput Input)
{
    public static readonly IngressRefusal None = default;
    public bool IsRefused => Code != ResultCode.Ok;
}

/// <summary>
/// Ownership: a user's money-moving command carries the ledger's <see cref="CommandFlags.OwnerOnly"/>, so the ledger
/// checks on the writer thread, atomically with the command and identically on replay, that the money is the user's;
/// an admin's command goes without it.
/// </summary>
public static class Ownership
{
    public static byte FlagsFor(Caller caller) => caller.IsAdmin ? (byte)0 : CommandFlags.OwnerOnly;
}

/// <summary>
/// Idempotency keys. Over HTTP the key is the <c>Idempotency-Key</c> header, 1..255 ASCII characters, hashed to the
/// engine's 16 bytes (the first 16 of its SHA-256); over TCP the client sends those 16 bytes itself (docs/protocol.md),
/// so a key string gives the same engine key over both. A batch item's key is derived from the batch's.
/// </summary>
public static class IdempotencyKeys
{
    public const string Header = "Idempotency-Key";

    public enum Problem : byte { None, Missing, TooLong, NotAscii }

    /// <summary>Checks and hashes a header's value; <see cref="Problem.None"/> and the key, or what is wrong with it.</summary>
    public static Problem TryParse(string? header, out IdempotencyKey key)
    {
        key = default;
        if (string.IsNullOrEmpty(header)) return Problem.Missing;
        if (header.Length > IdempotencyKey.MaxKeyLength) return Problem.TooLong;
        if (!System.Text.Ascii.IsValid(header)) return Problem.NotAscii;
        key = IdempotencyKey.FromString(header);
        return Problem.None;
    }

    /// <summary>
    /// Item <paramref name="index"/>'s key in a batch sent with <paramref name="batchKey"/>: the hash of the batch key's
    /// hex, "#" and the index. Journaled keys depend on it: it must never change.
    /// </summary>
    public static IdempotencyKey ForBatchItem(IdempotencyKey batchKey, int index) =>
        IdempotencyKey.FromString(batchKey.ToString() + "#" + index.ToString(System.Globalization.CultureInfo.InvariantCulture));
}

/// <summary>
/// The value rules a payment command meets before it is submitted, in one order for both protocols. Each refusal is
/// the code the ledger itself would give (or, for the deposit maximum, a code only ingress gives), so a command refused
/// here answers the same as one the ledger refuses; but it is not journaled and its key is not remembered, so it can
/// be corrected and sent again with the same key (as HTTP always allowed for a malformed body).
/// </summary>
public static class CommandRules
{
    /// <summary>
    /// Checks <paramref name="command"/> and completes a deposit's source (from account 0 = the platform's funding
    /// account of its currency). The order is the HTTP API's: the key (a header, read first), the amount, the currency,
    /// the hold timeout, then the deposit's source and maximum.
    /// </summary>
    public static IngressRefusal Check(ref Command command, IReadOnlyDictionary<Currency, long> fundingAccounts, long maxDepositAmount)
    {
        if (command.Key.IsEmpty) return new(ResultCode.IdempotencyKeyRequired, IngressInput.IdempotencyKey);
        var type = command.Type;
        // Capture's 0 is "the whole authorization"; void carries no amount to judge.
        bool badAmount = type switch
        {
            CommandType.Capture => command.Amount < 0,
            CommandType.Void => false,
            _ => command.Amount <= 0,
        };
        if (badAmount) return new(ResultCode.InvalidAmount, IngressInput.Amount);
        // Deposit, transfer and authorize name their currency; capture, void and refund may leave it out (it is the payment's).
        bool namesCurrency = type is CommandType.Deposit or CommandType.Transfer or CommandType.Authorize;
        if (namesCurrency ? !command.Currency.IsValid : !command.Currency.IsNone && !command.Currency.IsValid)
            return new(ResultCode.InvalidCurrency, IngressInput.Currency);
        // Only an authorization holds funds for a time; any other command's hold timeout must be 0 (it takes part in
        // the idempotency comparison, so a stray value would make retries differ).
        if (type == CommandType.Authorize ? command.Argument < 0 : command.Argument != 0)
            return new(ResultCode.InvalidHoldTimeout, IngressInput.HoldTimeout);
        if (type == CommandType.Deposit) return CheckDeposit(ref command, fundingAccounts, maxDepositAmount);
        return IngressRefusal.None;
    }

    /// <summary>
    /// A deposit comes from the platform's funding account of its currency: from account 0 names it (HTTP always sends
    /// 0), naming it explicitly is allowed, any other account is <c>not_a_funding_account</c> (another funding account,
    /// such as the rewards account, is the platform's and not a user's to draw on). At most <c>RamPay:MaxDepositAmount</c>.
    /// </summary>
    public static IngressRefusal CheckDeposit(ref Command command, IReadOnlyDictionary<Currency, long> fundingAccounts, long maxDepositAmount)
    {
        if (!fundingAccounts.TryGetValue(command.Currency, out long funding)) return new(ResultCode.InvalidCurrency, IngressInput.Currency);
        if (command.FromAccount == 0) command.FromAccount = funding;
        else if (command.FromAccount != funding) return new(ResultCode.NotAFundingAccount, IngressInput.FromAccount);
        if (command.Amount > maxDepositAmount) return new(ResultCode.DepositLimitExceeded, IngressInput.Amount);
        return IngressRefusal.None;
    }
}

/// <summary>
/// What a result code is over HTTP (docs/api.md's table). TCP sends the code itself in the result; this is the one
/// place that turns it into a status.
/// </summary>
public static class ResultStatus
{
    public static int HttpStatusOf(ResultCode code) => code switch
    {
        ResultCode.Ok => 200,
        ResultCode.InvalidCommand or ResultCode.InvalidAmount or ResultCode.InvalidCurrency or ResultCode.IdempotencyKeyRequired
            or ResultCode.SameAccount or ResultCode.InvalidHoldTimeout or ResultCode.InvalidProfile or ResultCode.InvalidPaymentNote => 400,
        ResultCode.NotAccountOwner or ResultCode.AdminRequired => 403,
        ResultCode.AccountNotFound or ResultCode.PaymentNotFound => 404,
        ResultCode.EmailTaken or (>= ResultCode.ExistsWithDifferentType and <= ResultCode.ExistsWithDifferentArgument) => 409,
        ResultCode.TooManyAccounts or ResultCode.TooManyPayments or ResultCode.TooManyHolds => 503,
        _ => 422,
    };

    /// <summary>The input a ledger result code is about, when it is about one (for <c>field</c> in an HTTP error).</summary>
    public static IngressInput InputOf(ResultCode code) => code switch
    {
        ResultCode.InvalidAmount or ResultCode.DepositLimitExceeded or ResultCode.ExistsWithDifferentAmount => IngressInput.Amount,
        ResultCode.InvalidCurrency or ResultCode.ExistsWithDifferentCurrency => IngressInput.Currency,
        ResultCode.IdempotencyKeyRequired => IngressInput.IdempotencyKey,
        ResultCode.InvalidHoldTimeout => IngressInput.HoldTimeout,
        // Others (accounts, payments, business rejections) are about the state, or about an input the route names.
        _ => IngressInput.None,
    };
}
