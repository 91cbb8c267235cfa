using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace RamPay.Redis;

/// <summary>
/// A Lua script run by its SHA1 (EVALSHA), so each call sends 40 bytes instead of the script. When the server does
/// not know the script yet (first use, a restarted or flushed Redis: NOSCRIPT), one EVAL sends it whole, which also
/// caches it there for the next EVALSHA.
/// </summary>
internal sealed class RedisScript(string source)
{
    private readonly byte[] _sha1 = SHA1.HashData(Encoding.UTF8.GetBytes(source));

    public string Source => source;

    public async Task<RedisResult> EvaluateAsync(IDatabaseAsync db, RedisKey[] keys, RedisValue[] values)
    {
        try
        {
            return await db.ScriptEvaluateAsync(_sha1, keys, values).ConfigureAwait(false);
        }
        catch (RedisServerException e) when (e.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await db.ScriptEvaluateAsync(source, keys, values).ConfigureAwait(false);
        }
    }
}

internal static class TaskTimeouts
{
    /// <summary>
    /// Waits at most <paramref name="timeout"/> (StackExchange.Redis 1.2.6 has no timeout of its own for async calls
    /// on a stalled connection); a call given up on is still observed, so its late failure is not an unobserved one.
    /// The caller always continues on the thread pool (ForceYielding), never inline on the Redis connection's
    /// completion thread: code after the await (an HTTP handler, the lease renewal) could otherwise stall the
    /// connection for every other caller, or deadlock it with a synchronous Redis call.
    /// </summary>
    public static async Task<T> WithTimeout<T>(this Task<T> task, TimeSpan timeout, string what)
    {
        try
        {
            return await task.WaitAsync(timeout).ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        }
        catch (TimeoutException)
        {
            _ = task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            throw new TimeoutException($"{what}: Redis did not answer within {timeout.TotalMilliseconds:0} ms");
        }
    }
}
