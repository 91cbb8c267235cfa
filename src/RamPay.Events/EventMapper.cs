using System.Globalization;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Events;

/// <summary>
/// One event a <see cref="Change"/> gives: its type, its ordinal among the change's events (the last part of its id),
/// the account it is keyed by, and a reason where the type has one. The payload is written from the change itself
/// (<see cref="EventEncoder"/>).
/// </summary>
public readonly record struct MappedEvent(EventType Type, int Ordinal, long KeyAccount, string? Reason);

/// <summary>
/// Which events a change gives (docs/events.md has the table). Pure: the same change always gives the same events,
/// so a batch re-sent after a failure carries the same event ids, keys and payloads.
/// </summary>
public static class EventMapper
{
    /// <summary>No change gives more events than this (a new payment: created, then approved, authorized or flagged).</summary>
    public const int MaxEventsPerChange = 2;

    // Short names for the fraud values of Core's persisted enums, as the mapper uses them.
    /// <summary><c>PaymentStatus.HeldForReview</c>: a Transfer or Authorize accepted but held until a review.</summary>
    internal const PaymentStatus HeldForReview = PaymentStatus.HeldForReview;
    /// <summary><c>ResultCode.FraudSuspected</c>: a payment refused by the fraud check.</summary>
    internal const ResultCode FraudSuspected = ResultCode.FraudSuspected;
    /// <summary><c>CommandType.Review</c>: the decision on a held payment.</summary>
    internal const CommandType Review = CommandType.Review;

    /// <summary>Reasons written into events, besides result code names (<see cref="ResultCodes.Name"/>).</summary>
    public static class Reasons
    {
        /// <summary>PaymentVoided: the hold lapsed (<see cref="ChangeKind.HoldExpired"/>).</summary>
        public const string Expired = "expired";
        /// <summary>PaymentVoided: a Void command released the hold.</summary>
        public const string Requested = "requested";
        /// <summary>AnomalyDetected: the fraud check let the payment through, held for a review.</summary>
        public const string HeldForReview = "held_for_review";
        /// <summary>PaymentFailed: a review turned down a held payment.</summary>
        public const string ReviewRejected = "review_rejected";

        /// <summary>AnomalyDetected and PaymentFailed of a payment the fraud check refused: <c>fraud_suspected</c>.</summary>
        public static string FraudSuspected => ResultCodeName(EventMapper.FraudSuspected);
    }

    /// <summary>
    /// Writes the events of <paramref name="change"/> into <paramref name="events"/> (at least
    /// <see cref="MaxEventsPerChange"/> long) and returns how many: 0 for what consumers need not hear about (a
    /// replayed result, a tick, an opened account, a rejected capture, void or refund, an idempotency conflict).
    /// </summary>
    public static int Map(in Change change, Span<MappedEvent> events)
    {
        if (events.Length < MaxEventsPerChange) throw new ArgumentException($"room for {MaxEventsPerChange} events is needed", nameof(events));
        if (change.Kind == ChangeKind.HoldExpired)
        {
            events[0] = new MappedEvent(EventType.PaymentVoided, 0, PaymentKey(change.Payment, change.Parent), Reasons.Expired);
            return 1;
        }
        Invariant.Check(change.Kind == ChangeKind.Command, "a change is a command or an expiry");
        if (change.Result.Replayed) return 0; // the first command's events were sent with it
        if (change.Result.Code != ResultCode.Ok) return MapRejection(change, events);

        ref readonly Payment payment = ref change.Payment;
        switch (change.Command.Type)
        {
            case CommandType.Tick:
            case CommandType.OpenAccount:
            case CommandType.ConfigureFraud:
            case CommandType.UpgradeRules:
                // A tick's expiries come as their own changes; an account's opening is not an event (a wallet's is
                // part of UserRegistered, docs/events.md); fraud settings are configuration, not an event.
                return 0;
            case CommandType.Deposit:
            case CommandType.Transfer:
            case CommandType.Authorize:
            {
                long key = PaymentKey(payment, change.Parent);
                events[0] = new MappedEvent(EventType.PaymentCreated, 0, key, null);
                events[1] = payment.Status == HeldForReview
                    ? new MappedEvent(EventType.AnomalyDetected, 1, key, Reasons.HeldForReview)
                    : new MappedEvent(change.Command.Type == CommandType.Authorize ? EventType.PaymentAuthorized : EventType.PaymentApproved, 1, key, null);
                return 2;
            }
            case CommandType.Capture:
                events[0] = new MappedEvent(EventType.PaymentCaptured, 0, PaymentKey(payment, change.Parent), null);
                return 1;
            case CommandType.Void:
                events[0] = new MappedEvent(EventType.PaymentVoided, 0, PaymentKey(payment, change.Parent), Reasons.Requested);
                return 1;
            case CommandType.Refund:
                // About the refunded payment (its refunded total grew), keyed as that payment is, so a payment's
                // events stay on one key from creation to its last refund.
                events[0] = new MappedEvent(EventType.PaymentRefunded, 0, PaymentKey(change.Parent, default), null);
                return 1;
            case CommandType.Freeze:
                events[0] = new MappedEvent(EventType.AccountFrozen, 0, change.From.Id, null);
                return 1;
            case CommandType.Unfreeze:
                events[0] = new MappedEvent(EventType.AccountUnfrozen, 0, change.From.Id, null);
                return 1;
            case CommandType.RegisterUser:
                events[0] = new MappedEvent(EventType.UserRegistered, 0, change.Result.SecondaryId, null);
                return 1;
            case Review:
                return MapReview(change, events);
            case CommandType.DefineRewardRule:
            case CommandType.EndRewardRule:
            case CommandType.OpenRewardsAccount:
                return 0; // configuration, like ConfigureFraud
            case CommandType.IssueReward:
            case CommandType.ReverseReward:
                // Only when money moved (a reward wholly cancelled by earlier refunds, or a reversal that found nothing to
                // take, moved none); keyed as the source payment is, so it follows that payment's events on its key.
                if (payment.Id == 0) return 0;
                events[0] = new MappedEvent(change.Command.Type == CommandType.IssueReward ? EventType.RewardIssued : EventType.RewardReversed, 0,
                    PaymentKey(change.Parent, default), null);
                return 1;
            default:
                // A command type that changed the ledger and that this mapper has never heard of: its events would
                // be missing, so stop the sink (a fatal sink error) rather than publish a feed with holes.
                Invariant.Fail($"the event mapper does not know what events command type {change.Command.Type} gives");
                return 0;
        }
    }

