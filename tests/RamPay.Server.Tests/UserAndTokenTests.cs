using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace RamPay.Server.Tests;

/// <summary>Sign-up, log-in, tokens and the health and OpenAPI endpoints, over raw HTTP.</summary>
public class UserAndTokenTests(InProcessServerFixture fixture) : IClassFixture<InProcessServerFixture>
{
    private readonly Api _api = fixture.Api;

    [Fact]
    public async Task Sign_up_creates_the_user_and_an_empty_wallet_in_the_chosen_currency()
    {
        string email = Api.NewEmail();
        var created = (await _api.PostAsync("/v1/users", null, new { email, password = Api.Password, name = "Ada", currency = "EUR" }, key: ""))
            .Expect(HttpStatusCode.Created);

        long userId = created.Long("user_id"), walletId = created.Long("wallet_account_id");
        Assert.True(userId > 0 && walletId > 0, created.ToJsonString());
        Assert.Equal(email, created.Str("email"));
        Assert.Equal("Ada", created.Str("name"));
        Assert.Equal("user", created.Str("role"));
        Assert.Equal("EUR", created.Str("currency"));

        string token = await _api.LoginAsync(email, Api.Password);
        var wallet = (await _api.GetAsync($"/v1/accounts/{walletId}", token)).Expect(HttpStatusCode.OK);
        Assert.Equal(walletId, wallet.Long("id"));
        Assert.Equal(userId, wallet.Long("owner_user_id"));
        Assert.Equal("EUR", wallet.Str("currency"));
        Assert.Equal("wallet", wallet.Str("type"));
        Assert.False(wallet["frozen"]!.GetValue<bool>());
        foreach (var field in new[] { "posted", "pending", "available", "debits_posted", "credits_posted", "debits_pending", "credits_pending" })
            Assert.True(wallet.Long(field) == 0, $"{field} of a new wallet should be 0: {wallet.ToJsonString()}");
        AssertRfc3339Utc(wallet.Str("created_at"));

        var me = (await _api.GetAsync("/v1/users/me", token)).Expect(HttpStatusCode.OK);
        Assert.Equal(userId, me.Long("user_id"));
        Assert.Equal(email, me.Str("email"));
        Assert.Equal("Ada", me.Str("name"));
        Assert.Equal("user", me.Str("role"));
        Assert.Equal(walletId, me.Long("wallet_account_id"));
        AssertRfc3339Utc(me.Str("created_at"));
    }

    [Fact]
    public async Task Sign_up_without_a_currency_opens_a_USD_wallet()
    {
        var created = (await _api.PostAsync("/v1/users", null, new { email = Api.NewEmail(), password = Api.Password, name = "Bo" }, key: ""))
            .Expect(HttpStatusCode.Created);
        Assert.Equal("USD", created.Str("currency"));
    }

    [Fact]
    public async Task A_second_sign_up_with_the_same_email_in_any_case_is_email_taken()
    {
        string email = Api.NewEmail();
        (await _api.PostAsync("/v1/users", null, new { email, password = Api.Password, name = "First" }, key: "")).Expect(HttpStatusCode.Created);

        foreach (var again in new[] { email, email.ToUpperInvariant(), char.ToUpperInvariant(email[0]) + email[1..] })
        {
            var response = await _api.PostAsync("/v1/users", null, new { email = again, password = "another-password", name = "Second" }, key: "");
            response.ExpectError(HttpStatusCode.Conflict, "email_taken");
        }
        // The first user is untouched: the original password still logs in.
        await _api.LoginAsync(email, Api.Password);
    }

