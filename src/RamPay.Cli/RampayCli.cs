using System.CommandLine;
using System.Globalization;
using RamPay.Core;
using Command = System.CommandLine.Command;
using RamPay.Engine;
using RamPay.Journal;

namespace RamPay.Cli;

/// <summary>
/// The <c>rampay</c> command line: offline tools over a data directory (journal/ and snapshots/).
/// Exit codes: 0 ok, 1 bad usage or missing data, 2 the journal has problems.
/// </summary>
public static class RampayCli
{
    public const int ExitOk = 0;
    public const int ExitUsage = 1;
    public const int ExitJournalProblems = 2;

    /// <summary>
    /// Parses and runs a command line (Program.cs). Journal records retired behind a snapshot that a tool needs (db
    /// rebuild, replay --no-snapshot) and cannot find in the journal archive are a named error, exit 2, not a stack trace.
    /// </summary>
    public static int Run(string[] args, TextWriter output)
    {
        try
        {
            return Build(output).Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (JournalArchiveMissingException e)
        {
            output.WriteLine($"error: {e.Message}");
            output.WriteLine("       restore the retired segments into the journal archive (RamPay:Journal:ArchiveDirectory) and run again");
            return ExitJournalProblems;
        }
        catch (Exception e)
        {
            // What System.CommandLine's default handler did for any other failure.
            Console.Error.WriteLine("Unhandled exception: " + e);
            return 1;
        }
    }

    public static RootCommand Build(TextWriter output)
    {
        var data = new Option<DirectoryInfo>("--data", "-d")
        {
            Description = "The data directory (holds journal/ and snapshots/)",
            Required = true,
        };

        // One option for every command that rebuilds or writes a ledger, so that they all assume what the server does.
        var idempotencyKeys = new Option<int>("--idempotency-max-keys")
        {
            Description = "The ledger's RamPay:Engine:IdempotencyMaxKeys when the journal was written (default: the server's default; give the value the server ran with)",
            DefaultValueFactory = _ => EngineOptions.ServerIdempotencyMaxKeys,
        };
        var noSnapshot = new Option<bool>("--no-snapshot") { Description = "Ignore snapshots: replay the whole journal from its first record" };
        var replay = new Command("replay", "Rebuild the state from the latest snapshot and the journal after it, and print its hash and counts. Changes no file.")
        {
            data, noSnapshot, idempotencyKeys,
        };
        replay.SetAction(r => Replay(r.GetValue(data)!, r.GetValue(noSnapshot), output, r.GetValue(idempotencyKeys)));

        var verify = new Command("verify", "Check every journal record's CRC, version and sequence, and report problems. Changes no file.") { data };
        verify.SetAction(r => Verify(r.GetValue(data)!, output));

        var from = new Option<long>("--from") { Description = "First sequence to show", DefaultValueFactory = _ => 1 };
        var to = new Option<long>("--to") { Description = "Last sequence to show (default: --from + 19)" };
        var inspect = new Command("inspect", "Print the journal records in a sequence range, decoded.") { data, from, to };
        inspect.SetAction(r =>
        {
            long first = r.GetValue(from);
            long last = r.GetValue(to) is var t && t > 0 ? t : first + 19;
            return Inspect(r.GetValue(data)!, first, last, output);
        });

        var count = new Option<int>("--count") { Description = "How many commands to submit (at least 100)", DefaultValueFactory = _ => 100_000 };
        var wallets = new Option<int>("--wallets") { Description = "How many wallets the workload pays between (give a later run on the same data the same number)", DefaultValueFactory = _ => 1_000 };
        var seed = new Option<int>("--seed") { Description = "Seed of the workload: the same seed gives the same commands", DefaultValueFactory = _ => 1 };
        var reportEvery = new Option<int>("--report-every")
        {
            Description = "Print 'completed <sequence>' each time this many more commands are durable and applied (0 = never)",
        };
        var snapshotEvery = new Option<long>("--snapshot-every")
        {
            Description = "A periodic snapshot every this many commands (0 = none; only the stop snapshot)",
            DefaultValueFactory = _ => new EngineOptions { DataDirectory = "." }.SnapshotEveryCommands,
        };
        var offWriter = new Option<bool>("--snapshot-off-writer") { Description = "Take the periodic snapshots from the snapshotter's replica, off the writer thread" };
        var noStopSnapshot = new Option<bool>("--no-stop-snapshot") { Description = "No snapshot at the stop (as after a crash: the next start replays from the newest periodic one)" };
        var coldTier = new Option<bool>("--cold-tier") { Description = "The server's default rules (version 4 since issue 16; 3 before) with the cold tiers of idempotency keys and payments under <data>/cold, as the server runs by default (give a later run on the same data the same flags)" };
        var hotMaxKeys = new Option<int>("--hot-max-keys")
        {
            Description = "With --cold-tier: the keys kept in memory (the hot budget)", DefaultValueFactory = _ => new ColdTierOptions().HotMaxKeys,
        };
        var simulate = new Command("simulate", "Run a seeded workload (deposits, transfers, authorize/capture/void, refunds) through an engine on the data directory, fsync on, and print throughput and the state hash.")
        {
            data, count, wallets, seed, reportEvery, idempotencyKeys, snapshotEvery, offWriter, noStopSnapshot, coldTier, hotMaxKeys,
        };
        simulate.SetAction(r => Simulate(r.GetValue(data)!, r.GetValue(count), r.GetValue(wallets), r.GetValue(seed), r.GetValue(reportEvery), output, r.GetValue(idempotencyKeys),
            new SimulateSnapshots(r.GetValue(snapshotEvery), r.GetValue(offWriter), !r.GetValue(noStopSnapshot)),
            r.GetValue(coldTier) ? new ColdTierOptions { HotMaxKeys = r.GetValue(hotMaxKeys) } : null));

        return new RootCommand("rampay: tools for a RamPay data directory (journal and snapshots), its PostgreSQL copy, and the fraud model tools") { simulate, replay, verify, inspect, DbCommands.Build(data, idempotencyKeys, output), EventsCommands.Build(data, idempotencyKeys, output), FraudCommands.Build(output) };
    }

    // Every path under --data comes from DataFolder, the server's own rules, so the tools and the server agree on each one.
    public static DataFolder Folder(DirectoryInfo data) => new(data.FullName);
    private static string JournalDir(DirectoryInfo data) => Folder(data).Journal;
    private static string SnapshotDir(DirectoryInfo data) => Folder(data).Snapshots;

    /// <summary>
    /// The engine options of a tool that runs an engine on <paramref name="data"/> (simulate): the data folder's journal,
    /// snapshot and cold-tier paths, as the server passes them (ServerComposition.EngineOptionsFrom).
    /// </summary>
    public static EngineOptions EngineOptionsFor(DataFolder data, int idempotencyKeys = EngineOptions.ServerIdempotencyMaxKeys) => new()
    {
        DataDirectory = data.Root,
        JournalDirectory = data.Journal,
        SnapshotDirectory = data.Snapshots,
        ColdDirectory = data.Cold,
        Ledger = new LedgerOptions { IdempotencyMaxKeys = idempotencyKeys },
    };

    private static bool CheckData(DirectoryInfo data, TextWriter output)
    {
        if (Directory.Exists(JournalDir(data))) return true;
        output.WriteLine($"error: no journal at {JournalDir(data)}");
        return false;
    }

    public static int Replay(DirectoryInfo data, bool noSnapshot, TextWriter output, int idempotencyKeys = EngineOptions.ServerIdempotencyMaxKeys)
    {
        if (idempotencyKeys < 1)
        {
            output.WriteLine("error: --idempotency-max-keys must be at least 1");
            return ExitUsage;
        }
        if (!CheckData(data, output)) return ExitUsage;
        var report = JournalVerifier.Verify(JournalDir(data));
        if (report.Problems.Count > 0)
        {
            output.WriteLine("error: the journal has problems; nothing was replayed (starting the engine truncates a torn tail, a corrupt middle needs an operator):");
            foreach (var p in report.Problems) output.WriteLine("  " + p);
            return ExitJournalProblems;
        }
        var warnings = new List<string>();
        var started = System.Diagnostics.Stopwatch.StartNew();
        var (ledger, snapshotSequence, replayed, last) =
            EngineRecovery.Load(SnapshotDir(data), JournalDir(data), new LedgerOptions { FraudModels = FraudModelStore.Load(Folder(data).Root), IdempotencyMaxKeys = idempotencyKeys }, useSnapshot: !noSnapshot, warnings);
        ledger.VerifyInvariants();
        var elapsed = started.Elapsed;
        foreach (var w in warnings) output.WriteLine("warning: " + w);
        output.WriteLine($"state_hash        {ledger.ComputeStateHash()}");
        output.WriteLine($"last_sequence     {last}");
        output.WriteLine($"snapshot_sequence {snapshotSequence}");
        output.WriteLine($"records_replayed  {replayed}");
        output.WriteLine($"replay_ms         {elapsed.TotalMilliseconds:F0}");
        output.WriteLine($"commands_applied  {ledger.CommandsApplied}");
        output.WriteLine($"accounts          {ledger.AccountCount}");
        output.WriteLine($"payments          {ledger.PaymentCount}");
        output.WriteLine($"open_holds        {ledger.OpenHoldCount}");
        output.WriteLine($"idempotency_keys  {ledger.Idempotency.Count}");
        output.WriteLine($"debits_posted     {ledger.TotalDebitsPosted}");
        output.WriteLine($"credits_posted    {ledger.TotalCreditsPosted}");
        output.WriteLine($"debits_pending    {ledger.TotalDebitsPending}");
        output.WriteLine($"credits_pending   {ledger.TotalCreditsPending}");
        output.WriteLine($"clock             {FormatTime(ledger.ClockMs)}");
        output.WriteLine($"fraud             {(ledger.FraudEnabled ? $"on, model {ledger.FraudModel!.Version}, {ledger.FraudSettings}" : "off")}");
        return ExitOk;
    }

    /// <summary>Simulate's snapshot settings (the engine's defaults when not given).</summary>
    public sealed record SimulateSnapshots(long EveryCommands, bool OffWriter, bool OnStop);

    public static int Simulate(DirectoryInfo data, int count, int wallets, int seed, int reportEvery, TextWriter output, int idempotencyKeys = EngineOptions.ServerIdempotencyMaxKeys,
        SimulateSnapshots? snapshots = null, ColdTierOptions? coldTier = null)
    {
        if (count < 100 || wallets < 2 || reportEvery < 0 || idempotencyKeys < 1 || snapshots?.EveryCommands < 0)
        {
            output.WriteLine("error: --count must be at least 100, --wallets at least 2, --report-every at least 0, --idempotency-max-keys at least 1, --snapshot-every at least 0");
            return ExitUsage;
        }
        var completion = new CountingCompletion(reportEvery, output);
        var options = EngineOptionsFor(Folder(data), idempotencyKeys);
        if (snapshots is not null)
            options = options with { SnapshotEveryCommands = snapshots.EveryCommands, SnapshotOffWriter = snapshots.OffWriter, SnapshotOnStop = snapshots.OnStop };
        // As the server runs by default: rules version 2, older keys on disk, a prefetch stage before the writer.
        if (coldTier is not null)
            options = options with
            {
                RulesVersion = EngineOptions.ServerRulesVersion,
                // Rules version 3 and later (4 is the server's default): the payments' cold tier too, as the server runs.
                ColdTier = EngineOptions.ServerRulesVersion >= Ledger.PaymentsUnboundedRulesVersion && coldTier.Payments is null ? coldTier with { Payments = new ColdPaymentOptions() } : coldTier,
            };
        using var snapshotTimes = new SnapshotTimes();
        using var engine = RamPayEngine.Start(options, completion);
        if (reportEvery > 0) engine.SnapshotWritten = sequence => { lock (output) { output.WriteLine($"snapshot {sequence}"); output.Flush(); } };
        output.WriteLine($"recovered         {engine.Recovery}");
        var commands = SimulatedWorkload.Build(count, wallets, seed, engine.Recovery.LastSequence);
        var started = System.Diagnostics.Stopwatch.StartNew();
        const int batch = 256;
        long lastTicket = 0;
        for (int i = 0; i < commands.Length; i += batch) lastTicket = engine.SubmitBatch(commands.AsSpan(i, Math.Min(batch, commands.Length - i)));
        // Throughput counts until the last command is durable, applied and completed; the stop (drain, final
        // snapshot) is timed on its own.
        engine.WaitForCompletion(lastTicket, Timeout.InfiniteTimeSpan);
        var elapsed = started.Elapsed;
        started.Restart();
        engine.Stop();
        output.WriteLine($"commands          {commands.Length}");
        output.WriteLine($"ok                {completion.Ok}");
        output.WriteLine($"rejected          {completion.Rejected}");
        output.WriteLine($"elapsed_ms        {elapsed.TotalMilliseconds:F0}");
        output.WriteLine($"commands_per_s    {commands.Length / elapsed.TotalSeconds:F0}");
        output.WriteLine($"stop_ms           {started.Elapsed.TotalMilliseconds:F0}");
        // The writer's pauses as the callers see them: the longest wait between two completions (a snapshot on the writer shows
        // here as a gap of its whole duration), and the periodic snapshots' own times (the stop snapshot's is stop_ms).
        output.WriteLine($"snapshots         {(engine.SnapshotsOffWriter ? "off the writer" : "on the writer")}, {snapshotTimes.Summary()}");
        output.WriteLine($"longest_gap_ms    {completion.LongestGapMs:F1}");
        output.WriteLine($"snapshot_stall_ms {snapshotTimes.Stalls(completion)}");
        output.WriteLine($"last_sequence     {engine.CompletedSequence}");
        output.WriteLine($"state_hash        {engine.LedgerAfterStop.ComputeStateHash()}");
        return ExitOk;
    }

    /// <summary>Counts results on the output thread; with a report interval, says which sequence is acknowledged (a crash test reads it).</summary>
    private sealed class CountingCompletion(int reportEvery, TextWriter output) : ICommandCompletion
    {
        public long Ok, Rejected;
        private long _lastTicks;
        private long _longestGapTicks;

        /// <summary>Every wait of more than 1 ms between two completions: (when it ended, how long), in Stopwatch ticks.</summary>
        public readonly List<(long EndTicks, long Ticks)> Gaps = [];

        public double LongestGapMs => _longestGapTicks * 1000.0 / System.Diagnostics.Stopwatch.Frequency;

        public void OnCompleted(long journalSequence, ref CommandSlot slot)
        {
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            if (_lastTicks != 0 && now - _lastTicks > _longestGapTicks) _longestGapTicks = now - _lastTicks;
            if (_lastTicks != 0 && now - _lastTicks > System.Diagnostics.Stopwatch.Frequency / 1000) lock (Gaps) Gaps.Add((now, now - _lastTicks));
            _lastTicks = now;
            if (slot.Result.IsOk) Ok++;
            else Rejected++;
            if (reportEvery > 0 && (Ok + Rejected) % reportEvery == 0)
            {
                lock (output)
                {
                    output.WriteLine($"completed {journalSequence}");
                    output.Flush();
                }
            }
        }
    }

    /// <summary>Listens to the engine's snapshot histograms (<c>rampay_snapshot_*_seconds</c>) in this process.</summary>
    private sealed class SnapshotTimes : IDisposable
    {
        private readonly System.Diagnostics.Metrics.MeterListener _listener = new();
        private readonly List<double> _durations = [], _pauses = [];
        private readonly List<(long EndTicks, double Seconds)> _windows = [];

        public SnapshotTimes()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == EngineCounters.MeterName && instrument.Name is "rampay_snapshot_duration_seconds" or "rampay_snapshot_pause_seconds")
                    listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<double>((instrument, value, _, _) =>
            {
                lock (_durations)
                {
                    (instrument.Name == "rampay_snapshot_pause_seconds" ? _pauses : _durations).Add(value);
                    if (instrument.Name == "rampay_snapshot_duration_seconds") _windows.Add((System.Diagnostics.Stopwatch.GetTimestamp(), value));
                }
            });
            _listener.Start();
        }

