namespace RamPay.Fraud;

/// <summary>
/// The rules beside the model, and how reasons become a decision. One implementation for the writer
/// (<see cref="FraudState.Score"/>) and for the rules-only baseline the trainer reports.
/// </summary>
public static class FraudRules
{
    /// <summary>Reasons that decline a payment.</summary>
    public const FraudReasons Declining = FraudReasons.BlockedAccount | FraudReasons.DailyLimitExceeded | FraudReasons.ModelDecline;
    /// <summary>Reasons that hold a payment for review (when none declines it).</summary>
    public const FraudReasons Holding = FraudReasons.AmountOverThreshold | FraudReasons.ModelReview;

    /// <summary>
    /// The rules that fire for a payment, given its features as they stood before it: a blocked account on either side,
    /// the sender's payments in 24 hours already at the maximum (so this one would exceed it), an amount at or above
    /// the threshold.
    /// </summary>
    public static FraudReasons Evaluate(FraudSettings settings, in PaymentFacts p, ReadOnlySpan<double> features)
    {
        var reasons = FraudReasons.None;
        var blocked = settings.BlockedAccounts;
        if (blocked.Length > 0 && (Array.BinarySearch(blocked, (long)p.From) >= 0 || Array.BinarySearch(blocked, (long)p.To) >= 0))
            reasons |= FraudReasons.BlockedAccount;
        if (settings.MaxPaymentsPerDay > 0 && features[Features.SenderCount24h] >= settings.MaxPaymentsPerDay) reasons |= FraudReasons.DailyLimitExceeded;
        if (settings.AmountThreshold > 0 && p.Amount >= settings.AmountThreshold) reasons |= FraudReasons.AmountOverThreshold;
        return reasons;
    }

    public static FraudDecision Decide(FraudReasons reasons) =>
        (reasons & Declining) != 0 ? FraudDecision.Decline : (reasons & Holding) != 0 ? FraudDecision.Review : FraudDecision.Allow;
}
