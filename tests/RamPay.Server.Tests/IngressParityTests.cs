using System.Net;
using System.Text.Json.Nodes;
using RamPay.Core;
using RamPay.Protocol;
using RamPay.Server.Ingress;

namespace RamPay.Server.Tests;

/// <summary>
/// Every rule of the ingress gateway (src/RamPay.Server/Ingress) gives the same answer over HTTP and over TCP: each case
/// sends the same request both ways, from the same users on the same server, and checks that the TCP result code is the
/// HTTP error code (or ok for a 2xx) and that the HTTP status is the gateway's status of that code. A few cases are
/// divergences that existed before the gateway (noted on the case).
/// </summary>
public class IngressParityTests(InProcessServerFixture fixture) : IClassFixture<InProcessServerFixture>
{
    private readonly Api _api = fixture.Api;

    /// <summary>What a case sends: over HTTP (method POST, path, body, key or null for none, whose token) and over TCP (one wire command, on whose connection).</summary>
    private sealed record Case(string Path, object Body, string? HttpKey, WireCommand Wire, bool AsAdmin = false);

    private sealed record Users(TestUser Alice, TestUser Bob, TestUser Eve);

    private async Task<Users> UsersAsync() =>
        new(await _api.SignUpAsync(deposit: 10_000), await _api.SignUpAsync(deposit: 1_000), await _api.SignUpAsync(currency: "EUR"));

    /// <summary>The rule cases: name, expected result code, and the request built for fresh users and a fresh key.</summary>
    public static IEnumerable<object[]> Rules => RuleCases.Keys.Select(k => new object[] { k });

