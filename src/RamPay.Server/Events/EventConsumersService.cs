using System.Diagnostics.Metrics;
using RamPay.Events;
using RamPay.Server.Hosting;

namespace RamPay.Server.Events;

/// <summary>
/// Feeds every <see cref="IEventConsumer"/> registered in DI from the event log (docs/consumers.md), each on its own
/// task, from after the sinks start until the host stops (stopped before the engine: consumers are behind it anyway).
/// Reports each consumer's lag as <c>rampay_consumer_lag_events{consumer}</c>.
/// </summary>
public sealed class EventConsumersService(EventLogHolder holder, IEnumerable<IEventConsumer> consumers, ILogger<EventConsumersService> logger) : LifecycleService
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(EventLogFeeder Feeder, Task Task)> _running = [];
    private ObservableGauge<long>? _lag;

    public IReadOnlyList<EventLogFeeder> Feeders => [.. _running.Select(r => r.Feeder)];

    public override Task StartedAsync(CancellationToken cancellationToken)
    {
        var list = consumers.ToList();
        if (list.Count == 0) return Task.CompletedTask;
        if (holder.Log is not { } log)
        {
            logger.LogWarning("event consumers {Consumers} are registered but RamPay:Events:Enabled is false: they get no events", string.Join(", ", list.Select(c => c.Name)));
            return Task.CompletedTask;
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var consumer in list)
        {
            if (!names.Add(consumer.Name)) throw new InvalidOperationException($"two event consumers are named '{consumer.Name}'");
            var feeder = new EventLogFeeder(log, consumer, (message, error) => logger.LogWarning(error, "{ConsumerEvent}", message))
            {
                BatchInterval = holder.ConsumerBatchInterval,
            };
            _running.Add((feeder, Task.Run(() => feeder.RunAsync(_stop.Token))));
        }
        _lag = EventsTelemetry.Meter.CreateObservableGauge("rampay_consumer_lag_events", () =>
            _running.Select(r => new Measurement<long>(Math.Max(0, r.Feeder.Lag()), new KeyValuePair<string, object?>("consumer", r.Feeder.Consumer.Name))),
            description: "Events in the event log that an in-server consumer has not yet made durable.");
        logger.LogInformation("event consumers: {Consumers}", string.Join(", ", names));
        return Task.CompletedTask;
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _stop.Cancel();
        foreach (var (_, task) in _running)
        {
            try { await task.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken); }
            catch (TimeoutException) { logger.LogWarning("an event consumer did not stop within 10 s"); }
        }
    }
}
