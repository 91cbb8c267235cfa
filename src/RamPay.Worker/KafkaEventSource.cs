using Confluent.Kafka;
using RamPay.Analytics;
using RamPay.Events;
using RamPay.Kafka;

namespace RamPay.Worker;

/// <summary>The worker's settings (command line: <c>rampay-worker NAME --kafka HOST:PORT --group G</c>).</summary>
public sealed record WorkerOptions
{
    public required string Consumer { get; init; }
    public required string BootstrapServers { get; init; }
    public required string Group { get; init; }
    public string Topic { get; init; } = "rampay.events";
    /// <summary>
    /// Events gathered per round over all partitions (each partition's share is one batch handed to the consumer). An
    /// <see cref="IFlushingConsumer"/> names its own (<see cref="IFlushingConsumer.RoundEvents"/>).
    /// </summary>
    public int BatchEvents { get; init; } = 500;
    /// <summary>How long a round may wait to fill before it is handed on.</summary>
    public int BatchWaitMs { get; init; } = 20;
    /// <summary>
    /// For an <see cref="IFlushingConsumer"/>: how long handled batches may wait for its <see cref="IFlushingConsumer.Flush"/>
    /// (and the commit of their offsets, which follows it) while events keep coming, or <see cref="FlushSpacing"/> times
    /// the last flush's duration when that is longer. Other consumers' offsets are committed after every round. The
    /// committed lag of a busy worker saw-tooths up to this: at 250 ms the analytics worker's lag p99 at 100,000
    /// payments/s was 0.39–0.45 s against 0.59–0.64 s at 500 ms, for the same CPU per event (docs/benchmarks.md,
    /// "Analytics worker: reading the fields").
    /// </summary>
    public int FlushEveryMs { get; init; } = 250;

    /// <summary>
    /// A flush waits at least this many times the previous flush's duration, so that flushing takes at most about a tenth
    /// of the consuming thread however large the consumer's state grows (the analytics worker rewrites its whole rollups
    /// file at each flush).
    /// </summary>
    public const int FlushSpacing = 10;

    /// <summary>How long after a flush the next may come while events keep coming (<see cref="FlushEveryMs"/>, or <see cref="FlushSpacing"/> × the last flush's duration).</summary>
    public long FlushIntervalMs(long lastFlushMs) => Math.Max(FlushEveryMs, FlushSpacing * lastFlushMs);
    public int HttpPort { get; init; }
    public string HttpHost { get; init; } = "127.0.0.1";

    /// <summary>
    /// Other librdkafka consumer properties (security.protocol, sasl.*, ssl.* for a real cluster; a fetch setting to
    /// compare), applied after the worker's own: <c>--kafka-properties "k=v;k=v"</c> or <c>RAMPAY_KAFKA_CONSUMER_PROPERTIES</c>
    /// (for secrets). The source's guarantees rest on <see cref="ReservedProperties"/>: those are refused.
    /// </summary>
    public IReadOnlyDictionary<string, string> ConsumerProperties { get; init; } = new Dictionary<string, string>();

    /// <summary>Set by the worker from its flags, or what at-least-once and the offset-reset check depend on.</summary>
    public static readonly string[] ReservedProperties =
        ["bootstrap.servers", "group.id", "enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset", "enable.partition.eof"];

