using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using RamPay.Fraud;
using RamPay.Fraud.Training;
using Command = System.CommandLine.Command;

namespace RamPay.Cli;

/// <summary>
/// <c>rampay fraud generate | train | evaluate</c>: the labelled scenario generator, the two trainers and the held-out
/// evaluation (docs/fraud.md). Training and evaluation read features through the same FeatureStore the ledger's writer
/// scores with: events are replayed in time order, and the period after --train-days is never trained on.
/// </summary>
public static class FraudCommands
{
    public const double DefaultReviewThreshold = 0.5;
    public const double DefaultDeclineThreshold = 0.9;

    private sealed class ScenarioArgs
    {
        public readonly Option<FileInfo?> Data = new("--data") { Description = "A scenario CSV written by 'rampay fraud generate' (default: generate the scenario from the options below, in memory)" };
        public readonly Option<int> Seed = new("--seed") { Description = "Seed of the generated scenario: the same seed gives the same events", DefaultValueFactory = _ => 1 };
        public readonly Option<int> Users = new("--users") { Description = "Users in the generated population", DefaultValueFactory = _ => ScenarioOptions.Default.Users };
        public readonly Option<int> Days = new("--days") { Description = "Days simulated after a 14-day warm-up", DefaultValueFactory = _ => ScenarioOptions.Default.Days };
        public readonly Option<int> TrainDays = new("--train-days") { Description = "The first this many days train; the days after are held out for evaluation", DefaultValueFactory = _ => ScenarioOptions.Default.TrainDays };

        public void AddTo(Command c, bool withData = true)
        {
            if (withData) c.Add(Data);
            c.Add(Seed); c.Add(Users); c.Add(Days); c.Add(TrainDays);
        }

        public ScenarioOptions Options(ParseResult r) => ScenarioOptions.Default with
        {
            Seed = (ulong)r.GetValue(Seed), Users = r.GetValue(Users), Days = r.GetValue(Days), TrainDays = r.GetValue(TrainDays),
        };

        public Scenario Load(ParseResult r, TextWriter output)
        {
            var watch = Stopwatch.StartNew();
            Scenario scenario;
            if (r.GetValue(Data) is { } file)
            {
                using var reader = file.OpenText();
                scenario = ScenarioCsv.Read(reader);
                output.WriteLine($"scenario          {file.FullName} ({scenario.Events.Count} events, {watch.ElapsedMilliseconds} ms to read)");
            }
            else
            {
                scenario = Scenario.Generate(Options(r));
                output.WriteLine($"scenario          {Describe(scenario.Options)} ({scenario.Events.Count} events, {watch.ElapsedMilliseconds} ms to generate)");
            }
            return scenario;
        }
    }

    private static string Describe(ScenarioOptions o) =>
        $"{o.Name}, seed {o.Seed}, {o.Users} users, {o.Days} days (train {o.TrainDays}, held out {o.Days - o.TrainDays}, warm-up {o.WarmupDays})";

    public static Command Build(TextWriter output)
    {
        var fraud = new Command("fraud", "Fraud model tools: generate a labelled scenario, train a model, evaluate models on a held-out period. See docs/fraud.md.");
        fraud.Add(Generate(output));
        fraud.Add(Train(output));
        fraud.Add(Evaluate(output));
        return fraud;
    }

    private static Command Generate(TextWriter output)
    {
        var args = new ScenarioArgs();
        var outFile = new Option<FileInfo>("--out", "-o") { Description = "Where to write the scenario CSV", Required = true };
        var c = new Command("generate", "Simulate a population of users paying each other over weeks, with labelled fraud (account takeover, card testing, mule fan-in, amount outliers), and write it as CSV. Seeded: the same options give the same file.");
        args.AddTo(c, withData: false);
        c.Add(outFile);
        c.SetAction(r =>
        {
            var scenario = Scenario.Generate(args.Options(r));
            var file = r.GetValue(outFile)!;
            using (var w = new StreamWriter(file.FullName)) ScenarioCsv.Write(scenario, w);
            output.WriteLine($"scenario          {Describe(scenario.Options)}");
            output.WriteLine($"accounts          {scenario.Accounts}");
            foreach (var kind in Enum.GetValues<ScenarioEventKind>())
                output.WriteLine($"{kind.ToString().ToLowerInvariant(),-17} {scenario.Events.Count(e => e.Kind == kind)}");
            foreach (var p in Enum.GetValues<FraudPattern>())
                output.WriteLine($"  {Evaluation.PatternName(p),-15} {scenario.Events.Count(e => e.Kind == ScenarioEventKind.Payment && e.Pattern == p)}");
            output.WriteLine($"wrote             {file.FullName}");
            return RampayCli.ExitOk;
        });
        return c;
    }