    [Fact]
    public async Task Login_returns_a_bearer_JWT_for_the_user()
    {
        var user = await _api.SignUpAsync();
        var body = (await _api.PostAsync("/v1/auth/token", null, new { email = user.Email.ToUpperInvariant(), password = user.Password }, key: ""))
            .Expect(HttpStatusCode.OK);

        Assert.Equal("Bearer", body.Str("token_type"));
        Assert.True(body.Long("expires_in") > 0, body.ToJsonString());
        string token = body.Str("access_token");
        string[] parts = token.Split('.');
        Assert.True(parts.Length == 3, $"a JWT has three parts: {token}");
        var header = JsonNode.Parse(Base64Url(parts[0]))!;
        var claims = JsonNode.Parse(Base64Url(parts[1]))!;
        Assert.Equal("HS256", header.Str("alg"));
        Assert.Equal(user.UserId.Inv(), claims["sub"]!.ToString());
        Assert.Equal("user", claims.Str("role"));
        long lifetime = claims.Long("exp") - DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Assert.True(Math.Abs(lifetime - body.Long("expires_in")) < 120, $"exp is {lifetime} s away, expires_in says {body.Long("expires_in")}");

        (await _api.GetAsync("/v1/users/me", token)).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task The_admin_logs_in_with_role_admin()
    {
        string token = await _api.AdminTokenAsync();
        var me = (await _api.GetAsync("/v1/users/me", token)).Expect(HttpStatusCode.OK);
        Assert.Equal("admin", me.Str("role"));
        Assert.Equal(ServerProcess.AdminEmail, me.Str("email"));
    }

    [Fact]
    public async Task A_wrong_password_or_an_unknown_email_is_invalid_credentials()
    {
        var user = await _api.SignUpAsync();
        var wrongPassword = await _api.PostAsync("/v1/auth/token", null, new { email = user.Email, password = "wrong-password" }, key: "");
        wrongPassword.ExpectError(HttpStatusCode.Unauthorized, "invalid_credentials");
        var unknownEmail = await _api.PostAsync("/v1/auth/token", null, new { email = Api.NewEmail(), password = Api.Password }, key: "");
        unknownEmail.ExpectError(HttpStatusCode.Unauthorized, "invalid_credentials");
        Assert.Equal(wrongPassword.Body!["error"]!["message"]!.ToString(), unknownEmail.Body!["error"]!["message"]!.ToString());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("garbage")]
    [InlineData("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwicm9sZSI6ImFkbWluIn0.c2lnbmF0dXJl")]
    public async Task A_missing_or_bad_token_is_unauthorized_on_every_protected_endpoint(string? token)
    {
        var user = await _api.SignUpAsync();
        var before = await _api.StateAsync(user.WalletId);
        foreach (var (method, path) in new[]
        {
            (HttpMethod.Get, "/v1/users/me"), (HttpMethod.Get, $"/v1/accounts/{user.WalletId}"),
            (HttpMethod.Get, $"/v1/accounts/{user.WalletId}/payments"), (HttpMethod.Post, $"/v1/accounts/{user.WalletId}/deposits"),
            (HttpMethod.Post, "/v1/payments"), (HttpMethod.Get, "/v1/payments/1"), (HttpMethod.Post, "/v1/payments/batch"),
            (HttpMethod.Post, $"/v1/admin/accounts/{user.WalletId}/freeze"),
        })
        {
            var response = await _api.SendAsync(method, path, token, method == HttpMethod.Post ? new { amount = 100, currency = "USD" } : null,
                idempotencyKey: method == HttpMethod.Post ? Api.NewKey() : null);
            response.ExpectError(HttpStatusCode.Unauthorized, "unauthorized");
        }
        Assert.Equal(before, await _api.StateAsync(user.WalletId));
    }

    [Fact]
    public async Task Health_live_and_ready_answer_200()
    {
        var live = (await _api.GetAsync("/health/live", null)).Expect(HttpStatusCode.OK);
        Assert.Equal("live", live.Str("status"));
        var ready = (await _api.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK);
        Assert.Equal("ready", ready.Str("status"));
        Assert.True(ready.Long("journal_sequence") > 0, ready.ToJsonString());
    }

    [Fact]
    public async Task Health_ready_counts_accounts_and_payments()
    {
        var before = (await _api.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK);
        Assert.True(before.Long("accounts") >= 3, $"the funding accounts and the admin's wallet at least: {before.ToJsonString()}");
        var user = await _api.SignUpAsync(deposit: 100);
        var after = (await _api.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK);
        Assert.True(after.Long("accounts") > before.Long("accounts") && after.Long("payments") > before.Long("payments"),
            $"a sign-up and a deposit later: before {before.ToJsonString()}, after {after.ToJsonString()}");
        Assert.True(after.Long("journal_sequence") > before.Long("journal_sequence"));
    }

    [Fact]
    public async Task The_OpenAPI_document_lists_every_endpoint()
    {
        var doc = (await _api.GetAsync("/swagger/v1/swagger.json", null)).Expect(HttpStatusCode.OK);
        var paths = doc["paths"]!.AsObject();
        var expected = new (string Path, string Method)[]
        {
            ("/v1/users", "post"), ("/v1/auth/token", "post"), ("/v1/auth/refresh", "post"), ("/v1/auth/logout", "post"), ("/v1/users/me", "get"),
            ("/v1/accounts/{id}", "get"), ("/v1/accounts/{id}/payments", "get"), ("/v1/accounts/{id}/deposits", "post"),
            ("/v1/payments", "post"), ("/v1/payments/{id}", "get"), ("/v1/payments/{id}/capture", "post"),
            ("/v1/payments/{id}/void", "post"), ("/v1/payments/{id}/refunds", "post"), ("/v1/payments/batch", "post"),
            ("/v1/admin/accounts/{id}/freeze", "post"), ("/v1/admin/accounts/{id}/unfreeze", "post"), ("/v1/admin/auth/keys/rotate", "post"),
        };
        var missing = expected.Where(e => paths[e.Path] is not JsonObject ops || ops[e.Method] is null).ToList();
        Assert.True(missing.Count == 0,
            $"the OpenAPI document lacks {string.Join(", ", missing.Select(m => m.Method.ToUpperInvariant() + " " + m.Path))}; it has {string.Join(", ", paths.Select(p => p.Key))}");
    }

    [Fact]
    public async Task An_unknown_route_is_not_found_in_the_error_shape()
    {
        var user = await _api.SignUpAsync();
        (await _api.GetAsync("/v1/no-such-thing", user.Token)).ExpectError(HttpStatusCode.NotFound, "not_found");
        (await _api.GetAsync("/v1/nothing-here", null)).ExpectError(HttpStatusCode.NotFound, "not_found"); // other paths are the web app's pages (docs/web.md)
        (await _api.GetAsync("/v1/payments", user.Token)).ExpectError(HttpStatusCode.NotFound, "not_found"); // the route is POST only
        (await _api.GetAsync("/v1/accounts/abc", user.Token)).ExpectError(HttpStatusCode.NotFound, "not_found");
    }

    private static string Base64Url(string s)
    {
        s = s.Replace('-', '+').Replace('_', '/');
        s += new string('=', (4 - s.Length % 4) % 4);
        return Encoding.UTF8.GetString(Convert.FromBase64String(s));
    }

    internal static void AssertRfc3339Utc(string s) =>
        Assert.True(s.EndsWith('Z') && DateTimeOffset.TryParse(s, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out _),
            $"'{s}' is not an RFC 3339 UTC time");
}
