using System.Diagnostics;
using System.Text;
using System.Text.Json;
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
    /// of each partition as it stands now. Read with kcat (Debian's, JSON envelopes): Confluent.Kafka 2.15's consumer
    /// calls rd_kafka_message_leader_epoch, which Debian's librdkafka 2.0.2 does not have (its producer and admin
    /// client need nothing newer).
    /// </summary>
    public static List<Message> ReadAll(string topic, string? bootstrap = null, TimeSpan? timeout = null)
    {
        using var kcat = StartKcat(topic, bootstrap ?? Bootstrap);
        var stderr = kcat.StandardError.ReadToEndAsync();
        var messages = new List<Message>();
        string? line;
        while ((line = kcat.StandardOutput.ReadLine()) is not null) messages.Add(Parse(line));
        if (!kcat.WaitForExit((int)(timeout ?? TimeSpan.FromSeconds(60)).TotalMilliseconds))
        {
            kcat.Kill();
            throw new TimeoutException($"kcat did not finish reading {topic}");
        }
        Assert.True(kcat.ExitCode == 0, $"kcat exited with {kcat.ExitCode}: {stderr.Result}");
        return [.. messages.OrderBy(m => m.Partition).ThenBy(m => m.Offset)];
    }

    /// <summary><see cref="ReadAll"/> for async tests: the same read, awaited rather than blocking a thread.</summary>
    public static async Task<List<Message>> ReadAllAsync(string topic, string? bootstrap = null, TimeSpan? timeout = null)
    {
        using var kcat = StartKcat(topic, bootstrap ?? Bootstrap);
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        var stderr = kcat.StandardError.ReadToEndAsync(cancel.Token);
        var messages = new List<Message>();
        try
        {
            string? line;
            while ((line = await kcat.StandardOutput.ReadLineAsync(cancel.Token)) is not null) messages.Add(Parse(line));
            await kcat.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            kcat.Kill();
            throw new TimeoutException($"kcat did not finish reading {topic} from {bootstrap}");
        }
        Assert.True(kcat.ExitCode == 0, $"kcat exited with {kcat.ExitCode}: {await stderr}");
        return [.. messages.OrderBy(m => m.Partition).ThenBy(m => m.Offset)];
    }

    private static Process StartKcat(string topic, string bootstrap)
    {
        var start = new ProcessStartInfo("kcat")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q" }) start.ArgumentList.Add(arg);
        return Process.Start(start) ?? throw new InvalidOperationException("kcat did not start (apt-get install kcat)");
    }

    /// <summary>One line of kcat's <c>-J</c> output.</summary>
    private static Message Parse(string line)
    {
        using var json = JsonDocument.Parse(line);
        var root = json.RootElement;
        var headers = new Dictionary<string, string>();
        if (root.TryGetProperty("headers", out var h))
        {
            var items = h.EnumerateArray().Select(e => e.GetString()!).ToArray();
            for (int i = 0; i + 1 < items.Length; i += 2) headers[items[i]] = items[i + 1];
        }
        return new Message(
            root.GetProperty("partition").GetInt32(), root.GetProperty("offset").GetInt64(), root.GetProperty("ts").GetInt64(),
            Encoding.UTF8.GetBytes(root.GetProperty("key").GetString() ?? ""), Encoding.UTF8.GetBytes(root.GetProperty("payload").GetString() ?? ""), headers);
    }
}
