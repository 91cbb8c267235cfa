using System.Net;
using RamPay.Server.Tests;

namespace RamPay.Events.Tests;

/// <summary>
/// <c>rampay-worker</c> processes on a real Kafka-protocol broker (librdkafka's mock cluster, tools/kafka-mock), fed by
/// a real server's Kafka sink: two workers in one group split the partitions; one is killed (SIGKILL) and the other
/// takes its partitions over; every event reaches the archive, byte for byte as the events API serves it.
/// </summary>
[Trait("Category", "Integration")]
public sealed class WorkerTests
{
    [Fact]
    public async Task Two_workers_in_a_group_archive_every_event_and_one_survives_the_others_SIGKILL()
    {
        string topic = "rampay.worker.test";
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:4");
        await using var server = await ServerProcess.StartAsync($"Kafka:BootstrapServers={broker.Bootstrap}", $"Kafka:Topic={topic}", "Fraud:Enabled=false");
        var api = new Api(server);
        string archive = Directory.CreateTempSubdirectory("rampay-worker-archive-").FullName;
        try
        {
            string[] args = ["archive", "--kafka", broker.Bootstrap, "--group", "archivers", "--topic", topic, "--out", archive];
            using var a = new WorkerProcess(args);
            using var b = new WorkerProcess(args);
            // Both in the group before anything is paid (a late join during the kill below would be a rebalance in flight).
            await WorkerProcess.AllJoinedAsync(TimeSpan.FromSeconds(90), a, b);
            var users = new List<TestUser>();
            for (int i = 0; i < 6; i++) users.Add(await api.SignUpAsync(deposit: 100_000));
            async Task Pay(int n)
            {
                for (int i = 0; i < n; i++) await api.PayAsync(users[i % users.Count], users[(i + 1) % users.Count].WalletId, 10 + i);
            }
            await Pay(30);
            await WaitForArchive(api, archive, a, b);
            // 1. SIGKILL one worker; 2. more payments; 3. the other takes its partitions over (after the session timeout).
            a.Kill();
            await Pay(30);
            await WaitForArchive(api, archive, a, b);
        }
        finally
        {
            Directory.Delete(archive, recursive: true);
        }
    }

    /// <summary>Waits until the archive holds every event the server's log has, with the same bytes.</summary>
    private static async Task WaitForArchive(Api api, string archive, WorkerProcess a, WorkerProcess b)
    {
        string admin = await api.AdminTokenAsync();
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            var events = new List<(string Id, string Json)>();
            string? after = null;
            while (true)
            {
                var page = (await api.GetAsync("/v1/events?limit=100" + (after is null ? "" : "&starting_after=" + after), admin)).Expect(HttpStatusCode.OK);
                foreach (var e in page["data"]!.AsArray()) events.Add((e!.Str("event_id"), e!.ToJsonString()));
                if (!page["has_more"]!.GetValue<bool>()) break;
                after = events[^1].Id;
            }
            var missing = events.Where(e => !File.Exists(Path.Combine(archive, e.Id + ".json"))).ToList();
            if (missing.Count == 0 && events.Count > 0)
            {
                foreach (var (id, json) in events)
                    Assert.Equal(System.Text.Json.Nodes.JsonNode.Parse(json)!.ToJsonString(), System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllBytes(Path.Combine(archive, id + ".json")))!.ToJsonString());
                return;
            }
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{missing.Count} of {events.Count} events never reached the archive (first {missing.FirstOrDefault().Id}).\nworker a:\n{a.Output}\nworker b:\n{b.Output}");
            await Task.Delay(200);
        }
    }
}
