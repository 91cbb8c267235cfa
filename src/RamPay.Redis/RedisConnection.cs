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
        // While the connection is down, fail each call at once (as 1.2.x did) instead of queueing it until a timeout
        // (the default since 2.5): the rate limiter then falls back without adding a timeout to the request, and the
        // writer lease retries on its own schedule. 1.2.x also needed PreserveAsyncOrder switched off (completions in
        // arrival order through one worker per connection); 2.x and later never order them.
        options.BacklogPolicy = BacklogPolicy.FailFast;
        return await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
    }
}
