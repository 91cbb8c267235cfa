using System.Net;

namespace RamPay.Server.Tests;

/// <summary>The Idempotency-Key contract of docs/api.md, over raw HTTP.</summary>
public class IdempotencyTests(InProcessServerFixture fixture) : IClassFixture<InProcessServerFixture>
{
    private readonly Api _api = fixture.Api;

    private static object Payment(TestUser from, long to, long amount, string currency = "USD") =>
        new { from_account = from.WalletId, to_account = to, amount, currency };

    [Fact]
    public async Task Replaying_a_payment_returns_the_same_payment_with_Idempotent_Replayed_and_moves_money_once()
    {
        var (alice, bob) = await _api.PairAsync();
        string key = Api.NewKey();
        var first = await _api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 2_500), key);
        var created = first.Expect(HttpStatusCode.Created);
        Assert.Null(first.Header("Idempotent-Replayed"));

        var second = await _api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 2_500), key);
        var replayed = second.Expect(HttpStatusCode.Created);
        Assert.Equal("true", second.Header("Idempotent-Replayed"));
        Assert.Equal(created.Long("id"), replayed.Long("id"));
        Assert.Equal(7_500, (await _api.AccountAsync(alice.WalletId)).Long("posted"));
        Assert.Equal(2_500, (await _api.AccountAsync(bob.WalletId)).Long("posted"));
    }

    [Fact]
    public async Task A_replay_shows_the_payment_as_it_is_now()
    {
        var (alice, bob) = await _api.PairAsync();
        string key = Api.NewKey();
        var body = new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 1_000, currency = "USD", capture = false };
        long id = (await _api.PostAsync("/v1/payments", alice.Token, body, key)).Expect(HttpStatusCode.Created).Long("id");
        (await _api.PostAsync($"/v1/payments/{id}/capture", bob.Token, new { amount = 400 })).Expect(HttpStatusCode.OK);

        var again = await _api.PostAsync("/v1/payments", alice.Token, body, key);
        var now = again.Expect(HttpStatusCode.Created);
        Assert.Equal("true", again.Header("Idempotent-Replayed"));
        Assert.Equal(id, now.Long("id"));
        Assert.Equal("captured", now.Str("status"));
        Assert.Equal(400, now.Long("captured"));
    }

    [Fact]
    public async Task Replays_of_deposit_capture_void_and_refund_apply_once()
    {
        var alice = await _api.SignUpAsync();
        var bob = await _api.SignUpAsync();
        string depositKey = Api.NewKey();
        long deposit = (await _api.DepositAsync(alice, 5_000, depositKey)).Long("id");
        var depositAgain = await _api.PostAsync($"/v1/accounts/{alice.WalletId}/deposits", alice.Token, new { amount = 5_000, currency = "USD" }, depositKey);
        Assert.Equal(deposit, depositAgain.Expect(HttpStatusCode.Created).Long("id"));
        Assert.Equal("true", depositAgain.Header("Idempotent-Replayed"));

        long auth1 = (await _api.PayAsync(alice, bob.WalletId, 1_000, capture: false)).Long("id");
        long auth2 = (await _api.PayAsync(alice, bob.WalletId, 1_000, capture: false)).Long("id");
        string captureKey = Api.NewKey(), voidKey = Api.NewKey(), refundKey = Api.NewKey();
        for (int i = 0; i < 2; i++)
        {
            var capture = await _api.PostAsync($"/v1/payments/{auth1}/capture", bob.Token, new { amount = 800 }, captureKey);
            Assert.Equal(auth1, capture.Expect(HttpStatusCode.OK).Long("id"));
            var voided = await _api.PostAsync($"/v1/payments/{auth2}/void", alice.Token, new { }, voidKey);
            Assert.Equal(auth2, voided.Expect(HttpStatusCode.OK).Long("id"));
            var refund = await _api.PostAsync($"/v1/payments/{auth1}/refunds", bob.Token, new { amount = 300 }, refundKey);
            refund.Expect(HttpStatusCode.Created);
            string? expected = i == 0 ? null : "true";
            Assert.True(expected == capture.Header("Idempotent-Replayed") && expected == voided.Header("Idempotent-Replayed")
                && expected == refund.Header("Idempotent-Replayed"), $"round {i}: Idempotent-Replayed should be {expected ?? "absent"}");
        }
        Assert.Equal(300, (await _api.PaymentAsync(auth1)).Long("refunded"));
        Assert.Equal(5_000 - 800 + 300, (await _api.AccountAsync(alice.WalletId)).Long("posted"));
        Assert.Equal(500, (await _api.AccountAsync(bob.WalletId)).Long("posted"));
    }

    [Fact]
    public async Task The_same_key_for_a_different_request_is_a_conflict_naming_the_field()
    {
        var (alice, bob) = await _api.PairAsync();
        var carol = await _api.SignUpAsync();
        string key = Api.NewKey();
        (await _api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 1_000), key)).Expect(HttpStatusCode.Created);

        var conflicts = new (object Body, string Code)[]
        {
            (Payment(alice, bob.WalletId, 1_001), "exists_with_different_amount"),
            (Payment(alice, carol.WalletId, 1_000), "exists_with_different_to_account"),
            (new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 1_000, currency = "USD", capture = false }, "exists_with_different_type"),
        };
        foreach (var (body, code) in conflicts)
        {
            await _api.ExpectRejectedAsync(() => _api.PostAsync("/v1/payments", alice.Token, body, key),
                HttpStatusCode.Conflict, code, alice.WalletId, bob.WalletId, carol.WalletId);
        }
    }

    [Fact]
    public async Task Reused_keys_on_capture_and_authorize_conflict_on_payment_id_and_hold_timeout()
    {
        var (alice, bob) = await _api.PairAsync();
        long auth1 = (await _api.PayAsync(alice, bob.WalletId, 1_000, capture: false)).Long("id");
        long auth2 = (await _api.PayAsync(alice, bob.WalletId, 1_000, capture: false)).Long("id");
        string captureKey = Api.NewKey();
        (await _api.PostAsync($"/v1/payments/{auth1}/capture", bob.Token, new { }, captureKey)).Expect(HttpStatusCode.OK);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{auth2}/capture", bob.Token, new { }, captureKey),
            HttpStatusCode.Conflict, "exists_with_different_payment_id", alice.WalletId, bob.WalletId);

        string authKey = Api.NewKey();
        object Hold(long ms) => new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 100, currency = "USD", capture = false, hold_timeout_ms = ms };
        (await _api.PostAsync("/v1/payments", alice.Token, Hold(60_000), authKey)).Expect(HttpStatusCode.Created);
        await _api.ExpectRejectedAsync(() => _api.PostAsync("/v1/payments", alice.Token, Hold(120_000), authKey),
            HttpStatusCode.Conflict, "exists_with_different_argument", alice.WalletId, bob.WalletId);
    }

    [Fact]
    public async Task The_admin_reusing_a_key_from_another_account_is_exists_with_different_from_account()
    {
        var alice = await _api.SignUpAsync(deposit: 10_000);
        var bob = await _api.SignUpAsync(deposit: 10_000);
        var carol = await _api.SignUpAsync();
        string admin = await _api.AdminTokenAsync();
        string key = Api.NewKey();
        (await _api.PostAsync("/v1/payments", admin, Payment(alice, carol.WalletId, 100), key)).Expect(HttpStatusCode.Created);
        await _api.ExpectRejectedAsync(() => _api.PostAsync("/v1/payments", admin, Payment(bob, carol.WalletId, 100), key),
            HttpStatusCode.Conflict, "exists_with_different_from_account", alice.WalletId, bob.WalletId, carol.WalletId);
    }

    [Fact]
    public async Task A_different_currency_with_the_same_key_is_exists_with_different_currency()
    {
        var (alice, bob) = await _api.PairAsync();
        long paid = (await _api.PayAsync(alice, bob.WalletId, 1_000)).Long("id");
        string key = Api.NewKey();
        (await _api.PostAsync($"/v1/payments/{paid}/refunds", bob.Token, new { amount = 100, currency = "USD" }, key)).Expect(HttpStatusCode.Created);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{paid}/refunds", bob.Token, new { amount = 100, currency = "EUR" }, key),
            HttpStatusCode.Conflict, "exists_with_different_currency", alice.WalletId, bob.WalletId);
    }

    [Fact]
    public async Task A_replay_returns_the_first_payment_with_its_first_note()
    {
        var (alice, bob) = await _api.PairAsync();
        string key = Api.NewKey();
        object Body(string description) => new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 100, currency = "USD", description };
        long id = (await _api.PostAsync("/v1/payments", alice.Token, Body("first"), key)).Expect(HttpStatusCode.Created).Long("id");
        var again = await _api.PostAsync("/v1/payments", alice.Token, Body("second"), key);
        var replayed = again.Expect(HttpStatusCode.Created);
        Assert.Equal("true", again.Header("Idempotent-Replayed"));
        Assert.Equal(id, replayed.Long("id"));
        Assert.Equal("first", replayed.Str("description"));
        Assert.Equal(100, (await _api.AccountAsync(bob.WalletId)).Long("posted"));
    }

    [Fact]
    public async Task A_key_used_over_HTTP_replays_over_TCP_for_the_same_user()
    {
        var (alice, bob) = await _api.PairAsync();
        string key = Api.NewKey();
        long id = (await _api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 700), key)).Expect(HttpStatusCode.Created).Long("id");
        var (connection, _) = await WireConnection.OpenAsync(fixture.Server.TcpEndPoint, alice.Token);
        await using (connection)
        {
            var results = await connection.RoundTripAsync(1, Wire.Transfer(key, alice.WalletId, bob.WalletId, 700));
            Assert.True(results[0] is { Code: RamPay.Core.ResultCode.Ok, Replayed: true } && results[0].Id == id, $"expected payment {id} replayed, got {Wire.Describe(results[0])}");
        }
        Assert.Equal(700, (await _api.AccountAsync(bob.WalletId)).Long("posted"));
    }

    [Fact]
    public async Task Keys_are_scoped_to_the_user()
    {
        var alice = await _api.SignUpAsync(deposit: 10_000);
        var bob = await _api.SignUpAsync(deposit: 10_000);
        string key = Api.NewKey();
        long a = (await _api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 100), key)).Expect(HttpStatusCode.Created).Long("id");
        var fromBob = await _api.PostAsync("/v1/payments", bob.Token, Payment(bob, alice.WalletId, 300), key);
        Assert.NotEqual(a, fromBob.Expect(HttpStatusCode.Created).Long("id"));
        Assert.Null(fromBob.Header("Idempotent-Replayed"));
        Assert.Equal(10_200, (await _api.AccountAsync(alice.WalletId)).Long("posted"));
    }

    [Fact]
    public async Task A_request_refused_before_the_ledger_is_not_remembered_and_can_be_corrected_with_the_same_key()
    {
        var (alice, bob) = await _api.PairAsync();
        string key = Api.NewKey();
        (await _api.SendAsync(HttpMethod.Post, "/v1/payments", alice.Token, rawBody: "{\"from_account\": ", idempotencyKey: key))
            .ExpectError(HttpStatusCode.BadRequest, "invalid_json");
        (await _api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 1.5, currency = "USD" }, key))
            .ExpectError(HttpStatusCode.BadRequest, "invalid_amount");

        var corrected = await _api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 150), key);
        corrected.Expect(HttpStatusCode.Created);
        Assert.Null(corrected.Header("Idempotent-Replayed"));
        Assert.Equal(150, (await _api.AccountAsync(bob.WalletId)).Long("posted"));
    }

    [Fact]
    public async Task A_business_rejection_is_remembered_and_replayed()
    {
        var (alice, bob) = await _api.PairAsync(100);
        string key = Api.NewKey();
        (await _api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 500), key)).ExpectError(HttpStatusCode.UnprocessableEntity, "insufficient_funds");
        await _api.DepositAsync(alice, 1_000);
        // The key's first result stands even though the payment would now succeed.
        var again = await _api.PostAsync("/v1/payments", alice.Token, Payment(alice, bob.WalletId, 500), key);
        again.ExpectError(HttpStatusCode.UnprocessableEntity, "insufficient_funds");
        Assert.Equal(0, (await _api.AccountAsync(bob.WalletId)).Long("posted"));
    }
}
