using System.Globalization;
using System.Text;

namespace RamPay.Fraud.Training;

/// <summary>One scorer's figures on a set of rows.</summary>
public sealed record ScorerReport(string Name, string Version, double RocAuc, double PrAuc, ThresholdMetrics AtReview, ThresholdMetrics AtDecline,
    ThresholdMetrics AtOnePercentFpr, IReadOnlyDictionary<FraudPattern, double> RecallAtReviewByPattern);

/// <summary>Scores rows with a model or with the rules alone, and reports ranking and threshold metrics.</summary>
public static class Evaluation
{
    public static double[] Score(FraudModel model, LabelledSet data, int[] rows)
    {
        var scores = new double[rows.Length];
        for (int i = 0; i < rows.Length; i++) scores[i] = (float)model.Score(data.Row(rows[i])); // as the writer stores it
        return scores;
    }

    /// <summary>The rules-only baseline: 1 when any rule fires (declining or holding), else 0.</summary>
    public static double[] RulesScore(FraudSettings rules, LabelledSet data, int[] rows)
    {
        var scores = new double[rows.Length];
        for (int i = 0; i < rows.Length; i++)
            scores[i] = FraudRules.Evaluate(rules, data.Facts[rows[i]], data.Row(rows[i])) != FraudReasons.None ? 1 : 0;
        return scores;
    }

    /// <summary>
    /// Rules an operator could set from the training period alone: hold amounts at or above the 99.5th percentile,
    /// decline a sender's 21st payment in 24 hours, and block the (at most 256) accounts seen receiving fraud, or
    /// card-testing, in training.
    /// </summary>
    public static FraudSettings BaselineRules(LabelledSet data, int[] trainRows, int maxPerDay = 20)
    {
        var amounts = trainRows.Select(i => data.Facts[i].Amount).OrderBy(a => a).ToArray();
        long threshold = amounts.Length == 0 ? 0 : amounts[(int)Math.Min(amounts.Length - 1, (long)(amounts.Length * 0.995))];
        var bad = new Dictionary<long, int>();
        foreach (int i in trainRows)
        {
            if (data.Label[i] == 0) continue;
            long account = data.Pattern[i] == FraudPattern.CardTesting ? data.Facts[i].From : data.Facts[i].To;
            bad[account] = bad.GetValueOrDefault(account) + 1;
        }
        var blocked = bad.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key).Take(FraudSettings.MaxBlockedAccounts).Select(kv => kv.Key).Order().ToArray();
        return new FraudSettings { Enabled = false, AmountThreshold = threshold, MaxPaymentsPerDay = maxPerDay, BlockedAccounts = blocked };
    }

    public static ScorerReport Report(string name, string version, double[] scores, LabelledSet data, int[] rows, double review, double decline)
    {
        var labels = rows.Select(i => data.Label[i]).ToArray();
        var atReview = Metrics.AtThreshold(scores, labels, review);
        var byPattern = new Dictionary<FraudPattern, double>();
        foreach (var pattern in Enum.GetValues<FraudPattern>().Where(p => p != FraudPattern.None))
        {
            int total = 0, caught = 0;
            for (int k = 0; k < rows.Length; k++)
            {
                if (data.Pattern[rows[k]] != pattern) continue;
                total++;
                if (scores[k] >= review) caught++;
            }
            byPattern[pattern] = total == 0 ? double.NaN : caught / (double)total;
        }
        return new ScorerReport(name, version, Metrics.RocAuc(scores, labels), Metrics.AveragePrecision(scores, labels), atReview,
            Metrics.AtThreshold(scores, labels, decline), Metrics.AtFalsePositiveRate(scores, labels, 0.01), byPattern);
    }

    public static string Format(IReadOnlyList<ScorerReport> reports, double review, double decline)
    {
        static string F(double v, string format = "0.0000") => double.IsNaN(v) ? "n/a" : v.ToString(format, CultureInfo.InvariantCulture);
        var s = new StringBuilder();
        s.AppendLine(CultureInfo.InvariantCulture, $"{"scorer",-24} {"ROC-AUC",8} {"PR-AUC",8} {"recall@1%FPR",13} {"(threshold)",12} {"precision@review",17} {"recall@review",14} {"precision@decline",18} {"recall@decline",15}");
        foreach (var r in reports)
            s.AppendLine(CultureInfo.InvariantCulture,
                $"{r.Name,-24} {F(r.RocAuc),8} {F(r.PrAuc),8} {F(r.AtOnePercentFpr.Recall),13} {F(r.AtOnePercentFpr.Threshold),12} {F(r.AtReview.Precision),17} {F(r.AtReview.Recall),14} {F(r.AtDecline.Precision),18} {F(r.AtDecline.Recall),15}");
        s.AppendLine(CultureInfo.InvariantCulture, $"review threshold {review.ToString(CultureInfo.InvariantCulture)}, decline threshold {decline.ToString(CultureInfo.InvariantCulture)} (rules only: a rule fired = 1, else 0)");
        s.AppendLine();
        s.Append(CultureInfo.InvariantCulture, $"{"recall at review, by pattern",-24}");
        foreach (var p in Enum.GetValues<FraudPattern>().Where(p => p != FraudPattern.None)) s.Append(CultureInfo.InvariantCulture, $" {PatternName(p),17}");
        s.AppendLine();
        foreach (var r in reports)
        {
            s.Append(CultureInfo.InvariantCulture, $"{r.Name,-24}");
            foreach (var p in Enum.GetValues<FraudPattern>().Where(p => p != FraudPattern.None)) s.Append(CultureInfo.InvariantCulture, $" {F(r.RecallAtReviewByPattern[p]),17}");
            s.AppendLine();
        }
        return s.ToString();
    }

    public static string PatternName(FraudPattern p) => p switch
    {
        FraudPattern.None => "none",
        FraudPattern.AccountTakeover => "account_takeover",
        FraudPattern.CardTesting => "card_testing",
        FraudPattern.MuleFanIn => "mule_fan_in",
        FraudPattern.AmountOutlier => "amount_outlier",
        _ => "unknown",
    };
}

