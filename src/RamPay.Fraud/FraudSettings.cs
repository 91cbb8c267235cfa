using System.Buffers.Binary;

namespace RamPay.Fraud;

/// <summary>
/// What the writer does with a score: thresholds, rules and the model to use. Journaled (a ConfigureFraud command
/// carries <see cref="Encode"/>'s bytes) and kept in snapshots, so every replay decides as the live run did; the
/// host fills it from its configuration and journals a change when its configuration changes.
/// <para>
/// Encoding, little-endian, version 1: u8 version | u8 enabled | i32 review threshold ppm | i32 decline threshold ppm |
/// i64 amount threshold | i32 max payments per day | i64 review timeout ms | 32 bytes model SHA-256 |
/// u16 blocked accounts, then i64 each (ascending, distinct, positive).
/// </para>
/// </summary>
public sealed record FraudSettings
{
    public const byte EncodingVersion = 1;
    public const int MaxBlockedAccounts = 256;
    /// <summary>A threshold of this many parts per million (above 1.0) is never reached: that decision is off.</summary>
    public const int ThresholdOff = 1_000_001;
    private const int FixedBytes = 1 + 1 + 4 + 4 + 8 + 4 + 8 + 32 + 2;
    public const int MaxEncodedBytes = FixedBytes + 8 * MaxBlockedAccounts;

    public static readonly FraudSettings Disabled = new() { Enabled = false };

    public bool Enabled { get; init; }
    /// <summary>A score at or above this (parts per million of probability) holds the payment for review.</summary>
    public int ReviewThresholdPpm { get; init; } = 500_000;
    /// <summary>A score at or above this declines the payment.</summary>
    public int DeclineThresholdPpm { get; init; } = 900_000;
    /// <summary>Rule: a payment of at least this many minor units is held for review (0 = off).</summary>
    public long AmountThreshold { get; init; }
    /// <summary>Rule: a sender's payment beyond this many in 24 hours is declined (0 = off).</summary>
    public int MaxPaymentsPerDay { get; init; }
    /// <summary>A payment held for review and not reviewed within this long expires: its hold is released, nothing moves.</summary>
    public long ReviewTimeoutMs { get; init; } = 7L * 24 * 3600 * 1000;
    /// <summary>Rule: a payment from or to one of these accounts is declined. Ascending, distinct.</summary>
    public long[] BlockedAccounts { get; init; } = [];
    /// <summary>The SHA-256 of the model file (32 bytes; all zero = none, allowed only when disabled).</summary>
    public byte[] ModelSha256 { get; init; } = new byte[32];

    public static int ToPpm(double threshold)
    {
        if (!(threshold >= 0)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "a threshold is a probability in [0, 1], or above 1 for off");
        return threshold > 1 ? ThresholdOff : (int)Math.Round(threshold * 1_000_000, MidpointRounding.ToEven);
    }

    /// <summary>Null when the settings are consistent, or what is wrong with them.</summary>
    public string? Problem()
    {
        if (ReviewThresholdPpm is < 0 or > ThresholdOff) return "the review threshold must be within 0..1 (or above 1: off)";
        if (DeclineThresholdPpm is < 0 or > ThresholdOff) return "the decline threshold must be within 0..1 (or above 1: off)";
        if (DeclineThresholdPpm < ReviewThresholdPpm) return "the decline threshold must not be below the review threshold";
        if (AmountThreshold < 0) return "the amount threshold must be 0 (off) or positive";
        if (MaxPaymentsPerDay < 0) return "the maximum payments per day must be 0 (off) or positive";
        if (ReviewTimeoutMs < 1 || ReviewTimeoutMs > 100L * 365 * 24 * 3600 * 1000) return "the review timeout must be 1 ms..100 years";
        if (BlockedAccounts.Length > MaxBlockedAccounts) return $"at most {MaxBlockedAccounts} blocked accounts";
        for (int i = 0; i < BlockedAccounts.Length; i++)
            if (BlockedAccounts[i] < 1 || (i > 0 && BlockedAccounts[i] <= BlockedAccounts[i - 1])) return "blocked accounts must be positive ids, ascending and distinct";
        if (ModelSha256.Length != 32) return "the model hash must be 32 bytes";
        if (Enabled && ModelSha256.AsSpan().IndexOfAnyExcept((byte)0) < 0) return "scoring is enabled but no model is named";
        return null;
    }

