using System.Runtime.CompilerServices;
using RamPay.Fraud;

namespace RamPay.Core;

/// <summary>What the fraud stage wrote into a command's slot (rules version 4).</summary>
public enum StagedFraudState : byte
{
    /// <summary>The stage has not seen the command: the ledger runs the stage itself (replay, tools, a ring without the stage).</summary>
    None = 0,
    /// <summary>Seen, nothing to score (not a payment, scoring off, before rules version 4, or ids the stage cannot keep).</summary>
    Passed = 1,
    /// <summary>Seen and scored: <see cref="StagedFraud.Verdict"/> is the decision the ledger applies.</summary>
    Scored = 2,
}

/// <summary>The fraud stage's output for one command: fixed size, no references, carried in the ring slot.</summary>
public struct StagedFraud
{
    public StagedFraudState State;
    /// <summary>The stage recorded the attempt (a Transfer or Authorize it counted): the ledger checks it against its own rule.</summary>
    public bool Counted;
    public FraudVerdict Verdict;
}

/// <summary>
/// The engine's side of the fraud stage's rare wait (FraudStageStep in the engine): publish the stage's progress through the
/// command before the current one and wait until the writer has applied it, so that the ledger's accounts are, for the stage,
/// exactly what the writer will see when it applies the current command. Null when the ledger stages a command itself
/// (it is then at the previous command already).
/// </summary>
public interface IFraudStageWriterWait
{
    void WaitForWriterBeforeCurrent();
}

/// <summary>
/// The fraud stage (rules version 4, docs/fraud.md "Scoring as a stage"): keeps the fraud features and scores every
/// attempted Transfer and Authorize in the order commands were sequenced, reading nothing of the ledger's state, so that
/// it can run on its own thread ahead of the writer. The writer then only applies the verdict. The same object runs
/// inline inside <see cref="Ledger.Apply(in Command, ReadOnlySpan{byte}, in KeyLookup, in PaymentLookup, in StagedFraud, out CommandResult)"/>
/// when a command reaches the ledger unstaged (replay, the followers, the tools), so both give the same scores.
/// <para>
/// Owned by its ledger; what it keeps (the feature windows in the ledger's <see cref="FraudState"/>, and
/// <see cref="AttemptAccounts"/>) is part of the ledger's state and snapshots. Threading: the stage thread alone calls
/// <see cref="Process"/>; the writer touches the stage's state only at <em>sync points</em>, while the stage waits for it:
/// the commands for which <see cref="NeedsSync"/> is true (the upgrade point, which seeds it, and a fraud configuration,
/// which the writer puts in force) and the writer's own snapshots.
/// </para>
/// </summary>
public sealed class FraudStage
{
    private readonly Ledger _ledger;
    private AttemptAccounts _accounts;
    private long _clockMs;
    // The highest account id the stage keeps: journaled with the upgrade point (not this ledger's MaxAccounts, a setting),
    // so that whether an attempt naming an unknown id is recorded never depends on the configuration of whoever replays.
    private int _accountBound;
    // Ownership (docs/fraud.md, "Who is counted"). An attempt is counted only when both accounts exist and the ledger would
    // accept the caller as the paying account's owner. Accounts are never removed and an owner never changes once opened, so
    // for an id at most _accountsKnown (a count read from the ledger at a point where the writer had applied every command
    // before the stage's) the answer is the one the writer will find. A higher id needs a fresh count only if an account may
    // have been opened since (_opensSince): then the stage waits for the writer to reach the previous command. A cache, not
    // state: it changes when the stage waits, never what it decides.
    private long _accountsKnown;
    private bool _opensSince;
    private long _ownerWaits;

    internal FraudStage(Ledger ledger, int maxAccounts)
    {
        _ledger = ledger;
        _accounts = new AttemptAccounts(maxAccounts);
    }

    /// <summary>True from the upgrade to rules version 4 on: the stage scores, and the writer scores no more.</summary>
    public bool Active { get; private set; }
    /// <summary>Accounts the stage has seen or was seeded with.</summary>
    public int SeenAccounts => _accounts.SeenAccounts;
    /// <summary>Times the stage waited for the writer to learn of newly opened accounts (racy read; tests, benchmarks).</summary>
    public long OwnerWaits => Volatile.Read(ref _ownerWaits);

    /// <summary>
    /// A command after which the stage must wait for the writer to have applied it before it goes on: its outcome changes
    /// what the stage does (rules moved to 4 seed it; a new fraud configuration is put in force by the writer).
    /// </summary>
    public static bool NeedsSync(in Command c) => c.Type is CommandType.UpgradeRules or CommandType.ConfigureFraud;

    /// <summary>Stages one command inline: the ledger is at the previous command (replay, the followers, the tools).</summary>
    public void Process(in Command c, out StagedFraud staged) => Process(c, null, out staged);

    /// <summary>
    /// Stages one command, in sequence order: the clock moves as the ledger's does; a deposit credits its receiver's
    /// estimated balance; a Transfer or Authorize naming two different existing accounts the stage can keep, with a
    /// positive amount, sent by the paying account's owner (or without the OwnerOnly flag), is scored (when scoring is on)
    /// and recorded whether or not the ledger will accept it for other reasons (funds, currency, frozen, a retried key).
    /// <paramref name="writer"/> is the engine's stage (null: inline). Allocation-free except for the first account of
    /// each 1,024 the stage sees.
    /// </summary>
    public void Process(in Command c, IFraudStageWriterWait? writer, out StagedFraud staged)
    {
        staged = default;
        staged.State = StagedFraudState.Passed;
        if (!Active) return;
        long now = c.TimestampMs > _clockMs ? c.TimestampMs : _clockMs;
        _clockMs = now;
        switch (c.Type)
        {
            case CommandType.Deposit:
                if (c.Amount > 0 && Keeps(c.FromAccount) && Keeps(c.ToAccount) && OwnerAccepted(c, c.ToAccount, writer))
                {
                    ref var to = ref _accounts.See((int)c.ToAccount, now);
                    to.Balance = AttemptAccounts.AddSaturating(to.Balance, c.Amount);
                }
                return;
            case CommandType.Transfer or CommandType.Authorize:
                if (!Eligible(c) || !OwnerAccepted(c, c.FromAccount, writer)) return;
                Attempt(c, now, ref staged);
                return;
            case CommandType.OpenAccount or CommandType.RegisterUser or CommandType.OpenRewardsAccount:
                _opensSince = true; // the commands that may open an account (the ledger checks each counted attempt: WouldCount)
                return;
            default:
                return;
        }
    }

