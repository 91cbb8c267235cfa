using Account = RamPay.Contracts.Account;
using RamPay.Contracts;
using Payment = RamPay.Contracts.Payment;
using User = RamPay.Contracts.User;
using System.Net;
using System.Text;
using System.Text.Json;

namespace RamPay.Client.Tests;

/// <summary>Records each request and answers with the next canned response, so a test sees exactly what went out.</summary>
internal sealed class StubHandler : HttpMessageHandler
{
    private readonly Queue<HttpResponseMessage> _responses = new();

    public List<(HttpRequestMessage Request, string? Body)> Requests { get; } = [];

    public StubHandler Respond(HttpStatusCode status, string json, params (string Name, string Value)[] headers)
    {
        var response = new HttpResponseMessage(status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        foreach ((string name, string value) in headers) response.Headers.TryAddWithoutValidation(name, value);
        _responses.Enqueue(response);
        return this;
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        string? body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
        Requests.Add((request, body));
        return _responses.Dequeue();
    }

    public HttpRequestMessage Last => Requests[^1].Request;
    public JsonElement LastBody => JsonDocument.Parse(Requests[^1].Body!).RootElement;
}

public sealed class HttpClientTests
{
    private const string PaymentJson = """
        {"id": 42, "kind": "transfer", "status": "posted", "from_account": 5, "to_account": 6,
         "amount": 2500, "currency": "USD", "captured": 2500, "refunded": 0,
         "created_at": "2026-11-21T10:00:00.123Z", "expires_at": null, "refund_of": null,
         "description": "dinner", "webhook_url": null}
        """;

    private static (RamPayHttpClient Client, StubHandler Stub) Make(string baseAddress = "http://127.0.0.1:8080")
    {
        var stub = new StubHandler();
        return (new RamPayHttpClient(new HttpClient(stub), new Uri(baseAddress), ownsHttpClient: true), stub);
    }

    [Fact]
    public async Task Login_keeps_the_token_and_later_calls_send_it_as_bearer()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        stub.Respond(HttpStatusCode.OK, """{"access_token": "eyJ.abc", "token_type": "Bearer", "expires_in": 3600}""")
            .Respond(HttpStatusCode.OK, """{"user_id": 2, "email": "ada@example.com", "name": "Ada", "role": "user", "wallet_account_id": 5, "currency": "USD", "created_at": "2026-11-21T10:00:00Z", "phone": "+15551234567", "phone_verified": true, "notifications": {"email": true, "sms": false}}""");

        TokenResponse token = await client.LoginAsync("ada@example.com", "secret-password");
        Assert.Equal("eyJ.abc", token.AccessToken);
        Assert.Equal(3600, token.ExpiresIn);
        Assert.Equal("http://127.0.0.1:8080/v1/auth/token", stub.Last.RequestUri!.ToString());
        Assert.Equal("ada@example.com", stub.LastBody.GetProperty("email").GetString());
        Assert.Equal("secret-password", stub.LastBody.GetProperty("password").GetString());

        UserProfileView me = await client.GetMeAsync();
        Assert.Equal(HttpMethod.Get, stub.Last.Method);
        Assert.Equal("Bearer", stub.Last.Headers.Authorization!.Scheme);
        Assert.Equal("eyJ.abc", stub.Last.Headers.Authorization.Parameter);
        Assert.Equal(("ada@example.com", "+15551234567", true, new NotificationChannels(true, false)), (me.Email, me.Phone, me.PhoneVerified, me.Notifications));
        Assert.Equal(new DateTimeOffset(2026, 11, 21, 10, 0, 0, TimeSpan.Zero), me.CreatedAt);
    }

