namespace RamPay.Pipeline;

/// <summary>
/// How a stage waits for a sequence to become available, and how it is woken. Producers held back by a full
/// ring wait with it too, on a barrier over the gating stages.
/// </summary>
public interface IWaitStrategy
{
    /// <summary>
    /// Returns <see cref="SequenceBarrier.HighestAvailable"/> once it has reached <paramref name="sequence"/>;
    /// throws <see cref="AlertException"/> when the barrier is alerted meanwhile.
    /// </summary>
    long WaitFor(long sequence, SequenceBarrier barrier);

    /// <summary>
    /// Called after any sequence a waiter may depend on has moved: a publish, a stage finishing a batch, an
    /// alert. Must be cheap when nobody is blocked: it runs once per publish and once per batch.
    /// </summary>
    void SignalAllWhenBlocking();
}

/// <summary>Thrown out of a wait when its <see cref="SequenceBarrier"/> is alerted, so a processor can stop.</summary>
public sealed class AlertException : Exception
{
    public AlertException()
        : base("The sequence barrier was alerted.")
    {
    }
}
