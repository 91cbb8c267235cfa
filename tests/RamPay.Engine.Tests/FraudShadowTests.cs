using System.Security.Cryptography;
using System.Text.Json;
using RamPay.Cli;
using RamPay.Core;
using RamPay.Fraud;
using Xunit.Abstractions;

namespace RamPay.Engine.Tests;

/// <summary>
/// <c>rampay fraud shadow</c> on a journal written by the real engine: the decisions another model and other rules
/// would have taken, counted exactly as the test computes them from the payments and the rules, and the data
/// directory left byte for byte as it was.
/// </summary>
public sealed class FraudShadowTests(ITestOutputHelper log) : IDisposable
{
    private readonly TempDataDir _dir = new();
    private readonly string _models = Directory.CreateTempSubdirectory("rampay-shadow-models-").FullName;

    public void Dispose()
    {
        _dir.Dispose();
        try { Directory.Delete(_models, recursive: true); } catch (IOException) { }
    }

    /// <summary>Logit 4 · (amount_log2 − center): a model that looks at the amount only.</summary>
    private static FraudModel AmountModel(string version, double center)
    {
        var mean = new double[Features.Count];
        var scale = Enumerable.Repeat(1.0, Features.Count).ToArray();
        var weights = new double[Features.Count];
        mean[Features.AmountLog2] = center;
        weights[Features.AmountLog2] = 4;
        return FraudModel.CreateLogistic(version, Features.SchemaId, 0, mean, scale, weights);
    }

    // With thresholds 0.5 / 0.9, center 10 holds from 1,023 and declines from 1,770 (minor units); center 11 holds from
    // 2,047 and declines from 2,996. The amounts paid are far from every boundary, so no rounding decides a case.
    private static readonly long[] Amounts = [100, 1_200, 2_500, 5_000];
    private const long Blocked = 3;

    /// <summary>The real engine writes a journal: accounts, deposits, scored transfers and authorizations, retries, refusals.</summary>
    private void WriteJournal()
    {
        var k = new Commands();
        var options = new EngineOptions
        {
            DataDirectory = _dir.Path, Clock = new SteppingClock(stepMs: 1_000).Now, SnapshotEveryCommands = 100, SnapshotOnStop = true, TickIntervalMs = 0,
            Fraud = new FraudConfiguration { Model = AmountModel("amount-10", 10), Settings = new FraudSettings { Enabled = true, ReviewThresholdPpm = 500_000, DeclineThresholdPpm = 900_000 } },
            Ledger = new LedgerOptions { MaxAccounts = 64, MaxPayments = 1 << 16, InitialPaymentCapacity = 0, MaxOpenHolds = 1 << 12, IdempotencyMaxKeys = 1 << 14 },
        };
        var rng = new Random(5);
        using var engine = RamPayEngine.Start(options);
        engine.Submit(k.Open(AccountFlags.Funding));
        for (int i = 0; i < 8; i++) engine.Submit(k.Open(AccountFlags.DebitsMustNotExceedCredits));
        // Wallet 9 gets little, so that some of its payments are refused for funds (and never scored).
        for (int i = 0; i < 8; i++) engine.Submit(k.Move(CommandType.Deposit, 1, 2 + i, i == 7 ? 6_000 : 1_000_000));
        Command? last = null;
        for (int i = 0; i < 300; i++)
        {
            long from = 2 + rng.Next(8), to = 2 + (from - 2 + 1 + rng.Next(7)) % 8;
            var c = k.Move(rng.Next(5) == 0 ? CommandType.Authorize : CommandType.Transfer, from, to, Amounts[rng.Next(Amounts.Length)]);
            engine.Submit(c);
            if (last is { } retry && rng.Next(10) == 0) engine.Submit(retry); // the same key again: answered, not scored twice
            last = c;
        }
        engine.Stop();
    }

