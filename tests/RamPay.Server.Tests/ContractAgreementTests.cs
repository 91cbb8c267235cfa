using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using RamPay.Contracts;

namespace RamPay.Server.Tests;

/// <summary>
/// The server, RamPay.Contracts and the OpenAPI document agree, endpoint by endpoint: each request is the contract
/// type serialized as the client sends it; each answer (the handlers write JSON by hand, JsonOut) is read back as its
/// declared contract type with unknown fields, missing constructor fields and nulls in non-nullable fields refused;
/// and the document's response for that status names the same type with the same property names.
/// </summary>
public class ContractAgreementTests(InProcessServerFixture fixture) : IClassFixture<InProcessServerFixture>
{
    private readonly Api _api = fixture.Api;

    /// <summary>The contract's own metadata, made strict: a field the server writes and the contract lacks fails, and so does one it leaves out.</summary>
    private static readonly JsonSerializerOptions Strict = new(RamPayJsonContext.Default.Options)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    private static string Json<T>(T value) => JsonSerializer.Serialize(value, typeof(T), RamPayJsonContext.Default);

    private JsonObject? _document;

    private async Task<JsonObject> DocumentAsync() =>
        _document ??= (await _api.GetAsync("/swagger/v1/swagger.json", null)).Expect(HttpStatusCode.OK).AsObject();

