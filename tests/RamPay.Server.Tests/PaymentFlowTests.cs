using System.Net;
using System.Text.Json.Nodes;

namespace RamPay.Server.Tests;

/// <summary>Deposits, transfers, two-phase payments, refunds, history, batches and freezing, over raw HTTP.</summary>
public class PaymentFlowTests(InProcessServerFixture fixture) : IClassFixture<InProcessServerFixture>
{
    private readonly Api _api = fixture.Api;

    private async Task AssertBalancesAsync(long accountId, long posted, long pending, long available)
    {
        var a = await _api.AccountAsync(accountId);
        Assert.True(a.Long("posted") == posted && a.Long("pending") == pending && a.Long("available") == available,
            $"account {accountId}: expected posted {posted}, pending {pending}, available {available}; got {a.ToJsonString()}");
    }

    [Fact]
    public async Task A_deposit_is_a_posted_payment_from_the_funding_account_into_the_wallet()
    {
        var user = await _api.SignUpAsync();
        var deposit = await _api.DepositAsync(user, 10_000);

        Assert.True(deposit.Long("id") > 0);
        Assert.Equal("deposit", deposit.Str("kind"));
        Assert.Equal("posted", deposit.Str("status"));
        Assert.Equal(user.WalletId, deposit.Long("to_account"));
        Assert.NotEqual(user.WalletId, deposit.Long("from_account"));
        Assert.Equal(10_000, deposit.Long("amount"));
        Assert.Equal(10_000, deposit.Long("captured"));
        Assert.Equal(0, deposit.Long("refunded"));
        Assert.Equal("USD", deposit.Str("currency"));
        UserAndTokenTests.AssertRfc3339Utc(deposit.Str("created_at"));
        Assert.True(deposit.IsNull("expires_at") && deposit.IsNull("refund_of"), deposit.ToJsonString());

        var funding = await _api.AccountAsync(deposit.Long("from_account"));
        Assert.Equal("funding", funding.Str("type"));
        Assert.Equal("USD", funding.Str("currency"));
        await AssertBalancesAsync(user.WalletId, 10_000, 0, 10_000);
        var wallet = await _api.AccountAsync(user.WalletId);
        Assert.Equal(10_000, wallet.Long("credits_posted"));
        Assert.Equal(0, wallet.Long("debits_posted"));
    }

