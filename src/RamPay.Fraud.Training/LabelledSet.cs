namespace RamPay.Fraud.Training;

/// <summary>
/// Feature rows with labels: every payment of a scenario replayed in time order through the same
/// <see cref="FeatureStore"/> the ledger's writer scores with, against balances kept as the ledger keeps them.
/// </summary>
public sealed class LabelledSet
{
    private LabelledSet(int featureCount, int capacity)
    {
        FeatureCount = featureCount;
        X = new double[featureCount * capacity];
        Label = new byte[capacity];
        TimeMs = new long[capacity];
        Pattern = new FraudPattern[capacity];
        Facts = new PaymentFacts[capacity];
    }

    public int FeatureCount { get; }
    public int Count { get; private set; }
    /// <summary>Row-major: row i is X[i * FeatureCount .. (i + 1) * FeatureCount].</summary>
    public double[] X { get; private set; }
    public byte[] Label { get; private set; }
    public long[] TimeMs { get; private set; }
    public FraudPattern[] Pattern { get; private set; }
    public PaymentFacts[] Facts { get; private set; }
    /// <summary>Every payment of the scenario in time order, warm-up included, as the writer would score them (timing the whole path).</summary>
    public PaymentFacts[] AllFacts { get; private set; } = [];
    /// <summary>Accounts the scenario opens (ids 1..Accounts).</summary>
    public int Accounts { get; private set; }
    /// <summary>The rules version whose feature meanings the rows have (4: the fraud stage's; 1–3: the writer's).</summary>
    public int RulesVersion { get; private set; } = 3;

    public ReadOnlySpan<double> Row(int i) => X.AsSpan(i * FeatureCount, FeatureCount);

    /// <summary>
    /// The rows of every payment at or after the scenario's first evaluated day (warm-up payments shape the features
    /// but are not rows). Account ids and the balance a payment sees are exactly what a ledger fed the same events
    /// would have (tests check that the ledger scores them identically).
    /// <para>
    /// <paramref name="rulesVersion"/> 4 gives the features as the fraud stage computes them (docs/fraud.md, "What each
    /// feature means under version 4"), for a ledger upgraded to 4 before the scenario's first event: an account's age runs
    /// from when the stage first saw it (its first deposit or payment, not its opening) and the balance is the stage's
    /// estimate, kept by the stage's own <see cref="AttemptAccounts"/>. The scenario's payments are all made by their
    /// owners and all affordable, so the counts are the same as under 1–3 (tests check the ledger under rules 4 too).
    /// </para>
    /// </summary>
    public static LabelledSet FromScenario(Scenario scenario, int rulesVersion = 3)
    {
        if (rulesVersion is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(rulesVersion), rulesVersion, "rules versions are 1..4");
        var events = scenario.Events;
        var set = new LabelledSet(Features.Count, events.Count(e => e.Kind == ScenarioEventKind.Payment && e.TimeMs >= scenario.Options.StartMs));
        var store = new FeatureStore(scenario.Accounts);
        var created = new long[scenario.Accounts + 1];
        var balance = new long[scenario.Accounts + 1];
        var stage = rulesVersion >= 4 ? new AttemptAccounts(scenario.Accounts) : null;
        long clockMs = long.MinValue;
        Span<double> f = stackalloc double[Features.Count];
        var all = new List<PaymentFacts>();
        foreach (var e in events)
        {
            // The stage's clock, like the ledger's, never moves backwards (the scenario's events are in time order anyway).
            clockMs = Math.Max(clockMs, e.TimeMs);
            switch (e.Kind)
            {
                case ScenarioEventKind.OpenAccount:
                    created[e.From] = e.TimeMs;
                    break;
                case ScenarioEventKind.Deposit:
                    balance[e.To] += e.Amount;
                    if (stage is not null)
                    {
                        ref var to = ref stage.See(e.To, clockMs);
                        to.Balance = AttemptAccounts.AddSaturating(to.Balance, e.Amount);
                    }
                    break;
                case ScenarioEventKind.Payment:
                    PaymentFacts facts;
                    if (stage is null)
                    {
                        facts = new PaymentFacts(e.From, e.To, e.Amount, e.TimeMs, created[e.From], created[e.To], balance[e.From]);
                    }
                    else
                    {
                        // As FraudStage.Attempt: both accounts seen, the facts, then the attempt counted as if it succeeded.
                        ref var from = ref stage.See(e.From, clockMs);
                        ref var to = ref stage.See(e.To, clockMs);
                        facts = new PaymentFacts(e.From, e.To, e.Amount, clockMs, from.FirstSeenMs, to.FirstSeenMs, from.Balance);
                        from.Balance = AttemptAccounts.AddSaturating(from.Balance, -e.Amount);
                        to.Balance = AttemptAccounts.AddSaturating(to.Balance, e.Amount);
                    }
                    store.ComputeAndRecord(facts, f);
                    all.Add(facts);
                    balance[e.From] -= e.Amount;
                    balance[e.To] += e.Amount;
                    if (e.TimeMs >= scenario.Options.StartMs) set.AddRow(f, e.Pattern, e.TimeMs, facts);
                    break;
            }
        }
        set.AllFacts = [.. all];
        set.Accounts = scenario.Accounts;
        set.RulesVersion = rulesVersion;
        return set;
    }

    /// <summary>Rows built from raw feature vectors (synthetic data for tests).</summary>
    public static LabelledSet FromRows(int featureCount, IReadOnlyList<(double[] Features, bool Fraud)> rows)
    {
        var set = new LabelledSet(featureCount, rows.Count);
        for (int i = 0; i < rows.Count; i++)
            set.AddRow(rows[i].Features, rows[i].Fraud ? FraudPattern.AmountOutlier : FraudPattern.None, i, default);
        return set;
    }

    private void AddRow(ReadOnlySpan<double> features, FraudPattern pattern, long timeMs, in PaymentFacts facts)
    {
        features[..FeatureCount].CopyTo(X.AsSpan(Count * FeatureCount));
        Label[Count] = pattern == FraudPattern.None ? (byte)0 : (byte)1;
        Pattern[Count] = pattern;
        TimeMs[Count] = timeMs;
        Facts[Count] = facts;
        Count++;
    }

    /// <summary>Row indices before and at-or-after a time: the training period and the held-out period.</summary>
    public (int[] Train, int[] HeldOut) SplitAt(long splitMs)
    {
        var train = new List<int>();
        var test = new List<int>();
        for (int i = 0; i < Count; i++) (TimeMs[i] < splitMs ? train : test).Add(i);
        return ([.. train], [.. test]);
    }

    public int Positives(IEnumerable<int> rows) => rows.Count(i => Label[i] == 1);
}
