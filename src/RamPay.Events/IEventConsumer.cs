using System.Text.Json;

namespace RamPay.Events;

/// <summary>
/// One event as every channel carries it: the event log, the events API, webhooks and Kafka. <see cref="Json"/> is
/// exactly the payload <see cref="EventEncoder"/> wrote (the Kafka message value), nothing re-serialized; the other
/// fields repeat what it holds so that a consumer can route without parsing.
/// </summary>
/// <param name="Position">Its place in the stream; <c>Position.ToString()</c> is its <c>event_id</c>.</param>
/// <param name="Type">The event type's name (<c>PaymentCreated</c>...), as in the payload's <c>type</c>.</param>
/// <param name="Version">The type's schema version (the <c>.v1</c> of the Kafka header).</param>
/// <param name="OccurredAtMs">The journaled time of the command (unix ms), the payload's <c>occurred_at</c>.</param>
/// <param name="KeyAccount">The account the event is keyed by (the Kafka message key).</param>
/// <param name="Json">The compact UTF-8 JSON payload (docs/events.md, "Fields").</param>
public sealed record EventRecord(EventPosition Position, string Type, int Version, long OccurredAtMs, long KeyAccount, ReadOnlyMemory<byte> Json)
{
    /// <summary>The event id, <c>"{sequence}-{index}-{ordinal}"</c>: what consumers de-duplicate by.</summary>
    public string EventId => Position.ToString();

    /// <summary>The payload parsed (the caller disposes it).</summary>
    public JsonDocument Parse() => JsonDocument.Parse(Json);
}

/// <summary>
/// A batch handed to an <see cref="IEventConsumer"/>: events in stream order (increasing <see cref="EventRecord.Position"/>)
/// from one source.
/// </summary>
/// <param name="Events">
/// At least one event. In the server the events' <see cref="EventRecord.Json"/> are slices of a buffer the fan-out
/// reuses once every consumer has returned from the batch (<see cref="EventFanOut"/>): a consumer copies what it keeps
/// past its <see cref="IEventConsumer.HandleAsync"/> (webhooks copy each payload they queue; the others keep fields).
/// Several consumers read the same records at once; none may change them.
/// </param>
/// <param name="Source">
/// Where the batch comes from: <c>"log"</c> (the server's event log: one total order, every event once, batches
/// follow each other with no gap), or <c>"kafka:{topic}/{partition}"</c> (a worker: the events of one partition, in
/// that partition's order; other partitions' events interleave in other batches).
/// </param>
public sealed record EventBatch(IReadOnlyList<EventRecord> Events, string Source)
{
    /// <summary>The batch's last position: what a consumer fed from the event log stores as its checkpoint.</summary>
    public EventPosition Through => Events[^1].Position;

    /// <summary>True for a batch from the server's event log (the checkpoint is the consumer's to keep).</summary>
    public bool FromLog => Source == LogSource;

    public const string LogSource = "log";
}

/// <summary>
/// Something that acts on events (webhooks and notifications, rewards, analytics): docs/consumers.md. The same
/// consumer runs in the server, fed from the event log by a hosted service, or in <c>rampay-worker</c>, fed from a
/// Kafka consumer group. Delivery is at least once in both: after a crash a batch, or part of one, comes again, so
/// <see cref="HandleAsync"/> must be idempotent per event (de-duplicate by <see cref="EventRecord.EventId"/>, or make
/// the effect itself unique, as a reward naming its source payment is).
/// <para>
/// Calls are never concurrent for one consumer instance.
/// </para>
/// </summary>
public interface IEventConsumer
{
    /// <summary>Short, lower-case, unique: names the consumer in logs, metrics (<c>rampay_consumer_lag_events{consumer}</c>) and the worker's command line.</summary>
    string Name { get; }

    /// <summary>
    /// The position through which this consumer's effects are durable, read from the consumer's own store
    /// (<see cref="EventPosition.None"/> when it has processed nothing). The server's feeder calls it at start and after
    /// a failed <see cref="HandleAsync"/>, and resumes from the event after it. A worker does not call it (Kafka keeps
    /// the group's offsets).
    /// </summary>
    ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Acts on <paramref name="batch"/>. When it returns, the effects must be durable; for a batch from the event log
    /// (<see cref="EventBatch.FromLog"/>) the consumer also stores <see cref="EventBatch.Through"/> as its checkpoint
    /// in the same durable step as the effects (one transaction), so that a crash leaves both or neither. A worker
    /// commits the batch's Kafka offsets only after this returns. Throwing means nothing of the batch may be assumed
    /// done: the feeder retries from the checkpoint with backoff, the worker from the last committed offset.
    /// </summary>
    ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken);
}
