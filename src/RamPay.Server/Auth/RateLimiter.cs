namespace RamPay.Server.Auth;

/// <summary>
/// A token bucket per client (a user id, or an address before login): <c>Burst</c> requests at once, refilled at
/// <c>RequestsPerSecond</c>. In-process: each server limits its own ingress (issue 4 moves this to Redis so that
/// several ingress nodes share one limit). Memory is bounded: past <see cref="MaxClients"/> buckets, full ones are
/// dropped (a full bucket is the same as no bucket).
/// </summary>
public sealed class RateLimiter(int requestsPerSecond, int burst, TimeProvider? time = null)
{
    public const int MaxClients = 100_000;
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Bucket> _buckets = new();

    public bool Enabled => requestsPerSecond > 0;

    /// <summary>Takes one token; false (with the seconds until one is back) when the client is over its rate.</summary>
    public bool TryAcquire(string client, out int retryAfterSeconds)
    {
        retryAfterSeconds = 0;
        if (!Enabled) return true;
        long now = _time.GetTimestamp();
        if (_buckets.Count >= MaxClients) Trim(now);
        var bucket = _buckets.GetOrAdd(client, static (_, b) => new Bucket(b), (double)burst);
        lock (bucket)
        {
            double elapsed = bucket.LastTimestamp == 0 ? 0 : (now - bucket.LastTimestamp) / (double)_time.TimestampFrequency;
            bucket.LastTimestamp = now;
            bucket.Tokens = Math.Min(burst, bucket.Tokens + elapsed * requestsPerSecond);
            if (bucket.Tokens >= 1)
            {
                bucket.Tokens -= 1;
                return true;
            }
            retryAfterSeconds = Math.Max(1, (int)Math.Ceiling((1 - bucket.Tokens) / requestsPerSecond));
            return false;
        }
    }

    private void Trim(long now)
    {
        foreach (var (key, bucket) in _buckets)
        {
            double idle = (now - bucket.LastTimestamp) / (double)_time.TimestampFrequency;
            if (bucket.Tokens + idle * requestsPerSecond >= burst) _buckets.TryRemove(key, out _);
        }
    }

    private sealed class Bucket(double tokens)
    {
        public double Tokens = tokens;
        public long LastTimestamp;
    }
}
