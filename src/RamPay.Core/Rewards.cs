using System.Buffers.Binary;

namespace RamPay.Core;

/// <summary>
/// The terms of a cashback rule, as a <see cref="CommandType.DefineRewardRule"/> command's attachment. Amounts in minor
/// units; 0 means "no limit" for <see cref="MaxPerPayment"/> and <see cref="MaxPerUserPerMonth"/>, "from the start" for
/// <see cref="StartsAtMs"/> and "no end" for <see cref="EndsAtMs"/>. An empty <see cref="PayeeAccounts"/> means every payee.
/// <para>
/// Encoding, version 1: one byte <see cref="EncodingVersion"/>, the name (u16 length + UTF-8), percent_bps (i32),
/// currency (u16), min amount, max per payment, max per user per month, starts at, ends at (i64 each), the payee count
/// (u16) and each payee account (i64). All little-endian; nothing may follow.
/// </para>
/// </summary>
public sealed record RewardRuleTerms(
    string Name, int PercentBps, Currency Currency, long MinAmount, long MaxPerPayment, long MaxPerUserPerMonth,
    long StartsAtMs, long EndsAtMs, long[] PayeeAccounts)
{
    public const byte EncodingVersion = 1;
    public const int MaxNameLength = 100;
    public const int MaxPercentBps = 10_000;
    public const int MaxPayees = 64;

    public bool IsValid
    {
        get
        {
            if (Name.Length is 0 or > MaxNameLength) return false;
            foreach (char ch in Name) if (char.IsControl(ch) || char.IsSurrogate(ch)) return false;
            if (PercentBps is < 1 or > MaxPercentBps || !Currency.IsValid) return false;
            if (MinAmount < 0 || MaxPerPayment < 0 || MaxPerUserPerMonth < 0 || StartsAtMs < 0 || EndsAtMs < 0) return false;
            if (EndsAtMs != 0 && EndsAtMs <= StartsAtMs) return false;
            if (PayeeAccounts.Length > MaxPayees) return false;
            for (int i = 0; i < PayeeAccounts.Length; i++)
            {
                if (PayeeAccounts[i] < 1) return false;
                for (int j = 0; j < i; j++) if (PayeeAccounts[j] == PayeeAccounts[i]) return false;
            }
            return true;
        }
    }

    /// <summary>True when the payment time lies in [starts_at, ends_at).</summary>
    public bool CoversTime(long timeMs) => timeMs >= StartsAtMs && (EndsAtMs == 0 || timeMs < EndsAtMs);

    public bool CoversPayee(long account)
    {
        if (PayeeAccounts.Length == 0) return true;
        foreach (long a in PayeeAccounts) if (a == account) return true;
        return false;
    }

    /// <summary>Throws <see cref="ArgumentException"/> for a name with no UTF-8 form.</summary>
    public byte[] Encode()
    {
        var bytes = new byte[1 + LengthPrefixedUtf8.Size(Name) + 4 + 2 + 5 * 8 + 2 + 8 * PayeeAccounts.Length];
        var s = bytes.AsSpan();
        s[0] = EncodingVersion;
        int o = 1 + LengthPrefixedUtf8.Write(s[1..], Name);
        BinaryPrimitives.WriteInt32LittleEndian(s[o..], PercentBps); o += 4;
        BinaryPrimitives.WriteUInt16LittleEndian(s[o..], Currency.Code); o += 2;
        foreach (long v in (ReadOnlySpan<long>)[MinAmount, MaxPerPayment, MaxPerUserPerMonth, StartsAtMs, EndsAtMs])
        {
            BinaryPrimitives.WriteInt64LittleEndian(s[o..], v); o += 8;
        }
        BinaryPrimitives.WriteUInt16LittleEndian(s[o..], (ushort)PayeeAccounts.Length); o += 2;
        foreach (long a in PayeeAccounts) { BinaryPrimitives.WriteInt64LittleEndian(s[o..], a); o += 8; }
        Invariant.Check(o == bytes.Length, "reward rule encoding size");
        return bytes;
    }

    /// <summary>The terms, or null when the bytes are not a whole version-1 encoding (validity is checked apart: <see cref="IsValid"/>).</summary>
    public static RewardRuleTerms? TryDecode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 1 || bytes[0] != EncodingVersion) return null;
        bytes = bytes[1..];
        if (!LengthPrefixedUtf8.TryRead(ref bytes, out string name)) return null;
        if (bytes.Length < 4 + 2 + 40 + 2) return null;
        int bps = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        var currency = new Currency(BinaryPrimitives.ReadUInt16LittleEndian(bytes[4..]));
        Span<long> v = stackalloc long[5];
        for (int i = 0; i < 5; i++) v[i] = BinaryPrimitives.ReadInt64LittleEndian(bytes[(6 + 8 * i)..]);
        int payees = BinaryPrimitives.ReadUInt16LittleEndian(bytes[46..]);
        bytes = bytes[48..];
        if (payees > MaxPayees || bytes.Length != 8 * payees) return null;
        var list = new long[payees];
        for (int i = 0; i < payees; i++) list[i] = BinaryPrimitives.ReadInt64LittleEndian(bytes[(8 * i)..]);
        return new RewardRuleTerms(name, bps, currency, v[0], v[1], v[2], v[3], v[4], list);
    }

    /// <summary>
    /// A positive 63-bit digest of the encoding (SHA-256 prefix), carried in the command's Amount so that the idempotency
    /// table, which compares the fixed fields only, sees a key reused for other terms as a conflict.
    /// </summary>
    public static long Digest(ReadOnlySpan<byte> encoded)
    {
        Span<byte> hash = stackalloc byte[32];
        System.Security.Cryptography.SHA256.HashData(encoded, hash);
        long d = (long)(BinaryPrimitives.ReadUInt64LittleEndian(hash) & long.MaxValue);
        return d == 0 ? 1 : d;
    }

    public override string ToString() => $"{Name} {PercentBps}bps {Currency}";

    public bool Equals(RewardRuleTerms? other) =>
        other is not null && Name == other.Name && PercentBps == other.PercentBps && Currency == other.Currency
        && MinAmount == other.MinAmount && MaxPerPayment == other.MaxPerPayment && MaxPerUserPerMonth == other.MaxPerUserPerMonth
        && StartsAtMs == other.StartsAtMs && EndsAtMs == other.EndsAtMs && PayeeAccounts.AsSpan().SequenceEqual(other.PayeeAccounts);

    public override int GetHashCode() => HashCode.Combine(Name, PercentBps, Currency, MinAmount, StartsAtMs, EndsAtMs);
}

