using RamPay.Fraud;

namespace RamPay.Core.Tests;

/// <summary>Fraud scoring inside <see cref="Ledger.Apply(in Command, ReadOnlySpan{byte}, out CommandResult)"/>: decisions, holds, review exactly once, expiry, rules, snapshots.</summary>
public class FraudLedgerTests
{
    private static readonly Currency Usd = Currency.USD;

    /// <summary>A model over the real schema whose logit is 4 · (amount_log2 − 10): 0.5 at 1,023 minor units, 0.9 from about 1,770.</summary>
    internal static FraudModel AmountModel(string version = "amount-model-1")
    {
        var mean = new double[Features.Count];
        var scale = Enumerable.Repeat(1.0, Features.Count).ToArray();
        var weights = new double[Features.Count];
        mean[Features.AmountLog2] = 10;
        weights[Features.AmountLog2] = 4;
        return FraudModel.CreateLogistic(version, Features.SchemaId, 0, mean, scale, weights);
    }

    internal static Command Configure(FraudSettings settings, long at) => new() { Type = CommandType.ConfigureFraud, TimestampMs = at };

    /// <summary>A funding account, a payer with 1,000,000 and a payee; fraud scoring on with <see cref="AmountModel"/> and the given settings.</summary>
    private static (TestLedger T, long Payer, long Payee) World(Func<FraudSettings, FraudSettings>? change = null, FraudModel? model = null)
    {
        model ??= AmountModel();
        var t = new TestLedger(TestLedger.SmallOptions with { FraudModels = FraudModelCatalog.Empty.With(model) });
        var (_, payer, payee) = t.OpenFundedPair(Usd, 1_000_000);
        var settings = new FraudSettings { Enabled = true, ModelSha256 = model.Sha256, ReviewThresholdPpm = 500_000, DeclineThresholdPpm = 900_000, ReviewTimeoutMs = 60_000 };
        var r = t.RunExact(Configure(settings, t.Now), (change?.Invoke(settings) ?? settings).Encode());
        Assert.True(r.IsOk, r.ToString());
        Assert.True(t.Ledger.FraudEnabled);
        return (t, payer, payee);
    }

    private static Command Review(long paymentId, long decision) => new() { Type = CommandType.Review, PaymentId = paymentId, Argument = decision };

    [Fact]
    public void A_low_score_proceeds_and_the_payment_shows_its_score_and_model_version()
    {
        var (t, payer, payee) = World();
        long id = t.Ok(Cmd.Transfer(payer, payee, 100, Usd));
        var p = t.Payment(id);
        Assert.Equal(PaymentStatus.Posted, p.Status);
        var fraud = t.Ledger.GetFraudScore(id);
        Assert.NotNull(fraud);
        Assert.True(fraud.Value.Score < 0.5f);
        Assert.Equal("amount-model-1", fraud.Value.ModelVersion);
        Assert.Empty(fraud.Value.ReasonNames);
        Assert.Equal(100, t.Posted(payee));
        // A deposit is not scored.
        Assert.Null(t.Ledger.GetFraudScore(3));
    }

    [Fact]
    public void A_held_transfer_holds_its_funds_and_approval_moves_them_exactly_once()
    {
        var (t, payer, payee) = World();
        var r = t.Run(Cmd.Transfer(payer, payee, 1_100, Usd), key: "pay");
        Assert.True(r.IsOk);
        long id = r.Id;
        Assert.Equal(PaymentStatus.HeldForReview, t.Payment(id).Status);
        Assert.Equal(["model_review"], t.Ledger.GetFraudScore(id)!.Value.ReasonNames);
        Assert.Equal(1_000_000 - 1_100, t.Available(payer));
        Assert.Equal(1_000_000, t.Posted(payer));
        Assert.Equal(0, t.Posted(payee));
        Assert.Equal(1, t.Ledger.OpenHoldCount);
        // Capture and void are for authorizations, not for held transfers.
        Assert.Equal(ResultCode.PaymentNotAuthorized, t.Run(Cmd.Capture(id)).Code);

        var approved = t.Run(Review(id, ReviewDecisions.Approve), key: "review-1");
        Assert.Equal((ResultCode.Ok, id), (approved.Code, approved.Id));
        Assert.Equal(PaymentStatus.Posted, t.Payment(id).Status);
        Assert.Equal(1_100, t.Payment(id).Captured);
        Assert.Equal(1_100, t.Posted(payee));
        Assert.Equal(1_000_000 - 1_100, t.Posted(payer));
        Assert.Equal(0, t.Ledger.OpenHoldCount);
        Assert.Equal(["model_review", "review_approved"], t.Ledger.GetFraudScore(id)!.Value.ReasonNames);

        // Exactly once: a second review (either way) is a named rejection and moves nothing; a retry of the first is a replay.
        Assert.Equal(ResultCode.PaymentNotHeld, t.Run(Review(id, ReviewDecisions.Approve)).Code);
        Assert.Equal(ResultCode.PaymentNotHeld, t.Run(Review(id, ReviewDecisions.Decline)).Code);
        var retry = t.Run(Review(id, ReviewDecisions.Approve), key: "review-1");
        Assert.True(retry.IsOk && retry.Replayed);
        Assert.Equal(1_100, t.Posted(payee));
        // A retry of the payment itself replays too: no second payment.
        Assert.True(t.Run(Cmd.Transfer(payer, payee, 1_100, Usd), key: "pay").Replayed);
        // Settled now, so it can be refunded.
        t.Ok(Cmd.Refund(id, 100, Usd), at: null);
    }

