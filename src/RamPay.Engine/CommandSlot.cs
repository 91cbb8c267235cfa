using RamPay.Core;

namespace RamPay.Engine;

/// <summary>
/// One slot of the engine's ring: the command as the producer wrote it, the result the business logic wrote,
/// and a token the producer uses to find its caller when the output stage completes the slot (not journaled).
/// </summary>
public struct CommandSlot
{
    public Command Command;
    public CommandResult Result;
    public long Correlation;
}

/// <summary>Record types the engine writes into the journal. Persisted: values frozen, only appended.</summary>
public static class RecordTypes
{
    /// <summary>A <see cref="Command"/> encoded by <see cref="CommandCodec"/>.</summary>
    public const byte Command = 1;
}

/// <summary>
/// Told about every command once it is durable and applied, in journal order, on the output thread.
/// Implementations reply to callers; they must be quick and must not throw.
/// </summary>
public interface ICommandCompletion
{
    void OnCompleted(long journalSequence, ref CommandSlot slot);
}
