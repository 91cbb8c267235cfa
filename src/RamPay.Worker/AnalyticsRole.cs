using RamPay.Analytics;
using RamPay.Events;

namespace RamPay.Worker;

/// <summary>
/// The worker's <c>analytics</c> role (docs/analytics.md): the same rollups as in the server, with the per-partition
/// positions in <c>--out DIR/analytics.rollups</c> (a snapshot and its log: <see cref="AnalyticsStore"/>). The events
/// applied are saved (appended to the log, fsynced) at <see cref="IFlushingConsumer.Flush"/>, which
/// <see cref="KafkaEventSource"/> calls before it commits the offsets of the batches applied since (at most every
/// <see cref="WorkerOptions.FlushEveryMs"/> while events keep coming, at once when they stop), not after every batch.
/// A crash between two saves re-reads what the files do not hold (their positions say where each partition's events
/// stand, and an event at or before them is skipped). <c>--user-retention minute=2h,hour=8d,day=forever</c>
/// (<see cref="AnalyticsRetention"/>) says how long each user's buckets are kept.
/// </summary>
public static class AnalyticsRole
{
    public static IEventConsumer Create(Func<string, string?> flag) =>
        new Worker(new AnalyticsStore(Path.Combine(flag("--out") ?? throw new ArgumentException("the analytics consumer needs --out DIR"), "analytics.rollups"),
            AnalyticsRetention.TryParse(flag("--user-retention"), out var retention, out string error) ? retention : throw new ArgumentException($"--user-retention {error}"))
        {
            SaveEveryMs = int.MaxValue, // saved by Flush only
        });

    public sealed class Worker(AnalyticsStore store) : IFlushingConsumer
    {
        public AnalyticsStore Store => store;
        public string Name => "analytics";
        /// <summary>Partitions side by side: each batch is parsed on its own thread; applying to the rollups takes their lock.</summary>
        public bool ConcurrentPartitions => true;

        public ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken) =>
            ValueTask.FromResult(store.Rollups.PositionOf(EventBatch.LogSource));

        public ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken)
        {
            store.Apply(batch, saveNow: false);
            return ValueTask.CompletedTask;
        }

        /// <summary>The fields the source read while decoding: nothing parsed twice.</summary>
        public ValueTask HandleAsync(EventBatch batch, EventFields[] fields, CancellationToken cancellationToken)
        {
            store.Apply(batch, fields, null, saveNow: false);
            return ValueTask.CompletedTask;
        }

        public void Flush() => store.Save();
    }
}
