using System.Diagnostics;
using RamPay.Core;
using RamPay.Journal;

namespace RamPay.Engine;

/// <summary>
/// Takes the periodic snapshots off the writer (<see cref="EngineOptions.SnapshotOffWriter"/>): a replica ledger on its own
/// thread re-applies the journal's durable records through the same <see cref="Ledger.Apply(in Command, ReadOnlySpan{byte}, out CommandResult)"/>
/// and, every <see cref="EngineOptions.SnapshotEveryCommands"/> records or <see cref="EngineOptions.SnapshotEveryMs"/>, checks
/// the replica's invariants and streams its state into a snapshot. Determinism makes the replica's state at sequence S the
/// writer's state at S, byte for byte, so the snapshot is the one the writer would have written; the writer itself does
/// nothing for it (no copy, no check, no pause).
/// <para>
/// Why a replica and not copy-on-write: the ledger's arrays are written in place by the writer, so a copy-on-write snapshot
/// needs a check (and sometimes a copy) on every store of the apply path; a replica needs none, and the journal, which the
/// writer writes anyway, is the only thing the two share. Its cost is memory: a second copy of the state (the sinks' replica,
/// when sinks run, is a third; docs/snapshots.md).
/// </para>
/// <para>
/// It reads only records the journaler has made durable, so a snapshot never holds a command the journal could still lose.
/// Its position is never behind the newest snapshot, so journal retirement (bounded by that snapshot) never removes a
/// segment it still needs. A failure (a broken invariant, a journal it cannot read, a snapshot it cannot write) is kept in
/// <see cref="Fault"/>, which the engine reports as its own: the host stops, and the journal makes that safe.
/// </para>
/// </summary>
internal sealed class SnapshotFollower : IRecordVisitor, IDisposable
{
    /// <summary>Most records applied between two checks of the stop flag and the snapshot interval.</summary>
    private const int PollRecords = 4096;
    /// <summary>How long the thread sleeps when it has caught up with the durable journal.</summary>
    private const int IdleWaitMs = 5;

    private readonly EngineOptions _options;
    private readonly long _startSequence;
    private readonly DurableWatermark _durable;
    private readonly SnapshotHorizon _horizon;
    private readonly EngineCounters _counters;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _stopSignal = new(false);
    private volatile bool _stopping;
    private Ledger? _ledger;
    private JournalTailer? _tailer;
    private long _lastSequence;
    private Exception? _fault;

    public SnapshotFollower(EngineOptions options, long startSequence, DurableWatermark durable, SnapshotHorizon horizon, EngineCounters counters)
    {
        _options = options;
        _startSequence = startSequence;
        _lastSequence = startSequence;
        _durable = durable;
        _horizon = horizon;
        _counters = counters;
        _thread = new Thread(Run) { Name = "rampay-snapshotter", IsBackground = true };
    }

    /// <summary>The replica's follower handle in the payments' cold tier, registered when the store was opened (-1: none).</summary>
    public int PaymentFollowerHandle { get; init; } = -1;

    /// <summary>The first failure of the follower, or null.</summary>
    public Exception? Fault => Volatile.Read(ref _fault);

    /// <summary>The last journal sequence the replica has applied (racy read, for metrics and tests).</summary>
    public long AppliedSequence => Volatile.Read(ref _lastSequence);

    /// <summary>The replica's resident payments (hot chunks and pool), after its last poll: racy, for metrics and tests.</summary>
    public long ResidentPayments => Volatile.Read(ref _residentPayments);
    /// <summary>The most resident payments the replica held after any poll or snapshot of this run.</summary>
    public long MaxResidentPayments => Volatile.Read(ref _maxResidentPayments);
    private long _residentPayments, _maxResidentPayments;

    private void NotePayments(Ledger ledger)
    {
        long resident = ledger.PaymentTier.ResidentPayments;
        Volatile.Write(ref _residentPayments, resident);
        if (resident > _maxResidentPayments) Volatile.Write(ref _maxResidentPayments, resident);
    }

    /// <summary>Called on the follower's thread after each snapshot is durable, with its sequence (the host asks for a retirement pass).</summary>
    public Action<long>? SnapshotWritten { get; init; }

    public void Start() => _thread.Start();

    /// <summary>Stops the thread; a snapshot being written is abandoned (its temporary file is removed by the next write).</summary>
    public void Stop()
    {
        _stopping = true;
        _stopSignal.Set();
        if (_thread.IsAlive) _thread.Join();
    }

    public void Dispose()
    {
        Stop();
        _tailer?.Dispose();
        _stopSignal.Dispose();
    }

