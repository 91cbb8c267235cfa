using RamPay.Fraud.Training;

namespace RamPay.Fraud.Tests;

public class ScenarioTests
{
    private static readonly ScenarioOptions Small = ScenarioOptions.Default with { Users = 400, Days = 21, TrainDays = 14, WarmupDays = 7, TakeoversPerWeek = 6, CardTestingPerWeek = 4, MulesPerWeek = 4, OutliersPerWeek = 8 };

    private static string Csv(Scenario s)
    {
        using var w = new StringWriter();
        ScenarioCsv.Write(s, w);
        return w.ToString();
    }

    [Fact]
    public void The_same_seed_gives_the_same_events_and_another_seed_others()
    {
        string a = Csv(Scenario.Generate(Small));
        string b = Csv(Scenario.Generate(Small));
        string c = Csv(Scenario.Generate(Small with { Seed = 2 }));
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Events_are_in_time_order_accounts_open_before_use_and_nobody_overspends()
    {
        var s = Scenario.Generate(Small);
        var opened = new bool[s.Accounts + 1];
        var balance = new long[s.Accounts + 1];
        long previous = long.MinValue;
        Assert.Equal((ScenarioEventKind.OpenAccount, 1), (s.Events[0].Kind, s.Events[0].From));
        int nextId = 1;
        foreach (var e in s.Events)
        {
            Assert.True(e.TimeMs >= previous, "events out of time order");
            previous = e.TimeMs;
            switch (e.Kind)
            {
                case ScenarioEventKind.OpenAccount:
                    Assert.Equal(nextId++, e.From); // ids in opening order, as the ledger gives them
                    opened[e.From] = true;
                    break;
                case ScenarioEventKind.Deposit:
                    Assert.True(opened[e.To] && e.From == 1 && e.Amount > 0);
                    balance[e.To] += e.Amount;
                    break;
                default:
                    Assert.True(opened[e.From] && opened[e.To] && e.From != e.To && e.From != 1 && e.Amount > 0);
                    Assert.True(balance[e.From] >= e.Amount, "a payment the sender cannot afford");
                    balance[e.From] -= e.Amount;
                    balance[e.To] += e.Amount;
                    break;
            }
        }
        Assert.Equal(s.Accounts, nextId - 1);
    }

    [Fact]
    public void Every_pattern_is_planted_within_the_evaluated_period_and_fraud_is_rare()
    {
        var s = Scenario.Generate(Small);
        var payments = s.Events.Where(e => e.Kind == ScenarioEventKind.Payment).ToList();
        foreach (var p in Enum.GetValues<FraudPattern>().Where(p => p != FraudPattern.None))
            Assert.True(payments.Count(e => e.Pattern == p) > 0, $"no {p}");
        Assert.All(payments.Where(e => e.Pattern != FraudPattern.None), e => Assert.True(e.TimeMs >= s.Options.StartMs));
        double rate = payments.Count(e => e.Pattern != FraudPattern.None) / (double)payments.Count;
        Assert.InRange(rate, 0.002, 0.05);
        // Card testing is many tiny payments; takeovers drain: a payment in a takeover is large for its sender.
        Assert.All(payments.Where(e => e.Pattern == FraudPattern.CardTesting), e => Assert.InRange(e.Amount, 50, 1_500));
    }

    [Fact]
    public void The_csv_round_trips()
    {
        var s = Scenario.Generate(Small);
        string csv = Csv(s);
        var back = ScenarioCsv.Read(new StringReader(csv));
        Assert.Equal(s.Events, back.Events);
        Assert.Equal(s.Accounts, back.Accounts);
        Assert.Equal(s.Options.SplitMs, back.Options.SplitMs);
        Assert.Equal(csv, Csv(back));
    }

    [Fact]
    public void The_held_out_rows_are_later_than_every_training_row()
    {
        var s = Scenario.Generate(Small);
        var data = LabelledSet.FromScenario(s);
        var (train, test) = data.SplitAt(s.Options.SplitMs);
        Assert.True(train.Length > 0 && test.Length > 0);
        Assert.True(train.Max(i => data.TimeMs[i]) < test.Min(i => data.TimeMs[i]));
        Assert.True(data.Positives(train) > 0 && data.Positives(test) > 0);
    }

    [Fact]
    public void On_a_small_scenario_the_trees_beat_the_linear_model_and_both_beat_the_rules()
    {
        var s = Scenario.Generate(Small with { Users = 1_000 });
        var data = LabelledSet.FromScenario(s);
        var (train, test) = data.SplitAt(s.Options.SplitMs);
        var lr = MlNetTrainer.Train(MlNetAlgorithm.Logistic, data, train, "lr", Features.SchemaId).Model;
        var gbt = GradientBoostingTrainer.Train(data, train, "gbt", Features.SchemaId, new GradientBoostingOptions { Trees = 60 }).Model;
        var labels = test.Select(i => data.Label[i]).ToArray();
        double rules = Metrics.AveragePrecision(Evaluation.RulesScore(Evaluation.BaselineRules(data, train), data, test), labels);
        double linear = Metrics.AveragePrecision(Evaluation.Score(lr, data, test), labels);
        double trees = Metrics.AveragePrecision(Evaluation.Score(gbt, data, test), labels);
        Assert.True(trees > linear && linear > 2 * rules, $"PR-AUC: trees {trees}, logistic {linear}, rules {rules}");
    }
}
