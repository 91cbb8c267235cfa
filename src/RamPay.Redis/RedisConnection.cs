using StackExchange.Redis;

namespace RamPay.Redis;

/// <summary>Opens the one Redis connection a process shares (StackExchange.Redis multiplexes every caller over it).</summary>
public static class RedisConnection
{
    /// <summary>
    /// Connects to <paramref name="configuration"/> (StackExchange.Redis form: <c>host:port[,password=...][,ssl=true]</c>).
    /// Does not fail when Redis is down: the connection keeps retrying in the background, the rate limiter falls back
    /// meanwhile, and a writer lease waits for it.
    /// </summary>
    public static async Task<ConnectionMultiplexer> ConnectAsync(string configuration, TimeSpan timeout, string clientName = "rampay")
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = (int)timeout.TotalMilliseconds;
        options.SyncTimeout = (int)timeout.TotalMilliseconds;
        options.ConnectRetry = 1;
        options.ClientName ??= clientName;
        var redis = await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
        // Completions in arrival order go through one worker per connection in 1.2.x: a slow continuation would hold
        // up every other caller, and a synchronous call made from one deadlocks until its timeout. Order across
        // callers means nothing here, so results are handed out as they come (the 2.x behaviour).
        redis.PreserveAsyncOrder = false;
        return redis;
    }
}
