using System.Text;
using RamPay.Redis;
using Microsoft.IdentityModel.Tokens;
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

    /// <summary>A data folder of its own, deleted at the end.</summary>
    private sealed class TempFolder : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "rampay-auth-" + Guid.NewGuid().ToString("N"));
        public void Dispose() { if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true); }
    }

    private static TokenService Tokens(string folder, string configuredKey = "", string issuer = "rampay", string audience = "rampay", int lifetime = 60, TimeProvider? time = null) =>
        new(SigningKeyRing.Open(configuredKey, folder, lifetime, time), SessionStore.Open(folder, 3600, 100, 100, time), issuer, audience, lifetime, time);

    private static Caller? Validate(TokenService tokens, string token) => tokens.TryValidate(token, out var v) ? v!.Caller : null;

    private static string Json(string base64Url) => Encoding.UTF8.GetString(System.Buffers.Text.Base64Url.DecodeFromChars(base64Url));

    [Fact]
    public void A_token_round_trips_its_user_and_role_and_names_its_key()
    {
        using var folder = new TempFolder();
        var tokens = Tokens(folder.Path);
        Assert.Equal(new Caller(42, false), Validate(tokens, tokens.Issue(42, "user").Token));
        Assert.Equal(new Caller(7, true), Validate(tokens, tokens.Issue(7, "admin").Token));
        var issued = tokens.Issue(5, "user");
        string[] parts = issued.Token.Split('.');
        var header = System.Text.Json.Nodes.JsonNode.Parse(Json(parts[0]))!;
        var claims = System.Text.Json.Nodes.JsonNode.Parse(Json(parts[1]))!;
        Assert.Equal("HS256", (string?)header["alg"]);
        Assert.Equal(tokens.Keys.Current.KeyId, (string?)header["kid"]);
        Assert.Equal(["aud", "exp", "iat", "iss", "jti", "role", "sub"], claims.AsObject().Select(p => p.Key).Order());
        Assert.Equal("5", (string?)claims["sub"]);
        Assert.Equal(issued.Jti, (string?)claims["jti"]);
        Assert.Equal(issued.ExpiresUnix, (long)claims["exp"]!);
    }

    [Fact]
    public void A_remembered_token_is_still_refused_once_revoked_and_a_changed_byte_is_validated_in_full()
    {
        using var folder = new TempFolder();
        var tokens = Tokens(folder.Path);
        var issued = tokens.Issue(42, "user");
        // The first validation remembers the token with its caller and ticket; the second is answered from memory.
        Assert.Equal(TokenCheck.Ok, tokens.Validate(issued.Token, out var first, out var firstTicket));
        Assert.Equal(TokenCheck.Ok, tokens.Validate(issued.Token, out var second, out var secondTicket));
        Assert.Same(first, second);
        Assert.Same(firstTicket, secondTicket);
        Assert.Equal("42", secondTicket!.Principal.FindFirst("sub")?.Value);
        Assert.True(secondTicket.Principal.IsInRole("user"));
        // One character of the signature changed: not the remembered text, so refused by the full validation.
        char last = issued.Token[^2];
        string tampered = issued.Token[..^2] + (last == 'A' ? 'B' : 'A') + issued.Token[^1];
        Assert.Equal(TokenCheck.BadClaims, tokens.Validate(tampered, out _, out _));
        // Revocation is checked on every call, remembered or not.
        Assert.True(tokens.Sessions.Deny(issued.Jti, issued.ExpiresUnix));
        Assert.Equal(TokenCheck.Revoked, tokens.Validate(issued.Token, out var revoked, out var revokedTicket));
        Assert.Null(revoked);
        Assert.Null(revokedTicket);
        Assert.False(tokens.TryValidate(issued.Token, out _));
    }

    [Fact]
    public void A_token_is_refused_once_expired()
    {
        using var folder = new TempFolder();
        // Issued 61 s ago with a lifetime of 60 s: expired a second ago (no clock skew is allowed).
        var past = new ManualTime(DateTimeOffset.UtcNow.AddSeconds(-61));
        var issuer = Tokens(folder.Path, time: past);
        var validator = Tokens(folder.Path);
        Assert.Null(Validate(validator, issuer.Issue(1, "user").Token));
        past.Now = DateTimeOffset.UtcNow.AddSeconds(-50);
        Assert.NotNull(Validate(validator, issuer.Issue(1, "user").Token));
    }

    [Fact]
    public void A_token_signed_with_another_key_issuer_or_audience_is_refused()
    {
        using var a = new TempFolder();
        using var b = new TempFolder();
        string token = Tokens(a.Path).Issue(1, "user").Token;
        Assert.NotNull(Validate(Tokens(a.Path), token));
        Assert.Null(Validate(Tokens(b.Path), token)); // another ring, another key
        Assert.Null(Validate(Tokens(a.Path, issuer: "someone-else"), token));
        Assert.Null(Validate(Tokens(a.Path, audience: "another-audience"), token));
    }

    [Fact]
    public void A_tampered_payload_an_alg_none_header_a_wrong_kid_or_garbage_is_refused()
    {
        using var folder = new TempFolder();
        var tokens = Tokens(folder.Path);
        string token = tokens.Issue(1, "user").Token;
        string[] parts = token.Split('.');
        // Make the caller an admin without re-signing.
        string payload = Json(parts[1]).Replace("\"user\"", "\"admin\"", StringComparison.Ordinal);
        string forged = parts[0] + "." + System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload)) + "." + parts[2];
        Assert.Null(Validate(tokens, forged));
        // A flipped bit in the signature.
        char last = parts[2][^2];
        Assert.Null(Validate(tokens, parts[0] + "." + parts[1] + "." + parts[2][..^2] + (last == 'A' ? 'B' : 'A') + parts[2][^1]));
        string none = System.Buffers.Text.Base64Url.EncodeToString("{\"alg\":\"none\",\"typ\":\"JWT\"}"u8);
        Assert.Null(Validate(tokens, none + "." + parts[1] + "."));
        Assert.Null(Validate(tokens, none + "." + System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload)) + "."));
        // The right key bytes under a kid the ring does not have, and HS512 with the right key: both refused.
        byte[] keyBytes = tokens.Keys.Keys[^1].Key;
        Assert.Null(Validate(tokens, SignWith(new SymmetricSecurityKey(keyBytes) { KeyId = "not-a-kid" }, SecurityAlgorithms.HmacSha256)));
        Assert.Null(Validate(tokens, SignWith(new SymmetricSecurityKey(keyBytes.Concat(keyBytes).ToArray()) { KeyId = tokens.Keys.Current.KeyId }, SecurityAlgorithms.HmacSha512)));
        // Claims we never issue, correctly signed: a role of our own making, a subject that is not a user id.
        Assert.Null(Validate(tokens, SignWith(tokens.Keys.Current, SecurityAlgorithms.HmacSha256, role: "root")));
        Assert.Null(Validate(tokens, SignWith(tokens.Keys.Current, SecurityAlgorithms.HmacSha256, sub: "alice")));
        Assert.NotNull(Validate(tokens, SignWith(tokens.Keys.Current, SecurityAlgorithms.HmacSha256))); // the same recipe, untampered, passes
        foreach (var garbage in new[] { "", "a", "a.b", "a.b.c", token + "x", token[..^2], "é.é.é", new string('a', 5000) })
            Assert.Null(Validate(tokens, garbage));
    }

    private static string SignWith(SecurityKey key, string algorithm, string role = "user", string sub = "1") =>
        new Microsoft.IdentityModel.JsonWebTokens.JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "rampay", Audience = "rampay", Expires = DateTime.UtcNow.AddMinutes(5),
            Claims = new Dictionary<string, object> { ["sub"] = sub, ["role"] = role, ["jti"] = "J" + Guid.NewGuid().ToString("N") },
            SigningCredentials = new SigningCredentials(key, algorithm),
        });

    /// <summary>The cache of valid tokens must never let through what full validation would refuse.</summary>
    [Fact]
    public async Task A_remembered_valid_token_is_still_refused_once_revoked_or_expired_and_a_changed_byte_is_validated_in_full()
    {
        using var folder = new TempFolder();
        // Issued 59 s ago with a lifetime of 60 s: valid for one more second.
        var past = new ManualTime(DateTimeOffset.UtcNow.AddSeconds(-59));
        var tokens = Tokens(folder.Path, lifetime: 60, time: past);
        var shortLived = tokens.Issue(1, "user");
        var revoked = tokens.Issue(2, "user");
        Assert.NotNull(Validate(tokens, shortLived.Token));
        Assert.NotNull(Validate(tokens, revoked.Token));
        Assert.NotNull(Validate(tokens, revoked.Token)); // a hit
        string[] parts = revoked.Token.Split('.');
        string payload = Json(parts[1]).Replace("\"user\"", "\"admin\"", StringComparison.Ordinal);
        Assert.Null(Validate(tokens, parts[0] + "." + System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload)) + "." + parts[2]));
        Assert.True(tokens.Sessions.Deny(revoked.Jti, revoked.ExpiresUnix));
        Assert.Null(Validate(tokens, revoked.Token));
        await Task.Delay(TimeSpan.FromSeconds(2.2));
        Assert.Null(Validate(tokens, shortLived.Token));
    }

    [Fact]
    public void A_revoked_jti_is_refused_and_stays_revoked_after_a_restart()
    {
        using var folder = new TempFolder();
        var tokens = Tokens(folder.Path);
        var kept = tokens.Issue(1, "user");
        var revoked = tokens.Issue(1, "user");
        Assert.True(tokens.Sessions.Deny(revoked.Jti, revoked.ExpiresUnix));
        Assert.Null(Validate(tokens, revoked.Token));
        Assert.NotNull(Validate(tokens, kept.Token));
        tokens.Sessions.Dispose();
        var restarted = Tokens(folder.Path);
        Assert.Null(Validate(restarted, revoked.Token));
        Assert.NotNull(Validate(restarted, kept.Token));
    }

    [Fact]
    public void After_a_rotation_the_new_key_signs_and_the_old_one_verifies_until_its_tokens_expire()
    {
        using var folder = new TempFolder();
        var time = new ManualTime(DateTimeOffset.UtcNow);
        var tokens = Tokens(folder.Path, lifetime: 60, time: time);
        string oldKid = tokens.Keys.Current.KeyId;
        string old = tokens.Issue(1, "user").Token;
        var (added, previous) = tokens.Keys.Rotate();
        Assert.Equal(oldKid, previous.Kid);
        Assert.NotEqual(oldKid, added.Kid);
        string fresh = tokens.Issue(1, "user").Token;
        Assert.Contains(added.Kid, Json(fresh.Split('.')[0]), StringComparison.Ordinal);
        Assert.NotNull(Validate(tokens, old));
        Assert.NotNull(Validate(tokens, fresh));
        // A restart reads the same ring: both still verify.
        var restarted = Tokens(folder.Path, lifetime: 60, time: time);
        Assert.Equal(added.Kid, restarted.Keys.Current.KeyId);
        Assert.NotNull(Validate(restarted, old));
        // Once every token of the old key has expired, the next rotation drops it.
        time.Now = time.Now.AddSeconds(61);
        restarted.Keys.Rotate();
        Assert.DoesNotContain(restarted.Keys.Keys, k => k.Kid == oldKid);
        Assert.Equal(2, restarted.Keys.Keys.Count);
        // Another process on the same folder learns the new kid when it first meets it (a re-read of the file).
        var other = SigningKeyRing.Open("", folder.Path, 60);
        Assert.NotEmpty(tokens.Keys.Resolve(other.Current.KeyId));
    }

    [Fact]
    public void A_data_folder_from_before_rotation_keeps_its_key_so_tokens_without_a_kid_still_verify()
    {
        using var folder = new TempFolder();
        Directory.CreateDirectory(folder.Path);
        byte[] legacy = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        File.WriteAllText(System.IO.Path.Combine(folder.Path, SigningKeyRing.LegacyFileName), Convert.ToBase64String(legacy));
        var tokens = Tokens(folder.Path);
        Assert.Equal(legacy, tokens.Keys.Keys[^1].Key);
        // A token as the old hand-written code made it: no kid in the header.
        Assert.NotNull(Validate(tokens, SignWith(new SymmetricSecurityKey(legacy), SecurityAlgorithms.HmacSha256)));
        Assert.Null(Validate(tokens, SignWith(new SymmetricSecurityKey(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)), SecurityAlgorithms.HmacSha256)));
    }

    [Fact]
    public void A_configured_key_signs_alone_and_cannot_be_rotated_here()
    {
        using var folder = new TempFolder();
        var tokens = Tokens(folder.Path, configuredKey: Encoding.UTF8.GetString(Key));
        Assert.False(tokens.Keys.CanRotate);
        Assert.NotNull(Validate(tokens, tokens.Issue(3, "user").Token));
        Assert.Throws<InvalidOperationException>(() => tokens.Keys.Rotate());
        Assert.False(File.Exists(System.IO.Path.Combine(folder.Path, SigningKeyRing.FileName)));
    }

    /// <summary>
    /// Servers starting at the same instant on a new data folder must agree on one signing-key ring, or the tokens one
    /// issues are refused by the other after a restart.
    /// </summary>
    [Fact]
    public void Starts_racing_on_a_new_data_folder_agree_on_one_key_ring_kept_private_and_leave_no_temporary_file()
    {
        for (int round = 0; round < 20; round++)
        {
            using var folder = new TempFolder();
            const int racers = 8;
            var kids = new string[racers];
            var failures = new Exception?[racers];
            using var start = new Barrier(racers);
            var threads = Enumerable.Range(0, racers).Select(i => new Thread(() =>
            {
                start.SignalAndWait();
                try { kids[i] = SigningKeyRing.Open("", folder.Path, 60).Current.KeyId; }
                catch (Exception e) { failures[i] = e; }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            Assert.All(failures, Assert.Null);
            var kept = SigningKeyRing.Open("", folder.Path, 60);
            Assert.Equal(32, kept.Keys[^1].Key.Length);
            Assert.All(kids, k => Assert.Equal(kept.Current.KeyId, k));
            Assert.Equal([SigningKeyRing.FileName, SigningKeyRing.FileName + ".lock"], Directory.GetFiles(folder.Path).Select(System.IO.Path.GetFileName).Order());
            if (!OperatingSystem.IsWindows())
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(System.IO.Path.Combine(folder.Path, SigningKeyRing.FileName)));
        }
    }

    [Fact]
    public void A_refresh_token_rotates_on_use_and_a_reused_one_revokes_its_session()
    {
        using var folder = new TempFolder();
        var sessions = SessionStore.Open(folder.Path, 3600, 100, 100);
        string first = sessions.Create(9, out long expires);
        Assert.Equal(SessionStore.RefreshResult.Rotated, sessions.Rotate(first, out long user, out string second, out long sameExpiry));
        Assert.Equal(9, user);
        Assert.Equal(expires, sameExpiry); // refreshing does not extend the session
        Assert.NotEqual(first, second);
        // The first token again: someone kept a copy. The session ends, so the second token is dead too.
        Assert.Equal(SessionStore.RefreshResult.Reused, sessions.Rotate(first, out _, out _, out _));
        Assert.Equal(SessionStore.RefreshResult.Unknown, sessions.Rotate(second, out _, out _, out _));
        foreach (var garbage in new[] { "", "x", new string('a', 32) + ".x", first + "x" })
            Assert.NotEqual(SessionStore.RefreshResult.Rotated, sessions.Rotate(garbage, out _, out _, out _));
        Assert.Equal(0, sessions.SessionCount);
    }

    [Fact]
    public void Sessions_survive_a_restart_a_torn_last_record_is_ignored_and_logout_revokes_only_the_owners_session()
    {
        using var folder = new TempFolder();
        var sessions = SessionStore.Open(folder.Path, 3600, 100, 100);
        string a = sessions.Create(1, out _);
        string b = sessions.Create(2, out _);
        Assert.Equal(SessionStore.RefreshResult.Rotated, sessions.Rotate(a, out _, out string a2, out _));
        Assert.False(sessions.Revoke(b, userId: 1)); // not user 1's session
        sessions.Dispose();
        // Step 1: a crash in the middle of an append leaves half a line at the end.
        File.AppendAllText(System.IO.Path.Combine(folder.Path, SessionStore.FileName), "{\"op\":\"put\",\"s\":\"ab");
        // Step 2: the restart ignores it and keeps every acknowledged change.
        var restarted = SessionStore.Open(folder.Path, 3600, 100, 100);
        Assert.Equal(2, restarted.SessionCount);
        Assert.Equal(SessionStore.RefreshResult.Reused, restarted.Rotate(a, out _, out _, out _));
        Assert.True(restarted.Revoke(b, userId: 2));
        Assert.Equal(SessionStore.RefreshResult.Unknown, restarted.Rotate(b, out _, out _, out _));
        Assert.Equal(SessionStore.RefreshResult.Unknown, restarted.Rotate(a2, out _, out _, out _));
        restarted.Dispose();
        // Step 3: the log was compacted at the restart; a damaged line that is not the last is an error, never skipped.
        string path = System.IO.Path.Combine(folder.Path, SessionStore.FileName);
        File.WriteAllText(path, "garbage\n{\"op\":\"del\",\"s\":\"x\"}\n");
        Assert.Throws<InvalidDataException>(() => SessionStore.Open(folder.Path, 3600, 100, 100));
    }

    [Fact]
    public void The_session_store_is_bounded_dropping_the_session_that_expires_soonest_and_refusing_revocations_past_its_limit()
    {
        using var folder = new TempFolder();
        var time = new ManualTime(DateTimeOffset.UtcNow);
        var sessions = SessionStore.Open(folder.Path, 3600, maxSessions: 3, maxRevoked: 2, time);
        string oldest = sessions.Create(1, out _);
        time.Now = time.Now.AddSeconds(1);
        string[] later = [sessions.Create(2, out _), sessions.Create(3, out _), sessions.Create(4, out _)];
        Assert.Equal(3, sessions.SessionCount);
        Assert.Equal(SessionStore.RefreshResult.Unknown, sessions.Rotate(oldest, out _, out _, out _));
        Assert.All(later, t => Assert.Equal(SessionStore.RefreshResult.Rotated, sessions.Rotate(t, out _, out _, out _)));
        long exp = time.GetUtcNow().ToUnixTimeSeconds() + 60;
        Assert.True(sessions.Deny("j1", exp));
        Assert.True(sessions.Deny("j2", exp));
        Assert.False(sessions.Deny("j3", exp)); // full of live revocations: refused, none forgotten
        Assert.True(sessions.IsDenied("j1") && sessions.IsDenied("j2"));
        time.Now = time.Now.AddSeconds(61);
        Assert.True(sessions.Deny("j3", exp + 120)); // the expired ones made room
        sessions.Dispose();
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
