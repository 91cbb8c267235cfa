namespace RamPay.Core;

/// <summary>
/// Every outcome of a command. Persisted (idempotency table, snapshots): values are frozen, only appended.
/// Business rejections are results, not exceptions; exceptions are for broken invariants.
/// </summary>
public enum ResultCode : byte
{
    Ok = 0,
    // Input the ledger refuses.
    InvalidCommand = 1,
    InvalidAmount = 2,
    InvalidCurrency = 3,
    IdempotencyKeyRequired = 4,
    SameAccount = 5,
    InvalidHoldTimeout = 6,
    // Accounts.
    AccountNotFound = 10,
    AccountFrozen = 11,
    CurrencyMismatch = 12,
    InsufficientFunds = 13,
    NotAFundingAccount = 14,
    Overflow = 15,
    NotAccountOwner = 16,
    /// <summary>Ingress only (never the ledger): a deposit above the host's configured maximum, refused before it is journaled.</summary>
    DepositLimitExceeded = 17,
    /// <summary>A Transfer or Authorize whose attachment is not a valid, non-empty <see cref="PaymentNote"/>.</summary>
    InvalidPaymentNote = 18,
    /// <summary>Fraud scoring declined the payment (a rule or the model's score; the payment is kept as Declined with its reasons).</summary>
    FraudSuspected = 19,
    // Payments.
    PaymentNotFound = 20,
    PaymentNotAuthorized = 21,
    HoldExpired = 22,
    AmountExceedsAuthorized = 23,
    AmountExceedsCaptured = 24,
    PaymentNotCaptured = 25,
    /// <summary>A review of a payment that is not held for review (never was, or was reviewed or expired already).</summary>
    PaymentNotHeld = 26,
    // Capacity.
    TooManyAccounts = 30,
    TooManyPayments = 31,
    TooManyHolds = 32,
    // Idempotency: the key was used before for a different command.
    ExistsWithDifferentType = 40,
    ExistsWithDifferentFromAccount = 41,
    ExistsWithDifferentToAccount = 42,
    ExistsWithDifferentPaymentId = 43,
    ExistsWithDifferentAmount = 44,
    ExistsWithDifferentCurrency = 45,
    ExistsWithDifferentFlags = 46,
    ExistsWithDifferentArgument = 47,
    // Users.
    EmailTaken = 50,
    InvalidProfile = 51,
    /// <summary>A command only an admin (or the system) may send came on a user's behalf (a Review with the OwnerOnly flag).</summary>
    AdminRequired = 52,
    // Rewards (docs/rewards.md).
    /// <summary>The (source payment, rule) pair already has a reward: never a second one. Id = the reward.</summary>
    RewardExists = 60,
    /// <summary>The payment earns nothing under the rule (not settled, rule not in force at its time, same user, below the minimum, capped...).</summary>
    RewardNotEligible = 61,
    /// <summary>The reward is recorded as skipped, with its reason: the rewards account could not pay. No money moved. Id = the reward.</summary>
    RewardSkipped = 62,
    RewardRuleNotFound = 63,
    InvalidRewardRule = 64,
    RewardNotFound = 65,
    RewardRuleEnded = 66,
    TooManyRewardRules = 67,
    /// <summary>The currency's rewards funding account is open already (Id = it).</summary>
    RewardsAccountExists = 68,
}