/// <summary>One version of a rule: the terms in force from <see cref="EffectiveFromMs"/> (journaled time) until the next version.</summary>
public sealed record RewardRuleVersion(int Number, long EffectiveFromMs, RewardRuleTerms Terms, bool Ended);

/// <summary>A cashback rule and its history: every change is a new version, so a payment is judged by the terms of its own time.</summary>
public sealed class RewardRule(int id, long createdAtMs)
{
    internal readonly List<RewardRuleVersion> VersionList = [];
    public int Id { get; } = id;
    public long CreatedAtMs { get; } = createdAtMs;
    public IReadOnlyList<RewardRuleVersion> Versions => VersionList;
    public RewardRuleVersion Current => VersionList[^1];
    public bool Ended => Current.Ended;

    /// <summary>The version in force at <paramref name="timeMs"/>: the newest one that took effect at or before it, if it was not an end; else null.</summary>
    public RewardRuleVersion? VersionAt(long timeMs)
    {
        for (int i = VersionList.Count - 1; i >= 0; i--)
        {
            var v = VersionList[i];
            if (v.EffectiveFromMs <= timeMs) return v.Ended ? null : v;
        }
        return null;
    }
}

/// <summary>Persisted: values frozen.</summary>
public enum RewardStatus : byte
{
    /// <summary>Paid (its payout may be 0 when the source payment was wholly refunded before it was issued).</summary>
    Issued = 1,
    /// <summary>Recorded but not paid: the rewards account could not pay (reason in <see cref="Reward.SkipReason"/>). A later IssueReward may pay it.</summary>
    Skipped = 2,
}

/// <summary>
/// One reward: the cashback of one rule for one source payment. Ids from 1. The reversal bookkeeping: <see cref="ReversalDue"/>
/// is the cumulative reversal the refunds call for, floor(Amount × refunded / captured); <see cref="Recovered"/> is what has
/// come back (not paid out at issue because of earlier refunds, plus reversal payments); the difference is owed.
/// </summary>
public struct Reward
{
    public long Id;
    public long SourcePaymentId;
    public int RuleId;
    /// <summary>The rule version in force at the source payment's time.</summary>
    public int RuleVersion;
    /// <summary>The payer's account, credited with the cashback.</summary>
    public long Account;
    /// <summary>The payer account's owner (the user whose monthly cap counts it).</summary>
    public long UserId;
    public Currency Currency;
    public RewardStatus Status;
    /// <summary>Why a skipped reward was not paid (insufficient_funds, account_frozen, account_not_found...).</summary>
    public ResultCode SkipReason;
    /// <summary>The cashback: floor(captured × percent_bps / 10,000), capped per payment and per user and month.</summary>
    public long Amount;
    /// <summary>What the payout payment paid (Amount less what refunds before the issue had already cancelled).</summary>
    public long PaidOut;
    public long ReversalDue;
    public long Recovered;
    /// <summary>Journaled time of the command that recorded (or last retried) it.</summary>
    public long IssuedAtMs;
    /// <summary>The payout payment (kind reward), 0 when nothing was paid.</summary>
    public long PayoutPaymentId;
    /// <summary>Derived, not persisted: the previous reward of the same source payment, and of the same account (0 = none).</summary>
    internal long PrevForSource, PrevForAccount;

    public readonly long Owed => ReversalDue - Recovered;
}

/// <summary>The names of reward statuses wherever they leave the process.</summary>
public static class RewardNames
{
    public static string Status(RewardStatus status) => status switch
    {
        RewardStatus.Issued => "issued",
        RewardStatus.Skipped => "skipped",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "unknown reward status"),
    };

    public static bool TryParseStatus(string s, out RewardStatus status)
    {
        status = s switch { "issued" => RewardStatus.Issued, "skipped" => RewardStatus.Skipped, _ => 0 };
        return status != 0;
    }
}
