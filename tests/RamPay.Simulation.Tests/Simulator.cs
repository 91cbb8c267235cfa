using RamPay.Core;
using RamPay.Engine;
using RamPay.Journal;

namespace RamPay.Simulation.Tests;

/// <summary>
/// The state the simulator drives behind the journal, and checks after every recovery. Today the in-memory
/// <see cref="Ledger"/> (<see cref="LedgerStateMachine"/>). This is the seam for the cold tier of issue 10: its store
/// opens over the same <see cref="IJournalFileSystem"/> (or, for a native store whose I/O the file layer cannot
/// reach, is faulted at its own API boundary), <see cref="Prefetch"/> runs the prefetch stage before each apply,
/// <see cref="WriteSnapshot"/> takes its checkpoint, and <see cref="Restore"/> opens it again after a crash.
/// </summary>
public interface ISimulatedStateMachine
{
    /// <summary>What the stage before the business logic does for the command (bring cold state in). Nothing for a memory-only ledger.</summary>
    void Prefetch(in Command command);

    void Apply(in Command command, ReadOnlySpan<byte> attachment);

    /// <summary>The state as of the last applied command, as the snapshot payload.</summary>
    byte[] WriteSnapshot();

    /// <summary>A fresh state machine from a snapshot payload (null: the empty state).</summary>
    ISimulatedStateMachine Restore(byte[]? snapshot);

    void VerifyInvariants();
    string StateHash();
    long ClockMs { get; }
}

/// <summary>The ledger alone, in memory: what <see cref="RamPayEngine"/> runs today.</summary>
public sealed class LedgerStateMachine(LedgerOptions options, Ledger? ledger = null) : ISimulatedStateMachine
{
    private readonly Ledger _ledger = ledger ?? new Ledger(options);

    public long ClockMs => _ledger.ClockMs;

    public void Prefetch(in Command command)
    {
    }

    public void Apply(in Command command, ReadOnlySpan<byte> attachment) => _ledger.Apply(command, attachment, out _);

    public byte[] WriteSnapshot()
    {
        _ledger.VerifyInvariants();
        using var buffer = new MemoryStream();
        _ledger.WriteState(buffer);
        return buffer.ToArray();
    }

    public ISimulatedStateMachine Restore(byte[]? snapshot)
    {
        if (snapshot is null) return new LedgerStateMachine(options);
        using var stream = new MemoryStream(snapshot, writable: false);
        return new LedgerStateMachine(options, Ledger.ReadState(stream, options));
    }

    public void VerifyInvariants() => _ledger.VerifyInvariants();
    public string StateHash() => _ledger.ComputeStateHash();
}

/// <summary>Counts of what one seeded run did, and its seed, for the failure message and the CI log.</summary>
public sealed record SimulationResult(int Seed, bool Archive, int Steps, long Appended, long LostUnacknowledged, long LastSequence, int Commits,
    int Snapshots, int Crashes, int Recoveries, int FailedFlushes, int TornWrites, int SegmentsRetired, int ArchiveChecks, int Checks,
    bool ColdTier = false, long ColdHits = 0, long ColdEntriesWritten = 0, long ColdSegmentsDropped = 0, int ColdTornTails = 0, int ColdConsumerChecksSkipped = 0,
    bool ColdPayments = false, long PaymentColdLoads = 0, long PaymentRecordsWritten = 0, int PaymentTornTails = 0, long Payments = 0)
{
    public override string ToString() =>
        $"seed {Seed} (archive {(Archive ? "on" : "off")}): {Steps} steps, {Appended} appended, {LostUnacknowledged} unacknowledged lost at crashes, {Commits} commits, last sequence {LastSequence}, " +
        $"{Snapshots} snapshots, {Crashes} crashes, {Recoveries} recoveries, {FailedFlushes} failed flushes, {TornWrites} torn writes, " +
        $"{SegmentsRetired} segments retired, {Checks} recovery checks, {ArchiveChecks} full-journal reads" +
        (ColdTier ? $"; cold key tier: {ColdHits} keys answered from it, {ColdEntriesWritten} entries written, {ColdSegmentsDropped} segments collected, " +
            $"{ColdTornTails} torn segment tails, {ColdConsumerChecksSkipped} consumer checks without the archive they need" : "") +
        (ColdPayments ? $"; payments' cold tier (rules 3): {Payments} payments, {PaymentColdLoads} old payments brought back for a command, " +
            $"{PaymentRecordsWritten} records written, {PaymentTornTails} torn log tails" : "");
}

