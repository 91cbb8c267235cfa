using System.Net;
using System.Text.Json;
using RamPay.Client;
using RamPay.Server.Tests;

namespace RamPay.Events.Tests;

/// <summary>The feeder's cheap path (the log's in-memory tail, one wake-up per committed batch) gives the same events as the segment files.</summary>
public sealed class EventLogTailTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    /// <summary>Keeps what it was handed, in memory; its checkpoint is the last batch's end.</summary>
    private sealed class ListConsumer : IEventConsumer
    {
        public readonly List<string> Seen = [];
        public readonly List<int> BatchSizes = [];
        private EventPosition _checkpoint = EventPosition.None;
        public string Name => "list";
        public ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken) => ValueTask.FromResult(_checkpoint);

        public ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken)
        {
            lock (Seen)
            {
                Seen.AddRange(batch.Events.Select(e => e.EventId));
                BatchSizes.Add(batch.Events.Count);
            }
            _checkpoint = batch.Through;
            return ValueTask.CompletedTask;
        }
    }

    [Theory]
    [InlineData(16_384)] // the tail holds everything: the files are read only for what was there before the feeder started
    [InlineData(64)]     // the tail is smaller than one journal batch's events: the feeder falls back to the files often
    [InlineData(0)]      // no tail: the files only
    public async Task A_feeder_gets_every_event_once_in_order_whatever_the_tail_holds(int tailEvents)
    {
        var changes = LedgerChanges.Run(new CommandBuilder().Workload(seed: 5, wallets: 20, count: 1_200));
        using var log = new EventLog(new EventLogOptions { Directory = Path.Combine(_dir.Path, "events"), Retention = TimeSpan.FromDays(36_500), TailEvents = tailEvents });
        var batches = LedgerChanges.Batches(changes, 100);
        foreach (var (c, t) in batches.Take(3)) log.Append(c, t);
        var consumer = new ListConsumer();
        var feeder = new EventLogFeeder(log, consumer) { BatchEvents = 150, BatchInterval = TimeSpan.FromMilliseconds(1) };
        using var stop = new CancellationTokenSource();
        var run = feeder.RunAsync(stop.Token);
        foreach (var (c, t) in batches.Skip(3))
        {
            log.Append(c, t);
            await Task.Yield();
        }
        var all = log.ReadAfter(EventPosition.None, 1_000_000).Select(e => e.EventId).ToList();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (feeder.Lag() != 0 && DateTime.UtcNow < deadline) await Task.Delay(10);
        stop.Cancel();
        await run;
        Assert.Equal(all, consumer.Seen);
        Assert.All(consumer.BatchSizes, n => Assert.InRange(n, 1, 150));
        Assert.True(feeder.FileBatches >= 1, "the events before the feeder started come from the segment files");
        if (tailEvents == 0) Assert.Equal(0, feeder.TailBatches);
        if (tailEvents == 16_384) Assert.True(feeder.TailBatches > 0, "new events come from the tail");
    }

    [Fact]
    public async Task A_waiting_feeder_wakes_on_a_commit_not_on_its_idle_poll()
    {
        var changes = LedgerChanges.Run(new CommandBuilder().Workload(seed: 6, wallets: 5, count: 50));
        using var log = new EventLog(new EventLogOptions { Directory = Path.Combine(_dir.Path, "events"), Retention = TimeSpan.FromDays(36_500) });
        var consumer = new ListConsumer();
        var feeder = new EventLogFeeder(log, consumer) { IdlePoll = TimeSpan.FromMinutes(5), BatchInterval = TimeSpan.Zero };
        using var stop = new CancellationTokenSource();
        var run = feeder.RunAsync(stop.Token);
        await Task.Delay(200); // the feeder has found the log empty and waits
        var (c, t) = LedgerChanges.Batches(changes, 1_000).Single();
        int appended = log.Append(c, t);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (consumer.Seen.Count < appended && DateTime.UtcNow < deadline) await Task.Delay(5);
        Assert.Equal(appended, consumer.Seen.Count); // long before the 5 min idle poll
        stop.Cancel();
        await run;
    }
}

