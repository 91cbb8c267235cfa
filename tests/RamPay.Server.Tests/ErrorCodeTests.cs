using System.Net;

namespace RamPay.Server.Tests;

/// <summary>
/// Every error code of docs/api.md's table that a client can provoke: its status, its code, the error shape, and
/// that nothing changed (balances and the newest payment of every account involved are the same before and after).
/// </summary>
public class ErrorCodeTests(InProcessServerFixture fixture) : IClassFixture<InProcessServerFixture>
{
    private const HttpStatusCode Unprocessable = HttpStatusCode.UnprocessableEntity;
    private readonly Api _api = fixture.Api;

    private Task<ApiResponse> Pay(TestUser from, object body, string? key = null) => _api.PostAsync("/v1/payments", from.Token, body, key);

    private static object Payment(TestUser from, long to, object amount, string currency = "USD") =>
        new { from_account = from.WalletId, to_account = to, amount, currency };

    [Fact]
    public async Task Malformed_JSON_is_invalid_json()
    {
        var (alice, bob) = await _api.PairAsync();
        foreach (var raw in new[] { "{not json", "", "[1,2", "{\"from_account\": }" })
        {
            await _api.ExpectRejectedAsync(() => _api.SendAsync(HttpMethod.Post, "/v1/payments", alice.Token, rawBody: raw, idempotencyKey: Api.NewKey()),
                HttpStatusCode.BadRequest, "invalid_json", alice.WalletId, bob.WalletId);
        }
        await _api.ExpectRejectedAsync(() => _api.SendAsync(HttpMethod.Post, "/v1/users", null, rawBody: "{\"email\": "),
            HttpStatusCode.BadRequest, "invalid_json");
    }

