using System.Net;
using System.Text.Json.Nodes;
using RamPay.Server.Tests;

namespace RamPay.Events.Tests;

/// <summary>The events API of a real server process on the embedded default (no PostgreSQL, no Kafka).</summary>
public sealed class EventsApiTests
{
    private static async Task<JsonArray> WaitForEvents(Api api, string token, string query, Func<JsonArray, bool> done, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var page = (await api.GetAsync("/v1/events" + query, token)).Expect(HttpStatusCode.OK);
            var data = page["data"]!.AsArray();
            if (done(data)) return data;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"events never matched: {page.ToJsonString()}");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Each_user_sees_their_own_events_cut_to_their_side_and_admins_see_all()
    {
        await using var server = await ServerProcess.StartAsync();
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(10_000);
        var carol = await api.SignUpAsync();
        var paid = (await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 700, currency = "USD", description = "lunch", webhook_url = "https://alice.example/hook" }))
            .Expect(HttpStatusCode.Created);
        long paymentId = paid.Long("id");

        var aliceEvents = await WaitForEvents(api, alice.Token, "?limit=100", d => d.Any(e => e!["type"]!.GetValue<string>() == "PaymentApproved"));
        var approved = aliceEvents.First(e => e!["type"]!.GetValue<string>() == "PaymentApproved")!;
        Assert.Equal(paymentId, approved["payment"]!.Long("id"));
        Assert.NotNull(approved["balances"]!["from"]);
        Assert.Null(approved["balances"]!["to"]); // not Bob's balances
        Assert.Equal("https://alice.example/hook", approved["payment"]!.Str("webhook_url"));
        string id = approved.Str("event_id");

        var asBob = (await api.GetAsync($"/v1/events/{id}", bob.Token)).Expect(HttpStatusCode.OK);
        Assert.Null(asBob["balances"]!["from"]); // not Alice's balances
        Assert.NotNull(asBob["balances"]!["to"]);
        Assert.True(asBob["payment"]!.IsNull("webhook_url"));
        Assert.Equal("lunch", asBob["payment"]!.Str("description"));

        (await api.GetAsync($"/v1/events/{id}", carol.Token)).ExpectError(HttpStatusCode.NotFound, "event_not_found");
        var carolsEvents = (await api.GetAsync("/v1/events?limit=100", carol.Token)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.All(carolsEvents, e => Assert.NotEqual(id, e!.Str("event_id")));
        Assert.DoesNotContain(carolsEvents, e => e!.Str("type") == "UserRegistered");

        string admin = await api.AdminTokenAsync();
        var whole = (await api.GetAsync($"/v1/events/{id}", admin)).Expect(HttpStatusCode.OK);
        Assert.NotNull(whole["balances"]!["from"]);
        Assert.NotNull(whole["balances"]!["to"]);
        var registrations = await WaitForEvents(api, admin, "?type=UserRegistered&limit=100", d => d.Count >= 3);
        Assert.All(registrations, e => Assert.Equal("UserRegistered", e!.Str("type")));

        // Type prefixes, cursors and limits.
        var payments = (await api.GetAsync("/v1/events?type=Payment*&limit=100", alice.Token)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.All(payments, e => Assert.StartsWith("Payment", e!.Str("type"), StringComparison.Ordinal));
        var first = (await api.GetAsync("/v1/events?limit=1", alice.Token)).Expect(HttpStatusCode.OK);
        Assert.True(first["has_more"]!.GetValue<bool>());
        string newest = first["data"]![0]!.Str("event_id");
        var next = (await api.GetAsync($"/v1/events?limit=1&starting_after={newest}", alice.Token)).Expect(HttpStatusCode.OK);
        Assert.NotEqual(newest, next["data"]![0]!.Str("event_id"));
        var back = (await api.GetAsync($"/v1/events?limit=1&ending_before={next["data"]![0]!.Str("event_id")}", alice.Token)).Expect(HttpStatusCode.OK);
        Assert.Equal(newest, back["data"]![0]!.Str("event_id"));

        // Bad input is a 400 with a code, never a 500.
        (await api.GetAsync("/v1/events?limit=0", alice.Token)).ExpectError(HttpStatusCode.BadRequest, "invalid_limit");
        (await api.GetAsync("/v1/events?limit=101", alice.Token)).ExpectError(HttpStatusCode.BadRequest, "invalid_limit");
        (await api.GetAsync("/v1/events?starting_after=abc", alice.Token)).ExpectError(HttpStatusCode.BadRequest, "invalid_cursor");
        (await api.GetAsync("/v1/events?type=Pay%27ment", alice.Token)).ExpectError(HttpStatusCode.BadRequest, "invalid_type");
        (await api.GetAsync("/v1/events?starting_after=1-0-0&ending_before=2-0-0", alice.Token)).ExpectError(HttpStatusCode.BadRequest, "invalid_query");
        (await api.GetAsync("/v1/events/1-0", alice.Token)).ExpectError(HttpStatusCode.BadRequest, "invalid_event_id");
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.GetAsync("/v1/events", null)).Status);
    }

    [Fact]
    public async Task Events_survive_SIGKILL_and_every_acknowledged_payment_gets_its_events_once()
    {
        await using var server = await ServerProcess.StartAsync();
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(1_000_000);
        // 1. Payments acknowledged (durable in the journal), then SIGKILL at once: some events are not in the log yet.
        var ids = new List<long>();
        for (int i = 0; i < 40; i++) ids.Add((await api.PayAsync(alice, bob.WalletId, 10 + i)).Long("id"));
        await server.KillAsync();
        // 2. Restart: the log resumes from its checkpoint, so every payment has its PaymentApproved exactly once.
        await server.RestartAsync();
        api.ForgetAdminToken();
        string admin = await api.AdminTokenAsync();
        var approved = await WaitForEvents(api, admin, "?type=PaymentApproved&limit=100",
            d => ids.All(id => d.Any(e => e!["payment"]!.Long("id") == id)));
        var forAlice = approved.Where(e => e!["payment"]!.Long("from_account") == alice.WalletId).ToList();
        Assert.Equal(ids.Count, forAlice.Count);
        Assert.Equal(forAlice.Count, forAlice.Select(e => e!.Str("event_id")).Distinct().Count());
        // 3. The log's segment files are there, in the data folder, and a second restart changes nothing.
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(server.DataDirectory, "events"), "events-*.seg"));
        await server.StopAsync();
        await server.RestartAsync();
        api.ForgetAdminToken();
        var again = (await api.GetAsync("/v1/events?type=PaymentApproved&limit=100", await api.AdminTokenAsync())).Expect(HttpStatusCode.OK)["data"]!.AsArray();
        Assert.Equal(approved.Select(e => e!.Str("event_id")), again.Select(e => e!.Str("event_id")));
    }
}

