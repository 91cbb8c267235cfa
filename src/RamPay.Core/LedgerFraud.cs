using RamPay.Fraud;

namespace RamPay.Core;

/// <summary>
/// Fraud scoring inside the ledger: the writer scores each Transfer and Authorize after its checks pass and before any
/// money moves (docs/fraud.md). Below the review threshold it proceeds; at or above it the payment is
/// <see cref="PaymentStatus.HeldForReview"/> with its funds held; at or above the decline threshold, or when a declining
/// rule fires, it is kept as <see cref="PaymentStatus.Declined"/> and the command's result is
/// <see cref="ResultCode.FraudSuspected"/>. An admin's <see cref="CommandType.Review"/> resolves a held payment once.
/// Deposits (top-ups from a funding account) and refunds are not scored.
/// </summary>
public sealed partial class Ledger
{
    /// <summary>The fraud settings in force (disabled until a ConfigureFraud command says otherwise).</summary>
    public FraudSettings FraudSettings => _fraud.Settings;
    /// <summary>The model scoring payments, or null.</summary>
    public FraudModel? FraudModel => _fraud.Model;
    public bool FraudEnabled => _fraud.Enabled;
    /// <summary>Accounts with fraud features (they paid or were paid in a scored payment).</summary>
    public int FraudFeatureAccounts => _fraud.Features.TouchedAccounts;

    /// <summary>The payment's fraud score, model version and reasons, or null: no such payment, or it was not scored.</summary>
    public PaymentFraud? GetFraudScore(long paymentId)
    {
        if (!PaymentExists(paymentId)) return null;
        var p = _payments.ReadAny(paymentId);
        return p.FraudModel == 0 ? null : new PaymentFraud(p.FraudScore, _fraud.ModelVersion(p.FraudModel), p.FraudReasons);
    }

    // ---- rules version 4: scoring in a stage of its own (FraudStage.cs, docs/fraud.md "Scoring as a stage") ----

    /// <summary>The rules from which the fraud stage keeps the features and scores every attempted payment, and the writer only applies its verdict.</summary>
    public const int FraudStageRulesVersion = 4;
    private readonly FraudStage _stage;
    // The current command's staged verdict (set at the start of Apply, read by Transfer): a field, so no signature changes.
    private StagedFraud _staged;

    /// <summary>The fraud stage of this ledger (rules version 4). The engine's stage thread runs it ahead of the writer.</summary>
    public FraudStage FraudStage => _stage;
    internal FraudState FraudScoring => _fraud;
    /// <summary>Commands this ledger staged itself under rules version 4 (replay, tools; the engine's stage leaves none). Not persisted.</summary>
    public long FraudStagedInline => _stagedInline;
    private long _stagedInline;

    private void TakeStaged(in Command command, in StagedFraud fraud)
    {
        if (fraud.State == StagedFraudState.None && _stage.Active)
        {
            _stage.Process(command, out _staged);
            _stagedInline++;
        }
        else
        {
            _staged = fraud;
        }
        // The stage's ownership rule checked where it is applied: it counted the attempt exactly when the ledger's own state
        // says both accounts exist and the sender may pay from the account (docs/fraud.md, "Who is counted").
        if (_stage.Active && command.Type is CommandType.Transfer or CommandType.Authorize)
            Invariant.Check(_staged.Counted == _stage.WouldCount(command), "the fraud stage counted an attempt the ledger's ownership rule does not (or the reverse)");
    }

    /// <summary>An existing account's owner (never changes once opened), for the fraud stage: on its thread only for ids it knows the writer has opened.</summary>
    internal long OwnerOf(long accountId) => _accounts[accountId - 1].Owner;

    /// <summary>Whether the payment being made (a transfer or authorization whose checks passed) is scored.</summary>
    private bool WillScore()
    {
        if (!_stage.Active) return _fraud.Enabled;
        // The stage scored every attempt that could get this far (two accounts it keeps, a positive amount) while scoring was
        // on: the settings it used are the ones in force here, since a configuration is a sync point.
        bool scored = _staged.State == StagedFraudState.Scored;
        Invariant.Check(scored == _fraud.Enabled, "under rules version 4 a payment reached the ledger's decision without the stage's verdict, or with one while scoring is off");
        return scored;
    }

    private FraudVerdict Verdict(in Command c, long now) => _stage.Active ? _staged.Verdict : ScorePayment(c, now);

