using System.Text;
using System.Text.Json;
using Confluent.Kafka;
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
    /// (and the commit of their offsets, which follows it) while events keep coming. Other consumers' offsets are
    /// committed after every round.
    /// </summary>
    public int FlushEveryMs { get; init; } = 500;
    public int HttpPort { get; init; }
    public string HttpHost { get; init; } = "127.0.0.1";
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
    int RoundEvents => 8_000;

    /// <summary>Makes every batch handled so far durable (a no-op for a consumer whose HandleAsync already did).</summary>
    void Flush();
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
    private volatile bool _assigned;
    public long EventsHandled => Interlocked.Read(ref _events);
    public long Failures => Interlocked.Read(ref _failures);
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
            AutoOffsetReset = AutoOffsetReset.Earliest,
            FetchWaitMaxMs = 50,
            // A worker that stops answering (killed) loses its partitions to the others after this long.
            SessionTimeoutMs = 6000,
            HeartbeatIntervalMs = 1000,
            // The rebalance timeout: a member that died during a rebalance is dropped after this, not the default
            // 5 minutes. A batch's HandleAsync must finish well within it.
            MaxPollIntervalMs = 20_000,
            ClientId = $"rampay-worker-{options.Consumer}",
        };
        using var kafka = new ConsumerBuilder<byte[], byte[]>(config)
            .SetLogHandler((_, m) => { if (m.Level <= SyslogLevel.Warning) logger.LogWarning("librdkafka {Facility}: {Message}", m.Facility, m.Message); })
            .SetErrorHandler((_, e) => logger.LogWarning("kafka: {KafkaError}", e.Reason))
            .SetPartitionsAssignedHandler((_, parts) => { _assigned = true; logger.LogInformation("assigned {Partitions}", string.Join(",", parts.Select(p => p.Partition.Value))); })
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
        var pending = new Dictionary<int, List<(EventRecord Event, TopicPartitionOffset Offset)>>();
        var handled = new List<(int Partition, List<(EventRecord Event, TopicPartitionOffset Offset)> List)>();
        int roundEvents = consumer is IFlushingConsumer f ? f.RoundEvents : options.BatchEvents;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                // Gather up to BatchEvents or BatchWaitMs, whichever first.
                long deadline = Environment.TickCount64 + options.BatchWaitMs;
                int gathered = 0;
                while (gathered < roundEvents)
                {
                    var result = kafka.Consume(TimeSpan.FromMilliseconds(Math.Max(1, deadline - Environment.TickCount64)));
                    if (result is null || result.IsPartitionEOF) break;
                    var record = Decode(result.Message);
                    if (!pending.TryGetValue(result.Partition.Value, out var list)) pending[result.Partition.Value] = list = [];
                    list.Add((record, result.TopicPartitionOffset));
                    gathered++;
                    if (Environment.TickCount64 >= deadline) break;
                }
                handled.Clear();
                foreach (var (partition, list) in pending)
                    if (list.Count > 0) handled.Add((partition, list));
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
                    for (int i = 0; i < handled.Count; i++) tasks[i] = Handle(handled[i].Partition, handled[i].List, results, i, stop);
                    await Task.WhenAll(tasks).ConfigureAwait(false);
                }
                else
                {
                    for (int i = 0; i < handled.Count; i++) await Handle(handled[i].Partition, handled[i].List, results, i, stop).ConfigureAwait(false);
                }
                if (stop.IsCancellationRequested) return;
                bool failed = false;
                for (int i = 0; i < handled.Count; i++)
                {
                    var (partition, list) = handled[i];
                    if (results[i] is { } e)
                    {
                        failed = true;
                        Interlocked.Increment(ref _failures);
                        logger.LogWarning(e, "consumer {Consumer} failed on {Count} events of partition {Partition}; re-reading from the batch's first offset", consumer.Name, list.Count, partition);
                        kafka.Seek(list[0].Offset); // back to the first offset of the batch: it is read again
                    }
                    else
                    {
                        // The committed offset is the next one to read; committed once the effects are durable.
                        var last = list[^1].Offset;
                        _uncommitted[partition] = new TopicPartitionOffset(last.TopicPartition, last.Offset + 1);
                        _uncommittedEvents += list.Count;
                    }
                    list.Clear();
                }
                if (!FlushAndCommit(kafka, force: consumer is not IFlushingConsumer))
                {
                    foreach (var l in pending.Values) l.Clear();
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

    private readonly Dictionary<int, TopicPartitionOffset> _uncommitted = [];
    private long _uncommittedEvents;
    private readonly System.Diagnostics.Stopwatch _sinceFlush = System.Diagnostics.Stopwatch.StartNew();

    private async Task Handle(int partition, List<(EventRecord Event, TopicPartitionOffset Offset)> list, Exception?[] results, int slot, CancellationToken stop)
    {
        try
        {
            await consumer.HandleAsync(new EventBatch([.. list.Select(x => x.Event)], $"kafka:{options.Topic}/{partition}"), stop).ConfigureAwait(false);
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
    /// <see cref="WorkerOptions.FlushEveryMs"/> unless <paramref name="force"/>) and then commits their offsets in one call.
    /// False when the group refused the commit during a rebalance: the effects are durable and idempotent, every partition is
    /// revoked and re-assigned from its committed offset, so these events come again (it used to stop the worker: found by
    /// RewardsWorkerTests); the next Consume takes part in the rebalance.
    /// </summary>
    private bool FlushAndCommit(IConsumer<byte[], byte[]> kafka, bool force)
    {
        if (_uncommitted.Count == 0) return true;
        if (!force && _sinceFlush.ElapsedMilliseconds < options.FlushEveryMs) return true;
        if (consumer is IFlushingConsumer flushing) flushing.Flush(); // throws on an I/O error: nothing committed, the worker stops
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

    /// <summary>An event from a message: the value is the event JSON; the header names its type and version.</summary>
    public static EventRecord Decode(Message<byte[], byte[]> message)
    {
        var reader = new Utf8JsonReader(message.Value);
        long sequence = 0, key = 0;
        int index = -1, ordinal = -1, version = 0;
        string? type = null;
        long occurredMs = message.Timestamp.UnixTimestampMs;
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName && (type is null || sequence == 0 || index < 0 || ordinal < 0 || version == 0 || key == 0))
        {
            string name = reader.GetString()!;
            reader.Read();
            switch (name)
            {
                case "type": type = reader.GetString(); break;
                case "version": version = reader.GetInt32(); break;
                case "sequence": sequence = reader.GetInt64(); break;
                case "index": index = reader.GetInt32(); break;
                case "ordinal": ordinal = reader.GetInt32(); break;
                case "key": key = reader.GetInt64(); break;
                default: reader.TrySkip(); break;
            }
        }
        if (type is null || sequence < 1 || index < 0 || ordinal < 0)
            throw new InvalidDataException($"a message at offset is not a RamPay event (header {HeaderOf(message)})");
        return new EventRecord(new EventPosition(sequence, index, ordinal), type, version, occurredMs, key, message.Value);
    }

    private static string HeaderOf(Message<byte[], byte[]> m) =>
        m.Headers?.TryGetLastBytes(KafkaEventSink.HeaderName, out var v) == true ? Encoding.ASCII.GetString(v) : "none";
}
