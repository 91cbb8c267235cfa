using System.Globalization;
using System.Text;
using System.Text.Json;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Fraud;
using RamPay.Journal;

namespace RamPay.Cli;

/// <summary>What a shadow run changes of the settings in force: a model, thresholds, rules (null: as in the original run).</summary>
public sealed record ShadowOverrides
{
    public FraudModel? Model { get; init; }
    public double? ReviewThreshold { get; init; }
    public double? DeclineThreshold { get; init; }
    public long? AmountThreshold { get; init; }
    public int? MaxPaymentsPerDay { get; init; }
    public long[]? BlockedAccounts { get; init; }

    /// <summary>The settings the shadow decides with, given those in force at a payment in the original run.</summary>
    public FraudSettings Apply(FraudSettings original) => original with
    {
        ReviewThresholdPpm = ReviewThreshold is { } r ? FraudSettings.ToPpm(r) : original.ReviewThresholdPpm,
        DeclineThresholdPpm = DeclineThreshold is { } d ? FraudSettings.ToPpm(d) : original.DeclineThresholdPpm,
        AmountThreshold = AmountThreshold ?? original.AmountThreshold,
        MaxPaymentsPerDay = MaxPaymentsPerDay ?? original.MaxPaymentsPerDay,
        BlockedAccounts = BlockedAccounts ?? original.BlockedAccounts,
    };

    public string Describe()
    {
        var parts = new List<string>();
        var inv = CultureInfo.InvariantCulture;
        if (Model is not null) parts.Add($"model {Model.Version} (sha256 {Model.Sha256Hex[..16]})");
        if (ReviewThreshold is { } r) parts.Add($"review threshold {r.ToString(inv)}");
        if (DeclineThreshold is { } d) parts.Add($"decline threshold {d.ToString(inv)}");
        if (AmountThreshold is { } a) parts.Add($"amount threshold {a.ToString(inv)}");
        if (MaxPaymentsPerDay is { } m) parts.Add($"max payments per day {m.ToString(inv)}");
        if (BlockedAccounts is { } b) parts.Add($"blocked accounts [{string.Join(",", b)}]");
        return parts.Count == 0 ? "nothing (the settings in force: the report must show no change)" : string.Join(", ", parts);
    }
}

/// <summary>One cell of the transition table: payments the original run decided <see cref="From"/> and the shadow <see cref="To"/>.</summary>
public sealed class ShadowTransition(FraudDecision from, FraudDecision to)
{
    public FraudDecision From { get; } = from;
    public FraudDecision To { get; } = to;
    public long Count { get; internal set; }
    /// <summary>Sum of the amounts in minor units, by currency (ascending code).</summary>
    public SortedDictionary<string, long> Amounts { get; } = new(StringComparer.Ordinal);
    /// <summary>The first payment ids in journal order.</summary>
    public List<long> Examples { get; } = [];
}

/// <summary>The outcome of a shadow replay.</summary>
public sealed class ShadowReport
{
    public required string DataDirectory { get; init; }
    public required string Shadow { get; init; }
    public long RecordsReplayed { get; internal set; }
    public long LastSequence { get; internal set; }
    public long Scored { get; internal set; }
    public long Changed { get; internal set; }
    public long[] Original { get; } = new long[3];
    public long[] Shadowed { get; } = new long[3];
    /// <summary>Indexed [original decision, shadow decision].</summary>
    public ShadowTransition[,] Transitions { get; } = New();
    /// <summary>The versions of the models that scored in the original run, in first-use order.</summary>
    public List<string> OriginalModels { get; } = [];

