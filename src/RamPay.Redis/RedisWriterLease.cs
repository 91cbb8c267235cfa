using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RamPay.Engine;
using StackExchange.Redis;

namespace RamPay.Redis;

/// <summary>The writer lease is gone (expired, taken over, or a newer writer was seen): this process must not write.</summary>
public sealed class WriterLeaseLostException(string message) : Exception(message);

/// <summary>The data directory was written under a newer fencing token than the one just acquired.</summary>
public sealed class StaleFencingTokenException(string message) : Exception(message);

/// <summary>Settings of a <see cref="RedisWriterLease"/>.</summary>
public sealed record WriterLeaseOptions
{
    /// <summary>The lease key. The fencing-token counter is this key with <c>:fence</c> appended.</summary>
    public required string Key { get; init; }
    /// <summary>Who holds it, as shown to a waiting process (host, pid); a unique suffix is added per acquisition.</summary>
    public string Holder { get; init; } = $"{Environment.MachineName} pid {Environment.ProcessId}";
    /// <summary>How long the lease lasts without a renewal. Renewed every third of it.</summary>
    public TimeSpan Ttl { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>
    /// Subtracted from the TTL for the local deadline: covers a pause between the fence check and the write it
    /// allows, and any drift between this machine's clock rate and Redis's. At most half the TTL.
    /// </summary>
    public TimeSpan SafetyMargin { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>How often a waiting process asks again (default: a fifth of the TTL, at most 500 ms).</summary>
    public TimeSpan? PollInterval { get; init; }
    /// <summary>The longest wait for one Redis round trip.</summary>
    public TimeSpan RedisTimeout { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Where the highest fencing token is kept (<see cref="FencingTokenFile"/>); null = no file (tests of the lease alone).</summary>
    public string? FenceFile { get; init; }

    public string FenceCounterKey => Key + ":fence";
    public TimeSpan RenewInterval => Ttl / 3;
    public TimeSpan EffectivePollInterval => PollInterval ?? TimeSpan.FromMilliseconds(Math.Min(500, Ttl.TotalMilliseconds / 5));

    public void Validate()
    {
        if (string.IsNullOrEmpty(Key)) throw new ArgumentException("the lease key is empty");
        if (Ttl < TimeSpan.FromMilliseconds(300)) throw new ArgumentException("the lease TTL must be at least 300 ms");
        if (SafetyMargin < TimeSpan.Zero || SafetyMargin > Ttl / 2) throw new ArgumentException("the lease safety margin must be 0..TTL/2");
        if (RedisTimeout <= TimeSpan.Zero) throw new ArgumentException("the Redis timeout must be positive");
    }
}

/// <summary>
/// The right to be the single writer of one journal, held in Redis by a key with a TTL, with a fencing token.
/// <list type="bullet">
/// <item><b>Acquire</b>: one Lua script does <c>SET key value NX PX ttl</c> and, if that won, <c>INCR</c>s the
/// fencing-token counter and stores the token in the value. A process that finds the key taken waits (polling).
/// The token is then checked against, and written to, the data directory's <see cref="FencingTokenFile"/>.</item>
/// <item><b>Renew</b> every TTL/3: a script that <c>PEXPIRE</c>s the key only if it still holds our value.</item>
/// <item><b>Release</b> at a clean stop: a script that <c>DEL</c>s the key only if it still holds our value.</item>
/// <item><b>Check</b> (<see cref="CheckCanWrite"/>, the engine's <see cref="IWriteFence"/>): throws once the local
/// deadline has passed or a renewal found the key gone or someone else's. The deadline is the time the last
/// successful acquire/renew was <i>sent</i> plus the TTL minus the safety margin, on the monotonic clock: Redis
/// cannot expire the key before it, whatever the round trip took.</item>
/// </list>
/// A lost lease is final: this process stops writing and should exit; a restart waits for the lease again.
/// </summary>
public sealed partial class RedisWriterLease : IWriteFence, IAsyncDisposable
{
    // KEYS[1] = lease, KEYS[2] = token counter; ARGV[1] = value without the token, ARGV[2] = TTL in ms.
    // Returns {1, token, value} when acquired, else {0, current value, its remaining ms}.
    private static readonly RedisScript AcquireScript = new("""
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
          local token = redis.call('INCR', KEYS[2])
          local value = ARGV[1] .. ' token ' .. token
          redis.call('SET', KEYS[1], value, 'XX', 'PX', ARGV[2])
          return {1, token, value}
        end
        return {0, redis.call('GET', KEYS[1]) or '', redis.call('PTTL', KEYS[1])}
        """);

    // KEYS[1] = lease; ARGV[1] = our value, ARGV[2] = TTL in ms. 1 = renewed; 0 = gone or someone else's.
    private static readonly RedisScript RenewScript = new("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return 0
        """);

    // KEYS[1] = lease; ARGV[1] = our value. 1 = deleted; 0 = it was not ours any more.
    private static readonly RedisScript ReleaseScript = new("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('DEL', KEYS[1])
        end
        return 0
        """);

    private readonly IConnectionMultiplexer _redis;
    private readonly WriterLeaseOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly long _ttlTicks;
    private readonly long _marginTicks;
    private long _deadline; // Stopwatch timestamp after which this process must not write
    private volatile string? _lostReason;
    private int _lostSignalled;
    private Task _renewal = Task.CompletedTask;
    private int _released;

    /// <summary>Tests only: stops renewing without releasing, as a process stalled in a long pause would.</summary>
    internal volatile bool RenewalPaused;

    private RedisWriterLease(IConnectionMultiplexer redis, WriterLeaseOptions options, ILogger logger, string value, long token, long sentAt)
    {
        _redis = redis;
        _options = options;
        _logger = logger;
        Value = value;
        Token = token;
        _ttlTicks = ToTicks(options.Ttl);
        _marginTicks = ToTicks(options.SafetyMargin);
        _deadline = sentAt + _ttlTicks - _marginTicks;
    }

    /// <summary>The fencing token of this holding: higher than every earlier holder's.</summary>
    public long Token { get; }
    /// <summary>What the lease key holds while this process owns it.</summary>
    public string Value { get; }
    public string Key => _options.Key;
    public bool IsLost => _lostReason is not null || Stopwatch.GetTimestamp() >= Volatile.Read(ref _deadline);
    /// <summary>Why the lease was lost, or null.</summary>
    public string? LostReason => _lostReason;

    /// <summary>
    /// Called once, on a thread-pool thread, when the lease is lost (by a renewal or a check). The server exits then,
    /// rather than waiting for its next write to find out.
    /// </summary>
    public Action<string>? Lost { get; set; }

    /// <summary>
    /// Waits until this process holds the lease (polling; says once who holds it meanwhile), records the fencing
    /// token in the fence file, and starts renewing. Redis errors while waiting are reported once and retried.
    /// </summary>
    /// <exception cref="StaleFencingTokenException">The fence file holds a higher token (the lease is released again).</exception>
    /// <exception cref="OperationCanceledException">Cancelled while waiting.</exception>
    /// <param name="logger">The lease's events, with the lease key (<c>LeaseKey</c>) and token as fields; the server passes its <c>ILogger&lt;WriterLeaseService&gt;</c>.</param>
    public static async Task<RedisWriterLease> AcquireAsync(IConnectionMultiplexer redis, WriterLeaseOptions options, ILogger? logger = null, CancellationToken cancel = default)
    {
        options.Validate();
        logger ??= NullLogger.Instance;
        string value = $"{options.Holder} run {Guid.NewGuid():N}";
        bool toldWaiting = false;
        long toldErrorAt = 0; // Stopwatch timestamp of the last "cannot reach Redis" line: one every 30 s at most
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            long sentAt = Stopwatch.GetTimestamp();
            RedisResult[] answer;
            try
            {
                answer = (RedisResult[])(await AcquireScript.EvaluateAsync(redis.GetDatabase(),
                        [options.Key, options.FenceCounterKey], [value, (long)options.Ttl.TotalMilliseconds])
                    .WithTimeout(options.RedisTimeout, "acquiring the writer lease").ConfigureAwait(false))!;
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                if (toldErrorAt == 0 || Stopwatch.GetElapsedTime(toldErrorAt) > TimeSpan.FromSeconds(30))
                {
                    LogUnreachable(logger, options.Key, e.Message);
                    toldErrorAt = Stopwatch.GetTimestamp();
                }
                await Task.Delay(options.EffectivePollInterval, cancel).ConfigureAwait(false);
                continue;
            }
            if ((long)answer[0] == 1)
            {
                var lease = new RedisWriterLease(redis, options, logger, (string)answer[2]!, (long)answer[1], sentAt);
                await lease.RecordTokenAsync().ConfigureAwait(false);
                lease._renewal = Task.Run(lease.RenewLoop);
                return lease;
            }
            if (!toldWaiting)
            {
                LogWaiting(logger, options.Key, (string?)answer[1], (long)answer[2]);
                toldWaiting = true;
            }
            await Task.Delay(options.EffectivePollInterval, cancel).ConfigureAwait(false);
        }
    }

    /// <summary>Checks the fence file against our token and writes ours; on a newer token, releases and throws.</summary>
    private async Task RecordTokenAsync()
    {
        if (_options.FenceFile is not { } path) return;
        long recorded;
        try
        {
            recorded = FencingTokenFile.Read(path);
            if (recorded <= Token)
            {
                FencingTokenFile.Write(path, Token);
                return;
            }
        }
        catch
        {
            await ReleaseAsync().ConfigureAwait(false);
            throw;
        }
        await ReleaseAsync().ConfigureAwait(false);
        throw new StaleFencingTokenException(
            $"{path} holds fencing token {recorded}, newer than the token {Token} just acquired from Redis ({_options.FenceCounterKey}): " +
            "a newer writer has written this data directory, so this process must not. If instead Redis lost its counter " +
            $"(restarted without persistence), raise it past the file's: SET {_options.FenceCounterKey} {recorded}");
    }

    /// <summary>The engine's check, on the journal thread before each batch: a clock read and a comparison.</summary>
    public void CheckCanWrite()
    {
        if (_lostReason is { } reason) throw new WriterLeaseLostException(reason);
        if (Stopwatch.GetTimestamp() < Volatile.Read(ref _deadline)) return;
        MarkLost($"the writer lease {Key} (token {Token}) was not renewed in time: its local deadline passed");
        throw new WriterLeaseLostException(_lostReason!);
    }

    private void MarkLost(string reason)
    {
        _lostReason ??= reason;
        if (Interlocked.Exchange(ref _lostSignalled, 1) != 0) return;
        var lost = Lost;
        LogLost(_logger, Key, Token, _lostReason!);
        if (lost is not null) ThreadPool.QueueUserWorkItem(static s => s.lost(s.reason), (lost, reason: _lostReason!), preferLocal: false);
    }

    private async Task RenewLoop()
    {
        var interval = _options.RenewInterval;
        while (!_stop.IsCancellationRequested && _lostReason is null)
        {
            try
            {
                await Task.Delay(interval, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (_stop.IsCancellationRequested) return;
            interval = _options.RenewInterval;
            if (RenewalPaused) continue;
            long sentAt = Stopwatch.GetTimestamp();
            long renewed;
            try
            {
                renewed = (long)(await RenewScript.EvaluateAsync(_redis.GetDatabase(), [Key], [Value, (long)_options.Ttl.TotalMilliseconds])
                    .WithTimeout(_options.RedisTimeout, "renewing the writer lease").ConfigureAwait(false));
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                if (Stopwatch.GetTimestamp() >= Volatile.Read(ref _deadline))
                {
                    MarkLost($"the writer lease {Key} (token {Token}) could not be renewed before its deadline: {e.Message}");
                    return;
                }
                LogRenewalFailed(_logger, Key, Token, e.Message);
                interval = TimeSpan.FromMilliseconds(Math.Min(100, interval.TotalMilliseconds));
                continue;
            }
            if (renewed != 1)
            {
                MarkLost($"the writer lease {Key} (token {Token}) is gone or held by someone else: {await HolderAsync().ConfigureAwait(false)}");
                return;
            }
            long deadline = sentAt + _ttlTicks - _marginTicks;
            if (deadline > Volatile.Read(ref _deadline)) Volatile.Write(ref _deadline, deadline);
            CheckFenceFile();
        }
    }

    /// <summary>A newer writer that reached this data directory (shared storage) wrote a higher token: stop.</summary>
    private void CheckFenceFile()
    {
        if (_options.FenceFile is not { } path) return;
        try
        {
            long recorded = FencingTokenFile.Read(path);
            if (recorded > Token) MarkLost($"{path} holds fencing token {recorded}, newer than ours ({Token}): another writer took over");
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            LogFenceUnreadable(_logger, path, e.Message);
        }
    }

    private async Task<string> HolderAsync()
    {
        try
        {
            var value = await _redis.GetDatabase().StringGetAsync(Key).WithTimeout(_options.RedisTimeout, "reading the lease").ConfigureAwait(false);
            return value.IsNull ? "nobody (the key expired or was deleted)" : (string)value!;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return "unknown (" + e.Message + ")";
        }
    }

    /// <summary>
    /// Stops renewing and deletes the key if it is still ours, so a waiting process takes over at once; the check
    /// refuses from then on. Call it only after the last write (the engine has stopped). Idempotent; a Redis error here is reported, not thrown (the
    /// key then expires by its TTL).
    /// </summary>
    public async Task ReleaseAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        await _renewal.ConfigureAwait(false);
        bool wasLost = _lostReason is not null;
        _lostReason ??= $"the writer lease {Key} (token {Token}) was released by this process"; // no Lost callback: a chosen stop
        if (wasLost) return;
        try
        {
            long deleted = (long)(await ReleaseScript.EvaluateAsync(_redis.GetDatabase(), [Key], [Value])
                .WithTimeout(_options.RedisTimeout, "releasing the writer lease").ConfigureAwait(false));
            if (deleted != 1) LogNotOursAtRelease(_logger, Key, Token);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogReleaseFailed(_logger, Key, e.Message, (long)_options.Ttl.TotalMilliseconds);
        }
    }

    // The lease's log events. Messages read as before (scripts and tests wait for "waiting for the writer lease");
    // the key, token and reason are fields of their own in the JSON log format.
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "waiting for the writer lease {LeaseKey}: held by {LeaseHolder} (expires in {LeaseExpiresInMs} ms unless renewed)")]
    private static partial void LogWaiting(ILogger logger, string leaseKey, string? leaseHolder, long leaseExpiresInMs);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "cannot reach Redis for the writer lease {LeaseKey} ({Reason}); retrying")]
    private static partial void LogUnreachable(ILogger logger, string leaseKey, string reason);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "LOST the writer lease {LeaseKey} (token {FencingToken}): {Reason}")]
    private static partial void LogLost(ILogger logger, string leaseKey, long fencingToken, string reason);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "renewing the writer lease {LeaseKey} (token {FencingToken}) failed ({Reason}); retrying")]
    private static partial void LogRenewalFailed(ILogger logger, string leaseKey, long fencingToken, string reason);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "cannot read the fence file {FenceFile}: {Reason}")]
    private static partial void LogFenceUnreadable(ILogger logger, string fenceFile, string reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "the writer lease {LeaseKey} (token {FencingToken}) was no longer ours at release")]
    private static partial void LogNotOursAtRelease(ILogger logger, string leaseKey, long fencingToken);

    [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "releasing the writer lease {LeaseKey} failed ({Reason}); it expires within {LeaseTtlMs} ms")]
    private static partial void LogReleaseFailed(ILogger logger, string leaseKey, string reason, long leaseTtlMs);

    public async ValueTask DisposeAsync()
    {
        await ReleaseAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private static long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    /// <summary>The default lease key of a data directory: the prefix, then its full path.</summary>
    public static string DefaultKey(string keyPrefix, string dataDirectory) =>
        keyPrefix + "writer-lease:" + Path.GetFullPath(dataDirectory).TrimEnd(Path.DirectorySeparatorChar);
}
