using RamPay.Server.Tests;
using RamPay.Worker;

namespace RamPay.Events.Tests;

/// <summary>
/// <c>rampay-worker --kafka-properties "k=v;k=v"</c> (or <c>RAMPAY_KAFKA_CONSUMER_PROPERTIES</c>): other librdkafka
/// consumer properties, for a real cluster's security settings. The ones the worker's guarantees rest on are refused;
/// the others reach librdkafka (it refuses a property it does not know, and the worker then exits 1, not 0).
/// </summary>
public sealed class WorkerKafkaPropertiesTests
{
    [Fact]
    public void Properties_are_parsed_as_key_value_pairs_and_reserved_ones_are_refused()
    {
        var p = WorkerOptions.ParseProperties(" security.protocol=SASL_SSL ; sasl.password=a=b;;");
        Assert.Equal(2, p.Count);
        Assert.Equal("SASL_SSL", p["security.protocol"]);
        Assert.Equal("a=b", p["sasl.password"]); // a value may hold '='
        Assert.Empty(WorkerOptions.ParseProperties(null));
        Assert.Empty(WorkerOptions.ParseProperties(""));
        foreach (string reserved in WorkerOptions.ReservedProperties)
            Assert.Contains("set by the worker", Assert.Throws<ArgumentException>(() => WorkerOptions.ParseProperties(reserved + "=x")).Message);
        foreach (string bad in (string[])["novalue", "=x", "Upper.Case=1", "spa ce=1"])
            Assert.Contains("is not key=value", Assert.Throws<ArgumentException>(() => WorkerOptions.ParseProperties(bad)).Message);
    }

    [Fact]
    [Trait("Category", "Integration")]
    public async Task A_reserved_property_is_a_usage_error_and_one_librdkafka_refuses_stops_the_worker_with_exit_code_1()
    {
        string topic = "rampay.worker.props";
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:2");
        string outDir = Directory.CreateTempSubdirectory("rampay-worker-props-").FullName;
        try
        {
            string[] common = ["analytics", "--kafka", broker.Bootstrap, "--topic", topic, "--out", outDir];
            // 1. Reserved: refused before anything starts (usage error, 2).
            using (var w = new WorkerProcess([.. common, "--group", "g1", "--kafka-properties", "enable.auto.commit=true"]))
            {
                Assert.Equal(2, await w.ExitCodeAsync(TimeSpan.FromSeconds(60)));
                Assert.Contains("'enable.auto.commit' is set by the worker", w.Output);
            }
            // 2. Unknown to librdkafka, by flag and by environment: it reached librdkafka, which refused it; the worker exits 1.
            using (var w = new WorkerProcess([.. common, "--group", "g2", "--kafka-properties", "no.such.property=1"]))
            {
                Assert.Equal(1, await w.ExitCodeAsync(TimeSpan.FromSeconds(60)));
                Assert.Contains("no.such.property", w.Output);
            }
            using (var w = new WorkerProcess([.. common, "--group", "g3"], new Dictionary<string, string> { ["RAMPAY_KAFKA_CONSUMER_PROPERTIES"] = "fetch.queue.backoff.ms=not-a-number" }))
            {
                Assert.Equal(1, await w.ExitCodeAsync(TimeSpan.FromSeconds(60)));
                Assert.Contains("fetch.queue.backoff.ms", w.Output);
            }
            // 3. Valid ones: the worker joins its group as usual.
            using (var w = new WorkerProcess([.. common, "--group", "g4", "--kafka-properties", "client.id=props-test;fetch.queue.backoff.ms=20"]))
                Assert.True(await WorkerProcess.AllJoinedAsync(TimeSpan.FromSeconds(90), w), w.Tail());
        }
        finally
        {
            Directory.Delete(outDir, recursive: true);
        }
    }
}
