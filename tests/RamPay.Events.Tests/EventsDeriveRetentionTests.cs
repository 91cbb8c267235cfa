using System.Net;
using System.Text.Json.Nodes;
using RamPay.Server.Tests;

namespace RamPay.Events.Tests;

/// <summary>
/// Issue 12: "A <c>rampay events</c> command lists or re-derives events for a journal range, older than retention
/// included." A real server whose event log is capped at its smallest size (1 MiB) is paid through until its first
/// events are gone from the log (the API answers 404 for them); <c>rampay events derive</c> still gives them from the
/// journal, with the same ids and bytes as the events the log still holds.
/// </summary>
public sealed class EventsDeriveRetentionTests
{
    [Fact]
    public async Task Derive_gives_back_events_the_log_no_longer_holds_with_the_same_bytes_as_those_it_holds()
    {
        await using var server = await ServerProcess.StartAsync("Events:MaxBytes=1048576", "Fraud:Enabled=false");
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(1_000_000);
        string admin = await api.AdminTokenAsync();

        // 1. The oldest event the log holds now (oldest first: page from the newest down to the end).
        string? oldest = null;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (oldest is null)
        {
            var page = (await api.GetAsync("/v1/events?limit=100&type=UserRegistered", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
            oldest = page.Select(e => e!.Str("event_id")).LastOrDefault();
            if (oldest is null && DateTime.UtcNow > deadline) throw new TimeoutException("no UserRegistered event in the log");
            if (oldest is null) await Task.Delay(50);
        }

        // 2. Pay until the byte cap has pushed that event out of the log (bounded: 1 MiB of JSON is a few thousand events).
        int paid = 0;
        while ((await api.GetAsync($"/v1/events/{oldest}", admin)).Status == HttpStatusCode.OK)
        {
            Assert.True(paid < 20_000, $"{paid} payments and {oldest} is still in the log");
            for (int i = 0; i < 50; i++, paid++) await api.PayAsync(alice, bob.WalletId, 1 + paid % 20);
        }
        (await api.GetAsync($"/v1/events/{oldest}", admin)).ExpectError(HttpStatusCode.NotFound, "event_not_found");
        Assert.Equal(0, await server.StopAsync());

        // 3. list prints what the log holds (not the dropped event); derive gives the whole journal's events, the
        //    dropped one included, and every event the log still holds byte for byte.
        var data = new DirectoryInfo(server.DataDirectory);
        var listed = new StringWriter();
        Assert.Equal(0, RamPay.Cli.EventsCommands.List(data, 100_000, null, null, listed));
        var logged = Lines(listed);
        Assert.NotEmpty(logged);
        Assert.DoesNotContain(logged, l => IdOf(l) == oldest);

        var derivedText = new StringWriter();
        Assert.Equal(0, RamPay.Cli.EventsCommands.Derive(data, 1, 0, RamPay.Engine.EngineOptions.ServerIdempotencyMaxKeys, derivedText));
        var derived = Lines(derivedText).ToDictionary(IdOf);
        Assert.True(derived.ContainsKey(oldest!), $"derive did not give {oldest}");
        Assert.Equal("UserRegistered", JsonNode.Parse(derived[oldest!])!.Str("type"));
        Assert.True(derived.Count > logged.Count, $"derived {derived.Count}, logged {logged.Count}");
        Assert.All(logged, l => Assert.Equal(l, derived[IdOf(l)]));
    }

    private static string IdOf(string line) => JsonNode.Parse(line)!.Str("event_id");

    private static List<string> Lines(StringWriter w) => [.. w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r'))];
}
