namespace RamPay.Redis;

/// <summary>
/// A token bucket per key in this process's memory: each process limits its own ingress. It is the limiter of the
/// embedded default (no Redis) and the fallback of <see cref="RedisRateLimiter"/> while Redis is unreachable.
/// Memory is bounded: past <see cref="MaxClients"/> buckets, full ones are dropped (a full bucket is the same as no
/// bucket).
/// </summary>
public sealed class InProcessRateLimiter(int ratePerSecond, int burst, TimeProvider? time = null) : IRateLimiter
{
    public const int MaxClients = 100_000;
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Bucket> _buckets = new();

    public bool Enabled => ratePerSecond > 0;
    public int RatePerSecond => ratePerSecond;
    public int Burst => burst;

    public ValueTask<RateLimitDecision> AcquireAsync(string key, int cost = 1) =>
        new(TryAcquire(key, cost, out var retryAfter) ? RateLimitDecision.Allow : new RateLimitDecision(false, retryAfter));

    /// <summary>Takes one token; false (with the whole seconds until one is back, at least 1) when the key is over its rate.</summary>
    public bool TryAcquire(string key, out int retryAfterSeconds)
    {
        bool allowed = TryAcquire(key, 1, out var retryAfter);
        retryAfterSeconds = allowed ? 0 : new RateLimitDecision(false, retryAfter).RetryAfterSeconds;
        return allowed;
    }

    /// <summary>Takes <paramref name="cost"/> tokens or none; <paramref name="retryAfter"/> is when enough are back.</summary>
    public bool TryAcquire(string key, int cost, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        if (!Enabled) return true;
        ArgumentOutOfRangeException.ThrowIfLessThan(cost, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cost, burst);
        long now = _time.GetTimestamp();
        if (_buckets.Count >= MaxClients) Trim(now);
        var bucket = _buckets.GetOrAdd(key, static (_, b) => new Bucket(b), (double)burst);
        lock (bucket)
        {
            double elapsed = bucket.LastTimestamp == 0 ? 0 : (now - bucket.LastTimestamp) / (double)_time.TimestampFrequency;
            bucket.LastTimestamp = now;
            bucket.Tokens = Math.Min(burst, bucket.Tokens + elapsed * ratePerSecond);
            if (bucket.Tokens >= cost)
            {
                bucket.Tokens -= cost;
                return true;
            }
            retryAfter = TimeSpan.FromSeconds((cost - bucket.Tokens) / ratePerSecond);
            return false;
        }
    }

    private void Trim(long now)
    {
        foreach (var (key, bucket) in _buckets)
        {
            double idle = (now - bucket.LastTimestamp) / (double)_time.TimestampFrequency;
            if (bucket.Tokens + idle * ratePerSecond >= burst) _buckets.TryRemove(key, out _);
        }
    }

    private sealed class Bucket(double tokens)
    {
        public double Tokens = tokens;
        public long LastTimestamp;
    }
}