    private void Run()
    {
        try
        {
            // The replica as of the writer's start: the newest snapshot at or before it plus the journal up to it. Built here,
            // not at start-up, so that start-up pays for one recovery only; the writer runs meanwhile.
            var warnings = new List<string>();
            // With a cold key tier the replica shares the writer's store as a follower: it reads it and drops its own copies of
            // what the store holds durably, but never writes it (the writer's key log does), so its hot entries plus the store
            // hold every live key of its state, as the writer's do, and its snapshot is the writer's.
            var ledgerOptions = _options.Ledger.ColdKeys is { } tier ? _options.Ledger with { ColdKeys = tier with { Follower = true } } : _options.Ledger;
            // Likewise the payments' cold tier (rules version 3): the replica reads the writer's payment log at its own count and
            // drops what the log holds durably, so it holds about the writer's hot payments, not every payment.
            // Its handle was registered when the store was opened (RamPayEngine), so nothing it needs was forgotten meanwhile.
            if (ledgerOptions.ColdPayments is { } payments)
                ledgerOptions = ledgerOptions with { ColdPayments = payments with { Follower = true, FollowerHandle = PaymentFollowerHandle } };
            var (ledger, _, _, last) = EngineRecovery.Load(_options.SnapshotDirectory, _options.JournalDirectory, ledgerOptions, useSnapshot: true,
                _startSequence, warnings);
            Invariant.Check(last == _startSequence, $"the snapshotter's replica stopped at {last}, not at the writer's start {_startSequence}");
            _ledger = ledger;
            _tailer = new JournalTailer(_options.JournalDirectory, _startSequence);
            long since = 0;
            long lastSnapshotTicks = Stopwatch.GetTimestamp();
            long everyCommands = _options.SnapshotEveryCommands;
            while (!_stopping)
            {
                // Polls stop at the command threshold, so snapshots land exactly every SnapshotEveryCommands records.
                int max = everyCommands > 0 ? (int)Math.Min(PollRecords, Math.Max(1, everyCommands - since)) : PollRecords;
                int read = _tailer.Poll(_durable.Value, max, this);
                since += read;
                if (read > 0) NotePayments(ledger);
                bool dueByCount = everyCommands > 0 && since >= everyCommands;
                bool dueByTime = _options.SnapshotEveryMs > 0 && since > 0
                    && Stopwatch.GetElapsedTime(lastSnapshotTicks).TotalMilliseconds >= _options.SnapshotEveryMs;
                if (dueByCount || dueByTime)
                {
                    if (!Write()) return; // stopped in the middle
                    since = 0;
                    lastSnapshotTicks = Stopwatch.GetTimestamp();
                    continue;
                }
                if (read == 0) _stopSignal.Wait(IdleWaitMs);
            }
        }
        catch (Exception e)
        {
            Volatile.Write(ref _fault, e);
        }
    }

    void IRecordVisitor.OnRecord(in RecordHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.Type != RecordTypes.Command || payload.Length < CommandCodec.Size || !CommandCodec.TryRead(payload[..CommandCodec.Size], out var command))
            throw new JournalCorruptException(new JournalProblem(JournalProblemKind.BadPayload, "", 0, header.Sequence, "the record is not a command this RamPay knows"));
        _ledger!.Apply(command, payload[CommandCodec.Size..], out _);
        Volatile.Write(ref _lastSequence, header.Sequence);
    }

    /// <summary>Checks and writes the replica's state as of <see cref="_lastSequence"/>; false when a stop abandoned it.</summary>
    private bool Write()
    {
        var ledger = _ledger!;
        long sequence = _lastSequence;
        long started = Stopwatch.GetTimestamp();
        // The hot section must fit the writer's hot tier when it loads this snapshot (and be small: it is written whole).
        if (ledger.KeyLog is { HasColdTier: true } follower) follower.RetireDurableForSnapshot();
        ledger.TrimPaymentsForSnapshot();
        NotePayments(ledger);
        // The whole-state check, off the writer: the replica's state is the writer's at this sequence.
        ledger.VerifyInvariants();
        _options.WriteFence?.CheckCanWrite();
        try
        {
            SnapshotStore.Write(_options.SnapshotDirectory, sequence, ledger.ClockMs, stream =>
            {
                using var stoppable = new StoppableStream(stream, this);
                using var buffered = new BufferedStream(stoppable, 1 << 20);
                ledger.WriteState(buffered);
                buffered.Flush();
            }, _options.SnapshotsToKeep);
        }
        catch (SnapshotAbandonedException)
        {
            return false;
        }
        double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        EngineCounters.SnapshotDurationSeconds.Record(seconds);
        _counters.OnSnapshot(sequence);
        if (ledger.KeyLog is { } keys) _horizon.OnSnapshot(sequence, keys.Inserted - keys.Budget, ledger.ClockMs - keys.WindowMs);
        SnapshotWritten?.Invoke(sequence);
        return true;
    }

    private sealed class SnapshotAbandonedException() : Exception("the engine stopped while a snapshot was written");

    /// <summary>Passes writes through and abandons the snapshot when the engine stops, so a stop never waits for a large state.</summary>
    private sealed class StoppableStream(Stream inner, SnapshotFollower owner) : Stream
    {
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (owner._stopping) throw new SnapshotAbandonedException();
            inner.Write(buffer);
        }
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

