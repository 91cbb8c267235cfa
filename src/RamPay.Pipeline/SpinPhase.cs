namespace RamPay.Pipeline;

internal static class SpinPhase
{
    /// <summary>
    /// Polls for <paramref name="sequence"/>: first <paramref name="spinIterations"/> short pauses, then up to
    /// <paramref name="yieldIterations"/> yields of the core. Returns the highest available sequence, still
    /// below <paramref name="sequence"/> if it did not arrive. Yielding matters when threads outnumber cores:
    /// a producer waiting for this core runs instead of waiting out our spin.
    /// </summary>
    public static long Run(long sequence, SequenceBarrier barrier, int spinIterations, int yieldIterations)
    {
        long available = barrier.HighestAvailable(sequence);
        long iterations = (long)spinIterations + yieldIterations;
        for (long i = 0; i < iterations && available < sequence; i++)
        {
            barrier.CheckAlert();
            if (i < spinIterations)
            {
                Thread.SpinWait(1);
            }
            else
            {
                Thread.Yield();
            }
            available = barrier.HighestAvailable(sequence);
        }
        return available;
    }

    public static int RequireNonNegative(int iterations, string paramName) =>
        iterations >= 0 ? iterations : throw new ArgumentOutOfRangeException(paramName, iterations, "Must not be negative.");
}
