using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Kafka.Tests;

/// <summary>The sink against a real Kafka-protocol broker (<see cref="KafkaTestBroker"/>).</summary>
[Trait("Category", "Integration")]
public class KafkaEventSinkTests
{
    private static readonly Lazy<Change[]> Stream = new(() =>
    {
        // A mixed workload, then the scenario (one of every event type) as if journaled after it: about 5,000 events.
        var workload = LedgerChanges.Run(new CommandBuilder().Workload(seed: 11, wallets: 40, count: 4_000));
        long offset = workload[^1].Sequence;
        var scenario = LedgerChanges.Run(Scenario.Commands());
        for (int i = 0; i < scenario.Length; i++) scenario[i].Sequence += offset;
        return [.. workload, .. scenario];
    });

    private static KafkaSinkOptions Options(string topic, string directory, string? bootstrap = null) => new()
    {
        BootstrapServers = bootstrap ?? KafkaTestBroker.Bootstrap,
        Topic = topic,
        CheckpointDirectory = directory,
        OpenTimeout = TimeSpan.FromSeconds(10),
        WriteTimeout = TimeSpan.FromSeconds(30),
    };

    /// <summary>What a consumer reads back of one message.</summary>
    private sealed record Received(int Partition, long Offset, string Key, string Id, (long, int, int) Position, string Header, string Payload, long TimestampMs)
    {
        public static Received From(KafkaTestBroker.Message m)
        {
            string payload = Encoding.UTF8.GetString(m.Value);
            using var json = JsonDocument.Parse(payload);
            var root = json.RootElement;
            return new Received(
                m.Partition, m.Offset, Encoding.ASCII.GetString(m.Key), root.GetProperty("event_id").GetString()!,
                (root.GetProperty("sequence").GetInt64(), root.GetProperty("index").GetInt32(), root.GetProperty("ordinal").GetInt32()),
                Assert.Single(m.Headers).Value, payload, m.TimestampMs);
        }
    }

    /// <summary>What the sink must have published for <paramref name="changes"/>: id → (key, type, payload, time), in stream order.</summary>
    private static List<(string Id, string Key, string Type, string Payload, long TimestampMs)> Expected(IEnumerable<Change> changes)
    {
        var encoder = new EventEncoder();
        return [.. LedgerChanges.Events(changes).Select(e => (
            EventMapper.EventId(e.Change.Sequence, e.Change.Index, e.Event.Ordinal),
            e.Event.KeyAccount.ToString(System.Globalization.CultureInfo.InvariantCulture),
            EventTypes.Name(e.Event.Type),
            Encoding.UTF8.GetString(encoder.Encode(e.Change, e.Event)),
            e.Change.TimestampMs))];
    }

    private static List<Received> Read(string topic, string? bootstrap = null) => [.. KafkaTestBroker.ReadAll(topic, bootstrap).Select(Received.From)];

    /// <summary>Per partition, the positions must increase (the stream's order, which is each key's order).</summary>
    private static void AssertInOrderPerPartition(IEnumerable<Received> messages)
    {
        foreach (var partition in messages.GroupBy(m => m.Partition))
        {
            var previous = (0L, 0, -1);
            foreach (var m in partition.OrderBy(m => m.Offset))
            {
                Assert.True(EventMapperTests.Compare(m.Position, previous) > 0, $"partition {partition.Key}: {m.Id} at offset {m.Offset} follows {previous}");
                previous = m.Position;
            }
        }
    }

    /// <summary>The documented consumer: per partition, skip anything not above the highest position processed.</summary>
    private static List<Received> Deduplicated(IEnumerable<Received> messages)
    {
        var kept = new List<Received>();
        foreach (var partition in messages.GroupBy(m => m.Partition))
        {
            var highest = (0L, 0, -1);
            foreach (var m in partition.OrderBy(m => m.Offset))
            {
                if (EventMapperTests.Compare(m.Position, highest) <= 0) continue;
                kept.Add(m);
                highest = m.Position;
            }
        }
        return kept;
    }

    private static void AssertPublished(List<(string Id, string Key, string Type, string Payload, long TimestampMs)> expected, List<Received> received)
    {
        var byId = received.GroupBy(r => r.Id).ToDictionary(g => g.Key, g => g.First());
        Assert.Equal(expected.Count, byId.Count);
        foreach (var e in expected)
        {
            Assert.True(byId.TryGetValue(e.Id, out var r), $"event {e.Id} was not published");
            Assert.Equal((e.Key, e.Type + ".v1", e.Payload, e.TimestampMs), (r.Key, r.Header, r.Payload, r.TimestampMs));
        }
        // One key, one partition: a key's events can only be in order if they share a partition.
        foreach (var key in received.GroupBy(r => r.Key)) Assert.Single(key.Select(r => r.Partition).Distinct());
    }

