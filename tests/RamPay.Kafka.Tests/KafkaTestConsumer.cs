using System.Runtime.CompilerServices;
using System.Text;
using Confluent.Kafka;

namespace RamPay.Kafka.Tests;

/// <summary>Reads topics back with Confluent.Kafka's consumer, on the bundled librdkafka.</summary>
public static class KafkaTestConsumer
{
    /// <summary>
    /// Before any test touches Confluent.Kafka (the tests use its admin client and consumer directly, not only
    /// through the sink): the bundled librdkafka, never the machine's (<see cref="KafkaNativeLibrary"/>).
    /// </summary>
#pragma warning disable CA2255 // a module initializer in a test assembly is exactly its intended use: set-up before any test
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void LoadBundledLibrdkafka() => KafkaNativeLibrary.EnsureLoaded();

    /// <summary>A consumer's settings: no automatic commits (a test commits what it has processed, or nothing).</summary>
    public static ConsumerConfig Config(string bootstrap, string groupId) => new()
    {
        BootstrapServers = bootstrap,
        GroupId = groupId,
        EnableAutoCommit = false,
        AutoOffsetReset = AutoOffsetReset.Earliest,
        // Fetch what is there at once: the tests read small topics to their end.
        FetchWaitMaxMs = 50,
    };

    public static IConsumer<byte[], byte[]> Build(ConsumerConfig config, Action<string>? errors = null) =>
        new ConsumerBuilder<byte[], byte[]>(config)
            .SetLogHandler((_, _) => { })
            .SetErrorHandler((_, e) => errors?.Invoke(e.ToString()))
            .Build();

    /// <summary>The number of partitions of <paramref name="topic"/>, as the brokers describe it.</summary>
    public static int Partitions(string bootstrap, string topic, TimeSpan timeout)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).SetLogHandler((_, _) => { }).Build();
        var metadata = admin.GetMetadata(topic, timeout).Topics.Single(t => t.Topic == topic);
        if (metadata.Error.IsError) throw new InvalidOperationException($"topic {topic} at {bootstrap}: {metadata.Error}");
        return metadata.Partitions.Count;
    }

    /// <summary>
    /// Every message of <paramref name="topic"/> from the start of each partition to its high watermark as it stands
    /// when the read starts, sorted by partition and offset. The partitions are assigned, not subscribed (no group
    /// join, no commit): a read of what is there.
    /// </summary>
    public static List<KafkaTestBroker.Message> ReadAll(string topic, string bootstrap, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        int partitions = Partitions(bootstrap, topic, timeout);
        string? lastError = null;
        using var consumer = Build(Config(bootstrap, $"rampay-test-reader-{Guid.NewGuid():N}"), e => lastError = e);
        var end = new Dictionary<int, long>();
        var assignment = new List<TopicPartitionOffset>();
        for (int p = 0; p < partitions; p++)
        {
            var tp = new TopicPartition(topic, p);
            var marks = consumer.QueryWatermarkOffsets(tp, Remaining(deadline));
            if (marks.High > marks.Low) end[p] = marks.High;
            assignment.Add(new TopicPartitionOffset(tp, marks.Low));
        }
        var messages = new List<KafkaTestBroker.Message>();
        if (end.Count == 0) return messages;
        consumer.Assign(assignment);
        while (end.Count > 0)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"reading {topic} from {bootstrap}: partitions {string.Join(", ", end.Keys)} not read to their end within {timeout.TotalSeconds:0} s (read {messages.Count}; last client error: {lastError ?? "none"})");
            var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (result is null || result.IsPartitionEOF) continue;
            messages.Add(ToMessage(result));
            int partition = result.Partition.Value;
            if (end.TryGetValue(partition, out long high) && result.Offset.Value + 1 >= high) end.Remove(partition);
        }
        consumer.Close();
        return [.. messages.OrderBy(m => m.Partition).ThenBy(m => m.Offset)];
    }

    public static KafkaTestBroker.Message ToMessage(ConsumeResult<byte[], byte[]> result)
    {
        var headers = new Dictionary<string, string>();
        if (result.Message.Headers is { } h)
            foreach (var header in h) headers[header.Key] = Encoding.UTF8.GetString(header.GetValueBytes());
        return new KafkaTestBroker.Message(result.Partition.Value, result.Offset.Value, result.Message.Timestamp.UnixTimestampMs,
            result.Message.Key ?? [], result.Message.Value ?? [], headers);
    }

    private static TimeSpan Remaining(DateTime deadline)
    {
        var left = deadline - DateTime.UtcNow;
        return left > TimeSpan.FromMilliseconds(100) ? left : TimeSpan.FromMilliseconds(100);
    }
}