    /// <summary>
    /// The upgrade to rules version 4 (<paramref name="c"/>: UpgradeRules; its FromAccount = the highest account id the stage
    /// keeps, 0 = this ledger's MaxAccounts). A bound above what this ledger can hold cannot be replayed as written: it stops.
    /// </summary>
    private void StartFraudStage(in Command c) => _stage.Start(_clockMs, _accounts.AsSpan(0, _accountCount), (int)FraudStageBound(c));

    /// <summary>Checked before the upgrade changes anything: a journal whose bound this ledger cannot hold stops the writer.</summary>
    private long FraudStageBound(in Command c)
    {
        long bound = c.FromAccount == 0 ? Options.MaxAccounts : c.FromAccount;
        if (bound < _accountCount || bound > Options.MaxAccounts)
            throw new InvalidOperationException($"the upgrade to rules version 4 has the fraud stage keep accounts up to {bound}; this ledger holds {_accountCount} and may hold {Options.MaxAccounts} (MaxAccounts): replay with the MaxAccounts the journal was written with");
        return bound;
    }

    private CommandResult ConfigureFraud(ReadOnlySpan<byte> attachment) =>
        _fraud.TryConfigure(attachment, _accountCount) ? new CommandResult { Code = ResultCode.Ok } : Fail(ResultCode.InvalidCommand);

    /// <summary>Scores a payment whose checks all passed, and records it into both accounts' features.</summary>
    private FraudVerdict ScorePayment(in Command c, long now)
    {
        ref var from = ref _accounts[c.FromAccount - 1];
        ref var to = ref _accounts[c.ToAccount - 1];
        // Account ids are at most MaxAccounts, an int.
        return _fraud.Score(new PaymentFacts((int)c.FromAccount, (int)c.ToAccount, c.Amount, now, from.CreatedAtMs, to.CreatedAtMs, from.Available));
    }

    /// <summary>Stores the verdict on the new payment; for a decline, finishes it (no money moves) and returns the result.</summary>
    private CommandResult? RecordVerdict(ref Payment p, in FraudVerdict verdict, PaymentNote? note)
    {
        p.FraudScore = verdict.Score;
        p.FraudReasons = verdict.Reasons;
        p.FraudModel = verdict.ModelIndex;
        if (verdict.Decision != FraudDecision.Decline) return null;
        p.Status = PaymentStatus.Declined;
        if (note is not null) _notes.Add(p.Id, note);
        return new CommandResult { Code = ResultCode.FraudSuspected, Id = p.Id };
    }

    /// <summary>
    /// Resolves a held payment, once. Approve: a transfer's held funds are posted (as a capture would), an
    /// authorization becomes an open authorization with its own expiry. Decline: the hold is released. Refused on a
    /// user's behalf (the OwnerOnly flag): reviewing is for admins, whom the host lets send it.
    /// </summary>
    private CommandResult Review(in Command c)
    {
        if ((c.Flags & ~CommandFlags.Known) != 0 || c.Argument is not (ReviewDecisions.Approve or ReviewDecisions.Decline)) return Fail(ResultCode.InvalidCommand);
        if ((c.Flags & CommandFlags.OwnerOnly) != 0) return Fail(ResultCode.AdminRequired);
        if (!_payments.Contains(c.PaymentId)) return Fail(ResultCode.PaymentNotFound);
        ref var p = ref _payments[c.PaymentId];
        if (p.Status != PaymentStatus.HeldForReview) return Fail(ResultCode.PaymentNotHeld);
        if (c.Argument == ReviewDecisions.Decline)
        {
            ReleaseHold(ref p, PaymentStatus.Declined);
            p.FraudReasons |= FraudReasons.ReviewDeclined;
            return Ok(p.Id);
        }
        if (p.Kind == PaymentKind.Authorization)
        {
            // The funds stay held, now as an ordinary authorization in the same place of the hold queue (same expiry).
            p.Status = PaymentStatus.Authorized;
        }
        else
        {
            if (_accounts[p.FromAccount - 1].Frozen || _accounts[p.ToAccount - 1].Frozen) return Fail(ResultCode.AccountFrozen);
            ReleaseHold(ref p, PaymentStatus.Posted);
            MovePosted(p.FromAccount, p.ToAccount, p.Amount);
            p.Captured = p.Amount;
        }
        p.FraudReasons |= FraudReasons.ReviewApproved;
        return Ok(p.Id);
    }
}