    private static Dictionary<string, string> Files(string dir) =>
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(dir, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    private static (int Exit, string Output) Run(params string[] args)
    {
        var output = new StringWriter();
        int exit = RampayCli.Build(output).Parse(args).Invoke();
        return (exit, output.ToString());
    }

    private static string Name(FraudDecision d) => ShadowReport.Name(d);

    [Fact]
    public void Shadow_counts_the_decisions_another_model_and_rules_would_take_and_changes_nothing()
    {
        WriteJournal();
        string modelFile = Path.Combine(_models, "amount-11.rpfm");
        AmountModel("amount-11", 11).Save(modelFile);
        var before = Files(_dir.Path);
        Assert.Contains(before.Keys, f => f.StartsWith("journal", StringComparison.Ordinal));
        Assert.Contains(before.Keys, f => f.StartsWith("snapshots", StringComparison.Ordinal));

        // What the original run decided, from the ledger it left (no reviews, nothing expired in these 330 seconds), and
        // what the shadow must decide, from the amounts and the blocked account alone.
        var (ledger, _, _, _) = EngineRecovery.Load(_dir.Snapshots, _dir.Journal, new LedgerOptions { FraudModels = FraudModelStore.Load(_dir.Path) }, useSnapshot: true, []);
        var expected = new Dictionary<(string From, string To), (long Count, long Amount, List<long> Ids)>();
        long scored = 0;
        var originalCounts = new Dictionary<string, long>();
        for (long id = 1; id <= ledger.PaymentCount; id++)
        {
            if (ledger.GetFraudScore(id) is null) continue;
            var p = ledger.GetPayment(id);
            scored++;
            string original = p.Status switch
            {
                PaymentStatus.Posted or PaymentStatus.Authorized => "passed",
                PaymentStatus.HeldForReview => "held",
                PaymentStatus.Declined => "declined",
                var s => throw new InvalidOperationException($"payment {id} is {s}"),
            };
            string shadow = p.FromAccount == Blocked || p.ToAccount == Blocked ? "declined"
                : p.Amount >= 5_000 ? "declined" : p.Amount >= 2_500 ? "held" : "passed";
            originalCounts[original] = originalCounts.GetValueOrDefault(original) + 1;
            var cell = expected.GetValueOrDefault((original, shadow), (0, 0, new List<long>()));
            cell.Ids.Add(id);
            expected[(original, shadow)] = (cell.Count + 1, cell.Amount + p.Amount, cell.Ids);
        }
        Assert.True(scored > 250, $"{scored} payments scored");
        // The workload makes every kind of change the test means to see.
        foreach (var pair in new[] { ("held", "passed"), ("declined", "held"), ("passed", "declined"), ("held", "declined") })
            Assert.True(expected.ContainsKey(pair), $"no {pair} in the workload");

        var (exit, json) = Run("fraud", "shadow", "--data", _dir.Path, "--model", modelFile, "--blocked-accounts", Blocked.ToString(System.Globalization.CultureInfo.InvariantCulture), "--json", "--examples", "3");
        Assert.True(exit == 0, json);
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        Assert.Equal(scored, root.GetProperty("scored").GetInt64());
        Assert.Equal(["amount-10"], root.GetProperty("original_models").EnumerateArray().Select(e => e.GetString()));
        foreach (var (decision, count) in originalCounts) Assert.Equal(count, root.GetProperty("original").GetProperty(decision).GetInt64());
        var changes = root.GetProperty("changes").EnumerateArray().ToList();
        var changed = expected.Where(kv => kv.Key.From != kv.Key.To).ToList();
        Assert.Equal(changed.Count, changes.Count);
        Assert.Equal(changed.Sum(kv => kv.Value.Count), root.GetProperty("changed").GetInt64());
        foreach (var ((from, to), (count, amount, ids)) in changed)
        {
            var c = changes.Single(e => e.GetProperty("from").GetString() == from && e.GetProperty("to").GetString() == to);
            Assert.Equal(count, c.GetProperty("count").GetInt64());
            var amounts = c.GetProperty("amounts").EnumerateArray().ToList();
            Assert.Single(amounts);
            Assert.Equal("USD", amounts[0].GetProperty("currency").GetString());
            Assert.Equal(amount, amounts[0].GetProperty("amount").GetInt64());
            Assert.Equal(ids.Take(3), c.GetProperty("examples").EnumerateArray().Select(e => e.GetInt64()));
        }
        Assert.Contains("not carried", root.GetProperty("note").GetString());

        // The text report says the same, and says what it does not carry forward.
        (exit, string text) = Run("fraud", "shadow", "--data", _dir.Path, "--model", modelFile, "--blocked-accounts", "3");
        Assert.Equal(0, exit);
        log.WriteLine(text);
        var held2passed = expected[("held", "passed")];
        Assert.Contains($"held -> passed", text);
        Assert.Matches($@"held -> passed\s+{held2passed.Count}\s+USD {held2passed.Amount}\s+{string.Join(", ", held2passed.Ids.Take(5))}", text);
        Assert.Contains("A changed decision is not carried forward", text);

        // Nothing in the data directory changed, nothing was added.
        Assert.Equal(before, Files(_dir.Path));
    }

    [Fact]
    public void Shadow_with_the_settings_in_force_changes_nothing_and_bad_input_is_a_usage_error()
    {
        WriteJournal();
        var (exit, json) = Run("fraud", "shadow", "--data", _dir.Path, "--json");
        Assert.True(exit == 0, json);
        using (var doc = JsonDocument.Parse(json))
        {
            Assert.True(doc.RootElement.GetProperty("scored").GetInt64() > 250);
            Assert.Equal(0, doc.RootElement.GetProperty("changed").GetInt64());
            Assert.Empty(doc.RootElement.GetProperty("changes").EnumerateArray());
        }
        // Thresholds alone: everything the original model held or declined is now passed (threshold above 1 = never).
        (exit, json) = Run("fraud", "shadow", "--data", _dir.Path, "--json", "--review-threshold", "2", "--decline-threshold", "2");
        Assert.Equal(0, exit);
        using (var doc = JsonDocument.Parse(json))
        {
            var r = doc.RootElement;
            Assert.Equal(r.GetProperty("scored").GetInt64(), r.GetProperty("shadow_decisions").GetProperty("passed").GetInt64());
            Assert.Equal(r.GetProperty("original").GetProperty("held").GetInt64() + r.GetProperty("original").GetProperty("declined").GetInt64(), r.GetProperty("changed").GetInt64());
        }

        string otherSchema = Path.Combine(_models, "other.rpfm");
        FraudModel.CreateLogistic("other", "some.other/1", 0, [0, 0], [1, 1], [1, 1]).Save(otherSchema);
        (exit, string output) = Run("fraud", "shadow", "--data", _dir.Path, "--model", otherSchema);
        Assert.Equal(1, exit);
        Assert.Contains("feature schema", output);
        (exit, output) = Run("fraud", "shadow", "--data", _dir.Path, "--review-threshold", "0.9", "--decline-threshold", "0.5");
        Assert.Equal(1, exit);
        Assert.Contains("decline threshold", output);
        (exit, output) = Run("fraud", "shadow", "--data", _dir.Path, "--blocked-accounts", "3,x");
        Assert.Equal(1, exit);
        Assert.Contains("not an account id", output);
        (exit, output) = Run("fraud", "shadow", "--data", Path.Combine(_dir.Path, "nothing-here"));
        Assert.Equal(1, exit);
        Assert.Contains("no journal", output);
    }
}