    [Fact]
    public void Declining_a_held_transfer_releases_the_hold_exactly_once()
    {
        var (t, payer, payee) = World();
        long id = t.Ok(Cmd.Transfer(payer, payee, 1_200, Usd));
        Assert.Equal(1_000_000 - 1_200, t.Available(payer));
        Assert.True(t.Run(Review(id, ReviewDecisions.Decline)).IsOk);
        var p = t.Payment(id);
        Assert.Equal((PaymentStatus.Declined, 0L), (p.Status, p.Captured));
        Assert.Equal(1_000_000, t.Available(payer));
        Assert.Equal(0, t.Posted(payee));
        Assert.Equal(0, t.Ledger.OpenHoldCount);
        Assert.Equal(["model_review", "review_declined"], t.Ledger.GetFraudScore(id)!.Value.ReasonNames);
        Assert.Equal(ResultCode.PaymentNotHeld, t.Run(Review(id, ReviewDecisions.Approve)).Code);
        Assert.Equal(ResultCode.PaymentNotHeld, t.Run(Review(id, ReviewDecisions.Decline)).Code);
        Assert.Equal(ResultCode.PaymentNotCaptured, t.Run(Cmd.Refund(id, 1, Usd)).Code);
        Assert.Equal(1_000_000, t.Available(payer));
    }

    [Fact]
    public void A_high_score_declines_with_fraud_suspected_and_keeps_the_payment_with_its_reasons()
    {
        var (t, payer, payee) = World();
        var before = t.Account(payer);
        var r = t.Run(Cmd.Transfer(payer, payee, 50_000, Usd), key: "big", attachment: new PaymentNote("a car", null).Encode());
        Assert.Equal(ResultCode.FraudSuspected, r.Code);
        Assert.NotEqual(0, r.Id);
        var p = t.Payment(r.Id);
        Assert.Equal((PaymentStatus.Declined, 0L, 50_000L), (p.Status, p.Captured, p.Amount));
        Assert.Equal(before, t.Account(payer) with { LastPaymentId = before.LastPaymentId });
        Assert.Equal(0, t.Posted(payee));
        var fraud = t.Ledger.GetFraudScore(r.Id)!.Value;
        Assert.True(fraud.Score >= 0.9f);
        Assert.Equal(["model_decline"], fraud.ReasonNames);
        Assert.Equal("a car", t.Ledger.GetPaymentNote(r.Id)!.Description);
        // The key remembers the outcome.
        var again = t.Run(Cmd.Transfer(payer, payee, 50_000, Usd), key: "big");
        Assert.Equal((ResultCode.FraudSuspected, r.Id, true), (again.Code, again.Id, again.Replayed));
        Assert.Equal(ResultCode.PaymentNotHeld, t.Run(Review(r.Id, ReviewDecisions.Approve)).Code);
    }

    [Fact]
    public void Review_is_for_admins_and_for_held_payments_only()
    {
        var (t, payer, payee) = World();
        long held = t.Ok(Cmd.Transfer(payer, payee, 1_100, Usd));
        long posted = t.Ok(Cmd.Transfer(payer, payee, 10, Usd));
        Assert.Equal(ResultCode.AdminRequired, t.Run(Review(held, ReviewDecisions.Approve) with { Flags = CommandFlags.OwnerOnly }).Code);
        Assert.Equal(ResultCode.InvalidCommand, t.Run(Review(held, 3)).Code);
        Assert.Equal(ResultCode.InvalidCommand, t.Run(Review(held, ReviewDecisions.Approve) with { Flags = 0x80 }).Code);
        Assert.Equal(ResultCode.PaymentNotFound, t.Run(Review(999, ReviewDecisions.Approve)).Code);
        Assert.Equal(ResultCode.PaymentNotHeld, t.Run(Review(posted, ReviewDecisions.Approve)).Code);
        Assert.Equal(PaymentStatus.HeldForReview, t.Payment(held).Status);
    }

