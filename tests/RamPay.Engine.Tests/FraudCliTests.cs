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
        foreach (string expected in new[] { "ROC-AUC", "PR-AUC", "recall@1%FPR", "precision@review", "rules only", "logistic regression", "gradient-boosted trees", "review threshold 0.4" })
            Assert.Contains(expected, output);
    }

    [Fact]
    public void Evaluate_without_models_trains_both_and_can_save_them()
    {
        string saved = Path.Combine(_dir, "saved");
        var (exit, output) = Run(["fraud", "evaluate", "--trees", "10", "--save-dir", saved, .. Small]);
        Assert.Equal(0, exit);
        Assert.Contains("gradient-boosted trees", output);
        Assert.Equal(2, Directory.GetFiles(saved, "*.rpfm").Length);
    }

    [Fact]
    public void Bad_thresholds_are_a_usage_error()
    {
        var (exit, output) = Run(["fraud", "evaluate", "--review-threshold", "0.9", "--decline-threshold", "0.5", .. Small]);
        Assert.Equal(1, exit);
        Assert.Contains("thresholds", output);
    }
}
