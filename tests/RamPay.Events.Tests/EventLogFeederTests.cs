using RamPay.Sinks;

namespace RamPay.Events.Tests;

/// <summary>The feeder's contract with a consumer: at least once, in order, resuming from the consumer's checkpoint.</summary>
public sealed class EventLogFeederTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// A consumer whose effects (the ids it saw) and checkpoint are written together to one file, atomically: the
    /// pattern docs/consumers.md asks for. It fails on chosen batches after writing nothing, or after writing its
    /// effects but before returning (a crash between the durable step and the return).
    /// </summary>
    private sealed class FileConsumer(string path) : IEventConsumer
    {
        public int Calls;
        public HashSet<int> FailBeforeOn = [];
        public HashSet<int> FailAfterOn = [];
        public string Name => "file";

        public ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken)
        {
            if (!File.Exists(path)) return ValueTask.FromResult(EventPosition.None);
            var lines = File.ReadAllLines(path);
            EventPosition.TryParse(lines[0], out var p);
            return ValueTask.FromResult(p);
        }

        public List<string> Effects() => File.Exists(path) ? [.. File.ReadAllLines(path).Skip(1)] : [];

        public ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken)
        {
            int call = ++Calls;
            Assert.True(batch.FromLog);
            if (FailBeforeOn.Contains(call)) throw new IOException($"failure before batch {call}");
            var effects = Effects();
            effects.AddRange(batch.Events.Select(e => e.EventId));
            string tmp = path + ".tmp";
            File.WriteAllLines(tmp, [batch.Through.ToString(), .. effects]);
            File.Move(tmp, path, overwrite: true);
            if (FailAfterOn.Contains(call)) throw new IOException($"failure after batch {call}");
            return ValueTask.CompletedTask;
        }
    }

    [Fact]
    public async Task Every_event_reaches_the_consumer_in_order_and_failures_resume_from_its_checkpoint()
    {
        var changes = LedgerChanges.Run(new CommandBuilder().Workload(seed: 3, wallets: 20, count: 1_500));
        using var log = new EventLog(new EventLogOptions { Directory = Path.Combine(_dir.Path, "events"), Clock = new FakeClock() });
        var batches = LedgerChanges.Batches(changes, 200);
        // Half the log is written before the consumer starts, half while it runs.
        foreach (var (c, t) in batches.Take(batches.Count / 2)) log.Append(c, t);
        var consumer = new FileConsumer(Path.Combine(_dir.Path, "consumer.state")) { FailBeforeOn = [2, 5], FailAfterOn = [3] };
        var feeder = new EventLogFeeder(log, consumer) { BatchEvents = 97, RetryMin = TimeSpan.FromMilliseconds(5), IdlePoll = TimeSpan.FromMilliseconds(2) };
        using var stop = new CancellationTokenSource();
        var run = feeder.RunAsync(stop.Token);
        foreach (var (c, t) in batches.Skip(batches.Count / 2)) log.Append(c, t);
        var all = log.ReadAfter(EventPosition.None, 1_000_000).Select(e => e.EventId).ToList();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (feeder.Lag() != 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        stop.Cancel();
        await run;
        Assert.Equal(0, feeder.Lag());
        Assert.Equal(3, feeder.Failures);
        // Effects: exactly the log's events, in order: the failure after the durable step did not double anything,
        // because the feeder re-read the checkpoint stored with the effects.
        Assert.Equal(all, consumer.Effects());
        Assert.Equal(all[^1], feeder.Position.ToString());

        // A new feeder (a restart) resumes after the checkpoint: nothing again.
        var calls = consumer.Calls;
        var again = new EventLogFeeder(log, consumer) { IdlePoll = TimeSpan.FromMilliseconds(2) };
        using var stop2 = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await again.RunAsync(stop2.Token);
        Assert.Equal(calls, consumer.Calls);
    }
}
