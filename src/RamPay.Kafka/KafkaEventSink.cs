using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RamPay.Events;
using RamPay.Sinks;

namespace RamPay.Kafka;

/// <summary>
/// Publishes the ledger's changes as events (docs/events.md) to one Kafka topic, through an idempotent producer.
/// Each <see cref="Write"/> produces every event of its batch, waits until the brokers have acknowledged all of them
/// (acks=all), and only then moves its checkpoint (<see cref="KafkaCheckpointFile"/>). Any failure throws; the
/// <see cref="SinkRunner"/> then calls <see cref="Open"/> again, which starts a fresh producer, and re-sends from the
/// checkpoint: at least once, with the same event ids, so consumers de-duplicate by id.
/// <para>
/// Why a fresh producer: the old one is torn down before anything is re-sent, and an idempotent producer's messages
/// reach each partition as a gapless, ordered prefix of what it was given (the broker refuses a sequence gap; the
/// producer never times a message out, <c>message.timeout.ms=0</c>, and a gap risk is fatal,
/// <c>enable.gapless.guarantee</c>). So per partition a consumer sees the events in order, then, after a failure, a
/// repeat of a run it already saw from the checkpoint on: never an event before one that precedes it.
/// </para>
/// One thread (the runner's) calls it; delivery reports arrive on librdkafka's thread.
/// </summary>
public sealed partial class KafkaEventSink : IChangeSink
{
    private readonly KafkaSinkOptions _options;
    private readonly KafkaCheckpointFile _checkpointFile;
    private readonly EventEncoder _encoder = new();
    private readonly MappedEvent[] _events = new MappedEvent[EventMapper.MaxEventsPerChange];
    private readonly Headers[] _headers;
    private readonly ILogger _logger;
    private IProducer<byte[], byte[]>? _producer;
    private volatile string? _lastClientError;
    private long _eventsWritten;
    private bool _disposed;

    /// <summary>
    /// Tests only: a write fails after producing this many events (and waiting for their delivery), as a process
    /// that dies or loses the brokers part-way through a batch would. Negative: never.
    /// </summary>
    internal int FailAfterEventsForTests { get; set; } = -1;

    /// <param name="logger">librdkafka's warnings and errors (its info and debug lines are dropped); none when null.</param>
    public KafkaEventSink(KafkaSinkOptions options, ILogger<KafkaEventSink>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        KafkaNativeLibrary.EnsureLoaded(); // the bundled librdkafka, before this process's first Kafka call
        _options = options;
        _checkpointFile = new KafkaCheckpointFile(options.CheckpointDirectory, options.Topic);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        // One header per message, the same for every message of a type: shared, since Produce copies it into
        // librdkafka. One, not two: in a probe on this project's machine each header added about 1.4 µs of CPU per
        // message (Confluent.Kafka marshals every header of every message into native memory), a fifth of the whole.
        _headers = new Headers[(int)EventTypes.All.Max() + 1];
        foreach (EventType type in EventTypes.All)
            _headers[(int)type] = new Headers { { HeaderName, Encoding.ASCII.GetBytes(HeaderValue(type)) } };
    }

    /// <summary>The one header of every message: the event type and its schema version, <see cref="HeaderValue"/>.</summary>
    public const string HeaderName = "event-type";

    /// <summary>The <see cref="HeaderName"/> header's value: <c>{type}.v{version}</c>, e.g. <c>PaymentCreated.v1</c>.</summary>
    public static string HeaderValue(EventType type) =>
        string.Create(CultureInfo.InvariantCulture, $"{EventTypes.Name(type)}.v{EventTypes.SchemaVersion(type)}");

    public string Name => "kafka";
    public KafkaSinkOptions Options => _options;

    /// <summary>Events acknowledged by the brokers since this instance was made (re-sends included).</summary>
    public long EventsWritten => Interlocked.Read(ref _eventsWritten);

