using System.Collections.Concurrent;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Sinks;

namespace RamPay.Postgres.Tests;

/// <summary>
/// A real <see cref="RamPayEngine"/> in-process on a temporary data directory (fsync off, no ticker), with a clock
/// the test moves: each command is stamped one millisecond after the previous one, and <see cref="AdvanceClock"/>
/// jumps ahead (holds expire by journaled time, so a Tick submitted after a jump expires them). Records each
/// command's journal sequence and result, and the journaled time of the last durable one (the hub's lag in seconds).
/// </summary>
public sealed class EngineRun : ICommandCompletion, IDisposable
{
    public static readonly LedgerOptions LedgerOptions = new()
    {
        MaxAccounts = 10_000, MaxPayments = 1 << 20, InitialPaymentCapacity = 1 << 12, MaxOpenHolds = 1 << 16, IdempotencyMaxKeys = 1 << 16,
    };

    private readonly ConcurrentDictionary<long, (long Sequence, CommandResult Result)> _results = new();
    private readonly bool _ownsDirectory;
    /// <summary>The clock before the first command: the first is stamped one millisecond after it.</summary>
    public const long StartClockMs = 1_700_000_000_000;

    private long _clockMs = StartClockMs;
    private long _lastTimestampMs;
    private long _nextCorrelation;
    private RamPayEngine? _engine;

    private EngineRun(string dataDirectory, bool ownsDirectory)
    {
        DataDirectory = dataDirectory;
        _ownsDirectory = ownsDirectory;
    }

    public string DataDirectory { get; }
    public string JournalDirectory => Path.Combine(DataDirectory, "journal");
    public string SnapshotDirectory => Path.Combine(DataDirectory, "snapshots");
    public RamPayEngine Engine => _engine ?? throw new InvalidOperationException("the engine is not started");

    /// <summary>The last journal sequence that is durable and applied (still right after the engine stopped).</summary>
    public long DurableSequence => _engine?.CompletedSequence ?? 0;
    public long DurableTimestampMs => Volatile.Read(ref _lastTimestampMs);

    public static EngineRun Start(long snapshotEveryCommands = 0, int snapshotsToKeep = 3)
    {
        var run = new EngineRun(Directory.CreateTempSubdirectory("rampay-pg-tests-").FullName, ownsDirectory: true);
        run.StartEngine(snapshotEveryCommands, snapshotsToKeep);
        return run;
    }

    private void StartEngine(long snapshotEveryCommands, int snapshotsToKeep)
    {
        _engine = RamPayEngine.Start(new EngineOptions
        {
            DataDirectory = DataDirectory,
            Fsync = false,
            RingSize = 4096,
            TickIntervalMs = 0,
            SnapshotEveryCommands = snapshotEveryCommands,
            SnapshotsToKeep = snapshotsToKeep,
            SnapshotOnStop = false,
            WaitStrategy = WaitStrategyKind.Blocking,
            Clock = () => Interlocked.Increment(ref _clockMs),
            Ledger = LedgerOptions,
        }, this);
    }

    /// <summary>Moves the clock forward: the next command is stamped that much later.</summary>
    public void AdvanceClock(long ms) => Interlocked.Add(ref _clockMs, ms);

    /// <summary>Submits one command and waits until it is durable and applied; returns its journal sequence and result.</summary>
    public (long Sequence, CommandResult Result) Execute(in Command command, byte[]? attachment = null)
    {
        long correlation = Interlocked.Increment(ref _nextCorrelation);
        long ticket = Engine.Submit(command, correlation, attachment);
        if (!Engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(60))) throw new TimeoutException("the engine did not complete a command within 60 s");
        return _results.TryRemove(correlation, out var r) ? r : throw new InvalidOperationException("no result recorded for the command");
    }

    /// <summary>Submits commands without keeping their results, then waits until the last is durable and applied.</summary>
    public void ExecuteAll(IEnumerable<(Command Command, byte[]? Attachment)> commands)
    {
        long ticket = -1;
        foreach (var (command, attachment) in commands) ticket = Engine.Submit(command, 0, attachment);
        if (ticket >= 0 && !Engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(60))) throw new TimeoutException("the engine did not complete the commands within 60 s");
    }

    /// <summary>Stops the engine (drains it) and returns its ledger: the state the database must mirror.</summary>
    public Ledger Stop()
    {
        Engine.Stop();
        return Engine.LedgerAfterStop;
    }

    void ICommandCompletion.OnCompleted(long journalSequence, ref CommandSlot slot)
    {
        if (slot.Correlation != 0) _results[slot.Correlation] = (journalSequence, slot.Result);
        Volatile.Write(ref _lastTimestampMs, slot.Command.TimestampMs);
    }

    /// <summary>A hub with one PostgreSQL sink behind this engine, retrying fast (the tests break the database on purpose).</summary>
    public SinkHub StartHub(IChangeSink sink, int batchChanges = 256, int queueBatches = 4, long maxLagRecords = 0, int maxLagSeconds = 0)
    {
        var hub = new SinkHub(new SinkHubOptions
        {
            SnapshotDirectory = SnapshotDirectory,
            JournalDirectory = JournalDirectory,
            StateDirectory = Path.Combine(DataDirectory, "sinks"),
            Ledger = LedgerOptions,
            BatchChanges = batchChanges,
            QueueBatches = queueBatches,
            MaxLagRecords = maxLagRecords,
            MaxLagSeconds = maxLagSeconds,
            RetryMin = TimeSpan.FromMilliseconds(10),
            RetryMax = TimeSpan.FromMilliseconds(100),
        }, [sink], () => DurableSequence, () => DurableTimestampMs);
        hub.Start();
        return hub;
    }

    public void Dispose()
    {
        try { _engine?.Stop(); } catch (ObjectDisposedException) { }
        if (_ownsDirectory)
        {
            try { Directory.Delete(DataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