    /// <summary><c>key=value;key=value</c> (a value may hold '='; blank items are ignored); throws <see cref="ArgumentException"/> on a bad or reserved key.</summary>
    public static Dictionary<string, string> ParseProperties(string? text)
    {
        var properties = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string item in (text ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = item.IndexOf('=');
            string key = eq < 1 ? "" : item[..eq].TrimEnd(); // the item is trimmed: a key starts at its first character
            if (key.Length == 0 || !key.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_'))
                throw new ArgumentException($"Kafka consumer property '{item}' is not key=value with a librdkafka key (a-z, 0-9, '.', '_')");
            if (ReservedProperties.Contains(key))
                throw new ArgumentException($"Kafka consumer property '{key}' is set by the worker (reserved: {string.Join(", ", ReservedProperties)})");
            properties[key] = item[(eq + 1)..].Trim();
        }
        return properties;
    }
}

/// <summary>
/// A worker's consumer that tells <see cref="KafkaEventSource"/> two things more than <see cref="IEventConsumer"/>: its
/// partitions' batches may be handled side by side, and its effects are durable only once <see cref="Flush"/> returned, so
/// that the source commits offsets after a flush, at most every <see cref="WorkerOptions.FlushEveryMs"/>, rather than
/// after every batch (the analytics worker's rollups file is rewritten whole at each save).
/// </summary>
public interface IFlushingConsumer : IEventConsumer
{
    /// <summary>True when <see cref="IEventConsumer.HandleAsync"/> may run for several partitions at once.</summary>
    bool ConcurrentPartitions { get; }

    /// <summary>
    /// Events gathered per round over all partitions (in place of <see cref="WorkerOptions.BatchEvents"/>). Large for the
    /// rewards and analytics workers, because a round's fixed costs are per batch, not per event: a reward call's engine
    /// submission and journal fsync, a Kafka commit (docs/benchmarks.md, "Rewards and analytics workers: CPU per event").
    /// </summary>
    int RoundEvents => DefaultRoundEvents;

    /// <summary>The round size of a consumer that names none: 8,000 events (rewards and analytics).</summary>
    const int DefaultRoundEvents = 8_000;

    /// <summary>Makes every batch handled so far durable (a no-op for a consumer whose HandleAsync already did).</summary>
    void Flush();

    /// <summary>
    /// <see cref="IEventConsumer.HandleAsync"/> with each event's fields already read (<see cref="KafkaEventSource"/> reads
    /// them while it decodes the message, one pass over the JSON); a consumer that reads fields uses them rather than
    /// parsing again.
    /// </summary>
    ValueTask HandleAsync(EventBatch batch, EventFields[] fields, CancellationToken cancellationToken) => HandleAsync(batch, cancellationToken);

    /// <summary>The types whose payload fields the consumer reads (<see cref="EventFields.Bit"/>); of the others only the envelope is read.</summary>
    uint FieldTypes => EventFields.AllTypes;
}

/// <summary>
/// Feeds one <see cref="IEventConsumer"/> from a Kafka consumer group (docs/consumers.md): polls the topic, gathers
/// each partition's events into batches in that partition's order, hands each batch to the consumer, and commits the
/// batch's offsets only after <see cref="IEventConsumer.HandleAsync"/> returned (its effects durable). A failure
/// rewinds the partition to its last committed offset, so the batch comes again (at least once). Rebalances happen
/// inside <c>Consume</c>, between batches, so a revoked partition never has a batch in flight.
/// </summary>
public sealed class KafkaEventSource(WorkerOptions options, IEventConsumer consumer, ILogger<KafkaEventSource> logger) : BackgroundService
{
    private long _events;
    private long _failures;
    private long _offsetResets;
    private long _skippedEvents;
    private volatile bool _assigned;
    public long EventsHandled => Interlocked.Read(ref _events);
    public long Failures => Interlocked.Read(ref _failures);
    /// <summary>Times a partition's committed offset was no longer on the broker (fell out of its retention), so the worker had to jump.</summary>
    public long OffsetResets => Interlocked.Read(ref _offsetResets);
    /// <summary>Events this worker never read because of those jumps: the sum of (earliest offset kept − committed offset).</summary>
    public long SkippedEvents => Interlocked.Read(ref _skippedEvents);
    /// <summary>True once the group has assigned this worker partitions (or an empty set): /health/ready.</summary>
    public bool Joined => _assigned;