    public byte[] Encode()
    {
        if (Problem() is { } problem) throw new InvalidOperationException("fraud settings: " + problem);
        var bytes = new byte[FixedBytes + 8 * BlockedAccounts.Length];
        var s = bytes.AsSpan();
        s[0] = EncodingVersion;
        s[1] = Enabled ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt32LittleEndian(s[2..], ReviewThresholdPpm);
        BinaryPrimitives.WriteInt32LittleEndian(s[6..], DeclineThresholdPpm);
        BinaryPrimitives.WriteInt64LittleEndian(s[10..], AmountThreshold);
        BinaryPrimitives.WriteInt32LittleEndian(s[18..], MaxPaymentsPerDay);
        BinaryPrimitives.WriteInt64LittleEndian(s[22..], ReviewTimeoutMs);
        ModelSha256.CopyTo(s[30..]);
        BinaryPrimitives.WriteUInt16LittleEndian(s[62..], (ushort)BlockedAccounts.Length);
        for (int i = 0; i < BlockedAccounts.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(s[(64 + 8 * i)..], BlockedAccounts[i]);
        return bytes;
    }

    /// <summary>Decodes and checks; null when the bytes are not a consistent encoding.</summary>
    public static FraudSettings? TryDecode(ReadOnlySpan<byte> s)
    {
        if (s.Length < FixedBytes || s[0] != EncodingVersion || s[1] > 1) return null;
        int blocked = BinaryPrimitives.ReadUInt16LittleEndian(s[62..]);
        if (blocked > MaxBlockedAccounts || s.Length != FixedBytes + 8 * blocked) return null;
        var list = new long[blocked];
        for (int i = 0; i < blocked; i++) list[i] = BinaryPrimitives.ReadInt64LittleEndian(s[(64 + 8 * i)..]);
        var settings = new FraudSettings
        {
            Enabled = s[1] == 1,
            ReviewThresholdPpm = BinaryPrimitives.ReadInt32LittleEndian(s[2..]),
            DeclineThresholdPpm = BinaryPrimitives.ReadInt32LittleEndian(s[6..]),
            AmountThreshold = BinaryPrimitives.ReadInt64LittleEndian(s[10..]),
            MaxPaymentsPerDay = BinaryPrimitives.ReadInt32LittleEndian(s[18..]),
            ReviewTimeoutMs = BinaryPrimitives.ReadInt64LittleEndian(s[22..]),
            ModelSha256 = s.Slice(30, 32).ToArray(),
            BlockedAccounts = list,
        };
        return settings.Problem() is null ? settings : null;
    }

    /// <summary>Same settings: the same encoding (records compare arrays by reference, so this is the comparison to use).</summary>
    public bool SameAs(FraudSettings other) => Encode().AsSpan().SequenceEqual(other.Encode());

    public override string ToString() =>
        $"enabled={Enabled} review={ReviewThresholdPpm / 1e6:0.######} decline={DeclineThresholdPpm / 1e6:0.######} amount_threshold={AmountThreshold} " +
        $"max_per_day={MaxPaymentsPerDay} review_timeout_ms={ReviewTimeoutMs} blocked={BlockedAccounts.Length} model={Convert.ToHexStringLower(ModelSha256)[..16]}";
}

/// <summary>Why a payment was held or declined, and what review did. Persisted with each payment: values frozen.</summary>
[Flags]
public enum FraudReasons : ushort
{
    None = 0,
    /// <summary>The model's score reached the review threshold.</summary>
    ModelReview = 1,
    /// <summary>The model's score reached the decline threshold.</summary>
    ModelDecline = 2,
    /// <summary>Rule: the amount is at or above the configured threshold (holds for review).</summary>
    AmountOverThreshold = 4,
    /// <summary>Rule: the sender has reached the configured maximum of payments in 24 hours (declines).</summary>
    DailyLimitExceeded = 8,
    /// <summary>Rule: the sender or the receiver is a blocked account (declines).</summary>
    BlockedAccount = 16,
    /// <summary>An admin approved the held payment.</summary>
    ReviewApproved = 32,
    /// <summary>An admin declined the held payment.</summary>
    ReviewDeclined = 64,
    /// <summary>Nobody reviewed the held payment in time: its hold was released.</summary>
    ReviewExpired = 128,
}

public enum FraudDecision : byte
{
    Allow = 0,
    Review = 1,
    Decline = 2,
}

public static class FraudReasonNames
{
    private static readonly (FraudReasons Reason, string Name)[] Table =
    [
        (FraudReasons.ModelReview, "model_review"),
        (FraudReasons.ModelDecline, "model_decline"),
        (FraudReasons.AmountOverThreshold, "amount_over_threshold"),
        (FraudReasons.DailyLimitExceeded, "daily_limit_exceeded"),
        (FraudReasons.BlockedAccount, "blocked_account"),
        (FraudReasons.ReviewApproved, "review_approved"),
        (FraudReasons.ReviewDeclined, "review_declined"),
        (FraudReasons.ReviewExpired, "review_expired"),
    ];

    /// <summary>The snake_case names of the reasons set, in a fixed order.</summary>
    public static IReadOnlyList<string> Names(FraudReasons reasons)
    {
        var names = new List<string>();
        foreach (var (reason, name) in Table) if ((reasons & reason) != 0) names.Add(name);
        return names;
    }

    public static IEnumerable<(FraudReasons Reason, string Name)> All => Table;
}

/// <summary>The outcome of scoring one payment.</summary>
public readonly record struct FraudVerdict(float Score, FraudReasons Reasons, FraudDecision Decision, ushort ModelIndex);
