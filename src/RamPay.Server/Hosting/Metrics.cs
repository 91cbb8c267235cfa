using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using RamPay.Sinks;

namespace RamPay.Server.Hosting;

/// <summary>
/// The server's metrics as <see cref="System.Diagnostics.Metrics"/> instruments (meter <c>RamPay</c>), and their
/// Prometheus text rendering for <c>GET /metrics</c>: a <see cref="MeterListener"/> collects the observable instruments
/// at each scrape. Observable only: nothing is recorded on the hot path, every value is read when scraped.
/// </summary>
public sealed class Metrics : IDisposable
{
    public const string MeterName = "RamPay";

    private readonly Meter _meter = new(MeterName);
    private readonly MeterListener _listener = new();
    private readonly Lock _scrape = new();
    private readonly List<(Instrument Instrument, double Value, KeyValuePair<string, object?>[] Tags)> _measurements = [];

    public Metrics(EngineHost engine, Func<SinkHub?> sinks)
    {
        _meter.CreateObservableGauge("rampay_journal_sequence", () => engine.CompletedSequence,
            description: "The last journal sequence that is durable and applied.");
        _meter.CreateObservableGauge("rampay_ready", () => engine.State == EngineState.Ready ? 1 : 0,
            description: "1 when the server takes requests.");
        _meter.CreateObservableGauge("rampay_ingress_backpressure", () => engine.BackPressure?.Invoke() is null ? 0 : 1,
            description: "1 while ingress holds new commands back because a sink lags past its limit.");
        _meter.CreateObservableGauge("rampay_sink_checkpoint_sequence", () => PerSink(sinks, (r, _) => r.Checkpoint.Sequence),
            description: "The last journal sequence the sink has written.");
        _meter.CreateObservableGauge("rampay_sink_lag_records", () => PerSink(sinks, (r, h) => r.Lag(h.HeadSequence, h.HeadTimestampMs).Records),
            description: "Journal records durable but not yet written by the sink.");
        _meter.CreateObservableGauge("rampay_sink_lag_seconds", () => PerSink(sinks, (r, h) => Finite(r.Lag(h.HeadSequence, h.HeadTimestampMs).Seconds)),
            description: "Journaled time between the sink's checkpoint and the journal's head.");
        _meter.CreateObservableGauge("rampay_sink_connected", () => PerSink(sinks, (r, _) => r.Connected ? 1 : 0),
            description: "1 while the sink's last call succeeded.");
        _meter.CreateObservableGauge("rampay_sink_queued_batches", () => PerSink(sinks, (r, _) => r.QueuedBatches),
            description: "Batches of changes waiting for the sink.");
        _meter.CreateObservableCounter("rampay_sink_changes_written_total", () => PerSink(sinks, (r, _) => r.ChangesWritten),
            description: "Changes the sink has written since start.");
        _meter.CreateObservableCounter("rampay_sink_failures_total", () => PerSink(sinks, (r, _) => r.Failures),
            description: "Failed calls to the sink since start (each retried).");
        _meter.CreateObservableGauge("rampay_sinks_follower_sequence", () => sinks()?.FollowerSequence ?? 0,
            description: "The last journal sequence the sinks' follower has turned into changes.");

        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter == _meter) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => _measurements.Add((i, v, tags.ToArray())));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => _measurements.Add((i, v, tags.ToArray())));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => _measurements.Add((i, v, tags.ToArray())));
        _listener.Start();
    }

    /// <summary>Prometheus has no "unknown": -1 stands for a lag in seconds not known yet (the sink has never written).</summary>
    private static double Finite(double seconds) => double.IsFinite(seconds) ? seconds : -1;

    private static IEnumerable<Measurement<double>> PerSink(Func<SinkHub?> sinks, Func<SinkRunner, SinkHub, double> value)
    {
        var hub = sinks();
        if (hub is null) yield break;
        foreach (var runner in hub.Sinks) yield return new Measurement<double>(value(runner, hub), new KeyValuePair<string, object?>("sink", runner.Name));
    }

    /// <summary>Every instrument's current value in the Prometheus text exposition format (version 0.0.4).</summary>
    public string Render()
    {
        lock (_scrape)
        {
            _measurements.Clear();
            _listener.RecordObservableInstruments();
            var text = new StringBuilder();
            foreach (var group in _measurements.GroupBy(m => m.Instrument))
            {
                var instrument = group.Key;
                string type = instrument.GetType().Name.StartsWith("ObservableCounter", StringComparison.Ordinal) ? "counter" : "gauge";
                text.Append("# HELP ").Append(instrument.Name).Append(' ').Append(instrument.Description).Append('\n');
                text.Append("# TYPE ").Append(instrument.Name).Append(' ').Append(type).Append('\n');
                foreach (var (_, value, tags) in group)
                {
                    text.Append(instrument.Name);
                    if (tags.Length > 0)
                    {
                        text.Append('{');
                        for (int i = 0; i < tags.Length; i++)
                        {
                            if (i > 0) text.Append(',');
                            text.Append(tags[i].Key).Append("=\"").Append(Escape(Convert.ToString(tags[i].Value, CultureInfo.InvariantCulture))).Append('"');
                        }
                        text.Append('}');
                    }
                    text.Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
                }
            }
            return text.ToString();
        }
    }

    private static string Escape(string? value) => (value ?? "").Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    public void Dispose()
    {
        _listener.Dispose();
        _meter.Dispose();
    }
}