    protected override Task ExecuteAsync(CancellationToken stop) => Task.Factory.StartNew(() => Run(stop), stop, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();

    private async Task Run(CancellationToken stop)
    {
        KafkaNativeLibrary.EnsureLoaded();
        var config = new ConsumerConfig
        {
            BootstrapServers = options.BootstrapServers,
            GroupId = options.Group,
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            // Never jump silently: a committed offset the broker no longer keeps (retention) is an error that Consume
            // reports, handled in OnOffsetReset (an ERROR naming the skipped range, a metric, an alert); a partition the
            // group never committed starts at the beginning there too.
            AutoOffsetReset = AutoOffsetReset.Error,
            FetchWaitMaxMs = 50,
            // When the prefetched messages pass queued.min.messages (100,000 over all partitions for this consumer),
            // librdkafka stops fetching each partition for this long. Its default, 1,000 ms, left the worker idle about
            // half the time in a backlog: the queue drained in ~0.5 s and the fetcher was still backing off (every
            // partition's "Fetch backoff for 1000ms: Local: Queue full" every ~1.3 s). 10 ms refills the queue well
            // before it drains: a backlog read at ~95k events/s with the default, ~180k with this (docs/benchmarks.md,
            // "Analytics worker: the fetch queue's backoff").
            FetchQueueBackoffMs = 10,
            // A worker that stops answering (killed) loses its partitions to the others after this long.
            SessionTimeoutMs = 6000,
            HeartbeatIntervalMs = 1000,
            // The rebalance timeout: a member that died during a rebalance is dropped after this, not the default
            // 5 minutes. A batch's HandleAsync must finish well within it.
            MaxPollIntervalMs = 20_000,
            ClientId = $"rampay-worker-{options.Consumer}",
            // Only the timestamp of each message is read (the topic is ours, the headers repeat the JSON's type): the
            // client then builds no topic string and no Headers object per message.
            ConsumeResultFields = "timestamp",
        };
        foreach (var (key, value) in options.ConsumerProperties) config.Set(key, value);
        using var kafka = new ConsumerBuilder<Ignore, byte[]>(config)
            .SetKeyDeserializer(Deserializers.Ignore) // the key (the account) is in the JSON too: no byte[] per message for it
            .SetLogHandler((_, m) => { if (m.Level <= SyslogLevel.Warning) logger.LogWarning("librdkafka {Facility}: {Message}", m.Facility, m.Message); })
            .SetErrorHandler((_, e) => logger.LogWarning("kafka: {KafkaError}", e.Reason))
            .SetPartitionsAssignedHandler((k, parts) =>
            {
                _assigned = true;
                _startAt.Clear();
                logger.LogInformation("assigned {Partitions}", string.Join(",", parts.Select(p => p.Partition.Value)));
                return StartOffsets(k, parts);
            })
            .SetPartitionsRevokedHandler((k, parts) =>
            {
                logger.LogInformation("revoked {Partitions}", string.Join(",", parts.Select(p => p.Partition.Value)));
                // Handled but not yet committed (a flushing consumer's deferred commit): durable and committed now, while
                // this worker still owns the partitions; what the commit misses is read again by the next owner.
                try { FlushAndCommit(k, force: true); }
                catch (KafkaException e) { logger.LogInformation("commit at revocation refused ({Reason}); those events will be read again", e.Error.Reason); }
            })
            .Build();
        kafka.Subscribe(options.Topic);
        var pending = new Dictionary<int, PartitionBatch>();
        var handled = new List<PartitionBatch>();
        int roundEvents = consumer is IFlushingConsumer f ? f.RoundEvents : options.BatchEvents;
        // The payload fields are read only for a consumer that takes them (an IFlushingConsumer, for the types it names); for
        // the others (webhooks, notifications) the decode stops after the envelope.
        uint fieldTypes = consumer is IFlushingConsumer ff ? ff.FieldTypes : 0;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                // Gather up to BatchEvents or BatchWaitMs, whichever first.
                long deadline = Environment.TickCount64 + options.BatchWaitMs;
                int gathered = 0;
                while (gathered < roundEvents)
                {
                    ConsumeResult<Ignore, byte[]>? result;
                    try
                    {
                        result = kafka.Consume(TimeSpan.FromMilliseconds(Math.Max(1, deadline - Environment.TickCount64)));
                    }
                    catch (ConsumeException e) when (e.Error.Code == ErrorCode.Local_AutoOffsetReset)
                    {
                        OnOffsetReset(kafka, e.ConsumerRecord.TopicPartitionOffset, e.Error.Reason);
                        continue;
                    }
                    if (result is null || result.IsPartitionEOF) break;
                    int partition = result.Partition.Value;
                    if (!pending.TryGetValue(partition, out var batch)) pending[partition] = batch = new PartitionBatch(partition);
                    // One pass over the message's JSON: the envelope for the record and the fields the consumers read.
                    var record = Decode(result.Message.Value, result.Message.Timestamp.UnixTimestampMs, result.Offset.Value, out var fields, fieldTypes);
                    batch.Add(record, in fields, result.Offset.Value);
                    gathered++;
                    if (Environment.TickCount64 >= deadline) break;
                }
                handled.Clear();
                foreach (var batch in pending.Values)
                    if (batch.Events.Count > 0) handled.Add(batch);
                if (handled.Count == 0)
                {
                    FlushAndCommit(kafka, force: true); // idle: what is handled becomes durable and committed now
                    continue;
                }
                // Each partition's batch to the consumer, all at once when it may take them side by side (rewards: each is a
                // call into the server, which answers when the commands are durable; with 4 partitions, 4 calls in flight).
                var results = new Exception?[handled.Count];
                if (consumer is IFlushingConsumer { ConcurrentPartitions: true } && handled.Count > 1)
                {
                    var tasks = new Task[handled.Count];
                    for (int i = 0; i < handled.Count; i++) tasks[i] = Handle(handled[i], results, i, stop);
                    await Task.WhenAll(tasks).ConfigureAwait(false);
                }
                else
                {
                    for (int i = 0; i < handled.Count; i++) await Handle(handled[i], results, i, stop).ConfigureAwait(false);
                }
                if (stop.IsCancellationRequested) return;
                bool failed = false;
                for (int i = 0; i < handled.Count; i++)
                {
                    var batch = handled[i];
                    if (results[i] is { } e)
                    {
                        failed = true;
                        Interlocked.Increment(ref _failures);
                        logger.LogWarning(e, "consumer {Consumer} failed on {Count} events of partition {Partition}; re-reading from the batch's first offset", consumer.Name, batch.Events.Count, batch.Partition);
                        kafka.Seek(new TopicPartitionOffset(options.Topic, batch.Partition, batch.FirstOffset)); // back to the first offset of the batch: it is read again
                    }
                    else
                    {
                        // The committed offset is the next one to read; committed once the effects are durable.
                        _uncommitted[batch.Partition] = new TopicPartitionOffset(options.Topic, batch.Partition, batch.LastOffset + 1);
                        _uncommittedEvents += batch.Events.Count;
                    }
                    batch.Clear();
                }
                if (!FlushAndCommit(kafka, force: consumer is not IFlushingConsumer))
                {
                    foreach (var b in pending.Values) b.Clear();
                }
                if (failed) await Task.Delay(200, stop).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            kafka.Close(); // leaves the group at once: its partitions go to the others without waiting for the session timeout
        }
    }

