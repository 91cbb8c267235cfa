using RamPay.Core;

namespace RamPay.Engine;

/// <summary>
/// One slot of the engine's ring: either a command (as the producer wrote it, with the result the business logic
/// wrote and the journal sequence the journaler gave it) or a read-only query. The correlation is the producer's
/// token for finding its caller when the output stage completes the slot; it is not journaled.
/// </summary>
public struct CommandSlot
{
    public Command Command;
    public CommandResult Result;
    public long Correlation;
    /// <summary>Set by the journaler for a command; 0 for a query, which is not journaled.</summary>
    public long JournalSequence;
    /// <summary>Non-null for a query slot: it is answered by the business logic and completed by the output stage.</summary>
    public ILedgerQuery? Query;
    /// <summary>Bytes journaled after the command (RegisterUser's profile, a payment's note); null for most commands.</summary>
    public byte[]? Attachment;
    /// <summary>For a command: read right after it is applied, on the business-logic thread (null for almost every command).</summary>
    public ICommandReadBack? ReadBack;
    /// <summary>What the prefetch stage found in the cold tier for the command's key (with a cold tier only).</summary>
    public KeyLookup Prefetched;
    /// <summary>What the prefetch stage found in the payments' cold tier for the payment the command acts on (rules version 3 with that tier only).</summary>
    public PaymentLookup PaymentPrefetched;
    /// <summary>What the fraud stage decided for the command (rules version 4, with the engine's fraud step only; FraudStageStep.cs).</summary>
    public StagedFraud Fraud;
}

/// <summary>
/// What a producer wants to know of the ledger right after its command is applied (the payment it made, say), read
/// on the business-logic thread in the same pass, so that answering needs no second trip through the ring. The
/// answer is the producer's to pick up once the command completes; the output stage's ordering makes it visible.
/// </summary>
public interface ICommandReadBack
{
    /// <summary>On the business-logic thread, after the command: copy what is needed. Must be quick, must not block or throw.</summary>
    void Execute(IReadOnlyLedger ledger, in CommandResult result);
}

/// <summary>
/// A read of the ledger that goes through the ring like a command but is not journaled. The business-logic thread
/// runs <see cref="Execute"/> between commands, so it sees a state no command is half-way through, with no lock; the
/// output stage runs <see cref="Complete"/> only once every command before it is durable, so an answer never shows
/// money that a crash could still take back.
/// </summary>
public interface ILedgerQuery
{
    /// <summary>On the business-logic thread: copy what is needed out of the ledger. Must be quick, must not block or throw.</summary>
    void Execute(IReadOnlyLedger ledger);

    /// <summary>On the output thread: hand the answer to whoever waits. Must be quick and must not throw.</summary>
    void Complete();
}

/// <summary>Record types the engine writes into the journal. Persisted: values frozen, only appended.</summary>
public static class RecordTypes
{
    /// <summary>
    /// A <see cref="Command"/> encoded by <see cref="CommandCodec"/> (80 bytes), followed by its attachment, if any
    /// (at most <see cref="MaxAttachmentBytes"/>).
    /// </summary>
    public const byte Command = 1;

    public const int MaxAttachmentBytes = RamPay.Journal.RecordFormat.MaxPayloadSize - CommandCodec.Size;
}

/// <summary>
/// Told about every command once it is durable and applied, in journal order, on the output thread.
/// Implementations reply to callers; they must be quick and must not throw.
/// </summary>
public interface ICommandCompletion
{
    void OnCompleted(long journalSequence, ref CommandSlot slot);
}
