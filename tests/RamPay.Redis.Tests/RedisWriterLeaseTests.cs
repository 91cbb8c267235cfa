using RamPay.TestSupport;
using System.Diagnostics;
using StackExchange.Redis;

namespace RamPay.Redis.Tests;

[Trait("Category", "Integration")]
public class RedisWriterLeaseTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    /// <summary>Generous times: the tests share two cores with builds and servers, so a renewal may come late.</summary>
    private static WriterLeaseOptions Options(string prefix, TimeSpan? ttl = null, string? fenceFile = null, string holder = "test") => new()
    {
        Key = prefix + "writer-lease:journal",
        Holder = holder,
        Ttl = ttl ?? TimeSpan.FromSeconds(3),
        SafetyMargin = (ttl ?? TimeSpan.FromSeconds(3)) / 6,
        PollInterval = TimeSpan.FromMilliseconds(50),
        RedisTimeout = TimeSpan.FromSeconds(2),
        FenceFile = fenceFile,
    };

    private static async Task<T> Within<T>(Task<T> task, string what)
    {
        if (await Task.WhenAny(task, Task.Delay(Patience)) != task) throw new TimeoutException($"{what} did not happen within {Patience.TotalSeconds} s");
        return await task;
    }

    private static async Task Eventually(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Patience) throw new TimeoutException($"{what} did not happen within {Patience.TotalSeconds} s");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task A_second_acquirer_waits_until_the_first_releases_and_gets_a_higher_fencing_token()
    {
        await using var scope = new RedisScope();
        var redis = await TestRedis.SharedAsync();
        using var otherNode = await TestRedis.ConnectAsync();
        var first = await RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix, holder: "first"));
        first.CheckCanWrite();

        var log = new RecordingLogger();
        var second = RedisWriterLease.AcquireAsync(otherNode, Options(scope.Prefix, holder: "second"), log);
        await Task.Delay(1_000);
        Assert.False(second.IsCompleted, "the second acquirer got the lease while the first held it");
        var waiting = Assert.Single(log.Entries, e => e.Message.StartsWith("waiting for the writer lease", StringComparison.Ordinal) && e.Message.Contains("held by first", StringComparison.Ordinal));
        Assert.Equal(first.Key, waiting.Fields["LeaseKey"]);
        Assert.StartsWith("first", (string)waiting.Fields["LeaseHolder"]!, StringComparison.Ordinal);

        await first.ReleaseAsync();
        Assert.Throws<WriterLeaseLostException>(first.CheckCanWrite); // released: it must not write either
        await using var taken = await Within(second, "the takeover after the release");
        Assert.True(taken.Token > first.Token, $"token {taken.Token} after {first.Token}");
        taken.CheckCanWrite();
        Assert.Equal(taken.Value, (string?)await redis.GetDatabase().StringGetAsync(taken.Key));
    }

    [Fact]
    public async Task A_holder_that_stops_renewing_loses_the_lease_by_expiry_and_the_waiter_takes_over()
    {
        await using var scope = new RedisScope();
        var redis = await TestRedis.SharedAsync();
        var ttl = TimeSpan.FromSeconds(2);
        // A wide margin (the local deadline 1 s before the key expires) so that a slow test thread still sees the order.
        var first = await RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix, ttl, holder: "stalled") with { SafetyMargin = ttl / 2 });
        string? lost = null;
        first.Lost = reason => lost = reason;
        first.RenewalPaused = true; // as a process frozen in a pause: no renewal, no release
        var clock = Stopwatch.StartNew();
        var second = RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix, ttl, holder: "waiter"));

        // The stalled holder's own check refuses before Redis could hand the lease on (deadline = TTL - margin).
        await Eventually(() => first.IsLost, "the local deadline");
        var stoppedAt = clock.Elapsed;
        Assert.False(second.IsCompleted, "the lease was taken over before the stalled holder stopped writing");
        var e = Assert.Throws<WriterLeaseLostException>(first.CheckCanWrite);
        Assert.Contains("deadline", e.Message, StringComparison.Ordinal);
        await Eventually(() => lost is not null, "the Lost callback");

        await using var taken = await Within(second, "the takeover after expiry");
        Assert.True(clock.Elapsed >= stoppedAt);
        Assert.True(taken.Token > first.Token);
        await first.DisposeAsync();
        taken.CheckCanWrite(); // the loser's release does not delete the new holder's key
        Assert.Equal(taken.Value, (string?)await redis.GetDatabase().StringGetAsync(taken.Key));
    }

    [Fact]
    public async Task Fencing_tokens_only_increase()
    {
        await using var scope = new RedisScope();
        var redis = await TestRedis.SharedAsync();
        long last = 0;
        for (int i = 0; i < 5; i++)
        {
            await using var lease = await RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix));
            Assert.True(lease.Token > last, $"token {lease.Token} after {last}");
            Assert.EndsWith(" token " + lease.Token, lease.Value, StringComparison.Ordinal);
            last = lease.Token;
        }
    }

    [Fact]
    public async Task Renewal_keeps_the_lease_well_past_its_ttl()
    {
        await using var scope = new RedisScope();
        var redis = await TestRedis.SharedAsync();
        var ttl = TimeSpan.FromSeconds(3);
        await using var lease = await RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix, ttl));
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < ttl * 2)
        {
            lease.CheckCanWrite();
            await Task.Delay(50);
        }
        lease.CheckCanWrite();
        var remaining = await redis.GetDatabase().KeyTimeToLiveAsync(lease.Key);
        Assert.NotNull(remaining);
        Assert.True(remaining > TimeSpan.Zero);
        Assert.Null(lease.LostReason);
    }

    [Fact]
    public async Task A_deleted_key_is_a_lost_lease_the_next_renewal_finds()
    {
        await using var scope = new RedisScope();
        var redis = await TestRedis.SharedAsync();
        await using var lease = await RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix));
        string? lost = null;
        lease.Lost = reason => lost = reason;
        await redis.GetDatabase().KeyDeleteAsync(lease.Key);
        await Eventually(() => lost is not null, "noticing the deleted key");
        var e = Assert.Throws<WriterLeaseLostException>(lease.CheckCanWrite);
        Assert.Contains("gone or held by someone else", e.Message, StringComparison.Ordinal);
        Assert.Contains("nobody", lost, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_overwritten_key_is_a_lost_lease_and_the_release_leaves_the_new_value_alone()
    {
        await using var scope = new RedisScope();
        var redis = await TestRedis.SharedAsync();
        var lease = await RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix));
        await redis.GetDatabase().StringSetAsync(lease.Key, "thief token 999", TimeSpan.FromMinutes(1));
        await Eventually(() => lease.LostReason is not null, "noticing the overwritten key");
        var e = Assert.Throws<WriterLeaseLostException>(lease.CheckCanWrite);
        Assert.Contains("thief token 999", e.Message, StringComparison.Ordinal);
        await lease.DisposeAsync();
        Assert.Equal("thief token 999", (string?)await redis.GetDatabase().StringGetAsync(lease.Key));
    }

    [Fact]
    public async Task The_token_is_recorded_in_the_fence_file_and_a_higher_one_there_refuses_the_start()
    {
        await using var scope = new RedisScope();
        var redis = await TestRedis.SharedAsync();
        string dir = Directory.CreateTempSubdirectory("rampay-fence-").FullName;
        try
        {
            string file = FencingTokenFile.PathIn(dir);
            long token;
            await using (var lease = await RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix, fenceFile: file)))
            {
                token = lease.Token;
                Assert.Equal(token, FencingTokenFile.Read(file));
            }

            // A newer writer has been here (or Redis lost its counter): refuse, and leave the lease free.
            FencingTokenFile.Write(file, token + 100);
            var e = await Assert.ThrowsAsync<StaleFencingTokenException>(() => RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix, fenceFile: file)));
            Assert.Contains($"fencing token {token + 100}", e.Message, StringComparison.Ordinal);
            Assert.False(await redis.GetDatabase().KeyExistsAsync(Options(scope.Prefix).Key));

            // Raised past the file (what the message says to do after a Redis reset), it starts again.
            await redis.GetDatabase().StringSetAsync(Options(scope.Prefix).FenceCounterKey, token + 100);
            await using var again = await RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix, fenceFile: file));
            Assert.Equal(token + 101, again.Token);
            Assert.Equal(token + 101, FencingTokenFile.Read(file));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_newer_token_in_the_fence_file_while_holding_is_a_lost_lease()
    {
        await using var scope = new RedisScope();
        var redis = await TestRedis.SharedAsync();
        string dir = Directory.CreateTempSubdirectory("rampay-fence-").FullName;
        try
        {
            string file = FencingTokenFile.PathIn(dir);
            await using var lease = await RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix, TimeSpan.FromSeconds(1.5), fenceFile: file));
            FencingTokenFile.Write(file, lease.Token + 1); // as a writer on the same storage that took over
            await Eventually(() => lease.LostReason is not null, "noticing the newer token");
            Assert.Throws<WriterLeaseLostException>(lease.CheckCanWrite);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Waiting_can_be_cancelled()
    {
        await using var scope = new RedisScope();
        var redis = await TestRedis.SharedAsync();
        await using var holder = await RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix));
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => RedisWriterLease.AcquireAsync(redis, Options(scope.Prefix), cancel: cancel.Token));
        holder.CheckCanWrite();
    }

    [Fact]
    public async Task Without_Redis_it_waits_rather_than_write_and_says_so_once()
    {
        using var nowhere = await RedisConnection.ConnectAsync("127.0.0.1:1", TimeSpan.FromMilliseconds(200));
        var log = new RecordingLogger();
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            RedisWriterLease.AcquireAsync(nowhere, Options(TestRedis.NewPrefix()), log, cancel.Token));
        var said = Assert.Single(log.Entries, e => e.Message.StartsWith("cannot reach Redis for the writer lease", StringComparison.Ordinal));
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, said.Level);
    }

    [Fact]
    public void Bad_options_are_refused()
    {
        Assert.Throws<ArgumentException>(() => (Options("p:") with { Ttl = TimeSpan.FromMilliseconds(100) }).Validate());
        Assert.Throws<ArgumentException>(() => (Options("p:") with { SafetyMargin = TimeSpan.FromSeconds(2) }).Validate());
        Assert.Equal("rampay:writer-lease:/data/x", RedisWriterLease.DefaultKey("rampay:", "/data/x/"));
    }
}