/// <summary>A check failed: the message says which, and the seed replays it exactly.</summary>
public sealed class SimulationFailure(int seed, int step, string message, Exception? inner = null, bool coldTier = false, bool rules3 = false)
    : Exception($"simulation seed {seed} failed at step {step}: {message}\n  replay: {(rules3 ? "RAMPAY_SIM_RULES3=1 " : coldTier ? "RAMPAY_SIM_COLD=1 " : "")}RAMPAY_SIM_SEED={seed} dotnet test tests/RamPay.Simulation.Tests --filter Seed_from_the_environment", inner);

/// <summary>
/// Drives the engine's building blocks on ONE thread in an order drawn from one seeded <see cref="Random"/>: journal
/// appends and commits (<see cref="JournalWriter"/>), applies to the state (<see cref="Ledger.Apply(in Command, ReadOnlySpan{byte}, out CommandResult)"/>),
/// snapshots (<see cref="SnapshotStore"/>), journal retirement (<see cref="JournalRetirement"/>) behind a simulated
/// consumer, crashes (<see cref="SimulatedFileSystem.Crash"/>, scheduled at any file operation, recovery included)
/// and recovery (the writer's tail repair, the newest good snapshot, the journal replayed after it, as
/// <see cref="EngineRecovery.Load(string, string, LedgerOptions, bool, List{string})"/> does), over a
/// <see cref="SimulatedFileSystem"/> that tears writes, fails flushes and loses what was not flushed.
/// <para>
/// After every recovery it checks: the state's invariants; every acknowledged (committed) command is in the journal,
/// byte for byte, and nothing that was never appended is; the recovered state's hash equals a reference ledger fed
/// exactly the journal's commands (so no command is half applied, and none applied twice); the simulated consumer can
/// still rebuild its state at its position (retirement kept what it needs); with an archive, the whole journal from
/// record 1 still reads, and without one, a read from record 1 fails with <see cref="JournalArchiveMissingException"/>.
/// </para>
/// The real <see cref="RamPayEngine"/> runs these blocks on three threads; here their interleavings are the seed's.
/// </summary>
public sealed class Simulator
{
    private const string Root = "/sim";
    private static readonly string JournalDirectory = Root + "/data/journal";
    private static readonly string SnapshotDirectory = Root + "/data/snapshots";
    private static readonly string ArchiveDirectory = Root + "/archive";

    private readonly int _seed;
    private readonly Random _random;
    private readonly SimulatedFileSystem _files;
    private readonly LedgerOptions _ledgerOptions;
    private readonly ISimulatedStateMachine _empty;
    /// <summary>The all-in-memory ledger the references and the full-journal reads use: with the cold tier on, the state hash must not depend on the tier.</summary>
    private readonly ISimulatedStateMachine _referenceEmpty;
    private readonly ColdTierWorld? _cold;
    private long _loadedSnapshot;
    private int _consumerChecksSkipped;
    private readonly bool _archive;
    private readonly long _segmentBytes;
    private readonly List<byte[]> _history = []; // payload of each appended sequence, index = sequence - 1
    private readonly byte[] _payload = new byte[CommandCodec.Size];

    private JournalWriter? _writer;
    private ISimulatedStateMachine _state;
    private long _acknowledged;
    private long _recoveredThrough;
    private readonly ISimulatedStateMachine?[] _references = new ISimulatedStateMachine?[2];
    private readonly long[] _referenceThrough = new long[2];
    private readonly Dictionary<long, string> _referenceHashes = [];
    private long _appended;
    private long _lost; // appended, never acknowledged, and gone after a crash
    private bool _final; // the last recovery of the run: every check runs
    private bool _inWriter; // the step is inside a journal writer call (an append may commit, or start a segment)
    private long _consumer; // the simulated consumer's position: like a sink's checkpoint, at most the acknowledged sequence
    private long _clockMs = 1_700_000_000_000;
    private long _keys;
    private long _paymentsGuess;
    private int _step;
    private int _commits, _snapshots, _recoveries, _retired, _checks, _archiveChecks;

