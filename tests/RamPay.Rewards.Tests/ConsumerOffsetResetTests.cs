using System.Globalization;
using System.Text;
using Confluent.Kafka;
using RamPay.Kafka;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// A worker whose committed offset fell out of the broker's retention while it was stopped (KafkaEventSource,
/// <c>auto.offset.reset=error</c>): it must not jump silently to the earliest kept offset, as it did with
/// <c>earliest</c>, but log an ERROR naming the topic, partition and skipped offsets and count them in
/// <c>rampay_worker_skipped_events_total</c> (the RampayConsumerSkippedEvents alert), then go on from the earliest
/// offset kept. A new group (no committed offset) still starts at the beginning, without an error. The broker is
/// librdkafka's mock (tools/kafka-mock), which keeps at most 5 MiB of message sets per partition (rdkafka_mock.c,
/// <c>mpart->max_size</c>) and drops the oldest beyond that: the test writes 8 MiB under a stopped worker. The worker runs
/// the <c>archive</c> consumer: the offset handling is KafkaEventSource's, shared by every role (rewards, analytics).
/// </summary>
[Trait("Category", "Integration")]
public sealed class ConsumerOffsetResetTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_committed_offset_the_broker_dropped_is_an_error_and_a_metric_not_a_silent_jump()
    {
        const string topic = "rampay.offset.reset";
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:1");
        string outDir = Path.Combine(Path.GetTempPath(), "rampay-offset-reset-" + Guid.NewGuid().ToString("N"));
        int port = RewardsWorkerTests.FreePort();
        WorkerProcess Start() => new(["archive", "--kafka", broker.Bootstrap, "--group", "reset-test", "--topic", topic, "--out", outDir,
            "--http-port", port.ToString(CultureInfo.InvariantCulture)]);
        KafkaNativeLibrary.EnsureLoaded();
        using var producer = new ProducerBuilder<Null, byte[]>(new ProducerConfig { BootstrapServers = broker.Bootstrap, CompressionType = CompressionType.None, LingerMs = 5 }).Build();
        long sequence = 0;
        void Produce(int count, int padBytes)
        {
            string pad = new('x', padBytes);
            for (int i = 0; i < count; i++)
            {
                sequence++;
                string json = $"{{\"event_id\":\"{sequence}-0-0\",\"type\":\"AccountFrozen\",\"version\":1,\"sequence\":{sequence},\"index\":0,\"ordinal\":0,\"key\":7,\"pad\":\"{pad}\"}}";
                producer.Produce(new TopicPartition(topic, 0), new Message<Null, byte[]> { Value = Encoding.UTF8.GetBytes(json) });
            }
            Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(60)));
        }
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
        try
        {
            // 1. A new group: no committed offset, so the worker starts at the beginning and reads all 100 events, with no error.
            Produce(100, 10);
            using (var first = Start())
            {
                var metrics = await MetricsWhenAsync(http, first, m => m.GetValueOrDefault("rampay_worker_events_total") >= 100);
                Assert.Equal(100, metrics["rampay_worker_events_total"]);
                Assert.Equal(0, metrics["rampay_worker_offset_resets_total"]);
                Assert.Equal(0, metrics["rampay_worker_skipped_events_total"]);
                Assert.DoesNotContain("NEVER READ", first.Output, StringComparison.Ordinal);

                // 2. The worker stops (SIGKILL): its committed offset is 100.
                first.Kill();
            }

            // 3. 8 MiB more while no worker reads: the broker keeps 5 MiB per partition, so offsets 0 to 100 and more are dropped.
            Produce(200, 40_000);
            var kept = WatermarksOf(broker.Bootstrap, topic);
            output.WriteLine($"the broker keeps offsets {kept.Low} to {kept.High - 1}");
            Assert.True(kept.Low.Value > 100, $"the mock kept offset 100 (low watermark {kept.Low}): nothing to test");

            // 4. The worker again: its committed offset (100) is gone. An ERROR names the range, the metric counts it, and it
            //    goes on from the earliest offset kept (every kept event read).
            using var second = Start();
            long expectedSkipped = kept.Low.Value - 100;
            var after = await MetricsWhenAsync(http, second, m => m.GetValueOrDefault("rampay_worker_events_total") >= kept.High.Value - kept.Low.Value);
            output.WriteLine(second.Tail(2_000));
            Assert.Equal(1, after["rampay_worker_offset_resets_total"]);
            Assert.Equal(expectedSkipped, after["rampay_worker_skipped_events_total"]);
            Assert.Equal(kept.High.Value - kept.Low.Value, after["rampay_worker_events_total"]);
            Assert.Contains($"topic {topic} partition 0: the committed offset 100 is no longer on the broker", second.Output, StringComparison.Ordinal);
            Assert.Contains($"offsets 100 to {kept.Low.Value - 1} ({expectedSkipped} events) were NEVER READ", second.Output, StringComparison.Ordinal);
            // The archive holds the kept events and none of the skipped ones (event ids are the sequences, from 1).
            Assert.True(File.Exists(Path.Combine(outDir, $"{kept.Low.Value + 1}-0-0.json")));
            Assert.False(File.Exists(Path.Combine(outDir, $"{kept.Low.Value}-0-0.json")));
        }
        finally
        {
            try { Directory.Delete(outDir, recursive: true); } catch (IOException) { }
        }
    }

    private static WatermarkOffsets WatermarksOf(string bootstrap, string topic)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = bootstrap, GroupId = "reset-test-watermarks" }).Build();
        return consumer.QueryWatermarkOffsets(new TopicPartition(topic, 0), TimeSpan.FromSeconds(30));
    }

    /// <summary>The worker's rampay_worker_* counters, read until <paramref name="done"/> holds (3 minutes at most).</summary>
    private static async Task<Dictionary<string, long>> MetricsWhenAsync(HttpClient http, WorkerProcess worker, Func<Dictionary<string, long>, bool> done)
    {
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (true)
        {
            if (worker.HasExited) throw new InvalidOperationException("the worker exited:\n" + worker.Tail());
            var metrics = new Dictionary<string, long>();
            try
            {
                foreach (string line in (await http.GetStringAsync("/metrics")).Split('\n'))
                    if (line.StartsWith("rampay_worker_", StringComparison.Ordinal) && line.Contains('{', StringComparison.Ordinal))
                        metrics[line[..line.IndexOf('{', StringComparison.Ordinal)].Replace("_total_total", "_total", StringComparison.Ordinal)] = (long)double.Parse(line[(line.LastIndexOf('}') + 2)..].Split(' ')[0], CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { } // not listening yet, or slow on a loaded machine
            if (metrics.Count > 0 && done(metrics)) return metrics;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the worker's metrics never got there ({string.Join(", ", metrics)}):\n" + worker.Tail());
            await Task.Delay(100);
        }
    }
}