/// <summary>
/// The (sequence, DeadBelowIndex, ExpiredAtOrBeforeMs) facts of the newest snapshots, oldest first, whoever wrote them (the
/// writer or the snapshotter): recovery may fall back to any kept snapshot, so the cold tier may destroy only entries dead
/// in the oldest one. Thread-safe.
/// <para>
/// The facts are kept in <see cref="FileName"/> beside the snapshots, so that a start knows those of the snapshots an earlier
/// run wrote. Before, a start knew none: nothing was collected until this run had written <c>keep</c> snapshots of its own,
/// and a tier that was near its capacity at the restart filled (the 200 M long run, 2026-12-06: FATAL
/// <c>ColdTierFullException</c> 17 M keys after a restart at 100 M payments, horizon "at snapshot 0"). The file is written
/// after the snapshot is durable, so a crash between the two leaves the newest snapshot without its facts: then the horizon
/// stays at an older snapshot's until later snapshots replace it, which keeps more, never less.
/// </para>
/// <para>
/// With the sinks' replica on the key store (a hold registered when the store was opened), also the facts of every snapshot
/// of this run since the one the sinks would restart from: the sinks' replica restarts from the newest snapshot at or before
/// the lowest sink checkpoint, which may be older than every kept snapshot, so the store may destroy only entries dead there
/// too (<see cref="SinksAt"/>; docs/storage.md, "The sinks' replica follows the key store").
/// </para>
/// </summary>
internal sealed class SnapshotHorizon
{
    /// <summary>One line per snapshot, oldest first: "sequence deadBelowIndex expiredAtOrBeforeMs", decimal, invariant culture.</summary>
    public const string FileName = "key-horizons";

    private readonly Queue<(long Sequence, long DeadBelowIndex, long ExpiredAtOrBeforeMs)> _snapshots = new();
    private readonly RamPay.Storage.KeySegmentStore? _cold;
    private readonly int _keep;
    private readonly string? _path;
    private readonly int _sinksHold;
    // This run's snapshots from the newest one at or before the sinks' last reported position on (oldest first): one entry
    // per snapshot (24 bytes), so a sink that never moves costs 24 bytes per snapshot interval here (and keys on disk: HeldKeys).
    private readonly List<(long Sequence, long DeadBelowIndex, long ExpiredAtOrBeforeMs)> _forSinks = [];
    private long _sinksPosition;

    /// <param name="cold">The key tier whose horizon this sets; null (no cold tier): nothing to do.</param>
    /// <param name="keep">How many snapshots are kept (<see cref="EngineOptions.SnapshotsToKeep"/>).</param>
    /// <param name="snapshotDirectory">Where the snapshots are, and the facts file with them; null: facts kept in memory only.</param>
    /// <param name="startSequence">Where this run starts: facts of snapshots after it (a journal cut short behind them) are not taken.</param>
    /// <param name="sinksHold">The sinks' hold on <paramref name="cold"/> (<see cref="RamPay.Storage.KeySegmentStore.AddHold"/>), or -1.</param>
    public SnapshotHorizon(RamPay.Storage.KeySegmentStore? cold, int keep, string? snapshotDirectory = null, long startSequence = long.MaxValue, int sinksHold = -1)
    {
        _cold = cold;
        _keep = keep;
        _sinksHold = sinksHold;
        if (cold is null || snapshotDirectory is null) return;
        _path = Path.Combine(Path.GetFullPath(snapshotDirectory), FileName);
        Seed(Path.GetFullPath(snapshotDirectory), startSequence);
    }

