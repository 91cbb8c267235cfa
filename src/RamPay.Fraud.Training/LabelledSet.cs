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

    public ReadOnlySpan<double> Row(int i) => X.AsSpan(i * FeatureCount, FeatureCount);

    /// <summary>
    /// The rows of every payment at or after the scenario's first evaluated day (warm-up payments shape the features
    /// but are not rows). Account ids and the balance a payment sees are exactly what a ledger fed the same events
    /// would have (tests check that the ledger scores them identically).
    /// </summary>
    public static LabelledSet FromScenario(Scenario scenario)
    {
        var events = scenario.Events;
        var set = new LabelledSet(Features.Count, events.Count(e => e.Kind == ScenarioEventKind.Payment && e.TimeMs >= scenario.Options.StartMs));
        var store = new FeatureStore(scenario.Accounts);
        var created = new long[scenario.Accounts + 1];
        var balance = new long[scenario.Accounts + 1];
        Span<double> f = stackalloc double[Features.Count];
        var all = new List<PaymentFacts>();
        foreach (var e in events)
        {
            switch (e.Kind)
            {
                case ScenarioEventKind.OpenAccount:
                    created[e.From] = e.TimeMs;
                    break;
                case ScenarioEventKind.Deposit:
                    balance[e.To] += e.Amount;
                    break;
                case ScenarioEventKind.Payment:
                    var facts = new PaymentFacts(e.From, e.To, e.Amount, e.TimeMs, created[e.From], created[e.To], balance[e.From]);
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