/// <summary><c>rampay events list|derive</c> on a real server's data folder.</summary>
public sealed class EventsCommandTests
{
    [Fact]
    public async Task Derived_events_are_the_logged_events_byte_for_byte_and_list_prints_the_log()
    {
        await using var server = await ServerProcess.StartAsync("Fraud:Enabled=false");
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(50_000);
        for (int i = 0; i < 10; i++) await api.PayAsync(alice, bob.WalletId, 100 + i);
        await api.PayAsync(alice, bob.WalletId, 300, capture: false);
        // A clean stop lets the sinks catch up with the journal's end.
        Assert.Equal(0, await server.StopAsync());

        var data = new DirectoryInfo(server.DataDirectory);
        var listed = new StringWriter();
        Assert.Equal(0, RamPay.Cli.EventsCommands.List(data, 100_000, null, null, listed));
        var logged = Lines(listed).AsEnumerable().Reverse().ToList(); // list is newest first
        Assert.NotEmpty(logged);

        var derived = new StringWriter();
        Assert.Equal(0, RamPay.Cli.EventsCommands.Derive(data, 1, 0, RamPay.Engine.EngineOptions.ServerIdempotencyMaxKeys, derived));
        Assert.Equal(logged, Lines(derived));

        // A range: only the events of those records, the same bytes.
        var firstId = System.Text.Json.Nodes.JsonNode.Parse(logged[^3])!["sequence"]!.GetValue<long>();
        var range = new StringWriter();
        Assert.Equal(0, RamPay.Cli.EventsCommands.Derive(data, firstId, firstId, RamPay.Engine.EngineOptions.ServerIdempotencyMaxKeys, range));
        Assert.Equal(logged.Where(l => System.Text.Json.Nodes.JsonNode.Parse(l)!["sequence"]!.GetValue<long>() == firstId), Lines(range));
    }

    private static List<string> Lines(StringWriter w) => [.. w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r'))];
}