    private static readonly Dictionary<string, (ResultCode Expected, Func<Users, string, long, Case> Build)> RuleCases = new()
    {
        // Ownership: a user's commands carry OwnerOnly.
        ["ownership: a deposit into another user's account"] = (ResultCode.NotAccountOwner, (u, k, _) => new(
            $"/v1/accounts/{u.Bob.WalletId}/deposits", new { amount = 100, currency = "USD" }, k, Wire.Deposit(k, u.Bob.WalletId, 100))),
        ["ownership: a transfer from another user's account"] = (ResultCode.NotAccountOwner, (u, k, _) => new(
            "/v1/payments", Pay(u.Bob.WalletId, u.Alice.WalletId, 100), k, Wire.Transfer(k, u.Bob.WalletId, u.Alice.WalletId, 100))),
        ["ownership: an admin's command goes without the flag"] = (ResultCode.Ok, (u, k, _) => new(
            "/v1/payments", Pay(u.Bob.WalletId, u.Alice.WalletId, 1), k, Wire.Transfer(k, u.Bob.WalletId, u.Alice.WalletId, 1), AsAdmin: true)),
        ["ownership: a refund by the payer, not the payee"] = (ResultCode.NotAccountOwner, (u, k, p) => new(
            $"/v1/payments/{p}/refunds", new { amount = 1 }, k, Wire.Refund(k, p, 1))),
        // Deposits: from the platform's funding account of the currency, at most MaxDepositAmount.
        ["deposit: within the limit"] = (ResultCode.Ok, (u, k, _) => new(
            $"/v1/accounts/{u.Alice.WalletId}/deposits", new { amount = 100, currency = "USD" }, k, Wire.Deposit(k, u.Alice.WalletId, 100))),
        ["deposit: a currency the platform does not hold"] = (ResultCode.InvalidCurrency, (u, k, _) => new(
            $"/v1/accounts/{u.Alice.WalletId}/deposits", new { amount = 100, currency = "GBP" }, k, Wire.Deposit(k, u.Alice.WalletId, 100, "GBP"))),
        ["deposit: above RamPay:MaxDepositAmount"] = (ResultCode.DepositLimitExceeded, (u, k, _) => new(
            $"/v1/accounts/{u.Alice.WalletId}/deposits", new { amount = ServerFixture.MaxDeposit + 1, currency = "USD" }, k,
            Wire.Deposit(k, u.Alice.WalletId, ServerFixture.MaxDeposit + 1))),
        // Before the gateway TCP judged the currency first (invalid_currency), HTTP the amount.
        ["deposit: a zero amount in a currency the platform does not hold"] = (ResultCode.InvalidAmount, (u, k, _) => new(
            $"/v1/accounts/{u.Alice.WalletId}/deposits", new { amount = 0, currency = "GBP" }, k, Wire.Deposit(k, u.Alice.WalletId, 0, "GBP"))),
        // Before the gateway TCP said invalid_currency here, HTTP idempotency_key_required.
        ["key: a deposit without a key"] = (ResultCode.IdempotencyKeyRequired, (u, k, _) => new(
            $"/v1/accounts/{u.Alice.WalletId}/deposits", new { amount = 100, currency = "GBP" }, null, Wire.Deposit(k, u.Alice.WalletId, 100, "GBP") with { Key = default })),
        ["key: a transfer without a key"] = (ResultCode.IdempotencyKeyRequired, (u, k, _) => new(
            "/v1/payments", Pay(u.Alice.WalletId, u.Bob.WalletId, 100), null, Wire.Transfer(k, u.Alice.WalletId, u.Bob.WalletId, 100) with { Key = default })),
        // Values.
        ["amount: zero"] = (ResultCode.InvalidAmount, (u, k, _) => new(
            "/v1/payments", Pay(u.Alice.WalletId, u.Bob.WalletId, 0), k, Wire.Transfer(k, u.Alice.WalletId, u.Bob.WalletId, 0))),
        // Before the gateway TCP asked the ledger, which looked for the payment first (payment_not_found).
        ["amount: a refund of zero"] = (ResultCode.InvalidAmount, (u, k, _) => new(
            "/v1/payments/9000000/refunds", new { amount = 0 }, k, Wire.Refund(k, 9_000_000, 0))),
        ["amount: a negative capture"] = (ResultCode.InvalidAmount, (u, k, _) => new(
            "/v1/payments/9000000/capture", new { amount = -1 }, k, Wire.Capture(k, 9_000_000, -1))),
        // Before the gateway a TCP transfer carrying a hold timeout was applied; HTTP refused it.
        ["hold timeout: on a transfer"] = (ResultCode.InvalidHoldTimeout, (u, k, _) => new(
            "/v1/payments", new { from_account = u.Alice.WalletId, to_account = u.Bob.WalletId, amount = 100, currency = "USD", capture = true, hold_timeout_ms = 1000 }, k,
            Wire.Transfer(k, u.Alice.WalletId, u.Bob.WalletId, 100) with { HoldTimeoutMs = 1000 })),
        ["hold timeout: above the ledger's maximum"] = (ResultCode.InvalidHoldTimeout, (u, k, _) => new(
            "/v1/payments", new { from_account = u.Alice.WalletId, to_account = u.Bob.WalletId, amount = 100, currency = "USD", capture = false, hold_timeout_ms = MaxHoldTimeoutMs + 1 }, k,
            Wire.Authorize(k, u.Alice.WalletId, u.Bob.WalletId, 100, MaxHoldTimeoutMs + 1))),
        // The ledger's own rules, reached the same way.
        ["ledger: insufficient funds"] = (ResultCode.InsufficientFunds, (u, k, _) => new(
            "/v1/payments", Pay(u.Alice.WalletId, u.Bob.WalletId, 1_000_000), k, Wire.Transfer(k, u.Alice.WalletId, u.Bob.WalletId, 1_000_000))),
        ["ledger: the same account on both sides"] = (ResultCode.SameAccount, (u, k, _) => new(
            "/v1/payments", Pay(u.Alice.WalletId, u.Alice.WalletId, 100), k, Wire.Transfer(k, u.Alice.WalletId, u.Alice.WalletId, 100))),
        ["ledger: currency mismatch"] = (ResultCode.CurrencyMismatch, (u, k, _) => new(
            "/v1/payments", Pay(u.Alice.WalletId, u.Eve.WalletId, 100), k, Wire.Transfer(k, u.Alice.WalletId, u.Eve.WalletId, 100))),
        ["ledger: an unknown account"] = (ResultCode.AccountNotFound, (u, k, _) => new(
            "/v1/payments", Pay(u.Alice.WalletId, 9_000_000, 100), k, Wire.Transfer(k, u.Alice.WalletId, 9_000_000, 100))),
        ["ledger: capture of an unknown payment"] = (ResultCode.PaymentNotFound, (u, k, _) => new(
            "/v1/payments/9000000/capture", new { }, k, Wire.Capture(k, 9_000_000))),
        ["ledger: a transfer within the balance"] = (ResultCode.Ok, (u, k, _) => new(
            "/v1/payments", Pay(u.Alice.WalletId, u.Bob.WalletId, 100), k, Wire.Transfer(k, u.Alice.WalletId, u.Bob.WalletId, 100))),
    };

    private const long MaxHoldTimeoutMs = 31L * 24 * 60 * 60 * 1000;

