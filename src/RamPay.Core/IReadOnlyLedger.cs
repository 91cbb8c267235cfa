namespace RamPay.Core;

/// <summary>What a query may see of the ledger: reads only, so a query can never change the state.</summary>
public interface IReadOnlyLedger
{
    int AccountCount { get; }
    long PaymentCount { get; }
    int OpenHoldCount { get; }
    long CommandsApplied { get; }
    long ClockMs { get; }
    bool AccountExists(long id);
    bool PaymentExists(long id);
    Account GetAccount(long id);
    Payment GetPayment(long id);
    /// <summary>The payment's description and webhook URL, or null when it has none (or there is no such payment).</summary>
    PaymentNote? GetPaymentNote(long paymentId);
    int History(long accountId, long beforeId, Span<long> into);
    /// <summary>The payment's fraud score, the version of the model that gave it and the reasons, or null when it was not scored.</summary>
    PaymentFraud? GetFraudScore(long paymentId);
    /// <summary>The fraud settings in force.</summary>
    RamPay.Fraud.FraudSettings FraudSettings { get; }
    int UserCount { get; }
    User? GetUser(long id);
    User? FindUserByEmail(string email);
    // Rewards (LedgerRewards.cs, docs/rewards.md).
    IReadOnlyList<RewardRule> RewardRules { get; }
    RewardRule? GetRewardRule(long id);
    long RewardCount { get; }
    Reward GetReward(long id);
    bool TryFindReward(long sourcePaymentId, long ruleId, out Reward reward);
    IReadOnlyList<Reward> RewardsOfPayment(long sourcePaymentId);
    int RewardsOfAccount(long accountId, long beforeId, Span<long> into);
    long RewardsAccount(Currency currency);
    IReadOnlyList<(Currency Currency, long Account)> RewardsAccounts { get; }
}
