using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace RamPay.Server.Tests;

/// <summary>
/// Tokens end to end on the real server: refresh tokens (rotation, reuse), logout (HTTP and TCP refuse the token),
/// role policies, signing-key rotation, the request id in error bodies and headers, and bad tokens at the TCP Hello.
/// </summary>
public class AuthFlowTests(InProcessServerFixture fixture) : IClassFixture<InProcessServerFixture>
{
    private readonly Api _api = fixture.Api;

    private async Task<JsonNode> LoginBodyAsync(string email, string password) =>
        (await _api.PostAsync("/v1/auth/token", null, new { email, password }, key: "")).Expect(HttpStatusCode.OK);

    private Task<ApiResponse> RefreshAsync(string refreshToken) =>
        _api.PostAsync("/v1/auth/refresh", null, new { refresh_token = refreshToken }, key: "");

    private static string HeaderJson(string token) => Encoding.UTF8.GetString(System.Buffers.Text.Base64Url.DecodeFromChars(token.Split('.')[0]));

    [Fact]
    public async Task Login_returns_a_refresh_token_that_gives_new_tokens_once_and_a_reused_one_revokes_the_session()
    {
        var user = await _api.SignUpAsync();
        var login = await LoginBodyAsync(user.Email, user.Password);
        string first = login.Str("refresh_token");
        Assert.True(login.Long("refresh_expires_in") > 24 * 3600, login.ToJsonString());

        var refreshed = (await RefreshAsync(first)).Expect(HttpStatusCode.OK);
        Assert.Equal("Bearer", refreshed.Str("token_type"));
        string second = refreshed.Str("refresh_token");
        Assert.NotEqual(first, second);
        var me = (await _api.GetAsync("/v1/users/me", refreshed.Str("access_token"))).Expect(HttpStatusCode.OK);
        Assert.Equal(user.UserId, me.Long("user_id"));

        // The first refresh token again: it was copied. Refused, and the session ends: the second one is dead too.
        (await RefreshAsync(first)).ExpectError(HttpStatusCode.Unauthorized, "invalid_refresh_token");
        (await RefreshAsync(second)).ExpectError(HttpStatusCode.Unauthorized, "invalid_refresh_token");
        // Access tokens already issued live on until they expire (revoking them is logout's job).
        (await _api.GetAsync("/v1/users/me", refreshed.Str("access_token"))).Expect(HttpStatusCode.OK);

        (await RefreshAsync("not-a-token")).ExpectError(HttpStatusCode.Unauthorized, "invalid_refresh_token");
        (await _api.PostAsync("/v1/auth/refresh", null, new { }, key: "")).ExpectError(HttpStatusCode.BadRequest, "invalid_request");
    }