    private readonly bool _rules3;

    /// <param name="rules3">Rules version 3: the cold key tier and the payments' cold tier (implies <paramref name="coldTier"/>).</param>
    public Simulator(int seed, bool lyingDisk = false, bool coldTier = false, bool rules3 = false)
    {
        _rules3 = rules3;
        coldTier |= rules3;
        _seed = seed;
        _random = new Random(seed);
        _files = new SimulatedFileSystem(_random);
        _files.CreateDirectory(Root + "/data");
        // Small capacities, so keys are evicted early and holds expire within a run, as a long server run would see.
        _ledgerOptions = new LedgerOptions
        {
            MaxAccounts = 64, MaxPayments = 1 << 16, InitialPaymentCapacity = 256, MaxOpenHolds = 4096, IdempotencyMaxKeys = 256, IdempotencyWindowMs = 3_600_000,
        };
        _referenceEmpty = new LedgerStateMachine(_ledgerOptions);
        if (coldTier)
        {
            // Rules version 2 (journaled as the first command) with a 24 h window: about 1,900 commands, beyond the 128 hot keys,
            // so retries reach the cold tier, and beyond the key budget of 1,000, so keys also die by the budget and segments go.
            _ledgerOptions = _ledgerOptions with { IdempotencyWindowMs = 86_400_000 };
            _referenceEmpty = new LedgerStateMachine(_ledgerOptions);
            _cold = new ColdTierWorld(payments: rules3);
            _empty = new ColdTierStateMachine(_cold, _ledgerOptions);
        }
        else _empty = _referenceEmpty;
        _state = _empty;
        _archive = _random.Next(2) == 0;
        // Small segments (a few dozen records each) so that runs cross many segment boundaries and retire segments.
        _segmentBytes = SegmentFormat.HeaderSize + RecordFormat.MaxRecordSize + _random.Next(0, 40) * (RecordFormat.HeaderSize + CommandCodec.Size);
        _files.FlushFailureChance = _random.Next(3) == 0 ? 0.01 : 0;
        _files.LieAboutFlushes = lyingDisk;
    }

    public static SimulationResult Run(int seed, int steps, bool coldTier = false, bool rules3 = false) => new Simulator(seed, coldTier: coldTier, rules3: rules3).Run(steps);

    /// <summary>Runs the seed; any failure (a check, or anything a component throws that the run did not expect) names the seed and step.</summary>
    public SimulationResult Run(int steps)
    {
        try
        {
            var result = RunSteps(steps);
            return _cold is null ? result : result with
            {
                ColdTier = true, ColdHits = _cold.ColdHits, ColdEntriesWritten = _cold.EntriesWritten + _cold.Store.EntriesWritten,
                ColdSegmentsDropped = _cold.SegmentsDropped + _cold.Store.SegmentsDropped, ColdTornTails = _cold.TornTails, ColdConsumerChecksSkipped = _consumerChecksSkipped,
                ColdPayments = _rules3, PaymentColdLoads = _cold.PaymentColdLoads, PaymentRecordsWritten = _cold.PaymentRecordsWritten + (_cold.Payments?.RecordsWritten ?? 0),
                PaymentTornTails = _cold.PaymentTornTails, Payments = (_state as ColdTierStateMachine)?.Ledger.PaymentCount ?? 0,
            };
        }
        catch (Exception e) when (e is not SimulationFailure)
        {
            throw Fail($"{e.GetType().Name}: {e.Message}", e);
        }
        finally
        {
            _writer?.Dispose();
            _cold?.Dispose();
        }
    }