    private static object Pay(long from, long to, long amount) => new { from_account = from, to_account = to, amount, currency = "USD" };

    [Theory]
    [MemberData(nameof(Rules))]
    public async Task A_rule_gives_the_same_answer_over_HTTP_and_TCP(string rule)
    {
        var (expected, build) = RuleCases[rule];
        var users = await UsersAsync();
        // A settled payment from Alice to Bob, for the cases that act on one (Alice is its payer).
        long paymentId = (await _api.PayAsync(users.Alice, users.Bob.WalletId, 10)).Long("id");
        string key = Api.NewKey();
        // The same key string is the same engine key over both protocols, so each protocol gets its own.
        var httpCase = build(users, key + "-http", paymentId);
        var tcpCase = build(users, key + "-tcp", paymentId);

        string token = httpCase.AsAdmin ? await _api.AdminTokenAsync() : users.Alice.Token;
        var http = await _api.SendAsync(HttpMethod.Post, httpCase.Path, token, httpCase.Body, idempotencyKey: httpCase.HttpKey);

        var (connection, _) = await WireConnection.OpenAsync(fixture.Server.TcpEndPoint, token);
        await using var _ = connection;
        var tcp = (await connection.RoundTripAsync(1, tcpCase.Wire))[0];

        string httpCode = (int)http.Status is >= 200 and < 300 ? "ok" : http.ErrorCode ?? $"(no code: {http.Raw})";
        Assert.True(ResultCodes.Name(tcp.Code) == httpCode && httpCode == ResultCodes.Name(expected),
            $"{rule}: expected {ResultCodes.Name(expected)} both ways; HTTP {(int)http.Status} {httpCode}, TCP {Wire.Describe(tcp)} ({http.Request})");
        if (expected == ResultCode.Ok) Assert.True(http.Status is HttpStatusCode.OK or HttpStatusCode.Created, http.Raw);
        else Assert.Equal(IngressGateway.HttpStatusOf(expected), (int)http.Status);
    }

    [Fact]
    public async Task A_key_string_is_the_same_key_over_HTTP_and_TCP()
    {
        var users = await UsersAsync();
        string key = Api.NewKey();
        var first = await _api.PayAsync(users.Alice, users.Bob.WalletId, 100, key: key);
        var (connection, _) = await WireConnection.OpenAsync(fixture.Server.TcpEndPoint, users.Alice.Token);
        await using var _ = connection;
        var results = await connection.RoundTripAsync(1,
            Wire.Transfer(key, users.Alice.WalletId, users.Bob.WalletId, 100),
            Wire.Transfer(key, users.Alice.WalletId, users.Bob.WalletId, 200));
        Assert.True(results[0] == new WireResult(ResultCode.Ok, true, first.Long("id")), $"the replay over TCP: {Wire.Describe(results[0])}");
        Assert.Equal(ResultCode.ExistsWithDifferentAmount, results[1].Code);
        var differs = await _api.PostAsync("/v1/payments", users.Alice.Token, Pay(users.Alice.WalletId, users.Bob.WalletId, 200), key);
        differs.ExpectError(HttpStatusCode.Conflict, "exists_with_different_amount");
        Assert.Equal("amount", differs.Body!["error"]!["field"]!.GetValue<string>());
        Assert.Equal(10_000 - 100, (await _api.StateAsync(users.Alice.WalletId)).Posted);
    }

