using System.Net;
using System.Text.Json.Nodes;

namespace RamPay.Server.Tests;

/// <summary>
/// Fraud scoring with rules the tests can trip for certain: payments of 5,000 or more are held for review, a sender's
/// sixth payment in 24 hours is declined, the model scores but its thresholds are out of reach.
/// </summary>
public class FraudServerFixture : InProcessServerFixture
{
    public const long AmountThreshold = 5_000;
    public const int MaxPerDay = 5;

    /// <summary>The server's rules version (<c>RamPay:Engine:RulesVersion</c>); 0 = the server's default.</summary>
    public virtual int RulesVersion => 0;

    /// <summary>The rules setting of this fixture, for a server a test starts itself.</summary>
    public IEnumerable<string> RulesSettings => RulesVersion == 0 ? [] : [$"Engine:RulesVersion={RulesVersion}"];

    protected override IEnumerable<string> Settings =>
    [
        .. TestSettings.Where(s => !s.StartsWith("Fraud:", StringComparison.Ordinal)),
        "Fraud:Enabled=true", "Fraud:ReviewThreshold=2", "Fraud:DeclineThreshold=2",
        $"Fraud:AmountThreshold={AmountThreshold}", $"Fraud:MaxPaymentsPerDay={MaxPerDay}",
        .. RulesSettings,
    ];
}

/// <summary>
/// <see cref="FraudServerFixture"/> pinned to rules version 3, where the writer scores inside <c>Ledger.Apply</c> (the
/// server's default before version 4): data folders written then keep running under it until upgraded; the same tests hold.
/// </summary>
public sealed class FraudServerRules3Fixture : FraudServerFixture
{
    public override int RulesVersion => 3;
}

/// <summary>The review workflow over HTTP under the server's default rules version (4: the fraud stage scores ahead of the writer).</summary>
public class FraudReviewTests(FraudServerFixture fixture) : FraudReviewTestsBase(fixture), IClassFixture<FraudServerFixture>
{
    [Fact]
    public async Task The_server_runs_rules_version_4_by_default()
    {
        var ready = (await ServerApi.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK);
        Assert.Equal(4, RamPay.Engine.EngineOptions.ServerRulesVersion);
        Assert.Equal(4, ready["idempotency"]!.Long("rules_version"));
    }
}

/// <summary>The same workflow pinned to rules version 3, where the writer scores.</summary>
public class FraudReviewRules3Tests(FraudServerRules3Fixture fixture) : FraudReviewTestsBase(fixture), IClassFixture<FraudServerRules3Fixture>
{
    [Fact]
    public async Task The_server_runs_rules_version_3()
    {
        var ready = (await ServerApi.GetAsync("/health/ready", null)).Expect(HttpStatusCode.OK);
        Assert.Equal(3, ready["idempotency"]!.Long("rules_version"));
    }
}

/// <summary>The review workflow over HTTP: held payments, approve and decline exactly once, admins only, and what a payment shows.</summary>
public abstract class FraudReviewTestsBase(FraudServerFixture fixture)
{
    private readonly Api _api = fixture.Api;
    protected Api ServerApi => _api;

    private Task<ApiResponse> ReviewAsync(long paymentId, string? token, string decision, string? key = null) =>
        _api.PostAsync($"/v1/payments/{paymentId}/review", token, new { decision }, key);

    private async Task<(TestUser Payer, TestUser Payee, JsonNode Held)> HeldAsync(long amount = 6_000)
    {
        var (payer, payee) = await _api.PairAsync(aliceDeposit: 100_000);
        var held = await _api.PayAsync(payer, payee.WalletId, amount);
        Assert.Equal("held_for_review", held.Str("status"));
        return (payer, payee, held);
    }

    [Fact]
    public async Task A_held_payment_shows_its_score_model_version_and_reasons_and_holds_the_funds()
    {
        var (payer, payee, held) = await HeldAsync();
        var fraud = held["fraud"]!;
        Assert.InRange(fraud["score"]!.GetValue<double>(), 0, 1);
        Assert.Equal("gbt-default-s2", fraud.Str("model_version"));
        Assert.Equal(["amount_over_threshold"], fraud["reasons"]!.AsArray().Select(r => r!.GetValue<string>()));
        Assert.False(held.IsNull("expires_at"));
        Assert.Equal(0, held.Long("captured"));
        var state = await _api.StateAsync(payer.WalletId);
        Assert.Equal((100_000L, -6_000L, 94_000L), (state.Posted, state.Pending, state.Available));
        Assert.Equal(0, (await _api.StateAsync(payee.WalletId)).Posted);
        // Both parties read it as it is.
        Assert.Equal("held_for_review", (await _api.PaymentAsync(held.Long("id"), payee.Token)).Str("status"));
        // A payment under every threshold proceeds, and shows its score too.
        var ok = await _api.PayAsync(payer, payee.WalletId, 100);
        Assert.Equal("posted", ok.Str("status"));
        Assert.Empty(ok["fraud"]!["reasons"]!.AsArray());
    }

