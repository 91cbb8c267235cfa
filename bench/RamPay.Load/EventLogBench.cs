using System.Diagnostics;
using System.Globalization;
using RamPay.Engine;
using RamPay.Events;
using RamPay.Sinks;

namespace RamPay.Load;

/// <summary>Settings of <c>rampay-load event-log</c>.</summary>
public sealed record EventLogBenchOptions
{
    /// <summary>Transfers journaled (two events each), after one registration and one deposit per wallet.</summary>
    public long Payments { get; init; } = 100_000;
    /// <summary>Changes per <see cref="EventLog.Append"/>: under HTTP load the sinks' follower hands on small batches (what the journal made durable since its last poll).</summary>
    public int BatchChanges { get; init; } = 32;
    public int Wallets { get; init; } = 1_000;
    public int Seed { get; init; } = 1;

    public IEnumerable<string> Problems()
    {
        if (Payments < 1) yield return "--payments must be positive";
        if (BatchChanges < 1) yield return "--batch must be at least 1";
        if (Wallets < 2) yield return "--wallets must be at least 2";
    }
}

/// <summary>
/// Measures the embedded event log's writer alone (the server's <c>rampay-sink-events</c> thread): a real engine
/// journals a payment workload, a real <see cref="LedgerFollower"/> turns it into changes, cut into batches of
/// <see cref="EventLogBenchOptions.BatchChanges"/>, and <see cref="EventLog.Append"/> writes them to a fresh log in a
/// temporary folder (segment files, one write per batch, as the server's sink does). Only the calling thread's CPU
/// time inside Append is counted (from /proc/thread-self/stat): a figure a machine shared with other work bends far
/// less than a rate. Checks that the log holds every event afterwards.
/// </summary>
internal static class EventLogBench
{
    public static int Run(EventLogBenchOptions o, TextWriter output, TextWriter error)
    {
        var problems = o.Problems().ToList();
        foreach (string p in problems) error.WriteLine("error: " + p);
        if (problems.Count > 0) return LoadCli.ExitError;
        string root = Directory.CreateTempSubdirectory("rampay-eventlog-bench-").FullName;
        try
        {
            var engineOptions = new EngineOptions
            {
                DataDirectory = Path.Combine(root, "data"), Fsync = false, SnapshotEveryCommands = 0, SnapshotOnStop = false, TickIntervalMs = 0,
                Ledger = new RamPay.Core.LedgerOptions { MaxAccounts = o.Wallets + 16, MaxPayments = Math.Max(1 << 20, 2 * o.Payments), InitialPaymentCapacity = 1 << 20, IdempotencyMaxKeys = 1 << 20 },
            };
            long wanted = 3L * o.Wallets + 2 * o.Payments;
            long records = KafkaSinkBench.Journal(new KafkaSinkBenchOptions { BootstrapServers = "-", Events = wanted, Wallets = o.Wallets, Seed = o.Seed }, engineOptions);
            var batches = new List<ChangeBatch>();
            using (var follower = new LedgerFollower(engineOptions.SnapshotDirectory, engineOptions.JournalDirectory, engineOptions.Ledger, afterSequence: 0))
            {
                while (true)
                {
                    var batch = new ChangeBatch(o.BatchChanges);
                    if (follower.Poll(records, o.BatchChanges, batch) == 0) break;
                    batches.Add(batch);
                }
            }
            using var log = new EventLog(new EventLogOptions { Directory = Path.Combine(root, "events") });
            // The first fifth warms up (the JIT compiles the writer's path, the index's arrays grow): not counted.
            int warm = batches.Count / 5, events = 0, total = 0;
            for (int i = 0; i < warm; i++) total += log.Append(batches[i].Changes, new SinkCheckpoint(batches[i].LastSequence, batches[i].LastTimestampMs));
            var wall = Stopwatch.StartNew();
            double cpu0 = ThreadCpuSeconds();
            foreach (var batch in batches.Skip(warm))
                events += log.Append(batch.Changes, new SinkCheckpoint(batch.LastSequence, batch.LastTimestampMs));
            double cpu = ThreadCpuSeconds() - cpu0;
            wall.Stop();
            total += events;
            long transfers = o.Payments;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"rampay-load event-log: {records:N0} records, {total:N0} events in {batches.Count:N0} appends of up to {o.BatchChanges} changes; measured after the first {warm:N0}: {events:N0} events in {wall.Elapsed.TotalSeconds:0.00} s"));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"writer thread CPU {cpu:0.00} s: {cpu * 1e6 / events:0.0} µs/event, {cpu * 1e6 / (batches.Count - warm):0} µs/append, ~{cpu * 1e6 * 2 / events:0.0} µs per payment of two events (load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]})"));
            long held = log.List(null, 1, null, null, null).Data.Count == 0 ? 0 : log.LastRow;
            if (held != total || log.ReadCheckpoint().Sequence != batches[^1].LastSequence)
            {
                error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"error: the log holds {held:N0} rows for {total:N0} events appended, or its checkpoint is not the last batch's"));
                return LoadCli.ExitFail;
            }
            output.WriteLine("PASS");
            return LoadCli.ExitPass;
        }
        finally
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>The calling thread's user + system CPU time (Linux: /proc/thread-self/stat, clock ticks of 10 ms).</summary>
    private static double ThreadCpuSeconds()
    {
        string stat = File.ReadAllText("/proc/thread-self/stat");
        string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the command name.
        return (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)) / 100.0;
    }
}
