using RamPay.Core;
using RamPay.Fraud;
using RamPay.Fraud.Training;

namespace RamPay.Engine.Tests;

/// <summary>
/// Training on rules version 4's features: <c>LabelledSet.FromScenario(scenario, 4)</c> computes each payment's features as
/// the fraud stage does, so a generated scenario applied to a ledger upgraded to 4 before its first event gives every payment
/// exactly the score the offline pipeline computes from its version-4 row (the model trained on those rows sees what the
/// stage will compute). The rows differ from version 3's where they should: the accounts' ages.
/// </summary>
public class FraudStageTrainingTests
{
    private static readonly Currency Usd = Currency.USD;

    [Fact]
    public void A_ledger_under_rules_4_scores_a_scenario_exactly_as_the_version_4_training_rows()
    {
        var scenario = Scenario.Generate(ScenarioOptions.Default with { Users = 300, Days = 10, TrainDays = 7, WarmupDays = 3 });
        var ledger = new Ledger(new LedgerOptions
        {
            MaxAccounts = scenario.Accounts, MaxPayments = scenario.Events.Count, InitialPaymentCapacity = 0, MaxOpenHolds = 1 << 12, IdempotencyMaxKeys = scenario.Events.Count,
        });
        long t0 = scenario.Events[0].TimeMs;
        ledger.Apply(new Command { Type = CommandType.UpgradeRules, Argument = 4, Amount = 1 << 16, TimestampMs = t0 }, out var upgraded);
        Assert.True(upgraded.IsOk, upgraded.ToString());
        var settings = new FraudSettings { Enabled = true, ModelSha256 = FraudModel.Default.Sha256, ReviewThresholdPpm = FraudSettings.ThresholdOff, DeclineThresholdPpm = FraudSettings.ThresholdOff };
        ledger.Apply(new Command { Type = CommandType.ConfigureFraud, TimestampMs = t0 }, settings.Encode(), out var configured);
        Assert.True(configured.IsOk);
        int n = 0;
        var transferIds = new List<long>();
        foreach (var e in scenario.Events)
        {
            var c = e.Kind switch
            {
                ScenarioEventKind.OpenAccount => new Command { Type = CommandType.OpenAccount, Currency = Usd, Flags = (byte)(e.From == 1 ? AccountFlags.Funding : AccountFlags.DebitsMustNotExceedCredits), Argument = e.From },
                ScenarioEventKind.Deposit => new Command { Type = CommandType.Deposit, Currency = Usd, FromAccount = 1, ToAccount = e.To, Amount = e.Amount },
                // As ingress sends a user's payment: on the owner's behalf (account i is owned by user i here).
                _ => new Command { Type = CommandType.Transfer, Currency = Usd, FromAccount = e.From, ToAccount = e.To, Amount = e.Amount, Flags = CommandFlags.OwnerOnly },
            };
            c = c with { TimestampMs = e.TimeMs, ClientId = e.Kind == ScenarioEventKind.Payment ? e.From : 1, Key = IdempotencyKey.FromString("scenario-" + n++) };
            ledger.Apply(c, out var result);
            Assert.True(result.IsOk, $"{c.Type} at {c.TimestampMs}: {result}");
            if (e.Kind == ScenarioEventKind.Payment) transferIds.Add(result.Id);
        }
        ledger.VerifyInvariants();
        Assert.Equal(4, ledger.RulesVersion);

        var v4 = LabelledSet.FromScenario(scenario, rulesVersion: 4);
        var v3 = LabelledSet.FromScenario(scenario);
        Assert.Equal(4, v4.RulesVersion);
        int firstRow = transferIds.Count - v4.Count;
        for (int i = 0; i < v4.Count; i++)
        {
            var recorded = ledger.GetFraudScore(transferIds[firstRow + i])!.Value;
            float offline = (float)FraudModel.Default.Score(v4.Row(i));
            if (recorded.Score != offline) Assert.Fail($"payment {transferIds[firstRow + i]}: the ledger under rules 4 scored {recorded.Score:R}, the version-4 rows {offline:R}");
        }
        // The two versions' rows differ in the ages only (an account is first seen after it opens: its age, and the time since
        // its "previous payment" before its first), and in some rows.
        int differing = 0;
        for (int i = 0; i < v4.Count; i++)
        {
            var a = v3.Row(i);
            var b = v4.Row(i);
            for (int j = 0; j < Features.Count; j++)
            {
                if (j is Features.SenderAgeLog2 or Features.ReceiverAgeLog2 or Features.SecondsSinceLastLog2) { if (a[j] != b[j]) { differing++; break; } continue; }
                Assert.Equal(a[j], b[j]);
            }
        }
        Assert.InRange(differing, 1, v4.Count);
    }
}