/// <summary>The batched event log and consumers under SIGKILL, against a real server process (numbered steps).</summary>
public sealed class EventBatchCrashTests
{
    [Fact]
    public async Task SIGKILL_mid_batch_loses_and_duplicates_no_event_and_the_consumers_resume_with_the_same_ids()
    {
        using var receiver = new WebhookReceiver();
        // Consumers pause 300 ms between batches: a kill lands while events are logged but not yet handed on.
        await using var server = await ServerProcess.StartAsync("Webhooks:AllowPrivateNetworks=true", "Webhooks:RetryBaseMs=100",
            "Fraud:Enabled=false", "Events:ConsumerBatchIntervalMs=300");
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(10_000_000);
        (await api.PostAsync("/v1/webhook_endpoints", alice.Token, new { url = receiver.Url(), enabled_events = new[] { "PaymentApproved" } }, key: ""))
            .Expect(HttpStatusCode.Created);

        // 1. Payments from 8 concurrent callers; SIGKILL once 60 are acknowledged, with others in flight.
        var acknowledged = new System.Collections.Concurrent.ConcurrentBag<long>();
        using var killed = new CancellationTokenSource();
        var callers = Enumerable.Range(0, 8).Select(caller => Task.Run(async () =>
        {
            for (int i = 0; i < 30 && !killed.IsCancellationRequested; i++)
            {
                try { acknowledged.Add((await api.PayAsync(alice, bob.WalletId, 1 + caller * 100 + i)).Long("id")); }
                catch (Exception) when (killed.IsCancellationRequested) { return; }
            }
        })).ToArray();
        while (acknowledged.Count < 60) await Task.Delay(5);
        await server.KillAsync();
        killed.Cancel();
        try { await Task.WhenAll(callers); } catch (Exception) { /* in flight at the kill: outcome unknown */ }
        var ids = acknowledged.ToHashSet();

        // 2. Restart: the log resumes from its checkpoint and the webhooks consumer from its own.
        await server.RestartAsync();
        api.ForgetAdminToken();
        string admin = await api.AdminTokenAsync();

        // 3. The log: every acknowledged payment's PaymentApproved, each event id once.
        var logged = new List<JsonElement>();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            logged.Clear();
            string? after = null;
            while (true)
            {
                var page = (await api.GetAsync("/v1/events?type=PaymentApproved&limit=100" + (after is null ? "" : "&starting_after=" + after), admin)).Expect(HttpStatusCode.OK);
                var data = page["data"]!.AsArray();
                logged.AddRange(data.Select(e => JsonDocument.Parse(e!.ToJsonString()).RootElement));
                if (!page["has_more"]!.GetValue<bool>() || data.Count == 0) break;
                after = data[^1]!.Str("event_id");
            }
            var paid = logged.Select(e => e.GetProperty("payment").GetProperty("id").GetInt64()).ToHashSet();
            if (ids.IsSubsetOf(paid)) break;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the log holds {paid.Count} approvals, {ids.Except(paid).Count()} acknowledged payments missing");
            await Task.Delay(100);
        }
        var eventIds = logged.Select(e => e.GetProperty("event_id").GetString()!).ToList();
        Assert.Equal(eventIds.Count, eventIds.Distinct().Count());
        var byPayment = logged.GroupBy(e => e.GetProperty("payment").GetProperty("id").GetInt64()).ToDictionary(g => g.Key, g => g.ToList());
        Assert.All(byPayment.Values, list => Assert.Single(list));

        // 4. The webhooks consumer resumed from its checkpoint: each acknowledged payment's approval delivered (at least
        //    once), with the log's event id, and nothing delivered that the log does not hold.
        var logIdOf = byPayment.ToDictionary(kv => kv.Key, kv => kv.Value[0].GetProperty("event_id").GetString()!);
        deadline = DateTime.UtcNow.AddSeconds(60);
        while (!ids.All(id => receiver.Requests.Any(r => r.EventId == logIdOf[id])))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("not every acknowledged payment's approval reached the webhook");
            await Task.Delay(100);
        }
        var logIds = eventIds.ToHashSet();
        Assert.All(receiver.Requests.Where(r => r.EventType == "PaymentApproved"), r => Assert.Contains(r.EventId!, logIds));
    }
}
