using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using RamPay.Server.Tests;

namespace RamPay.Events.Tests;

/// <summary>
/// Issue 13, "Workers": a <c>rampay-worker</c> exposes <c>/health/*</c> and <c>/metrics</c> like the server. A real worker
/// process on a real Kafka-protocol broker, fed by a real server's Kafka sink: live at once, ready once its group assigned
/// it partitions, and its events counter in the Prometheus text counts the events it consumed.
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class WorkerEndpointsTests
{
    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static async Task<T> WaitFor<T>(Func<Task<T?>> poll, string what, WorkerProcess worker, int seconds = 90) where T : class
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            try
            {
                if (await poll() is { } found) return found;
            }
            catch (HttpRequestException) { } // not listening yet
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{what}\nworker:\n{worker.Tail()}");
            await Task.Delay(100);
        }
    }

    /// <summary>The worker's <c>rampay_worker_events_total{consumer="archive"}</c>, or null while it has no such series.</summary>
    private static long? EventsCounted(string metrics) =>
        EventsLine().Match(metrics) is { Success: true } m ? (long)double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : null;

    [GeneratedRegex("^rampay_worker_events_total(?:_total)?\\{[^}]*consumer=\"archive\"[^}]*\\} ([0-9.e+]+)", RegexOptions.Multiline)]
    private static partial Regex EventsLine();

    [Fact]
    public async Task A_worker_answers_health_live_and_ready_and_its_metrics_count_the_events_it_consumed()
    {
        string topic = "rampay.worker.endpoints";
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:2");
        await using var server = await ServerProcess.StartAsync($"Kafka:BootstrapServers={broker.Bootstrap}", $"Kafka:Topic={topic}", "Fraud:Enabled=false");
        var api = new Api(server);
        string archive = Directory.CreateTempSubdirectory("rampay-worker-endpoints-").FullName;
        int port = FreePort();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };
        try
        {
            using var worker = new WorkerProcess(["archive", "--kafka", broker.Bootstrap, "--group", "endpoints", "--topic", topic, "--out", archive, "--http-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);

            // 1. Live as soon as it listens; ready (200) once the group assigned it partitions, 503 "joining" before.
            var live = await WaitFor(async () => { using var r = await http.GetAsync("/health/live"); return r.StatusCode == HttpStatusCode.OK ? await r.Content.ReadAsStringAsync() : null; }, "/health/live answered 200", worker);
            Assert.Contains("\"live\"", live, StringComparison.Ordinal);
            var ready = await WaitFor(async () =>
            {
                using var r = await http.GetAsync("/health/ready");
                string body = await r.Content.ReadAsStringAsync();
                if (r.StatusCode == HttpStatusCode.OK) return body;
                Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
                Assert.Contains("\"joining\"", body, StringComparison.Ordinal);
                return null;
            }, "/health/ready answered 200", worker);
            Assert.Contains("\"ready\"", ready, StringComparison.Ordinal);
            Assert.True(worker.Joined, "ready before the worker logged its assignment");

            // 2. The metrics endpoint: Prometheus text with the worker's counter for its consumer.
            long before = EventsCounted(await http.GetStringAsync("/metrics")) ?? 0;

            // 3. Payments make events; the counter moves by at least as many as reached the archive.
            var (alice, bob) = await api.PairAsync(100_000);
            for (int i = 0; i < 10; i++) await api.PayAsync(alice, bob.WalletId, 10 + i);
            // The worker started with an empty archive and a zero counter: it counts at least every event it archived.
            int archived = 0;
            long after = 0;
            await WaitFor(async () =>
            {
                archived = Directory.GetFiles(archive, "*.json").Length;
                long counted = EventsCounted(await http.GetStringAsync("/metrics")) ?? 0;
                if (archived < 20 || counted < archived || counted <= before) return null;
                after = counted;
                return "counted";
            }, "the worker archived the payments' events and counted them", worker);
            Assert.True(after >= archived && after > before, $"counted {after} (before the payments {before}), archived {archived}");
            string metrics = await http.GetStringAsync("/metrics");
            Assert.Contains("# TYPE rampay_worker_events", metrics, StringComparison.Ordinal);
            Assert.Contains("rampay_worker_failures", metrics, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(archive, recursive: true);
        }
    }
}
