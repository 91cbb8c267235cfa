using RamPay.Fraud.Training;

namespace RamPay.Fraud.Tests;

/// <summary>
/// Models trained with ML.NET and exported to our model file score the held-out rows as ML.NET itself does, within
/// float rounding, and take the same decisions.
/// </summary>
public class MlNetExportTests
{
    private static readonly ScenarioOptions Small = ScenarioOptions.Default with { Users = 600, Days = 28, TrainDays = 21, WarmupDays = 7, TakeoversPerWeek = 8, CardTestingPerWeek = 6, MulesPerWeek = 5, OutliersPerWeek = 12 };

    private static readonly Lazy<(LabelledSet Data, int[] Train, int[] HeldOut)> Data = new(() => Rows(3));
    // Rules version 4's features (the fraud stage's: ages from first seen, the estimated balance).
    private static readonly Lazy<(LabelledSet Data, int[] Train, int[] HeldOut)> DataV4 = new(() => Rows(4));

    private static (LabelledSet Data, int[] Train, int[] HeldOut) Rows(int rules)
    {
        var scenario = Scenario.Generate(Small);
        var data = LabelledSet.FromScenario(scenario, rules);
        var (train, heldOut) = data.SplitAt(scenario.Options.SplitMs);
        return (data, train, heldOut);
    }

    private static readonly MlNetOptions Options = new() { Trees = 40 };

    [Theory]
    [InlineData(MlNetAlgorithm.LightGbm, 3)]
    [InlineData(MlNetAlgorithm.FastTree, 3)]
    [InlineData(MlNetAlgorithm.Logistic, 3)]
    [InlineData(MlNetAlgorithm.LightGbm, 4)]
    [InlineData(MlNetAlgorithm.FastTree, 4)]
    public void Our_scorer_and_ML_NET_agree_on_the_held_out_rows(MlNetAlgorithm algorithm, int rules)
    {
        var (data, train, heldOut) = rules >= 4 ? DataV4.Value : Data.Value;
        Assert.Equal(rules >= 4 ? 4 : 3, data.RulesVersion);
        Assert.True(data.Positives(heldOut) > 20, "the held-out period has fraud to find");
        var trained = MlNetTrainer.Train(algorithm, data, train, "mlnet-test", Features.SchemaId, Options);
        // What the writer loads: the file's bytes, parsed again.
        var model = FraudModel.Parse(trained.Model.ToBytes());
        Assert.True(model.FitsFeatureSchema);

        float[] theirs = trained.PredictWithMlNet(data, heldOut);
        double[] ours = Evaluation.Score(model, data, heldOut); // as the writer stores it: a float
        Assert.Equal(heldOut.Length, theirs.Length);
        double worst = 0;
        int decisionsDiffer = 0, flagged = 0;
        for (int k = 0; k < heldOut.Length; k++)
        {
            double diff = Math.Abs(ours[k] - theirs[k]);
            worst = Math.Max(worst, diff);
            // Float rounding: a few units in the last place of a float probability (ulp of 1 is 1.2e-7 below 1).
            Assert.True(diff <= 1e-6, $"row {heldOut[k]}: ours {ours[k]:R}, ML.NET {theirs[k]:R}");
            foreach (double threshold in new[] { 0.5, 0.9 })
                if ((ours[k] >= threshold) != (theirs[k] >= threshold) && Math.Abs(theirs[k] - threshold) > 1e-6) decisionsDiffer++;
            if (ours[k] >= 0.5) flagged++;
        }
        Assert.Equal(0, decisionsDiffer);
        Assert.True(flagged > 0, "the model flags something, so agreement is not about constants");
        // The model is worth exporting: it ranks the planted fraud well.
        var report = Evaluation.Report(algorithm.ToString(), model.Version, ours, data, heldOut, 0.5, 0.9);
        Assert.True(report.PrAuc > 0.5, $"PR-AUC {report.PrAuc}");
    }

