using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RamPay.Server.Tests;

/// <summary>One HTTP answer: status, headers, the raw body and the body parsed as JSON (null when it is not JSON).</summary>
public sealed record ApiResponse(string Request, HttpStatusCode Status, HttpResponseHeaders Headers, string Raw, JsonNode? Body)
{
    public string? ErrorCode => Body is JsonObject o && o["error"] is JsonObject e ? e["code"]?.GetValue<string>() : null;

    /// <summary>Asserts the status and returns the JSON body.</summary>
    public JsonNode Expect(HttpStatusCode status)
    {
        Assert.True(Status == status, $"{Request}: expected {(int)status} {status}, got {(int)Status} {Status}: {Raw}");
        return Body ?? throw new Xunit.Sdk.XunitException($"{Request}: the {(int)Status} answer is not JSON: '{Raw}'");
    }

    /// <summary>Asserts the documented error shape: <c>{"error": {"code": ..., "message": ...}}</c> with this status and code.</summary>
    public void ExpectError(HttpStatusCode status, string code)
    {
        Assert.True(Status == status && ErrorCode == code, $"{Request}: expected {(int)status} {code}, got {(int)Status}: {Raw}");
        var message = Body!["error"]!["message"];
        Assert.True(message is JsonValue v && v.TryGetValue(out string? s) && s.Length > 0, $"{Request}: the error has no message: {Raw}");
    }

    public string? Header(string name) => Headers.TryGetValues(name, out var values) ? string.Join(",", values) : null;
}

/// <summary>A signed-up, logged-in user: the wallet that sign-up opened and a bearer token.</summary>
public sealed record TestUser(long UserId, long WalletId, string Email, string Password, string Token, string Currency);

/// <summary>An account's balances and its newest payment: what "nothing changed" compares.</summary>
public sealed record AccountState(long Posted, long Pending, long Available, long DebitsPosted, long CreditsPosted,
    long DebitsPending, long CreditsPending, bool Frozen, long NewestPaymentId);

/// <summary>
/// The HTTP API through a raw HttpClient: requests are written and answers read as JSON by hand, so the tests
/// check the wire itself. Always talks to the server's current HttpClient, so it survives a restart.
/// </summary>
public sealed class Api(ServerProcess server)
{
    public const string Password = "password-123";
    private string? _adminToken;

    public static string NewKey() => "k-" + Guid.NewGuid().ToString("N");
    public static string NewEmail() => $"u-{Guid.NewGuid():N}@example.com";

