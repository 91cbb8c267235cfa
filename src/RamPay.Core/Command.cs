using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace RamPay.Core;

/// <summary>
/// The kind of a command. Persisted in the journal: values are frozen, only ever appended to.
/// </summary>
public enum CommandType : byte
{
    None = 0,
    OpenAccount = 1,
    Deposit = 2,
    /// <summary>
    /// A single-phase payment. May carry a <see cref="PaymentNote"/> as its attachment; the note is not compared by
    /// idempotency (see <see cref="Ledger.Apply(in Command, ReadOnlySpan{byte}, out CommandResult)"/>).
    /// </summary>
    Transfer = 3,
    /// <summary>A hold (the first phase of a two-phase payment). May carry a <see cref="PaymentNote"/>, as Transfer does.</summary>
    Authorize = 4,
    Capture = 5,
    Void = 6,
    Refund = 7,
    Freeze = 8,
    Unfreeze = 9,
    /// <summary>A system clock tick: expires holds and idempotency keys by journaled time. Carries no key.</summary>
    Tick = 10,
    /// <summary>
    /// Registers a user and opens their wallet, atomically. The profile (email, name, password hash) travels as the
    /// command's attachment (<see cref="UserProfile"/>); Flags = <see cref="UserRole"/>, Currency = the wallet's,
    /// Argument = <see cref="UserProfile.Digest"/> so that a key reused for another profile is a conflict.
    /// </summary>
    RegisterUser = 11,
    /// <summary>
    /// An admin resolves a payment held for review: Argument = <see cref="ReviewDecisions.Approve"/> (the funds move, or an
    /// authorization becomes open) or <see cref="ReviewDecisions.Decline"/> (the hold is released). PaymentId = the payment.
    /// Only once: a payment no longer held is <see cref="ResultCode.PaymentNotHeld"/>.
    /// </summary>
    Review = 12,
    /// <summary>
    /// A system command (no key, like Tick) that puts fraud settings in force: thresholds, rules and the model by its
    /// SHA-256, as the attachment (RamPay.Fraud.FraudSettings encoding). The host journals one at start when its
    /// configuration differs from the ledger's, so replay decides every payment as the live run did.
    /// </summary>
    ConfigureFraud = 13,
    /// <summary>
    /// A system command (no key, like Tick) that moves the ledger to a newer version of its rules from this point of the
    /// journal on: Argument = the rules version, Amount = its parameter (version 2: the idempotency key budget, the most
    /// keys remembered, on disk included). The engine journals one when it starts on a ledger older than its rules (a new
    /// data directory included), so a journal written under older rules replays under them up to this record. A version
    /// not above the ledger's is <c>invalid_command</c>; one above what this RamPay knows stops the writer (a journal from
    /// a newer RamPay). See docs/architecture.md, "Rules versions".
    /// </summary>
    UpgradeRules = 14,
    /// <summary>
    /// An admin defines a cashback rule (Argument = 0) or changes one (Argument = its id); the terms travel as the
    /// attachment (<see cref="RewardRuleTerms"/>), Amount = <see cref="RewardRuleTerms.Digest"/> of it so that a key reused
    /// for other terms is a conflict. A change takes effect from this command's journaled time; payments made before it
    /// keep the terms that were in force then. Result Id = the rule id, SecondaryId = its version number. Rewards.md.
    /// </summary>
    DefineRewardRule = 15,
    /// <summary>An admin ends a cashback rule (Argument = its id) from this command's journaled time on.</summary>
    EndRewardRule = 16,
    /// <summary>
    /// The system pays the cashback of one rule (Argument = rule id) for one source payment (PaymentId), from the rewards
    /// funding account of the payment's currency to the payer. At most once per (payment, rule), for ever: a second is
    /// <see cref="ResultCode.RewardExists"/>. Result Id = the reward id, SecondaryId = the payout payment (0 if none).
    /// </summary>
    IssueReward = 17,
    /// <summary>
    /// The system brings the reward of (PaymentId, Argument = rule id) in line with the source payment's refunds: the
    /// cumulative reversal is floor(reward × refunded / captured); what the payer cannot pay now is recorded as owed.
    /// Result Id = the reversal payment (0 when nothing moved), SecondaryId = the reward id.
    /// </summary>
    ReverseReward = 18,
    /// <summary>Opens the rewards funding account of a currency (a system wallet, owner 0); Result Id = the account; rewards_account_exists (Id = it) when open.</summary>
    OpenRewardsAccount = 19,
}

/// <summary>The decision a <see cref="CommandType.Review"/> carries in its Argument. Persisted: values frozen.</summary>
public static class ReviewDecisions
{
    public const long Approve = 1;
    public const long Decline = 2;
}

/// <summary>
/// One command as it sits in a ring slot and in a journal record's payload: fixed size, blittable,
/// no references. The layout is frozen by golden tests (<see cref="CommandCodec"/>): a change here is
/// a change of journal format version.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 8)]
public struct Command
{
    public const int Size = 80;

