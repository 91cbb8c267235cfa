using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace RamPay.Redis;

/// <summary>
/// A token bucket per key kept in Redis, so every ingress node that shares the Redis shares one limit per user.
/// One Lua script reads, refills, takes and writes the bucket atomically; the bucket is a hash
/// (<c>tokens</c>, <c>ts</c>) that expires once it would be full again, so idle keys cost nothing.
/// </summary>
/// <remarks>
/// <para><b>Whose clock.</b> The script reads Redis's own clock (<c>TIME</c>), not the caller's: every node then
/// refills a bucket by the same clock, and a node whose clock is off cannot mint tokens. Redis 7 replicates a
/// script by its effects, so reading <c>TIME</c> before a write is allowed.</para>
/// <para><b>Fail open.</b> When Redis is unreachable, slow (over the timeout) or answers with an error, the call is
/// decided by the in-process <c>fallback</c> limiter instead: each node then enforces the limit on its own (a
/// client spread over N nodes may get up to N times the rate) until Redis answers again. The limit protects capacity
/// and fairness; it guards no money (the ledger does that in every case). Failing closed would turn a Redis outage
/// into a payment outage, and no limit at all would leave the nodes open to one abusive client; the per-node limit
/// is the middle. Every fallback decision is counted (<see cref="FallbackDecisions"/> and the
/// <c>rampay.ratelimit.redis_fallbacks</c> counter of meter <c>RamPay.Redis</c>) and each switch is logged once.
/// After a failure Redis is not asked again for <c>retryRedisAfter</c> (a circuit breaker), so an outage does not
/// add a timeout to every request.</para>
/// </remarks>
public sealed partial class RedisRateLimiter : IRateLimiter
{
    private static readonly Meter Meter = new("RamPay.Redis");
    private static readonly Counter<long> Fallbacks = Meter.CreateCounter<long>(
        "rampay.ratelimit.redis_fallbacks", unit: "{decision}", description: "Rate-limit decisions made in-process because Redis was unreachable");

    // KEYS[1] = the bucket; ARGV = rate (tokens/s), burst, cost. Returns {allowed (0/1), retry-after in µs}.
    private static readonly RedisScript TokenBucket = new("""
        local rate = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        local cost = tonumber(ARGV[3])
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
        local tokens = tonumber(state[1])
        local ts = tonumber(state[2])
        if tokens == nil or ts == nil then
          tokens = burst
          ts = now
        end
        local elapsed = now - ts
        if elapsed < 0 then elapsed = 0 end
        tokens = math.min(burst, tokens + elapsed * rate / 1000000)
        local allowed = 0
        local retry = 0
        if tokens >= cost then
          tokens = tokens - cost
          allowed = 1
        else
          retry = math.ceil((cost - tokens) * 1000000 / rate)
        end
        redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%d', now))
        redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
        return {allowed, retry}
        """);

    private readonly IConnectionMultiplexer _redis;
    private readonly string _keyPrefix;
    private readonly IRateLimiter _fallback;
    private readonly TimeSpan _timeout;
    private readonly long _retryRedisAfterTicks;
    private readonly ILogger _logger;
    private readonly string _name;
    private readonly RedisValue _rate, _burst;
    private long _redisAgainAt; // Stopwatch timestamp: until then decisions go to the fallback
    private int _usingFallback;
    private long _fallbackDecisions;

    /// <param name="redis">A shared connection (created with AbortOnConnectFail = false, so it reconnects by itself).</param>
    /// <param name="keyPrefix">Prepended to every key (e.g. <c>rampay:rl:http:</c>); tests use a unique one each.</param>
    /// <param name="fallback">Decides while Redis cannot; same rate and burst, in-process.</param>
    /// <param name="timeout">Longest wait for Redis before the fallback decides.</param>
    /// <param name="retryRedisAfter">After a failure, how long decisions go to the fallback before Redis is tried again.</param>
    /// <param name="logger">Told once when the limiter falls back (a warning) and once when Redis is back.</param>
    /// <param name="name">The limiter's name in log events (<c>Limiter</c>) and in the fallback counter's tag.</param>
    public RedisRateLimiter(IConnectionMultiplexer redis, string keyPrefix, IRateLimiter fallback, TimeSpan timeout, TimeSpan retryRedisAfter, ILogger? logger = null, string name = "rate limit")
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        _redis = redis;
        _keyPrefix = keyPrefix;
        _fallback = fallback;
        _timeout = timeout;
        _retryRedisAfterTicks = (long)(retryRedisAfter.TotalSeconds * Stopwatch.Frequency);
        _logger = logger ?? NullLogger.Instance;
        _name = name;
        _rate = fallback.RatePerSecond;
        _burst = fallback.Burst;
    }

    public bool Enabled => _fallback.Enabled;
    public int RatePerSecond => _fallback.RatePerSecond;
    public int Burst => _fallback.Burst;

    /// <summary>Decisions made by the in-process fallback since start (Redis unreachable, slow or failing).</summary>
    public long FallbackDecisions => Interlocked.Read(ref _fallbackDecisions);

    public ValueTask<RateLimitDecision> AcquireAsync(string key, int cost = 1)
    {
        if (!Enabled) return new(RateLimitDecision.Allow);
        ArgumentOutOfRangeException.ThrowIfLessThan(cost, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cost, Burst);
        if (Stopwatch.GetTimestamp() < Volatile.Read(ref _redisAgainAt)) return Fallback(key, cost);
        return AcquireFromRedis(key, cost);
    }

    private async ValueTask<RateLimitDecision> AcquireFromRedis(string key, int cost)
    {
        RedisResult result;
        try
        {
            result = await TokenBucket.EvaluateAsync(_redis.GetDatabase(), [(RedisKey)(_keyPrefix + key)], [_rate, _burst, cost])
                .WithTimeout(_timeout, _name).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            Volatile.Write(ref _redisAgainAt, Stopwatch.GetTimestamp() + _retryRedisAfterTicks);
            if (Interlocked.Exchange(ref _usingFallback, 1) == 0)
                LogFellBack(_logger, _name, e.Message);
            return await Fallback(key, cost).ConfigureAwait(false);
        }
        if (Volatile.Read(ref _usingFallback) == 1 && Interlocked.Exchange(ref _usingFallback, 0) == 1)
            LogRedisBack(_logger, _name);
        var values = (RedisResult[])result!;
        bool allowed = (long)values[0] == 1;
        return allowed ? RateLimitDecision.Allow : new RateLimitDecision(false, TimeSpan.FromTicks((long)values[1] * 10));
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "{Limiter}: Redis is unreachable ({Reason}); limiting in-process until it answers again")]
    private static partial void LogFellBack(ILogger logger, string limiter, string reason);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "{Limiter}: Redis answers again; the limit is shared again")]
    private static partial void LogRedisBack(ILogger logger, string limiter);

    private ValueTask<RateLimitDecision> Fallback(string key, int cost)
    {
        Interlocked.Increment(ref _fallbackDecisions);
        Fallbacks.Add(1, new KeyValuePair<string, object?>("limiter", _name));
        return _fallback.AcquireAsync(key, cost);
    }
}
