using System.Diagnostics;
using System.Threading.RateLimiting;
using RamPay.Redis;

namespace RamPay.Server.Auth;

/// <summary>
/// One client's partition of ASP.NET Core's partitioned rate limiter: a <see cref="RateLimiter"/> over that client's
/// bucket in an <see cref="IRateLimiter"/> (the Redis-shared token bucket when Redis is configured, the in-process one
/// otherwise). The bucket's state lives in the <see cref="IRateLimiter"/>, not here, so the framework may drop an
/// idle partition (<see cref="IdleDuration"/>) without losing anything.
/// </summary>
/// <remarks>
/// The middleware first calls <see cref="RateLimiter.AttemptAcquire"/> (synchronous) and, when that lease is not
/// acquired, <see cref="RateLimiter.AcquireAsync"/>. A Redis decision is a round trip, so the synchronous attempt
/// answers "not acquired" without asking and the asynchronous one asks; the in-process bucket answers at once either
/// way. A refusal takes no tokens, so asking twice never costs the client twice.
/// </remarks>
public sealed class BucketRateLimiter(IRateLimiter buckets, string key) : RateLimiter
{
    private static readonly RateLimitLease Acquired = new Lease(true, TimeSpan.Zero);
    private static readonly RateLimitLease NotAskedYet = new Lease(false, TimeSpan.Zero);
    private long _lastUsed = Stopwatch.GetTimestamp();

    public override TimeSpan? IdleDuration => Stopwatch.GetElapsedTime(Volatile.Read(ref _lastUsed));

    public override RateLimiterStatistics? GetStatistics() => null;

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        if (permitCount == 0) return Acquired;
        if (buckets is not InProcessRateLimiter local) return NotAskedYet;
        Volatile.Write(ref _lastUsed, Stopwatch.GetTimestamp());
        return local.TryAcquire(key, permitCount, out var retryAfter) ? Acquired : new Lease(false, retryAfter);
    }

    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        if (permitCount == 0) return Acquired;
        Volatile.Write(ref _lastUsed, Stopwatch.GetTimestamp());
        var decision = await buckets.AcquireAsync(key, permitCount).ConfigureAwait(false);
        return decision.Allowed ? Acquired : new Lease(false, decision.RetryAfter);
    }

    private sealed class Lease(bool acquired, TimeSpan retryAfter) : RateLimitLease
    {
        public override bool IsAcquired => acquired;

        public override IEnumerable<string> MetadataNames => acquired ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (!acquired && metadataName == MetadataName.RetryAfter.Name)
            {
                metadata = retryAfter;
                return true;
            }
            metadata = null;
            return false;
        }

        // Shared instances: nothing to release (a token bucket has no permits to give back).
        protected override void Dispose(bool disposing) { }
    }
}