    private SimulationResult RunSteps(int steps)
    {
        Recover();
        for (_step = 1; _step <= steps; _step++)
        {
            if (_files.CrashAfterOperations == 0 && _random.Next(60) == 0) _files.CrashAfterOperations = 1 + _random.Next(120);
            try
            {
                Step();
            }
            catch (SimulatedCrashException)
            {
                _files.Crash();
                Recover();
            }
            catch (SimulatedIOException)
            {
                // A failed flush. A writer that failed must refuse everything after it (fsyncgate: never retry and claim
                // durability); the engine then stops (a failed stage faults the pipeline) and the process restarts.
                if (_inWriter) RequireRefusal();
                _files.Crash();
                Recover();
            }
            finally
            {
                _inWriter = false;
            }
        }
        _files.CrashAfterOperations = 0;
        _files.FlushFailureChance = 0;
        _files.Crash();
        _final = true;
        Recover();
        return new SimulationResult(_seed, _archive, steps, _appended, _lost, _writer!.LastSequence, _commits, _snapshots,
            _files.Crashes, _recoveries, _files.FailedFlushes, _files.TornWrites, _retired, _archiveChecks, _checks);
    }

    private void Step()
    {
        int roll = _random.Next(100);
        if (roll < 55)
        {
            int count = 1 + _random.Next(8);
            for (int i = 0; i < count; i++) AppendAndApply();
        }
        else if (roll < 80)
        {
            Commit();
        }
        else if (roll < 86)
        {
            Snapshot();
        }
        else if (roll < 92)
        {
            // The consumer (a sink) moves on, never past what is acknowledged.
            if (_acknowledged > _consumer) _consumer += _random.NextInt64(_acknowledged - _consumer + 1);
        }
        else if (roll < 97)
        {
            _retired += Retirement().RetireNow(_consumer).SegmentsRetired;
        }
        else
        {
            _files.Crash();
            Recover();
        }
    }

    /// <summary>The journal stage makes the batch durable: only then are its commands acknowledged.</summary>
    private void Commit()
    {
        _inWriter = true;
        _writer!.Commit();
        _inWriter = false;
        _commits++;
        _acknowledged = _writer.DurableSequence;
        // The cold tier's writer catches up with the journal at seeded points (else its generations wait: lost at a crash).
        if (_cold is not null && _random.Next(2) == 0) _cold.Release(_writer.DurableSequence);
    }

    /// <summary>The journal stage appends; the business-logic stage applies (before the commit, as on the ring).</summary>
    private void AppendAndApply()
    {
        // The engine's journal is never far ahead of the cold tier's writer (its hot tier would fill and the writer wait): here
        // the journal is made durable and the tier catches up before the hot tier could fill.
        if (ColdTierWorld.NearFull(_state))
        {
            Commit();
            _cold!.ReleaseIfFull(_state, _writer!.DurableSequence);
        }
        Command command = NextCommand();
        long sequence = _writer!.LastSequence + 1;
        CommandCodec.Write(_payload, command);
        _inWriter = true;
        _writer.Append(RecordTypes.Command, sequence, command.TimestampMs, _payload);
        _inWriter = false;
        if (_history.Count != sequence - 1) throw Fail($"history holds {_history.Count} commands but the journal appends {sequence}");
        _history.Add((byte[])_payload.Clone());
        _appended++;
        _state.Prefetch(command);
        _state.Apply(command, []);
    }

    /// <summary>
    /// As the engine does: only a state whose every command is durable is snapshotted (the business-logic stage waits
    /// for the journaler first). A failed snapshot write stops the engine, like a failed commit.
    /// </summary>
    private void Snapshot()
    {
        Commit();
        long sequence = _writer!.DurableSequence;
        if (sequence == 0) return;
        SnapshotStore.Write(_files, SnapshotDirectory, sequence, _state.ClockMs, _state.WriteSnapshot(), keepCount: 1 + _random.Next(3));
        _snapshots++;
        // The cold tier may collect only what is dead in the oldest snapshot recovery could still start from.
        if (_cold is not null) _cold.OnSnapshot(sequence, ((ColdTierStateMachine)_state).Ledger, SnapshotStore.ListValid(_files, SnapshotDirectory));
        // The host runs retirement after each snapshot.
        if (_random.Next(2) == 0) _retired += Retirement().RetireNow(_consumer).SegmentsRetired;
    }

    private JournalRetirement Retirement() => new(new JournalRetirementOptions
    {
        JournalDirectory = JournalDirectory,
        SnapshotDirectory = SnapshotDirectory,
        ArchiveDirectory = _archive ? ArchiveDirectory : null,
        FileSystem = _files,
    }, new JournalConsumerRegistry());

