using StackExchange.Redis;

namespace RamPay.Redis.Tests;

[Trait("Category", "Integration")]
public class RedisScriptTests
{
    private static async Task<bool> ExistsAsync(IDatabase db, RedisScript script) =>
        (long)((RedisResult[])(await db.ExecuteAsync("SCRIPT", "EXISTS", script.Sha1Hex))!)[0] == 1;

    [Fact]
    public async Task A_script_Redis_does_not_know_is_sent_whole_once_then_run_by_its_SHA1()
    {
        await using var scope = new RedisScope();
        var db = (await TestRedis.SharedAsync()).GetDatabase();
        // A script no Redis has seen (the GUID is part of its text, so of its SHA1): the first EVALSHA is answered
        // NOSCRIPT, which must fall back to EVAL rather than fail.
        var script = new RedisScript($"-- {Guid.NewGuid():N}\nreturn redis.call('INCR', KEYS[1]) + tonumber(ARGV[1])");
        Assert.False(await ExistsAsync(db, script));

        Assert.Equal(11, (long)await script.EvaluateAsync(db, [scope.Prefix + "n"], [10]));
        Assert.Equal(1, script.SentWhole);
        Assert.True(await ExistsAsync(db, script));

        // Known now: EVALSHA answers, nothing is sent whole again.
        for (int i = 2; i <= 5; i++) Assert.Equal(10 + i, (long)await script.EvaluateAsync(db, [scope.Prefix + "n"], [10]));
        Assert.Equal(1, script.SentWhole);
    }

    [Fact]
    public async Task A_script_error_is_not_mistaken_for_NOSCRIPT()
    {
        await using var scope = new RedisScope();
        var db = (await TestRedis.SharedAsync()).GetDatabase();
        var script = new RedisScript($"-- {Guid.NewGuid():N}\nreturn redis.error_reply('RAMPAY_TEST broken')");
        var e = await Assert.ThrowsAsync<RedisServerException>(() => script.EvaluateAsync(db, [scope.Prefix + "x"], []));
        Assert.Contains("RAMPAY_TEST broken", e.Message, StringComparison.Ordinal);
        Assert.Equal(1, script.SentWhole); // NOSCRIPT once, then the script's own error from EVAL, passed on
    }
}