    /// <summary>
    /// The shipped model trained on rules version 4's features (<c>src/RamPay.Fraud/Models/fasttree-v4.rpfm</c>, made by
    /// <c>bench/fraud-models-v4.sh</c>: FastTree at its defaults on the default scenario's version-4 rows): training again gives
    /// the same trees (every held-out score equal, bit for bit, to the file's), and ML.NET's own predictions agree with our
    /// scorer on the file within float rounding, with no decision on the other side of a threshold.
    /// </summary>
    [Fact]
    public void The_shipped_version_4_FastTree_model_scores_the_held_out_rows_as_ML_NET_does()
    {
        var shipped = FraudModel.Load(Path.Combine(AppContext.BaseDirectory, "Models", "fasttree-v4.rpfm"));
        Assert.Equal("fasttree-v4-s1", shipped.Version);
        Assert.True(shipped.FitsFeatureSchema);
        var scenario = Scenario.Generate(ScenarioOptions.Default);
        var data = LabelledSet.FromScenario(scenario, rulesVersion: 4);
        var (train, heldOut) = data.SplitAt(scenario.Options.SplitMs);
        var trained = MlNetTrainer.Train(MlNetAlgorithm.FastTree, data, train, "fasttree-v4-s1", Features.SchemaId, new MlNetOptions());
        double[] ours = Evaluation.Score(shipped, data, heldOut);
        double[] again = Evaluation.Score(FraudModel.Parse(trained.Model.ToBytes()), data, heldOut);
        Assert.Equal(again, ours);
        float[] theirs = trained.PredictWithMlNet(data, heldOut);
        int decisionsDiffer = 0;
        for (int k = 0; k < heldOut.Length; k++)
        {
            Assert.True(Math.Abs(ours[k] - theirs[k]) <= 1e-6, $"row {heldOut[k]}: ours {ours[k]:R}, ML.NET {theirs[k]:R}");
            foreach (double threshold in new[] { 0.5, 0.9 })
                if ((ours[k] >= threshold) != (theirs[k] >= threshold) && Math.Abs(theirs[k] - threshold) > 1e-6) decisionsDiffer++;
        }
        Assert.Equal(0, decisionsDiffer);
        var report = Evaluation.Report("fasttree-v4", shipped.Version, ours, data, heldOut, 0.5, 0.9);
        Assert.True(report.PrAuc > 0.95, $"PR-AUC {report.PrAuc}");
    }

    [Fact]
    public void Training_is_deterministic()
    {
        var (data, train, _) = Data.Value;
        foreach (var algorithm in new[] { MlNetAlgorithm.LightGbm, MlNetAlgorithm.Logistic })
        {
            var a = MlNetTrainer.Train(algorithm, data, train, "a", Features.SchemaId, Options with { Trees = 10 }).Model;
            var b = MlNetTrainer.Train(algorithm, data, train, "a", Features.SchemaId, Options with { Trees = 10 }).Model;
            Assert.Equal(a.Sha256Hex, b.Sha256Hex);
        }
    }

    [Fact]
    public void A_double_threshold_splits_doubles_exactly_as_ML_NET_splits_their_floats()
    {
        var rng = new ScenarioRandom(7);
        var cases = new List<float> { 0f, -0f, 1f, -1f, 0.5f, 3.0000002f, -3.0000002f, 1e-30f, 16777216f, 16777218f, float.MaxValue };
        for (int i = 0; i < 2000; i++) cases.Add((float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.NextDouble() * 40 - 20)));
        foreach (float t in cases)
        {
            double d = MlNetTrainer.DoubleThreshold(t);
            Assert.True((float)d <= t, $"t {t:R}: d {d:R} rounds above it");
            Assert.True((float)Math.BitIncrement(d) > t, $"t {t:R}: d {d:R} is not the largest");
            // Doubles around t and around the midpoint to the next float.
            double up = MathF.BitIncrement(t);
            foreach (double x in new[] { t, Math.BitIncrement((double)t), Math.BitDecrement((double)t), (t + up) / 2, Math.BitIncrement((t + up) / 2), Math.BitDecrement((t + up) / 2), up })
                Assert.Equal((float)x <= t, x <= d);
        }
    }
}
