using System.Diagnostics.Metrics;
using RamPay.Core;

namespace RamPay.Engine.Tests;

/// <summary>The counters the engine keeps for metrics (<see cref="EngineCounters"/>) against what it actually did.</summary>
public class EngineCountersTests
{
    [Fact]
    public void Counters_match_the_completed_commands_and_the_journal_histograms_their_batches_and_replay_counts_nothing()
    {
        using var dir = new TempDataDir();
        var commands = new Commands().Workload(seed: 3, wallets: 20, count: 2000);
        var options = new EngineOptions
        {
            DataDirectory = dir.Path,
            Clock = new SteppingClock().Now,
            RingSize = 1024,
            SnapshotEveryCommands = 0,
            SnapshotOnStop = false, TickIntervalMs = 0,
            Ledger = new LedgerOptions { MaxAccounts = 1000, MaxPayments = 1 << 20, IdempotencyMaxKeys = 1 << 16 },
        };
        long batchRecords = 0, batches = 0, commits = 0;
        double commitSeconds = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == EngineCounters.MeterName) l.EnableMeasurementEvents(instrument);
        };
        // Another test's engine may record at the same time (the meter is static): count only while this one runs, and
        // compare with bounds that hold whatever the others add.
        listener.SetMeasurementEventCallback<int>((_, v, _, _) => { Interlocked.Add(ref batchRecords, v); Interlocked.Increment(ref batches); });
        listener.SetMeasurementEventCallback<double>((_, v, _, _) => { Interlocked.Increment(ref commits); lock (listener) commitSeconds += v; });
        listener.Start();

        var completion = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(options, completion))
        {
            long ticket = 0;
            foreach (var c in commands) ticket = engine.Submit(c);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(30)));
            var counters = engine.Counters;
            var tally = completion.Completed.GroupBy(c => (commands[(int)c.Sequence - 1].Type, c.Result.Code)).ToDictionary(g => g.Key, g => (long)g.Count());
            Assert.Equal(tally.OrderBy(t => t.Key).ToArray(), counters.CompletedCounts().Select(c => new KeyValuePair<(CommandType, ResultCode), long>((c.Type, c.Code), c.Count)).OrderBy(t => t.Key).ToArray());
            Assert.Contains(tally.Keys, k => k.Code == ResultCode.InsufficientFunds); // more than one result code is exercised
            Assert.Equal(commands.Count, counters.ApplyCommands);
            Assert.InRange(counters.ApplyBatches, 1, commands.Count);
            Assert.True(counters.ApplySeconds > 0);
            Assert.Equal(0, engine.RingUsedSlots);
            Assert.Equal(options.RingSize, engine.Options.RingSize);
            Assert.InRange(engine.IdempotencyKeys, 1, engine.IdempotencyCapacity);
            engine.Stop();
        }
        listener.Dispose();
        Assert.True(batchRecords >= commands.Count, $"{batchRecords} records in journal batches");
        Assert.True(commits >= 1 && batches >= 1 && commitSeconds > 0, $"{commits} commits, {batches} batch sizes, {commitSeconds} s");

        // Replay at start is not counted: a restarted engine starts from zero.
        using var restarted = RamPayEngine.Start(options);
        Assert.Equal(commands.Count, restarted.Recovery.RecordsReplayed);
        Assert.Empty(restarted.Counters.CompletedCounts());
        Assert.Equal(0, restarted.Counters.ApplyCommands);
        Assert.Equal(0, restarted.FraudDecisions(RamPay.Fraud.FraudDecision.Allow));
    }
}