    private bool Keeps(long accountId) => accountId >= 1 && accountId <= _accountBound;

    private bool Eligible(in Command c) => c.Amount > 0 && c.FromAccount != c.ToAccount && Keeps(c.FromAccount) && Keeps(c.ToAccount);

    /// <summary>
    /// Both accounts exist at this command and the ledger would accept the sender as <paramref name="ownerAccount"/>'s owner
    /// (the rule of <c>Ledger.Transfer</c>: with the OwnerOnly flag the client must own it). A non-owner's attempt is refused by
    /// the ledger and so must not move another account's counters (a caller could otherwise get a victim's payments held).
    /// </summary>
    private bool OwnerAccepted(in Command c, long ownerAccount, IFraudStageWriterWait? writer)
    {
        long highest = Math.Max(c.FromAccount, c.ToAccount);
        if (writer is null)
        {
            _accountsKnown = _ledger.AccountCount; // inline: the ledger is at the previous command
            _opensSince = false;
        }
        else if (highest > _accountsKnown && _opensSince)
        {
            Refresh(writer);
        }
        if (highest > _accountsKnown) return false; // the ledger answers account_not_found
        return (c.Flags & CommandFlags.OwnerOnly) == 0 || _ledger.OwnerOf(ownerAccount) == c.ClientId;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Refresh(IFraudStageWriterWait writer)
    {
        writer.WaitForWriterBeforeCurrent();
        _accountsKnown = _ledger.AccountCount;
        _opensSince = false;
        Volatile.Write(ref _ownerWaits, _ownerWaits + 1);
    }

    /// <summary>
    /// The writer's check of the stage (on the writer thread, before it applies <paramref name="c"/>, a Transfer or
    /// Authorize): whether the stage's rule counts it, read from the ledger's own state. Must equal what the stage did.
    /// </summary>
    internal bool WouldCount(in Command c) =>
        Eligible(c) && Math.Max(c.FromAccount, c.ToAccount) <= _ledger.AccountCount
        && ((c.Flags & CommandFlags.OwnerOnly) == 0 || _ledger.OwnerOf(c.FromAccount) == c.ClientId);

    private void Attempt(in Command c, long now, ref StagedFraud staged)
    {
        ref var from = ref _accounts.See((int)c.FromAccount, now);
        ref var to = ref _accounts.See((int)c.ToAccount, now);
        staged.Counted = true;
        var fraud = _ledger.FraudScoring;
        if (fraud.Enabled)
        {
            staged.Verdict = fraud.Score(new PaymentFacts((int)c.FromAccount, (int)c.ToAccount, c.Amount, now, from.FirstSeenMs, to.FirstSeenMs, from.Balance));
            staged.State = StagedFraudState.Scored;
        }
        // Counted as if it succeeded, whatever the ledger will say: the stage cannot know, and must not ask.
        from.Balance = AttemptAccounts.AddSaturating(from.Balance, -c.Amount);
        to.Balance = AttemptAccounts.AddSaturating(to.Balance, c.Amount);
    }

    /// <summary>
    /// The upgrade point, on the writer thread while the stage waits: every account the ledger has is seeded with its opening
    /// time and available balance, the stage's clock is the ledger's, and from here the stage scores.
    /// </summary>
    internal void Start(long clockMs, ReadOnlySpan<Account> accounts, int accountBound)
    {
        Invariant.Check(!Active, "the fraud stage was started twice");
        Invariant.Check(accountBound >= accounts.Length && accountBound <= _accounts.MaxAccounts, "the fraud stage's account bound is out of range");
        _accountBound = accountBound;
        _accounts = new AttemptAccounts(_accounts.MaxAccounts);
        foreach (ref readonly var a in accounts) _accounts.Seed((int)a.Id, a.CreatedAtMs, a.Available);
        _clockMs = clockMs;
        _accountsKnown = accounts.Length; // the writer is at the upgrade point and the stage waits there
        _opensSince = false;
        Active = true;
    }

    /// <summary>At a consistent point (the stage and the writer at the same command): the stage's clock is the ledger's.</summary>
    internal void Write(BinaryWriter w, long ledgerClockMs)
    {
        Invariant.Check(_clockMs == ledgerClockMs, "the fraud stage's state was written while the stage was not at the writer's command");
        w.Write(_accountBound);
        _accounts.Write(w);
    }

    internal void Read(BinaryReader r, long ledgerClockMs)
    {
        int bound = r.ReadInt32();
        if (bound < 1 || bound > _accounts.MaxAccounts)
            throw new InvalidDataException($"the fraud stage keeps accounts up to {bound}; this ledger's MaxAccounts is {_accounts.MaxAccounts}");
        _accountBound = bound;
        _accounts = AttemptAccounts.Read(r, _accounts.MaxAccounts);
        _clockMs = ledgerClockMs;
        _accountsKnown = 0; // learnt at the first attempt that needs it
        _opensSince = true;
        Active = true;
    }
}
