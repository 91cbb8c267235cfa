using Confluent.Kafka;

namespace RamPay.Kafka.Tests;

/// <summary>
/// The Kafka-protocol broker the integration tests run against: <c>RAMPAY_TEST_KAFKA</c> (bootstrap servers), which
/// <c>scripts/services.sh start</c> writes into <c>.services.env</c>. Unset or unreachable is a failure, not a skip:
/// a green run must mean the sink was tested against a broker.
/// </summary>
public static class KafkaTestBroker
{
    public const string Variable = "RAMPAY_TEST_KAFKA";

    private static readonly Lazy<string> Checked = new(Check);

    public static string Bootstrap => Checked.Value;

    /// <summary>A topic no other test uses (the broker creates it, with its default partitions, on first use).</summary>
    public static string NewTopic(string test) => $"rampay.test.{test}.{Guid.NewGuid():N}";

    private static string Check()
    {
        string? bootstrap = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrWhiteSpace(bootstrap))
            throw new InvalidOperationException($"{Variable} is not set. The Kafka sink's tests need a Kafka-protocol broker: run `bash scripts/services.sh start` and `source .services.env` first.");
        try
        {
            using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).SetLogHandler((_, _) => { }).Build();
            var metadata = admin.GetMetadata(TimeSpan.FromSeconds(10));
            if (metadata.Brokers.Count == 0) throw new InvalidOperationException("no broker in the metadata");
        }
        catch (Exception e) when (e is KafkaException or InvalidOperationException)
        {
            throw new InvalidOperationException($"{Variable}={bootstrap} does not answer ({e.Message}): is the test broker running? (`bash scripts/services.sh start`)", e);
        }
        return bootstrap;
    }

    /// <summary>One message as a consumer reads it.</summary>
    public sealed record Message(int Partition, long Offset, long TimestampMs, byte[] Key, byte[] Value, IReadOnlyDictionary<string, string> Headers);

    /// <summary>
    /// Every message of <paramref name="topic"/>, partition by partition in offset order, from the beginning to the end
    /// of each partition as it stands now (its high watermark when the read starts), read with Confluent.Kafka's
    /// consumer (<see cref="KafkaTestConsumer.ReadAll"/>).
    /// </summary>
    public static List<Message> ReadAll(string topic, string? bootstrap = null, TimeSpan? timeout = null) =>
        KafkaTestConsumer.ReadAll(topic, bootstrap ?? Bootstrap, timeout ?? TimeSpan.FromSeconds(60));

    /// <summary><see cref="ReadAll"/> for async tests: the same read on a thread-pool thread (the consumer's calls block).</summary>
    public static Task<List<Message>> ReadAllAsync(string topic, string? bootstrap = null, TimeSpan? timeout = null)
    {
        string server = bootstrap ?? Bootstrap;
        return Task.Run(() => KafkaTestConsumer.ReadAll(topic, server, timeout ?? TimeSpan.FromSeconds(60)));
    }
}