    [Fact]
    public async Task Approval_moves_the_funds_exactly_once()
    {
        var (payer, payee, held) = await HeldAsync();
        long id = held.Long("id");
        string admin = await _api.AdminTokenAsync();
        string key = Api.NewKey();
        var approved = (await ReviewAsync(id, admin, "approve", key)).Expect(HttpStatusCode.OK);
        Assert.Equal("posted", approved.Str("status"));
        Assert.Equal(6_000, approved.Long("captured"));
        Assert.Contains("review_approved", approved["fraud"]!["reasons"]!.AsArray().Select(r => r!.GetValue<string>()));
        Assert.Equal((94_000L, 0L), ((await _api.StateAsync(payer.WalletId)).Posted, (await _api.StateAsync(payer.WalletId)).Pending));
        Assert.Equal(6_000, (await _api.StateAsync(payee.WalletId)).Posted);

        // The same request again replays; any other review is refused; nothing moves twice.
        var replay = await ReviewAsync(id, admin, "approve", key);
        replay.Expect(HttpStatusCode.OK);
        Assert.Equal("true", replay.Header("Idempotent-Replayed"));
        await _api.ExpectRejectedAsync(() => ReviewAsync(id, admin, "approve"), (HttpStatusCode)422, "payment_not_held", payer.WalletId, payee.WalletId);
        await _api.ExpectRejectedAsync(() => ReviewAsync(id, admin, "decline"), (HttpStatusCode)422, "payment_not_held", payer.WalletId, payee.WalletId);
        Assert.Equal(6_000, (await _api.StateAsync(payee.WalletId)).Posted);
    }

    [Fact]
    public async Task Declining_releases_the_hold_exactly_once()
    {
        var (payer, payee, held) = await HeldAsync();
        long id = held.Long("id");
        string admin = await _api.AdminTokenAsync();
        var declined = (await ReviewAsync(id, admin, "decline")).Expect(HttpStatusCode.OK);
        Assert.Equal("declined", declined.Str("status"));
        Assert.Equal(["amount_over_threshold", "review_declined"], declined["fraud"]!["reasons"]!.AsArray().Select(r => r!.GetValue<string>()));
        var state = await _api.StateAsync(payer.WalletId);
        Assert.Equal((100_000L, 0L, 100_000L), (state.Posted, state.Pending, state.Available));
        Assert.Equal(0, (await _api.StateAsync(payee.WalletId)).Posted);
        await _api.ExpectRejectedAsync(() => ReviewAsync(id, admin, "decline"), (HttpStatusCode)422, "payment_not_held", payer.WalletId, payee.WalletId);
        await _api.ExpectRejectedAsync(() => ReviewAsync(id, admin, "approve"), (HttpStatusCode)422, "payment_not_held", payer.WalletId, payee.WalletId);
    }