    [Fact]
    public void Every_event_reaches_the_topic_once_in_order_per_key_with_its_payload_headers_and_time()
    {
        using var dir = new TempDir();
        string topic = KafkaTestBroker.NewTopic("all");
        var changes = Stream.Value;
        using (var sink = new KafkaEventSink(Options(topic, dir.Path)))
        {
            Assert.Equal(SinkCheckpoint.None, sink.Open());
            foreach (var (batch, through) in LedgerChanges.Batches(changes, 700)) sink.Write(batch, through);
            Assert.Equal(Expected(changes).Count, sink.EventsWritten);
            Assert.Equal("event-type", KafkaEventSink.HeaderName);
        }
        var received = Read(topic);
        var expected = Expected(changes);
        Assert.Equal(expected.Count, received.Count); // no failure: no duplicate
        AssertPublished(expected, received);
        AssertInOrderPerPartition(received);
        Assert.True(received.Select(r => r.Partition).Distinct().Count() > 1, "the events should spread over the topic's partitions");
        var last = changes[^1];
        Assert.Equal(new SinkCheckpoint(last.Sequence, last.TimestampMs), new KafkaCheckpointFile(dir.Path, topic).Read());
    }

    [Fact]
    public void A_new_sink_on_the_same_folder_resumes_from_the_checkpoint_and_sends_nothing_twice()
    {
        using var dir = new TempDir();
        string topic = KafkaTestBroker.NewTopic("restart");
        var batches = LedgerChanges.Batches(Stream.Value, 1_000);
        int half = batches.Count / 2;
        using (var first = new KafkaEventSink(Options(topic, dir.Path)))
        {
            first.Open();
            foreach (var (batch, through) in batches.Take(half)) first.Write(batch, through);
        }
        using (var second = new KafkaEventSink(Options(topic, dir.Path)))
        {
            var checkpoint = second.Open();
            Assert.Equal(batches[half - 1].Through, checkpoint);
            // As the runner does: only what is past the checkpoint.
            foreach (var (batch, through) in batches.Where(b => b.Through.Sequence > checkpoint.Sequence)) second.Write(batch, through);
        }
        var received = Read(topic);
        var expected = Expected(Stream.Value);
        Assert.Equal(expected.Count, received.Count);
        AssertPublished(expected, received);
        AssertInOrderPerPartition(received);
    }

    [Fact]
    public void A_write_that_fails_midway_leaves_the_checkpoint_and_the_re_send_from_it_keeps_ids_and_order()
    {
        using var dir = new TempDir();
        string topic = KafkaTestBroker.NewTopic("failure");
        var changes = Stream.Value;
        var batches = LedgerChanges.Batches(changes, 1_500);
        Assert.True(batches.Count >= 3);
        var checkpointFile = new KafkaCheckpointFile(dir.Path, topic);

        using (var sink = new KafkaEventSink(Options(topic, dir.Path)))
        {
            sink.Open();
            sink.Write(batches[0].Changes, batches[0].Through);
        }
        // The rest fails part-way, after some of its events were delivered (and before its checkpoint).
        var rest = batches.Skip(1).SelectMany(b => b.Changes).ToArray();
        int delivered = Expected(rest).Count / 3;
        using (var failing = new KafkaEventSink(Options(topic, dir.Path)) { FailAfterEventsForTests = delivered })
        {
            Assert.Equal(batches[0].Through, failing.Open());
            Assert.Throws<KafkaSinkException>(() => failing.Write(rest, batches[^1].Through));
            Assert.Throws<InvalidOperationException>(() => failing.Write(rest, batches[^1].Through)); // no producer until Open
        }
        Assert.Equal(batches[0].Through, checkpointFile.Read());

        // Restarted (or re-opened by the runner): everything after the checkpoint goes again.
        using (var sink = new KafkaEventSink(Options(topic, dir.Path)))
        {
            Assert.Equal(batches[0].Through, sink.Open());
            foreach (var (batch, through) in batches.Skip(1)) sink.Write(batch, through);
        }
        Assert.Equal(batches[^1].Through, checkpointFile.Read());

        var received = Read(topic);
        var expected = Expected(changes);
        Assert.Equal(expected.Count + delivered, received.Count);
        AssertPublished(expected, received);
        // Only the failed batch's events may come twice; the first batch's never (re-sent only from the checkpoint).
        var firstBatchIds = Expected(batches[0].Changes).Select(e => e.Id).ToHashSet();
        foreach (var id in received.GroupBy(r => r.Id).Where(g => g.Count() > 1).Select(g => g.Key))
            Assert.DoesNotContain(id, firstBatchIds);
        // Each id's first arrival is in order per partition, and skipping what is not above the highest position
        // seen leaves every event exactly once, in stream order.
        var deduplicated = Deduplicated(received);
        Assert.Equal(expected.Count, deduplicated.Count);
        AssertInOrderPerPartition(deduplicated);
        foreach (var partition in received.GroupBy(r => r.Partition))
        {
            var firsts = partition.OrderBy(r => r.Offset).DistinctBy(r => r.Id).ToList();
            AssertInOrderPerPartition(firsts);
        }
    }

