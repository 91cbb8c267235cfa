using System.Runtime.CompilerServices;
using RamPay.Core;
using RamPay.Pipeline;

namespace RamPay.Engine;

/// <summary>
/// The fraud step of the ring's prefetch stage (rules version 4, docs/fraud.md "Scoring as a stage"): after the cold-tier
/// lookups of a slot, <see cref="FraudStage.Process"/> keeps the features and writes the verdict into the slot, in ring
/// order, on the stage's thread; the writer only applies it.
/// <para>
/// Sync points. The stage runs ahead of the writer and must never see the ledger's state, except where the writer changes
/// what the stage does or reads what it keeps. There the stage publishes its progress through the slot (so the writer
/// can reach it) and waits until the writer has applied it: after an <c>UpgradeRules</c> (the upgrade to 4 seeds the
/// stage) or a <c>ConfigureFraud</c> (the writer puts the settings in force), and when the writer asks for one to take a
/// periodic snapshot: it then snapshots at exactly that slot, when both are at the same command. All rare; a stall of
/// the stage there costs the ring's run-ahead, not correctness.
/// </para>
/// </summary>
internal sealed class FraudStageStep(FraudStage stage) : IFraudStageWriterWait
{
    private BatchEventProcessor<CommandSlot>? _own;
    private BatchEventProcessor<CommandSlot>? _writer;
    private volatile bool _snapshotWanted;
    private long _snapshotAt = -1;
    private long _syncs;
    private long _current = -1; // the slot being staged (read by WaitForWriterBeforeCurrent)

    /// <summary>Sync points taken (the stage waited for the writer); racy read, for tests and metrics.</summary>
    public long Syncs => Volatile.Read(ref _syncs);

    /// <summary>Wiring, before the pipeline starts: the stage's own processor (to publish part of a batch) and the writer's.</summary>
    public void Connect(BatchEventProcessor<CommandSlot> own, BatchEventProcessor<CommandSlot> writer)
    {
        _own = own;
        _writer = writer;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnSlot(ref CommandSlot slot, long sequence)
    {
        _current = sequence;
        stage.Process(slot.Command, this, out slot.Fraud);
        if (_snapshotWanted || FraudStage.NeedsSync(slot.Command)) Sync(sequence);
    }

    /// <summary>Publishes this stage's progress through <paramref name="sequence"/> and waits until the writer has applied it.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Sync(long sequence)
    {
        if (_snapshotWanted) Volatile.Write(ref _snapshotAt, sequence);
        Volatile.Write(ref _syncs, _syncs + 1);
        WaitForWriter(sequence);
    }

    /// <summary>
    /// The ownership rule's rare wait (FraudStage.OwnerAccepted): an attempt names an account id the stage has not seen the
    /// ledger open and one may have been opened since; the writer applies everything before this slot, then the stage reads
    /// the ledger's accounts as the writer will see them for this slot. Not a snapshot point.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    void IFraudStageWriterWait.WaitForWriterBeforeCurrent()
    {
        Invariant.Check(_current >= 0, "the fraud stage waited for the writer outside a slot");
        WaitForWriter(_current - 1);
    }

    private void WaitForWriter(long sequence)
    {
        var own = _own ?? throw new InvalidOperationException("the fraud stage step is not connected");
        var writer = _writer!;
        own.Sequence.SetValue(sequence);
        own.Barrier.WaitStrategy.SignalAllWhenBlocking();
        var spin = new SpinWait();
        while (writer.Sequence.Value < sequence)
        {
            // Bounded by the writer: it can always reach this slot (nothing after it is published), unless it failed or stopped.
            if (writer.Fault is { } fault) throw new InvalidOperationException("the writer failed while the fraud stage waited for it at a sync point", fault);
            if (!writer.IsRunning) throw new InvalidOperationException("the writer stopped while the fraud stage waited for it at a sync point");
            spin.SpinOnce(sleep1Threshold: 64);
        }
    }

    // ---- the writer's side (its thread) ----

    /// <summary>A periodic snapshot is due: the stage syncs at the next slot it stages, and the writer takes it there.</summary>
    public void RequestSnapshot() => _snapshotWanted = true;

    /// <summary>True when the stage waits at <paramref name="last"/> for the snapshot the writer asked for: both are at the same command.</summary>
    public bool SnapshotPointIs(long last) => _snapshotWanted && Volatile.Read(ref _snapshotAt) == last;

    /// <summary>Before the writer publishes the batch (which lets the stage go on).</summary>
    public void SnapshotTaken()
    {
        Volatile.Write(ref _snapshotAt, -1);
        _snapshotWanted = false;
    }
}
