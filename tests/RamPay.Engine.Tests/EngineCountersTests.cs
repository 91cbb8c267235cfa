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

    /// <summary>Reads the writer thread's allocation counter when the writer reaches it in the ring.</summary>
    private sealed class WriterAllocations : ILedgerQuery
    {
        public long Bytes;
        public void Execute(IReadOnlyLedger ledger) => Bytes = GC.GetAllocatedBytesForCurrentThread();
        public void Complete() { }
    }

    /// <summary>
    /// The writer thread allocates nothing for a batch of payments, counters and apply timing included: measured with
    /// the writer's own allocation counter, read by queries before and after the payments (the ledger's apply path is
    /// allocation-free by RamPay.Core's AllocationTests; this covers the engine's stage around it). As there, a one-off
    /// runtime charge was seen on a thread while other tests run, so up to three rounds, one of which must be 0 B.
    /// </summary>
    [Fact]
    public void The_writer_thread_allocates_nothing_for_payments_with_its_counters()
    {
        const int N = 5_000;
        using var dir = new TempDataDir();
        var options = new EngineOptions
        {
            DataDirectory = dir.Path,
            Clock = new SteppingClock().Now,
            RingSize = 1 << 14,
            SnapshotEveryCommands = 0,
            SnapshotOnStop = false, TickIntervalMs = 0,
            Ledger = new LedgerOptions { MaxAccounts = 8, MaxPayments = 1 << 16, InitialPaymentCapacity = 1 << 16, IdempotencyMaxKeys = 1 << 16 },
        };
        var make = new Commands();
        using var engine = RamPayEngine.Start(options);
        long last = 0;
        foreach (var c in new[] { make.Open(AccountFlags.Funding), make.Open(AccountFlags.DebitsMustNotExceedCredits), make.Open(AccountFlags.DebitsMustNotExceedCredits), make.Move(CommandType.Deposit, 1, 2, 1_000_000_000) })
            last = engine.Submit(c);
        var measured = new List<long>();
        for (int round = 0; round < 3; round++)
        {
            var transfers = Enumerable.Range(0, N).Select(_ => make.Move(CommandType.Transfer, 2, 3, 1)).ToArray();
            var before = new WriterAllocations();
            var after = new WriterAllocations();
            engine.Query(before);
            foreach (var t in transfers) engine.Submit(t);
            last = engine.Query(after);
            Assert.True(engine.WaitForCompletion(last, TimeSpan.FromSeconds(30)));
            measured.Add(after.Bytes - before.Bytes);
            if (measured[^1] == 0) break;
        }
        Assert.True(measured[^1] == 0, $"the writer thread allocated {string.Join(", ", measured)} bytes for {N} payments per round");
        Assert.True(engine.Counters.ApplyCommands >= 4 + N && engine.Counters.Completed(CommandType.Transfer, ResultCode.Ok) >= N);
    }
}