    public async Task<ApiResponse> SendAsync(HttpMethod method, string path, string? token = null, object? json = null,
        string? rawBody = null, string? idempotencyKey = null, string contentType = "application/json")
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (idempotencyKey is not null) request.Headers.TryAddWithoutValidation("Idempotency-Key", idempotencyKey);
        string? body = rawBody ?? (json is null ? null : JsonSerializer.Serialize(json));
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, contentType);
        HttpResponseMessage sent;
        try
        {
            sent = await server.Http.SendAsync(request);
        }
        catch (HttpRequestException e)
        {
            throw new Xunit.Sdk.XunitException($"{method} {path} failed ({e.Message}); {server.Describe()}");
        }
        using var response = sent;
        string raw = await response.Content.ReadAsStringAsync();
        JsonNode? parsed = null;
        try { parsed = raw.Length == 0 ? null : JsonNode.Parse(raw); } catch (JsonException) { }
        string shown = body is null ? "" : " " + (body.Length > 200 ? body[..200] + "..." : body);
        return new ApiResponse($"{method} {path}{shown}", response.StatusCode, response.Headers, raw, parsed);
    }

    public Task<ApiResponse> GetAsync(string path, string? token) => SendAsync(HttpMethod.Get, path, token);

    /// <summary>A POST with a JSON body; a fresh idempotency key unless one is given (pass <c>""</c> for none).</summary>
    public Task<ApiResponse> PostAsync(string path, string? token, object? json, string? key = null) =>
        SendAsync(HttpMethod.Post, path, token, json, idempotencyKey: key == "" ? null : key ?? NewKey());

    public async Task<TestUser> SignUpAsync(string currency = "USD", long deposit = 0)
    {
        string email = NewEmail();
        var created = (await PostAsync("/v1/users", null, new { email, password = Password, name = "Test User", currency }, key: ""))
            .Expect(HttpStatusCode.Created);
        string token = await LoginAsync(email, Password);
        var user = new TestUser(created.Long("user_id"), created.Long("wallet_account_id"), email, Password, token, currency);
        if (deposit > 0) await DepositAsync(user, deposit);
        return user;
    }

    /// <summary>Two fresh users: Alice with a funded wallet and Bob with an empty one.</summary>
    public async Task<(TestUser Alice, TestUser Bob)> PairAsync(long aliceDeposit = 10_000) =>
        (await SignUpAsync(deposit: aliceDeposit), await SignUpAsync());

    public async Task<string> LoginAsync(string email, string password)
    {
        var body = (await PostAsync("/v1/auth/token", null, new { email, password }, key: "")).Expect(HttpStatusCode.OK);
        return body.Str("access_token");
    }

    public async Task<string> AdminTokenAsync() =>
        _adminToken ??= await LoginAsync(ServerProcess.AdminEmail, ServerProcess.AdminPassword);

    /// <summary>Forgets the cached admin token (after a restart the server may sign with a new key).</summary>
    public void ForgetAdminToken() => _adminToken = null;

    public async Task<JsonNode> DepositAsync(TestUser user, long amount, string? key = null) =>
        (await PostAsync($"/v1/accounts/{user.WalletId}/deposits", user.Token, new { amount, currency = user.Currency }, key))
        .Expect(HttpStatusCode.Created);

    public async Task<JsonNode> PayAsync(TestUser from, long toAccount, long amount, bool capture = true, string? key = null) =>
        (await PostAsync("/v1/payments", from.Token, new { from_account = from.WalletId, to_account = toAccount, amount, currency = from.Currency, capture }, key))
        .Expect(HttpStatusCode.Created);

    public async Task<JsonNode> AccountAsync(long accountId, string? token = null) =>
        (await GetAsync($"/v1/accounts/{accountId}", token ?? await AdminTokenAsync())).Expect(HttpStatusCode.OK);

    public async Task<JsonNode> PaymentAsync(long paymentId, string? token = null) =>
        (await GetAsync($"/v1/payments/{paymentId}", token ?? await AdminTokenAsync())).Expect(HttpStatusCode.OK);

    /// <summary>Balances and the newest payment of an account, read as the admin.</summary>
    public async Task<AccountState> StateAsync(long accountId)
    {
        var a = await AccountAsync(accountId);
        var page = (await GetAsync($"/v1/accounts/{accountId}/payments?limit=1", await AdminTokenAsync())).Expect(HttpStatusCode.OK);
        var data = page["data"]!.AsArray();
        return new AccountState(a.Long("posted"), a.Long("pending"), a.Long("available"), a.Long("debits_posted"), a.Long("credits_posted"),
            a.Long("debits_pending"), a.Long("credits_pending"), a["frozen"]!.GetValue<bool>(), data.Count == 0 ? 0 : data[0]!.Long("id"));
    }

    /// <summary>
    /// Sends a request that must be refused with this status and code, and checks that none of the watched accounts
    /// changed: balances, frozen flag and newest payment are the same before and after.
    /// </summary>
    public async Task ExpectRejectedAsync(Func<Task<ApiResponse>> request, HttpStatusCode status, string code, params long[] watchedAccounts)
    {
        var before = new List<AccountState>();
        foreach (long id in watchedAccounts) before.Add(await StateAsync(id));
        var response = await request();
        response.ExpectError(status, code);
        for (int i = 0; i < watchedAccounts.Length; i++)
        {
            var after = await StateAsync(watchedAccounts[i]);
            Assert.True(before[i] == after, $"{response.Request} was refused with {code} but account {watchedAccounts[i]} changed: before {before[i]}, after {after}");
        }
    }

    /// <summary>Every payment of an account, newest first, following <c>next_after</c> through all pages.</summary>
    public async Task<List<JsonNode>> HistoryAsync(long accountId, string token, int limit = 100)
    {
        var all = new List<JsonNode>();
        string path = $"/v1/accounts/{accountId}/payments?limit={limit}";
        while (true)
        {
            var page = (await GetAsync(path, token)).Expect(HttpStatusCode.OK);
            all.AddRange(page["data"]!.AsArray().Select(p => p!));
            if (!page["has_more"]!.GetValue<bool>()) return all;
            long next = page.Long("next_after");
            path = $"/v1/accounts/{accountId}/payments?limit={limit}&after={next}";
        }
    }
}

public static class JsonNodeExtensions
{
    public static long Long(this JsonNode node, string name)
    {
        var value = node[name] ?? throw new Xunit.Sdk.XunitException($"no '{name}' in {node.ToJsonString()}");
        return value.GetValueKind() == JsonValueKind.Number
            ? value.GetValue<long>()
            : throw new Xunit.Sdk.XunitException($"'{name}' is not a number in {node.ToJsonString()}");
    }

    public static string Str(this JsonNode node, string name)
    {
        var value = node[name] ?? throw new Xunit.Sdk.XunitException($"no '{name}' in {node.ToJsonString()}");
        return value.GetValueKind() == JsonValueKind.String
            ? value.GetValue<string>()
            : throw new Xunit.Sdk.XunitException($"'{name}' is not a string in {node.ToJsonString()}");
    }

    public static bool IsNull(this JsonNode node, string name) =>
        node is JsonObject o && o.TryGetPropertyValue(name, out var v) && v is null;

    public static string Inv(this long value) => value.ToString(CultureInfo.InvariantCulture);
}