    /// <summary>
    /// Reads the checkpoint, then starts a fresh producer and asks the brokers to describe the topic (bounded by
    /// <see cref="KafkaSinkOptions.OpenTimeout"/>): throws when they do not answer or the topic has no partitions.
    /// </summary>
    public SinkCheckpoint Open()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CloseProducer();
        SinkCheckpoint checkpoint = _checkpointFile.Read();
        IProducer<byte[], byte[]> producer = BuildProducer();
        try
        {
            WaitForTopic(producer);
        }
        catch
        {
            producer.Dispose();
            throw;
        }
        _producer = producer;
        return checkpoint;
    }

    public void Write(ReadOnlySpan<Change> changes, SinkCheckpoint through)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // A write that fails leaves no producer behind: the next Open makes a new one, after this one is gone.
        IProducer<byte[], byte[]> producer = _producer ?? throw new InvalidOperationException("the Kafka sink is not open (Open it first, and again after a failed write)");
        _producer = null;
        try
        {
            long deadline = Environment.TickCount64 + (long)_options.WriteTimeout.TotalMilliseconds;
            var deliveries = new Deliveries();
            Action<DeliveryReport<byte[], byte[]>> onDelivery = deliveries.OnDelivery;
            Span<MappedEvent> events = _events;
            foreach (ref readonly Change change in changes)
            {
                int count = EventMapper.Map(change, events);
                for (int i = 0; i < count; i++)
                {
                    var message = new Message<byte[], byte[]>
                    {
                        Key = EventEncoder.Key(events[i]),
                        Value = _encoder.Encode(change, events[i]).ToArray(),
                        Headers = _headers[(int)events[i].Type],
                        Timestamp = new Timestamp(change.TimestampMs, TimestampType.CreateTime),
                    };
                    Produce(producer, message, deliveries, onDelivery, deadline);
                    if (deliveries.Produced == FailAfterEventsForTests)
                    {
                        producer.Flush(Remaining(deadline));
                        throw new KafkaSinkException($"failure injected by a test after {FailAfterEventsForTests} events");
                    }
                }
            }
            long produced = deliveries.Finish();
            // Flush sends what lingers at once; then every report must be in (the last one may still be on its way).
            producer.Flush(Remaining(deadline));
            if (!deliveries.Wait(Remaining(deadline)))
                throw new KafkaSinkException($"the brokers acknowledged {produced - deliveries.Pending} of {produced} events within {_options.WriteTimeout.TotalSeconds:0.#} s{LastClientError()}");
            if (deliveries.Failed > 0)
                throw new KafkaSinkException($"{deliveries.Failed} of {produced} events were not delivered: {deliveries.FirstError}{LastClientError()}");
            _checkpointFile.Write(through);
            Interlocked.Add(ref _eventsWritten, produced);
            _producer = producer;
        }
        catch
        {
            producer.Dispose();
            throw;
        }
    }

    private void Produce(IProducer<byte[], byte[]> producer, Message<byte[], byte[]> message, Deliveries deliveries, Action<DeliveryReport<byte[], byte[]>> onDelivery, long deadline)
    {
        while (true)
        {
            deliveries.Sending();
            try
            {
                producer.Produce(_options.Topic, message, onDelivery);
                return;
            }
            catch (ProduceException<byte[], byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                // The producer's queue (queue.buffering.max.messages, 1,000,000) is full: wait for deliveries to make room, within the write's bound.
                deliveries.NotSent();
                if (Environment.TickCount64 >= deadline)
                    throw new KafkaSinkException($"the producer's queue stayed full for {_options.WriteTimeout.TotalSeconds:0.#} s{LastClientError()}", e);
                Thread.Sleep(1);
            }
            catch
            {
                deliveries.NotSent();
                throw;
            }
        }
    }

    private IProducer<byte[], byte[]> BuildProducer()
    {
        var config = new ProducerConfig
        {
            BootstrapServers = _options.BootstrapServers,
            ClientId = _options.ClientId,
            // The delivery guarantees (class summary): idempotent, every in-sync replica, no message ever timed out by
            // the producer (the write's own bound tears it down instead), and any risk of a gap fatal.
            EnableIdempotence = true,
            Acks = Acks.All,
            MaxInFlight = 5,
            MessageTimeoutMs = 0,
            EnableGaplessGuarantee = true,
            // Throughput (docs/benchmarks.md, "Kafka sink").
            LingerMs = _options.LingerMs,
            BatchSize = _options.BatchSizeBytes,
            BatchNumMessages = _options.BatchMessages,
            QueueBufferingMaxMessages = 1_000_000,
            QueueBufferingMaxKbytes = 1024 * 1024,
            // Java's partitioner for keys: the same account lands on the same partition for any client.
            Partitioner = Partitioner.Murmur2Random,
            // Reports need only whether a message was persisted: leave keys and values out of them.
            DeliveryReportFields = "status",
        };
        config.Set("compression.codec", _options.Compression);
        foreach (var (key, value) in _options.ProducerProperties) config.Set(key, value);

        return new ProducerBuilder<byte[], byte[]>(config)
            .SetLogHandler((_, m) =>
            {
                if (m.Level > SyslogLevel.Warning) return;
                // librdkafka warns at every start that enable.gapless.guarantee is experimental: chosen knowingly (class summary).
                if (m.Facility == "CONFWARN" && m.Message.Contains("enable.gapless.guarantee", StringComparison.Ordinal)) return;
                LogClient(_logger, m.Level <= SyslogLevel.Error ? LogLevel.Error : LogLevel.Warning, m.Level.ToString().ToLowerInvariant(), m.Facility, m.Message);
            })
            .SetErrorHandler((_, e) => _lastClientError = e.IsFatal ? "fatal: " + e.Reason : e.Reason)
            .Build();
    }

    [LoggerMessage(EventId = 1, Message = "kafka: librdkafka {KafkaLevel} {KafkaFacility}: {KafkaMessage}")]
    private static partial void LogClient(ILogger logger, LogLevel level, string kafkaLevel, string kafkaFacility, string kafkaMessage);

    /// <summary>Asks for the topic's metadata until it has partitions with leaders, or the open timeout passes.</summary>
    private void WaitForTopic(IProducer<byte[], byte[]> producer)
    {
        using IAdminClient admin = new DependentAdminClientBuilder(producer.Handle).Build();
        long deadline = Environment.TickCount64 + (long)_options.OpenTimeout.TotalMilliseconds;
        string problem;
        while (true)
        {
            try
            {
                Metadata metadata = admin.GetMetadata(_options.Topic, Remaining(deadline));
                TopicMetadata? topic = metadata.Topics.Find(t => t.Topic == _options.Topic);
                if (topic is null) problem = "the brokers did not describe it";
                else if (topic.Error.IsError) problem = topic.Error.Reason;
                else if (topic.Partitions.Count == 0) problem = "it has no partitions";
                else if (topic.Partitions.Exists(p => p.Leader < 0)) problem = "a partition has no leader";
                else return;
            }
            catch (KafkaException e)
            {
                problem = e.Error.Reason;
            }
            if (Environment.TickCount64 >= deadline)
                throw new KafkaSinkException($"Kafka at {_options.BootstrapServers} did not describe topic '{_options.Topic}' within {_options.OpenTimeout.TotalSeconds:0.#} s: {problem}{LastClientError()}");
            Thread.Sleep(100);
        }
    }

    private static TimeSpan Remaining(long deadline) => TimeSpan.FromMilliseconds(Math.Max(1, deadline - Environment.TickCount64));

    private string LastClientError() => _lastClientError is { } e ? $" (last client error: {e})" : "";

    private void CloseProducer()
    {
        var producer = _producer;
        _producer = null;
        producer?.Dispose();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        // Whatever is not flushed is past the checkpoint: the next start re-sends it.
        CloseProducer();
    }

    /// <summary>One write's delivery reports, counted from librdkafka's thread.</summary>
    private sealed class Deliveries
    {
        // One count per message produced plus one held by the writer until it has produced them all, so that the
        // count reaches zero only when the last report of the whole batch is in.
        private long _pending = 1;
        private long _produced;
        private long _failed;
        private string? _firstError;
        private readonly ManualResetEventSlim _done = new(false);

        public long Pending => Interlocked.Read(ref _pending);
        public long Produced => _produced;
        public long Failed => Interlocked.Read(ref _failed);
        public string? FirstError => Volatile.Read(ref _firstError);

        public void Sending()
        {
            Interlocked.Increment(ref _pending);
            _produced++;
        }

        public void NotSent()
        {
            _produced--;
            Release();
        }

        /// <summary>Called once every message is produced; returns how many were.</summary>
        public long Finish()
        {
            Release();
            return _produced;
        }

        public void OnDelivery(DeliveryReport<byte[], byte[]> report)
        {
            if (report.Error.IsError)
            {
                Interlocked.Increment(ref _failed);
                Interlocked.CompareExchange(ref _firstError, report.Error.ToString(), null);
            }
            Release();
        }

        public bool Wait(TimeSpan timeout) => _done.Wait(timeout);

        private void Release()
        {
            if (Interlocked.Decrement(ref _pending) == 0) _done.Set();
        }
    }
}

/// <summary>The Kafka sink could not open or write; the runner retries.</summary>
public sealed class KafkaSinkException : Exception
{
    public KafkaSinkException(string message) : base(message) { }
    public KafkaSinkException(string message, Exception inner) : base(message, inner) { }
}
