using RamPay.Events;
using RamPay.Server.Hosting;

namespace RamPay.Server.Events;

/// <summary>
/// The server's event log (segment files in <c>&lt;data&gt;/events</c>), opened once; null when
/// <c>RamPay:Events:Enabled</c> is false. The sinks' hub writes it (<see cref="EventLogSink"/>); the events API and the
/// consumers' feeder read it.
/// </summary>
public sealed class EventLogHolder : IDisposable
{
    public EventLogHolder(ServerOptions options, DataFolder data)
    {
        ConsumerBatchInterval = TimeSpan.FromMilliseconds(options.Events.ConsumerBatchIntervalMs);
        if (!options.Events.Enabled) return;
        Log = new EventLog(new EventLogOptions
        {
            Directory = data.Events,
            Retention = TimeSpan.FromDays(options.Events.RetentionDays),
            MaxBytes = options.Events.MaxBytes,
            FsyncInterval = TimeSpan.FromMilliseconds(options.Events.FsyncIntervalMs),
        });
    }

    public EventLog? Log { get; }

    /// <summary>RamPay:Events:ConsumerBatchIntervalMs (the consumers' feeders' <see cref="EventLogFeeder.BatchInterval"/>).</summary>
    public TimeSpan ConsumerBatchInterval { get; }

    /// <summary>The sink that feeds the log from the change feed, or none.</summary>
    public IEnumerable<RamPay.Sinks.IChangeSink> Sinks() => Log is { } log ? [new EventLogSink(log)] : [];

    public void Dispose() => Log?.Dispose();
}

public static class EventsComposition
{
    /// <summary>The event log, the events API's and the consumers' services.</summary>
    public static IServiceCollection AddRamPayEvents(this IServiceCollection services)
    {
        services.AddSingleton<EventLogHolder>();
        return services;
    }
}