    /// <summary>
    /// A partition's fetch offset was refused (auto.offset.reset=error): either the group has no committed offset for it
    /// (a new group, a new partition: the offset is logical, and the partition starts at its beginning as before), or
    /// the committed offset is no longer on the broker, whose retention dropped those messages while no worker read
    /// them. The second is data loss for this consumer (unrewarded payments, analytics totals short): it is logged as an
    /// ERROR with the offsets skipped, counted (rampay_worker_offset_resets_total, rampay_worker_skipped_events_total:
    /// the RampayConsumerSkippedEvents alert), and the partition continues at the earliest offset the broker keeps.
    /// docs/consumers.md, "When a committed offset is gone", says how an operator re-derives the range from the journal.
    /// </summary>
    private void OnOffsetReset(IConsumer<Ignore, byte[]> kafka, TopicPartitionOffset? failed, string reason)
    {
        if (failed is null) throw new KafkaException(new Error(ErrorCode.Local_AutoOffsetReset, reason));
        var partition = new TopicPartition(options.Topic, failed.Partition);
        long requested = failed.Offset.Value;
        Offset start;
        if (requested < 0)
        {
            logger.LogInformation("partition {Partition} of {Topic} has no committed offset for group {Group}: starting at its beginning", partition.Partition.Value, options.Topic, options.Group);
            start = Offset.Beginning;
        }
        else
        {
            var kept = kafka.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(30));
            long skipped = Math.Max(0, kept.Low.Value - requested);
            Interlocked.Increment(ref _offsetResets);
            Interlocked.Add(ref _skippedEvents, skipped);
            if (skipped > 0)
                logger.LogError("consumer {Consumer}, group {Group}: topic {Topic} partition {Partition}: the committed offset {Committed} is no longer on the broker " +
                    "(it keeps offsets {Low} to {High}); offsets {First} to {LastSkipped} ({Skipped} events) were NEVER READ by this consumer and are skipped. " +
                    "Re-derive them from the journal (docs/consumers.md, \"When a committed offset is gone\"). Broker: {Reason}",
                    consumer.Name, options.Group, options.Topic, partition.Partition.Value, requested, kept.Low.Value, kept.High.Value - 1, requested, kept.Low.Value - 1, skipped, reason);
            else
                logger.LogError("consumer {Consumer}, group {Group}: topic {Topic} partition {Partition}: the committed offset {Committed} is not on the broker " +
                    "(it keeps offsets {Low} to {High}: the topic was re-created or truncated?); continuing at {Low}. Broker: {Reason}",
                    consumer.Name, options.Group, options.Topic, partition.Partition.Value, requested, kept.Low.Value, kept.High.Value - 1, kept.Low.Value, reason);
            start = kept.Low;
        }
        // librdkafka stopped fetching the partition (a seek is refused in that state): assign the same partitions again,
        // this one at its new start, the others where this worker's reading stands (their next offset: nothing read twice or
        // missed; a partition not read from yet at the start chosen for it earlier, or its committed offset).
        _startAt[partition.Partition.Value] = start;
        var assignment = kafka.Assignment.Select(tp =>
        {
            if (tp.Partition == partition.Partition) return new TopicPartitionOffset(tp, start);
            var position = kafka.Position(tp);
            if (position.Value < 0 && _startAt.TryGetValue(tp.Partition.Value, out var earlier)) position = earlier;
            return new TopicPartitionOffset(tp, position);
        }).ToList();
        kafka.Assign(assignment);
    }

