namespace RamPay.Fraud.Tests;

internal static class Allocations
{
    /// <summary>
    /// Runs up to three rounds and requires one that allocates 0 bytes on this thread. As in the Core tests'
    /// AllocationTests, the runtime was seen to charge a one-off few bytes to a thread during a measured loop (tiering,
    /// on-stack replacement); an allocation per call shows in every round.
    /// </summary>
    public static void AssertARoundAllocatesNothing(Action<int> round)
    {
        var bytes = new List<long>();
        for (int r = 0; r < 3; r++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            round(r);
            bytes.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            if (bytes[^1] == 0) break;
        }
        Assert.True(bytes[^1] == 0, "bytes allocated per round: " + string.Join(", ", bytes));
    }
}
