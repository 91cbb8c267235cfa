using System.Text;
using RamPay.Redis;
using RamPay.Server.Auth;

namespace RamPay.Server.Tests;

/// <summary>In-process tests of the server's own security code: tokens, password hashes, the rate limiter.</summary>
public class AuthUnitTests
{
    private static readonly byte[] Key = Encoding.UTF8.GetBytes("0123456789abcdef0123456789abcdef");

    private sealed class ManualTime(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now = start;
        public long Ticks;
        public override DateTimeOffset GetUtcNow() => Now;
        public override long GetTimestamp() => Ticks;
        public override long TimestampFrequency => 1_000;
    }

    [Fact]
    public void A_token_round_trips_its_user_and_role()
    {
        var jwt = new Jwt(Key, "rampay", "rampay", 60);
        Assert.True(jwt.TryValidate(jwt.Issue(42, isAdmin: false), out var user));
        Assert.Equal(new Caller(42, false), user);
        Assert.True(jwt.TryValidate(jwt.Issue(7, isAdmin: true), out var admin));
        Assert.Equal(new Caller(7, true), admin);
    }

    [Fact]
    public void A_token_is_refused_once_expired()
    {
        var time = new ManualTime(DateTimeOffset.FromUnixTimeSeconds(1_800_000_000));
        var jwt = new Jwt(Key, "rampay", "rampay", 60, time);
        string token = jwt.Issue(1, false);
        time.Now = time.Now.AddSeconds(59);
        Assert.True(jwt.TryValidate(token, out _));
        time.Now = time.Now.AddSeconds(1);
        Assert.False(jwt.TryValidate(token, out _));
    }

    [Fact]
    public void A_token_signed_with_another_key_issuer_or_audience_is_refused()
    {
        string token = new Jwt(Key, "rampay", "rampay", 60).Issue(1, false);
        Assert.False(new Jwt(Encoding.UTF8.GetBytes("another key of thirty-two bytes!!"), "rampay", "rampay", 60).TryValidate(token, out _));
        Assert.False(new Jwt(Key, "someone-else", "rampay", 60).TryValidate(token, out _));
        Assert.False(new Jwt(Key, "rampay", "another-audience", 60).TryValidate(token, out _));
    }

    [Fact]
    public void A_tampered_payload_an_alg_none_header_or_garbage_is_refused()
    {
        var jwt = new Jwt(Key, "rampay", "rampay", 60);
        string token = jwt.Issue(1, false);
        string[] parts = token.Split('.');
        // Make the caller an admin without re-signing.
        string payload = Encoding.UTF8.GetString(System.Buffers.Text.Base64Url.DecodeFromChars(parts[1])).Replace("\"user\"", "\"admin\"");
        string forged = parts[0] + "." + System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload)) + "." + parts[2];
        Assert.False(jwt.TryValidate(forged, out _));
        string none = System.Buffers.Text.Base64Url.EncodeToString("{\"alg\":\"none\",\"typ\":\"JWT\"}"u8) + "." + parts[1] + ".";
        Assert.False(jwt.TryValidate(none, out _));
        foreach (var garbage in new[] { "", "a", "a.b", "a.b.c", token + "x", token[..^2], "é.é.é" })
            Assert.False(jwt.TryValidate(garbage, out _), garbage);
    }

    /// <summary>
    /// Servers starting at the same instant on a new data folder must agree on one signing key, or the tokens one
    /// issues are refused by the other after a restart. Before, each checked for the key and then wrote its own through
    /// one shared temporary file: the losers' starts failed on it (FileNotFoundException, seen with this test), or a
    /// later rename replaced a key already in use.
    /// </summary>
    [Fact]
    public void Starts_racing_on_a_new_data_folder_agree_on_one_signing_key_kept_private_and_leave_no_temporary_file()
    {
        for (int round = 0; round < 20; round++)
        {
            string dir = Path.Combine(Path.GetTempPath(), "rampay-jwt-" + Guid.NewGuid().ToString("N"));
            try
            {
                const int racers = 8;
                var keys = new byte[racers][];
                var failures = new Exception?[racers];
                using var start = new Barrier(racers);
                var threads = Enumerable.Range(0, racers).Select(i => new Thread(() =>
                {
                    start.SignalAndWait();
                    try { keys[i] = Jwt.LoadOrCreateKey("", dir); }
                    catch (Exception e) { failures[i] = e; }
                })).ToList();
                threads.ForEach(t => t.Start());
                threads.ForEach(t => t.Join());
                Assert.All(failures, Assert.Null);
                byte[] kept = Jwt.LoadOrCreateKey("", dir);
                Assert.Equal(32, kept.Length);
                Assert.All(keys, k => Assert.Equal(kept, k));
                Assert.Equal(["jwt-signing.key", "jwt-signing.key.lock"], Directory.GetFiles(dir).Select(Path.GetFileName).Order());
                if (!OperatingSystem.IsWindows())
                    Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir, "jwt-signing.key")));
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void A_password_hash_verifies_only_its_password_and_is_salted()
    {
        string a = PasswordHasher.Hash("correct horse", 1_000);
        string b = PasswordHasher.Hash("correct horse", 1_000);
        Assert.NotEqual(a, b);
        Assert.StartsWith("pbkdf2-sha256$1000$", a, StringComparison.Ordinal);
        Assert.True(PasswordHasher.Verify("correct horse", a));
        Assert.True(PasswordHasher.Verify("correct horse", b));
        Assert.False(PasswordHasher.Verify("correct horsf", a));
        Assert.False(PasswordHasher.Verify("correct horse", "not-a-hash"));
        Assert.False(PasswordHasher.Verify("correct horse", "pbkdf2-sha256$1000$%%%$%%%"));
    }

    [Fact]
    public void The_rate_limiter_allows_the_burst_then_the_rate_and_keeps_clients_apart()
    {
        var time = new ManualTime(DateTimeOffset.UnixEpoch) { Ticks = 1 };
        var limiter = new InProcessRateLimiter(ratePerSecond: 10, burst: 3, time);
        for (int i = 0; i < 3; i++) Assert.True(limiter.TryAcquire("u:1", out _));
        Assert.False(limiter.TryAcquire("u:1", out int retry));
        Assert.Equal(1, retry);
        Assert.True(limiter.TryAcquire("u:2", out _)); // another client has its own bucket
        time.Ticks += 100; // 0.1 s = one token at 10/s
        Assert.True(limiter.TryAcquire("u:1", out _));
        Assert.False(limiter.TryAcquire("u:1", out _));
        time.Ticks += 10_000; // long idle: refills to the burst, not beyond
        for (int i = 0; i < 3; i++) Assert.True(limiter.TryAcquire("u:1", out _));
        Assert.False(limiter.TryAcquire("u:1", out _));
    }

    [Fact]
    public void A_rate_of_zero_turns_the_limiter_off()
    {
        var limiter = new InProcessRateLimiter(0, 0);
        for (int i = 0; i < 10_000; i++) Assert.True(limiter.TryAcquire("u:1", out _));
    }
}
