namespace RamPay.Redis;

/// <summary>What a rate limiter decided: allowed, or refused with the time until enough tokens are back.</summary>
public readonly record struct RateLimitDecision(bool Allowed, TimeSpan RetryAfter)
{
    public static readonly RateLimitDecision Allow = new(true, TimeSpan.Zero);

    /// <summary>The retry delay in whole seconds, at least 1 (an HTTP Retry-After header).</summary>
    public int RetryAfterSeconds => Math.Max(1, (int)Math.Ceiling(RetryAfter.TotalSeconds));
}

/// <summary>
/// A token bucket per key (a user, a client address, a TCP user): <see cref="Burst"/> tokens at most, refilled at
/// <see cref="RatePerSecond"/>. Each call takes <c>cost</c> tokens or none.
/// Implementations: <see cref="InProcessRateLimiter"/> (each process limits on its own) and
/// <see cref="RedisRateLimiter"/> (every process that shares the Redis shares one bucket per key).
/// </summary>
public interface IRateLimiter
{
    /// <summary>False when the rate is 0: every call is allowed without any work.</summary>
    bool Enabled { get; }
    int RatePerSecond { get; }
    int Burst { get; }

    /// <summary>
    /// Takes <paramref name="cost"/> tokens from the key's bucket, or refuses (taking none). Never blocks a thread:
    /// the Redis limiter awaits its round trip. <paramref name="cost"/> must be 1..<see cref="Burst"/>.
    /// </summary>
    ValueTask<RateLimitDecision> AcquireAsync(string key, int cost = 1);
}
