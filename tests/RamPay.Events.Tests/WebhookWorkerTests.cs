using System.Net;
using RamPay.Server.Tests;

namespace RamPay.Events.Tests;

/// <summary>
/// <c>rampay-worker webhooks</c> processes sharing the PostgreSQL store with the server (a schema of its own): two
/// workers in one group on a real Kafka-protocol broker, every first attempt times out (a slow receiver), one worker is
/// SIGKILLed while it holds claimed deliveries mid-retry, and the other finishes every delivery; the server's admin
/// endpoints list what the workers delivered.
/// </summary>
[Trait("Category", "Integration")]
public sealed class WebhookWorkerTests
{
    [Fact]
    public async Task A_surviving_worker_finishes_the_retries_of_a_SIGKILLed_one_and_the_server_lists_them()
    {
        using var schema = new TestSchema();
        string topic = "rampay.webhooks.test";
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:2");
        await using var server = await ServerProcess.StartAsync($"Kafka:BootstrapServers={broker.Bootstrap}", $"Kafka:Topic={topic}", "Fraud:Enabled=false",
            "Webhooks:AllowPrivateNetworks=true", "Webhooks:InServer=false", $"Webhooks:SharedStore={schema.ConnectionString}", $"Webhooks:SharedStoreSchema={schema.Name}");
        var api = new Api(server);
        string admin = await api.AdminTokenAsync();
        // 1. A receiver slower than the workers' timeout: every attempt fails until it speeds up.
        using var receiver = new WebhookReceiver { Delay = TimeSpan.FromSeconds(3) };
        string endpoint = (await api.PostAsync("/v1/webhook_endpoints", admin, new { url = receiver.Url(), enabled_events = new[] { "PaymentApproved" } }, key: ""))
            .Expect(HttpStatusCode.Created).Str("id");
        var env = new Dictionary<string, string>
        {
            ["RAMPAY_WEBHOOKS__SHAREDSTORE"] = schema.ConnectionString, ["RAMPAY_WEBHOOKS__SHAREDSTORESCHEMA"] = schema.Name,
            ["RAMPAY_WEBHOOKS__ALLOWPRIVATENETWORKS"] = "true", ["RAMPAY_WEBHOOKS__TIMEOUTMS"] = "1000", ["RAMPAY_WEBHOOKS__LEASEMS"] = "4000",
            ["RAMPAY_WEBHOOKS__RETRYBASEMS"] = "300", ["RAMPAY_WEBHOOKS__BREAKERFAILURES"] = "1000",
        };
        string[] args = ["webhooks", "--kafka", broker.Bootstrap, "--group", "hooks", "--topic", topic];
        using var a = new WorkerProcess(args, env);
        using var b = new WorkerProcess(args, env);
        string Outputs() => $"worker a:\n{a.Output}\nworker b:\n{b.Output}\nserver:\n{server.Describe()}";
        if (!await WorkerProcess.AllJoinedAsync(TimeSpan.FromSeconds(90), a, b)) Assert.Fail($"timed out waiting for both workers in the group. {Outputs()}");
        // 2. Payments: their PaymentApproved events go through the topic to both workers and into the shared store.
        var users = new List<TestUser>();
        for (int i = 0; i < 4; i++) users.Add(await api.SignUpAsync(deposit: 100_000));
        const int payments = 16;
        for (int i = 0; i < payments; i++) await api.PayAsync(users[i % users.Count], users[(i + 1) % users.Count].WalletId, 10 + i);
        async Task<List<System.Text.Json.Nodes.JsonNode>> Deliveries(string? status)
        {
            var page = (await api.GetAsync($"/v1/admin/webhook_deliveries?limit=100{(status is null ? "" : "&status=" + status)}", admin)).Expect(HttpStatusCode.OK);
            return [.. page["data"]!.AsArray().Select(n => n!).Where(n => n.Str("endpoint_id") == endpoint)];
        }
        // 3. Every delivery (the payments' and the sign-up deposits' PaymentApproved) has failed at least once (a retry is
        // due or claimed) before the kill.
        int total = 0;
        await WaitUntil(async () => (await Deliveries("pending")) is { Count: >= payments } p && p.All(d => d.Long("attempts") >= 1) && (total = p.Count) > 0, "every delivery failed once", Outputs);
        // 4. SIGKILL worker a mid-retry (its attempts hang on the slow receiver, their claims stay), then the receiver speeds up.
        a.Kill();
        receiver.Delay = TimeSpan.Zero;
        // 5. Worker b delivers everything: the due retries at once, a's claimed ones once their lease (4 s) has passed.
        await WaitUntil(async () => (await Deliveries("succeeded")).Count == total, "every delivery succeeded through worker b", Outputs, seconds: 120);
        var delivered = await Deliveries("succeeded");
        Assert.All(delivered, d => Assert.True(d.Long("attempts") >= 2, $"{d.Str("event_id")} succeeded after {d.Long("attempts")} attempts: its first (slow receiver) should have failed"));
        var received = receiver.Requests.Where(r => r.EventType == "PaymentApproved" && r.Path == "/hook").Select(r => r.EventId!).Distinct().ToHashSet();
        Assert.Superset(delivered.Select(d => d.Str("event_id")).ToHashSet(), received);
        Assert.Equal(total, received.Count);
        // 6. The audit log shows the workers' deliveries too.
        var audit = (await api.GetAsync("/v1/admin/notifications?channel=webhook&status=sent&limit=100", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.Equal(total, audit.Count(n => n!.Str("destination") == receiver.Url()));
    }

    private static async Task WaitUntil(Func<Task<bool>> done, string what, Func<string> context, int seconds = 90)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await done())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for {what}. {context()}");
            await Task.Delay(200);
        }
    }
}