    /// <summary>The facts of the snapshots still on disk, from the file an earlier run wrote (the newest <c>keep</c> of them).</summary>
    private void Seed(string directory, long startSequence)
    {
        if (!File.Exists(_path) || !Directory.Exists(directory)) return;
        var onDisk = new HashSet<long>(SnapshotStore.List(OsJournalFileSystem.Instance, directory).Select(s => s.Sequence));
        var known = Parse(File.ReadAllText(_path!)).Where(f => onDisk.Contains(f.Sequence) && f.Sequence <= startSequence).ToList();
        foreach (var facts in known.Skip(Math.Max(0, known.Count - _keep))) _snapshots.Enqueue(facts);
        // The sinks may restart from any of these (still on disk): their hold can move to one as soon as they report, instead
        // of keeping every key until they pass a snapshot of this run (one more snapshot interval of keys on disk).
        if (_sinksHold >= 0) _forSinks.AddRange(known);
        Publish();
    }

    /// <summary>Reads the facts file (<see cref="FileName"/>); a line that does not parse is a broken file: the engine stops.</summary>
    public static List<(long Sequence, long DeadBelowIndex, long ExpiredAtOrBeforeMs)> Parse(string text)
    {
        var facts = new List<(long, long, long)>();
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] parts = line.Split(' ');
            long sequence = 0, deadBelow = 0, expired = 0;
            bool parsed = parts.Length == 3
                && long.TryParse(parts[0], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out sequence)
                && long.TryParse(parts[1], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out deadBelow)
                && long.TryParse(parts[2], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out expired);
            Invariant.Check(parsed && sequence > 0 && (facts.Count == 0 || facts[^1].Item1 < sequence), $"{FileName}: a broken line '{line}'");
            facts.Add((sequence, deadBelow, expired));
        }
        return facts;
    }

    public static string Format(IEnumerable<(long Sequence, long DeadBelowIndex, long ExpiredAtOrBeforeMs)> facts) =>
        string.Concat(facts.Select(f => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{f.Sequence} {f.DeadBelowIndex} {f.ExpiredAtOrBeforeMs}\n")));

    public void OnSnapshot(long sequence, long deadBelowIndex, long expiredAtOrBeforeMs)
    {
        if (_cold is null) return;
        lock (_snapshots)
        {
            Invariant.Check(_snapshots.Count == 0 || _snapshots.Last().Sequence <= sequence, "snapshots reported out of order");
            // The same snapshot again (the stop snapshot at the sequence of a periodic one): its facts are the same state's.
            if (_snapshots.Count > 0 && _snapshots.Last().Sequence == sequence) return;
            _snapshots.Enqueue((sequence, deadBelowIndex, expiredAtOrBeforeMs));
            if (_snapshots.Count > _keep) _snapshots.Dequeue();
            if (_path is not null) Save();
            Publish();
            if (_sinksHold >= 0)
            {
                _forSinks.Add((sequence, deadBelowIndex, expiredAtOrBeforeMs));
                MoveSinksHoldLocked();
            }
        }
    }

    /// <summary>
    /// The sinks could restart from journal sequence <paramref name="position"/> (the lowest sink checkpoint, never above their
    /// replica): the key store's hold moves to the newest snapshot at or before it whose facts are known (this run's, and those
    /// of the facts file still on disk). Until the sinks pass one, the hold keeps every key (the snapshot they would restart
    /// from may be older than every snapshot whose facts are kept). Positions never move back (a lower one is ignored).
    /// </summary>
    public void SinksAt(long position)
    {
        if (_cold is null || _sinksHold < 0) return;
        lock (_snapshots)
        {
            if (position <= _sinksPosition) return;
            _sinksPosition = position;
            MoveSinksHoldLocked();
        }
    }

    private void MoveSinksHoldLocked()
    {
        int newest = -1;
        for (int i = 0; i < _forSinks.Count && _forSinks[i].Sequence <= _sinksPosition; i++) newest = i;
        if (newest < 0) return;
        var (s, deadBelow, expired) = _forSinks[newest];
        _cold!.SetHold(_sinksHold, s, deadBelow, expired);
        _forSinks.RemoveRange(0, newest); // older ones: the sinks never restart before this snapshot again
    }

    private void Publish()
    {
        if (_snapshots.Count < _keep) return;
        var (s, deadBelow, expired) = _snapshots.Peek();
        _cold!.SetHorizon(s, deadBelow, expired);
    }

    /// <summary>A crash leaves the old file or the new one (<see cref="AtomicFile"/>).</summary>
    private void Save() => AtomicFile.Write(_path!, System.Text.Encoding.ASCII.GetBytes(Format(_snapshots)));
}