    [Fact]
    public async Task Only_an_admin_may_review()
    {
        var (payer, payee, held) = await HeldAsync();
        long id = held.Long("id");
        foreach (var user in new[] { payer, payee })
            await _api.ExpectRejectedAsync(() => ReviewAsync(id, user.Token, "approve"), HttpStatusCode.Forbidden, "forbidden", payer.WalletId, payee.WalletId);
        (await ReviewAsync(id, null, "approve")).ExpectError(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal("held_for_review", (await _api.PaymentAsync(id, payer.Token)).Str("status"));
        string admin = await _api.AdminTokenAsync();
        (await ReviewAsync(id, admin, "maybe")).ExpectError(HttpStatusCode.BadRequest, "invalid_request");
        (await ReviewAsync(999_999, admin, "approve")).ExpectError(HttpStatusCode.NotFound, "payment_not_found");
        var posted = await _api.PayAsync(payer, payee.WalletId, 10);
        (await ReviewAsync(posted.Long("id"), admin, "approve")).ExpectError((HttpStatusCode)422, "payment_not_held");
    }

    [Fact]
    public async Task A_rule_decline_is_fraud_suspected_and_names_the_payment_kept_as_declined()
    {
        var (payer, payee) = await _api.PairAsync(aliceDeposit: 100_000);
        for (int i = 0; i < FraudServerFixture.MaxPerDay; i++) await _api.PayAsync(payer, payee.WalletId, 10);
        var before = await _api.StateAsync(payer.WalletId);
        var refused = await _api.PostAsync("/v1/payments", payer.Token, new { from_account = payer.WalletId, to_account = payee.WalletId, amount = 10, currency = "USD" }, Api.NewKey());
        refused.ExpectError((HttpStatusCode)422, "fraud_suspected");
        long id = refused.Body!["error"]!.Long("payment_id");
        // No money moved; the declined payment is in the account's history (NewestPaymentId), as any payment is.
        Assert.Equal(before with { NewestPaymentId = id }, await _api.StateAsync(payer.WalletId));
        var payment = await _api.PaymentAsync(id, payer.Token);
        Assert.Equal("declined", payment.Str("status"));
        Assert.Equal(["daily_limit_exceeded"], payment["fraud"]!["reasons"]!.AsArray().Select(r => r!.GetValue<string>()));
        // In a batch, the declined item says so in its error; the others are unaffected.
        var batch = (await _api.PostAsync("/v1/payments/batch", payer.Token, new { payments = new[] { new { from_account = payer.WalletId, to_account = payee.WalletId, amount = 10, currency = "USD" } } }, Api.NewKey()))
            .Expect(HttpStatusCode.OK);
        var item = batch["results"]![0]!;
        Assert.Equal(422, item.Long("status"));
        Assert.Equal("fraud_suspected", item["error"]!.Str("code"));
        Assert.True(item["error"]!.Long("payment_id") > id);
    }

    /// <summary>
    /// With no fraud settings at all, the embedded default model scores from the first payment, and what a new user
    /// does first (sign up, top up, pay someone as new as they are, then pay again) goes through: the README's path.
    /// </summary>
    [Fact]
    public async Task By_default_the_embedded_model_scores_a_new_user_s_first_payments_and_lets_them_through()
    {
        await using var server = await ServerProcess.StartAsync([.. ServerFixture.TestSettings.Where(s => !s.StartsWith("Fraud:", StringComparison.Ordinal)), .. fixture.RulesSettings]);
        Assert.Contains("fraud scoring on: model gbt-default-s2", server.Output, StringComparison.Ordinal);
        var api = new Api(server);
        var (payer, payee) = await api.PairAsync(aliceDeposit: 100_000);
        foreach (long amount in (long[])[100, 500, 2_500])
        {
            var payment = (await api.PostAsync("/v1/payments", payer.Token, new { from_account = payer.WalletId, to_account = payee.WalletId, amount, currency = "USD" }, Api.NewKey()))
                .Expect(HttpStatusCode.Created);
            Assert.Equal("posted", payment.Str("status"));
            Assert.Equal("gbt-default-s2", payment["fraud"]!.Str("model_version"));
            Assert.InRange(payment["fraud"]!["score"]!.GetValue<double>(), 0, 0.5);
        }
    }

    /// <summary>
    /// A user who does not own a wallet cannot spend its owner's daily allowance: their attempts to pay from it are refused
    /// (403 not_account_owner) and, under every rules version, leave no trace in its fraud features, so the owner's own
    /// payments are scored as before (docs/fraud.md, "Who is counted").
    /// </summary>
    [Fact]
    public async Task Another_user_s_refused_attempts_from_a_wallet_do_not_count_against_its_owner()
    {
        var (victim, payee) = await _api.PairAsync(aliceDeposit: 100_000);
        var (attacker, _) = await _api.PairAsync(aliceDeposit: 100);
        for (int i = 0; i < 3 * FraudServerFixture.MaxPerDay; i++)
        {
            await _api.ExpectRejectedAsync(
                () => _api.PostAsync("/v1/payments", attacker.Token, new { from_account = victim.WalletId, to_account = attacker.WalletId, amount = 10, currency = "USD" }, Api.NewKey()),
                HttpStatusCode.Forbidden, "not_account_owner", victim.WalletId);
        }
        // The owner's own payments, up to the daily limit, all go through: none of the attacker's attempts counted.
        for (int i = 0; i < FraudServerFixture.MaxPerDay; i++)
        {
            var paid = await _api.PayAsync(victim, payee.WalletId, 10);
            Assert.Equal("posted", paid.Str("status"));
            Assert.Empty(paid["fraud"]!["reasons"]!.AsArray());
        }
        // And the limit still applies to the owner's own.
        (await _api.PostAsync("/v1/payments", victim.Token, new { from_account = victim.WalletId, to_account = payee.WalletId, amount = 10, currency = "USD" }, Api.NewKey()))
            .ExpectError((HttpStatusCode)422, "fraud_suspected");
    }
}
