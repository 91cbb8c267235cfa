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
        return await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
    }
}