    /// <summary>Asserts the status, reads the body strictly as <typeparamref name="T"/> and checks the document's response for it.</summary>
    private async Task<T> AgreesAsync<T>(ApiResponse response, HttpStatusCode status, string method, string route)
    {
        response.Expect(status);
        T value;
        try
        {
            value = (T)JsonSerializer.Deserialize(response.Raw, typeof(T), Strict)!;
        }
        catch (JsonException e)
        {
            throw new Xunit.Sdk.XunitException($"{response.Request}: the answer is not a {typeof(T).Name} of RamPay.Contracts: {e.Message}\n{response.Raw}");
        }
        Assert.NotNull(value);

        var doc = await DocumentAsync();
        var operation = doc["paths"]?[route]?[method] ?? throw new Xunit.Sdk.XunitException($"the OpenAPI document has no {method} {route}");
        var schema = operation["responses"]?[((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture)]?["content"]?["application/json"]?["schema"]
            ?? throw new Xunit.Sdk.XunitException($"the OpenAPI document has no JSON response {(int)status} for {method} {route}: {operation.ToJsonString()}");
        string reference = (string?)schema["$ref"] ?? throw new Xunit.Sdk.XunitException($"{method} {route} {(int)status}: the schema names no type: {schema.ToJsonString()}");
        string name = reference[(reference.LastIndexOf('/') + 1)..];
        Assert.Equal(typeof(T).Name, name);
        var documented = doc["components"]!["schemas"]![name]!["properties"]!.AsObject().Select(p => p.Key).Order().ToArray();
        var declared = Strict.GetTypeInfo(typeof(T)).Properties.Select(p => p.Name).Order().ToArray();
        Assert.Equal(declared, documented);
        return value;
    }

    private Task<ErrorEnvelope> ErrorAgreesAsync(ApiResponse response, HttpStatusCode status, string method, string route) =>
        AgreesAsync<ErrorEnvelope>(response, status, method, route);

    [Fact]
    public async Task Every_user_and_token_endpoint_answers_its_contract_type()
    {
        string email = Api.NewEmail();
        var registered = await AgreesAsync<User>(
            await _api.SendAsync(HttpMethod.Post, "/v1/users", rawBody: Json(new RegisterRequest(email, Api.Password, "Contract Test", "EUR"))),
            HttpStatusCode.Created, "post", "/v1/users");
        Assert.Equal(("EUR", "user"), (registered.Currency, registered.Role));

        var tokens = await AgreesAsync<TokenResponse>(
            await _api.SendAsync(HttpMethod.Post, "/v1/auth/token", rawBody: Json(new LoginRequest(email, Api.Password))),
            HttpStatusCode.OK, "post", "/v1/auth/token");
        var me = await AgreesAsync<UserProfileView>(await _api.GetAsync("/v1/users/me", tokens.AccessToken), HttpStatusCode.OK, "get", "/v1/users/me");
        Assert.Equal(registered, new User(me.UserId, me.WalletAccountId, me.Email, me.Name, me.Role, me.Currency, me.CreatedAt));

        var refreshed = await AgreesAsync<TokenResponse>(
            await _api.SendAsync(HttpMethod.Post, "/v1/auth/refresh", rawBody: Json(new RefreshRequest(tokens.RefreshToken))),
            HttpStatusCode.OK, "post", "/v1/auth/refresh");
        var logout = await _api.SendAsync(HttpMethod.Post, "/v1/auth/logout", refreshed.AccessToken, rawBody: Json(new LogoutRequest(refreshed.RefreshToken)));
        Assert.True(logout.Status == HttpStatusCode.NoContent && logout.Raw.Length == 0, $"{logout.Request}: {(int)logout.Status} {logout.Raw}");

        await ErrorAgreesAsync(await _api.GetAsync("/v1/users/me", null), HttpStatusCode.Unauthorized, "get", "/v1/users/me");
        await ErrorAgreesAsync(await _api.SendAsync(HttpMethod.Post, "/v1/auth/token", rawBody: Json(new LoginRequest(email, "wrong-password"))),
            HttpStatusCode.Unauthorized, "post", "/v1/auth/token");
        await ErrorAgreesAsync(await _api.SendAsync(HttpMethod.Post, "/v1/users", rawBody: Json(new RegisterRequest(email, Api.Password, "Again"))),
            HttpStatusCode.Conflict, "post", "/v1/users");
    }

    [Fact]
    public async Task Every_account_and_payment_endpoint_answers_its_contract_type()
    {
        var (alice, bob) = await _api.PairAsync(aliceDeposit: 0);
        var deposit = await AgreesAsync<Payment>(
            await _api.SendAsync(HttpMethod.Post, $"/v1/accounts/{alice.WalletId}/deposits", alice.Token, rawBody: Json(new DepositRequest(10_000, "USD")), idempotencyKey: Api.NewKey()),
            HttpStatusCode.Created, "post", "/v1/accounts/{id}/deposits");
        Assert.Equal(10_000L, deposit.Amount);
        await ErrorAgreesAsync(
            await _api.SendAsync(HttpMethod.Post, $"/v1/accounts/{alice.WalletId}/deposits", alice.Token, rawBody: Json(new DepositRequest(ServerFixture.MaxDeposit + 1, "USD")), idempotencyKey: Api.NewKey()),
            HttpStatusCode.UnprocessableEntity, "post", "/v1/accounts/{id}/deposits");

        var account = await AgreesAsync<Account>(await _api.GetAsync($"/v1/accounts/{alice.WalletId}", alice.Token), HttpStatusCode.OK, "get", "/v1/accounts/{id}");
        Assert.Equal(10_000, account.Available);
        await ErrorAgreesAsync(await _api.GetAsync($"/v1/accounts/{bob.WalletId}", alice.Token), HttpStatusCode.Forbidden, "get", "/v1/accounts/{id}");

        var paid = await AgreesAsync<Payment>(
            await _api.SendAsync(HttpMethod.Post, "/v1/payments", alice.Token, idempotencyKey: Api.NewKey(),
                rawBody: Json(new PaymentRequest(alice.WalletId, bob.WalletId, 1_000, "USD") { Description = "contract" })),
            HttpStatusCode.Created, "post", "/v1/payments");
        Assert.Equal(("transfer", "contract"), (paid.Kind, paid.Description));
        await ErrorAgreesAsync(
            await _api.SendAsync(HttpMethod.Post, "/v1/payments", alice.Token, rawBody: Json(new PaymentRequest(alice.WalletId, bob.WalletId, 1, "USD"))),
            HttpStatusCode.BadRequest, "post", "/v1/payments");

        var read = await AgreesAsync<Payment>(await _api.GetAsync($"/v1/payments/{paid.Id}", bob.Token), HttpStatusCode.OK, "get", "/v1/payments/{id}");
        Assert.Equal(paid, read);
        await ErrorAgreesAsync(await _api.GetAsync("/v1/payments/999999999", alice.Token), HttpStatusCode.NotFound, "get", "/v1/payments/{id}");

        var page = await AgreesAsync<PaymentPage>(await _api.GetAsync($"/v1/accounts/{alice.WalletId}/payments?limit=1", alice.Token),
            HttpStatusCode.OK, "get", "/v1/accounts/{id}/payments");
        Assert.Single(page.Data);
        Assert.True(page.HasMore);

        var hold = await AgreesAsync<Payment>(
            await _api.SendAsync(HttpMethod.Post, "/v1/payments", alice.Token, idempotencyKey: Api.NewKey(),
                rawBody: Json(new PaymentRequest(alice.WalletId, bob.WalletId, 500, "USD") { Capture = false, HoldTimeoutMs = 60_000 })),
            HttpStatusCode.Created, "post", "/v1/payments");
        Assert.NotNull(hold.ExpiresAt);
        var captured = await AgreesAsync<Payment>(
            await _api.SendAsync(HttpMethod.Post, $"/v1/payments/{hold.Id}/capture", alice.Token, rawBody: Json(new CaptureRequest(200)), idempotencyKey: Api.NewKey()),
            HttpStatusCode.OK, "post", "/v1/payments/{id}/capture");
        Assert.Equal(200, captured.Captured);

        var second = await AgreesAsync<Payment>(
            await _api.SendAsync(HttpMethod.Post, "/v1/payments", alice.Token, idempotencyKey: Api.NewKey(),
                rawBody: Json(new PaymentRequest(alice.WalletId, bob.WalletId, 300, "USD") { Capture = false })),
            HttpStatusCode.Created, "post", "/v1/payments");
        await AgreesAsync<Payment>(await _api.SendAsync(HttpMethod.Post, $"/v1/payments/{second.Id}/void", alice.Token, rawBody: "{}", idempotencyKey: Api.NewKey()),
            HttpStatusCode.OK, "post", "/v1/payments/{id}/void");

        var refund = await AgreesAsync<Payment>(
            await _api.SendAsync(HttpMethod.Post, $"/v1/payments/{paid.Id}/refunds", bob.Token, rawBody: Json(new RefundRequest(100)), idempotencyKey: Api.NewKey()),
            HttpStatusCode.Created, "post", "/v1/payments/{id}/refunds");
        Assert.Equal(paid.Id, refund.RefundOf);

        var batch = await AgreesAsync<BatchResponse>(
            await _api.SendAsync(HttpMethod.Post, "/v1/payments/batch", alice.Token, idempotencyKey: Api.NewKey(), rawBody: Json(new BatchRequest(
            [
                new PaymentRequest(alice.WalletId, bob.WalletId, 10, "USD"),
                new PaymentRequest(alice.WalletId, bob.WalletId, 1_000_000_000, "USD"),
            ]))),
            HttpStatusCode.OK, "post", "/v1/payments/batch");
        Assert.Equal(new[] { true, false }, batch.Results.Select(r => r.IsSuccess).ToArray());
        Assert.NotNull(batch.Results[0].Payment);
        Assert.NotNull(batch.Results[1].Error);
    }

    [Fact]
    public async Task Every_admin_endpoint_answers_its_contract_type()
    {
        var user = await _api.SignUpAsync();
        string admin = await _api.AdminTokenAsync();
        var frozen = await AgreesAsync<Account>(await _api.SendAsync(HttpMethod.Post, $"/v1/admin/accounts/{user.WalletId}/freeze", admin, rawBody: "{}"),
            HttpStatusCode.OK, "post", "/v1/admin/accounts/{id}/freeze");
        Assert.True(frozen.Frozen);
        var unfrozen = await AgreesAsync<Account>(await _api.SendAsync(HttpMethod.Post, $"/v1/admin/accounts/{user.WalletId}/unfreeze", admin, rawBody: "{}"),
            HttpStatusCode.OK, "post", "/v1/admin/accounts/{id}/unfreeze");
        Assert.False(unfrozen.Frozen);
        await ErrorAgreesAsync(await _api.SendAsync(HttpMethod.Post, $"/v1/admin/accounts/{user.WalletId}/freeze", user.Token, rawBody: "{}"),
            HttpStatusCode.Forbidden, "post", "/v1/admin/accounts/{id}/freeze");

        // The fixture's server generates its key ring (no configured key), so a rotation is allowed; tokens issued
        // before it keep verifying with the previous key, so the other tests sharing this server are not disturbed.
        var rotation = await AgreesAsync<KeyRotationResponse>(await _api.SendAsync(HttpMethod.Post, "/v1/admin/auth/keys/rotate", admin, rawBody: "{}"),
            HttpStatusCode.OK, "post", "/v1/admin/auth/keys/rotate");
        Assert.Contains(rotation.Kid, rotation.Keys);
        Assert.Contains(rotation.PreviousKid, rotation.Keys);
    }
}
