namespace RamPay.Core;

/// <summary>Account behaviour. Persisted: values frozen.</summary>
[Flags]
public enum AccountFlags : byte
{
    None = 0,
    /// <summary>A wallet: posted plus pending debits may never exceed posted credits.</summary>
    DebitsMustNotExceedCredits = 1,
    /// <summary>A platform account that deposits come from (it may go negative).</summary>
    Funding = 2,
}

/// <summary>An account of the double-entry ledger (TigerBeetle's vocabulary). Ids start at 1.</summary>
public struct Account
{
    public long Id;
    public long Owner;
    public long CreatedAtMs;
    public long DebitsPosted;
    public long CreditsPosted;
    public long DebitsPending;
    public long CreditsPending;
    /// <summary>Newest payment touching this account (0 = none): the head of its history chain.</summary>
    public long LastPaymentId;
    public Currency Currency;
    public AccountFlags Flags;
    public bool Frozen;

    /// <summary>Posted credits less posted debits.</summary>
    public readonly long Posted => CreditsPosted - DebitsPosted;
    /// <summary>Pending credits less pending debits.</summary>
    public readonly long Pending => CreditsPending - DebitsPending;
    /// <summary>What the account can still send: posted balance less its outgoing holds.</summary>
    public readonly long Available => CreditsPosted - DebitsPosted - DebitsPending;
    public readonly bool IsWallet => (Flags & AccountFlags.DebitsMustNotExceedCredits) != 0;
}

/// <summary>Persisted: values frozen.</summary>
public enum PaymentKind : byte
{
    Transfer = 1,
    Deposit = 2,
    Authorization = 3,
    Refund = 4,
    /// <summary>Cashback paid from a rewards funding account to the payer of a source payment (ParentId). docs/rewards.md.</summary>
    Reward = 5,
    /// <summary>Cashback taken back from the payer after the source payment (ParentId) was refunded.</summary>
    RewardReversal = 6,
}

/// <summary>Persisted: values frozen.</summary>
public enum PaymentStatus : byte
{
    /// <summary>Single-phase transfer, deposit or refund: settled when created.</summary>
    Posted = 1,
    /// <summary>Two-phase: funds held, waiting for capture or void.</summary>
    Authorized = 2,
    Captured = 3,
    Voided = 4,
    /// <summary>An authorization's hold, or a held-for-review payment's, lapsed: its funds were released, nothing moved.</summary>
    Expired = 5,
    /// <summary>Fraud scoring held it: its funds are held (pending, like an authorization's) until an admin reviews it or the review times out.</summary>
    HeldForReview = 6,
    /// <summary>Fraud scoring (or a reviewer) declined it: no money moved. Kept so that its score and reasons can be read.</summary>
    Declined = 7,
}

/// <summary>One movement of money (or hold of it) between two accounts. Ids start at 1.</summary>
public struct Payment
{
    public long Id;
    public long FromAccount;
    public long ToAccount;
    /// <summary>Transferred amount; for an authorization, the amount held.</summary>
    public long Amount;
    /// <summary>Settled amount: equals Amount for single-phase kinds, the captured amount for an authorization.</summary>
    public long Captured;
    public long Refunded;
    public long CreatedAtMs;
    /// <summary>Authorizations: when the hold lapses (journaled time).</summary>
    public long ExpiresAtMs;
    /// <summary>Refunds: the payment refunded.</summary>
    public long ParentId;
    /// <summary>The previous payment in FromAccount's history (0 = none).</summary>
    public long PrevForFrom;
    /// <summary>The previous payment in ToAccount's history (0 = none).</summary>
    public long PrevForTo;
    public Currency Currency;
    public PaymentKind Kind;
    public PaymentStatus Status;
    /// <summary>Fraud: the model's score, a probability in [0, 1]; meaningful when <see cref="FraudModel"/> is not 0.</summary>
    public float FraudScore;
    /// <summary>Fraud: why it was held or declined, and what review did (none when it was not scored or passed).</summary>
    public RamPay.Fraud.FraudReasons FraudReasons;
    /// <summary>Fraud: which model scored it, an index into the ledger's model versions (0 = not scored). See <see cref="Ledger.GetFraudScore"/>.</summary>
    public ushort FraudModel;
    /// <summary>Position in the hold queue while Authorized or HeldForReview, -1 otherwise. Derived state: not persisted.</summary>
    internal int HoldIndex;
}

/// <summary>A payment's fraud score as the writer recorded it: the score, the version of the model that gave it, and the reasons.</summary>
public readonly record struct PaymentFraud(float Score, string ModelVersion, RamPay.Fraud.FraudReasons Reasons)
{
    /// <summary>The reasons' snake_case names (e.g. <c>model_review</c>, <c>blocked_account</c>).</summary>
    public IReadOnlyList<string> ReasonNames => RamPay.Fraud.FraudReasonNames.Names(Reasons);
}

