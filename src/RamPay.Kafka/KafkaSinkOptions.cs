namespace RamPay.Kafka;

/// <summary>Settings of the <see cref="KafkaEventSink"/>. The defaults are the ones measured in docs/benchmarks.md.</summary>
public sealed record KafkaSinkOptions
{
    /// <summary>The brokers, <c>host:port,host:port</c> (librdkafka's <c>bootstrap.servers</c>).</summary>
    public required string BootstrapServers { get; init; }

    /// <summary>The topic every event goes to. It must exist or the brokers must auto-create it.</summary>
    public string Topic { get; init; } = "rampay.events";

    /// <summary>Where the sink keeps its checkpoint file (<see cref="KafkaCheckpointFile.FileName"/>); the server passes <c>&lt;data&gt;/sinks</c>.</summary>
    public required string CheckpointDirectory { get; init; }

    /// <summary>librdkafka's <c>client.id</c>, shown in the brokers' logs and metrics.</summary>
    public string ClientId { get; init; } = "rampay";

    /// <summary>How long <see cref="KafkaEventSink.Open"/> waits for the brokers to describe the topic before it fails.</summary>
    public TimeSpan OpenTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long one <see cref="KafkaEventSink.Write"/> waits for every event of its batch to be acknowledged before it
    /// fails (and the runner re-sends from the checkpoint). The producer itself never gives up on a message
    /// (<c>message.timeout.ms=0</c>): only this bound does, by tearing the producer down (docs/events.md, ordering).
    /// </summary>
    public TimeSpan WriteTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>librdkafka's <c>linger.ms</c>: how long a partition's batch may wait to fill.</summary>
    public double LingerMs { get; init; } = 5;

    /// <summary>librdkafka's <c>batch.size</c>: the most bytes of messages in one partition's batch.</summary>
    public int BatchSizeBytes { get; init; } = 1_000_000;

    /// <summary>librdkafka's <c>batch.num.messages</c>.</summary>
    public int BatchMessages { get; init; } = 10_000;

    /// <summary>librdkafka's <c>compression.codec</c>: none, gzip, snappy, lz4 or zstd.</summary>
    public string Compression { get; init; } = "lz4";

    /// <summary>
    /// Any other librdkafka producer properties (security.protocol, sasl.*, ssl.*...), applied last. The sink's
    /// guarantees depend on enable.idempotence, acks and message.timeout.ms: those are refused here.
    /// </summary>
    public IReadOnlyDictionary<string, string> ProducerProperties { get; init; } = new Dictionary<string, string>();

    internal static readonly string[] ReservedProperties = ["enable.idempotence", "acks", "request.required.acks", "message.timeout.ms", "delivery.timeout.ms", "enable.gapless.guarantee", "max.in.flight.requests.per.connection", "max.in.flight"];

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(BootstrapServers)) throw new ArgumentException("Kafka BootstrapServers is required");
        if (string.IsNullOrWhiteSpace(Topic) || Topic.Length > 249 || Topic.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')))
            throw new ArgumentException($"Kafka topic '{Topic}' is not a valid topic name (1..249 of a-z, A-Z, 0-9, '.', '_', '-')");
        if (string.IsNullOrWhiteSpace(CheckpointDirectory)) throw new ArgumentException("Kafka CheckpointDirectory is required");
        if (OpenTimeout <= TimeSpan.Zero || WriteTimeout <= TimeSpan.Zero) throw new ArgumentException("Kafka OpenTimeout and WriteTimeout must be positive");
        if (LingerMs < 0 || LingerMs > 900_000) throw new ArgumentException("Kafka LingerMs must be within 0..900000");
        if (BatchSizeBytes < 1 || BatchMessages < 1) throw new ArgumentException("Kafka BatchSizeBytes and BatchMessages must be positive");
        if (Compression is not ("none" or "gzip" or "snappy" or "lz4" or "zstd")) throw new ArgumentException($"Kafka compression '{Compression}' is not one of none, gzip, snappy, lz4, zstd");
        foreach (string key in ProducerProperties.Keys)
        {
            if (ReservedProperties.Contains(key, StringComparer.OrdinalIgnoreCase))
                throw new ArgumentException($"the Kafka producer property '{key}' is set by the sink (its delivery guarantees depend on it)");
        }
    }
}