    [Fact]
    public async Task An_error_about_one_input_names_it_in_field()
    {
        var users = await UsersAsync();
        string Field(ApiResponse r) => r.Body?["error"]?["field"]?.GetValue<string>() ?? $"(none: {r.Raw})";

        var noKey = await _api.PostAsync("/v1/payments", users.Alice.Token, Pay(users.Alice.WalletId, users.Bob.WalletId, 100), key: "");
        noKey.ExpectError(HttpStatusCode.BadRequest, "idempotency_key_required");
        Assert.Equal("Idempotency-Key", Field(noKey));

        var amount = await _api.PostAsync("/v1/payments", users.Alice.Token, new { from_account = users.Alice.WalletId, to_account = users.Bob.WalletId, amount = 2.5, currency = "USD" });
        amount.ExpectError(HttpStatusCode.BadRequest, "invalid_amount");
        Assert.Equal("amount", Field(amount));

        var currency = await _api.PostAsync("/v1/payments", users.Alice.Token, new { from_account = users.Alice.WalletId, to_account = users.Bob.WalletId, amount = 1, currency = "usd" });
        currency.ExpectError(HttpStatusCode.BadRequest, "invalid_currency");
        Assert.Equal("currency", Field(currency));

        var account = await _api.PostAsync("/v1/payments", users.Alice.Token, new { from_account = "five", to_account = users.Bob.WalletId, amount = 1, currency = "USD" });
        account.ExpectError(HttpStatusCode.BadRequest, "invalid_request");
        Assert.Equal("from_account", Field(account));

        var deposit = await _api.PostAsync($"/v1/accounts/{users.Alice.WalletId}/deposits", users.Alice.Token, new { amount = 1, currency = "GBP" });
        deposit.ExpectError(HttpStatusCode.BadRequest, "invalid_currency");
        Assert.Equal("currency", Field(deposit));

        var note = await _api.PostAsync("/v1/payments", users.Alice.Token, new { from_account = users.Alice.WalletId, to_account = users.Bob.WalletId, amount = 1, currency = "USD", description = "ok", webhook_url = "ftp://x" });
        note.ExpectError(HttpStatusCode.BadRequest, "invalid_payment_note");
        Assert.Equal("webhook_url", Field(note));

        var email = await _api.PostAsync("/v1/users", null, new { email = "no-at-sign", password = Api.Password, name = "N" }, key: "");
        email.ExpectError(HttpStatusCode.BadRequest, "invalid_email");
        Assert.Equal("email", Field(email));

        var limit = await _api.GetAsync($"/v1/accounts/{users.Alice.WalletId}/payments?limit=0", users.Alice.Token);
        limit.ExpectError(HttpStatusCode.BadRequest, "invalid_request");
        Assert.Equal("limit", Field(limit));

        var after = await _api.GetAsync($"/v1/accounts/{users.Alice.WalletId}/payments?after=x", users.Alice.Token);
        after.ExpectError(HttpStatusCode.BadRequest, "invalid_request");
        Assert.Equal("after", Field(after));

        var batch = await _api.PostAsync("/v1/payments/batch", users.Alice.Token, new
        {
            payments = new object[] { Pay(users.Alice.WalletId, users.Bob.WalletId, 1), new { from_account = users.Alice.WalletId, to_account = users.Bob.WalletId, amount = 1, currency = "XX" } },
        });
        var items = batch.Expect(HttpStatusCode.OK)["results"]!.AsArray();
        Assert.Equal(201, items[0]!["status"]!.GetValue<int>());
        Assert.Equal("payments[1].currency", items[1]!["error"]!["field"]!.GetValue<string>());

        // An error about no single input has no field: nothing else in the shape changed.
        var poor = await _api.PostAsync("/v1/payments", users.Alice.Token, Pay(users.Bob.WalletId, users.Alice.WalletId, 100));
        poor.ExpectError(HttpStatusCode.Forbidden, "not_account_owner");
        var error = poor.Body!["error"]!.AsObject();
        Assert.False(error.ContainsKey("field"), poor.Raw);
        Assert.Equal(["code", "message", "request_id"], error.Select(p => p.Key).ToArray());
    }

    [Fact]
    public async Task A_TCP_deposit_from_an_account_other_than_the_platforms_funding_account_is_not_a_funding_account()
    {
        var users = await UsersAsync();
        var (connection, _) = await WireConnection.OpenAsync(fixture.Server.TcpEndPoint, users.Alice.Token);
        await using var _ = connection;
        string key = Api.NewKey();
        var results = await connection.RoundTripAsync(1,
            Wire.Deposit(key + "-wallet", users.Alice.WalletId, 100, from: users.Bob.WalletId),
            Wire.Deposit(key + "-eur-funding", users.Alice.WalletId, 100, "USD", from: await FundingAccountAsync("EUR")),
            Wire.Deposit(key + "-usd-funding", users.Alice.WalletId, 100, "USD", from: await FundingAccountAsync("USD")));
        Assert.Equal([ResultCode.NotAFundingAccount, ResultCode.NotAFundingAccount, ResultCode.Ok], results.Select(r => r.Code).ToArray());
        Assert.Equal(10_000 + 100, (await _api.StateAsync(users.Alice.WalletId)).Posted);
    }

    /// <summary>The platform's funding account of a currency: the source of an HTTP deposit in it.</summary>
    private async Task<long> FundingAccountAsync(string currency)
    {
        var user = await _api.SignUpAsync(currency: currency);
        var deposit = await _api.PostAsync($"/v1/accounts/{user.WalletId}/deposits", user.Token, new { amount = 1, currency });
        return deposit.Expect(HttpStatusCode.Created).Long("from_account");
    }
}