    [Fact]
    public void An_unreviewed_hold_expires_after_the_review_timeout_and_releases_the_funds()
    {
        var (t, payer, payee) = World();
        long id = t.Ok(Cmd.Transfer(payer, payee, 1_100, Usd));
        Assert.Equal(t.Now + 60_000, t.Payment(id).ExpiresAtMs);
        t.Tick(t.Now + 59_999);
        Assert.Equal(PaymentStatus.HeldForReview, t.Payment(id).Status);
        t.Tick(t.Now + 1);
        Assert.Equal(PaymentStatus.Expired, t.Payment(id).Status);
        Assert.Equal(1_000_000, t.Available(payer));
        Assert.Contains("review_expired", t.Ledger.GetFraudScore(id)!.Value.ReasonNames);
        Assert.Equal(ResultCode.PaymentNotHeld, t.Run(Review(id, ReviewDecisions.Approve)).Code);
    }

    [Fact]
    public void A_held_authorization_becomes_an_open_authorization_when_approved()
    {
        var (t, payer, payee) = World();
        long id = t.Ok(Cmd.Authorize(payer, payee, 1_100, Usd, timeoutMs: 3_600_000));
        Assert.Equal(PaymentStatus.HeldForReview, t.Payment(id).Status);
        Assert.Equal(t.Now + 3_600_000, t.Payment(id).ExpiresAtMs); // its own expiry, not the review timeout
        Assert.True(t.Run(Review(id, ReviewDecisions.Approve)).IsOk);
        Assert.Equal(PaymentStatus.Authorized, t.Payment(id).Status);
        Assert.Equal(1_000_000 - 1_100, t.Available(payer));
        t.Ok(Cmd.Capture(id, 600));
        Assert.Equal(600, t.Posted(payee));
        Assert.Equal(1_000_000 - 600, t.Available(payer));

        long other = t.Ok(Cmd.Authorize(payer, payee, 1_100, Usd));
        Assert.True(t.Run(Review(other, ReviewDecisions.Decline)).IsOk);
        Assert.Equal(PaymentStatus.Declined, t.Payment(other).Status);
        Assert.Equal(1_000_000 - 600, t.Available(payer));
    }

    [Fact]
    public void Rules_decide_with_their_own_reasons()
    {
        var (t, payer, payee) = World(s => s with
        {
            ReviewThresholdPpm = FraudSettings.ThresholdOff, DeclineThresholdPpm = FraudSettings.ThresholdOff,
            AmountThreshold = 20_000, MaxPaymentsPerDay = 3, BlockedAccounts = [4],
        });
        long blocked = t.OpenWallet(Usd);
        Assert.Equal(4, blocked);
        var r = t.Run(Cmd.Transfer(payer, blocked, 10, Usd));
        Assert.Equal(ResultCode.FraudSuspected, r.Code);
        Assert.Equal(["blocked_account"], t.Ledger.GetFraudScore(r.Id)!.Value.ReasonNames);
        long big = t.Ok(Cmd.Transfer(payer, payee, 20_000, Usd));
        Assert.Equal(PaymentStatus.HeldForReview, t.Payment(big).Status);
        Assert.Equal(["amount_over_threshold"], t.Ledger.GetFraudScore(big)!.Value.ReasonNames);
        t.Ok(Cmd.Transfer(payer, payee, 10, Usd)); // the third in 24 hours (the declined one counts: it was an attempt)
        var fourth = t.Run(Cmd.Transfer(payer, payee, 10, Usd));
        Assert.Equal(ResultCode.FraudSuspected, fourth.Code);
        Assert.Equal(["daily_limit_exceeded"], t.Ledger.GetFraudScore(fourth.Id)!.Value.ReasonNames);
        // A day later the window has moved on.
        Assert.True(t.Run(Cmd.Transfer(payer, payee, 10, Usd), at: t.Now + 25 * 3_600_000L).IsOk);
    }

    [Fact]
    public void A_payment_refused_before_scoring_leaves_the_features_untouched()
    {
        var (t, payer, payee) = World(s => s with { MaxPaymentsPerDay = 1, ReviewThresholdPpm = FraudSettings.ThresholdOff, DeclineThresholdPpm = FraudSettings.ThresholdOff });
        Assert.Equal(ResultCode.InsufficientFunds, t.Run(Cmd.Transfer(payee, payer, 10, Usd)).Code);
        t.Ok(Cmd.Transfer(payer, payee, 10, Usd));
        // payee's refused attempts did not count towards its daily limit: its first scored payment goes through.
        Assert.True(t.Run(Cmd.Transfer(payee, payer, 5, Usd)).IsOk);
    }

