using System.Collections.Concurrent;
using System.Text.Json;
using Confluent.Kafka;

namespace RamPay.Kafka.Tests;

/// <summary>
/// The sink's topic as an application reads it: a consumer group of two members splits the topic's 8 partitions;
/// when one member leaves, the group rebalances and the other carries on from the offsets the first committed,
/// so nothing is lost. (Nothing is read twice either: each member commits whenever it has caught up, and the test
/// lets one leave only once both have.)
/// </summary>
[Trait("Category", "Integration")]
public class ConsumerGroupTests
{
    private const string Topic = "rampay.events";
    private const int Partitions = 8;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Two_consumers_in_one_group_split_the_8_partitions_and_after_one_leaves_the_other_takes_them_all_losing_nothing()
    {
        // A broker of this test's own, with the production topic's shape (8 partitions), made up front.
        await using var broker = await PrivateKafkaBroker.StartAsync($"{Topic}:{Partitions}");
        using var dir = new TempDir();
        var changes = LedgerChanges.Run(new CommandBuilder().Workload(seed: 23, wallets: 64, count: 3_000));
        var batches = LedgerChanges.Batches(changes, 500);
        int half = batches.Count / 2;
        var firstIds = Ids(batches.Take(half).SelectMany(b => b.Changes));
        var allIds = Ids(changes);
        Assert.True(firstIds.Count > 500 && allIds.Count > firstIds.Count + 500, $"{firstIds.Count} of {allIds.Count} events in the first half");

        using var sink = new KafkaEventSink(new KafkaSinkOptions { BootstrapServers = broker.Bootstrap, Topic = Topic, CheckpointDirectory = dir.Path });
        sink.Open();

        var received = new ConcurrentQueue<(string Member, string Id, int Partition, long Offset)>();
        string group = $"rampay-test-group-{Guid.NewGuid():N}";
        using var a = new GroupMember("a", broker.Bootstrap, group, received);
        using var b = new GroupMember("b", broker.Bootstrap, group, received);
        string State() => $"a: [{string.Join(",", a.Assignment)}], b: [{string.Join(",", b.Assignment)}], read {received.Count}; {a.Error}{b.Error}; {broker.Describe()}";

        // 1. Both members hold partitions: together all 8, none twice.
        await WaitUntilAsync(() => a.Assignment.Length > 0 && b.Assignment.Length > 0 && a.Assignment.Concat(b.Assignment).Order().SequenceEqual(Enumerable.Range(0, Partitions)),
            () => "the two members to split the partitions: " + State());
        int[] aHeld = a.Assignment;

        // 2. The first half is written; between them they read it, each from its own partitions.
        foreach (var (batch, through) in batches.Take(half)) sink.Write(batch, through);
        await WaitUntilAsync(() => firstIds.IsSubsetOf(received.Select(r => r.Id)) && a.CaughtUpAndCommitted && b.CaughtUpAndCommitted,
            () => $"the two members to read the first {firstIds.Count} events and commit: " + State());
        Assert.Equal(aHeld, a.Assignment); // no rebalance meanwhile
        Assert.All(received, r => Assert.Equal(aHeld.Contains(r.Partition) ? "a" : "b", r.Member));
        Assert.Contains(received, r => r.Member == "a");
        Assert.Contains(received, r => r.Member == "b");

        // 3. One member leaves (Close: its partitions are revoked, then it leaves the group); the group rebalances
        // and the other is given every partition.
        a.Stop();
        Assert.Null(a.Error);
        await WaitUntilAsync(() => b.Assignment.Length == Partitions, () => $"b to hold all {Partitions} partitions: " + State());

        // 4. The second half is written; b reads all of it, on a's former partitions from where a committed.
        foreach (var (batch, through) in batches.Skip(half)) sink.Write(batch, through);
        await WaitUntilAsync(() => allIds.IsSubsetOf(received.Select(r => r.Id)), () => $"b to read every event ({allIds.Count}): " + State());
        b.Stop();
        Assert.Null(b.Error);

        var list = received.ToList();
        Assert.Equal(allIds, list.Select(r => r.Id).ToHashSet()); // nothing lost, nothing foreign
        var twice = list.GroupBy(r => (r.Partition, r.Offset)).Where(g => g.Count() > 1).ToList();
        Assert.True(twice.Count == 0, $"read twice: {string.Join("; ", twice.GroupBy(g => g.Key.Partition).Select(p => $"partition {p.Key}: {p.Count()} offsets {p.Min(g => g.Key.Offset)}..{p.Max(g => g.Key.Offset)} by {string.Join("/", p.First().Select(r => r.Member))}"))}; a held [{string.Join(",", aHeld)}], refused commits a {a.RefusedCommits} b {b.RefusedCommits}");
        Assert.Equal(list.Count, list.Select(r => r.Id).Distinct().Count()); // nothing read twice
        // After the rebalance, b read on a's former partitions from exactly where a stopped: offsets without a gap.
        foreach (var partition in list.GroupBy(r => r.Partition))
        {
            var offsets = partition.Select(r => r.Offset).Order().ToList();
            Assert.Equal(Enumerable.Range(0, offsets.Count).Select(i => (long)i), offsets);
        }
        Assert.Contains(list, r => r.Member == "b" && aHeld.Contains(r.Partition) && r.Offset > 0 && list.Any(x => x.Member == "a" && x.Partition == r.Partition));
    }