    /// <summary>
    /// Where each assigned partition starts: its committed offset, or its beginning when the group has none (a new group
    /// or partition: what <c>auto.offset.reset=earliest</c> did, now said explicitly, since the reset is an error). A
    /// committed offset the broker no longer keeps fails the first fetch (<see cref="OnOffsetReset"/>). If the committed
    /// offsets cannot be read, librdkafka reads them itself and a partition without one comes to OnOffsetReset too.
    /// </summary>
    private IEnumerable<TopicPartitionOffset> StartOffsets(IConsumer<Ignore, byte[]> kafka, List<TopicPartition> partitions)
    {
        if (partitions.Count == 0) return [];
        try
        {
            return kafka.Committed(partitions, TimeSpan.FromSeconds(30))
                .Select(c => new TopicPartitionOffset(c.TopicPartition, c.Offset.Value >= 0 ? c.Offset : Offset.Beginning)).ToList();
        }
        catch (KafkaException e)
        {
            logger.LogWarning("committed offsets of {Partitions} not read ({Reason}): librdkafka reads them", string.Join(",", partitions.Select(p => p.Partition.Value)), e.Error.Reason);
            return partitions.Select(p => new TopicPartitionOffset(p, Offset.Unset)).ToList();
        }
    }

    /// <summary>Where <see cref="OnOffsetReset"/> restarted each partition since the last assignment by the group.</summary>
    private readonly Dictionary<int, Offset> _startAt = [];