    private sealed class TrainerArgs
    {
        public readonly Option<int> Trees = new("--trees") { Description = "Tree ensemble: number of trees", DefaultValueFactory = _ => new GradientBoostingOptions().Trees };
        public readonly Option<int> Depth = new("--depth") { Description = "Tree ensemble: depth of each tree", DefaultValueFactory = _ => new GradientBoostingOptions().MaxDepth };
        public readonly Option<double> LearningRate = new("--learning-rate") { Description = "Tree ensemble: shrinkage of each tree", DefaultValueFactory = _ => new GradientBoostingOptions().LearningRate };
        public readonly Option<double> L2 = new("--l2") { Description = "Logistic regression: L2 penalty on the weights", DefaultValueFactory = _ => new LogisticRegressionOptions().L2 };

        public void AddTo(Command c) { c.Add(Trees); c.Add(Depth); c.Add(LearningRate); c.Add(L2); }
        public GradientBoostingOptions Trees_(ParseResult r) => new() { Trees = r.GetValue(Trees), MaxDepth = r.GetValue(Depth), LearningRate = r.GetValue(LearningRate) };
        public LogisticRegressionOptions Logistic(ParseResult r) => new() { L2 = r.GetValue(L2) };
    }

    private static Command Train(TextWriter output)
    {
        var args = new ScenarioArgs();
        var trainer = new TrainerArgs();
        var kind = new Option<string>("--kind") { Description = "gbt (gradient-boosted trees) or logistic (logistic regression)", DefaultValueFactory = _ => "gbt" };
        kind.AcceptOnlyFromAmong("gbt", "logistic");
        var outFile = new Option<FileInfo>("--out", "-o") { Description = "Where to write the model file (.rpfm)", Required = true };
        var version = new Option<string?>("--version") { Description = "The model's version string, recorded with every score it gives (default: <kind>-s<seed>-u<users>-d<train days>of<days>)" };
        var c = new Command("train", "Train a model on the training period of a scenario (features replayed through the writer's feature code) and write a versioned model file. Prints the held-out figures as well.");
        args.AddTo(c);
        c.Add(kind); c.Add(outFile); c.Add(version);
        trainer.AddTo(c);
        c.SetAction(r =>
        {
            var scenario = args.Load(r, output);
            var data = LabelledSet.FromScenario(scenario);
            var (train, heldOut) = data.SplitAt(scenario.Options.SplitMs);
            PrintSplit(output, data, train, heldOut);
            string k = r.GetValue(kind)!;
            var (model, seconds) = TrainOne(k, r.GetValue(version), scenario, data, train, trainer.Trees_(r), trainer.Logistic(r), output);
            var file = r.GetValue(outFile)!;
            if (file.Directory is { Exists: false } dir) dir.Create();
            model.Save(file.FullName);
            output.WriteLine($"trained           {model} in {seconds:F1} s");
            output.WriteLine($"wrote             {file.FullName} ({model.ByteLength} bytes)");
            var reports = new List<ScorerReport>
            {
                Evaluation.Report("rules only", "", Evaluation.RulesScore(Evaluation.BaselineRules(data, train), data, heldOut), data, heldOut, 1, 1),
                Evaluation.Report(k == "gbt" ? "gradient-boosted trees" : "logistic regression", model.Version, Evaluation.Score(model, data, heldOut), data, heldOut, DefaultReviewThreshold, DefaultDeclineThreshold),
            };
            output.WriteLine();
            output.WriteLine("held-out period:");
            output.Write(Evaluation.Format(reports, DefaultReviewThreshold, DefaultDeclineThreshold));
            return RampayCli.ExitOk;
        });
        return c;
    }

    private static (FraudModel Model, double Seconds) TrainOne(string kind, string? version, Scenario scenario, LabelledSet data, int[] train,
        GradientBoostingOptions trees, LogisticRegressionOptions logistic, TextWriter output)
    {
        var o = scenario.Options;
        string v = version ?? $"{kind}-s{o.Seed}-u{o.Users}-d{o.TrainDays}of{o.Days}";
        var meta = new List<KeyValuePair<string, string>>
        {
            new("scenario", Describe(o)),
            new("trained_on", $"days 1..{o.TrainDays} ({train.Length} payments, {data.Positives(train)} fraud)"),
            new("trained_by", "rampay fraud train"),
        };
        var watch = Stopwatch.StartNew();
        FraudModel model;
        if (kind == "gbt")
        {
            var result = GradientBoostingTrainer.Train(data, train, v, Features.SchemaId, trees, meta);
            model = result.Model;
            output.WriteLine("feature importance (share of total split gain):");
            double total = result.GainByFeature.Sum();
            foreach (var (gain, j) in result.GainByFeature.Select((g, j) => (g, j)).OrderByDescending(t => t.g).Take(10))
                output.WriteLine($"  {Features.Name(j),-26} {gain / total,6:P1}");
        }
        else
        {
            model = LogisticRegressionTrainer.Train(data, train, v, Features.SchemaId, logistic, meta);
        }
        return (model, watch.Elapsed.TotalSeconds);
    }