    [Fact]
    public void Configure_fraud_needs_no_key_refuses_garbage_and_an_unknown_model_throws()
    {
        var t = new TestLedger();
        Assert.False(t.Ledger.FraudEnabled);
        Assert.Equal(ResultCode.InvalidCommand, t.RunExact(Configure(FraudSettings.Disabled, t.Now), [1, 2, 3]).Code);
        var unknown = AmountModel("not-in-the-catalog");
        var settings = new FraudSettings { Enabled = true, ModelSha256 = unknown.Sha256 };
        var e = Assert.Throws<FraudModelNotFoundException>(() => t.RunExact(Configure(settings, t.Now), settings.Encode()));
        Assert.Equal(unknown.Sha256Hex, e.Sha256Hex);
        // The embedded default is in the default catalog.
        var onDefault = new FraudSettings { Enabled = true, ModelSha256 = FraudModel.Default.Sha256 };
        Assert.True(t.RunExact(Configure(onDefault, t.Now), onDefault.Encode()).IsOk);
        Assert.Equal(FraudModel.Default.Version, t.Ledger.FraudModel!.Version);
        Assert.True(t.Ledger.FraudSettings.SameAs(onDefault));
        Assert.True(t.RunExact(Configure(FraudSettings.Disabled, t.Now), FraudSettings.Disabled.Encode()).IsOk);
        Assert.False(t.Ledger.FraudEnabled);
    }

    [Fact]
    public void A_snapshot_keeps_scores_settings_model_and_features_so_the_continuation_is_identical()
    {
        var v1 = AmountModel("v1");
        var v2 = AmountModel("v2");
        var options = TestLedger.SmallOptions with { FraudModels = FraudModelCatalog.Empty.With(v1).With(v2) };
        var t = new TestLedger(options);
        var (_, payer, payee) = t.OpenFundedPair(Usd, 10_000_000);
        long third = t.OpenWallet(Usd);
        var s1 = new FraudSettings { Enabled = true, ModelSha256 = v1.Sha256, ReviewTimeoutMs = 12 * 3_600_000 };
        t.RunExact(Configure(s1, t.Now), s1.Encode());
        void Traffic(TestLedger l, int n, int seed)
        {
            var r = new Random(seed);
            for (int i = 0; i < n; i++)
            {
                l.Now += r.Next(0, 200_000);
                long from = r.Next(2) == 0 ? payer : payee, to = from == payer ? third : payer;
                l.Run(Cmd.Transfer(from, to, r.Next(1, 3_000), Usd), key: $"t{seed}-{i}");
            }
        }
        Traffic(t, 200, 1);
        var s2 = s1 with { ModelSha256 = v2.Sha256, AmountThreshold = 2_500 };
        t.RunExact(Configure(s2, t.Now), s2.Encode());
        Traffic(t, 200, 2);
        var statuses = Enumerable.Range(1, (int)t.Ledger.PaymentCount).Select(id => t.Payment(id).Status).ToList();
        Assert.Contains(PaymentStatus.HeldForReview, statuses);
        Assert.Contains(PaymentStatus.Declined, statuses);

        byte[] bytes = StateBytes.Write(t.Ledger);
        // Loading needs no catalog: the snapshot holds the model's bytes.
        var restored = new TestLedger(StateBytes.Read(bytes, TestLedger.SmallOptions with { FraudModels = FraudModelCatalog.Empty })) { Now = t.Now };
        Assert.Equal(StateBytes.Hash(t.Ledger), StateBytes.Hash(restored.Ledger));
        Assert.Equal("v1", restored.Ledger.GetFraudScore(5)!.Value.ModelVersion);
        Assert.Equal("v2", restored.Ledger.GetFraudScore(restored.Ledger.PaymentCount)!.Value.ModelVersion);
        Traffic(t, 300, 3);
        Traffic(restored, 300, 3);
        Assert.Equal(StateBytes.Hash(t.Ledger), StateBytes.Hash(restored.Ledger));
        for (long id = 1; id <= t.Ledger.PaymentCount; id++) Assert.Equal(t.Ledger.GetFraudScore(id), restored.Ledger.GetFraudScore(id));
    }

    [Fact]
    public void A_version_2_state_loads_as_a_ledger_that_never_scored()
    {
        var t = new TestLedger();
        var (_, payer, payee) = t.OpenFundedPair(Usd, 1_000);
        t.Ok(Cmd.Transfer(payer, payee, 100, Usd));
        t.Ok(Cmd.Authorize(payer, payee, 200, Usd));
        byte[] current = StateBytes.Write(t.Ledger);
        byte[] v2 = StateBytes.AsVersion2(current, t.Ledger);
        Assert.Equal(current.Length - 8 * 3 - StateBytes.UnusedFraudSectionSize, v2.Length);
        var restored = StateBytes.Read(v2, t.Ledger.Options);
        Assert.Equal(current, StateBytes.Write(restored));
        Assert.False(restored.FraudEnabled);
        Assert.Null(restored.GetFraudScore(2));
    }
}
