using System.Globalization;

namespace RamPay.Fraud.Training;

/// <summary>
/// A scenario as CSV: a comment line with its options, a header, then one event per line
/// (<c>time_ms,kind,from,to,amount,pattern</c>; kind is open|deposit|payment, pattern none or a fraud pattern's name).
/// </summary>
public static class ScenarioCsv
{
    private const string Header = "time_ms,kind,from,to,amount,pattern";

    public static void Write(Scenario scenario, TextWriter w)
    {
        var o = scenario.Options;
        w.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"# rampay fraud scenario name={o.Name} seed={o.Seed} users={o.Users} days={o.Days} train_days={o.TrainDays} warmup_days={o.WarmupDays} start_ms={o.StartMs} accounts={scenario.Accounts}"));
        w.WriteLine(Header);
        foreach (var e in scenario.Events)
        {
            string kind = e.Kind switch { ScenarioEventKind.OpenAccount => "open", ScenarioEventKind.Deposit => "deposit", _ => "payment" };
            w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{e.TimeMs},{kind},{e.From},{e.To},{e.Amount},{Evaluation.PatternName(e.Pattern)}"));
        }
    }

    public static Scenario Read(TextReader r)
    {
        string first = r.ReadLine() ?? throw new InvalidDataException("empty scenario file");
        if (!first.StartsWith("# rampay fraud scenario ", StringComparison.Ordinal)) throw new InvalidDataException("not a rampay fraud scenario (first line)");
        var fields = first["# rampay fraud scenario ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
        long L(string key) => long.Parse(fields[key], CultureInfo.InvariantCulture);
        var options = new ScenarioOptions
        {
            Name = fields.GetValueOrDefault("name", "file"), Seed = ulong.Parse(fields["seed"], CultureInfo.InvariantCulture),
            Users = (int)L("users"), Days = (int)L("days"), TrainDays = (int)L("train_days"), WarmupDays = (int)L("warmup_days"), StartMs = L("start_ms"),
        };
        int accounts = (int)L("accounts");
        if (r.ReadLine() != Header) throw new InvalidDataException("scenario header missing");
        var patterns = Enum.GetValues<FraudPattern>().ToDictionary(Evaluation.PatternName);
        var events = new List<ScenarioEvent>();
        int line = 2;
        for (string? s; (s = r.ReadLine()) is not null;)
        {
            line++;
            var c = s.Split(',');
            if (c.Length != 6) throw new InvalidDataException($"line {line}: six fields expected");
            var kind = c[1] switch
            {
                "open" => ScenarioEventKind.OpenAccount,
                "deposit" => ScenarioEventKind.Deposit,
                "payment" => ScenarioEventKind.Payment,
                _ => throw new InvalidDataException($"line {line}: unknown kind '{c[1]}'"),
            };
            if (!patterns.TryGetValue(c[5], out var pattern)) throw new InvalidDataException($"line {line}: unknown pattern '{c[5]}'");
            events.Add(new ScenarioEvent(long.Parse(c[0], CultureInfo.InvariantCulture), kind, int.Parse(c[2], CultureInfo.InvariantCulture),
                int.Parse(c[3], CultureInfo.InvariantCulture), long.Parse(c[4], CultureInfo.InvariantCulture), pattern));
        }
        return new Scenario(options, events, accounts);
    }
}
