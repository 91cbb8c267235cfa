namespace RamPay.Sinks;

/// <summary>
/// Somewhere outside the process that committed changes go (PostgreSQL rows, Kafka events). A sink keeps its own
/// checkpoint: the journal sequence up to which everything it was given is written. Its <see cref="SinkRunner"/> calls
/// it from one thread, never concurrently; it resumes from <see cref="ReadCheckpoint"/> after a restart or a failure.
/// </summary>
public interface IChangeSink : IDisposable
{
    /// <summary>A short lower-case name for metrics and logs: "postgres", "kafka".</summary>
    string Name { get; }

    /// <summary>
    /// Prepares the sink (connects, applies migrations) and returns its checkpoint: the last journal sequence it has
    /// written (0 = nothing yet) and that record's journaled time. Throws when the outside system is unreachable; the
    /// runner retries with backoff. Called again after every failed <see cref="Write"/>.
    /// </summary>
    SinkCheckpoint Open();

    /// <summary>
    /// Writes <paramref name="changes"/> (in stream order, each with a sequence above the checkpoint, whole records:
    /// a batch never splits one sequence's changes) and moves the checkpoint to <paramref name="through"/>,
    /// the last change's sequence and time. When this returns, both are durable. Throws on failure, after which the
    /// runner calls <see cref="Open"/> again and re-sends from the checkpoint that returns; so either the batch and its
    /// checkpoint are written together (PostgreSQL: one transaction), or re-sending it is harmless to the consumer
    /// (Kafka: events carry ids derived from <see cref="Change.Sequence"/> and <see cref="Change.Index"/>).
    /// </summary>
    void Write(ReadOnlySpan<Change> changes, SinkCheckpoint through);
}

/// <summary>A sink's position in the journal: the last record it has written, and that record's journaled time (unix ms).</summary>
public readonly record struct SinkCheckpoint(long Sequence, long TimestampMs)
{
    public static readonly SinkCheckpoint None = default;
}

/// <summary>
/// A sink whose <see cref="IChangeSink.Write"/> survives a process crash when it returns, but a power loss only from a
/// later fsync on (the event log between its periodic fsynced commits, docs/events.md). After a power loss it reopens
/// at an older checkpoint and is sent the records again from there; so journal retirement (the hub's
/// <see cref="SinkHub.FinishedThroughSequence"/>) must count only what is on the disk for good.
/// </summary>
public interface IPowerLossCheckpointSink : IChangeSink
{
    /// <summary>The last journal sequence whose writes (and checkpoint) are fsynced: at or before the runner's checkpoint.</summary>
    long FsyncedThroughSequence { get; }
}
