namespace RamPay.Fraud.Tests;

public class FraudStateTests
{
    /// <summary>A model over the real schema whose logit is 4 × (amount_log2 − 10): p = 0.5 at an amount of 1,023.</summary>
    internal static FraudModel AmountModel(string version = "amount-test-1")
    {
        var mean = new double[Features.Count];
        var scale = Enumerable.Repeat(1.0, Features.Count).ToArray();
        var weights = new double[Features.Count];
        mean[Features.AmountLog2] = 10;
        weights[Features.AmountLog2] = 4;
        return FraudModel.CreateLogistic(version, Features.SchemaId, 0, mean, scale, weights);
    }

    private static FraudState Configured(FraudModel model, Func<FraudSettings, FraudSettings>? change = null)
    {
        var state = new FraudState(100, FraudModelCatalog.Empty.With(model));
        var settings = new FraudSettings { Enabled = true, ModelSha256 = model.Sha256, ReviewThresholdPpm = 500_000, DeclineThresholdPpm = 900_000 };
        Assert.True(state.TryConfigure((change?.Invoke(settings) ?? settings).Encode()));
        return state;
    }

    private static PaymentFacts Pay(int from, int to, long amount, long at = 1_800_000_000_000) => new(from, to, amount, at, 0, 0, 1_000_000_000);

    [Fact]
    public void The_score_decides_allow_review_or_decline()
    {
        var state = Configured(AmountModel());
        Assert.True(state.Enabled);
        var low = state.Score(Pay(1, 2, 100));
        Assert.Equal((FraudDecision.Allow, FraudReasons.None), (low.Decision, low.Reasons));
        Assert.True(low.Score < 0.5f);
        var mid = state.Score(Pay(1, 2, 1_100));
        Assert.Equal((FraudDecision.Review, FraudReasons.ModelReview), (mid.Decision, mid.Reasons));
        var high = state.Score(Pay(1, 2, 100_000));
        Assert.Equal((FraudDecision.Decline, FraudReasons.ModelDecline), (high.Decision, high.Reasons));
        Assert.Equal(1, high.ModelIndex);
        Assert.Equal("amount-test-1", state.ModelVersion(high.ModelIndex));
    }

    [Fact]
    public void Each_rule_has_its_own_reason_and_action()
    {
        var state = Configured(AmountModel(), s => s with
        {
            ReviewThresholdPpm = FraudSettings.ThresholdOff, DeclineThresholdPpm = FraudSettings.ThresholdOff,
            AmountThreshold = 5_000, MaxPaymentsPerDay = 3, BlockedAccounts = [7, 9],
        });
        Assert.Equal(FraudDecision.Allow, state.Score(Pay(1, 2, 4_999)).Decision);
        var big = state.Score(Pay(1, 2, 5_000));
        Assert.Equal((FraudDecision.Review, FraudReasons.AmountOverThreshold), (big.Decision, big.Reasons));
        var blocked = state.Score(Pay(9, 3, 10));
        Assert.Equal((FraudDecision.Decline, FraudReasons.BlockedAccount), (blocked.Decision, blocked.Reasons));
        Assert.Equal(FraudReasons.BlockedAccount, state.Score(Pay(3, 7, 10)).Reasons);
        Assert.Equal(FraudDecision.Allow, state.Score(Pay(1, 3, 10)).Decision); // account 1's third payment in 24 hours
        var fourth = state.Score(Pay(1, 4, 6_000));
        Assert.Equal(FraudDecision.Decline, fourth.Decision);
        Assert.Equal(FraudReasons.DailyLimitExceeded | FraudReasons.AmountOverThreshold, fourth.Reasons);
    }

    [Fact]
    public void Settings_round_trip_and_inconsistent_ones_are_refused()
    {
        var model = AmountModel();
        var s = new FraudSettings
        {
            Enabled = true, ModelSha256 = model.Sha256, ReviewThresholdPpm = 100, DeclineThresholdPpm = 200, AmountThreshold = 9,
            MaxPaymentsPerDay = 4, ReviewTimeoutMs = 60_000, BlockedAccounts = [1, 5, 1_000_000_000_000],
        };
        var back = FraudSettings.TryDecode(s.Encode());
        Assert.NotNull(back);
        Assert.True(back.SameAs(s));
        Assert.Equal(s.BlockedAccounts, back.BlockedAccounts);
        Assert.Null(FraudSettings.TryDecode(s.Encode()[..^1]));
        Assert.NotNull((s with { DeclineThresholdPpm = 50 }).Problem());
        Assert.NotNull((s with { BlockedAccounts = [5, 1] }).Problem());
        Assert.NotNull((s with { ModelSha256 = new byte[32] }).Problem());
        Assert.Null((s with { ModelSha256 = new byte[32], Enabled = false }).Problem());
        Assert.Equal(FraudSettings.ThresholdOff, FraudSettings.ToPpm(1.5));
        Assert.Equal(123_457, FraudSettings.ToPpm(0.1234567));
        Assert.True(FraudSettings.MaxEncodedBytes < 4000); // fits a journal record's attachment
    }

