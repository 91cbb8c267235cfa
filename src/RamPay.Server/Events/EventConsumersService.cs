using System.Diagnostics.Metrics;
using RamPay.Events;
using RamPay.Server.Hosting;

namespace RamPay.Server.Events;

/// <summary>
/// Feeds every <see cref="IEventConsumer"/> registered in DI from the event log (docs/consumers.md) through one
/// <see cref="EventFanOut"/>: one read of each batch for all of them, each consumer called on a task of its own, from
/// after the sinks start until the host stops (stopped before the engine: consumers are behind it anyway). Reports each
/// consumer's lag as <c>rampay_consumer_lag_events{consumer}</c>.
/// </summary>
public sealed class EventConsumersService(EventLogHolder holder, IEnumerable<IEventConsumer> consumers, ILogger<EventConsumersService> logger) : LifecycleService
{
    private readonly CancellationTokenSource _stop = new();
    private Task? _running;
    private ObservableGauge<long>? _lag;

    /// <summary>The fan-out (null when no consumer runs).</summary>
    public EventFanOut? FanOut { get; private set; }

    public override Task StartedAsync(CancellationToken cancellationToken)
    {
        var list = consumers.ToList();
        if (list.Count == 0) return Task.CompletedTask;
        if (holder.Log is not { } log)
        {
            logger.LogWarning("event consumers {Consumers} are registered but RamPay:Events:Enabled is false: they get no events", string.Join(", ", list.Select(c => c.Name)));
            return Task.CompletedTask;
        }
        var fanOut = new EventFanOut(log, list, (message, error) => logger.LogWarning(error, "{ConsumerEvent}", message))
        {
            BatchInterval = holder.ConsumerBatchInterval,
        };
        FanOut = fanOut;
        _running = Task.Run(() => fanOut.RunAsync(_stop.Token));
        _lag = EventsTelemetry.Meter.CreateObservableGauge("rampay_consumer_lag_events", () =>
            fanOut.Lanes.Select(l => new Measurement<long>(Math.Max(0, l.Lag()), new KeyValuePair<string, object?>("consumer", l.Consumer.Name))),
            description: "Events in the event log that an in-server consumer has not yet made durable.");
        logger.LogInformation("event consumers: {Consumers}", string.Join(", ", list.Select(c => c.Name)));
        return Task.CompletedTask;
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _stop.Cancel();
        if (_running is not { } running) return;
        try { await running.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken); }
        catch (TimeoutException) { logger.LogWarning("the event consumers did not stop within 10 s"); }
    }
}