    private static void PrintSplit(TextWriter output, LabelledSet data, int[] train, int[] heldOut)
    {
        output.WriteLine($"training rows     {train.Length} ({data.Positives(train)} fraud, {100.0 * data.Positives(train) / Math.Max(1, train.Length):F2} %)");
        output.WriteLine($"held-out rows     {heldOut.Length} ({data.Positives(heldOut)} fraud, {100.0 * data.Positives(heldOut) / Math.Max(1, heldOut.Length):F2} %)");
    }

    private static Command Evaluate(TextWriter output)
    {
        var args = new ScenarioArgs();
        var trainer = new TrainerArgs();
        var models = new Option<FileInfo[]>("--model", "-m") { Description = "A model file to evaluate (repeat for several). Without any, a logistic regression and a tree ensemble are trained on the training period and evaluated." };
        var review = new Option<double>("--review-threshold") { Description = "Score at or above which a payment is held for review", DefaultValueFactory = _ => DefaultReviewThreshold };
        var decline = new Option<double>("--decline-threshold") { Description = "Score at or above which a payment is declined", DefaultValueFactory = _ => DefaultDeclineThreshold };
        var maxPerDay = new Option<int>("--max-per-day") { Description = "Rules baseline: decline a sender's payment beyond this many in 24 hours", DefaultValueFactory = _ => 20 };
        var saveDir = new Option<DirectoryInfo?>("--save-dir") { Description = "When training here: also write both versioned model files into this folder" };
        var c = new Command("evaluate", "Evaluate models on the held-out period (after --train-days) of a scenario beside a rules-only baseline: ROC-AUC, PR-AUC, recall at 1 % false positive rate, precision and recall at the review and decline thresholds, recall by fraud pattern.");
        args.AddTo(c);
        c.Add(models); c.Add(review); c.Add(decline); c.Add(maxPerDay); c.Add(saveDir);
        trainer.AddTo(c);
        c.SetAction(r =>
        {
            double reviewAt = r.GetValue(review), declineAt = r.GetValue(decline);
            if (!(reviewAt is >= 0 and <= 1) || !(declineAt >= reviewAt && declineAt <= 1))
            {
                output.WriteLine("error: thresholds must satisfy 0 <= review <= decline <= 1");
                return RampayCli.ExitUsage;
            }
            var scenario = args.Load(r, output);
            var data = LabelledSet.FromScenario(scenario);
            var (train, heldOut) = data.SplitAt(scenario.Options.SplitMs);
            PrintSplit(output, data, train, heldOut);
            var rules = Evaluation.BaselineRules(data, train, r.GetValue(maxPerDay));
            output.WriteLine($"rules baseline    amount >= {rules.AmountThreshold}, more than {rules.MaxPaymentsPerDay} payments in 24 h, {rules.BlockedAccounts.Length} accounts blocked (fraud receivers seen in training)");
            var reports = new List<ScorerReport>
            {
                Evaluation.Report("rules only", "", Evaluation.RulesScore(rules, data, heldOut), data, heldOut, 1, 1),
            };
            var files = r.GetValue(models) ?? [];
            if (files.Length == 0)
            {
                foreach (var kind in new[] { "logistic", "gbt" })
                {
                    var (model, seconds) = TrainOne(kind, null, scenario, data, train, trainer.Trees_(r), trainer.Logistic(r), output);
                    output.WriteLine($"trained           {model} in {seconds:F1} s");
                    if (r.GetValue(saveDir) is { } dir)
                    {
                        dir.Create();
                        string path = Path.Combine(dir.FullName, model.Version + ".rpfm");
                        model.Save(path);
                        output.WriteLine($"wrote             {path}");
                    }
                    reports.Add(Evaluation.Report(kind == "gbt" ? "gradient-boosted trees" : "logistic regression", model.Version, Evaluation.Score(model, data, heldOut), data, heldOut, reviewAt, declineAt));
                }
            }
            foreach (var file in files)
            {
                var model = FraudModel.Load(file.FullName);
                if (!model.FitsFeatureSchema)
                {
                    output.WriteLine($"error: {file.Name} reads feature schema '{model.SchemaId}' ({model.FeatureCount} features), not {Features.SchemaId}");
                    return RampayCli.ExitUsage;
                }
                output.WriteLine($"model             {file.Name}: {model}");
                reports.Add(Evaluation.Report(model.Kind == FraudModelKind.TreeEnsemble ? "gradient-boosted trees" : "logistic regression", model.Version,
                    Evaluation.Score(model, data, heldOut), data, heldOut, reviewAt, declineAt));
            }
            output.WriteLine();
            output.WriteLine($"held-out period (days {scenario.Options.TrainDays + 1}..{scenario.Options.Days}):");
            output.Write(Evaluation.Format(reports, reviewAt, declineAt));
            foreach (var rep in reports.Skip(1))
                output.WriteLine($"{rep.Name} ({rep.Version}): at 1 % FPR, threshold {rep.AtOnePercentFpr.Threshold.ToString("0.####", CultureInfo.InvariantCulture)} flags {rep.AtOnePercentFpr.TruePositives} fraud and {rep.AtOnePercentFpr.FalsePositives} legitimate payments");
            return RampayCli.ExitOk;
        });
        return c;
    }
}
