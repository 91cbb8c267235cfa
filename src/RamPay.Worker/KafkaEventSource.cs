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
    /// <summary>Events per batch handed to the consumer (from one partition).</summary>
    public int BatchEvents { get; init; } = 500;
    /// <summary>How long a batch may wait to fill before it is handed on.</summary>
    public int BatchWaitMs { get; init; } = 20;
    public int HttpPort { get; init; }
    public string HttpHost { get; init; } = "127.0.0.1";
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
            .SetPartitionsRevokedHandler((_, parts) => logger.LogInformation("revoked {Partitions}", string.Join(",", parts.Select(p => p.Partition.Value))))
            .Build();
        kafka.Subscribe(options.Topic);
        var pending = new Dictionary<int, List<(EventRecord Event, TopicPartitionOffset Offset)>>();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                // Gather up to BatchEvents or BatchWaitMs, whichever first.
                long deadline = Environment.TickCount64 + options.BatchWaitMs;
                int gathered = 0;
                while (gathered < options.BatchEvents)
                {
                    var result = kafka.Consume(TimeSpan.FromMilliseconds(Math.Max(1, deadline - Environment.TickCount64)));
                    if (result is null || result.IsPartitionEOF) break;
                    var record = Decode(result.Message);
                    if (!pending.TryGetValue(result.Partition.Value, out var list)) pending[result.Partition.Value] = list = [];
                    list.Add((record, result.TopicPartitionOffset));
                    gathered++;
                    if (Environment.TickCount64 >= deadline) break;
                }
                foreach (var (partition, list) in pending)
                {
                    if (list.Count == 0) continue;
                    var batch = new EventBatch([.. list.Select(x => x.Event)], $"kafka:{options.Topic}/{partition}");
                    var last = list[^1].Offset;
                    try
                    {
                        await consumer.HandleAsync(batch, stop).ConfigureAwait(false);
                        // Only now: the effects are durable. The committed offset is the next one to read.
                        kafka.Commit([new TopicPartitionOffset(last.TopicPartition, last.Offset + 1)]);
                        Interlocked.Add(ref _events, list.Count);
                    }
                    catch (OperationCanceledException) when (stop.IsCancellationRequested)
                    {
                        return;
                    }
                    catch (KafkaException e) when (e.Error.Code is ErrorCode.RebalanceInProgress or ErrorCode.IllegalGeneration or ErrorCode.UnknownMemberId)
                    {
                        // The group began a rebalance while the batch was handled (a worker joined or left): the commit is
                        // refused, but the effects are durable and idempotent. Every partition is revoked and re-assigned
                        // from its committed offset, so these events come again, to whichever worker owns them next; the
                        // next Consume takes part in the rebalance. (It used to stop the worker: found by RewardsWorkerTests.)
                        logger.LogInformation("commit of partition {Partition} refused during a rebalance ({Reason}); its events will be read again", partition, e.Error.Reason);
                        foreach (var l in pending.Values) l.Clear();
                        break;
                    }
                    catch (Exception e) when (e is not KafkaException)
                    {
                        Interlocked.Increment(ref _failures);
                        logger.LogWarning(e, "consumer {Consumer} failed on {Count} events of partition {Partition}; re-reading from the committed offset", consumer.Name, list.Count, partition);
                        // Back to the first offset of the batch: it is read again.
                        kafka.Seek(list[0].Offset);
                        await Task.Delay(200, stop).ConfigureAwait(false);
                    }
                    list.Clear();
                }
            }
        }
        finally
        {
            kafka.Close(); // leaves the group at once: its partitions go to the others without waiting for the session timeout
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