    [Fact]
    public void Open_fails_within_its_bound_when_no_broker_answers()
    {
        using var dir = new TempDir();
        // Port 1 on loopback: nothing listens, connections are refused.
        using var sink = new KafkaEventSink(Options("rampay.events", dir.Path, bootstrap: "127.0.0.1:1") with { OpenTimeout = TimeSpan.FromSeconds(2) });
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<KafkaSinkException>(() => sink.Open());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"Open took {clock.Elapsed}");
        Assert.Contains("127.0.0.1:1", e.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => sink.Write([], new SinkCheckpoint(1, 1)));
    }

    [Fact]
    public void When_the_broker_goes_away_writes_and_opens_fail_within_their_bounds_and_the_checkpoint_stays()
    {
        using var dir = new TempDir();
        string topic = KafkaTestBroker.NewTopic("gone");
        var batches = LedgerChanges.Batches(Stream.Value, 1_000);
        // A broker of our own to take away: librdkafka's mock cluster, hosted by a client of this process.
        var hostConfig = new AdminClientConfig { BootstrapServers = "placeholder:9092" };
        hostConfig.Set("test.mock.num.brokers", "1");
        var host = new AdminClientBuilder(hostConfig).SetLogHandler((_, _) => { }).Build();
        var broker = host.GetMetadata(TimeSpan.FromSeconds(10)).Brokers.Single();
        string bootstrap = $"{broker.Host}:{broker.Port}";
        var options = Options(topic, dir.Path, bootstrap) with { OpenTimeout = TimeSpan.FromSeconds(2), WriteTimeout = TimeSpan.FromSeconds(2) };
        using var sink = new KafkaEventSink(options);
        try
        {
            sink.Open();
            sink.Write(batches[0].Changes, batches[0].Through);
            Assert.Equal(Expected(batches[0].Changes).Count, Read(topic, bootstrap).Count);
        }
        finally
        {
            host.Dispose(); // the broker is gone
        }
        var clock = Stopwatch.StartNew();
        Assert.Throws<KafkaSinkException>(() => sink.Write(batches[1].Changes, batches[1].Through));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"Write took {clock.Elapsed}");
        clock.Restart();
        Assert.Throws<KafkaSinkException>(() => sink.Open());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"Open took {clock.Elapsed}");
        Assert.Equal(batches[0].Through, new KafkaCheckpointFile(dir.Path, topic).Read());
    }

    [Fact]
    public void Under_the_sink_runner_a_transient_failure_is_retried_and_every_event_arrives()
    {
        using var dir = new TempDir();
        string topic = KafkaTestBroker.NewTopic("hub");
        var commands = new CommandBuilder().Workload(seed: 5, wallets: 25, count: 3_000);
        // The journal the hub follows, written by a real engine.
        long now = LedgerChanges.StartMs;
        var engineOptions = new RamPay.Engine.EngineOptions
        {
            DataDirectory = Path.Combine(dir.Path, "data"), Clock = () => now += LedgerChanges.StepMs, Fsync = false,
            SnapshotEveryCommands = 0, SnapshotOnStop = false, TickIntervalMs = 0, Ledger = LedgerChanges.LedgerOptions,
        };
        using (var engine = RamPay.Engine.RamPayEngine.Start(engineOptions))
        {
            foreach (var c in commands) engine.Submit(c.Command, 0, c.Attachment);
            engine.Stop();
        }
        long head = commands.Count;
        // The journal "grows" while the hub runs, 150 records at a time, so that the hub hands on many batches.
        long visible = 0;
        var inner = new KafkaEventSink(Options(topic, Path.Combine(dir.Path, "sinks")));
        var flaky = new FlakySink(inner, failWrites: [2, 3]);
        var hub = new SinkHub(
            new SinkHubOptions
            {
                SnapshotDirectory = engineOptions.SnapshotDirectory, JournalDirectory = engineOptions.JournalDirectory,
                StateDirectory = Path.Combine(dir.Path, "sinks"), Ledger = engineOptions.Ledger, BatchChanges = 512,
                RetryMin = TimeSpan.FromMilliseconds(10), RetryMax = TimeSpan.FromMilliseconds(50),
            },
            [flaky], () => Interlocked.Read(ref visible), () => now);
        using (hub)
        {
            hub.Start();
            var runner = hub.Sinks.Single();
            var deadline = Stopwatch.StartNew();
            while (runner.Checkpoint.Sequence < head && deadline.Elapsed < TimeSpan.FromSeconds(60) && runner.Error is not { Fatal: true })
            {
                // The next records appear once the sink has written all that was there (so each step is a batch of its own).
                if (runner.Opened && runner.Checkpoint.Sequence >= visible) Interlocked.Exchange(ref visible, Math.Min(head, visible + 150));
                Thread.Sleep(5);
            }
            Assert.Null(hub.FollowerError);
            Assert.Equal(head, runner.Checkpoint.Sequence);
            Assert.Equal(2, runner.Failures);
            Assert.True(runner.BatchesWritten >= 10, $"{runner.BatchesWritten} batches");
            Assert.Equal(runner.BatchesWritten + 2, flaky.Writes);
        }
        var received = Read(topic);
        var expected = Expected(LedgerChanges.Run(commands));
        Assert.Equal(expected.Count, received.Count); // the failures happened before anything was sent
        AssertPublished(expected, received);
        AssertInOrderPerPartition(received);
    }

    [Fact]
    public void The_checkpoint_names_its_topic_and_refuses_another_or_a_malformed_file()
    {
        using var dir = new TempDir();
        var file = new KafkaCheckpointFile(dir.Path, "a.topic");
        Assert.Equal(SinkCheckpoint.None, file.Read());
        file.Write(new SinkCheckpoint(42, 1_700_000_000_123));
        Assert.Equal(new SinkCheckpoint(42, 1_700_000_000_123), new KafkaCheckpointFile(dir.Path, "a.topic").Read());
        Assert.Equal("rampay-kafka-checkpoint 1 42 1700000000123 a.topic\n", File.ReadAllText(file.Path));
        Assert.False(File.Exists(file.Path + ".tmp"));
        var other = Assert.Throws<InvalidOperationException>(() => new KafkaCheckpointFile(dir.Path, "b.topic").Read());
        Assert.Contains("a.topic", other.Message, StringComparison.Ordinal);
        File.WriteAllText(file.Path, "garbage");
        Assert.Throws<InvalidDataException>(() => file.Read());
    }

    [Fact]
    public void Options_refuse_what_would_break_the_guarantees()
    {
        var ok = new KafkaSinkOptions { BootstrapServers = "127.0.0.1:9092", CheckpointDirectory = "/tmp/x" };
        ok.Validate();
        Assert.Equal("rampay.events", ok.Topic);
        Assert.Throws<ArgumentException>(() => (ok with { ProducerProperties = new Dictionary<string, string> { ["enable.idempotence"] = "false" } }).Validate());
        Assert.Throws<ArgumentException>(() => (ok with { ProducerProperties = new Dictionary<string, string> { ["acks"] = "1" } }).Validate());
        Assert.Throws<ArgumentException>(() => (ok with { Topic = "bad topic" }).Validate());
        Assert.Throws<ArgumentException>(() => (ok with { Compression = "brotli" }).Validate());
        Assert.Throws<ArgumentException>(() => new KafkaEventSink(ok with { BootstrapServers = "" }));
    }

    /// <summary>Throws on the given write calls (1-based) before passing anything on: a Kafka outage as the runner sees it.</summary>
    private sealed class FlakySink(IChangeSink inner, int[] failWrites) : IChangeSink
    {
        private int _writes;
        public int Writes => _writes;
        public string Name => inner.Name;
        public SinkCheckpoint Open() => inner.Open();
        public void Write(ReadOnlySpan<Change> changes, SinkCheckpoint through)
        {
            if (failWrites.Contains(++_writes)) throw new KafkaSinkException($"injected failure of write {_writes}");
            inner.Write(changes, through);
        }
        public void Dispose() => inner.Dispose();
    }
}
