using System.Globalization;
using System.Text;
using RamPay.Analytics;
using RamPay.Core;
using RamPay.Events;
using RamPay.Journal;

namespace RamPay.Rewards;

/// <summary>What one reward command came to, as the consumer counts it.</summary>
public enum RewardOutcome : byte
{
    /// <summary>Paid now.</summary>
    Issued = 1,
    /// <summary>Recorded as skipped: the rewards account could not pay (reason kept in the ledger).</summary>
    Skipped = 2,
    /// <summary>The pair already had a reward (a redelivered event, a second worker): nothing moved.</summary>
    AlreadyRewarded = 3,
    /// <summary>The payment earns nothing under the rule.</summary>
    NotEligible = 4,
    /// <summary>A reversal that moved money, or found nothing due / nothing to take (then owed).</summary>
    Reversed = 5,
    /// <summary>Anything else (a refused command): counted and logged, never retried by the consumer.</summary>
    Refused = 6,
}

/// <summary>
/// How the consumer reaches the ledger: in the server, straight into the engine; in <c>rampay-worker</c>, over HTTP
/// with a <c>service</c> token. Both pick the candidate rules, send one <c>IssueReward</c> per (payment, rule) with the
/// key <c>rewards:issue:{payment}:{rule}</c> (or <c>ReverseReward</c>, keyed by the refund) and return once the results
/// are durable. The ledger decides eligibility and refuses a second reward, so calling twice is harmless.
/// </summary>
public interface IRewardCommands
{
    /// <summary>Pays the rewards of these settled payments; the outcomes of every command sent.</summary>
    Task<IReadOnlyList<RewardOutcome>> IssueAsync(IReadOnlyList<long> paymentIds, CancellationToken cancellationToken);

    /// <summary>Brings the rewards of these refunded payments in line with their refunds (each refund named by its id).</summary>
    Task<IReadOnlyList<RewardOutcome>> ReverseAsync(IReadOnlyList<(long PaymentId, long RefundId)> refunds, CancellationToken cancellationToken);

    /// <summary>
    /// After these deposits into platform accounts: for each that tops up a rewards account, tries each skipped reward
    /// of its currency once more (at most once per top-up; the others are ignored).
    /// </summary>
    Task<IReadOnlyList<RewardOutcome>> RetrySkippedAsync(IReadOnlyList<long> topUpIds, CancellationToken cancellationToken);
}

/// <summary>
/// The rewards consumer (docs/rewards.md): for each settled payment (PaymentApproved of a transfer, PaymentCaptured, a
/// review's approval) it asks for the rewards of the rules in force; for each PaymentRefunded it asks for the reversal.
/// Exactly once in effect without a de-duplication store: the ledger refuses a second reward of a (payment, rule) for
/// ever, and a reversal converges on floor(reward × refunded / captured) however often it runs. Its checkpoint (for the
/// server's event log) is a small file written after the batch's commands are durable, at most once a second
/// (<see cref="CheckpointEveryMs"/>); a crash before it is written only re-sends commands the ledger answers with
/// <c>reward_exists</c> or a replayed result.
/// </summary>
public sealed class RewardsConsumer(IRewardCommands commands, string? checkpointFile) : IEventConsumer
{
    private readonly object _checkpointGate = new();
    private readonly System.Diagnostics.Stopwatch _sinceCheckpoint = System.Diagnostics.Stopwatch.StartNew();
    private EventPosition _unsaved;
    private bool _hasUnsaved;
    private long _issued, _skipped, _duplicates, _notEligible, _reversals, _refused, _events, _retried;

    public string Name => "rewards";
    public long Issued => Interlocked.Read(ref _issued);
    public long Skipped => Interlocked.Read(ref _skipped);
    public long Duplicates => Interlocked.Read(ref _duplicates);
    public long NotEligible => Interlocked.Read(ref _notEligible);
    public long Reversals => Interlocked.Read(ref _reversals);
    public long Refused => Interlocked.Read(ref _refused);
    public long EventsSeen => Interlocked.Read(ref _events);
    /// <summary>Retries of skipped rewards sent after top-ups (their outcomes count as issued, skipped...).</summary>
    public long Retried => Interlocked.Read(ref _retried);

    public ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(ReadCheckpoint(checkpointFile));

