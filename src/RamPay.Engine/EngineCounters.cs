using System.Diagnostics;
using System.Diagnostics.Metrics;
using RamPay.Core;

namespace RamPay.Engine;

/// <summary>
/// What the engine's stages count as they run, for a host's metrics. Each field has one writing thread (the output
/// stage, the writer or the journaler) and is written with plain stores into memory allocated up front: the writer
/// takes no lock and allocates nothing for it. Readers on any thread (a metrics scrape) see a value at most one batch
/// old. Counts start at zero when the engine starts; commands replayed from the journal at start-up are not counted.
/// </summary>
public sealed class EngineCounters
{
    /// <summary>The meter of the engine's histograms (recorded on the journaler thread, never on the writer's).</summary>
    public const string MeterName = "RamPay.Engine";

    private const int CodeSlots = 256; // ResultCode is a byte
    private const int TypeSlots = 256; // CommandType is a byte
    private readonly long[] _completed = new long[TypeSlots * CodeSlots];
    private long _applyTicks;
    private long _applyBatches;
    private long _applyCommands;

    internal static readonly Meter Meter = new(MeterName);

    // Bucket bounds chosen for a journal that commits in about 0.5 ms on this class of disk and batches up to 4096.
    internal static readonly Histogram<int> JournalBatchRecords = Meter.CreateHistogram<int>(
        "rampay_journal_batch_records", unit: null, description: "Commands written to the journal by one commit (group commit batch size).",
        tags: null, advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096] });

    internal static readonly Histogram<double> JournalFsyncSeconds = Meter.CreateHistogram<double>(
        "rampay_journal_fsync_seconds", unit: null, description: "Time of one journal commit: the batch's write and its fdatasync (only the write when Fsync is off).",
        tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1] });

    // Snapshots take from tens of ms (a small state) to tens of seconds (10 M payments).
    private static readonly double[] SnapshotBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100];

    internal static readonly Histogram<double> SnapshotPauseSeconds = Meter.CreateHistogram<double>(
        "rampay_snapshot_pause_seconds", unit: null,
        description: "How long a periodic snapshot stopped the writer thread. Recorded only for snapshots the writer takes itself (SnapshotOffWriter off, or a cold tier); the snapshotter's never stop it.",
        tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SnapshotBuckets });

    internal static readonly Histogram<double> SnapshotDurationSeconds = Meter.CreateHistogram<double>(
        "rampay_snapshot_duration_seconds", unit: null,
        description: "Time to check the invariants of, encode, write and fsync one snapshot (periodic and at stop), on whichever thread took it.",
        tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SnapshotBuckets });

    private long _lastSnapshotSequence;
    private long _snapshots;

    /// <summary>The journal sequence of the newest snapshot written since start (0 = none yet).</summary>
    public long LastSnapshotSequence => Volatile.Read(ref _lastSnapshotSequence);
    /// <summary>Snapshots written since start.</summary>
    public long Snapshots => Volatile.Read(ref _snapshots);

    /// <summary>On the one thread that writes snapshots at a time (the snapshotter's, or the writer's).</summary>
    internal void OnSnapshot(long sequence)
    {
        Volatile.Write(ref _lastSnapshotSequence, sequence);
        Volatile.Write(ref _snapshots, _snapshots + 1);
    }

    /// <summary>Commands whose result was handed back (durable and applied) with this type and result code.</summary>
    public long Completed(CommandType type, ResultCode code) => Volatile.Read(ref _completed[(int)type * CodeSlots + (int)code]);

    /// <summary>Every (type, code, count) whose count is not zero. Allocates: for a scrape, not for a hot path.</summary>
    public IEnumerable<(CommandType Type, ResultCode Code, long Count)> CompletedCounts()
    {
        for (int i = 0; i < _completed.Length; i++)
        {
            long n = Volatile.Read(ref _completed[i]);
            if (n != 0) yield return ((CommandType)(i / CodeSlots), (ResultCode)(i % CodeSlots), n);
        }
    }

    /// <summary>Time the writer spent applying commands (and answering queries), in seconds, since start.</summary>
    public double ApplySeconds => Volatile.Read(ref _applyTicks) / (double)Stopwatch.Frequency;
    /// <summary>Batches the writer has applied since start.</summary>
    public long ApplyBatches => Volatile.Read(ref _applyBatches);
    /// <summary>Commands the writer has applied since start.</summary>
    public long ApplyCommands => Volatile.Read(ref _applyCommands);

    /// <summary>On the output thread only.</summary>
    internal void OnCompleted(in Command command, in CommandResult result)
    {
        ref long cell = ref _completed[(int)command.Type * CodeSlots + (int)result.Code];
        Volatile.Write(ref cell, cell + 1);
    }

    /// <summary>On the writer thread only: one batch applied in <paramref name="ticks"/> (Stopwatch ticks).</summary>
    internal void OnApplied(long ticks, long commands)
    {
        Volatile.Write(ref _applyTicks, _applyTicks + ticks);
        Volatile.Write(ref _applyBatches, _applyBatches + 1);
        Volatile.Write(ref _applyCommands, _applyCommands + commands);
    }
}
