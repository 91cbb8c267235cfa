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

    private long _sentWhole;

    public string Source => source;

    /// <summary>The SHA1 that EVALSHA sends (SCRIPT EXISTS takes it in hex).</summary>
    public string Sha1Hex => Convert.ToHexStringLower(_sha1);

    /// <summary>How many calls were answered NOSCRIPT and sent the script whole (tests: the fallback is taken, and only once).</summary>
    public long SentWhole => Interlocked.Read(ref _sentWhole);

    public async Task<RedisResult> EvaluateAsync(IDatabaseAsync db, RedisKey[] keys, RedisValue[] values)
    {
        try
        {
            return await db.ScriptEvaluateAsync(_sha1, keys, values).ConfigureAwait(false);
        }
        catch (RedisServerException e) when (e.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            Interlocked.Increment(ref _sentWhole);
            return await db.ScriptEvaluateAsync(source, keys, values).ConfigureAwait(false);
        }
    }
}

internal static class TaskTimeouts
{
    /// <summary>
    /// Waits at most <paramref name="timeout"/>. StackExchange.Redis's own AsyncTimeout is one per connection and is
    /// checked by its heartbeat (once a second), while the rate limiter and the lease each need their own, shorter
    /// bound (200 ms for a rate-limit decision); a call given up on is still observed, so its late failure is not an unobserved one.
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