    private static HashSet<string> Ids(IEnumerable<RamPay.Sinks.Change> changes) =>
        [.. LedgerChanges.Events(changes).Select(e => EventMapper.EventId(e.Change.Sequence, e.Change.Index, e.Event.Ordinal))];

    private static async Task WaitUntilAsync(Func<bool> condition, Func<string> what)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail("timed out waiting for " + what());
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// One member of a consumer group on a thread of its own (a consumer is used from one thread): it records every
    /// message it processes and commits its positions whenever it has caught up (a poll that finds nothing new), and
    /// again, if it can, when partitions are taken from it, so the next owner starts right after the last message it
    /// processed. The commit at a revocation is best effort: a broker may refuse it while the group rebalances
    /// (librdkafka's mock cluster does: REBALANCE_IN_PROGRESS), which is why the commit when caught up is the one relied on.
    /// </summary>
    private sealed class GroupMember : IDisposable
    {
        private readonly Thread _thread;
        private volatile bool _stop;
        private volatile int[] _assignment = [];
        private volatile string? _error;
        private volatile bool _caughtUpAndCommitted;
        private int _refusedCommits;

        public GroupMember(string name, string bootstrap, string group, ConcurrentQueue<(string, string, int, long)> received)
        {
            _thread = new Thread(() => Run(name, bootstrap, group, received)) { IsBackground = true, Name = "consumer " + name };
            _thread.Start();
        }

        /// <summary>The partitions it holds now.</summary>
        public int[] Assignment => _assignment;
        public string? Error => _error;
        /// <summary>Its last poll found nothing new, and its positions were committed after it.</summary>
        public bool CaughtUpAndCommitted => _caughtUpAndCommitted;
        /// <summary>Commits at a revocation that the broker refused (a rebalance in progress).</summary>
        public int RefusedCommits => Volatile.Read(ref _refusedCommits);

        private void Run(string name, string bootstrap, string group, ConcurrentQueue<(string, string, int, long)> received)
        {
            try
            {
                var config = KafkaTestConsumer.Config(bootstrap, group);
                // The mock cluster (Debian's librdkafka 2.0.2 in tools/kafka-mock) completes the rebalance after a
                // member's LeaveGroup only once that member's session has expired (45 s by default; seen in the
                // cgrp debug log): a short session keeps the test short. A real broker rebalances at the LeaveGroup.
                config.SessionTimeoutMs = 6_000;
                config.HeartbeatIntervalMs = 500;
                using var consumer = new ConsumerBuilder<byte[], byte[]>(config)
                    .SetLogHandler((_, _) => { })
                    .SetPartitionsAssignedHandler((_, assigned) => _assignment = [.. _assignment.Union(assigned.Select(p => p.Partition.Value)).Order()])
                    .SetPartitionsRevokedHandler((c, revoked) =>
                    {
                        try
                        {
                            Commit(c, revoked.Select(p => p.TopicPartition));
                        }
                        catch (KafkaException e) when (e.Error.Code == ErrorCode.RebalanceInProgress)
                        {
                            Interlocked.Increment(ref _refusedCommits);
                        }
                        _assignment = [.. _assignment.Except(revoked.Select(p => p.Partition.Value))];
                    })
                    .Build();
                consumer.Subscribe(Topic);
                while (!_stop)
                {
                    var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
                    if (result is null || result.IsPartitionEOF)
                    {
                        if (!_caughtUpAndCommitted && CommitWhenCaughtUp(consumer)) _caughtUpAndCommitted = true;
                        continue;
                    }
                    _caughtUpAndCommitted = false;
                    using var json = JsonDocument.Parse(result.Message.Value);
                    received.Enqueue((name, json.RootElement.GetProperty("event_id").GetString()!, result.Partition.Value, result.Offset.Value));
                }
                consumer.Close(); // revokes (the handler commits), then leaves the group: the others rebalance at once
            }
            catch (Exception e)
            {
                _error = $"consumer {name}: {e}";
            }
        }

        private static void Commit(IConsumer<byte[], byte[]> consumer, IEnumerable<TopicPartition> partitions)
        {
            var positions = partitions.Select(p => new TopicPartitionOffset(p, consumer.Position(p))).Where(p => p.Offset.Value >= 0).ToList();
            if (positions.Count > 0) consumer.Commit(positions);
        }

        private bool CommitWhenCaughtUp(IConsumer<byte[], byte[]> consumer)
        {
            try
            {
                Commit(consumer, consumer.Assignment);
                return true;
            }
            catch (KafkaException e) when (e.Error.Code == ErrorCode.RebalanceInProgress)
            {
                return false; // tried again at the next empty poll
            }
        }

        public void Stop()
        {
            _stop = true;
            if (!_thread.Join(TimeSpan.FromSeconds(60))) _error ??= "the consumer thread did not stop within 60 s";
        }

        public void Dispose() => Stop();
    }
}
