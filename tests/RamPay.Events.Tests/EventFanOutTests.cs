using RamPay.Sinks;

namespace RamPay.Events.Tests;

/// <summary>
/// The consumers' fan-out (one read of the log for every consumer): each consumer still gets every event after its
/// checkpoint, once per pass, in order, and resumes from its checkpoint after a failure; a slow or failing consumer does
/// not hold the others beyond the bound; the records handed on are the log's, byte for byte.
/// </summary>
public sealed class EventFanOutTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// Effects (the ids seen, with a hash of each event's JSON as it was during the call) and checkpoint written together,
    /// atomically, as docs/consumers.md asks. Fails on chosen calls before writing anything or after writing (a crash
    /// between the durable step and the return); may block on a gate (a slow consumer).
    /// </summary>
    private sealed class FileConsumer(string name, string path) : IEventConsumer
    {
        public int Calls;
        public HashSet<int> FailBeforeOn = [];
        public HashSet<int> FailAfterOn = [];
        public SemaphoreSlim? Gate;
        public string Name => name;

        public ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken)
        {
            if (!File.Exists(path)) return ValueTask.FromResult(EventPosition.None);
            EventPosition.TryParse(File.ReadAllLines(path)[0], out var p);
            return ValueTask.FromResult(p);
        }

        public List<string> Effects() => File.Exists(path) ? [.. File.ReadAllLines(path).Skip(1)] : [];

        public async ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken)
        {
            int call = Interlocked.Increment(ref Calls);
            Assert.True(batch.FromLog);
            if (Gate is not null) await Gate.WaitAsync(cancellationToken);
            if (FailBeforeOn.Contains(call)) throw new IOException($"{name}: failure before batch {call}");
            var effects = Effects();
            for (int i = 1; i < batch.Events.Count; i++) Assert.True(batch.Events[i].Position > batch.Events[i - 1].Position, "a batch rises");
            effects.AddRange(batch.Events.Select(e => e.EventId + " " + Hash(e.Json.Span)));
            string tmp = path + ".tmp";
            File.WriteAllLines(tmp, [batch.Through.ToString(), .. effects]);
            File.Move(tmp, path, overwrite: true);
            if (FailAfterOn.Contains(call)) throw new IOException($"{name}: failure after batch {call}");
        }
    }

    private static string Hash(ReadOnlySpan<byte> json) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(json))[..16];

    private static List<string> Expected(EventLog log, EventPosition after) =>
        [.. log.ReadAfter(after, 1_000_000).Select(e => e.EventId + " " + Hash(e.Json.Span))];

    private static async Task WaitCaughtUp(EventFanOut fanOut, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (fanOut.Lanes.Any(l => l.Lag() != 0) && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.All(fanOut.Lanes, l => Assert.Equal(0, l.Lag()));
    }

    [Fact]
    public async Task Every_consumer_gets_every_event_after_its_checkpoint_in_order_through_failures_and_a_restart()
    {
        var changes = LedgerChanges.Run(new CommandBuilder().Workload(seed: 11, wallets: 20, count: 1_500));
        using var log = new EventLog(new EventLogOptions { Directory = Path.Combine(_dir.Path, "events"), Clock = new FakeClock() });
        var batches = LedgerChanges.Batches(changes, 20);
        foreach (var (c, t) in batches.Take(batches.Count / 2)) log.Append(c, t);
        // One consumer starts half way (its checkpoint says so), one fails before and after its durable step, one is clean.
        var middle = log.ReadAfter(EventPosition.None, 1_000_000)[400].Position;
        var late = new FileConsumer("late", Path.Combine(_dir.Path, "late.state"));
        File.WriteAllLines(Path.Combine(_dir.Path, "late.state"), [middle.ToString()]);
        var flaky = new FileConsumer("flaky", Path.Combine(_dir.Path, "flaky.state")) { FailBeforeOn = [2, 6], FailAfterOn = [4] };
        var clean = new FileConsumer("clean", Path.Combine(_dir.Path, "clean.state"));
        var fanOut = new EventFanOut(log, [late, flaky, clean])
        {
            BatchEvents = 97, RetryMin = TimeSpan.FromMilliseconds(5), IdlePoll = TimeSpan.FromMilliseconds(5), BatchInterval = TimeSpan.FromMilliseconds(1),
        };
        using var stop = new CancellationTokenSource();
        var run = fanOut.RunAsync(stop.Token);
        // Each catches up alone on the first half and joins the rounds; the second half then goes through them.
        var joined = DateTime.UtcNow.AddSeconds(60);
        while (!fanOut.Lanes.All(l => l.Attached) && DateTime.UtcNow < joined) await Task.Delay(5);
        Assert.All(fanOut.Lanes, l => Assert.True(l.Attached));
        foreach (var (c, t) in batches.Skip(batches.Count / 2))
        {
            log.Append(c, t);
            await Task.Delay(5);
        }
        await WaitCaughtUp(fanOut);
        stop.Cancel();
        await run;

        // Effects: exactly the log's events after each checkpoint, in order, each once (the failure after the durable
        // step doubled nothing: the checkpoint stored with the effects was read again), with the log's bytes.
        Assert.Equal(Expected(log, middle), late.Effects());
        Assert.Equal(Expected(log, EventPosition.None), flaky.Effects());
        Assert.Equal(Expected(log, EventPosition.None), clean.Effects());
        Assert.Equal(3, fanOut.Lanes[1].Failures);
        // (Its failures may all fall while it catches up alone at start, or some in the rounds, which then leave it behind.)
        Assert.True(fanOut.Rounds > 0, "events went through the shared rounds");
        // The shared rounds read each batch once for all: far fewer reads than batches handed on.
        Assert.True(fanOut.Rounds < late.Calls + flaky.Calls + clean.Calls, $"{fanOut.Rounds} rounds for {late.Calls + flaky.Calls + clean.Calls} calls");

        // A restart resumes after each checkpoint: no call at all.
        int calls = late.Calls + flaky.Calls + clean.Calls;
        var again = new EventFanOut(log, [late, flaky, clean]) { IdlePoll = TimeSpan.FromMilliseconds(2) };
        using var stop2 = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await again.RunAsync(stop2.Token);
        Assert.Equal(calls, late.Calls + flaky.Calls + clean.Calls);
    }

    [Fact]
    public async Task A_slow_consumer_holds_the_others_no_longer_than_the_bound_then_catches_up_alone()
    {
        var changes = LedgerChanges.Run(new CommandBuilder().Workload(seed: 12, wallets: 10, count: 1_200));
        using var log = new EventLog(new EventLogOptions { Directory = Path.Combine(_dir.Path, "events"), Clock = new FakeClock() });
        var batches = LedgerChanges.Batches(changes, 100);
        var slow = new FileConsumer("slow", Path.Combine(_dir.Path, "slow.state"));
        var fast = new FileConsumer("fast", Path.Combine(_dir.Path, "fast.state"));
        var fanOut = new EventFanOut(log, [slow, fast])
        {
            BatchEvents = 50, HoldMax = TimeSpan.FromMilliseconds(200), IdlePoll = TimeSpan.FromMilliseconds(5), BatchInterval = TimeSpan.Zero,
        };
        using var stop = new CancellationTokenSource();
        var run = fanOut.RunAsync(stop.Token);
        // 0. Both find the log empty and join the rounds.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!fanOut.Lanes.All(l => l.Attached) && DateTime.UtcNow < deadline) await Task.Delay(5);
        Assert.All(fanOut.Lanes, l => Assert.True(l.Attached));

        // 1. The slow one blocks in its next call (in a round); the fast one reaches the end of the log regardless.
        slow.Gate = new SemaphoreSlim(0);
        foreach (var (c, t) in batches.Take(8))
        {
            log.Append(c, t);
            await Task.Delay(2);
        }
        deadline = DateTime.UtcNow.AddSeconds(60);
        while (fanOut.Lanes[1].Lag() != 0 && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.Equal(0, fanOut.Lanes[1].Lag());
        Assert.Equal(Expected(log, EventPosition.None), fast.Effects());
        Assert.Equal(1, slow.Calls);
        Assert.Equal(1, fanOut.Lanes[0].Detaches);
        Assert.False(fanOut.Lanes[0].Attached);
        Assert.True(fanOut.Lanes[0].Lag() > 0);

        // 2. Released, the slow one catches up on its own, every event once, in order, and joins the rounds again.
        slow.Gate.Release(int.MaxValue / 2);
        await WaitCaughtUp(fanOut);
        Assert.Equal(Expected(log, EventPosition.None), slow.Effects());
        deadline = DateTime.UtcNow.AddSeconds(30);
        while (!fanOut.Lanes.All(l => l.Attached) && DateTime.UtcNow < deadline) await Task.Delay(5);
        Assert.All(fanOut.Lanes, l => Assert.True(l.Attached));

        // 3. New events reach both through the rounds.
        long rounds = fanOut.Rounds;
        foreach (var (c, t) in batches.Skip(8)) log.Append(c, t);
        await WaitCaughtUp(fanOut);
        Assert.True(fanOut.Rounds > rounds);
        stop.Cancel();
        await run;
        Assert.Equal(Expected(log, EventPosition.None), slow.Effects());
        Assert.Equal(Expected(log, EventPosition.None), fast.Effects());
        // Not asserted: that the fast one was never left behind. Any call longer than HoldMax is, by design, and on a loaded
        // machine one of its calls (a state file written per batch) took longer than 200 ms (CI, 2026-12-06); what matters
        // is above: it was not held by the slow one, and both got every event once, in order.
        Assert.All(fanOut.Lanes, l => Assert.Equal(0, l.Failures));
    }
}