    private void RequireRefusal()
    {
        try
        {
            _writer!.Append(RecordTypes.Command, _writer.LastSequence + 1, _clockMs, _payload);
        }
        catch (InvalidOperationException)
        {
            try
            {
                _writer!.Commit();
            }
            catch (InvalidOperationException)
            {
                return;
            }
        }
        throw Fail("the journal writer accepted work after a failed flush");
    }

    /// <summary>
    /// Restart after a crash: open the writer (tail repair), load the newest good snapshot, replay the journal after
    /// it, then check everything. A crash during recovery (armed before it) starts it again.
    /// </summary>
    private void Recover()
    {
        for (int attempt = 0; ; attempt++)
        {
            if (attempt > 20) throw Fail("recovery did not finish in 20 attempts");
            _writer?.Dispose();
            _writer = null;
            if (attempt > 0 || _random.Next(4) == 0) _files.CrashAfterOperations = attempt > 10 ? 0 : 1 + _random.Next(20);
            // The cold tier restarts with the process (losing what it was not let write, maybe with a torn tail); during recovery
            // everything the journal holds is durable, as in the engine.
            _cold?.Crash(_random);
            try
            {
                _writer = JournalWriter.Open(new JournalOptions
                {
                    Directory = JournalDirectory,
                    FileSystem = _files,
                    SegmentSizeBytes = _segmentBytes,
                    Fsync = true,
                    BatchBufferInitialBytes = RecordFormat.MaxRecordSize,
                });
                _state = Load(long.MaxValue, out _recoveredThrough, _empty);
                _files.CrashAfterOperations = 0;
                break;
            }
            catch (SimulatedCrashException)
            {
                _files.Crash();
            }
            catch (SimulatedIOException)
            {
                _files.Crash();
            }
        }
        _recoveries++;
        if (_cold is not null)
        {
            // The engine refuses a snapshot older than the horizon the tier recycled under: the simulation must never need to.
            if (_cold.Store.RecycledUnderSequence > _loadedSnapshot)
                throw Fail($"the cold tier recycled under snapshot {_cold.Store.RecycledUnderSequence} but recovery started from snapshot {_loadedSnapshot}");
            _cold.Release(_writer!.DurableSequence);
        }
        Check();
    }

    /// <summary>The newest good snapshot at or before <paramref name="through"/>, then the journal after it up to there.</summary>
    private ISimulatedStateMachine Load(long through, out long lastApplied, ISimulatedStateMachine empty)
    {
        byte[]? payload = SnapshotStore.TryLoadLatest(_files, SnapshotDirectory, through, out SnapshotInfo info, out byte[] bytes) ? bytes : null;
        long from = info.Sequence;
        ISimulatedStateMachine state;
        try
        {
            state = empty.Restore(payload);
        }
        catch (SnapshotNeedsColdTierException)
        {
            // A reader without the cold tier (here: the consumer's rebuild) replays the journal from its start instead, as EngineRecovery does.
            state = empty.Restore(null);
            from = 0;
        }
        if (ReferenceEquals(empty, _empty)) _loadedSnapshot = from;
        var replay = new Replay(state, from, _history, _seed, _step, ReferenceEquals(empty, _empty) ? _cold : null);
        JournalReadSummary summary = through == long.MaxValue
            ? JournalReader.Read(_files, JournalDirectory, from, replay)
            : JournalReader.ReadRange(_files, JournalDirectory, from + 1, through, replay);
        if (summary.TornTail is not null) throw Fail($"replay after the writer's tail repair met a torn tail: {summary.TornTail}");
        state.VerifyInvariants();
        lastApplied = replay.LastSequence;
        return state;
    }