/// <summary>
/// Scoring time per payment, measured in-process: each scorer runs over the same rows in turn, round after round
/// (interleaved, so that a loaded machine slows them alike), and the median round counts. The model's cost only
/// (logit and logistic function, as the writer calls <see cref="FraudModel.Score"/>); the features, computed once per
/// payment whatever the model, are not included. The rules baseline is <see cref="FraudRules.Evaluate"/>.
/// </summary>
public static class ScoringTimer
{
    public abstract record Scorer(string Name);
    public sealed record ModelScorer(string Name, FraudModel Model) : Scorer(Name);
    public sealed record RulesScorer(string Name, FraudSettings Rules) : Scorer(Name);

    public static double[] NanosecondsPerRow(IReadOnlyList<Scorer> scorers, LabelledSet data, int[] rows, int rounds = 7)
    {
        var samples = new double[scorers.Count][];
        for (int s = 0; s < scorers.Count; s++) samples[s] = new double[rounds];
        double sink = 0;
        for (int s = 0; s < scorers.Count; s++) sink += Run(scorers[s], data, rows); // warm-up: JIT tiers, caches
        for (int round = 0; round < rounds; round++)
            for (int s = 0; s < scorers.Count; s++)
            {
                long start = System.Diagnostics.Stopwatch.GetTimestamp();
                sink += Run(scorers[s], data, rows);
                samples[s][round] = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalNanoseconds / rows.Length;
            }
        if (double.IsNaN(sink)) throw new InvalidOperationException("a score is NaN");
        return [.. samples.Select(x => x.Order().ElementAt(rounds / 2))];
    }

    /// <summary>
    /// The whole path as the writer runs it, per payment: every payment of the scenario (warm-up included) in time order
    /// through <see cref="FraudState.Score"/> (features computed and recorded, rules, model, decision) with the given
    /// rules, or for the rules alone the features and the rules. Interleaved rounds, each on fresh state (its memory
    /// reserved before the clock starts); the median round counts.
    /// </summary>
    public static double[] WriterPathNanoseconds(IReadOnlyList<Scorer> scorers, LabelledSet data, FraudSettings rules, int rounds = 5)
    {
        var samples = new double[scorers.Count][];
        for (int s = 0; s < scorers.Count; s++) samples[s] = new double[rounds];
        double sink = 0;
        for (int round = -1; round < rounds; round++) // round -1 warms up
            for (int s = 0; s < scorers.Count; s++)
            {
                var run = Prepare(scorers[s], data, rules);
                long start = System.Diagnostics.Stopwatch.GetTimestamp();
                sink += run();
                double ns = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalNanoseconds / Math.Max(1, data.AllFacts.Length);
                if (round >= 0) samples[s][round] = ns;
            }
        if (double.IsNaN(sink)) throw new InvalidOperationException("a score is NaN");
        return [.. samples.Select(x => x.Order().ElementAt(rounds / 2))];
    }

    private static Func<double> Prepare(Scorer scorer, LabelledSet data, FraudSettings rules)
    {
        var facts = data.AllFacts;
        if (scorer is ModelScorer m)
        {
            var state = new FraudState(data.Accounts + 1, FraudModelCatalog.Empty.With(m.Model));
            var settings = rules with { Enabled = true, ModelSha256 = m.Model.Sha256, ReviewThresholdPpm = 500_000, DeclineThresholdPpm = 900_000 };
            if (!state.TryConfigure(settings.Encode(), data.Accounts)) throw new InvalidOperationException("the timing settings do not configure");
            return () =>
            {
                double sum = 0;
                foreach (ref readonly var p in facts.AsSpan()) sum += (int)state.Score(p).Decision;
                return sum;
            };
        }
        var store = new FeatureStore(data.Accounts + 1);
        for (int id = 1; id <= data.Accounts; id++) store.Reserve(id);
        return () =>
        {
            Span<double> f = stackalloc double[Features.Count];
            double sum = 0;
            foreach (ref readonly var p in facts.AsSpan())
            {
                store.ComputeAndRecord(p, f);
                sum += (int)FraudRules.Decide(FraudRules.Evaluate(rules, p, f));
            }
            return sum;
        };
    }

    private static double Run(Scorer scorer, LabelledSet data, int[] rows) => scorer switch
    {
        ModelScorer m => RunModel(m.Model, data, rows),
        RulesScorer r => RunRules(r.Rules, data, rows),
        _ => throw new ArgumentException(scorer.GetType().Name),
    };

    private static double RunModel(FraudModel model, LabelledSet data, int[] rows)
    {
        double sum = 0;
        foreach (int i in rows) sum += (float)model.Score(data.Row(i));
        return sum;
    }

    private static double RunRules(FraudSettings rules, LabelledSet data, int[] rows)
    {
        double sum = 0;
        foreach (int i in rows) sum += (int)FraudRules.Evaluate(rules, data.Facts[i], data.Row(i));
        return sum;
    }
}