    public ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken) => HandleAsync(batch, null, cancellationToken);

    /// <summary>A batch whose events' fields are already read (<paramref name="fields"/>, one per event; null: read them here).</summary>
    public async ValueTask HandleAsync(EventBatch batch, EventFields[]? fields, CancellationToken cancellationToken)
    {
        var (settled, refunds, topUps) = Select(batch.Events, fields);
        Interlocked.Add(ref _events, batch.Events.Count);
        // Issues before reversals: a refund in the same batch as its payment then finds the reward to reverse (and a
        // reward issued after a refund cancels that share itself, so the order is never wrong, only cheaper).
        if (settled.Count > 0) Count(await commands.IssueAsync(settled, cancellationToken));
        if (refunds.Count > 0) Count(await commands.ReverseAsync(refunds, cancellationToken));
        // Last: a top-up in this batch then also pays what this batch's issues had to skip.
        if (topUps.Count > 0)
        {
            var outcomes = await commands.RetrySkippedAsync(topUps, cancellationToken);
            Interlocked.Add(ref _retried, outcomes.Count);
            Count(outcomes);
        }
        if (batch.FromLog && checkpointFile is not null)
        {
            lock (_checkpointGate)
            {
                _unsaved = batch.Through;
                _hasUnsaved = true;
            }
            if (_sinceCheckpoint.ElapsedMilliseconds >= CheckpointEveryMs) FlushCheckpoint();
        }
    }

    /// <summary>
    /// How often the checkpoint file is rewritten while events keep coming (and at <see cref="FlushCheckpoint"/>). Not
    /// every batch: a file replaced atomically costs two fsyncs, as much as the batch's own journal write, and a
    /// checkpoint that lags only makes a restart re-send commands the ledger answers from what it already holds (a
    /// paid pair is never paid again; a reversal converges), so the lag costs work at a restart, never correctness.
    /// </summary>
    public int CheckpointEveryMs { get; init; } = 1_000;

    /// <summary>Writes the position of the last batch whose commands are durable, if it is not in the file yet (the server calls it once a second and at stop).</summary>
    public void FlushCheckpoint()
    {
        if (checkpointFile is null) return;
        lock (_checkpointGate)
        {
            if (!_hasUnsaved) return;
            WriteCheckpoint(checkpointFile, _unsaved);
            _hasUnsaved = false;
            _sinceCheckpoint.Restart();
        }
    }

    /// <summary>The event types whose fields <see cref="Select"/> reads (<see cref="EventFields.Bit"/>).</summary>
    public static readonly uint FieldTypes = EventFields.Bit(EventType.PaymentApproved) | EventFields.Bit(EventType.PaymentCaptured) | EventFields.Bit(EventType.PaymentRefunded);

    /// <summary>The settled payments, the refunds and the deposits into platform accounts (maybe top-ups) of a batch, in order, each once.</summary>
    internal static (List<long> Settled, List<(long, long)> Refunds, List<long> TopUps) Select(IReadOnlyList<EventRecord> events, EventFields[]? fields = null)
    {
        Invariant.Check(fields is null || fields.Length == events.Count, "one EventFields per event");
        var settled = new List<long>();
        var topUps = new List<long>();
        var refunds = new List<(long, long)>();
        var seen = new HashSet<long>();
        for (int i = 0; i < events.Count; i++)
        {
            var e = events[i];
            bool candidate = e.Type is "PaymentApproved" or "PaymentCaptured" or "PaymentRefunded";
            if (!candidate) continue;
            EventFields f;
            if (fields is not null) f = fields[i];
            else if (!EventFields.TryRead(e.Json.Span, out f)) continue;
            if (!f.Valid || !f.PayloadRead || !f.HasPayment) continue;
            long id = f.PaymentId;
            if (id <= 0) continue;
            if (e.Type == "PaymentRefunded")
            {
                if (f.RefundId > 0) refunds.Add((id, f.RefundId));
            }
            else if (f.Kind is EventPaymentKind.Transfer or EventPaymentKind.Authorization && seen.Add(id))
            {
                settled.Add(id); // deposits are top-ups, not purchases: they earn nothing (the ledger would say so too)
            }
            else if (f.Kind == EventPaymentKind.Deposit && e.Type == "PaymentApproved" && f.HasToOwner && f.ToOwner == 0 && seen.Add(id))
            {
                topUps.Add(id); // a deposit into a platform account (owner 0): the server checks it is a rewards account's top-up
            }
        }
        return (settled, refunds, topUps);
    }

    private void Count(IReadOnlyList<RewardOutcome> outcomes)
    {
        foreach (var o in outcomes)
        {
            switch (o)
            {
                case RewardOutcome.Issued: Interlocked.Increment(ref _issued); break;
                case RewardOutcome.Skipped: Interlocked.Increment(ref _skipped); break;
                case RewardOutcome.AlreadyRewarded: Interlocked.Increment(ref _duplicates); break;
                case RewardOutcome.NotEligible: Interlocked.Increment(ref _notEligible); break;
                case RewardOutcome.Reversed: Interlocked.Increment(ref _reversals); break;
                default: Interlocked.Increment(ref _refused); break;
            }
        }
    }

    private const string CheckpointHeader = "rampay-consumer-checkpoint 1 ";

    /// <summary>The position in a checkpoint file (<c>rampay-consumer-checkpoint 1 {event_id}</c>), or none when there is no file.</summary>
    public static EventPosition ReadCheckpoint(string? path)
    {
        if (path is null || !File.Exists(path)) return EventPosition.None;
        string text = File.ReadAllText(path).Trim();
        if (!text.StartsWith(CheckpointHeader, StringComparison.Ordinal) || !EventPosition.TryParse(text.AsSpan(CheckpointHeader.Length), out var position))
            throw new InvalidDataException($"{path} is not a consumer checkpoint file");
        return position;
    }

    /// <summary>Replaces the checkpoint file atomically (temp file, fsync, rename, fsync of the folder).</summary>
    public static void WriteCheckpoint(string path, EventPosition position)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        AtomicFile.Write(path, Encoding.ASCII.GetBytes(CheckpointHeader + position.ToString() + "\n"));
    }

    /// <summary>The idempotency key of an issue: one per (payment, rule), so a retry inside the key window replays the first result.</summary>
    public static string IssueKey(long paymentId, long ruleId) => string.Create(CultureInfo.InvariantCulture, $"rewards:issue:{paymentId}:{ruleId}");

    /// <summary>The key of a retry of a skipped reward after a top-up: once per (payment, rule, top-up).</summary>
    public static string RetryKey(long paymentId, long ruleId, long topUpId) =>
        string.Create(CultureInfo.InvariantCulture, $"rewards:retry:{paymentId}:{ruleId}:{topUpId}");

    /// <summary>The key of a reversal: per refund, so each refund brings its own reversal (a repeat replays it).</summary>
    public static string ReverseKey(long paymentId, long ruleId, long refundId) =>
        string.Create(CultureInfo.InvariantCulture, $"rewards:reverse:{paymentId}:{ruleId}:{refundId}");
}
