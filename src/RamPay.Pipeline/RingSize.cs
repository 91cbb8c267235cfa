using System.Numerics;

namespace RamPay.Pipeline;

internal static class RingSize
{
    /// <summary>A power of two lets a sequence become an index with a mask instead of a division.</summary>
    public static void Require(int size, string paramName)
    {
        if (size < 1 || !BitOperations.IsPow2(size))
        {
            throw new ArgumentException($"Ring size must be a positive power of two, was {size}.", paramName);
        }
    }
}
