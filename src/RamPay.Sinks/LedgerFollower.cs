using RamPay.Core;
using RamPay.Engine;
using RamPay.Journal;

namespace RamPay.Sinks;

/// <summary>
/// Turns the journal into <see cref="Change"/>s. It keeps its own copy of the ledger (a replica, built from the latest
/// snapshot at or before its start point plus the journal up to it) and re-applies each durable record through the
/// same <see cref="Ledger.Apply(in Command, ReadOnlySpan{byte}, out CommandResult)"/> the writer uses, so it computes
/// the same results and states without ever reading the writer's ledger or slowing its thread: the journal is the
/// only thing the two share. Determinism (docs/architecture.md) is what makes the replica exact.
/// <para>One thread; not thread-safe. It costs a second copy of the state in memory and one more apply per command.</para>
/// </summary>
public sealed class LedgerFollower : IRecordVisitor, IDisposable
{
    private readonly Ledger _ledger;
    private readonly JournalTailer _tailer;
    private readonly List<long> _expired = [];
    private ChangeBatch? _into;

    /// <summary>
    /// Builds the replica as of <paramref name="afterSequence"/> (0 = the journal's start); changes start at the next record.
    /// <paramref name="cancel"/> stops the replay that builds it (<see cref="OperationCanceledException"/>): a server stopping while
    /// the replica is still replaying does not wait for it, nor close the stores it reads under it.
    /// </summary>
    public LedgerFollower(string snapshotDirectory, string journalDirectory, LedgerOptions ledgerOptions, long afterSequence, CancellationToken cancel = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(afterSequence);
        var warnings = new List<string>();
        var (ledger, snapshot, _, last) = EngineRecovery.Load(snapshotDirectory, journalDirectory, ledgerOptions, useSnapshot: true, afterSequence, warnings,
            prefetcher: null, payments: null, cancel);
        if (last != afterSequence)
            throw new InvalidOperationException($"the journal ends at {last}, before the sink checkpoint {afterSequence}: the sink holds records this journal does not (was the data folder replaced?)");
        _ledger = ledger;
        _ledger.HoldExpired = _expired.Add;
        SnapshotSequence = snapshot;
        Warnings = warnings;
        _tailer = new JournalTailer(journalDirectory, afterSequence);
    }

    /// <summary>The last journal sequence turned into changes.</summary>
    public long LastSequence => _tailer.LastSequence;

    /// <summary>The snapshot the replica started from (0 = none).</summary>
    public long SnapshotSequence { get; }
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>
    /// The replica's payments in memory (rules version 3: with the payments' cold tier, the hot window, open holds and a little
    /// more, docs/storage.md "The sinks' replica"; without it, every payment). On the follower's thread.
    /// </summary>
    public long ResidentPayments => _ledger.PaymentTier.ResidentPayments;

    /// <summary>
    /// The replica's idempotency keys in memory: with the key store followed (<c>RamPayEngine.SinksKeyTier</c>) a small hot set
    /// (the keys the writer's store has not yet made durable, and at most a generation more); without it, every key of the
    /// window (rules 1: the table's keys). On the follower's thread.
    /// </summary>
    public long ResidentKeys => _ledger.KeyLog?.HotCount ?? _ledger.Idempotency.Count;

    /// <summary>Keys the replica found only in the key store and honoured (a retry or a changed body of a key long gone from its memory).</summary>
    public long ColdKeyHits => _ledger.KeyLog?.ColdHits ?? 0;

    /// <summary>True when the replica follows the key store (else it keeps every key of the window in memory; <see cref="Warnings"/> says why when it fell back).</summary>
    public bool FollowsKeyStore => _ledger.KeyLog?.HasColdTier ?? false;

    /// <summary>The replica, for checks (<c>rampay db verify</c>). Belongs to the follower's thread.</summary>
    public IReadOnlyLedger Ledger => _ledger;

    /// <summary>
    /// Re-applies the durable records after <see cref="LastSequence"/> up to <paramref name="durableSequence"/> (at most
    /// <paramref name="maxRecords"/>) and appends their changes to <paramref name="into"/>; returns records read.
    /// </summary>
    public int Poll(long durableSequence, int maxRecords, ChangeBatch into)
    {
        _into = into;
        try
        {
            return _tailer.Poll(durableSequence, maxRecords, this);
        }
        finally
        {
            _into = null;
        }
    }

    void IRecordVisitor.OnRecord(in RecordHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.Type != RecordTypes.Command || payload.Length < CommandCodec.Size || !CommandCodec.TryRead(payload[..CommandCodec.Size], out var command))
            throw new JournalCorruptException(new JournalProblem(JournalProblemKind.BadPayload, "", 0, header.Sequence, "the record is not a command this RamPay knows"));
        ReadOnlySpan<byte> attachment = payload[CommandCodec.Size..];
        _expired.Clear();
        _ledger.Apply(command, attachment, out var result);

        var batch = _into!;
        int index = 0;
        foreach (long paymentId in _expired)
        {
            ref var expired = ref batch.Add();
            expired.Sequence = header.Sequence;
            expired.Index = index++;
            expired.Kind = ChangeKind.HoldExpired;
            expired.TimestampMs = command.TimestampMs;
            expired.Result = new CommandResult { Code = ResultCode.Ok, Id = paymentId };
            expired.Payment = _ledger.GetPayment(paymentId);
            expired.FraudModelVersion = _ledger.GetFraudScore(paymentId)?.ModelVersion;
            expired.From = _ledger.GetAccount(expired.Payment.FromAccount);
            expired.To = _ledger.GetAccount(expired.Payment.ToAccount);
        }