public static class ResultCodes
{
    /// <summary>The snake_case name used on the wire and in docs, e.g. <c>insufficient_funds</c>.</summary>
    public static string Name(ResultCode code) => code switch
    {
        ResultCode.Ok => "ok",
        ResultCode.InvalidCommand => "invalid_command",
        ResultCode.InvalidAmount => "invalid_amount",
        ResultCode.InvalidCurrency => "invalid_currency",
        ResultCode.IdempotencyKeyRequired => "idempotency_key_required",
        ResultCode.SameAccount => "same_account",
        ResultCode.InvalidHoldTimeout => "invalid_hold_timeout",
        ResultCode.AccountNotFound => "account_not_found",
        ResultCode.AccountFrozen => "account_frozen",
        ResultCode.CurrencyMismatch => "currency_mismatch",
        ResultCode.InsufficientFunds => "insufficient_funds",
        ResultCode.NotAFundingAccount => "not_a_funding_account",
        ResultCode.Overflow => "overflow",
        ResultCode.NotAccountOwner => "not_account_owner",
        ResultCode.DepositLimitExceeded => "deposit_limit_exceeded",
        ResultCode.InvalidPaymentNote => "invalid_payment_note",
        ResultCode.FraudSuspected => "fraud_suspected",
        ResultCode.PaymentNotFound => "payment_not_found",
        ResultCode.PaymentNotAuthorized => "payment_not_authorized",
        ResultCode.HoldExpired => "hold_expired",
        ResultCode.AmountExceedsAuthorized => "amount_exceeds_authorized",
        ResultCode.AmountExceedsCaptured => "amount_exceeds_captured",
        ResultCode.PaymentNotCaptured => "payment_not_captured",
        ResultCode.PaymentNotHeld => "payment_not_held",
        ResultCode.TooManyAccounts => "too_many_accounts",
        ResultCode.TooManyPayments => "too_many_payments",
        ResultCode.TooManyHolds => "too_many_holds",
        ResultCode.ExistsWithDifferentType => "exists_with_different_type",
        ResultCode.ExistsWithDifferentFromAccount => "exists_with_different_from_account",
        ResultCode.ExistsWithDifferentToAccount => "exists_with_different_to_account",
        ResultCode.ExistsWithDifferentPaymentId => "exists_with_different_payment_id",
        ResultCode.ExistsWithDifferentAmount => "exists_with_different_amount",
        ResultCode.ExistsWithDifferentCurrency => "exists_with_different_currency",
        ResultCode.ExistsWithDifferentFlags => "exists_with_different_flags",
        ResultCode.ExistsWithDifferentArgument => "exists_with_different_argument",
        ResultCode.EmailTaken => "email_taken",
        ResultCode.InvalidProfile => "invalid_profile",
        ResultCode.AdminRequired => "admin_required",
        ResultCode.RewardExists => "reward_exists",
        ResultCode.RewardNotEligible => "reward_not_eligible",
        ResultCode.RewardSkipped => "reward_skipped",
        ResultCode.RewardRuleNotFound => "reward_rule_not_found",
        ResultCode.InvalidRewardRule => "invalid_reward_rule",
        ResultCode.RewardNotFound => "reward_not_found",
        ResultCode.RewardRuleEnded => "reward_rule_ended",
        ResultCode.TooManyRewardRules => "too_many_reward_rules",
        ResultCode.RewardsAccountExists => "rewards_account_exists",
        _ => "unknown_" + ((byte)code).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>A sentence for people: what went wrong and what to do.</summary>
    public static string Message(ResultCode code) => code switch
    {
        ResultCode.Ok => "The command was applied.",
        ResultCode.InvalidCommand => "The command type is not one the ledger knows.",
        ResultCode.InvalidAmount => "The amount must be a positive whole number of minor units.",
        ResultCode.InvalidCurrency => "The currency must be a three-letter ISO 4217 code.",
        ResultCode.IdempotencyKeyRequired => "Every client command needs an idempotency key.",
        ResultCode.SameAccount => "The paying and the receiving account must differ.",
        ResultCode.InvalidHoldTimeout => "The hold timeout must be 0 (the default) or a positive number of milliseconds no larger than the configured maximum.",
        ResultCode.AccountNotFound => "No account has that id.",
        ResultCode.AccountFrozen => "The account is frozen: it can neither send nor receive.",
        ResultCode.CurrencyMismatch => "The currency does not match the account's currency.",
        ResultCode.InsufficientFunds => "The paying account's available balance is lower than the amount.",
        ResultCode.NotAFundingAccount => "Deposits must come from a funding account.",
        ResultCode.Overflow => "The amount would overflow an account balance.",
        ResultCode.NotAccountOwner => "The account, or the payment's account, belongs to another user.",
        ResultCode.DepositLimitExceeded => "The deposit is larger than the server's configured maximum deposit.",
        ResultCode.InvalidPaymentNote => "The payment's note is malformed: description 1..500 characters with no control characters, webhook_url an absolute http or https URL of at most 2,000 printable ASCII characters.",
        ResultCode.FraudSuspected => "The payment was declined by fraud screening; it is recorded as declined with its score and reasons.",
        ResultCode.PaymentNotFound => "No payment has that id.",
        ResultCode.PaymentNotAuthorized => "The payment is not an open authorization (already captured, voided or expired, or single-phase).",
        ResultCode.HoldExpired => "The authorization's hold expired; its funds were released.",
        ResultCode.AmountExceedsAuthorized => "The capture amount is larger than the authorized amount.",
        ResultCode.AmountExceedsCaptured => "Refunds would add up to more than was captured.",
        ResultCode.PaymentNotCaptured => "Only captured (settled) payments can be refunded.",
        ResultCode.PaymentNotHeld => "The payment is not held for review (it never was, or it was reviewed or expired already).",
        ResultCode.TooManyAccounts => "The ledger holds its configured maximum of accounts.",
        ResultCode.TooManyPayments => "The ledger holds its configured maximum of payments.",
        ResultCode.TooManyHolds => "The ledger holds its configured maximum of open authorizations.",
        ResultCode.ExistsWithDifferentType => "The idempotency key was used before for a different kind of command.",
        ResultCode.ExistsWithDifferentFromAccount => "The idempotency key was used before with a different from_account.",
        ResultCode.ExistsWithDifferentToAccount => "The idempotency key was used before with a different to_account.",
        ResultCode.ExistsWithDifferentPaymentId => "The idempotency key was used before with a different payment id.",
        ResultCode.ExistsWithDifferentAmount => "The idempotency key was used before with a different amount.",
        ResultCode.ExistsWithDifferentCurrency => "The idempotency key was used before with a different currency.",
        ResultCode.ExistsWithDifferentFlags => "The idempotency key was used before with different flags.",
        ResultCode.ExistsWithDifferentArgument => "The idempotency key was used before with a different hold timeout, owner or user profile.",
        ResultCode.EmailTaken => "A user with that email is already registered.",
        ResultCode.InvalidProfile => "The user profile is malformed: email 3..254 characters with an @, name 1..200, password hash 1..512.",
        ResultCode.AdminRequired => "Only an admin may do this.",
        ResultCode.RewardExists => "This payment already has a reward under this rule; a payment earns at most one per rule, for ever.",
        ResultCode.RewardNotEligible => "The payment earns nothing under this rule (not settled, the rule was not in force at its time, same user on both sides, another currency or payee, below the minimum, or capped).",
        ResultCode.RewardSkipped => "The reward was recorded as skipped (its reason is kept): the rewards funding account could not pay it. No money moved.",
        ResultCode.RewardRuleNotFound => "No reward rule has that id.",
        ResultCode.InvalidRewardRule => "The reward rule is malformed: name 1..100 characters, percent_bps 1..10000, a currency, amounts not negative, ends_at after starts_at, at most 64 distinct payee accounts.",
        ResultCode.RewardNotFound => "That payment has no reward under that rule.",
        ResultCode.RewardRuleEnded => "The reward rule has ended; define a new one.",
        ResultCode.TooManyRewardRules => "The ledger holds its maximum of reward rules.",
        ResultCode.RewardsAccountExists => "The currency's rewards funding account is open already.",
        _ => "Unknown result code.",
    };
}
