using StackExchange.Redis;

namespace RamPay.Redis.Tests;

/// <summary>
/// The real Redis the tests run against: <c>RAMPAY_TEST_REDIS</c> (host:port, written by scripts/services.sh into
/// .services.env), or 127.0.0.1:6379. An unreachable Redis fails the test with how to start it; nothing is skipped.
/// </summary>
public static class TestRedis
{
    public static string Address => Environment.GetEnvironmentVariable("RAMPAY_TEST_REDIS") is { Length: > 0 } v ? v : "127.0.0.1:6379";

    private static readonly Lazy<Task<ConnectionMultiplexer>> Shared = new(() => ConnectAsync());

    /// <summary>One connection shared by the tests of this process (as a server shares one).</summary>
    public static Task<ConnectionMultiplexer> SharedAsync() => Shared.Value;

    /// <summary>A connection of its own: another "node".</summary>
    public static async Task<ConnectionMultiplexer> ConnectAsync()
    {
        var redis = await RedisConnection.ConnectAsync(Address, TimeSpan.FromSeconds(5), "rampay-tests");
        try
        {
            await redis.GetDatabase().PingAsync();
        }
        catch (RedisException e)
        {
            redis.Dispose();
            throw new InvalidOperationException(
                $"Redis at {Address} (RAMPAY_TEST_REDIS) is not reachable: run 'bash scripts/services.sh start' and 'source .services.env'. {e.Message}", e);
        }
        return redis;
    }

    /// <summary>A key prefix no other test uses.</summary>
    public static string NewPrefix() => $"rampay-test:{Guid.NewGuid():N}:";

    /// <summary>Deletes every key under the prefix (a script: KEYS is fine on a test Redis, and it stays async).</summary>
    public static async Task DeleteKeysAsync(string prefix)
    {
        var redis = await SharedAsync();
        await redis.GetDatabase().ScriptEvaluateAsync("""
            local n = 0
            for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
              n = n + redis.call('DEL', key)
            end
            return n
            """, [], [prefix + "*"]);
    }
}

/// <summary>A unique key prefix for one test, whose keys are deleted at the end.</summary>
public sealed class RedisScope : IAsyncDisposable
{
    public string Prefix { get; } = TestRedis.NewPrefix();

    public ValueTask DisposeAsync() => new(TestRedis.DeleteKeysAsync(Prefix));
}
