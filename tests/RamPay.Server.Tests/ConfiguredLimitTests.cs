using System.Net;

namespace RamPay.Server.Tests;

/// <summary>A server whose rate limit is 5 requests a second with a burst of 5.</summary>
public sealed class RateLimitedServerFixture : InProcessServerFixture
{
    protected override IEnumerable<string> Settings =>
        TestSettings.Where(s => !s.StartsWith("RateLimit:", StringComparison.Ordinal)).Concat(["RateLimit:RequestsPerSecond=5", "RateLimit:Burst=5"]);
}

public class RateLimitTests(RateLimitedServerFixture fixture) : IClassFixture<RateLimitedServerFixture>
{
    private readonly Api _api = fixture.Api;

    [Fact]
    public async Task A_burst_above_the_limit_is_rate_limited_with_Retry_After_and_refused_requests_change_nothing()
    {
        var user = await _api.SignUpAsync();
        // Twenty deposits of 1 at once: the burst lets about five through, the rest are 429.
        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ =>
            _api.PostAsync($"/v1/accounts/{user.WalletId}/deposits", user.Token, new { amount = 1, currency = "USD" })));
        var limited = responses.Where(r => r.Status == HttpStatusCode.TooManyRequests).ToList();
        int created = responses.Count(r => r.Status == HttpStatusCode.Created);
        Assert.True(limited.Count > 0, $"no request of 20 was rate limited: {string.Join(", ", responses.Select(r => (int)r.Status))}");
        Assert.True(created + limited.Count == 20, $"every request is either created or limited: {string.Join(", ", responses.Select(r => (int)r.Status))}");
        foreach (var r in limited)
        {
            r.ExpectError(HttpStatusCode.TooManyRequests, "rate_limited");
            Assert.True(int.TryParse(r.Header("Retry-After"), out int seconds) && seconds >= 1, $"Retry-After should be a whole number of seconds >= 1: '{r.Header("Retry-After")}'");
        }

        // Once the bucket refills, requests go through again; the balance holds exactly the deposits that were created.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        ApiResponse account;
        while ((account = await _api.GetAsync($"/v1/accounts/{user.WalletId}", user.Token)).Status == HttpStatusCode.TooManyRequests)
        {
            Assert.True(DateTime.UtcNow < deadline, "still rate limited 20 s after the burst");
            await Task.Delay(200);
        }
        Assert.Equal(created, account.Expect(HttpStatusCode.OK).Long("posted"));
    }
}

/// <summary>A server whose tokens live 2 seconds.</summary>
public sealed class ShortTokenServerFixture : InProcessServerFixture
{
    public const int LifetimeSeconds = 2;
    protected override IEnumerable<string> Settings => TestSettings.Append($"Jwt:TokenLifetimeSeconds={LifetimeSeconds}");
}

public class TokenExpiryTests(ShortTokenServerFixture fixture) : IClassFixture<ShortTokenServerFixture>
{
    private readonly Api _api = fixture.Api;

    [Fact]
    public async Task An_expired_token_is_unauthorized_over_HTTP_and_TCP()
    {
        string email = Api.NewEmail();
        (await _api.PostAsync("/v1/users", null, new { email, password = Api.Password, name = "Short" }, key: "")).Expect(HttpStatusCode.Created);
        var login = (await _api.PostAsync("/v1/auth/token", null, new { email, password = Api.Password }, key: "")).Expect(HttpStatusCode.OK);
        Assert.Equal(ShortTokenServerFixture.LifetimeSeconds, login.Long("expires_in"));
        string token = login.Str("access_token");

        // Poll until the token is refused; a validator that allows clock skew beyond the lifetime fails here.
        var deadline = DateTime.UtcNow.AddSeconds(ShortTokenServerFixture.LifetimeSeconds + 15);
        ApiResponse me;
        while ((me = await _api.GetAsync("/v1/users/me", token)).Status == HttpStatusCode.OK)
        {
            Assert.True(DateTime.UtcNow < deadline, $"a token that lives {ShortTokenServerFixture.LifetimeSeconds} s is still accepted 15 s after it expired");
            await Task.Delay(250);
        }
        me.ExpectError(HttpStatusCode.Unauthorized, "unauthorized");

        await using var connection = await WireConnection.ConnectAsync(fixture.Server.TcpEndPoint);
        await connection.SendHelloAsync(token, requestId: 1);
        await connection.ExpectClosingErrorAsync(Protocol.ProtocolErrorCode.AuthenticationFailed, requestId: 1);
    }
}