    [Fact]
    public async Task Logout_revokes_the_access_token_over_HTTP_and_TCP_and_ends_the_session()
    {
        var user = await _api.SignUpAsync();
        var login = await LoginBodyAsync(user.Email, user.Password);
        string access = login.Str("access_token");
        (await _api.GetAsync("/v1/users/me", access)).Expect(HttpStatusCode.OK);

        var logout = await _api.PostAsync("/v1/auth/logout", access, new { refresh_token = login.Str("refresh_token") }, key: "");
        Assert.True(logout.Status == HttpStatusCode.NoContent, $"{logout.Request}: {(int)logout.Status} {logout.Raw}");

        var refused = await _api.GetAsync("/v1/users/me", access);
        refused.ExpectError(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Contains("revoked", refused.Body!["error"]!["message"]!.ToString(), StringComparison.Ordinal);
        (await RefreshAsync(login.Str("refresh_token"))).ExpectError(HttpStatusCode.Unauthorized, "invalid_refresh_token");

        await using var connection = await WireConnection.ConnectAsync(fixture.Server.TcpEndPoint);
        await connection.SendHelloAsync(access, requestId: 1);
        await connection.ExpectClosingErrorAsync(Protocol.ProtocolErrorCode.AuthenticationFailed, requestId: 1);

        // The user's other tokens are untouched: a new log-in works over both.
        string again = await _api.LoginAsync(user.Email, user.Password);
        (await _api.GetAsync("/v1/users/me", again)).Expect(HttpStatusCode.OK);
        var (tcp, clientId) = await WireConnection.OpenAsync(fixture.Server.TcpEndPoint, again);
        await using (tcp) Assert.Equal(user.UserId, clientId);
        // Without a token logout is 401 like every other user endpoint.
        (await _api.PostAsync("/v1/auth/logout", null, new { }, key: "")).ExpectError(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task A_user_cannot_reach_any_admin_endpoint_and_an_admin_reaches_them()
    {
        var user = await _api.SignUpAsync();
        foreach (string path in new[] { $"/v1/admin/accounts/{user.WalletId}/freeze", $"/v1/admin/accounts/{user.WalletId}/unfreeze", "/v1/payments/1/review", "/v1/admin/auth/keys/rotate" })
        {
            var response = await _api.PostAsync(path, user.Token, new { decision = "approve" });
            response.ExpectError(HttpStatusCode.Forbidden, "forbidden");
            Assert.False(string.IsNullOrEmpty(response.Body!["error"]!["request_id"]?.ToString()), response.Raw);
        }
        var account = (await _api.GetAsync($"/v1/accounts/{user.WalletId}", user.Token)).Expect(HttpStatusCode.OK);
        Assert.False(account["frozen"]!.GetValue<bool>());

        string admin = await _api.AdminTokenAsync();
        (await _api.PostAsync($"/v1/admin/accounts/{user.WalletId}/freeze", admin, new { })).Expect(HttpStatusCode.OK);
        (await _api.PostAsync($"/v1/admin/accounts/{user.WalletId}/unfreeze", admin, new { })).Expect(HttpStatusCode.OK);
        // An admin passes the user policy too (and reads any account).
        (await _api.GetAsync($"/v1/accounts/{user.WalletId}", admin)).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task After_a_key_rotation_new_tokens_name_the_new_key_and_tokens_of_the_old_key_still_work()
    {
        var user = await _api.SignUpAsync();
        string oldToken = await _api.LoginAsync(user.Email, user.Password);
        string admin = await _api.AdminTokenAsync();
        var rotated = (await _api.PostAsync("/v1/admin/auth/keys/rotate", admin, new { }, key: "")).Expect(HttpStatusCode.OK);
        string kid = rotated.Str("kid");
        Assert.Contains(rotated.Str("previous_kid"), HeaderJson(oldToken), StringComparison.Ordinal);
        Assert.Contains(kid, rotated["keys"]!.AsArray().Select(k => k!.ToString()));
        UserAndTokenTests.AssertRfc3339Utc(rotated.Str("previous_verifies_until"));

        string newToken = await _api.LoginAsync(user.Email, user.Password);
        Assert.Contains(kid, HeaderJson(newToken), StringComparison.Ordinal);
        (await _api.GetAsync("/v1/users/me", oldToken)).Expect(HttpStatusCode.OK);
        (await _api.GetAsync("/v1/users/me", newToken)).Expect(HttpStatusCode.OK);
        (await _api.GetAsync("/v1/users/me", admin)).Expect(HttpStatusCode.OK); // signed before the rotation
        foreach (string token in new[] { oldToken, newToken })
        {
            var (tcp, clientId) = await WireConnection.OpenAsync(fixture.Server.TcpEndPoint, token);
            await using (tcp) Assert.Equal(user.UserId, clientId);
        }
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJyYW1wYXkiLCJhdWQiOiJyYW1wYXkiLCJzdWIiOiIxIiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwLCJqdGkiOiJ4In0.")]
    [InlineData("eyJhbGciOiJIUzI1NiIsImtpZCI6Im5vLXN1Y2gta2V5IiwidHlwIjoiSldUIn0.eyJpc3MiOiJyYW1wYXkiLCJhdWQiOiJyYW1wYXkiLCJzdWIiOiIxIiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwLCJqdGkiOiJ4In0.c2lnbmF0dXJl")]
    public async Task A_bad_token_is_refused_at_the_TCP_Hello_and_over_HTTP(string token)
    {
        await using var connection = await WireConnection.ConnectAsync(fixture.Server.TcpEndPoint);
        await connection.SendHelloAsync(token, requestId: 7);
        await connection.ExpectClosingErrorAsync(Protocol.ProtocolErrorCode.AuthenticationFailed, requestId: 7);
        (await _api.GetAsync("/v1/users/me", token)).ExpectError(HttpStatusCode.Unauthorized, "unauthorized");
    }

    /// <summary>
    /// Tokens signed with the server's own current key (read from its data folder), so that only the claim under test
    /// is wrong: another issuer or audience, an expiry in the past, and the <c>service</c> role, which no user or
    /// admin endpoint admits.
    /// </summary>
    [Fact]
    public async Task Correctly_signed_tokens_with_a_wrong_issuer_audience_or_expiry_are_401_and_a_service_role_is_403_on_user_and_admin_endpoints()
    {
        var user = await _api.SignUpAsync();
        var ring = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(fixture.Server.DataDirectory, "jwt-keys.json")))!["keys"]!.AsArray();
        var current = ring[^1]!;
        var key = new Microsoft.IdentityModel.Tokens.SymmetricSecurityKey(Convert.FromBase64String(current["key"]!.ToString())) { KeyId = current["kid"]!.ToString() };
        string Sign(string issuer = "rampay", string audience = "rampay", string role = "user", int expiresInSeconds = 300) =>
            new Microsoft.IdentityModel.JsonWebTokens.JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new Microsoft.IdentityModel.Tokens.SecurityTokenDescriptor
            {
                Issuer = issuer, Audience = audience, IssuedAt = DateTime.UtcNow.AddSeconds(Math.Min(0, expiresInSeconds) - 60),
                Expires = DateTime.UtcNow.AddSeconds(expiresInSeconds),
                Claims = new Dictionary<string, object> { ["sub"] = user.UserId.Inv(), ["role"] = role, ["jti"] = Guid.NewGuid().ToString("N") },
                SigningCredentials = new Microsoft.IdentityModel.Tokens.SigningCredentials(key, Microsoft.IdentityModel.Tokens.SecurityAlgorithms.HmacSha256),
            });

        (await _api.GetAsync("/v1/users/me", Sign())).Expect(HttpStatusCode.OK); // the recipe is right
        foreach (string bad in new[] { Sign(issuer: "someone-else"), Sign(audience: "another-api"), Sign(expiresInSeconds: -5) })
        {
            (await _api.GetAsync("/v1/users/me", bad)).ExpectError(HttpStatusCode.Unauthorized, "unauthorized");
            await using var connection = await WireConnection.ConnectAsync(fixture.Server.TcpEndPoint);
            await connection.SendHelloAsync(bad, requestId: 3);
            await connection.ExpectClosingErrorAsync(Protocol.ProtocolErrorCode.AuthenticationFailed, requestId: 3);
        }
        string service = Sign(role: "service");
        (await _api.GetAsync("/v1/users/me", service)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
        (await _api.GetAsync($"/v1/accounts/{user.WalletId}", service)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
        (await _api.PostAsync($"/v1/admin/accounts/{user.WalletId}/freeze", service, new { })).ExpectError(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task A_user_token_with_a_tampered_role_is_refused()
    {
        var user = await _api.SignUpAsync();
        string[] parts = user.Token.Split('.');
        string payload = Encoding.UTF8.GetString(System.Buffers.Text.Base64Url.DecodeFromChars(parts[1])).Replace("\"user\"", "\"admin\"", StringComparison.Ordinal);
        string forged = parts[0] + "." + System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload)) + "." + parts[2];
        (await _api.PostAsync($"/v1/admin/accounts/{user.WalletId}/freeze", forged, new { })).ExpectError(HttpStatusCode.Unauthorized, "unauthorized");
        (await _api.GetAsync("/v1/users/me", forged)).ExpectError(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task Every_response_carries_a_request_id_the_caller_may_choose_and_error_bodies_repeat_it()
    {
        async Task<(HttpResponseMessage Response, JsonNode? Body)> Send(string path, string? requestId, string? token = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            if (requestId is not null) request.Headers.TryAddWithoutValidation("X-Request-Id", requestId);
            if (token is not null) request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            var response = await fixture.Server.Http.SendAsync(request);
            string raw = await response.Content.ReadAsStringAsync();
            return (response, raw.Length == 0 ? null : JsonNode.Parse(raw));
        }
        static string Echoed(HttpResponseMessage r) => string.Join(",", r.Headers.GetValues("X-Request-Id"));

        // Chosen by the caller: kept, echoed, and in the error body (401, 404, 403).
        var (unauthorized, body) = await Send("/v1/users/me", "client-req.42:a_b");
        Assert.Equal(HttpStatusCode.Unauthorized, unauthorized.StatusCode);
        Assert.Equal("client-req.42:a_b", Echoed(unauthorized));
        Assert.Equal("client-req.42:a_b", body!["error"]!["request_id"]!.ToString());
        Assert.Equal("unauthorized", body["error"]!["code"]!.ToString());
        Assert.Equal(["code", "message", "request_id"], body["error"]!.AsObject().Select(p => p.Key));

        var (notFound, notFoundBody) = await Send("/v1/no-such-thing", "abc123");
        Assert.Equal(HttpStatusCode.NotFound, notFound.StatusCode);
        Assert.Equal("abc123", notFoundBody!["error"]!["request_id"]!.ToString());

        // Malformed or too long: replaced by a fresh one, which is echoed and in the body.
        foreach (string? bad in new[] { "has space", "<script>", new string('a', 129), null })
        {
            var (response, errorBody) = await Send("/v1/users/me", bad);
            string id = Echoed(response);
            Assert.True(id.Length is >= 16 and <= 128 && id != bad, $"'{bad}' became '{id}'");
            Assert.Equal(id, errorBody!["error"]!["request_id"]!.ToString());
        }
        // Two requests never share a generated id; a success carries one in its header too.
        var user = await _api.SignUpAsync();
        var (ok1, _) = await Send("/v1/users/me", null, user.Token);
        var (ok2, _) = await Send("/v1/users/me", null, user.Token);
        Assert.Equal(HttpStatusCode.OK, ok1.StatusCode);
        Assert.NotEqual(Echoed(ok1), Echoed(ok2));
    }

    [Fact]
    public async Task Without_CORS_configured_no_origin_is_allowed()
    {
        using var request = new HttpRequestMessage(HttpMethod.Options, "/v1/payments");
        request.Headers.TryAddWithoutValidation("Origin", "https://app.example.com");
        request.Headers.TryAddWithoutValidation("Access-Control-Request-Method", "POST");
        using var response = await fixture.Server.Http.SendAsync(request);
        Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
    }
}

/// <summary>A server that lets one web app's origin call it from a browser.</summary>
public sealed class CorsServerFixture : InProcessServerFixture
{
    public const string Origin = "https://app.example.com";
    protected override IEnumerable<string> Settings => TestSettings.Append($"Http:Cors:Origins={Origin}, https://admin.example.com:8443");
}

public class CorsTests(CorsServerFixture fixture) : IClassFixture<CorsServerFixture>
{
    private async Task<HttpResponseMessage> PreflightAsync(string origin, string path = "/v1/payments")
    {
        using var request = new HttpRequestMessage(HttpMethod.Options, path);
        request.Headers.TryAddWithoutValidation("Origin", origin);
        request.Headers.TryAddWithoutValidation("Access-Control-Request-Method", "POST");
        request.Headers.TryAddWithoutValidation("Access-Control-Request-Headers", "authorization,content-type,idempotency-key");
        return await fixture.Server.Http.SendAsync(request);
    }

    [Fact]
    public async Task A_preflight_from_the_configured_origin_is_allowed_with_the_API_headers_and_another_origin_is_not()
    {
        using var allowed = await PreflightAsync(CorsServerFixture.Origin);
        Assert.True(allowed.StatusCode == HttpStatusCode.NoContent, $"{(int)allowed.StatusCode}");
        Assert.Equal(CorsServerFixture.Origin, string.Join(",", allowed.Headers.GetValues("Access-Control-Allow-Origin")));
        string headers = string.Join(",", allowed.Headers.GetValues("Access-Control-Allow-Headers")).ToLowerInvariant();
        foreach (var h in new[] { "authorization", "content-type", "idempotency-key" }) Assert.Contains(h, headers, StringComparison.Ordinal);
        Assert.Contains("POST", string.Join(",", allowed.Headers.GetValues("Access-Control-Allow-Methods")), StringComparison.Ordinal);
        using (var second = await PreflightAsync("https://admin.example.com:8443")) Assert.True(second.Headers.Contains("Access-Control-Allow-Origin"));

        using var refused = await PreflightAsync("https://evil.example.com");
        Assert.False(refused.Headers.Contains("Access-Control-Allow-Origin"));

        // The actual request: the origin is allowed back and the request id is readable by the page.
        var api = fixture.Api;
        var user = await api.SignUpAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/users/me");
        request.Headers.TryAddWithoutValidation("Origin", CorsServerFixture.Origin);
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", user.Token);
        using var response = await fixture.Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(CorsServerFixture.Origin, string.Join(",", response.Headers.GetValues("Access-Control-Allow-Origin")));
        Assert.Contains("x-request-id", string.Join(",", response.Headers.GetValues("Access-Control-Expose-Headers")).ToLowerInvariant(), StringComparison.Ordinal);
    }
}

public class SessionRestartTests
{
    [Fact]
    public async Task Refresh_tokens_revocations_and_signing_keys_survive_a_restart()
    {
        await using var server = await ServerProcess.StartAsync(ServerFixture.TestSettings);
        var api = new Api(server);
        var user = await api.SignUpAsync();
        var login = (await api.PostAsync("/v1/auth/token", null, new { email = user.Email, password = user.Password }, key: "")).Expect(HttpStatusCode.OK);
        var revoked = (await api.PostAsync("/v1/auth/token", null, new { email = user.Email, password = user.Password }, key: "")).Expect(HttpStatusCode.OK);
        var logout = await api.PostAsync("/v1/auth/logout", revoked.Str("access_token"), new { }, key: "");
        Assert.Equal(HttpStatusCode.NoContent, logout.Status);
        string admin = await api.AdminTokenAsync();
        (await api.PostAsync("/v1/admin/auth/keys/rotate", admin, new { }, key: "")).Expect(HttpStatusCode.OK);

        Assert.Equal(0, await server.StopAsync());
        await server.RestartAsync();

        (await api.GetAsync("/v1/users/me", login.Str("access_token"))).Expect(HttpStatusCode.OK); // old key, still within its lifetime
        (await api.GetAsync("/v1/users/me", revoked.Str("access_token"))).ExpectError(HttpStatusCode.Unauthorized, "unauthorized");
        var refreshed = (await api.PostAsync("/v1/auth/refresh", null, new { refresh_token = login.Str("refresh_token") }, key: "")).Expect(HttpStatusCode.OK);
        (await api.GetAsync("/v1/users/me", refreshed.Str("access_token"))).Expect(HttpStatusCode.OK);
        Assert.True(File.Exists(Path.Combine(server.DataDirectory, "jwt-keys.json")));
        Assert.True(File.Exists(Path.Combine(server.DataDirectory, "auth-sessions.log")));
    }
}