    /// <summary>Pinned: the settings are a journaled attachment (ConfigureFraud), so their bytes are a format.</summary>
    [Fact]
    public void The_settings_encoding_is_pinned()
    {
        var sha = new byte[32];
        sha[0] = 0xAB;
        sha[31] = 0xCD;
        var settings = new FraudSettings
        {
            Enabled = true, ReviewThresholdPpm = 500_000, DeclineThresholdPpm = 900_000, AmountThreshold = 5_000, MaxPaymentsPerDay = 20,
            ReviewTimeoutMs = 604_800_000, ModelSha256 = sha, BlockedAccounts = [7, 300],
        };
        string golden =
            "01" + "01"                                  // version 1, enabled
            + "20a10700" + "a0bb0d00"                    // 500,000 and 900,000 ppm
            + "8813000000000000"                         // amount threshold 5,000
            + "14000000"                                 // 20 a day
            + "00840c2400000000"                         // review timeout 604,800,000 ms = 0x240C8400
            + "ab" + new string('0', 60) + "cd"          // model SHA-256
            + "0200" + "0700000000000000" + "2c01000000000000"; // two blocked accounts: 7, 300
        Assert.Equal(golden, Convert.ToHexStringLower(settings.Encode()));
        Assert.True(FraudSettings.TryDecode(Convert.FromHexString(golden))!.SameAs(settings));
    }

    [Fact]
    public void A_model_the_catalog_does_not_hold_throws_and_a_foreign_schema_is_refused()
    {
        var state = new FraudState(10, FraudModelCatalog.Empty);
        var model = AmountModel();
        Assert.Throws<FraudModelNotFoundException>(() => state.TryConfigure(new FraudSettings { Enabled = true, ModelSha256 = model.Sha256 }.Encode()));
        var foreign = FraudModel.CreateLogistic("x", "another-schema", 0, [0], [1], [1]);
        var withForeign = new FraudState(10, FraudModelCatalog.Empty.With(foreign));
        Assert.False(withForeign.TryConfigure(new FraudSettings { Enabled = true, ModelSha256 = foreign.Sha256 }.Encode()));
        Assert.False(withForeign.Enabled);
        Assert.False(state.TryConfigure([1, 2, 3]));
    }

    [Fact]
    public void State_written_and_read_scores_the_next_payments_identically()
    {
        var v1 = AmountModel("v1");
        var v2 = AmountModel("v2");
        var catalog = FraudModelCatalog.Empty.With(v1).With(v2);
        var a = new FraudState(50, catalog);
        Assert.True(a.TryConfigure(new FraudSettings { Enabled = true, ModelSha256 = v1.Sha256 }.Encode()));
        var rng = new Random(11);
        long t = 1_800_000_000_000;
        PaymentFacts Next() { t += rng.Next(0, 400_000); int f = 1 + rng.Next(50), to = 1 + (f % 50); return new PaymentFacts(f, to, 1 + rng.Next(5_000), t, 0, 0, 10_000); }
        for (int i = 0; i < 300; i++) a.Score(Next());
        Assert.True(a.TryConfigure(new FraudSettings { Enabled = true, ModelSha256 = v2.Sha256, AmountThreshold = 4_000 }.Encode()));
        for (int i = 0; i < 300; i++) a.Score(Next());

        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true)) a.Write(w);
        ms.Position = 0;
        FraudState b;
        using (var r = new BinaryReader(ms)) b = FraudState.Read(r, 50, FraudModelCatalog.Empty);
        Assert.Equal(2, b.ModelCount);
        Assert.Equal("v1", b.ModelVersion(1));
        Assert.Equal("v2", b.Model!.Version);
        Assert.True(b.Settings.SameAs(a.Settings));
        for (int i = 0; i < 500; i++)
        {
            var p = Next();
            Assert.Equal(a.Score(p), b.Score(p));
        }
    }

    [Fact]
    public void Scoring_allocates_nothing()
    {
        var state = Configured(AmountModel());
        var payments = Enumerable.Range(0, 20_000).Select(i => Pay(1 + i % 90, 1 + (i * 7 + 3) % 90 == 1 + i % 90 ? 91 : 1 + (i * 7 + 3) % 90, 1 + i % 3_000, 1_800_000_000_000 + i * 50L)).ToArray();
        for (int i = 0; i < 1_000; i++) state.Score(payments[i]);
        Allocations.AssertARoundAllocatesNothing(round =>
        {
            for (int i = 1_000 + round * 6_000; i < 7_000 + round * 6_000; i++) state.Score(payments[i]);
        });
    }
}
