using RamPay.Fraud.Training;

namespace RamPay.Fraud.Tests;

/// <summary>The trainers recover rules planted in synthetic data, and the metrics agree with hand-worked examples.</summary>
public class TrainerTests
{
    /// <summary>
    /// Six uniform features; fraud is exactly "x2 > 0.7 and x4 <= 0.3" (an interaction no linear model can express),
    /// with 2 % of labels flipped as noise.
    /// </summary>
    private static LabelledSet PlantedInteraction(int n, ulong seed)
    {
        var rng = new ScenarioRandom(seed);
        var rows = new List<(double[], bool)>(n);
        for (int i = 0; i < n; i++)
        {
            var x = new double[6];
            for (int j = 0; j < x.Length; j++) x[j] = rng.NextDouble();
            bool fraud = x[2] > 0.7 && x[4] <= 0.3;
            if (rng.Chance(0.02)) fraud = !fraud;
            rows.Add((x, fraud));
        }
        return LabelledSet.FromRows(6, rows);
    }

    [Fact]
    public void The_tree_ensemble_recovers_a_planted_rule()
    {
        var train = PlantedInteraction(20_000, 1);
        var test = PlantedInteraction(10_000, 2);
        var all = Enumerable.Range(0, train.Count).ToArray();
        var result = GradientBoostingTrainer.Train(train, all, "planted", "synthetic", new GradientBoostingOptions { Trees = 40, MaxDepth = 3, LearningRate = 0.1 });

        // The splits that matter are on the two planted features, at the planted thresholds.
        var gain = result.GainByFeature;
        var top = gain.Select((g, j) => (g, j)).OrderByDescending(t => t.g).Take(2).Select(t => t.j).Order().ToArray();
        Assert.Equal([2, 4], top);
        Assert.True((gain[2] + gain[4]) / gain.Sum() > 0.99, "gain by feature: " + string.Join(", ", gain));

        // On fresh data it classifies as the rule does, up to the noise (2 %) and the bin granularity near the cuts.
        var rows = Enumerable.Range(0, test.Count).ToArray();
        var scores = Evaluation.Score(result.Model, test, rows);
        int agree = 0;
        var ruleLabels = new byte[test.Count];
        for (int i = 0; i < test.Count; i++)
        {
            var x = test.Row(i);
            bool rule = x[2] > 0.7 && x[4] <= 0.3;
            ruleLabels[i] = rule ? (byte)1 : (byte)0;
            if ((scores[i] >= 0.5) == rule) agree++;
        }
        Assert.True(agree >= 0.99 * test.Count, $"agrees with the planted rule on {agree} of {test.Count}");
        // Against the rule itself (not the noisy labels) the ranking is all but perfect.
        double auc = Metrics.RocAuc(scores, ruleLabels);
        Assert.True(auc > 0.995, $"ROC-AUC against the planted rule {auc}");
    }

    [Fact]
    public void Logistic_regression_recovers_planted_weights()
    {
        // Labels drawn from a known logistic model: logit = -2 + 3 x0 - 1.5 x3, x standard normal.
        var rng = new ScenarioRandom(7);
        var rows = new List<(double[], bool)>();
        for (int i = 0; i < 60_000; i++)
        {
            var x = new double[5];
            for (int j = 0; j < 5; j++) x[j] = rng.Normal() * 2 + 1; // mean 1, sd 2: the trainer standardizes
            double p = DetMath.Sigmoid(-2 + 3 * x[0] - 1.5 * x[3]);
            rows.Add((x, rng.NextDouble() < p));
        }
        var data = LabelledSet.FromRows(5, rows);
        var model = MlNetTrainer.Train(MlNetAlgorithm.Logistic, data, Enumerable.Range(0, data.Count).ToArray(), "planted", "synthetic", new MlNetOptions { L2 = 0 }).Model;
        // The logit of the trained model at a few points matches the planted one.
        foreach (var x in new double[][] { [0, 0, 0, 0, 0], [1, 5, -3, 0, 2], [0.5, 0, 0, 1, 0], [-1, 0, 0, -1, 0] })
        {
            double planted = -2 + 3 * x[0] - 1.5 * x[3];
            Assert.True(Math.Abs(model.Logit(x) - planted) < 0.15, $"logit at [{string.Join(", ", x)}]: {model.Logit(x)} vs planted {planted}");
        }
    }

    [Fact]
    public void Logistic_regression_does_not_diverge_on_separable_data()
    {
        var rows = Enumerable.Range(0, 2_000).Select(i => (new double[] { i, i % 7 }, i >= 1_500)).ToList();
        var data = LabelledSet.FromRows(2, rows);
        var model = MlNetTrainer.Train(MlNetAlgorithm.Logistic, data, Enumerable.Range(0, data.Count).ToArray(), "sep", "synthetic").Model;
        var scores = Evaluation.Score(model, data, Enumerable.Range(0, data.Count).ToArray());
        Assert.Equal(1.0, Metrics.RocAuc(scores, data.Label.AsSpan(0, data.Count)), 6);
    }

    [Fact]
    public void Training_is_reproducible_byte_for_byte()
    {
        var data = PlantedInteraction(5_000, 3);
        var rows = Enumerable.Range(0, data.Count).ToArray();
        var a = GradientBoostingTrainer.Train(data, rows, "r", "synthetic", new GradientBoostingOptions { Trees = 10 }).Model;
        var b = GradientBoostingTrainer.Train(data, rows, "r", "synthetic", new GradientBoostingOptions { Trees = 10 }).Model;
        Assert.Equal(a.Sha256Hex, b.Sha256Hex);
        var c = MlNetTrainer.Train(MlNetAlgorithm.Logistic, data, rows, "r", "synthetic").Model;
        var d = MlNetTrainer.Train(MlNetAlgorithm.Logistic, data, rows, "r", "synthetic").Model;
        Assert.Equal(c.Sha256Hex, d.Sha256Hex);
    }

    [Fact]
    public void Roc_auc_and_average_precision_match_hand_worked_values()
    {
        // Scores high to low: 0.9 (fraud), 0.8 (legit), 0.7 (fraud), 0.6 (legit), 0.5 (legit).
        double[] scores = [0.9, 0.8, 0.7, 0.6, 0.5];
        byte[] labels = [1, 0, 1, 0, 0];
        // Pairs (fraud, legit) ranked right: 0.9 beats all three, 0.7 beats two: 5 of 6.
        Assert.Equal(5 / 6.0, Metrics.RocAuc(scores, labels), 12);
        // Precision at each fraud: 1/1 and 2/3; AP = 0.5 * 1 + 0.5 * 2/3.
        Assert.Equal(0.5 + 0.5 * 2 / 3.0, Metrics.AveragePrecision(scores, labels), 12);
        // Ties count half: two equal scores, one of each.
        Assert.Equal(0.5, Metrics.RocAuc([0.3, 0.3], [1, 0]), 12);
        var at = Metrics.AtThreshold(scores, labels, 0.7);
        Assert.Equal((2, 1), (at.TruePositives, at.FalsePositives));
        Assert.Equal(2 / 3.0, at.Precision, 12);
        Assert.Equal(1.0, at.Recall, 12);
        // No false positive allowed: only 0.9 may be flagged.
        var strict = Metrics.AtFalsePositiveRate(scores, labels, 0.0);
        Assert.Equal(0.9, strict.Threshold);
        Assert.Equal(0.5, strict.Recall, 12);
        // One false positive in three negatives allowed: down to 0.7.
        Assert.Equal(1.0, Metrics.AtFalsePositiveRate(scores, labels, 0.34).Recall, 12);
    }
}
