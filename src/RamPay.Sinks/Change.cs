using RamPay.Core;

namespace RamPay.Sinks;

/// <summary>What a <see cref="Change"/> records.</summary>
public enum ChangeKind : byte
{
    /// <summary>A journaled command as the ledger applied it (every record gives one, rejections and ticks too).</summary>
    Command = 1,
    /// <summary>An authorization whose hold lapsed while the ledger applied the command of the same sequence (before it).</summary>
    HoldExpired = 2,
}

/// <summary>
/// One change of the ledger, as the <see cref="LedgerFollower"/> saw it while it re-applied the journal: the command
/// and its result, and the state right after it of everything the command touched. Sinks turn changes into rows and
/// events; they never read the ledger. A journal record gives one <see cref="ChangeKind.Command"/> change, preceded by
/// one <see cref="ChangeKind.HoldExpired"/> change per hold that lapsed as the ledger's clock reached the command.
/// <para>
/// The pair (<see cref="Sequence"/>, <see cref="Index"/>) is unique and increases along the stream: it is what an
/// event id is made of, so a consumer can tell a re-sent event from a new one.
/// </para>
/// </summary>
public struct Change
{
    /// <summary>The journal sequence of the command this change belongs to.</summary>
    public long Sequence;
    /// <summary>0, 1, 2... within <see cref="Sequence"/>: expirations first, the command's own change last.</summary>
    public int Index;
    public ChangeKind Kind;
    /// <summary>The command's journaled time (unix ms): the ledger's clock when the change happened.</summary>
    public long TimestampMs;
    /// <summary>The command as journaled (<see cref="CommandType.None"/> for a <see cref="ChangeKind.HoldExpired"/>).</summary>
    public Command Command;
    /// <summary>What the ledger answered. A <see cref="CommandResult.Replayed"/> result changed nothing.</summary>
    public CommandResult Result;
    /// <summary>
    /// The payment made or acted on, as it is after the change (Id 0 when none): the new payment of a Deposit,
    /// Transfer or Authorize; the authorization of a Capture or Void or of an expiry; the refund of a Refund.
    /// </summary>
    public Payment Payment;
    /// <summary>A Refund's refunded payment, after the change (its Refunded grew); otherwise Id 0.</summary>
    public Payment Parent;
    /// <summary>
    /// The first account touched, after the change (Id 0 when none): the payment's paying side; the account a
    /// Freeze, Unfreeze or OpenAccount names or opens; a new user's wallet.
    /// </summary>
    public Account From;
    /// <summary>The second account touched (the payment's receiving side), after the change; otherwise Id 0.</summary>
    public Account To;
    /// <summary>The user a successful RegisterUser made; otherwise null.</summary>
    public User? User;
    /// <summary>The note a new Transfer or Authorize payment carries; otherwise null.</summary>
    public PaymentNote? Note;

    /// <summary>The version of the fraud model that scored <see cref="Payment"/> (its score and reasons are on it); otherwise null.</summary>
    public string? FraudModelVersion;

    /// <summary>
    /// True when the ledger's state changed: a successful command that is not the replay of an earlier one, a payment
    /// declined by fraud screening (kept as <see cref="PaymentStatus.Declined"/>, its id in the result), or an expiry.
    /// </summary>
    public readonly bool ChangedState => Kind == ChangeKind.HoldExpired
        || (!Result.Replayed && Command.Type != CommandType.Tick
            && (Result.Code == ResultCode.Ok || (Result.Code == ResultCode.FraudSuspected && Result.Id != 0)));
}
