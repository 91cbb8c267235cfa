using RamPay.Cli;

namespace RamPay.Engine.Tests;

/// <summary><c>rampay fraud generate | train | evaluate</c> on a small scenario.</summary>
public sealed class FraudCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rampay-fraud-cli-").FullName;
    private static readonly string[] Small = ["--users", "300", "--days", "14", "--train-days", "10", "--seed", "3"];

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static (int Exit, string Output) Run(params string[] args)
    {
        var output = new StringWriter();
        int exit = RampayCli.Build(output).Parse(args).Invoke();
        return (exit, output.ToString());
    }

    [Fact]
    public void Generate_train_and_evaluate_a_small_scenario()
    {
        string csv = Path.Combine(_dir, "s.csv");
        var (exit, output) = Run(["fraud", "generate", "--out", csv, .. Small]);
        Assert.Equal(0, exit);
        Assert.Contains("card_testing", output);
        Assert.StartsWith("# rampay fraud scenario name=default seed=3 users=300", File.ReadLines(csv).First());

        string gbt = Path.Combine(_dir, "m", "gbt.rpfm");
        (exit, output) = Run("fraud", "train", "--data", csv, "--kind", "gbt", "--trees", "20", "--version", "gbt-test", "--out", gbt);
        Assert.Equal(0, exit);
        Assert.Contains("feature importance", output);
        Assert.Equal("gbt-test", RamPay.Fraud.FraudModel.Load(gbt).Version);
        string lr = Path.Combine(_dir, "lr.rpfm");
        (exit, output) = Run("fraud", "train", "--data", csv, "--kind", "logistic", "--out", lr);
        Assert.Equal(0, exit);
        Assert.Equal("logistic-s3-u300-d10of14", RamPay.Fraud.FraudModel.Load(lr).Version);

        (exit, output) = Run("fraud", "evaluate", "--data", csv, "--model", lr, "--model", gbt, "--review-threshold", "0.4");
        Assert.Equal(0, exit);
        foreach (string expected in new[] { "ROC-AUC", "PR-AUC", "recall@1%FPR", "precision@review", "rules only", "lr.rpfm", "gbt.rpfm", "review threshold 0.4", "scoring time per payment" })
            Assert.Contains(expected, output);

        // Trained with ML.NET, written to our model file, loaded and scored by our scorer like any other.
        string lightgbm = Path.Combine(_dir, "lightgbm.rpfm");
        (exit, output) = Run("fraud", "train", "--data", csv, "--kind", "lightgbm", "--trees", "20", "--out", lightgbm);
        Assert.Equal(0, exit);
        var model = RamPay.Fraud.FraudModel.Load(lightgbm);
        Assert.Equal("lightgbm-s3-u300-d10of14", model.Version);
        Assert.Equal(20, model.TreeCount);
        Assert.Contains("ML.NET LightGbm", model.MetadataValue("algorithm"));
        Assert.Contains("ML.NET LightGbm", output);
    }

    [Fact]
    public void Evaluate_without_models_trains_every_kind_and_can_save_them()
    {
        string saved = Path.Combine(_dir, "saved");
        var (exit, output) = Run(["fraud", "evaluate", "--trees", "10", "--timing-rounds", "1", "--save-dir", saved, .. Small]);
        Assert.Equal(0, exit);
        foreach (string name in new[] { "ML.NET LightGbm", "ML.NET FastTree", "ML.NET logistic (LBFGS)", "ours: oblivious GBT" })
            Assert.Contains($"| {name} |", output); // a row of the summary table (PR-AUC, recall at 1 % FPR, ns)
        Assert.Equal(4, Directory.GetFiles(saved, "*.rpfm").Length);
    }

    [Fact]
    public void Bad_thresholds_are_a_usage_error()
    {
        var (exit, output) = Run(["fraud", "evaluate", "--review-threshold", "0.9", "--decline-threshold", "0.5", .. Small]);
        Assert.Equal(1, exit);
        Assert.Contains("thresholds", output);
    }
}
