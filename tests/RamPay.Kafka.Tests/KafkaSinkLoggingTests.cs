using Microsoft.Extensions.Logging;
using RamPay.Kafka;
using RamPay.TestSupport;

namespace RamPay.Kafka.Tests;

/// <summary>The Kafka sink logs librdkafka's warnings and errors through the ILogger it is given, as structured fields.</summary>
public sealed class KafkaSinkLoggingTests
{
    [Fact]
    public void Librdkafka_s_complaints_about_an_unreachable_broker_reach_the_logger_with_their_fields()
    {
        string dir = Path.Combine(Path.GetTempPath(), "rampay-kafka-log-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var logger = new RecordingLogger<KafkaEventSink>();
            using var sink = new KafkaEventSink(new KafkaSinkOptions
            {
                BootstrapServers = "127.0.0.1:1", // nothing listens there
                CheckpointDirectory = dir,
                OpenTimeout = TimeSpan.FromSeconds(3),
            }, logger);
            Assert.ThrowsAny<Exception>(() => sink.Open());
            var said = logger.Inner.Entries;
            Assert.NotEmpty(said);
            Assert.All(said, e =>
            {
                Assert.True(e.Level is LogLevel.Warning or LogLevel.Error, $"{e.Level}: {e.Message}");
                Assert.StartsWith("kafka: librdkafka ", e.Message, StringComparison.Ordinal);
                Assert.False(string.IsNullOrEmpty(e.Fields["KafkaFacility"] as string), e.Message);
                Assert.False(string.IsNullOrEmpty(e.Fields["KafkaMessage"] as string), e.Message);
            });
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