    private static ShadowTransition[,] New()
    {
        var t = new ShadowTransition[3, 3];
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) t[a, b] = new ShadowTransition((FraudDecision)a, (FraudDecision)b);
        return t;
    }

    public ShadowTransition this[FraudDecision from, FraudDecision to] => Transitions[(int)from, (int)to];

    public const string Caveat =
        "Each payment is scored with the features the original run computed for it (the history it saw, in its order) and the " +
        "balance it had then. A changed decision is not carried forward: later balances, holds and features are the original " +
        "run's, so a payment the shadow would have declined still counts in its sender's later history and its money still moved. " +
        "Only payments the original run scored are compared (transfers and authorizations while scoring was on).";

    public static string Name(FraudDecision d) => d switch
    {
        FraudDecision.Allow => "passed",
        FraudDecision.Review => "held",
        FraudDecision.Decline => "declined",
        _ => d.ToString(),
    };

    public string FormatText()
    {
        var s = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        s.AppendLine(inv, $"shadow replay      {DataDirectory} (read-only), journal records 1..{LastSequence} ({RecordsReplayed} replayed)");
        s.AppendLine(inv, $"original models    {(OriginalModels.Count == 0 ? "none (scoring was never on)" : string.Join(", ", OriginalModels))}");
        s.AppendLine(inv, $"shadow changes     {Shadow}");
        s.AppendLine(inv, $"payments scored    {Scored}");
        s.AppendLine(inv, $"decisions changed  {Changed}");
        s.AppendLine();
        s.AppendLine(inv, $"{"decision",-10} {"original",10} {"shadow",10}");
        for (int d = 0; d < 3; d++) s.AppendLine(inv, $"{Name((FraudDecision)d),-10} {Original[d],10} {Shadowed[d],10}");
        s.AppendLine();
        s.AppendLine(inv, $"{"original -> shadow",-22} {"count",8}  {"amount (minor units)",-28} examples (payment ids)");
        foreach (var t in Transitions)
        {
            if (t.From == t.To || t.Count == 0) continue;
            string amounts = string.Join(", ", t.Amounts.Select(kv => $"{kv.Key} {kv.Value.ToString(inv)}"));
            s.AppendLine(inv, $"{Name(t.From) + " -> " + Name(t.To),-22} {t.Count,8}  {amounts,-28} {string.Join(", ", t.Examples)}");
        }
        long unchanged = Scored - Changed;
        s.AppendLine(inv, $"{"unchanged",-22} {unchanged,8}");
        s.AppendLine();
        s.AppendLine("note: " + Caveat);
        return s.ToString();
    }

    public string FormatJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("data", DataDirectory);
            w.WriteNumber("records_replayed", RecordsReplayed);
            w.WriteNumber("last_sequence", LastSequence);
            w.WriteStartArray("original_models");
            foreach (var m in OriginalModels) w.WriteStringValue(m);
            w.WriteEndArray();
            w.WriteString("shadow", Shadow);
            w.WriteNumber("scored", Scored);
            w.WriteNumber("changed", Changed);
            w.WriteNumber("unchanged", Scored - Changed);
            foreach (var (name, counts) in new[] { ("original", Original), ("shadow_decisions", Shadowed) })
            {
                w.WriteStartObject(name);
                for (int d = 0; d < 3; d++) w.WriteNumber(Name((FraudDecision)d), counts[d]);
                w.WriteEndObject();
            }
            w.WriteStartArray("changes");
            foreach (var t in Transitions)
            {
                if (t.From == t.To || t.Count == 0) continue;
                w.WriteStartObject();
                w.WriteString("from", Name(t.From));
                w.WriteString("to", Name(t.To));
                w.WriteNumber("count", t.Count);
                w.WriteStartArray("amounts");
                foreach (var (currency, amount) in t.Amounts)
                {
                    w.WriteStartObject();
                    w.WriteString("currency", currency);
                    w.WriteNumber("amount", amount);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteStartArray("examples");
                foreach (long id in t.Examples) w.WriteNumberValue(id);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("note", Caveat);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }
}

/// <summary>
/// <c>rampay fraud shadow</c>: replays a data directory's journal through the ledger exactly as <c>rampay replay</c>
/// does (the original run's models and settings, from the journal's first record, no snapshot), and taps every
/// payment the writer scores (<see cref="IFraudScoreObserver"/>): the facts and features the original run computed,
/// in its order, and its verdict. Each is decided again with another model and/or rules, and the differences are
/// counted. Nothing is written: the journal and model files are opened for reading only.
/// </summary>
public static class FraudShadow
{
    public const int DefaultExamples = 5;

    public static ShadowReport Run(string dataDirectory, ShadowOverrides overrides, int examples = DefaultExamples,
        int idempotencyKeys = EngineOptions.ServerIdempotencyMaxKeys)
    {
        if (overrides.Model is { FitsFeatureSchema: false } m)
            throw new ArgumentException($"the shadow model reads feature schema '{m.SchemaId}' ({m.FeatureCount} features), not {Features.SchemaId}");
        var report = new ShadowReport { DataDirectory = dataDirectory, Shadow = overrides.Describe() };
        var tap = new Tap(overrides);
        var catalog = new TappedCatalog(FraudModelStore.Load(dataDirectory), tap);
        var ledger = new Ledger(new LedgerOptions { FraudModels = catalog, IdempotencyMaxKeys = idempotencyKeys });
        var visitor = new Visitor(ledger, tap, report, examples);
        var summary = JournalReader.Read(new DataFolder(dataDirectory).Journal, 0, visitor);
        if (summary.TornTail is not null) throw new InvalidDataException($"the journal ends in a torn record ({summary.TornTail}); start the engine once to cut it, or verify it with 'rampay verify'");
        ledger.VerifyInvariants();
        report.RecordsReplayed = visitor.Replayed;
        report.LastSequence = visitor.LastSequence;
        return report;
    }

