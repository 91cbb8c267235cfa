namespace RamPay.Webhooks;

/// <summary>The retry schedule webhooks and notifications share: exponential backoff with jitter.</summary>
public static class Retry
{
    /// <summary>The delay before attempt n+1 (n = <paramref name="attempt"/> ≥ 1): base × 2^(n−1), capped at <paramref name="max"/>, times a jitter in [0.5, 1.5).</summary>
    public static long BackoffMs(int attempt, TimeSpan retryBase, TimeSpan max)
    {
        double baseMs = retryBase.TotalMilliseconds * Math.Pow(2, Math.Min(30, Math.Max(0, attempt - 1)));
        double capped = Math.Min(baseMs, max.TotalMilliseconds);
        return (long)(capped * (0.5 + Random.Shared.NextDouble()));
    }
}
