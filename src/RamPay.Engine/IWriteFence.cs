namespace RamPay.Engine;

/// <summary>
/// Permission to write the data directory, asked for by the engine's writer before each journal batch is appended,
/// before it is committed, and before a snapshot is written. A fence that says no throws; the throw faults the
/// pipeline, so nothing more is written and the host stops (the server exits with code 70).
/// </summary>
/// <remarks>
/// Used when several processes could open the same journal: only the holder of a writer lease may write (see
/// RamPay.Redis's <c>RedisWriterLease</c>). The check runs on the journal thread once or twice per batch, so it
/// must be cheap: a clock read and a comparison, no I/O. Without a fence (the embedded default) one process owns
/// the data directory and nothing is asked.
/// </remarks>
public interface IWriteFence
{
    /// <summary>Returns if this process may still write; throws (with the reason) if it must stop.</summary>
    void CheckCanWrite();
}
