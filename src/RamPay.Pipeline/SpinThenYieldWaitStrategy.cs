namespace RamPay.Pipeline;

/// <summary>
/// Spins briefly, then yields the core until the sequence arrives. Lowest wake-up latency without a
/// dedicated core, but an idle consumer keeps a core busy yielding: on a small machine prefer
/// <see cref="SpinThenBlockWaitStrategy"/>.
/// </summary>
public sealed class SpinThenYieldWaitStrategy : IWaitStrategy
{
    public const int DefaultSpinIterations = 100;

    private readonly int _spinIterations;

    public SpinThenYieldWaitStrategy(int spinIterations = DefaultSpinIterations) =>
        _spinIterations = SpinPhase.RequireNonNegative(spinIterations, nameof(spinIterations));

    public long WaitFor(long sequence, SequenceBarrier barrier)
    {
        long available;
        // Each round yields for as long as an int counts, so in practice one round waits for good.
        while ((available = SpinPhase.Run(sequence, barrier, _spinIterations, int.MaxValue)) < sequence)
        {
        }
        return available;
    }

    /// <summary>Nobody ever blocks, so there is nobody to wake.</summary>
    public void SignalAllWhenBlocking()
    {
    }
}