    /// <summary>The data directory's models, and the tap every ledger built with it reports to.</summary>
    private sealed class TappedCatalog(FraudModelCatalog inner, IFraudScoreObserver observer) : IFraudModelCatalog
    {
        public FraudModel? Find(ReadOnlySpan<byte> sha256) => inner.Find(sha256);
        public IFraudScoreObserver? Observer => observer;
    }

    /// <summary>Decides each scored payment again, as <see cref="FraudState.Score"/> does, with the shadow's model and settings.</summary>
    private sealed class Tap(ShadowOverrides overrides) : IFraudScoreObserver
    {
        public bool Fired;
        public FraudVerdict Original;
        public FraudDecision Shadow;
        public long Amount;
        public FraudModel? Model;
        private FraudSettings? _inForce, _shadowSettings;

        public void OnScored(in PaymentFacts payment, ReadOnlySpan<double> features, FraudSettings settings, FraudModel model, in FraudVerdict verdict)
        {
            Invariant.Check(!Fired, "two payments scored by one command");
            Fired = true;
            Original = verdict;
            Amount = payment.Amount;
            Model = model;
            var shadowModel = overrides.Model ?? model;
            if (!ReferenceEquals(settings, _inForce))
            {
                // The settings in force change only at a ConfigureFraud record: derive the shadow's once per change.
                var derived = overrides.Apply(settings);
                if (derived.Problem() is { } problem)
                    throw new ArgumentException($"the shadow rules with the settings in force from time {payment.NowMs} ({settings}): {problem}");
                (_inForce, _shadowSettings) = (settings, derived);
            }
            var shadowSettings = _shadowSettings!;
            float score = (float)shadowModel.Score(features);
            // The same model gives the same score, bit for bit: the tap sees exactly what the writer saw.
            if (ReferenceEquals(shadowModel, model)) Invariant.Check(score == verdict.Score, $"payment scored {verdict.Score:R} in the original run, {score:R} again");
            var reasons = FraudRules.Evaluate(shadowSettings, payment, features);
            if (score >= shadowSettings.DeclineThresholdPpm / 1_000_000.0) reasons |= FraudReasons.ModelDecline;
            else if (score >= shadowSettings.ReviewThresholdPpm / 1_000_000.0) reasons |= FraudReasons.ModelReview;
            Shadow = FraudRules.Decide(reasons);
        }
    }

    private sealed class Visitor(Ledger ledger, Tap tap, ShadowReport report, int examples) : IRecordVisitor
    {
        public long Replayed { get; private set; }
        public long LastSequence { get; private set; }

        public void OnRecord(in RecordHeader header, ReadOnlySpan<byte> payload)
        {
            if (header.Type != RecordTypes.Command || payload.Length < CommandCodec.Size || !CommandCodec.TryRead(payload[..CommandCodec.Size], out var command))
                throw new JournalCorruptException(new JournalProblem(JournalProblemKind.BadPayload, "", 0, header.Sequence, "not a command record this RamPay knows"));
            tap.Fired = false;
            ledger.Apply(command, payload[CommandCodec.Size..], default, out var result);
            Replayed++;
            LastSequence = header.Sequence;
            if (!tap.Fired) return;
            // Rules version 4: the stage scores every attempt, also one the ledger then refuses (for funds, say) or answers
            // from a retried key; only attempts that became payments are compared (the others moved nothing in either history).
            if (ledger.RulesVersion >= Ledger.FraudStageRulesVersion
                && (result.Replayed || !(result.IsOk || result.Code == ResultCode.FraudSuspected) || result.Id != ledger.PaymentCount)) return;
            // A scored payment is always made (scoring runs after every check); declined, it answers fraud_suspected with its id.
            var payment = ledger.GetPayment(result.Id);
            Invariant.Check(payment.FraudScore == tap.Original.Score && payment.Amount == tap.Amount, $"payment {result.Id} is not the one scored at sequence {header.Sequence}");
            if (!report.OriginalModels.Contains(tap.Model!.Version)) report.OriginalModels.Add(tap.Model.Version);
            var from = tap.Original.Decision;
            var to = tap.Shadow;
            report.Scored++;
            report.Original[(int)from]++;
            report.Shadowed[(int)to]++;
            var cell = report[from, to];
            cell.Count++;
            string currency = payment.Currency.ToString();
            cell.Amounts[currency] = checked(cell.Amounts.GetValueOrDefault(currency) + payment.Amount);
            if (from != to)
            {
                report.Changed++;
                if (cell.Examples.Count < examples) cell.Examples.Add(result.Id);
            }
        }
    }
}
