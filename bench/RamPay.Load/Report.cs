using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace RamPay.Load;

public sealed record LatencySummary(long Count, double MinMs, double MeanMs, double P50Ms, double P90Ms, double P99Ms, double P999Ms, double MaxMs)
{
    public static LatencySummary Of(LatencyHistogram h)
    {
        static double Ms(long ns) => Math.Round(ns / 1e6, 3);
        return new LatencySummary(h.Count, Ms(h.Count == 0 ? 0 : h.Min), Math.Round(h.Mean / 1e6, 3), Ms(h.ValueAtPercentile(50)), Ms(h.ValueAtPercentile(90)),
            Ms(h.ValueAtPercentile(99)), Ms(h.ValueAtPercentile(99.9)), Ms(h.Max));
    }
}

public sealed record SelfCheckSummary(bool Passed, int WalletsChecked, int SampleChecked, long DepositsTotal, long WalletsTotal, IReadOnlyList<string> Problems);

/// <summary>The run's figures, printed and (with --json) written as JSON.</summary>
public sealed record LoadSummary(
    string Mode, string RunId, int Connections, int Wallets, int Batch, int Pipeline, double RateTarget, int Seed, string Currency,
    double WarmupSeconds, double MeasuredSeconds,
    long PaymentsAcknowledged, long PaymentsRejected, long PaymentsUnknown, long Retries, long Replayed,
    long MeasuredPayments, long MeasuredRequests, double PaymentsPerSecond, double RequestsPerSecond,
    string LatencyOf, LatencySummary Latency, IReadOnlyDictionary<string, long> Outcomes, SelfCheckSummary? SelfCheck);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(LoadSummary))]
internal sealed partial class LoadJsonContext : JsonSerializerContext;

internal static class Report
{
    public static LoadSummary Summarize(LoadOptions o, IReadOnlyList<SenderStats> stats, RunControl run, long measuredEndTimestamp, SelfCheckSummary? check)
    {
        var latency = new LatencyHistogram();
        var outcomes = new Dictionary<string, long>();
        foreach (SenderStats s in stats)
        {
            latency.Add(s.Latency);
            s.AddOutcomesTo(outcomes);
        }
        double measuredSeconds = Math.Max(1e-9, Stopwatch.GetElapsedTime(run.MeasureStartTimestamp, measuredEndTimestamp).TotalSeconds);
        long measuredPayments = stats.Sum(s => s.MeasuredPayments), measuredRequests = stats.Sum(s => s.MeasuredRequests);
        // Throughput counts acknowledged payments sent in the measured phase: rejections are answers too, but a
        // server that refused everything fast must not look fast.
        long measuredAcked = stats.Sum(s => s.MeasuredAcknowledged);
        return new LoadSummary(
            o.Mode.ToString().ToLowerInvariant(), o.RunId, o.Connections, o.Wallets, o.PaymentsPerRequest, o.RequestsInFlightPerConnection, o.Rate, o.Seed, o.Currency,
            o.WarmupSeconds, Math.Round(measuredSeconds, 3),
            stats.Sum(s => s.Acknowledged), stats.Sum(s => s.Rejected), stats.Sum(s => s.Unknown), stats.Sum(s => s.Retries), stats.Sum(s => s.Replayed),
            measuredPayments, measuredRequests, Math.Round(measuredAcked / measuredSeconds, 1), Math.Round(measuredRequests / measuredSeconds, 1),
            o.Mode == LoadMode.Tcp ? "frame (batch), send to results" : "request, send to response",
            LatencySummary.Of(latency), outcomes.OrderByDescending(kv => kv.Value).ToDictionary(), check);
    }

    public static void Print(LoadSummary s, TextWriter w)
    {
        string unit = s.Mode == "tcp" ? "frames" : "requests";
        w.WriteLine();
        w.WriteLine($"summary ({s.Mode}, run {s.RunId})");
        w.WriteLine(F($"  measured           {s.MeasuredSeconds:0.00} s after {s.WarmupSeconds:0.#} s warm-up"));
        w.WriteLine(F($"  throughput         {s.PaymentsPerSecond:N0} acknowledged payments/s, {s.RequestsPerSecond:N0} {unit}/s"));
        w.WriteLine(F($"  payments           {s.PaymentsAcknowledged:N0} acknowledged, {s.PaymentsRejected:N0} rejected, {s.PaymentsUnknown:N0} unknown ({s.Retries:N0} retries, {s.Replayed:N0} replayed)"));
        LatencySummary l = s.Latency;
        w.WriteLine(F($"  latency per {(s.Mode == "tcp" ? "frame  " : "request")}  p50 {l.P50Ms:0.000} ms  p90 {l.P90Ms:0.000} ms  p99 {l.P99Ms:0.000} ms  p99.9 {l.P999Ms:0.000} ms  max {l.MaxMs:0.000} ms  (mean {l.MeanMs:0.000} ms, n={l.Count:N0})"));
        w.WriteLine("  outcomes           " + string.Join(", ", s.Outcomes.Select(kv => F($"{kv.Key} {kv.Value:N0}"))));
        if (s.SelfCheck is { } c)
        {
            w.WriteLine(F($"self-check: {c.WalletsChecked} wallet balances against the tool's records, sum {c.WalletsTotal:N0} against deposits {c.DepositsTotal:N0}, {c.SampleChecked:N0} sampled payments fetched"));
            foreach (string problem in c.Problems) w.WriteLine("  FAIL: " + problem);
            w.WriteLine(c.Passed ? "PASS" : "FAIL");
        }
    }

    public static void WriteJson(LoadSummary s, string path) =>
        File.WriteAllText(path, JsonSerializer.Serialize(s, LoadJsonContext.Default.LoadSummary));

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// Prints one line a second while the run goes on. It only reads the senders' counters (no locks, nothing on their
/// path), on its own timer, so it costs the run one short wake-up a second.
/// </summary>
internal sealed class ProgressLine(IReadOnlyList<SenderStats> stats, RunControl run, TextWriter output)
{
    public async Task RunAsync(CancellationToken stop)
    {
        long lastAcked = 0;
        long lastTimestamp = run.StartTimestamp;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                long now = Stopwatch.GetTimestamp();
                long acked = 0, rejected = 0, inFlight = 0, retries = 0;
                foreach (SenderStats s in stats)
                {
                    acked += s.Acknowledged;
                    rejected += s.Rejected;
                    inFlight += s.InFlight;
                    retries += s.Retries;
                }
                double seconds = Stopwatch.GetElapsedTime(lastTimestamp, now).TotalSeconds;
                string phase = run.IsMeasured(now) ? "run" : "warm-up";
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"[{Stopwatch.GetElapsedTime(run.StartTimestamp, now).TotalSeconds,5:0.0}s {phase,-7}] {(acked - lastAcked) / seconds,10:N0} payments/s   acknowledged {acked,12:N0}   rejected {rejected:N0}   in flight {inFlight:N0}   retries {retries:N0}"));
                lastAcked = acked;
                lastTimestamp = now;
            }
        }
        catch (OperationCanceledException)
        {
            // The run is over.
        }
    }
}