        /// <summary>Every snapshot's time (the stop one included, last) and the writer's periodic pauses.</summary>
        public string Summary()
        {
            lock (_durations)
            {
                return $"{_durations.Count} written (the stop one included if any), duration ms median {Median(_durations):F0} max {Max(_durations):F0} last {Last(_durations):F0}, "
                    + $"writer pauses {_pauses.Count}: median {Median(_pauses):F0} max {Max(_pauses):F0} ms";
            }
        }

        /// <summary>
        /// The writer's stall during each snapshot as callers saw it: the longest wait between two completions that overlaps the
        /// time the snapshot was being written (its median, p99 and max over the snapshots taken while commands flowed).
        /// </summary>
        public string Stalls(CountingCompletion completion)
        {
            var stalls = new List<double>();
            lock (_durations)
            lock (completion.Gaps)
            {
                long lastCompletion = completion.Gaps.Count == 0 ? 0 : completion.Gaps[^1].EndTicks;
                foreach (var (end, seconds) in _windows)
                {
                    long start = end - (long)(seconds * System.Diagnostics.Stopwatch.Frequency);
                    double longest = 0;
                    bool during = false;
                    foreach (var (gapEnd, ticks) in completion.Gaps)
                    {
                        if (gapEnd < start || gapEnd - ticks > end) continue;
                        during = true;
                        longest = Math.Max(longest, ticks * 1000.0 / System.Diagnostics.Stopwatch.Frequency);
                    }
                    if (during || end < lastCompletion) stalls.Add(longest);
                }
            }
            stalls.Sort();
            return stalls.Count == 0 ? "none" : $"{stalls.Count} snapshots: median {stalls[stalls.Count / 2]:F1} p99 {stalls[Math.Min(stalls.Count - 1, (int)Math.Ceiling(stalls.Count * 0.99) - 1)]:F1} max {stalls[^1]:F1}";
        }

