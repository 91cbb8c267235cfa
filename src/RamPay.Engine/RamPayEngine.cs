using RamPay.Core;
using RamPay.Journal;
using RamPay.Pipeline;

namespace RamPay.Engine;

/// <summary>
/// The single-writer engine. Producers (HTTP, TCP, ticks) claim ring slots and publish commands; then
/// <list type="bullet">
/// <item>the journaler appends each batch to the journal and fsyncs once per batch (group commit),</item>
/// <item>in parallel, the business-logic thread applies each command to the <see cref="Ledger"/>,</item>
/// <item>and the output stage, gated on both, hands each result to <see cref="ICommandCompletion"/>: a caller hears
/// back only once its command is durable.</item>
/// </list>
/// The ring's gating sequence is the output stage, so a full ring holds producers back rather than dropping.
/// </summary>
public sealed class RamPayEngine : IDisposable
{
    private readonly EngineOptions _options;
    private readonly Pipeline<CommandSlot> _pipeline;
    private readonly JournalWriter _journal;
    private readonly BusinessLogicStage _logic;
    private readonly OutputStage _output;
    private readonly long _baseSequence;
    private readonly Timer? _ticker;
    private int _stopped;

    private RamPayEngine(EngineOptions options, JournalWriter journal, Ledger ledger, RecoveryReport recovery, ICommandCompletion? completion)
    {
        _options = options;
        Recovery = recovery;
        _baseSequence = recovery.LastSequence;
        _journal = journal;
        Invariant.Check(_journal.LastSequence == _baseSequence, "journal writer does not continue where recovery stopped");

        IWaitStrategy wait = options.WaitStrategy switch
        {
            WaitStrategyKind.Blocking => new BlockingWaitStrategy(),
            WaitStrategyKind.SpinThenYield => new SpinThenYieldWaitStrategy(),
            WaitStrategyKind.SpinThenBlock => new SpinThenBlockWaitStrategy(),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.WaitStrategy, "unknown wait strategy"),
        };
        _pipeline = new Pipeline<CommandSlot>(options.RingSize, ProducerType.Multi, wait, options.MaxBatchSize);
        var journaler = _pipeline.HandleWith(new JournalStage(_journal, _baseSequence), "rampay-journaler");
        _logic = new BusinessLogicStage(ledger, options, _baseSequence, journaler.Sequence);
        var logic = _pipeline.HandleWith(_logic, "rampay-logic");
        _output = new OutputStage(completion, _baseSequence);
        _pipeline.After(journaler, logic).HandleWith(_output, "rampay-output");
        _pipeline.Start();
        if (options.TickIntervalMs > 0) _ticker = new Timer(_ => Tick(), null, options.TickIntervalMs, options.TickIntervalMs);
    }

    /// <summary>
    /// Submits a clock tick unless the ring is full (then commands are flowing and carry time themselves). Runs on a
    /// timer thread; a stopped or failed engine just stops ticking.
    /// </summary>
    private void Tick()
    {
        // Not through TrySubmit: a timer thread must never throw. Stop sets _stopped and then waits for this
        // callback to return before it drains, so a tick that got past this check is published before the drain.
        if (Volatile.Read(ref _stopped) != 0 || _pipeline.Fault is not null) return;
        if (!_pipeline.Sequencer.TryNext(1, out long seq)) return;
        Fill(ref _pipeline.Ring[seq], new Command { Type = CommandType.Tick }, correlation: 0, _options.Clock());
        _pipeline.Sequencer.Publish(seq);
    }

    /// <summary>Recovers the data directory (snapshot + journal replay) and starts the pipeline threads.</summary>
    public static RamPayEngine Start(EngineOptions options, ICommandCompletion? completion = null)
    {
        options.Validate();
        Directory.CreateDirectory(options.DataDirectory);
        // Opening the writer repairs a torn tail (or refuses a corrupt middle) before anything is replayed.
        var journal = JournalWriter.Open(new JournalOptions
        {
            Directory = options.JournalDirectory,
            Fsync = options.Fsync,
            SegmentSizeBytes = options.SegmentSizeBytes,
        });
        try
        {
            var (ledger, report) = EngineRecovery.Recover(options, journal.Recovery);
            return new RamPayEngine(options, journal, ledger, report, completion);
        }
        catch
        {
            journal.Dispose();
            throw;
        }
    }

    public RecoveryReport Recovery { get; }
    public EngineOptions Options => _options;

    /// <summary>The highest journal sequence whose result has been handed to the completion (durable and applied).</summary>
    public long CompletedSequence => _output.LastSequence;

    /// <summary>
    /// The ledger. It belongs to the business-logic thread: read it only after <see cref="Stop"/>, or from inside
    /// an <see cref="ICommandCompletion"/> call for the fields of the slot it was given.
    /// </summary>
    public Ledger LedgerAfterStop
    {
        get
        {
            if (Volatile.Read(ref _stopped) == 0) throw new InvalidOperationException("the ledger belongs to the writer thread until the engine stops");
            return _logic.Ledger;
        }
    }

    /// <summary>
    /// Submits one command, waiting while the ring is full. Stamps the command with the engine clock (its journaled
    /// time) and returns its journal sequence number.
    /// </summary>
    public long Submit(in Command command, long correlation = 0)
    {
        ThrowIfStopped();
        long seq = Claim(1);
        Fill(ref _pipeline.Ring[seq], command, correlation, _options.Clock());
        _pipeline.Sequencer.Publish(seq);
        return _baseSequence + seq + 1;
    }

    /// <summary>Submits one command unless the ring is full; false means "try later" (back-pressure).</summary>
    public bool TrySubmit(in Command command, long correlation, out long journalSequence)
    {
        ThrowIfStopped();
        var sequencer = _pipeline.Sequencer;
        if (!sequencer.TryNext(1, out long seq))
        {
            journalSequence = 0;
            return false;
        }
        Fill(ref _pipeline.Ring[seq], command, correlation, _options.Clock());
        sequencer.Publish(seq);
        journalSequence = _baseSequence + seq + 1;
        return true;
    }

    /// <summary>
    /// Submits a batch in one claim, contiguous in the journal; slot i gets correlation <paramref name="firstCorrelation"/> + i.
    /// Returns the journal sequence of the first. A batch larger than the ring is refused.
    /// </summary>
    public long SubmitBatch(ReadOnlySpan<Command> commands, long firstCorrelation = 0)
    {
        ThrowIfStopped();
        if (commands.Length == 0 || commands.Length > _options.RingSize)
            throw new ArgumentOutOfRangeException(nameof(commands), commands.Length, $"a batch holds 1..{_options.RingSize} commands");
        long hi = Claim(commands.Length);
        long lo = hi - commands.Length + 1;
        long now = _options.Clock();
        for (int i = 0; i < commands.Length; i++) Fill(ref _pipeline.Ring[lo + i], commands[i], firstCorrelation + i, now);
        _pipeline.Sequencer.Publish(lo, hi);
        return _baseSequence + lo + 1;
    }

    /// <summary>Claims <paramref name="n"/> slots, waiting while the ring is full; a failed stage ends the wait with its fault.</summary>
    private long Claim(int n)
    {
        try
        {
            return _pipeline.Sequencer.Next(n);
        }
        catch (AlertException)
        {
            _pipeline.ThrowIfFaulted();
            throw;
        }
    }

    private static void Fill(ref CommandSlot slot, in Command command, long correlation, long nowMs)
    {
        slot.Command = command;
        slot.Command.TimestampMs = nowMs;
        slot.Result = default;
        slot.Correlation = correlation;
    }

    private void ThrowIfStopped()
    {
        if (Volatile.Read(ref _stopped) != 0) throw new ObjectDisposedException(nameof(RamPayEngine), "the engine has stopped");
        _pipeline.ThrowIfFaulted();
    }

    /// <summary>
    /// Stops accepting, drains every published command through all three stages, writes a snapshot if configured,
    /// and closes the journal. A fault in any stage is rethrown here.
    /// </summary>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return;
        // Wait for a tick in flight so that nothing claims a slot once the drain has begun.
        if (_ticker is not null)
        {
            using var done = new ManualResetEvent(false);
            if (_ticker.Dispose(done)) done.WaitOne();
        }
        try
        {
            _pipeline.Shutdown(TimeSpan.FromMinutes(1));
            if (_options.SnapshotOnStop && _logic.Ledger.CommandsApplied > 0) _logic.WriteSnapshot(_journal.DurableSequence);
        }
        finally
        {
            _journal.Dispose();
        }
    }

    public void Dispose() => Stop();

    /// <summary>Appends each batch to the journal and makes it durable with one fsync.</summary>
    private sealed class JournalStage(JournalWriter journal, long baseSequence) : IBatchHandler<CommandSlot>
    {
        public void OnBatch(RingBuffer<CommandSlot> ring, long first, long last)
        {
            Span<byte> payload = stackalloc byte[CommandCodec.Size];
            for (long seq = first; seq <= last; seq++)
            {
                ref var slot = ref ring[seq];
                CommandCodec.Write(payload, slot.Command);
                journal.Append(RecordTypes.Command, baseSequence + seq + 1, slot.Command.TimestampMs, payload);
            }
            journal.Commit();
        }
    }

    /// <summary>The single writer: applies each command to the ledger, and snapshots it now and then.</summary>
    private sealed class BusinessLogicStage(Ledger ledger, EngineOptions options, long baseSequence, Sequence journaled) : IBatchHandler<CommandSlot>
    {
        private long _sinceSnapshot;
        public Ledger Ledger => ledger;

        public void OnBatch(RingBuffer<CommandSlot> ring, long first, long last)
        {
            for (long seq = first; seq <= last; seq++)
            {
                ref var slot = ref ring[seq];
                ledger.Apply(slot.Command, out slot.Result);
            }
            _sinceSnapshot += last - first + 1;
            if (options.SnapshotEveryCommands > 0 && _sinceSnapshot >= options.SnapshotEveryCommands)
            {
                // A snapshot must never hold a command the journal could still lose: wait for the journaler to make
                // this batch durable first. It is at most one batch behind, so the wait is short and bounded.
                var spin = new SpinWait();
                while (journaled.Value < last) spin.SpinOnce();
                WriteSnapshot(baseSequence + last + 1);
                _sinceSnapshot = 0;
            }
        }

        /// <summary>Writes the state as of <paramref name="sequence"/>. Pauses the writer for the duration (see docs/architecture.md).</summary>
        public void WriteSnapshot(long sequence)
        {
            ledger.VerifyInvariants();
            using var buffer = new MemoryStream();
            ledger.WriteState(buffer);
            SnapshotStore.Write(options.SnapshotDirectory, sequence, ledger.ClockMs, buffer.GetBuffer().AsSpan(0, (int)buffer.Length), options.SnapshotsToKeep);
        }
    }

    /// <summary>Hands each durable, applied result to the completion, in order.</summary>
    private sealed class OutputStage : IBatchHandler<CommandSlot>
    {
        private readonly ICommandCompletion? _completion;
        private readonly long _baseSequence;
        private long _last;

        public OutputStage(ICommandCompletion? completion, long baseSequence)
        {
            _completion = completion;
            _baseSequence = baseSequence;
            _last = baseSequence;
        }

        public long LastSequence => Volatile.Read(ref _last);

        public void OnBatch(RingBuffer<CommandSlot> ring, long first, long last)
        {
            if (_completion is not null)
                for (long seq = first; seq <= last; seq++)
                    _completion.OnCompleted(_baseSequence + seq + 1, ref ring[seq]);
            Volatile.Write(ref _last, _baseSequence + last + 1);
        }
    }
}