    private void Check()
    {
        _checks++;
        long last = _writer!.LastSequence;
        // Every acknowledged command survived; nothing beyond what was appended appeared.
        if (last < _acknowledged) throw Fail($"acknowledged through {_acknowledged}, but the journal ends at {last}");
        if (last > _history.Count) throw Fail($"the journal ends at {last}, but only {_history.Count} commands were appended");
        // What survived beyond the acknowledged point was appended whole and is now durable; the rest is gone.
        _lost += _history.Count - (int)last;
        _history.RemoveRange((int)last, _history.Count - (int)last);
        ForgetReferencesAfter(last);
        _acknowledged = last;
        _consumer = Math.Min(_consumer, last);

        long applied = _recoveredThrough;
        if (applied != last) throw Fail($"replay applied through {applied}, the journal ends at {last}");
        string expected = Reference(last);
        string actual = _state.StateHash();
        if (actual != expected) throw Fail($"state hash after recovery {actual} differs from the reference ledger fed the {last} journaled commands ({expected})");

        // The consumer can still rebuild its state at its position, whatever was retired (every other check, and the last).
        bool thorough = _final || _random.Next(2) == 0;
        if (_consumer > 0 && thorough)
        {
            ISimulatedStateMachine atConsumer;
            long consumerApplied;
            try
            {
                // With the cold tier, the consumer's rebuild is a reader without it (like the sinks' replica): all in memory.
                atConsumer = Load(_consumer, out consumerApplied, _referenceEmpty);
            }
            catch (JournalArchiveMissingException) when (_cold is not null && !_archive)
            {
                // Its snapshot needs the cold tier, and the journal from record 1 was retired without an archive: the named error
                // the product gives (docs/snapshots.md), not a wrong state.
                _consumerChecksSkipped++;
                return;
            }
            if (consumerApplied != _consumer) throw Fail($"the consumer's state rebuilt to {consumerApplied}, not its position {_consumer}");
            if (atConsumer.StateHash() != Reference(_consumer)) throw Fail($"the consumer's state at {_consumer} differs from the reference");
        }

        // From record 1: through the archive when there is one; a named error when segments were deleted.
        if (!thorough) return;
        var manifest = RetirementManifest.Read(_files, JournalDirectory);
        var everything = new Replay(_referenceEmpty.Restore(null), 0, _history, _seed, _step);
        try
        {
            JournalReader.Read(_files, JournalDirectory, 0, everything);
            if (everything.LastSequence != last) throw Fail($"a full read reached {everything.LastSequence}, not {last}");
            _archiveChecks++;
        }
        catch (JournalArchiveMissingException e)
        {
            if (_archive || manifest is null) throw Fail($"a full read failed although {(_archive ? "the archive holds every retired segment" : "nothing was retired")}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The hash of a ledger fed the first <paramref name="through"/> appended commands directly, without the journal.
    /// Two references move forward along the history (one follows the journal's end, one the consumer); one whose
    /// commands were cut off by a crash starts again from the empty state.
    /// </summary>
    private string Reference(long through)
    {
        if (_referenceHashes.TryGetValue(through, out string? known)) return known;
        int which = through == _writer!.LastSequence ? 0 : 1;
        if (_references[which] is null || _referenceThrough[which] > through || _referenceThrough[which] > _history.Count)
        {
            _references[which] = _referenceEmpty.Restore(null);
            _referenceThrough[which] = 0;
        }
        ISimulatedStateMachine reference = _references[which]!;
        for (long i = _referenceThrough[which]; i < through; i++)
        {
            Command command = CommandCodec.Read(_history[(int)i]);
            reference.Prefetch(command);
            reference.Apply(command, []);
        }
        _referenceThrough[which] = through;
        reference.VerifyInvariants();
        string hash = reference.StateHash();
        _referenceHashes[through] = hash;
        return hash;
    }

    /// <summary>Forgets reference states and hashes of commands a crash cut off (their sequences will be reused).</summary>
    private void ForgetReferencesAfter(long last)
    {
        foreach (long key in _referenceHashes.Keys.Where(k => k > last).ToList()) _referenceHashes.Remove(key);
        for (int i = 0; i < 2; i++)
        {
            if (_referenceThrough[i] > last) _references[i] = null;
        }
    }

    private SimulationFailure Fail(string message, Exception? inner = null) => new(_seed, _step, message, inner, _cold is not null, _rules3);

    /// <summary>A seeded mix: accounts, deposits, transfers, two-phase payments with captures, voids and refunds, freezes, retried keys, ticks.</summary>
    private Command NextCommand()
    {
        _clockMs += _random.Next(1, 90_000);
        int roll = _random.Next(100);
        long wallets = Math.Max(1, Math.Min(12, _history.Count / 4));
        long Wallet() => 2 + _random.NextInt64(wallets);
        IdempotencyKey Key() => IdempotencyKey.FromString("sim-" + _seed + "-" + ++_keys);
        // With the cold tier the journal starts with the upgrade to rules version 2 (as a server's first start journals it).
        if (_cold is not null && _history.Count == 0)
            return new Command { Type = CommandType.UpgradeRules, Argument = _rules3 ? 3 : 2, Amount = ColdTierWorld.KeyBudget, TimestampMs = _clockMs };
        int first = _cold is null ? 0 : 1;
        Command command = _history.Count == first || roll < 4
            ? new Command { Type = CommandType.OpenAccount, Flags = (byte)(_history.Count == first ? AccountFlags.Funding : AccountFlags.DebitsMustNotExceedCredits), Argument = 100 + _keys }
            : roll < 22 ? new Command { Type = CommandType.Deposit, FromAccount = 1, ToAccount = Wallet(), Amount = _random.Next(1, 50_000) }
            : roll < 50 ? new Command { Type = CommandType.Transfer, FromAccount = Wallet(), ToAccount = Wallet(), Amount = _random.Next(1, 8_000) }
            : roll < 62 ? new Command { Type = CommandType.Authorize, FromAccount = Wallet(), ToAccount = Wallet(), Amount = _random.Next(1, 8_000), Argument = _random.Next(0, 600_000) }
            : roll < 72 ? new Command { Type = CommandType.Capture, PaymentId = 1 + _random.NextInt64(_paymentsGuess + 1), Amount = _random.Next(0, 4_000) }
            : roll < 78 ? new Command { Type = CommandType.Void, PaymentId = 1 + _random.NextInt64(_paymentsGuess + 1) }
            : roll < 85 ? new Command { Type = CommandType.Refund, PaymentId = 1 + _random.NextInt64(_paymentsGuess + 1), Amount = _random.Next(1, 3_000) }
            : roll < 88 ? new Command { Type = _random.Next(2) == 0 ? CommandType.Freeze : CommandType.Unfreeze, FromAccount = Wallet() }
            : roll < 95 && _history.Count > 4 ? CommandCodec.Read(_history[_random.Next(_history.Count)]) // a retry: the same key and body
            : new Command { Type = CommandType.Tick };
        if (command.Type is CommandType.Transfer or CommandType.Authorize) _paymentsGuess++;
        if (command.Type is not (CommandType.Tick or CommandType.UpgradeRules) && command.Key.Equals(default(IdempotencyKey)))
        {
            command.Key = Key();
            command.ClientId = 1;
            command.Currency = Currency.USD;
        }
        command.TimestampMs = _clockMs;
        return command;
    }

    /// <summary>Applies replayed records, checking each against what was appended at that sequence.</summary>
    private sealed class Replay(ISimulatedStateMachine state, long after, List<byte[]> history, int seed, int step, ColdTierWorld? cold = null) : IRecordVisitor
    {
        public long LastSequence { get; private set; } = after;

        public void OnRecord(in RecordHeader header, ReadOnlySpan<byte> payload)
        {
            if (header.Sequence != LastSequence + 1) throw new SimulationFailure(seed, step, $"replay delivered {header.Sequence} after {LastSequence}");
            if (header.Sequence > history.Count || !payload.SequenceEqual(history[(int)header.Sequence - 1]))
                throw new SimulationFailure(seed, step, $"journal record {header.Sequence} is not the command appended at that sequence");
            if (header.Type != RecordTypes.Command || !CommandCodec.TryRead(payload[..CommandCodec.Size], out Command command))
                throw new SimulationFailure(seed, step, $"journal record {header.Sequence} does not decode");
            // Everything before this record is in the repaired journal, so durable: the cold tier may write it.
            cold?.ReleaseIfFull(state, LastSequence);
            state.Prefetch(command);
            state.Apply(command, payload[CommandCodec.Size..]);
            LastSequence = header.Sequence;
        }
    }
}