        private static double Last(List<double> values) => values.Count == 0 ? 0 : values[^1] * 1000;

        private static double Median(List<double> values) => values.Count == 0 ? 0 : values.Order().ElementAt(values.Count / 2) * 1000;
        private static double Max(List<double> values) => values.Count == 0 ? 0 : values.Max() * 1000;

        public void Dispose() => _listener.Dispose();
    }

    public static int Verify(DirectoryInfo data, TextWriter output)
    {
        if (!CheckData(data, output)) return ExitUsage;
        var report = JournalVerifier.Verify(JournalDir(data));
        output.WriteLine($"segments          {report.Segments.Count}");
        output.WriteLine($"records           {report.Records}");
        output.WriteLine($"first_sequence    {report.FirstSequence}");
        output.WriteLine($"last_sequence     {report.LastSequence}");
        output.WriteLine($"bytes             {report.Bytes}");
        output.WriteLine($"problems          {report.Problems.Count}");
        foreach (var p in report.Problems) output.WriteLine("  " + p);
        return report.Problems.Count == 0 ? ExitOk : ExitJournalProblems;
    }

    public static int Inspect(DirectoryInfo data, long first, long last, TextWriter output)
    {
        if (!CheckData(data, output)) return ExitUsage;
        if (first < 1 || last < first)
        {
            output.WriteLine("error: --from must be at least 1 and --to at least --from");
            return ExitUsage;
        }
        var printer = new RecordPrinter(output, last);
        JournalReader.ReadRange(JournalDir(data), first, last, printer);
        if (printer.Count == 0) output.WriteLine($"no records in {first}..{last}");
        return ExitOk;
    }

    private static string FormatTime(long unixMs) =>
        DateTimeOffset.FromUnixTimeMilliseconds(unixMs).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);

    private sealed class RecordPrinter(TextWriter output, long last) : IRecordVisitor
    {
        public int Count { get; private set; }

        public void OnRecord(in RecordHeader header, ReadOnlySpan<byte> payload)
        {
            if (header.Sequence > last) return;
            Count++;
            string body = header.Type == RecordTypes.Command && payload.Length >= CommandCodec.Size && CommandCodec.TryRead(payload[..CommandCodec.Size], out var c)
                ? $"{c.Type} client={c.ClientId} key={c.Key} from={c.FromAccount} to={c.ToAccount} payment={c.PaymentId} amount={c.Amount} currency={c.Currency} flags={c.Flags} arg={c.Argument}"
                  + (payload.Length > CommandCodec.Size ? $" attachment={payload.Length - CommandCodec.Size}B" : "")
                : $"type={header.Type} payload={Convert.ToHexString(payload)}";
            output.WriteLine($"{header.Sequence,10} {FormatTime(header.TimestampMs)} v{header.Version} {body}");
        }
    }
}
