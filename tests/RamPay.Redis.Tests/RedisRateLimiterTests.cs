using RamPay.TestSupport;
using StackExchange.Redis;

namespace RamPay.Redis.Tests;

[Trait("Category", "Integration")]
public class RedisRateLimiterTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    private static RedisRateLimiter Limiter(IConnectionMultiplexer redis, string prefix, int rate, int burst, RecordingLogger? log = null) =>
        new(redis, prefix, new InProcessRateLimiter(rate, burst), Timeout, TimeSpan.FromSeconds(1), log, "test rate limit");

    [Fact]
    public async Task It_allows_the_burst_then_refuses_with_the_time_until_a_token_is_back()
    {
        await using var scope = new RedisScope();
        var limiter = Limiter(await TestRedis.SharedAsync(), scope.Prefix, rate: 1, burst: 5);
        for (int i = 0; i < 5; i++) Assert.True((await limiter.AcquireAsync("u:1")).Allowed, $"request {i} of the burst");
        var refused = await limiter.AcquireAsync("u:1");
        Assert.False(refused.Allowed);
        // One token comes back a second after the bucket was first touched, less the time the burst took.
        Assert.InRange(refused.RetryAfter, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(1));
        Assert.Equal(1, refused.RetryAfterSeconds);
        Assert.True((await limiter.AcquireAsync("u:2")).Allowed); // another key has its own bucket
        Assert.Equal(0, limiter.FallbackDecisions);
    }

    [Fact]
    public async Task It_refills_at_the_rate_and_never_beyond_the_burst()
    {
        await using var scope = new RedisScope();
        var limiter = Limiter(await TestRedis.SharedAsync(), scope.Prefix, rate: 2, burst: 2);
        Assert.True((await limiter.AcquireAsync("k", 2)).Allowed);
        // Two tokens take a second to come back; a second call right after the first finds at most a few.
        Assert.False((await limiter.AcquireAsync("k", 2)).Allowed);
        await Task.Delay(2_500); // five tokens' worth at 2/s, but the bucket holds 2
        Assert.True((await limiter.AcquireAsync("k", 2)).Allowed);
        Assert.False((await limiter.AcquireAsync("k", 2)).Allowed);
    }

    [Fact]
    public async Task Two_nodes_with_their_own_connections_share_one_bucket_per_key()
    {
        await using var scope = new RedisScope();
        using var otherNode = await TestRedis.ConnectAsync();
        var a = Limiter(await TestRedis.SharedAsync(), scope.Prefix, rate: 1, burst: 4);
        var b = Limiter(otherNode, scope.Prefix, rate: 1, burst: 4);
        Assert.True((await a.AcquireAsync("u:7")).Allowed);
        Assert.True((await b.AcquireAsync("u:7")).Allowed);
        Assert.True((await a.AcquireAsync("u:7")).Allowed);
        Assert.True((await b.AcquireAsync("u:7")).Allowed);
        // Each node alone took only 2 of its 4, yet the shared bucket is empty for both.
        Assert.False((await a.AcquireAsync("u:7")).Allowed);
        Assert.False((await b.AcquireAsync("u:7")).Allowed);
    }

    [Fact]
    public async Task A_cost_takes_that_many_tokens_or_none()
    {
        await using var scope = new RedisScope();
        var limiter = Limiter(await TestRedis.SharedAsync(), scope.Prefix, rate: 10, burst: 100);
        Assert.True((await limiter.AcquireAsync("tcp", 70)).Allowed);
        var refused = await limiter.AcquireAsync("tcp", 70);
        Assert.False(refused.Allowed);
        // 30 left, 40 missing at 10/s: about 4 s (less the few ms that passed).
        Assert.InRange(refused.RetryAfter, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(4));
        Assert.True((await limiter.AcquireAsync("tcp", 30)).Allowed); // the refusal took nothing
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await limiter.AcquireAsync("tcp", 101));
    }

    [Fact]
    public async Task The_bucket_key_expires_once_it_would_be_full_again()
    {
        await using var scope = new RedisScope();
        var redis = await TestRedis.SharedAsync();
        var limiter = Limiter(redis, scope.Prefix, rate: 100, burst: 10);
        Assert.True((await limiter.AcquireAsync("u:9", 5)).Allowed);
        var ttl = await redis.GetDatabase().KeyTimeToLiveAsync(scope.Prefix + "u:9");
        // 5 missing at 100/s = 50 ms, plus a second of slack.
        Assert.NotNull(ttl);
        Assert.InRange(ttl!.Value, TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(1_100));
    }

    [Fact]
    public async Task Without_Redis_it_fails_open_to_the_in_process_limiter_counts_it_and_says_so_once()
    {
        // Nothing listens on port 1: the connection is never up.
        using var nowhere = await RedisConnection.ConnectAsync("127.0.0.1:1", TimeSpan.FromMilliseconds(200));
        var log = new RecordingLogger();
        var limiter = Limiter(nowhere, TestRedis.NewPrefix(), rate: 1, burst: 3, log);
        for (int i = 0; i < 3; i++) Assert.True((await limiter.AcquireAsync("u:1")).Allowed);
        // The in-process fallback still limits: the burst is spent.
        var refused = await limiter.AcquireAsync("u:1");
        Assert.False(refused.Allowed);
        Assert.True(refused.RetryAfter > TimeSpan.Zero);
        Assert.Equal(4, limiter.FallbackDecisions);
        var said = Assert.Single(log.Entries, e => e.Message.Contains("unreachable", StringComparison.Ordinal));
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, said.Level);
        Assert.Equal("test rate limit", said.Fields["Limiter"]); // a field of its own in the JSON log, not only text
        Assert.False(string.IsNullOrEmpty(said.Fields["Reason"] as string));
    }

    [Fact]
    public async Task Without_Redis_a_decision_does_not_wait_for_the_timeout()
    {
        // A connection whose own timeouts are long (5 s) and a limiter that would wait 5 s: a call made while the
        // connection is down must fail at once (BacklogPolicy.FailFast), not sit in the connection's backlog until
        // a timeout, so the fallback decides without delaying the request.
        using var nowhere = await RedisConnection.ConnectAsync("127.0.0.1:1", TimeSpan.FromSeconds(5));
        var limiter = new RedisRateLimiter(nowhere, TestRedis.NewPrefix(), new InProcessRateLimiter(10, 10), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1));
        var started = System.Diagnostics.Stopwatch.StartNew();
        Assert.True((await limiter.AcquireAsync("u:1")).Allowed);
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(2.5), $"the first decision took {started.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal(1, limiter.FallbackDecisions);
    }

    [Fact]
    public async Task A_rate_of_zero_is_off_and_never_asks_Redis()
    {
        using var nowhere = await RedisConnection.ConnectAsync("127.0.0.1:1", TimeSpan.FromMilliseconds(200));
        var limiter = Limiter(nowhere, TestRedis.NewPrefix(), rate: 0, burst: 0);
        Assert.False(limiter.Enabled);
        for (int i = 0; i < 100; i++) Assert.True((await limiter.AcquireAsync("u:1")).Allowed);
        Assert.Equal(0, limiter.FallbackDecisions);
    }
}