        ref var change = ref batch.Add();
        change.Sequence = header.Sequence;
        change.Index = index;
        change.Kind = ChangeKind.Command;
        change.TimestampMs = command.TimestampMs;
        change.Command = command;
        change.Result = result;
        if (change.ChangedState) CaptureState(ref change);
        batch.LastSequence = header.Sequence;
        batch.LastTimestampMs = command.TimestampMs;
    }

    /// <summary>Copies the state, right after the command, of everything it touched.</summary>
    private void CaptureState(ref Change change)
    {
        long id = change.Result.Id;
        switch (change.Command.Type)
        {
            case CommandType.Deposit:
            case CommandType.Transfer:
            case CommandType.Authorize:
            case CommandType.Capture:
            case CommandType.Void:
            case CommandType.Review:
                change.Payment = _ledger.GetPayment(id);
                change.Note = change.Command.Type is CommandType.Transfer or CommandType.Authorize ? _ledger.GetPaymentNote(id) : null;
                change.FraudModelVersion = _ledger.GetFraudScore(id)?.ModelVersion;
                CapturePaymentAccounts(ref change);
                break;
            case CommandType.ConfigureFraud:
            case CommandType.UpgradeRules:
                break; // settings and the model: ledger state, but nothing a row or an event shows
            case CommandType.Refund:
                change.Payment = _ledger.GetPayment(id);
                change.Parent = _ledger.GetPayment(change.Payment.ParentId);
                CapturePaymentAccounts(ref change);
                break;
            case CommandType.OpenAccount:
                change.From = _ledger.GetAccount(id);
                break;
            case CommandType.Freeze:
            case CommandType.Unfreeze:
                change.From = _ledger.GetAccount(change.Command.FromAccount);
                break;
            case CommandType.RegisterUser:
                change.User = _ledger.GetUser(id);
                change.From = _ledger.GetAccount(change.Result.SecondaryId);
                break;
            case CommandType.DefineRewardRule:
            case CommandType.EndRewardRule:
                break; // rules are ledger state, read through queries; no row or event
            case CommandType.OpenRewardsAccount:
                change.From = _ledger.GetAccount(id);
                break;
            case CommandType.IssueReward:
            case CommandType.ReverseReward:
                // The payout (IssueReward: SecondaryId) or the reversal (ReverseReward: Id), when money moved; the source payment as Parent.
                long moved = change.Command.Type == CommandType.IssueReward ? change.Result.SecondaryId : id;
                if (moved == 0) break;
                change.Payment = _ledger.GetPayment(moved);
                change.Parent = _ledger.GetPayment(change.Payment.ParentId);
                CapturePaymentAccounts(ref change);
                break;
            default:
                // A command type this follower does not know yet changed the state: its rows and events would be
                // missing, so stop rather than let the sinks drift from the ledger.
                Invariant.Fail($"the sinks' follower does not know what command type {change.Command.Type} changes");
                break;
        }
    }

    private void CapturePaymentAccounts(ref Change change)
    {
        change.From = _ledger.GetAccount(change.Payment.FromAccount);
        change.To = _ledger.GetAccount(change.Payment.ToAccount);
    }

    public void Dispose() => _tailer.Dispose();
}

/// <summary>
/// Changes in stream order, handed from the follower to every sink. Never splits one sequence's changes. Reused:
/// the hub returns it to its pool once every sink has written it.
/// </summary>
public sealed class ChangeBatch(int capacity)
{
    private Change[] _items = new Change[capacity];
    internal int Readers;

    public int Count { get; private set; }
    /// <summary>The sequence of the last record in the batch (0 when empty).</summary>
    public long LastSequence { get; internal set; }
    public long LastTimestampMs { get; internal set; }
    /// <summary>
    /// The changes the batch is meant to hold. Fixed: a record whose expirations take the batch past it grows the
    /// storage, not this, so the batch is then full and handed on (a growing capacity would let the follower keep
    /// filling it, each overflow doubling it, until the journal ran out: one unbounded batch and transaction).
    /// </summary>
    public int Capacity { get; } = capacity;
    public ReadOnlySpan<Change> Changes => _items.AsSpan(0, Count);
    /// <summary>True once the batch is full enough that the follower should hand it on.</summary>
    public bool IsFull => Count >= Capacity;

    /// <summary>A cleared slot at the end. A record with more expirations than room grows the storage (the batch is then full).</summary>
    internal ref Change Add()
    {
        if (Count == _items.Length) Array.Resize(ref _items, _items.Length * 2);
        ref var slot = ref _items[Count++];
        slot = default;
        return ref slot;
    }

    /// <summary>
    /// Copies <paramref name="other"/>'s changes after this batch's, which then ends where <paramref name="other"/> ends: a
    /// sink writes batches that waited for it as one (<c>SinkRunner</c>). <paramref name="other"/> must follow this batch.
    /// </summary>
    internal void Append(ChangeBatch other)
    {
        Invariant.Check(Count == 0 || other.Count == 0 || other.Changes[0].Sequence > LastSequence,
            "a batch appended out of order: its first change precedes the batch it follows");
        if (Count + other.Count > _items.Length) Array.Resize(ref _items, Math.Max(_items.Length * 2, Count + other.Count));
        other.Changes.CopyTo(_items.AsSpan(Count));
        Count += other.Count;
        LastSequence = other.LastSequence;
        LastTimestampMs = other.LastTimestampMs;
    }

    public void Clear()
    {
        // Storage a big record grew (a tick after a long pause) is not kept in the pool; a doubling is, it recurs.
        if (_items.Length > 2 * Capacity) _items = new Change[Capacity];
        else Array.Clear(_items, 0, Count); // drop the references (users, notes) the changes held
        Count = 0;
        LastSequence = 0;
        LastTimestampMs = 0;
    }
}
