using RamPay.Core;
using RamPay.Journal;

namespace RamPay.Engine;

/// <summary>What start-up found and did: which snapshot it loaded, how much journal it replayed, what it cut off.</summary>
public sealed record RecoveryReport
{
    /// <summary>The sequence of the snapshot loaded (0 = none, replay from the journal's start).</summary>
    public long SnapshotSequence { get; init; }
    public long RecordsReplayed { get; init; }
    /// <summary>The last journal sequence applied: the engine continues at the next one.</summary>
    public long LastSequence { get; init; }
    public TimeSpan Elapsed { get; init; }
    /// <summary>What was wrong with the journal's tail and was truncated, or with a snapshot that was skipped.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
    public required string StateHash { get; init; }

    public override string ToString() =>
        $"snapshot at {SnapshotSequence}, replayed {RecordsReplayed} records to sequence {LastSequence} in {Elapsed.TotalMilliseconds:F0} ms, state {StateHash}" +
        (Warnings.Count > 0 ? "; " + string.Join("; ", Warnings) : "");
}

/// <summary>
/// Start-up: the latest good snapshot, then the journal's tail replayed through the same <see cref="Ledger.Apply"/>
/// the live engine uses. A torn tail is truncated (it was never acknowledged: a batch's replies wait for its fsync);
/// a corrupt record in the middle stops start-up with <see cref="JournalCorruptException"/>.
/// </summary>
public static class EngineRecovery
{
    /// <summary>
    /// Rebuilds the state after the journal writer has repaired the tail (<see cref="JournalWriter.Open"/> runs
    /// <see cref="JournalRecovery"/>, whose report is <paramref name="tail"/>).
    /// </summary>
    public static (Ledger Ledger, RecoveryReport Report) Recover(EngineOptions options, JournalRecoveryReport tail)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        var warnings = new List<string>();
        if (tail.TruncatedTail is not null) warnings.Add(tail.ToString());
        foreach (var tmp in tail.RemovedTemporaryFiles) warnings.Add($"removed unfinished segment file {tmp}");
        var prefetcher = options.Ledger.ColdKeys is { } cold ? new KeyPrefetcher(cold.Store) : null;
        var payments = options.Ledger.ColdPayments is { } coldPayments ? new PaymentPrefetcher(coldPayments.Store) : null;
        var (ledger, snapshotSequence, replayed, last) = Load(options.SnapshotDirectory, options.JournalDirectory, options.Ledger, useSnapshot: true, long.MaxValue, warnings, prefetcher, payments);
        Invariant.Check(last == tail.LastSequence || (replayed == 0 && last == snapshotSequence && tail.LastSequence <= snapshotSequence),
            $"replay stopped at {last} but the journal ends at {tail.LastSequence}");
        return (ledger, new RecoveryReport
        {
            SnapshotSequence = snapshotSequence,
            RecordsReplayed = replayed,
            LastSequence = last,
            Elapsed = started.Elapsed,
            Warnings = warnings,
            StateHash = ledger.ComputeStateHash(),
        });
    }

    /// <summary>
    /// Builds the state without changing any file: from the latest good snapshot (when <paramref name="useSnapshot"/>)
    /// plus the journal after it. Used by start-up (after tail repair) and by <c>rampay replay</c>.
    /// </summary>
    public static (Ledger Ledger, long SnapshotSequence, long Replayed, long LastSequence) Load(
        string snapshotDirectory, string journalDirectory, LedgerOptions ledgerOptions, bool useSnapshot, List<string> warnings) =>
        Load(snapshotDirectory, journalDirectory, ledgerOptions, useSnapshot, long.MaxValue, warnings);

    /// <summary>
    /// As the other overload, but the state as of <paramref name="throughSequence"/>: the latest snapshot at or before
    /// it, then the journal up to it (the sinks' follower starts from a sink's checkpoint this way).
    /// </summary>
    public static (Ledger Ledger, long SnapshotSequence, long Replayed, long LastSequence) Load(
        string snapshotDirectory, string journalDirectory, LedgerOptions ledgerOptions, bool useSnapshot, long throughSequence, List<string> warnings) =>
        Load(snapshotDirectory, journalDirectory, ledgerOptions, useSnapshot, throughSequence, warnings, prefetcher: null);

    /// <summary>As the other overloads; with a cold tier, each record's key is prefetched as the ring's prefetch stage does.</summary>
    public static (Ledger Ledger, long SnapshotSequence, long Replayed, long LastSequence) Load(
        string snapshotDirectory, string journalDirectory, LedgerOptions ledgerOptions, bool useSnapshot, long throughSequence, List<string> warnings,
        KeyPrefetcher? prefetcher) =>
        Load(snapshotDirectory, journalDirectory, ledgerOptions, useSnapshot, throughSequence, warnings, prefetcher, payments: null);

    /// <summary>
    /// As the other overloads; with the payments' cold tier, each record's payment is prefetched too. <paramref name="cancel"/> stops
    /// the replay between records (checked every <see cref="CancelCheckRecords"/>) with <see cref="OperationCanceledException"/>: the
    /// sinks' replica, whose replay may take minutes, stops so when the server stops, before the stores it reads are closed.
    /// </summary>
    public static (Ledger Ledger, long SnapshotSequence, long Replayed, long LastSequence) Load(
        string snapshotDirectory, string journalDirectory, LedgerOptions ledgerOptions, bool useSnapshot, long throughSequence, List<string> warnings,
        KeyPrefetcher? prefetcher, PaymentPrefetcher? payments, CancellationToken cancel = default)
    {
        cancel.ThrowIfCancellationRequested();
        Ledger ledger;
        long snapshotSequence = 0;
        if (useSnapshot && Directory.Exists(snapshotDirectory)
            && SnapshotStore.TryLoadLatest(snapshotDirectory, throughSequence, out var info, out var payload))
        {
            warnings.AddRange(info.Warnings);
            ledgerOptions = FollowerKeysFrom(ledgerOptions, info.Sequence, warnings);
            using var stream = new MemoryStream(payload, writable: false);
            try
            {
                ledger = Ledger.ReadState(stream, ledgerOptions);
                snapshotSequence = info.Sequence;
            }
            catch (SnapshotNeedsColdTierException e)
            {
                // A tool or the sinks' replica, without the engine's cold tier: the snapshot alone does not hold every live
                // key, so the whole journal is replayed (each key is then in memory, and the state is exact).
                warnings.Add($"snapshot {info.Sequence}: {e.Message}; replaying the journal from its start");
                ledger = new Ledger(ledgerOptions);
            }
        }
        else
        {
            ledgerOptions = FollowerKeysFrom(ledgerOptions, 0, warnings);
            ledger = new Ledger(ledgerOptions);
        }

        cancel.ThrowIfCancellationRequested();
        var applier = new ReplayApplier(ledger, snapshotSequence, prefetcher, payments, cancel);
        if (Directory.Exists(journalDirectory))
        {
            var summary = throughSequence == long.MaxValue
                ? JournalReader.Read(journalDirectory, snapshotSequence, applier)
                : JournalReader.ReadRange(journalDirectory, snapshotSequence + 1, throughSequence, applier);
            if (summary.TornTail is not null) warnings.Add($"replay stopped at a torn tail: {summary.TornTail}");
        }
        ledger.VerifyInvariants();
        return (ledger, snapshotSequence, applier.Replayed, applier.LastSequence);
    }

    /// <summary>
    /// A follower key log (the sinks' replica) may start from state <paramref name="sequence"/> only if the key store has
    /// collected nothing that state may still need: it recycled only keys dead at <see cref="RamPay.Storage.KeySegmentStore.RecycledUnderSequence"/>
    /// or later. An older start (the snapshot the sinks' hold stood at was pruned, or a sink restored from a backup) keeps every
    /// key in memory instead and replays the journal from its start (which needs the journal, or its archive, from the first
    /// record: a clear error when it is gone), said in the warnings: exact, in more memory, never a wrong result.
    /// </summary>
    private static LedgerOptions FollowerKeysFrom(LedgerOptions options, long sequence, List<string> warnings)
    {
        // Likewise a follower of the payment log registered at a lowest position (the sinks' replica, RamPayEngine.SinksLowestStart):
        // before it the log's start may have taken an index checkpoint without the links to older versions it would walk.
        if (options.ColdPayments is { Follower: true, FollowerHandle: >= 0, Store: RamPay.Storage.PaymentLogStore log } payments
            && log.FollowerPosition(payments.FollowerHandle) is var from && from > sequence && from != long.MaxValue)
        {
            warnings.Add($"the payment log serves this follower from {from:N0}, after its start at {sequence:N0}: it keeps every payment in memory instead");
            log.RemoveFollower(payments.FollowerHandle);
            options = options with { ColdPayments = null };
        }
        if (options.ColdKeys is not { Follower: true, Store: RamPay.Storage.KeySegmentStore store }) return options;
        long recycled = store.RecycledUnderSequence;
        if (recycled <= sequence) return options;
        warnings.Add($"the key store collected keys dead at snapshot {recycled:N0}, after this replica's start at {sequence:N0}: " +
            "it keeps every key of the window in memory instead of following the key store");
        return options with { ColdKeys = null };
    }

    /// <summary>Records replayed between two looks at the cancellation token (a power of two).</summary>
    public const int CancelCheckRecords = 4096;

    /// <summary>Feeds journal records to the ledger, exactly as the live business-logic stage does.</summary>
    private sealed class ReplayApplier(Ledger ledger, long startSequence, KeyPrefetcher? prefetcher, PaymentPrefetcher? payments, CancellationToken cancel) : IRecordVisitor
    {
        public long Replayed { get; private set; }
        public long LastSequence { get; private set; } = startSequence;

        public void OnRecord(in RecordHeader header, ReadOnlySpan<byte> payload)
        {
            if ((Replayed & (CancelCheckRecords - 1)) == 0) cancel.ThrowIfCancellationRequested();
            if (header.Type != RecordTypes.Command)
                throw new JournalCorruptException(new JournalProblem(JournalProblemKind.BadRecordType, "", 0, header.Sequence,
                    $"record type {header.Type} is not one this RamPay knows"));
            if (payload.Length < CommandCodec.Size || !CommandCodec.TryRead(payload[..CommandCodec.Size], out var command))
                throw new JournalCorruptException(new JournalProblem(JournalProblemKind.BadPayload, "", 0, header.Sequence,
                    "the command payload does not decode"));
            KeyLookup lookup = default;
            // Limited to the keys this replay has remembered so far: the cold tier may already hold the entries it is about to re-create.
            prefetcher?.Prefetch(command, out lookup, ledger.KeyLog?.Inserted ?? long.MaxValue);
            PaymentLookup payment = default;
            payments?.Prefetch(command, out payment);
            ledger.Apply(command, payload[CommandCodec.Size..], lookup, payment, out _);
            Replayed++;
            LastSequence = header.Sequence;
        }
    }
}