    private static int MapRejection(in Change change, Span<MappedEvent> events)
    {
        ref readonly Command command = ref change.Command;
        // Only an attempt at a new payment fails as a payment. A refused capture, void or refund leaves its payment as
        // it was (its caller has the result code); an idempotency conflict is the key's, not a payment attempt: the
        // command that first used the key has its own events.
        if (command.Type is not (CommandType.Deposit or CommandType.Transfer or CommandType.Authorize)) return 0;
        if (IsIdempotencyConflict(change.Result.Code)) return 0;
        long key = command.Type == CommandType.Deposit ? command.ToAccount : command.FromAccount;
        int n = 0;
        if (change.Result.Code == FraudSuspected) events[n++] = new MappedEvent(EventType.AnomalyDetected, 0, key, Reasons.FraudSuspected);
        events[n] = new MappedEvent(EventType.PaymentFailed, n, key, ResultCodeName(change.Result.Code));
        return n + 1;
    }

    /// <summary>
    /// A held payment's review: approved as what it was asked to be (a transfer posted, an authorization open), or
    /// declined (its hold released).
    /// </summary>
    private static int MapReview(in Change change, Span<MappedEvent> events)
    {
        ref readonly Payment payment = ref change.Payment;
        long key = PaymentKey(payment, change.Parent);
        events[0] = payment.Status switch
        {
            PaymentStatus.Posted => new MappedEvent(EventType.PaymentApproved, 0, key, null),
            PaymentStatus.Authorized => new MappedEvent(EventType.PaymentAuthorized, 0, key, null),
            _ => new MappedEvent(EventType.PaymentFailed, 0, key, Reasons.ReviewRejected),
        };
        return 1;
    }

    /// <summary>
    /// The key of a payment's events: the paying account, except for a deposit (paid by a platform funding account,
    /// which would put every deposit on one key) where it is the wallet credited; a refund is keyed as the payment it
    /// refunds (<paramref name="parent"/>), which is the account it pays back to.
    /// </summary>
    public static long PaymentKey(in Payment payment, in Payment parent) => payment.Kind switch
    {
        PaymentKind.Deposit => payment.ToAccount,
        PaymentKind.Refund when parent.Id != 0 => PaymentKey(parent, default),
        PaymentKind.Refund => payment.ToAccount, // the refunded payment's payer
        _ => payment.FromAccount,
    };

    internal static bool IsIdempotencyConflict(ResultCode code) =>
        code is >= ResultCode.ExistsWithDifferentType and <= ResultCode.ExistsWithDifferentArgument;

    internal static string ResultCodeName(ResultCode code) => ResultCodes.Name(code);

    /// <summary>The event id: <c>{sequence}-{index}-{ordinal}</c>, unique and stable; docs/events.md.</summary>
    public static string EventId(long sequence, int index, int ordinal) =>
        string.Create(CultureInfo.InvariantCulture, $"{sequence}-{index}-{ordinal}");
}