    [Fact]
    public async Task A_missing_field_or_one_of_the_wrong_type_is_invalid_request_naming_it()
    {
        var (alice, bob) = await _api.PairAsync();
        var cases = new (object Body, string Field)[]
        {
            (new { from_account = alice.WalletId, amount = 100, currency = "USD" }, "to_account"),
            (new { to_account = bob.WalletId, amount = 100, currency = "USD" }, "from_account"),
            (new { from_account = alice.WalletId, to_account = bob.WalletId, currency = "USD" }, "amount"),
            (new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 100 }, "currency"),
            (new { from_account = "five", to_account = bob.WalletId, amount = 100, currency = "USD" }, "from_account"),
            (new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 100, currency = "USD", capture = "yes" }, "capture"),
        };
        // Every case is tried, and every mismatch reported together.
        var mismatches = new List<string>();
        foreach (var (body, field) in cases)
        {
            var before = await _api.StateAsync(alice.WalletId);
            var response = await Pay(alice, body);
            string? message = response.Body?["error"]?["message"]?.ToString();
            if (response.Status != HttpStatusCode.BadRequest || response.ErrorCode != "invalid_request" || message?.Contains(field, StringComparison.Ordinal) != true)
                mismatches.Add($"{response.Request}: expected 400 invalid_request naming '{field}', got {(int)response.Status} {response.Raw}");
            Assert.Equal(before, await _api.StateAsync(alice.WalletId));
        }
        Assert.True(mismatches.Count == 0, string.Join("\n", mismatches));
    }

    [Fact]
    public async Task An_amount_that_is_a_float_a_string_zero_or_negative_is_invalid_amount_everywhere()
    {
        var (alice, bob) = await _api.PairAsync();
        long auth = (await _api.PayAsync(alice, bob.WalletId, 1_000, capture: false)).Long("id");
        long paid = (await _api.PayAsync(alice, bob.WalletId, 1_000)).Long("id");
        foreach (object amount in new object[] { 1.5, "100", 0, -1 })
        {
            await _api.ExpectRejectedAsync(() => Pay(alice, Payment(alice, bob.WalletId, amount)),
                HttpStatusCode.BadRequest, "invalid_amount", alice.WalletId, bob.WalletId);
            await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/accounts/{alice.WalletId}/deposits", alice.Token, new { amount, currency = "USD" }),
                HttpStatusCode.BadRequest, "invalid_amount", alice.WalletId);
            await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{paid}/refunds", bob.Token, new { amount }),
                HttpStatusCode.BadRequest, "invalid_amount", alice.WalletId, bob.WalletId);
            await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{auth}/capture", bob.Token, new { amount }),
                HttpStatusCode.BadRequest, "invalid_amount", alice.WalletId, bob.WalletId);
        }
        Assert.Equal("authorized", (await _api.PaymentAsync(auth)).Str("status"));
    }

    [Fact]
    public async Task A_currency_that_is_not_three_upper_case_letters_is_invalid_currency()
    {
        var (alice, bob) = await _api.PairAsync();
        foreach (var currency in new[] { "usd", "US", "USDD", "U1D", "" })
        {
            await _api.ExpectRejectedAsync(() => Pay(alice, Payment(alice, bob.WalletId, 100, currency)),
                HttpStatusCode.BadRequest, "invalid_currency", alice.WalletId, bob.WalletId);
        }
        // Sign-up only opens wallets in a currency the server has a funding account for (USD, EUR here).
        (await _api.PostAsync("/v1/users", null, new { email = Api.NewEmail(), password = Api.Password, name = "X", currency = "GBP" }, key: ""))
            .ExpectError(HttpStatusCode.BadRequest, "invalid_currency");
    }

    [Fact]
    public async Task Sign_up_refuses_a_bad_email_password_or_name()
    {
        var cases = new (object Body, string Code)[]
        {
            (new { email = "no-at-sign.example.com", password = Api.Password, name = "X" }, "invalid_email"),
            (new { email = "a@", password = Api.Password, name = "X" }, "invalid_email"),
            (new { email = new string('a', 250) + "@b.cd", password = Api.Password, name = "X" }, "invalid_email"),
            (new { email = Api.NewEmail(), password = "short", name = "X" }, "invalid_password"),
            (new { email = Api.NewEmail(), password = new string('p', 129), name = "X" }, "invalid_password"),
            (new { email = Api.NewEmail(), password = Api.Password, name = "" }, "invalid_name"),
            (new { email = Api.NewEmail(), password = Api.Password, name = new string('n', 201) }, "invalid_name"),
        };
        foreach (var (body, code) in cases)
            (await _api.PostAsync("/v1/users", null, body, key: "")).ExpectError(HttpStatusCode.BadRequest, code);
    }

    [Fact]
    public async Task A_hold_timeout_out_of_range_is_invalid_hold_timeout()
    {
        var (alice, bob) = await _api.PairAsync();
        foreach (long timeout in new[] { -1L, 31L * 24 * 3600 * 1000 + 1 })
        {
            await _api.ExpectRejectedAsync(() => Pay(alice, new
            {
                from_account = alice.WalletId, to_account = bob.WalletId, amount = 100, currency = "USD", capture = false, hold_timeout_ms = timeout,
            }), HttpStatusCode.BadRequest, "invalid_hold_timeout", alice.WalletId, bob.WalletId);
        }
    }

    [Fact]
    public async Task Paying_yourself_is_same_account()
    {
        var (alice, _) = await _api.PairAsync();
        await _api.ExpectRejectedAsync(() => Pay(alice, Payment(alice, alice.WalletId, 100)), HttpStatusCode.BadRequest, "same_account", alice.WalletId);
    }

    [Fact]
    public async Task A_money_moving_POST_without_an_idempotency_key_is_refused()
    {
        var (alice, bob) = await _api.PairAsync();
        long auth = (await _api.PayAsync(alice, bob.WalletId, 1_000, capture: false)).Long("id");
        long paid = (await _api.PayAsync(alice, bob.WalletId, 1_000)).Long("id");
        var requests = new (string Path, object Body)[]
        {
            ("/v1/payments", Payment(alice, bob.WalletId, 100)),
            ($"/v1/accounts/{alice.WalletId}/deposits", new { amount = 100, currency = "USD" }),
            ($"/v1/payments/{auth}/capture", new { }),
            ($"/v1/payments/{auth}/void", new { }),
            ($"/v1/payments/{paid}/refunds", new { amount = 10 }),
            ("/v1/payments/batch", new { payments = new[] { Payment(alice, bob.WalletId, 100) } }),
        };
        foreach (var (path, body) in requests)
        {
            await _api.ExpectRejectedAsync(() => _api.PostAsync(path, alice.Token, body, key: ""),
                HttpStatusCode.BadRequest, "idempotency_key_required", alice.WalletId, bob.WalletId);
            await _api.ExpectRejectedAsync(() => _api.PostAsync(path, alice.Token, body, key: new string('k', 256)),
                HttpStatusCode.BadRequest, "invalid_idempotency_key", alice.WalletId, bob.WalletId);
        }
    }

    [Fact]
    public async Task More_payments_than_the_batch_limit_is_batch_too_large_and_none_is_applied()
    {
        var (alice, bob) = await _api.PairAsync();
        var payments = Enumerable.Range(0, ServerFixture.MaxBatchPayments + 1).Select(_ => Payment(alice, bob.WalletId, 1)).ToArray();
        await _api.ExpectRejectedAsync(() => _api.PostAsync("/v1/payments/batch", alice.Token, new { payments }),
            HttpStatusCode.BadRequest, "batch_too_large", alice.WalletId, bob.WalletId);
        // A body without a payments array is refused whole as well.
        await _api.ExpectRejectedAsync(() => _api.PostAsync("/v1/payments/batch", alice.Token, new { items = payments }),
            HttpStatusCode.BadRequest, "invalid_request", alice.WalletId, bob.WalletId);
        // Exactly the limit is fine.
        var ok = (await _api.PostAsync("/v1/payments/batch", alice.Token, new { payments = payments[1..] })).Expect(HttpStatusCode.OK);
        Assert.Equal(ServerFixture.MaxBatchPayments, ok["results"]!.AsArray().Count(r => r!.Long("status") == 201));
    }

    [Fact]
    public async Task Paying_more_than_the_available_balance_is_insufficient_funds()
    {
        var (alice, bob) = await _api.PairAsync(1_000);
        await _api.ExpectRejectedAsync(() => Pay(alice, Payment(alice, bob.WalletId, 1_001)), Unprocessable, "insufficient_funds", alice.WalletId, bob.WalletId);
        // Held funds are not available either.
        await _api.PayAsync(alice, bob.WalletId, 600, capture: false);
        await _api.ExpectRejectedAsync(() => Pay(alice, Payment(alice, bob.WalletId, 401)), Unprocessable, "insufficient_funds", alice.WalletId, bob.WalletId);
    }

    [Fact]
    public async Task Paying_across_currencies_is_currency_mismatch()
    {
        var alice = await _api.SignUpAsync(deposit: 1_000);
        var eve = await _api.SignUpAsync(currency: "EUR");
        await _api.ExpectRejectedAsync(() => Pay(alice, Payment(alice, eve.WalletId, 100, "USD")), Unprocessable, "currency_mismatch", alice.WalletId, eve.WalletId);
        await _api.ExpectRejectedAsync(() => Pay(alice, Payment(alice, eve.WalletId, 100, "EUR")), Unprocessable, "currency_mismatch", alice.WalletId, eve.WalletId);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/accounts/{alice.WalletId}/deposits", alice.Token, new { amount = 100, currency = "EUR" }),
            Unprocessable, "currency_mismatch", alice.WalletId);
        // A refund's currency, when given, must be the payment's.
        var bob = await _api.SignUpAsync();
        long paid = (await _api.PayAsync(alice, bob.WalletId, 100)).Long("id");
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{paid}/refunds", bob.Token, new { amount = 10, currency = "EUR" }),
            Unprocessable, "currency_mismatch", alice.WalletId, bob.WalletId);
    }

    [Fact]
    public async Task A_payment_that_would_overflow_a_balance_is_overflow()
    {
        // The admin may pay from the funding account, which has no balance floor; its debits make any amount near
        // the largest integer overflow.
        var (alice, _) = await _api.PairAsync();
        long funding = (await _api.HistoryAsync(alice.WalletId, alice.Token)).Single(p => p.Str("kind") == "deposit").Long("from_account");
        string admin = await _api.AdminTokenAsync();
        await _api.ExpectRejectedAsync(() => _api.PostAsync("/v1/payments", admin, new { from_account = funding, to_account = alice.WalletId, amount = long.MaxValue, currency = "USD" }),
            Unprocessable, "overflow", funding, alice.WalletId);
    }

    [Fact]
    public async Task An_unknown_account_is_account_not_found()
    {
        var (alice, _) = await _api.PairAsync();
        const long unknown = 9_000_000;
        (await _api.GetAsync($"/v1/accounts/{unknown}", await _api.AdminTokenAsync())).ExpectError(HttpStatusCode.NotFound, "account_not_found");
        await _api.ExpectRejectedAsync(() => Pay(alice, Payment(alice, unknown, 100)), HttpStatusCode.NotFound, "account_not_found", alice.WalletId);
        (await _api.GetAsync($"/v1/accounts/{unknown}/payments", await _api.AdminTokenAsync())).ExpectError(HttpStatusCode.NotFound, "account_not_found");
        (await _api.PostAsync($"/v1/admin/accounts/{unknown}/freeze", await _api.AdminTokenAsync(), null)).ExpectError(HttpStatusCode.NotFound, "account_not_found");
    }

    [Fact]
    public async Task An_unknown_payment_is_payment_not_found()
    {
        var (alice, bob) = await _api.PairAsync();
        const long unknown = 9_000_000;
        (await _api.GetAsync($"/v1/payments/{unknown}", alice.Token)).ExpectError(HttpStatusCode.NotFound, "payment_not_found");
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{unknown}/capture", alice.Token, new { }), HttpStatusCode.NotFound, "payment_not_found", alice.WalletId, bob.WalletId);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{unknown}/void", alice.Token, new { }), HttpStatusCode.NotFound, "payment_not_found", alice.WalletId, bob.WalletId);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{unknown}/refunds", alice.Token, new { amount = 1 }), HttpStatusCode.NotFound, "payment_not_found", alice.WalletId, bob.WalletId);
    }

    [Fact]
    public async Task Capturing_a_settled_payment_or_more_than_authorized_is_refused()
    {
        var (alice, bob) = await _api.PairAsync();
        long transfer = (await _api.PayAsync(alice, bob.WalletId, 1_000)).Long("id");
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{transfer}/capture", bob.Token, new { }),
            Unprocessable, "payment_not_authorized", alice.WalletId, bob.WalletId);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{transfer}/void", alice.Token, new { }),
            Unprocessable, "payment_not_authorized", alice.WalletId, bob.WalletId);

        long auth = (await _api.PayAsync(alice, bob.WalletId, 1_000, capture: false)).Long("id");
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{auth}/capture", bob.Token, new { amount = 1_001 }),
            Unprocessable, "amount_exceeds_authorized", alice.WalletId, bob.WalletId);
        Assert.Equal("authorized", (await _api.PaymentAsync(auth)).Str("status"));
    }

    [Fact]
    public async Task Refunding_an_authorization_that_is_not_captured_is_payment_not_captured()
    {
        var (alice, bob) = await _api.PairAsync();
        long auth = (await _api.PayAsync(alice, bob.WalletId, 1_000, capture: false)).Long("id");
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{auth}/refunds", bob.Token, new { amount = 100 }),
            Unprocessable, "payment_not_captured", alice.WalletId, bob.WalletId);
        (await _api.PostAsync($"/v1/payments/{auth}/void", bob.Token, new { })).Expect(HttpStatusCode.OK);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{auth}/refunds", bob.Token, new { amount = 100 }),
            Unprocessable, "payment_not_captured", alice.WalletId, bob.WalletId);
    }

    [Fact]
    public async Task A_deposit_above_the_maximum_is_deposit_limit_exceeded()
    {
        var (alice, _) = await _api.PairAsync();
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/accounts/{alice.WalletId}/deposits", alice.Token, new { amount = ServerFixture.MaxDeposit + 1, currency = "USD" }),
            Unprocessable, "deposit_limit_exceeded", alice.WalletId);
        // The maximum itself is allowed.
        await _api.DepositAsync(alice, ServerFixture.MaxDeposit);
    }

    [Fact]
    public async Task A_body_above_the_configured_maximum_is_payload_too_large()
    {
        var (alice, bob) = await _api.PairAsync();
        string description = new('d', ServerFixture.MaxRequestBodyBytes);
        await _api.ExpectRejectedAsync(() => Pay(alice, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 100, currency = "USD", description }),
            HttpStatusCode.RequestEntityTooLarge, "payload_too_large", alice.WalletId, bob.WalletId);
    }

    [Fact]
    public async Task A_description_or_webhook_url_out_of_bounds_is_invalid_payment_note()
    {
        var (alice, bob) = await _api.PairAsync();
        object Note(string? description = null, string? webhook_url = null) =>
            new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 100, currency = "USD", description, webhook_url };
        var bodies = new[]
        {
            Note(description: new string('d', 501)),
            Note(description: "line\nbreak"),
            Note(webhook_url: "ftp://example.com/x"),
            Note(webhook_url: "/relative"),
            Note(webhook_url: "https://exämple.com/hook"),
            Note(webhook_url: "https://example.com/" + new string('p', 2_000)),
        };
        foreach (var body in bodies)
            await _api.ExpectRejectedAsync(() => Pay(alice, body), HttpStatusCode.BadRequest, "invalid_payment_note", alice.WalletId, bob.WalletId);
        // The bounds themselves are fine.
        var longest = (await Pay(alice, Note(new string('d', 500), "https://example.com/" + new string('p', 1_980)))).Expect(HttpStatusCode.Created);
        Assert.Equal(500, longest.Str("description").Length);
    }
}