    /// <summary>Which operation.</summary>
    public CommandType Type;
    /// <summary>
    /// OpenAccount: the <see cref="AccountFlags"/> of the new account. RegisterUser: the <see cref="UserRole"/>.
    /// Money-moving commands: <see cref="CommandFlags"/>.
    /// </summary>
    public byte Flags;
    /// <summary>ISO 4217 code packed by <see cref="Currency"/>.</summary>
    public Currency Currency;
    private readonly int _reserved;
    /// <summary>Unix time in milliseconds given when the command was accepted; journaled, the only clock the ledger reads.</summary>
    public long TimestampMs;
    /// <summary>Who sent it: scopes the idempotency key (a user id, or a system client id).</summary>
    public long ClientId;
    /// <summary>The client's idempotency key, hashed to 128 bits at ingress (see <see cref="IdempotencyKey"/>).</summary>
    public IdempotencyKey Key;
    /// <summary>Debit side: the paying account (Transfer, Authorize, Deposit's funding account), or the subject of OpenAccount result / Freeze / Unfreeze.</summary>
    public long FromAccount;
    /// <summary>Credit side: the receiving account.</summary>
    public long ToAccount;
    /// <summary>For Capture, Void, Refund: the payment acted on.</summary>
    public long PaymentId;
    /// <summary>Minor units. Capture: 0 means "the whole authorized amount".</summary>
    public long Amount;
    /// <summary>Authorize: hold timeout in ms (0 = the ledger's default). OpenAccount: the owner (user id).</summary>
    public long Argument;

    public static unsafe void AssertLayout()
    {
        Invariant.Check(sizeof(Command) == Size, "Command must be exactly 80 bytes");
    }
}

/// <summary>Flags of the money-moving commands (Deposit, Transfer, Authorize, Capture, Void, Refund). Persisted: values frozen.</summary>
public static class CommandFlags
{
    /// <summary>
    /// The command acts for the user <see cref="Command.ClientId"/>, who must own the account it touches:
    /// Transfer and Authorize the paying account, Deposit the receiving one, Capture and Void either side of the
    /// authorization, Refund the side that was paid. Otherwise <see cref="ResultCode.NotAccountOwner"/>. Ingress sets
    /// it on every user's command; an admin's and the system's commands go without it.
    /// </summary>
    public const byte OwnerOnly = 1;
    public const byte Known = OwnerOnly;
}

/// <summary>What the business logic wrote back into the slot for one command.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct CommandResult
{
    public ResultCode Code;
    /// <summary>True when this is the stored result of an earlier command with the same idempotency key.</summary>
    public bool Replayed;
    /// <summary>The id the command produced or acted on: account id (OpenAccount), payment id (Transfer, Deposit, Authorize, Capture, Void), refund id (Refund), user id (RegisterUser).</summary>
    public long Id;
    /// <summary>A second id where a command makes two things: the wallet account of RegisterUser. Otherwise 0.</summary>
    public long SecondaryId;

    public readonly bool IsOk => Code == ResultCode.Ok;
    public override readonly string ToString() => $"{ResultCodes.Name(Code)} id={Id}{(Replayed ? " (replayed)" : "")}";
}

/// <summary>A 128-bit idempotency key: the SHA-256 of the client's key string, truncated. Zero means "no key".</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct IdempotencyKey(ulong Hi, ulong Lo)
{
    public const int MaxKeyLength = 255;
    public bool IsEmpty => Hi == 0 && Lo == 0;

    /// <summary>Hashes a client's key (1..255 characters). Deterministic across machines and runs.</summary>
    public static IdempotencyKey FromString(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length == 0 || key.Length > MaxKeyLength)
            throw new ArgumentException($"idempotency key must be 1..{MaxKeyLength} characters", nameof(key));
        Span<byte> utf8 = stackalloc byte[MaxKeyLength * 3];
        int n = System.Text.Encoding.UTF8.GetBytes(key, utf8);
        Span<byte> hash = stackalloc byte[32];
        System.Security.Cryptography.SHA256.HashData(utf8[..n], hash);
        ulong hi = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(hash);
        ulong lo = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]);
        if (hi == 0 && lo == 0) lo = 1; // zero is reserved for "no key"
        return new IdempotencyKey(hi, lo);
    }

    public override string ToString() => $"{Hi:x16}{Lo:x16}";
}

/// <summary>
/// An ISO 4217 alphabetic code packed into 16 bits (three letters A-Z, base 26, plus one).
/// Zero means "none".
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct Currency(ushort Code)
{
    public static readonly Currency None = default;
    public static readonly Currency USD = Parse("USD");
    public static readonly Currency EUR = Parse("EUR");
    public static readonly Currency GBP = Parse("GBP");

    public bool IsNone => Code == 0;
    /// <summary>The largest packed code: "ZZZ".</summary>
    public const ushort MaxCode = 26 * 26 * 26;
    /// <summary>A packed three-letter code (a raw value from the journal or the wire may be neither none nor valid).</summary>
    public bool IsValid => Code >= 1 && Code <= MaxCode;

    public static bool TryParse(ReadOnlySpan<char> s, out Currency currency)
    {
        currency = default;
        if (s.Length != 3) return false;
        int v = 0;
        foreach (char c in s)
        {
            if (c < 'A' || c > 'Z') return false;
            v = v * 26 + (c - 'A');
        }
        currency = new Currency((ushort)(v + 1));
        return true;
    }

    public static Currency Parse(string s) =>
        TryParse(s, out var c) ? c : throw new FormatException($"'{s}' is not a three-letter upper-case currency code");

    public override string ToString()
    {
        if (Code == 0) return "";
        if (Code > MaxCode) return "#" + Code.ToString(System.Globalization.CultureInfo.InvariantCulture);
        int v = Code - 1;
        Span<char> chars = stackalloc char[3];
        chars[2] = (char)('A' + v % 26); v /= 26;
        chars[1] = (char)('A' + v % 26); v /= 26;
        chars[0] = (char)('A' + v);
        return new string(chars);
    }
}

/// <summary>Assertions that stay on in Release builds: a broken invariant is a bug, and the journal makes a crash safe.</summary>
public static class Invariant
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Check([System.Diagnostics.CodeAnalysis.DoesNotReturnIf(false)] bool condition, string message)
    {
        if (!condition) Fail(message);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public static void Fail(string message) => throw new InvariantViolationException(message);
}

public sealed class InvariantViolationException(string message) : Exception("invariant violated: " + message);