    [Fact]
    public async Task Register_sends_snake_case_and_leaves_out_a_null_currency()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        stub.Respond(HttpStatusCode.Created, """{"user_id": 2, "wallet_account_id": 5, "email": "a@b.c", "name": "A", "role": "user", "currency": "USD", "created_at": "2026-11-21T10:00:00Z"}""");
        User user = await client.RegisterAsync("a@b.c", "password1", "A");
        Assert.Equal(5, user.WalletAccountId);
        Assert.Equal(HttpMethod.Post, stub.Last.Method);
        Assert.EndsWith("/v1/users", stub.Last.RequestUri!.AbsolutePath);
        Assert.False(stub.LastBody.TryGetProperty("currency", out _));
        Assert.Null(stub.Last.Headers.Authorization);
    }

    [Fact]
    public async Task CreatePayment_sends_the_key_and_a_snake_case_body_and_reads_the_payment()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        client.AccessToken = "tok";
        stub.Respond(HttpStatusCode.Created, PaymentJson);

        RamPayResponse<Payment> response = await client.CreatePaymentAsync(
            new PaymentRequest(5, 6, 2500, "USD") { Description = "dinner", Capture = false, HoldTimeoutMs = 60_000 }, "order-42");

        Assert.Equal(["order-42"], stub.Last.Headers.GetValues("Idempotency-Key"));
        // A known length, not a chunked stream: the request leaves in one piece (see RamPayHttpClient.Body).
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(stub.Requests[^1].Body!), stub.Last.Content!.Headers.ContentLength);
        Assert.Equal("application/json", stub.Last.Content.Headers.ContentType!.MediaType);
        JsonElement body = stub.LastBody;
        Assert.Equal(5, body.GetProperty("from_account").GetInt64());
        Assert.Equal(6, body.GetProperty("to_account").GetInt64());
        Assert.Equal(2500, body.GetProperty("amount").GetInt64());
        Assert.Equal(JsonValueKind.Number, body.GetProperty("amount").ValueKind);
        Assert.False(body.GetProperty("capture").GetBoolean());
        Assert.Equal(60_000, body.GetProperty("hold_timeout_ms").GetInt64());
        Assert.False(body.TryGetProperty("webhook_url", out _));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.False(response.Replayed);
        Assert.Equal("order-42", response.IdempotencyKey);
        Payment p = response.Value;
        Assert.Equal((42L, "transfer", "posted", 5L, 6L, 2500L, "USD", "dinner"), (p.Id, p.Kind, p.Status, p.FromAccount, p.ToAccount, p.Amount, p.Currency, p.Description));
        Assert.Null(p.RefundOf);
        Assert.Equal(123, p.CreatedAt.Millisecond);
    }

    [Fact]
    public async Task The_replayed_header_is_exposed_on_success_and_on_error()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        stub.Respond(HttpStatusCode.Created, PaymentJson, ("Idempotent-Replayed", "true"))
            .Respond(HttpStatusCode.UnprocessableEntity, """{"error": {"code": "insufficient_funds", "message": "m"}}""", ("Idempotent-Replayed", "true"));

        Assert.True((await client.CreatePaymentAsync(new PaymentRequest(5, 6, 1, "USD"), "k")).Replayed);
        var e = await Assert.ThrowsAsync<RamPayApiException>(() => client.CreatePaymentAsync(new PaymentRequest(5, 6, 1, "USD"), "k"));
        Assert.True(e.Replayed);
    }

    [Fact]
    public async Task An_error_answer_throws_with_status_code_and_message()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        stub.Respond(HttpStatusCode.UnprocessableEntity,
            """{"error": {"code": "insufficient_funds", "message": "The paying account's available balance is lower than the amount."}}""");

        var e = await Assert.ThrowsAsync<RamPayApiException>(() => client.CreatePaymentAsync(new PaymentRequest(5, 6, 1, "USD"), "k"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, e.StatusCode);
        Assert.Equal("insufficient_funds", e.Code);
        Assert.Equal("The paying account's available balance is lower than the amount.", e.ApiMessage);
        Assert.False(e.Replayed);
    }

    [Fact]
    public async Task Rate_limiting_carries_retry_after()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        stub.Respond(HttpStatusCode.TooManyRequests, """{"error": {"code": "rate_limited", "message": "slow down"}}""", ("Retry-After", "3"));
        var e = await Assert.ThrowsAsync<RamPayApiException>(() => client.GetAccountAsync(5));
        Assert.Equal("rate_limited", e.Code);
        Assert.Equal(TimeSpan.FromSeconds(3), e.RetryAfter);
    }

    [Fact]
    public async Task An_answer_not_in_the_error_shape_still_throws_with_the_status_and_body()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        stub.Respond(HttpStatusCode.BadGateway, "<html>bad gateway</html>");
        var e = await Assert.ThrowsAsync<RamPayApiException>(() => client.GetPaymentAsync(1));
        Assert.Equal(HttpStatusCode.BadGateway, e.StatusCode);
        Assert.Equal("http_502", e.Code);
        Assert.Contains("bad gateway", e.ApiMessage);
    }

    [Fact]
    public async Task The_fresh_key_overloads_send_a_new_key_each_call_and_report_it()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        stub.Respond(HttpStatusCode.Created, PaymentJson).Respond(HttpStatusCode.Created, PaymentJson);
        RamPayResponse<Payment> a = await client.DepositAsync(5, 100, "USD");
        RamPayResponse<Payment> b = await client.DepositAsync(5, 100, "USD");
        string keyA = stub.Requests[0].Request.Headers.GetValues("Idempotency-Key").Single();
        string keyB = stub.Requests[1].Request.Headers.GetValues("Idempotency-Key").Single();
        Assert.NotEqual(keyA, keyB);
        Assert.Equal(keyA, a.IdempotencyKey);
        Assert.Equal(keyB, b.IdempotencyKey);
        Assert.EndsWith("/v1/accounts/5/deposits", stub.Last.RequestUri!.AbsolutePath);
        Assert.Equal(100, stub.LastBody.GetProperty("amount").GetInt64());
        Assert.Equal("USD", stub.LastBody.GetProperty("currency").GetString());
    }

    [Fact]
    public async Task Capture_void_and_refund_hit_their_routes_with_their_bodies()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        for (int i = 0; i < 4; i++) stub.Respond(HttpStatusCode.OK, PaymentJson);

        await client.CaptureAsync(42, amount: null, "c1");
        Assert.EndsWith("/v1/payments/42/capture", stub.Last.RequestUri!.AbsolutePath);
        Assert.Equal("{}", stub.Requests[^1].Body);
        await client.CaptureAsync(42, 2000, "c2");
        Assert.Equal(2000, stub.LastBody.GetProperty("amount").GetInt64());
        await client.VoidAsync(42, "v1");
        Assert.EndsWith("/v1/payments/42/void", stub.Last.RequestUri!.AbsolutePath);
        Assert.Equal("{}", stub.Requests[^1].Body);
        await client.RefundAsync(42, 500, "r1");
        Assert.EndsWith("/v1/payments/42/refunds", stub.Last.RequestUri!.AbsolutePath);
        Assert.Equal(500, stub.LastBody.GetProperty("amount").GetInt64());
        Assert.False(stub.LastBody.TryGetProperty("currency", out _));
    }

    [Fact]
    public async Task Batch_results_carry_a_payment_or_an_error_each()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        stub.Respond(HttpStatusCode.OK, $$$"""
            {"results": [{"status": 201, "payment": {{{PaymentJson}}}},
                         {"status": 422, "error": {"code": "insufficient_funds", "message": "m"}}]}
            """);
        RamPayResponse<BatchResponse> response = await client.CreatePaymentsAsync([new PaymentRequest(5, 6, 1, "USD"), new PaymentRequest(5, 7, 2, "USD")], "b1");
        Assert.EndsWith("/v1/payments/batch", stub.Last.RequestUri!.AbsolutePath);
        Assert.Equal(2, stub.LastBody.GetProperty("payments").GetArrayLength());
        Assert.Equal(7, stub.LastBody.GetProperty("payments")[1].GetProperty("to_account").GetInt64());
        BatchItemResult first = response.Value.Results[0], second = response.Value.Results[1];
        Assert.True(first.IsSuccess);
        Assert.Equal(42, first.Payment!.Id);
        Assert.False(second.IsSuccess);
        Assert.Equal("insufficient_funds", second.Error!.Code);
    }

    [Fact]
    public async Task Listing_pages_follows_next_after_until_the_last_page()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        string Page(long id, bool more, string next) =>
            "{\"data\": [" + PaymentJson.Replace("\"id\": 42", $"\"id\": {id}") + "], \"has_more\": " + (more ? "true" : "false") + ", \"next_after\": " + next + "}";
        stub.Respond(HttpStatusCode.OK, Page(9, true, "9")).Respond(HttpStatusCode.OK, Page(3, false, "null"));

        var ids = new List<long>();
        await foreach (Payment p in client.ListAllPaymentsAsync(5, pageSize: 1)) ids.Add(p.Id);

        Assert.Equal([9L, 3L], ids);
        Assert.Equal("/v1/accounts/5/payments?limit=1", stub.Requests[0].Request.RequestUri!.PathAndQuery);
        Assert.Equal("/v1/accounts/5/payments?limit=1&after=9", stub.Requests[1].Request.RequestUri!.PathAndQuery);
    }

    [Fact]
    public async Task Readiness_returns_a_503_health_body_instead_of_throwing()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        stub.Respond(HttpStatusCode.ServiceUnavailable, """{"status": "starting"}""")
            .Respond(HttpStatusCode.OK, """{"status": "ready", "journal_sequence": 1234, "accounts": 5, "payments": 40}""")
            .Respond(HttpStatusCode.ServiceUnavailable, """{"error": {"code": "not_ready", "message": "m"}}""");
        HealthStatus starting = await client.GetReadyAsync();
        Assert.False(starting.IsReady);
        HealthStatus ready = await client.GetReadyAsync();
        Assert.True(ready.IsReady);
        Assert.Equal(1234, ready.JournalSequence);
        Assert.Equal("/health/ready", stub.Last.RequestUri!.AbsolutePath);
        // A 503 in the error shape is not a health body: it throws like any other error.
        await Assert.ThrowsAsync<RamPayApiException>(() => client.GetReadyAsync());
    }

    [Fact]
    public async Task Admin_freeze_and_unfreeze_post_to_the_admin_routes()
    {
        (RamPayHttpClient client, StubHandler stub) = Make();
        string account = """{"id": 5, "owner_user_id": 2, "currency": "USD", "type": "wallet", "frozen": true, "posted": 0, "pending": 0, "available": 0, "debits_posted": 0, "credits_posted": 0, "debits_pending": 0, "credits_pending": 0, "created_at": "2026-11-21T10:00:00Z"}""";
        stub.Respond(HttpStatusCode.OK, account).Respond(HttpStatusCode.OK, account.Replace("\"frozen\": true", "\"frozen\": false"));
        Assert.True((await client.FreezeAccountAsync(5)).Value.Frozen);
        Assert.EndsWith("/v1/admin/accounts/5/freeze", stub.Last.RequestUri!.AbsolutePath);
        Assert.False(stub.Last.Headers.Contains("Idempotency-Key"));
        Assert.False((await client.UnfreezeAccountAsync(5, "u1")).Value.Frozen);
        Assert.EndsWith("/v1/admin/accounts/5/unfreeze", stub.Last.RequestUri!.AbsolutePath);
        Assert.Equal(["u1"], stub.Last.Headers.GetValues("Idempotency-Key"));
    }

    [Fact]
    public async Task A_base_address_with_a_path_keeps_its_path()
    {
        (RamPayHttpClient client, StubHandler stub) = Make("http://gateway.test/rampay");
        stub.Respond(HttpStatusCode.OK, """{"status": "live"}""");
        await client.GetLiveAsync();
        Assert.Equal("http://gateway.test/rampay/health/live", stub.Last.RequestUri!.ToString());
    }
}