    private readonly Dictionary<int, TopicPartitionOffset> _uncommitted = [];
    private long _uncommittedEvents;
    private readonly System.Diagnostics.Stopwatch _sinceFlush = System.Diagnostics.Stopwatch.StartNew();
    private long _lastFlushMs;

    /// <summary>One partition's events of a round, with the fields read from each (handed on to an <see cref="IFlushingConsumer"/>, which need not parse again).</summary>
    private sealed class PartitionBatch(int partition)
    {
        public readonly int Partition = partition;
        public readonly List<EventRecord> Events = [];
        public readonly List<EventFields> Fields = [];
        public long FirstOffset, LastOffset;

        public void Add(EventRecord record, in EventFields fields, long offset)
        {
            if (Events.Count == 0) FirstOffset = offset;
            LastOffset = offset;
            Events.Add(record);
            Fields.Add(fields);
        }

        public void Clear()
        {
            Events.Clear();
            Fields.Clear();
        }
    }

    private async Task Handle(PartitionBatch batch, Exception?[] results, int slot, CancellationToken stop)
    {
        try
        {
            var events = new EventBatch([.. batch.Events], $"kafka:{options.Topic}/{batch.Partition}");
            if (consumer is IFlushingConsumer flushing) await flushing.HandleAsync(events, [.. batch.Fields], stop).ConfigureAwait(false);
            else await consumer.HandleAsync(events, stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            results[slot] = e;
        }
    }

    /// <summary>
    /// Makes the handled batches durable (an <see cref="IFlushingConsumer"/>'s flush, at most every
    /// <see cref="WorkerOptions.FlushIntervalMs"/> unless <paramref name="force"/>) and then commits their offsets in one call.
    /// False when the group refused the commit during a rebalance: the effects are durable and idempotent, every partition is
    /// revoked and re-assigned from its committed offset, so these events come again (it used to stop the worker: found by
    /// RewardsWorkerTests); the next Consume takes part in the rebalance.
    /// </summary>
    private bool FlushAndCommit(IConsumer<Ignore, byte[]> kafka, bool force)
    {
        if (_uncommitted.Count == 0) return true;
        if (!force && _sinceFlush.ElapsedMilliseconds < options.FlushIntervalMs(_lastFlushMs)) return true;
        if (consumer is IFlushingConsumer flushing)
        {
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            flushing.Flush(); // throws on an I/O error: nothing committed, the worker stops
            _lastFlushMs = (long)System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }
        _sinceFlush.Restart();
        var offsets = _uncommitted.Values.ToList();
        long events = _uncommittedEvents;
        _uncommitted.Clear();
        _uncommittedEvents = 0;
        try
        {
            // Only now: the effects are durable.
            kafka.Commit(offsets);
            Interlocked.Add(ref _events, events);
            return true;
        }
        catch (KafkaException e) when (e.Error.Code is ErrorCode.RebalanceInProgress or ErrorCode.IllegalGeneration or ErrorCode.UnknownMemberId)
        {
            logger.LogInformation("commit of partitions {Partitions} refused during a rebalance ({Reason}); their events will be read again",
                string.Join(",", offsets.Select(o => o.Partition.Value)), e.Error.Reason);
            return false;
        }
    }

    /// <summary>
    /// An event from a message's value (the event JSON) and the fields the consumers read from it, in one pass
    /// (<see cref="EventFields.TryRead"/>). <paramref name="timestampMs"/> is the message's timestamp (the event's
    /// journaled time: the sink sets it so); <paramref name="offset"/> names the message in an error.
    /// </summary>
    public static EventRecord Decode(byte[] value, long timestampMs, long offset, out EventFields fields, uint fieldTypes = EventFields.AllTypes)
    {
        if (!EventFields.TryRead(value, out fields, fieldTypes) || fields.TypeName is null || fields.Sequence < 1 || fields.Index < 0 || fields.Ordinal < 0)
            throw new InvalidDataException($"the message at offset {offset} is not a RamPay event");
        return new EventRecord(new EventPosition(fields.Sequence, fields.Index, fields.Ordinal), fields.TypeName, fields.Version, timestampMs, fields.Key, value);
    }
}
