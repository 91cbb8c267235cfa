using System.Text;
using Confluent.Kafka;

namespace RamPay.Kafka.Tests;

/// <summary>
/// Which librdkafka RamPay's processes run on: the one bundled with Confluent.Kafka (librdkafka.redist, 2.16.x), never
/// the machine's (Debian's 2.0.2 is installed here for tools/kafka-mock, and Confluent.Kafka would fall back to it).
/// </summary>
[Trait("Category", "Integration")]
public class NativeLibraryTests
{
    /// <summary>The files named librdkafka* mapped into process <paramref name="pid"/> (Linux: /proc/PID/maps).</summary>
    public static List<string> LibrdkafkaFilesMappedBy(int pid) =>
    [
        .. File.ReadLines($"/proc/{pid}/maps")
            .Select(line => line.IndexOf('/') is int slash and >= 0 ? line[slash..] : "")
            .Where(path => Path.GetFileName(path).Contains("librdkafka", StringComparison.Ordinal))
            .Distinct(),
    ];

    public static string BundledPath(string baseDirectory) => Path.Combine(baseDirectory, KafkaNativeLibrary.BundledRelativePath);

    [Fact]
    public void This_process_runs_the_bundled_librdkafka_2_16_and_maps_no_other()
    {
        // Loaded by the module initializer (KafkaTestConsumer), before any test touched Confluent.Kafka.
        Assert.True(Library.IsLoaded);
        Assert.StartsWith("2.16.", Library.VersionString, StringComparison.Ordinal);
        Assert.True(Library.Version >= 0x02100000, $"librdkafka version 0x{Library.Version:x8}");
        string bundled = BundledPath(AppContext.BaseDirectory);
        Assert.Equal(bundled, KafkaNativeLibrary.LoadedPath);
        Assert.Equal([bundled], LibrdkafkaFilesMappedBy(Environment.ProcessId));
        // The build that .NET would pick by itself (it needs libsasl2.so.3, which Debian lacks) is next to it: the
        // resolver, not that file's absence, is what keeps it, and the machine's librdkafka, out.
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(bundled)!, "librdkafka.so")));
        KafkaNativeLibrary.EnsureLoaded(); // idempotent
    }

    [Fact]
    public void Its_producer_and_consumer_group_round_trip_through_a_broker()
    {
        // The consumer is what Debian's 2.0.2 could not run (EntryPointNotFoundException: rd_kafka_topic_partition_get_leader_epoch).
        string topic = KafkaTestBroker.NewTopic("native");
        using (var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = KafkaTestBroker.Bootstrap, EnableIdempotence = true, Acks = Acks.All })
                   .SetLogHandler((_, _) => { }).Build())
        {
            for (int i = 0; i < 100; i++)
                producer.Produce(topic, new Message<byte[], byte[]> { Key = Encoding.ASCII.GetBytes($"k{i % 7}"), Value = Encoding.ASCII.GetBytes($"v{i}") });
            Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
        }
        using var consumer = KafkaTestConsumer.Build(KafkaTestConsumer.Config(KafkaTestBroker.Bootstrap, $"rampay-test-native-{Guid.NewGuid():N}"));
        consumer.Subscribe(topic);
        var values = new HashSet<string>();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (values.Count < 100 && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { IsPartitionEOF: false } r) values.Add(Encoding.ASCII.GetString(r.Message.Value));
        }
        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"v{i}").ToHashSet(), values);
        consumer.Commit();
        consumer.Close();
        Assert.Equal([BundledPath(AppContext.BaseDirectory)], LibrdkafkaFilesMappedBy(Environment.ProcessId));
    }
}
