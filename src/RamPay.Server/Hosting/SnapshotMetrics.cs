using System.Diagnostics.Metrics;
using RamPay.Journal;

namespace RamPay.Server.Hosting;

/// <summary>
/// The snapshots' and the journal's size gauges (docs/operations.md). The snapshot histograms
/// (<c>rampay_snapshot_pause_seconds</c>, <c>rampay_snapshot_duration_seconds</c>) are the engine's own
/// (<see cref="RamPay.Engine.EngineCounters"/>, meter <c>RamPay.Engine</c>): they are recorded where the snapshot is written.
/// </summary>
internal static class SnapshotMetrics
{
    public static void Register(Meter meter, EngineHost engine)
    {
        meter.CreateObservableGauge("rampay_snapshot_last_sequence", () => engine.RunningEngine?.Counters.LastSnapshotSequence ?? 0,
            description: "The journal sequence of the newest snapshot written since start (0 = none yet): a restart replays the journal after it.");
        meter.CreateObservableGauge("rampay_snapshotter_sequence", () => engine.RunningEngine?.SnapshotterSequence ?? 0,
            description: "The last journal sequence the snapshotter's replica has applied (0 when the writer takes the snapshots); behind rampay_journal_sequence by its lag.");
        meter.CreateObservableGauge("rampay_journal_retained_bytes", () => RetainedBytes(engine),
            description: "Bytes of journal segments in the journal directory (the archive not included): what retirement keeps bounded.");
    }

    private static long RetainedBytes(EngineHost engine)
    {
        if (engine.RunningEngine?.Options.JournalDirectory is not { } directory || !Directory.Exists(directory)) return 0;
        long bytes = 0;
        // A segment retired between the listing and its length is simply not counted.
        foreach (var file in new DirectoryInfo(directory).EnumerateFiles(SegmentFormat.FilePrefix + "*" + SegmentFormat.FileExtension))
        {
            try { bytes += file.Length; }
            catch (FileNotFoundException) { }
        }
        return bytes;
    }
}