/// <summary>Limits and defaults of one ledger. Every structure is bounded by one of these.</summary>
public sealed record LedgerOptions
{
    public int MaxAccounts { get; init; } = 1 << 20;
    public long MaxPayments { get; init; } = 1L << 26;
    /// <summary>Payment slots allocated up front, so that the apply path does not allocate until it is passed.</summary>
    public long InitialPaymentCapacity { get; init; } = 1 << 16;
    public int MaxOpenHolds { get; init; } = 1 << 20;
    public long DefaultHoldTimeoutMs { get; init; } = 7L * 24 * 3600 * 1000;
    /// <summary>The longest hold a command may ask for; longer is <c>invalid_hold_timeout</c>.</summary>
    public long MaxHoldTimeoutMs { get; init; } = 31L * 24 * 3600 * 1000;
    /// <summary>How long an idempotency key is remembered, in journaled time (Stripe keeps keys 24 h).</summary>
    public long IdempotencyWindowMs { get; init; } = 24L * 3600 * 1000;
    /// <summary>At most this many keys are remembered; past it the oldest is forgotten early (counted in <see cref="Ledger.IdempotencyEvictedEarly"/>).</summary>
    public int IdempotencyMaxKeys { get; init; } = 1 << 20;
    /// <summary>
    /// Where a ConfigureFraud command's model hash is looked up (the embedded default model, by default). A host adds
    /// the models it keeps; the ledger never reads a file.
    /// </summary>
    public RamPay.Fraud.IFraudModelCatalog FraudModels { get; init; } = RamPay.Fraud.FraudModelCatalog.WithDefault();
    /// <summary>
    /// Under rules version 2, where keys that leave memory are kept (and the hot budget). Null: every key stays in memory
    /// (tools, tests, the sinks' replica). Which entries are in memory is not logical state: the same journal gives the same
    /// state hash with or without it.
    /// </summary>
    public ColdKeyTier? ColdKeys { get; init; }
    /// <summary>
    /// Under rules version 3, where payments that leave memory are kept (and how many stay). Null: every payment stays in
    /// memory. Not logical state: the same journal gives the same state hash with or without it (docs/storage.md, "Payments").
    /// </summary>
    public ColdPaymentTier? ColdPayments { get; init; }

    public void Validate()
    {
        if (MaxAccounts < 1) throw new ArgumentException("MaxAccounts must be at least 1");
        if (MaxPayments < 1) throw new ArgumentException("MaxPayments must be at least 1");
        if (InitialPaymentCapacity < 0 || InitialPaymentCapacity > MaxPayments) throw new ArgumentException("InitialPaymentCapacity must be within 0..MaxPayments");
        if (MaxOpenHolds < 1) throw new ArgumentException("MaxOpenHolds must be at least 1");
        if (DefaultHoldTimeoutMs < 1) throw new ArgumentException("DefaultHoldTimeoutMs must be positive");
        if (MaxHoldTimeoutMs < DefaultHoldTimeoutMs || MaxHoldTimeoutMs > 100L * 365 * 24 * 3600 * 1000) throw new ArgumentException("MaxHoldTimeoutMs must be within DefaultHoldTimeoutMs..100 years");
        if (IdempotencyWindowMs < 1) throw new ArgumentException("IdempotencyWindowMs must be positive");
        if (IdempotencyMaxKeys < 1) throw new ArgumentException("IdempotencyMaxKeys must be at least 1");
        ColdKeys?.Validate();
        ColdPayments?.Validate();
    }
}

/// <summary>The names of payments' kinds and statuses wherever they leave the process: the HTTP API, PostgreSQL rows, Kafka events.</summary>
public static class PaymentNames
{
    public static string Kind(PaymentKind kind) => kind switch
    {
        PaymentKind.Transfer => "transfer",
        PaymentKind.Deposit => "deposit",
        PaymentKind.Authorization => "authorization",
        PaymentKind.Refund => "refund",
        PaymentKind.Reward => "reward",
        PaymentKind.RewardReversal => "reward_reversal",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown payment kind"),
    };

    public static string Status(PaymentStatus status) => status switch
    {
        PaymentStatus.Posted => "posted",
        PaymentStatus.Authorized => "authorized",
        PaymentStatus.Captured => "captured",
        PaymentStatus.Voided => "voided",
        PaymentStatus.Expired => "expired",
        PaymentStatus.HeldForReview => "held_for_review",
        PaymentStatus.Declined => "declined",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "unknown payment status"),
    };
}
