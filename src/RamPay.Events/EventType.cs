namespace RamPay.Events;

/// <summary>
/// The kinds of event (docs/events.md), as the Kafka sink, the event log, the events API and webhooks carry them. The name is the event's <c>type</c> field and
/// header; the numbers are this code's only and never leave the process.
/// </summary>
public enum EventType : byte
{
    PaymentCreated = 1,
    PaymentApproved = 2,
    PaymentFailed = 3,
    PaymentAuthorized = 4,
    PaymentCaptured = 5,
    PaymentVoided = 6,
    PaymentRefunded = 7,
    AnomalyDetected = 8,
    AccountFrozen = 9,
    /// <summary>An addition to the list: the inverse of <see cref="AccountFrozen"/>, so a consumer's view of the flag can follow both ways.</summary>
    AccountUnfrozen = 10,
    UserRegistered = 11,
    /// <summary>Cashback paid to a payer for a source payment (docs/rewards.md).</summary>
    RewardIssued = 12,
    /// <summary>Cashback taken back after the source payment was refunded.</summary>
    RewardReversed = 13,
}

public static class EventTypes
{
    /// <summary>Every event type, in declaration order.</summary>
    public static readonly IReadOnlyList<EventType> All = Enum.GetValues<EventType>();

    /// <summary>The type's name on the wire (the <c>type</c> field and header), e.g. <c>PaymentCreated</c>.</summary>
    public static string Name(EventType type) => type switch
    {
        EventType.PaymentCreated => "PaymentCreated",
        EventType.PaymentApproved => "PaymentApproved",
        EventType.PaymentFailed => "PaymentFailed",
        EventType.PaymentAuthorized => "PaymentAuthorized",
        EventType.PaymentCaptured => "PaymentCaptured",
        EventType.PaymentVoided => "PaymentVoided",
        EventType.PaymentRefunded => "PaymentRefunded",
        EventType.AnomalyDetected => "AnomalyDetected",
        EventType.AccountFrozen => "AccountFrozen",
        EventType.AccountUnfrozen => "AccountUnfrozen",
        EventType.UserRegistered => "UserRegistered",
        EventType.RewardIssued => "RewardIssued",
        EventType.RewardReversed => "RewardReversed",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not an event type"),
    };

    /// <summary>
    /// The schema version of the type's payload (the <c>version</c> field and header). Additive changes (a new field)
    /// keep it; a breaking change (a field removed, renamed or re-typed, a meaning changed) bumps it. See docs/events.md.
    /// </summary>
    public static int SchemaVersion(EventType type) => type switch
    {
        >= EventType.PaymentCreated and <= EventType.RewardReversed => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not an event type"),
    };
}