    [Fact]
    public async Task A_payment_moves_money_and_both_sides_can_read_it()
    {
        var (alice, bob) = await _api.PairAsync();
        var response = await _api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 2_500, currency = "USD" });
        var payment = response.Expect(HttpStatusCode.Created);

        Assert.Equal("transfer", payment.Str("kind"));
        Assert.Equal("posted", payment.Str("status"));
        Assert.Equal(alice.WalletId, payment.Long("from_account"));
        Assert.Equal(bob.WalletId, payment.Long("to_account"));
        Assert.Equal(2_500, payment.Long("amount"));
        Assert.Equal(2_500, payment.Long("captured"));
        Assert.True(payment.IsNull("expires_at") && payment.IsNull("refund_of"), payment.ToJsonString());
        Assert.NotEqual("true", response.Header("Idempotent-Replayed"));

        await AssertBalancesAsync(alice.WalletId, 7_500, 0, 7_500);
        await AssertBalancesAsync(bob.WalletId, 2_500, 0, 2_500);
        foreach (var reader in new[] { alice, bob })
        {
            var read = (await _api.GetAsync($"/v1/payments/{payment.Long("id")}", reader.Token)).Expect(HttpStatusCode.OK);
            Assert.True(JsonNode.DeepEquals(payment, read), $"GET shows {read.ToJsonString()}, POST returned {payment.ToJsonString()}");
        }
    }

    [Fact]
    public async Task A_payment_object_has_every_documented_field()
    {
        var (alice, bob) = await _api.PairAsync();
        var payment = await _api.PayAsync(alice, bob.WalletId, 100);
        string[] fields = ["id", "kind", "status", "from_account", "to_account", "amount", "currency", "captured", "refunded",
            "created_at", "expires_at", "refund_of", "description", "webhook_url"];
        var missing = fields.Where(f => !payment.AsObject().ContainsKey(f)).ToList();
        Assert.True(missing.Count == 0, $"the payment object lacks {string.Join(", ", missing)}: {payment.ToJsonString()}");
    }

    [Fact]
    public async Task A_payments_description_and_webhook_url_are_kept_with_it()
    {
        var (alice, bob) = await _api.PairAsync();
        var payment = (await _api.PostAsync("/v1/payments", alice.Token, new
        {
            from_account = alice.WalletId, to_account = bob.WalletId, amount = 2_500, currency = "USD",
            description = "dinner", webhook_url = "https://example.com/hook",
        })).Expect(HttpStatusCode.Created);
        Assert.Equal("dinner", payment.Str("description"));
        Assert.Equal("https://example.com/hook", payment.Str("webhook_url"));
        var read = await _api.PaymentAsync(payment.Long("id"), bob.Token);
        Assert.Equal("dinner", read.Str("description"));
        Assert.Equal("https://example.com/hook", read.Str("webhook_url"));
    }

    [Fact]
    public async Task An_empty_description_or_webhook_url_is_the_same_as_none()
    {
        var (alice, bob) = await _api.PairAsync();
        var payment = (await _api.PostAsync("/v1/payments", alice.Token, new
        {
            from_account = alice.WalletId, to_account = bob.WalletId, amount = 100, currency = "USD", description = "", webhook_url = "",
        })).Expect(HttpStatusCode.Created);
        Assert.True(payment.IsNull("description") && payment.IsNull("webhook_url"), payment.ToJsonString());
    }

    [Fact]
    public async Task Authorize_holds_funds_then_a_partial_capture_settles_part_and_releases_the_rest()
    {
        var (alice, bob) = await _api.PairAsync();
        var auth = await _api.PayAsync(alice, bob.WalletId, 3_000, capture: false);
        long id = auth.Long("id");
        Assert.Equal("authorization", auth.Str("kind"));
        Assert.Equal("authorized", auth.Str("status"));
        Assert.Equal(0, auth.Long("captured"));
        var expires = DateTimeOffset.Parse(auth.Str("expires_at"), System.Globalization.CultureInfo.InvariantCulture);
        var created = DateTimeOffset.Parse(auth.Str("created_at"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Math.Abs((expires - created - TimeSpan.FromDays(7)).TotalSeconds) < 1, $"the default hold is 7 days: {auth.ToJsonString()}");

        await AssertBalancesAsync(alice.WalletId, 10_000, -3_000, 7_000);
        await AssertBalancesAsync(bob.WalletId, 0, 3_000, 0);

        // The payee captures part of it.
        var captured = (await _api.PostAsync($"/v1/payments/{id}/capture", bob.Token, new { amount = 2_000 })).Expect(HttpStatusCode.OK);
        Assert.Equal(id, captured.Long("id"));
        Assert.Equal("captured", captured.Str("status"));
        Assert.Equal(2_000, captured.Long("captured"));
        Assert.Equal(3_000, captured.Long("amount"));
        await AssertBalancesAsync(alice.WalletId, 8_000, 0, 8_000);
        await AssertBalancesAsync(bob.WalletId, 2_000, 0, 2_000);

        // Captured once: a second capture is refused and changes nothing.
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{id}/capture", alice.Token, new { }),
            HttpStatusCode.UnprocessableEntity, "payment_not_authorized", alice.WalletId, bob.WalletId);
    }

    [Fact]
    public async Task Capture_with_an_empty_body_settles_the_whole_authorization()
    {
        var (alice, bob) = await _api.PairAsync();
        long id = (await _api.PayAsync(alice, bob.WalletId, 4_000, capture: false)).Long("id");
        var captured = (await _api.PostAsync($"/v1/payments/{id}/capture", alice.Token, new { })).Expect(HttpStatusCode.OK);
        Assert.Equal(4_000, captured.Long("captured"));
        await AssertBalancesAsync(alice.WalletId, 6_000, 0, 6_000);
        await AssertBalancesAsync(bob.WalletId, 4_000, 0, 4_000);
    }

    [Fact]
    public async Task Void_returns_the_held_funds_to_the_payer()
    {
        var (alice, bob) = await _api.PairAsync();
        long id = (await _api.PayAsync(alice, bob.WalletId, 3_000, capture: false)).Long("id");

        var voided = (await _api.SendAsync(HttpMethod.Post, $"/v1/payments/{id}/void", bob.Token, idempotencyKey: Api.NewKey())).Expect(HttpStatusCode.OK);
        Assert.Equal("voided", voided.Str("status"));
        Assert.Equal(0, voided.Long("captured"));
        await AssertBalancesAsync(alice.WalletId, 10_000, 0, 10_000);
        await AssertBalancesAsync(bob.WalletId, 0, 0, 0);

        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{id}/capture", bob.Token, new { }),
            HttpStatusCode.UnprocessableEntity, "payment_not_authorized", alice.WalletId, bob.WalletId);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{id}/void", alice.Token, new { }),
            HttpStatusCode.UnprocessableEntity, "payment_not_authorized", alice.WalletId, bob.WalletId);
    }

    [Fact]
    public async Task Refunds_may_be_partial_and_repeated_up_to_the_captured_amount()
    {
        var (alice, bob) = await _api.PairAsync();
        long id = (await _api.PayAsync(alice, bob.WalletId, 3_000, capture: false)).Long("id");
        (await _api.PostAsync($"/v1/payments/{id}/capture", bob.Token, new { amount = 2_000 })).Expect(HttpStatusCode.OK);

        var first = (await _api.PostAsync($"/v1/payments/{id}/refunds", bob.Token, new { amount = 500 })).Expect(HttpStatusCode.Created);
        Assert.Equal("refund", first.Str("kind"));
        Assert.Equal("posted", first.Str("status"));
        Assert.Equal(id, first.Long("refund_of"));
        Assert.Equal(bob.WalletId, first.Long("from_account"));
        Assert.Equal(alice.WalletId, first.Long("to_account"));
        Assert.Equal(500, first.Long("amount"));
        var second = (await _api.PostAsync($"/v1/payments/{id}/refunds", bob.Token, new { amount = 1_000, currency = "USD" })).Expect(HttpStatusCode.Created);
        Assert.NotEqual(first.Long("id"), second.Long("id"));

        Assert.Equal(1_500, (await _api.PaymentAsync(id, alice.Token)).Long("refunded"));
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{id}/refunds", bob.Token, new { amount = 501 }),
            HttpStatusCode.UnprocessableEntity, "amount_exceeds_captured", alice.WalletId, bob.WalletId);

        var last = (await _api.PostAsync($"/v1/payments/{id}/refunds", bob.Token, new { amount = 500 })).Expect(HttpStatusCode.Created);
        Assert.Equal(id, last.Long("refund_of"));
        Assert.Equal(2_000, (await _api.PaymentAsync(id, bob.Token)).Long("refunded"));
        await AssertBalancesAsync(alice.WalletId, 10_000, 0, 10_000);
        await AssertBalancesAsync(bob.WalletId, 0, 0, 0);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{id}/refunds", bob.Token, new { amount = 1 }),
            HttpStatusCode.UnprocessableEntity, "amount_exceeds_captured", alice.WalletId, bob.WalletId);
    }

    [Fact]
    public async Task History_is_newest_first_and_pages_with_after_and_next_after()
    {
        var alice = await _api.SignUpAsync(deposit: 10_000);
        var bob = await _api.SignUpAsync(deposit: 1_000);
        var ids = new List<long>();
        for (int i = 1; i <= 3; i++) ids.Add((await _api.PayAsync(alice, bob.WalletId, i * 100)).Long("id"));
        ids.Add((await _api.PayAsync(bob, alice.WalletId, 50)).Long("id"));
        long refund = (await _api.PostAsync($"/v1/payments/{ids[0]}/refunds", bob.Token, new { amount = 10 })).Expect(HttpStatusCode.Created).Long("id");
        ids.Add(refund);
        // Alice's payments: her deposit, three sent, one received, one refund received.
        var history = await _api.HistoryAsync(alice.WalletId, alice.Token);
        Assert.Equal(6, history.Count);
        var expected = ids.OrderDescending().ToList();
        Assert.Equal(expected, history.Take(5).Select(p => p.Long("id")).ToList());
        Assert.Equal("deposit", history[5].Str("kind"));

        // Pages of two: 2 + 2 + 2, then nothing more.
        var page1 = (await _api.GetAsync($"/v1/accounts/{alice.WalletId}/payments?limit=2", alice.Token)).Expect(HttpStatusCode.OK);
        Assert.Equal(expected.Take(2), page1["data"]!.AsArray().Select(p => p!.Long("id")));
        Assert.True(page1["has_more"]!.GetValue<bool>());
        Assert.Equal(expected[1], page1.Long("next_after"));
        var page2 = (await _api.GetAsync($"/v1/accounts/{alice.WalletId}/payments?limit=2&after={page1.Long("next_after")}", alice.Token)).Expect(HttpStatusCode.OK);
        Assert.Equal(expected.Skip(2).Take(2), page2["data"]!.AsArray().Select(p => p!.Long("id")));
        Assert.True(page2["has_more"]!.GetValue<bool>());
        var page3 = (await _api.GetAsync($"/v1/accounts/{alice.WalletId}/payments?limit=2&after={page2.Long("next_after")}", alice.Token)).Expect(HttpStatusCode.OK);
        var last = page3["data"]!.AsArray().Select(p => p!.Long("id")).ToList();
        Assert.Equal([expected[4], history[5].Long("id")], last);
        Assert.False(page3["has_more"]!.GetValue<bool>(), page3.ToJsonString());
        Assert.True(page3.IsNull("next_after"), $"next_after must be null on the last page: {page3.ToJsonString()}");

        // The default page is 20 and the limit is 1..100.
        var all = (await _api.GetAsync($"/v1/accounts/{alice.WalletId}/payments", alice.Token)).Expect(HttpStatusCode.OK);
        Assert.Equal(6, all["data"]!.AsArray().Count);
        Assert.False(all["has_more"]!.GetValue<bool>());
        foreach (var bad in new[] { "0", "101", "-1", "x" })
            (await _api.GetAsync($"/v1/accounts/{alice.WalletId}/payments?limit={bad}", alice.Token)).ExpectError(HttpStatusCode.BadRequest, "invalid_request");
    }

    [Fact]
    public async Task A_batch_answers_every_payment_in_order_and_a_retry_replays_them()
    {
        var (alice, bob) = await _api.PairAsync(1_000);
        string body = $$"""
            {"payments": [
              {"from_account": {{alice.WalletId}}, "to_account": {{bob.WalletId}}, "amount": 100, "currency": "USD"},
              {"from_account": {{alice.WalletId}}, "to_account": {{bob.WalletId}}, "amount": 1000000, "currency": "USD"},
              {"from_account": {{alice.WalletId}}, "to_account": {{bob.WalletId}}, "amount": 1.5, "currency": "USD"},
              {"from_account": {{alice.WalletId}}, "to_account": {{alice.WalletId}}, "amount": 5, "currency": "USD"},
              {"from_account": {{alice.WalletId}}, "to_account": {{bob.WalletId}}, "amount": 200, "currency": "USD"}
            ]}
            """;
        string key = Api.NewKey();
        var batch = (await _api.SendAsync(HttpMethod.Post, "/v1/payments/batch", alice.Token, rawBody: body, idempotencyKey: key)).Expect(HttpStatusCode.OK);
        var results = batch["results"]!.AsArray();
        Assert.Equal(5, results.Count);
        var statuses = results.Select(r => r!.Long("status")).ToList();
        Assert.True(statuses.SequenceEqual([201L, 422, 400, 400, 201]), $"statuses {string.Join(",", statuses)}: {batch.ToJsonString()}");
        Assert.Equal(100, results[0]!["payment"]!.Long("amount"));
        Assert.Equal("insufficient_funds", results[1]!["error"]!.Str("code"));
        Assert.Equal("invalid_amount", results[2]!["error"]!.Str("code"));
        Assert.Equal("same_account", results[3]!["error"]!.Str("code"));
        Assert.Equal(200, results[4]!["payment"]!.Long("amount"));
        await AssertBalancesAsync(alice.WalletId, 700, 0, 700);
        await AssertBalancesAsync(bob.WalletId, 300, 0, 300);

        var again = (await _api.SendAsync(HttpMethod.Post, "/v1/payments/batch", alice.Token, rawBody: body, idempotencyKey: key)).Expect(HttpStatusCode.OK);
        var replayed = again["results"]!.AsArray();
        Assert.Equal(results[0]!["payment"]!.Long("id"), replayed[0]!["payment"]!.Long("id"));
        Assert.Equal(results[4]!["payment"]!.Long("id"), replayed[4]!["payment"]!.Long("id"));
        await AssertBalancesAsync(alice.WalletId, 700, 0, 700);
        await AssertBalancesAsync(bob.WalletId, 300, 0, 300);
    }

    [Fact]
    public async Task A_batch_under_the_longest_allowed_key_works_and_its_items_do_not_collide_with_single_payments()
    {
        var (alice, bob) = await _api.PairAsync(1_000);
        string key = new string('k', 255);
        string body = $$"""{"payments": [{"from_account": {{alice.WalletId}}, "to_account": {{bob.WalletId}}, "amount": 10, "currency": "USD"}]}""";
        var batch = (await _api.SendAsync(HttpMethod.Post, "/v1/payments/batch", alice.Token, rawBody: body, idempotencyKey: key)).Expect(HttpStatusCode.OK);
        Assert.Equal(201, batch["results"]![0]!.Long("status"));
        // A single payment under the same header key is a different command key: it is applied, not a conflict.
        string single = $$"""{"from_account": {{alice.WalletId}}, "to_account": {{bob.WalletId}}, "amount": 20, "currency": "USD"}""";
        (await _api.SendAsync(HttpMethod.Post, "/v1/payments", alice.Token, rawBody: single, idempotencyKey: key)).Expect(HttpStatusCode.Created);
        await AssertBalancesAsync(alice.WalletId, 970, 0, 970);
    }

    [Fact]
    public async Task A_frozen_account_can_neither_send_nor_receive_until_unfrozen()
    {
        var alice = await _api.SignUpAsync(deposit: 10_000);
        var bob = await _api.SignUpAsync(deposit: 10_000);
        string admin = await _api.AdminTokenAsync();
        long hold = (await _api.PayAsync(alice, bob.WalletId, 100, capture: false)).Long("id");
        long received = (await _api.PayAsync(alice, bob.WalletId, 100)).Long("id");

        var frozen = (await _api.PostAsync($"/v1/admin/accounts/{bob.WalletId}/freeze", admin, null, key: "")).Expect(HttpStatusCode.OK);
        Assert.Equal(bob.WalletId, frozen.Long("id"));
        Assert.True(frozen["frozen"]!.GetValue<bool>(), frozen.ToJsonString());
        Assert.True((await _api.AccountAsync(bob.WalletId, bob.Token))["frozen"]!.GetValue<bool>());

        var payBob = () => _api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 100, currency = "USD" });
        var bobPays = () => _api.PostAsync("/v1/payments", bob.Token, new { from_account = bob.WalletId, to_account = alice.WalletId, amount = 100, currency = "USD" });
        await _api.ExpectRejectedAsync(payBob, HttpStatusCode.UnprocessableEntity, "account_frozen", alice.WalletId, bob.WalletId);
        await _api.ExpectRejectedAsync(bobPays, HttpStatusCode.UnprocessableEntity, "account_frozen", alice.WalletId, bob.WalletId);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/accounts/{bob.WalletId}/deposits", bob.Token, new { amount = 100, currency = "USD" }),
            HttpStatusCode.UnprocessableEntity, "account_frozen", bob.WalletId);

        // Nor may a hold into it be captured, nor a payment it received be refunded from it.
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{hold}/capture", alice.Token, new { }),
            HttpStatusCode.UnprocessableEntity, "account_frozen", alice.WalletId, bob.WalletId);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{received}/refunds", bob.Token, new { amount = 10 }),
            HttpStatusCode.UnprocessableEntity, "account_frozen", alice.WalletId, bob.WalletId);

        var unfrozen = (await _api.PostAsync($"/v1/admin/accounts/{bob.WalletId}/unfreeze", admin, null, key: "")).Expect(HttpStatusCode.OK);
        Assert.False(unfrozen["frozen"]!.GetValue<bool>(), unfrozen.ToJsonString());
        (await payBob()).Expect(HttpStatusCode.Created);
        (await bobPays()).Expect(HttpStatusCode.Created);
        await AssertBalancesAsync(bob.WalletId, 10_100, 100, 10_100);
    }

    [Fact]
    public async Task Only_the_admin_may_freeze_or_unfreeze()
    {
        var (alice, bob) = await _api.PairAsync(1_000);
        foreach (var action in new[] { "freeze", "unfreeze" })
        {
            foreach (var account in new[] { alice.WalletId, bob.WalletId })
            {
                await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/admin/accounts/{account}/{action}", alice.Token, null),
                    HttpStatusCode.Forbidden, "forbidden", alice.WalletId, bob.WalletId);
            }
        }
    }

    [Fact]
    public async Task A_hold_that_lapsed_is_expired_and_can_be_neither_captured_nor_voided()
    {
        var (alice, bob) = await _api.PairAsync();
        var auth = (await _api.PostAsync("/v1/payments", alice.Token, new
        {
            from_account = alice.WalletId, to_account = bob.WalletId, amount = 1_000, currency = "USD", capture = false, hold_timeout_ms = 50,
        })).Expect(HttpStatusCode.Created);
        long id = auth.Long("id");

        // The engine's clock ticks expire holds; wait for the payment to show it, then capture and void must refuse.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        JsonNode payment;
        while ((payment = await _api.PaymentAsync(id, alice.Token)).Str("status") != "expired")
        {
            Assert.True(DateTime.UtcNow < deadline, $"the 50 ms hold did not expire within 20 s: {payment.ToJsonString()}");
            await Task.Delay(100);
        }
        await AssertBalancesAsync(alice.WalletId, 10_000, 0, 10_000);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{id}/capture", bob.Token, new { amount = 500 }),
            HttpStatusCode.UnprocessableEntity, "hold_expired", alice.WalletId, bob.WalletId);
        await _api.ExpectRejectedAsync(() => _api.PostAsync($"/v1/payments/{id}/void", alice.Token, new { }),
            HttpStatusCode.UnprocessableEntity, "hold_expired", alice.WalletId, bob.WalletId);
    }
}
