using System.Diagnostics;
using RamPay.Core;
using RamPay.Journal;
using RamPay.Pipeline;

namespace RamPay.Engine;

/// <summary>
/// The single-writer engine. Producers (HTTP, TCP, ticks) claim ring slots and publish commands or queries; then
/// <list type="bullet">
/// <item>the journaler appends each batch's commands to the journal and fsyncs once per batch (group commit),</item>
/// <item>in parallel, the business-logic thread applies each command to the <see cref="Ledger"/> and answers each query,</item>
/// <item>and the output stage, gated on both, hands each result to <see cref="ICommandCompletion"/> and completes each
/// query: a caller hears back only once its command, and every command before it, is durable.</item>
/// </list>
/// The ring's gating sequence is the output stage, so a full ring holds producers back rather than dropping.
/// Producers get a ticket (the ring sequence of their slot) that <see cref="WaitForCompletion"/> accepts; the journal
/// sequence a command received is in its completion, since queries take ring slots but no journal sequence.
/// </summary>
public sealed class RamPayEngine : IDisposable
{
    private readonly EngineOptions _options;
    private readonly Pipeline<CommandSlot> _pipeline;
    private readonly JournalWriter _journal;
    private readonly BusinessLogicStage _logic;
    private readonly OutputStage _output;
    private readonly BatchEventProcessor<CommandSlot> _outputProcessor;
    private readonly Timer? _ticker;
    private readonly long[] _fraudDecisionsAtStart = new long[3];
    private readonly RamPay.Storage.KeySegmentStore? _cold;
    private readonly RamPay.Storage.PaymentLogStore? _coldPayments;
    private readonly PaymentPrefetcher? _paymentPrefetcher;
    private readonly KeyPrefetcher? _prefetcher;
    private readonly SnapshotHorizon _horizon;
    private readonly SnapshotFollower? _snapshotter;
    private int _stopped;

    private RamPayEngine(EngineOptions options, JournalWriter journal, Ledger ledger, RecoveryReport recovery, ICommandCompletion? completion,
        RamPay.Storage.KeySegmentStore? cold, KeyPrefetcher? prefetcher, DurableWatermark? durable, RamPay.Storage.PaymentLogStore? payments,
        int snapshotterPaymentFollower = -1, int sinksKeyHold = -1)
    {
        _cold = cold;
        _coldPayments = payments;
        _prefetcher = prefetcher;
        _options = options;
        Recovery = recovery;
        long baseSequence = recovery.LastSequence;
        _journal = journal;
        Invariant.Check(_journal.LastSequence == baseSequence, "journal writer does not continue where recovery stopped");

        IWaitStrategy wait = options.WaitStrategy switch
        {
            WaitStrategyKind.Blocking => new BlockingWaitStrategy(),
            WaitStrategyKind.SpinThenYield => new SpinThenYieldWaitStrategy(),
            WaitStrategyKind.SpinThenBlock => new SpinThenBlockWaitStrategy(),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.WaitStrategy, "unknown wait strategy"),
        };
        _pipeline = new Pipeline<CommandSlot>(options.RingSize, ProducerType.Multi, wait, options.MaxBatchSize);
        // Decisions taken while replaying the journal are not this run's: metrics count from here.
        for (int d = 0; d < _fraudDecisionsAtStart.Length; d++) _fraudDecisionsAtStart[d] = ledger.FraudDecisions((RamPay.Fraud.FraudDecision)d);
        // Snapshots off the writer need the journal's durable watermark too: the snapshotter reads no further.
        bool offWriter = options.TakesSnapshotsOffWriter && (options.SnapshotEveryCommands > 0 || options.SnapshotEveryMs > 0);
        if (offWriter) durable ??= new DurableWatermark();
        durable?.Set(baseSequence);
        _horizon = new SnapshotHorizon(cold, options.SnapshotsToKeep, options.SnapshotDirectory, baseSequence, sinksKeyHold);
        _sinksKeyHold = sinksKeyHold;
        var journaler = _pipeline.HandleWith(new JournalStage(_journal, baseSequence, options.WriteFence, durable), "rampay-journaler");
        _logic = new BusinessLogicStage(ledger, options, baseSequence, journaler, _horizon, Counters, periodic: !options.TakesSnapshotsOffWriter);
        // With a cold tier, the writer sees a slot only after the prefetch stage has looked its key up (in parallel with
        // the journaler): Ledger.Apply then reads only memory and the slot.
        // Rules version 4 (now or from this run's upgrade point): the prefetch stage also runs the fraud step (FraudStageStep.cs).
        var fraudStep = Math.Max(options.RulesVersion, ledger.RulesVersion) >= Ledger.FraudStageRulesVersion ? new FraudStageStep(ledger.FraudStage) : null;
        _logic.FraudStep = fraudStep;
        _paymentPrefetcher = payments is null ? null : new PaymentPrefetcher(payments);
        var prefetch = prefetcher is null && fraudStep is null ? null
            : _pipeline.HandleWith(new PrefetchStage(prefetcher, _paymentPrefetcher, fraudStep), "rampay-prefetch");
        var logic = prefetch is null ? _pipeline.HandleWith(_logic, "rampay-logic") : _pipeline.After(prefetch).HandleWith(_logic, "rampay-logic");
        if (prefetch is not null) fraudStep?.Connect(prefetch, logic);
        _output = new OutputStage(completion, baseSequence, Counters);
        _outputProcessor = _pipeline.After(journaler, logic).HandleWith(_output, "rampay-output");
        _pipeline.Start();
        if (offWriter)
        {
            _snapshotter = new SnapshotFollower(options, baseSequence, durable!, _horizon, Counters)
            {
                SnapshotWritten = s => SnapshotWritten?.Invoke(s), PaymentFollowerHandle = snapshotterPaymentFollower,
            };
            _snapshotter.Start();
        }
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
        Fill(ref _pipeline.Ring[seq], new Command { Type = CommandType.Tick }, correlation: 0, _options.Clock(), query: null);
        _pipeline.Sequencer.Publish(seq);
    }

    /// <summary>Recovers the data directory (snapshot + journal replay) and starts the pipeline threads.</summary>
    public static RamPayEngine Start(EngineOptions options, ICommandCompletion? completion = null)
    {
        options.Validate();
        Directory.CreateDirectory(options.DataDirectory);
        // The journal names fraud models by hash: the configured one is kept in the data directory before any command
        // can name it, and replay finds every model it needs there (or the embedded default).
        if (options.Fraud?.Model is { } model) FraudModelStore.Keep(options.DataDirectory, model);
        options = options with { Ledger = options.Ledger with { FraudModels = FraudModelStore.Load(options.DataDirectory) } };
        // Opening the writer repairs a torn tail (or refuses a corrupt middle) before anything is replayed.
        var journal = JournalWriter.Open(new JournalOptions
        {
            Directory = options.JournalDirectory,
            Fsync = options.Fsync,
            SegmentSizeBytes = options.SegmentSizeBytes,
        });
        RamPay.Storage.KeySegmentStore? cold = null;
        RamPay.Storage.PaymentLogStore? coldPayments = null;
        int sinksFollower = -1, snapshotterFollower = -1, sinksKeyHold = -1;
        try
        {
            DurableWatermark? durable = null;
            if (options.ColdTier is { } tier)
            {
                // Opened before recovery: replay goes through the same prefetch step, and the key log it rebuilds hands
                // its generations to the same store (their entries are written only once durable: replayed ones are).
                durable = new DurableWatermark();
                // The log-structured store (chosen over the first cold tier's hashed tables, since removed, and over RocksDB: docs/storage.md,
                // "The store"): appends in log order, a miss is answered from memory, dead segments are deleted whole.
                cold = new RamPay.Storage.KeySegmentStore(new RamPay.Storage.KeySegmentStoreOptions
                {
                    Directory = options.ColdDirectory, KeyCapacity = tier.KeyCapacityFor(options), SegmentKeys = tier.SegmentKeys,
                    DurableSequence = () => durable.Value, Fsync = options.Fsync,
                    MaxQueuedGenerations = tier.HotMaxKeys / tier.GenerationCommandsFor(options) + 4,
                });
                // The sinks' replica follows the key store too (docs/storage.md, "The sinks' replica follows the key store"): it
                // may restart behind every kept snapshot, so the store's collection is held for it from the moment it is
                // opened, before this run can collect anything, until the sinks say where they stand (SinksAt).
                if (options.SinksFollowPaymentLog) sinksKeyHold = cold.AddHold("sinks");
                options = options with
                {
                    Ledger = options.Ledger with
                    {
                        ColdKeys = new ColdKeyTier { Store = cold, HotMaxKeys = tier.HotMaxKeys, GenerationCommands = tier.GenerationCommandsFor(options) },
                    },
                };
                if (tier.Payments is { } pay)
                {
                    var sinksOptions = options;
                    // The payments' cold tier (rules version 3): our own log-structured store, docs/storage.md, "Payments".
                    coldPayments = new RamPay.Storage.PaymentLogStore(new RamPay.Storage.PaymentLogStoreOptions
                    {
                        Directory = pay.Directory ?? Path.Combine(options.ColdDirectory, "payments"), SegmentBytes = pay.SegmentBytes,
                        CheckpointEveryBytes = pay.IndexCheckpointEveryBytes,
                        DurableSequence = () => durable.Value, Fsync = options.Fsync, MaxQueuedGenerations = pay.MaxInFlight + 4,
                        // The snapshotter's replica follows the store behind the writer and reads the versions of its own state.
                        KeepPriorVersions = options.TakesSnapshotsOffWriter && (options.SnapshotEveryCommands > 0 || options.SnapshotEveryMs > 0)
                            || options.SinksFollowPaymentLog,
                        // The sinks' next start takes the newest index checkpoint at or before their restart point (the retention
                        // anchor): that one is kept however far the sinks lag, or that start reads the whole log (run J).
                        KeepCheckpointAtOrBefore = options.SinksFollowPaymentLog ? () => SinksLowestStart(sinksOptions) : null,
                    });
                    // Registered before the log is read: the sinks may start from a checkpoint older than anything this run
                    // writes, so no older version may be forgotten until their replica says where it stands. At the lowest
                    // position they can restart from, when known (SinksLowestStart), so that the start can still read an index
                    // checkpoint at or before it instead of the whole log (a checkpoint lacks the links behind it).
                    if (options.SinksFollowPaymentLog) sinksFollower = coldPayments.AddFollower(SinksLowestStart(options));
                    // The snapshotter's replica too: it registers only once it has replayed to the writer's start, on its own
                    // thread, and by then the sinks' follower may have moved on and let the store forget versions the replica
                    // still needs ("a follower at 0 cannot join ...": a fresh server crashed so in CI, 2026-12-06). It starts
                    // from the snapshot the writer recovers from: at the recovered state, which lets the start use a checkpoint.
                    if (options.TakesSnapshotsOffWriter && (options.SnapshotEveryCommands > 0 || options.SnapshotEveryMs > 0))
                        snapshotterFollower = coldPayments.AddFollower(RamPay.Storage.PaymentLogStore.FollowerAtRecoveredState);
                    options = options with
                    {
                        Ledger = options.Ledger with
                        {
                            ColdPayments = new ColdPaymentTier
                            {
                                Store = coldPayments, HotPayments = pay.HotPayments, ChunkShift = pay.ChunkShift, MaxInFlight = pay.MaxInFlight,
                                PoolFlushCommands = tier.GenerationCommandsFor(options),
                            },
                        },
                    };
                }
            }
            var (ledger, report) = EngineRecovery.Recover(options, journal.Recovery);
            // The payment log's index checkpoint could not be used (damaged, or after the recovered state): said with the rest.
            if (coldPayments?.RecoveryWarning is { } paymentsWarning) report = report with { Warnings = [.. report.Warnings, "payments' cold tier: " + paymentsWarning] };
            if (cold is not null) CheckColdTierFits(options, cold, ledger, report);
            // Read on this thread, before the writer thread owns the ledger.
            var fraud = options.Fraud?.Effective is { } wanted && !ledger.FraudSettings.SameAs(wanted) ? wanted : null;
            bool upgrade = ledger.RulesVersion < options.RulesVersion;
            var engine = new RamPayEngine(options, journal, ledger, report, completion, cold, cold is null ? null : new KeyPrefetcher(cold), durable, coldPayments,
                snapshotterFollower, sinksKeyHold);
            engine._sinksFollower = sinksFollower;
            if (sinksFollower >= 0 || sinksKeyHold >= 0) engine._storeUsers = 2; // until the host releases the sinks' follower
            else engine._sinksReleased = 1;
            if (upgrade) engine.UpgradeRules(options.RulesVersion, options.IdempotencyKeyBudget);
            if (fraud is not null) engine.ConfigureFraud(fraud);
            return engine;
        }
        catch
        {
            coldPayments?.Dispose();
            cold?.Dispose();
            journal.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The lowest journal position the sinks' replica can restart from, as far as the engine can tell before the sinks report:
    /// the journal retention anchor (journal retirement writes it: the newest snapshot at or before every sink's checkpoint,
    /// which only move forward, and pruning keeps that snapshot), else unknown (long.MinValue: the payment log is then read
    /// whole at start). A sink behind it (restored from a backup) is caught when its replica starts (EngineRecovery: it then
    /// keeps every payment in memory instead of following the log).
    /// </summary>
    private static long SinksLowestStart(EngineOptions options)
    {
        long anchor = Directory.Exists(options.SnapshotDirectory) ? SnapshotStore.ReadRetentionAnchor(OsJournalFileSystem.Instance, options.SnapshotDirectory) : 0;
        return anchor > 0 ? anchor : long.MinValue;
    }

    /// <summary>The cold tier must hold the ledger's journaled key budget, and must not have recycled keys the recovered state may still need.</summary>
    private static void CheckColdTierFits(EngineOptions options, RamPay.Storage.KeySegmentStore cold, Ledger ledger, RecoveryReport report)
    {
        long capacity = options.ColdTier!.KeyCapacityFor(options);
        long budget = ledger.KeyLog?.Budget ?? options.IdempotencyKeyBudget;
        if (budget > capacity)
            throw new InvalidOperationException($"the ledger's idempotency key budget is {budget} keys (journaled); the cold tier is configured for {capacity} (RamPay:Engine:ColdTier:KeyCapacity)");
        if (cold.RecycledUnderSequence > report.SnapshotSequence)
            throw new InvalidOperationException($"the cold tier recycled keys that were dead at snapshot {cold.RecycledUnderSequence}, but recovery started from " +
                $"snapshot {report.SnapshotSequence}: that older state may need them. Restore the newer snapshot (see docs/storage.md)");
    }

    /// <summary>Journals and applies a ConfigureFraud command, and waits for it; a refusal stops the engine with an error.</summary>
    private void ConfigureFraud(RamPay.Fraud.FraudSettings settings) =>
        SubmitSystemCommand(new Command { Type = CommandType.ConfigureFraud }, settings.Encode(), "the fraud configuration");

    /// <summary>
    /// The journaled upgrade point: moves a ledger under older rules (or a new one) to <paramref name="version"/>, once.
    /// Replay of the journal before this record keeps the old rules and reaches the old state hash.
    /// </summary>
    private void UpgradeRules(int version, long keyBudget) =>
        SubmitSystemCommand(new Command
        {
            Type = CommandType.UpgradeRules, Argument = version, Amount = keyBudget,
            // Rules 4: the highest account id the fraud stage keeps, journaled (FraudStage.cs); 0 (as before) for older rules.
            FromAccount = version >= Ledger.FraudStageRulesVersion ? _options.Ledger.MaxAccounts : 0,
        }, null, $"the upgrade to rules version {version}");

    private void SubmitSystemCommand(in Command command, byte[]? attachment, string what)
    {
        var readBack = new ResultReadBack();
        long ticket = Submit(command, correlation: 0, attachment, readBack);
        try
        {
            if (!WaitForCompletion(ticket, TimeSpan.FromMinutes(1))) throw new TimeoutException($"{what} was not applied within a minute");
            if (!readBack.Result.IsOk) throw new InvalidOperationException($"the ledger refused {what}: {readBack.Result}");
        }
        catch
        {
            Dispose(); // the engine never started: no sinks will read its stores
            throw;
        }
    }

    private sealed class ResultReadBack : ICommandReadBack
    {
        public CommandResult Result;
        public void Execute(IReadOnlyLedger ledger, in CommandResult result) => Result = result;
    }

    public RecoveryReport Recovery { get; }
    public EngineOptions Options => _options;

    /// <summary>
    /// The first failure of a pipeline stage (or of the snapshotter, when snapshots are taken off the writer), or null. A failed
    /// engine completes nothing more: a host must stop.
    /// </summary>
    public Exception? Fault => _pipeline.Fault ?? _snapshotter?.Fault;

    /// <summary>True when periodic snapshots are taken by the snapshotter's replica, off the writer thread (<see cref="EngineOptions.SnapshotOffWriter"/>).</summary>
    public bool SnapshotsOffWriter => _snapshotter is not null;

    /// <summary>The last journal sequence the snapshotter's replica has applied (0 without one); racy, for metrics and tests.</summary>
    public long SnapshotterSequence => _snapshotter?.AppliedSequence ?? 0;

    /// <summary>
    /// Called after each periodic snapshot is durable, with its sequence, on the thread that wrote it (the snapshotter's, or the
    /// writer's): must be quick and must not throw (the host asks journal retirement for a pass). Set before commands flow.
    /// </summary>
    public Action<long>? SnapshotWritten { get => _logic.Written; set => _logic.Written = value; }

    /// <summary>The key tiers' counters (rules version 2), for the host's metrics and readiness. Racy reads of the writer's counters.</summary>
    /// <summary>The snapshot whose state bounds what the cold key tier may collect (0: none yet; docs/storage.md, "Crash safety").</summary>
    public long ColdKeyHorizonSequence => _cold?.HorizonSequence ?? 0;

    public KeyTierStats KeyTier
    {
        get
        {
            var ledger = _logic.Ledger;
            var log = ledger.KeyLog;
            return new KeyTierStats(ledger.RulesVersion, log?.Inserted ?? 0, log?.Budget ?? 0, ledger.IdempotencyEvictedEarly, log?.HotCount ?? ledger.Idempotency.Count,
                log?.HotHits ?? 0, log?.ColdHits ?? 0, log?.WriterColdReads ?? 0, log?.HotFullWaits ?? 0, _prefetcher?.Lookups ?? 0,
                _cold?.EntriesWritten ?? 0, _cold?.VisibleGeneration ?? 0, _cold?.DiskBytes ?? 0, _cold?.SegmentsDropped ?? 0, _cold?.Fault?.Message,
                _cold?.Keys ?? 0, _cold?.IndexBytes ?? 0, _cold?.ReadsIssued ?? 0, _cold?.HeldKeys ?? 0);
        }
    }

    /// <summary>The highest journal sequence whose result has been handed to the completion (durable and applied).</summary>
    public long CompletedSequence => _output.LastSequence;

    /// <summary>The highest ticket whose slot the output stage has completed (commands and queries alike).</summary>
    public long CompletedTicket => _outputProcessor.Sequence.Value;

    /// <summary>What the stages have counted since start (metrics); readable from any thread.</summary>
    public EngineCounters Counters { get; } = new();

    /// <summary>Ring slots claimed and not yet completed by the output stage (0..RingSize); a racy read, for metrics.</summary>
    public long RingUsedSlots => Math.Clamp(_pipeline.Sequencer.Cursor - CompletedTicket, 0, _options.RingSize);

    /// <summary>
    /// Payments the fraud scoring decided this way since the engine started (not those replayed at start). A racy
    /// read of a counter the writer keeps, for metrics.
    /// </summary>
    public long FraudDecisions(RamPay.Fraud.FraudDecision decision) => _logic.Ledger.FraudDecisions(decision) - _fraudDecisionsAtStart[(int)decision];

    /// <summary>Idempotency keys remembered now, and the table's capacity; racy reads, for metrics.</summary>
    public int IdempotencyKeys => _logic.Ledger.Idempotency.Count;
    public int IdempotencyCapacity => _logic.Ledger.Idempotency.Capacity;
    /// <summary>Keys forgotten before their window ended because the table was full, over the ledger's life (kept in snapshots).</summary>
    public long IdempotencyEvictedEarly => _logic.Ledger.IdempotencyEvictedEarly;

    /// <summary>
    /// Waits until the slot with this ticket, and every one before it, is completed. False on timeout; a failed
    /// stage throws its fault (it will never complete anything again).
    /// </summary>
    public bool WaitForCompletion(long ticket, TimeSpan timeout)
    {
        long deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        var spin = new SpinWait();
        while (CompletedTicket < ticket)
        {
            _pipeline.ThrowIfFaulted();
            if (Environment.TickCount64 > deadline) return false;
            spin.SpinOnce();
        }
        return true;
    }

    /// <summary>
    /// The ledger. It belongs to the business-logic thread: read it only after <see cref="Stop"/>, or from inside
    /// an <see cref="ICommandCompletion"/> call for the fields of the slot it was given.
    /// </summary>
    /// <summary>The payments' tiers (rules version 3): where payments are kept and how the cold ones were served. Racy reads of the writer's counters: fine for gauges.</summary>
    /// <summary>The snapshotter's replica's resident payments now and at most in this run (0 without a snapshotter): racy, for metrics and tests.</summary>
    public (long Resident, long MaxResident) SnapshotterPayments => _snapshotter is { } s ? (s.ResidentPayments, s.MaxResidentPayments) : (0, 0);

    private int _sinksFollower = -1;

    /// <summary>
    /// The payments' cold tier as the sinks' replica should follow it (<see cref="EngineOptions.SinksFollowPaymentLog"/>): the
    /// writer's payment log, read-only, at the replica's own position, with the handle reserved when the log was opened. Null
    /// when there is no such tier (rules before 3, no payments' tier, or not reserved): the replica then keeps every payment.
    /// </summary>
    public ColdPaymentTier? SinksPaymentTier =>
        _sinksFollower >= 0 && _options.Ledger.ColdPayments is { } tier ? tier with { Follower = true, FollowerHandle = _sinksFollower } : null;

    /// <summary>
    /// No sinks' replica will follow the cold tiers (the host runs no sinks, or its sinks have stopped): stop keeping payment
    /// versions and keys for it. Once the engine has stopped too, this closes the cold stores (<see cref="Stop"/> leaves them open
    /// while the sinks' replica may still read them: it drains after the engine, or is still replaying). Idempotent.
    /// </summary>
    public void ReleaseSinksPaymentFollower()
    {
        if (Interlocked.Exchange(ref _sinksReleased, 1) != 0) return;
        if (_sinksFollower >= 0) _coldPayments?.RemoveFollower(_sinksFollower);
        if (_sinksKeyHold >= 0) _cold?.RemoveHold(_sinksKeyHold);
        ReleaseStores();
    }

    private int _sinksReleased;
    // The cold stores' users: the engine, and the sinks' replica while it may read them (EngineOptions.SinksFollowPaymentLog, until
    // ReleaseSinksPaymentFollower). The last one to leave closes them: disposed under a replica that still reads them, a read throws
    // ObjectDisposedException and the sinks stop for good (run J: SIGTERM while the sinks' replica replayed, docs/benchmarks.md).
    private int _storeUsers = 1;

    private void ReleaseStores()
    {
        if (Interlocked.Decrement(ref _storeUsers) != 0) return;
        // The snapshot holds every hot key, so the cold tier's queue need not drain; what it wrote is durable.
        _cold?.Dispose();
        _coldPayments?.Dispose();
    }

    private readonly int _sinksKeyHold = -1;

    /// <summary>
    /// The key tier as the sinks' replica should follow it (<see cref="EngineOptions.SinksFollowPaymentLog"/>): the writer's key
    /// store, read-only, at the replica's own position (a follower key log: a small hot set, older keys read from the store), as
    /// the snapshotter's replica follows it. Null without a cold key tier: the replica then keeps every key of the window in memory.
    /// The host must report the sinks' position (<see cref="SinksAt"/>), or the store keeps every key for them.
    /// </summary>
    public ColdKeyTier? SinksKeyTier =>
        _sinksKeyHold >= 0 && _options.Ledger.ColdKeys is { } tier ? tier with { Follower = true } : null;

    /// <summary>
    /// The sinks could restart from <paramref name="position"/> (the lowest sink checkpoint, not above their replica): the key
    /// store may now collect what is dead in the newest of this run's snapshots at or before it. Any thread; cheap (a lock, a
    /// short list), called after each of the sinks' polls.
    /// </summary>
    public void SinksAt(long position) => _horizon.SinksAt(position);

    /// <summary>Keys on disk only because the sinks are behind the oldest kept snapshot (0 without sinks), as of the store's last collection.</summary>
    public long KeysHeldForSinks => _cold?.HeldKeys ?? 0;

    /// <summary>How the payment log's start rebuilt its index (from which index checkpoint, or the whole log and why); null without it.</summary>
    public string? PaymentLogRecoveredFrom => _coldPayments?.RecoveredFrom;

    public PaymentTierStats PaymentTier => new(_logic.Ledger.PaymentTier, _coldPayments?.DiskBytes ?? 0, _coldPayments?.RecordsWritten ?? 0,
        _coldPayments?.Payments ?? 0, _coldPayments?.IndexBytes ?? 0, _coldPayments?.GarbageRecords ?? 0, _coldPayments?.VisibleGeneration ?? 0,
        _coldPayments?.Fault?.Message, _logic.Ledger.QueryColdReads.PrefetchHits, _logic.Ledger.QueryColdReads.Retries, _paymentPrefetcher?.QueryReads ?? 0);

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
    /// time). An attachment (RegisterUser's profile, a Transfer's or Authorize's <see cref="PaymentNote"/>) is journaled
    /// after the command. Returns its ticket.
    /// </summary>
    public long Submit(in Command command, long correlation = 0, byte[]? attachment = null) => Submit(command, correlation, attachment, readBack: null);

    /// <summary>
    /// As <see cref="Submit(in Command, long, byte[])"/>, and <paramref name="readBack"/> reads the ledger right after the
    /// command is applied, on the business-logic thread.
    /// </summary>
    public long Submit(in Command command, long correlation, byte[]? attachment, ICommandReadBack? readBack)
    {
        if (attachment is not null && attachment.Length > RecordTypes.MaxAttachmentBytes)
            throw new ArgumentOutOfRangeException(nameof(attachment), attachment.Length, $"an attachment holds at most {RecordTypes.MaxAttachmentBytes} bytes");
        ThrowIfStopped();
        long seq = Claim(1);
        ref var slot = ref _pipeline.Ring[seq];
        Fill(ref slot, command, correlation, _options.Clock(), query: null);
        slot.Attachment = attachment;
        slot.ReadBack = readBack;
        _pipeline.Sequencer.Publish(seq);
        return seq;
    }

    /// <summary>Submits one command unless the ring is full; false means "try later" (back-pressure).</summary>
    public bool TrySubmit(in Command command, long correlation, out long ticket)
    {
        ThrowIfStopped();
        var sequencer = _pipeline.Sequencer;
        if (!sequencer.TryNext(1, out ticket)) return false;
        Fill(ref _pipeline.Ring[ticket], command, correlation, _options.Clock(), query: null);
        sequencer.Publish(ticket);
        return true;
    }

    /// <summary>
    /// Submits a batch in one claim, contiguous in the journal; slot i gets correlation <paramref name="firstCorrelation"/> + i.
    /// Returns the ticket of the last. A batch larger than the ring is refused.
    /// </summary>
    public long SubmitBatch(ReadOnlySpan<Command> commands, long firstCorrelation = 0)
    {
        ThrowIfStopped();
        if (commands.Length == 0 || commands.Length > _options.RingSize)
            throw new ArgumentOutOfRangeException(nameof(commands), commands.Length, $"a batch holds 1..{_options.RingSize} commands");
        long hi = Claim(commands.Length);
        long lo = hi - commands.Length + 1;
        long now = _options.Clock();
        for (int i = 0; i < commands.Length; i++) Fill(ref _pipeline.Ring[lo + i], commands[i], firstCorrelation + i, now, query: null);
        _pipeline.Sequencer.Publish(lo, hi);
        return hi;
    }

    /// <summary>Submits a read-only query, waiting while the ring is full. Returns its ticket.</summary>
    public long Query(ILedgerQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        ThrowIfStopped();
        long seq = Claim(1);
        Fill(ref _pipeline.Ring[seq], default, correlation: 0, nowMs: 0, query);
        _pipeline.Sequencer.Publish(seq);
        return seq;
    }

    /// <summary>
    /// Reads the ledger through the ring: <paramref name="read"/> runs on the business-logic thread and its answer
    /// arrives once every command before it is durable. Allocates a query object; a hot reader implements
    /// <see cref="ILedgerQuery"/> itself and pools it.
    /// </summary>
    public Task<T> QueryAsync<T>(Func<IReadOnlyLedger, T> read)
    {
        var query = new DelegateQuery<T>(this, read);
        Query(query);
        return query.Answer;
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

    private static void Fill(ref CommandSlot slot, in Command command, long correlation, long nowMs, ILedgerQuery? query)
    {
        slot.Command = command;
        slot.Command.TimestampMs = nowMs;
        slot.Result = default;
        slot.Correlation = correlation;
        slot.JournalSequence = 0;
        slot.Query = query;
        slot.Attachment = null;
        slot.ReadBack = null;
    }

    private void ThrowIfStopped()
    {
        if (Volatile.Read(ref _stopped) != 0) throw new ObjectDisposedException(nameof(RamPayEngine), "the engine has stopped");
        _pipeline.ThrowIfFaulted();
    }

    /// <summary>
    /// Stops accepting, drains every published command through all three stages, writes a snapshot if configured,
    /// and closes the journal; the cold stores too, unless the sinks' replica may still read them (then
    /// <see cref="ReleaseSinksPaymentFollower"/>, or <see cref="Dispose"/>, closes them once the sinks have stopped). A fault in any stage is rethrown here. Stop the producers first (a host stops
    /// listening before it stops the engine): a command claimed after the drain began is never processed.
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
            // First, so that one thread at a time writes snapshots: the stop snapshot below is the writer's (its ledger is final).
            _snapshotter?.Stop();
            _pipeline.Shutdown(TimeSpan.FromMinutes(1));
            if (_options.SnapshotOnStop && _logic.Ledger.CommandsApplied > 0) _logic.WriteSnapshot(_journal.DurableSequence, pause: false);
        }
        finally
        {
            _snapshotter?.Dispose();
            // The cold stores stay open while the sinks' replica may still read them (ReleaseSinksPaymentFollower closes them then).
            ReleaseStores();
            _journal.Dispose();
        }
    }

    /// <summary>Stops (<see cref="Stop"/>) and closes the cold stores even if the host never released the sinks' follower.</summary>
    public void Dispose()
    {
        Stop();
        ReleaseSinksPaymentFollower();
    }

    /// <summary>Appends each batch's commands to the journal, numbering them, and makes them durable with one fsync.</summary>
    /// <remarks>
    /// The write fence, if any, is asked before the batch's first append (an append can start a new segment file)
    /// and again before the commit writes the batch out: a writer that lost its lease while it encoded the batch
    /// writes nothing. Its throw faults the pipeline; the batch's callers never hear a result.
    /// </remarks>
    private sealed class JournalStage(JournalWriter journal, long lastSequence, IWriteFence? fence, DurableWatermark? durable) : IBatchHandler<CommandSlot>
    {
        private readonly byte[] _payload = new byte[CommandCodec.Size + RecordTypes.MaxAttachmentBytes];

        public void OnBatch(RingBuffer<CommandSlot> ring, long first, long last)
        {
            bool appended = false;
            int records = 0;
            for (long seq = first; seq <= last; seq++)
            {
                ref var slot = ref ring[seq];
                if (slot.Query is not null) continue;
                if (!appended) fence?.CheckCanWrite();
                CommandCodec.Write(_payload, slot.Command);
                int length = CommandCodec.Size;
                if (slot.Attachment is { } attachment)
                {
                    attachment.CopyTo(_payload, length);
                    length += attachment.Length;
                }
                journal.Append(RecordTypes.Command, ++lastSequence, slot.Command.TimestampMs, _payload.AsSpan(0, length));
                slot.JournalSequence = lastSequence;
                appended = true;
                records++;
            }
            if (!appended) return;
            fence?.CheckCanWrite();
            long started = Stopwatch.GetTimestamp();
            journal.Commit();
            // The journaler's thread, not the writer's: recording costs tens of ns beside a ~0.5 ms fdatasync.
            EngineCounters.JournalFsyncSeconds.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
            EngineCounters.JournalBatchRecords.Record(records);
            durable?.Set(lastSequence);
        }
    }

    /// <summary>The single writer: applies each command to the ledger, and snapshots it now and then.</summary>
    private sealed class BusinessLogicStage(Ledger ledger, EngineOptions options, long lastSequence, BatchEventProcessor<CommandSlot> journaler,
        SnapshotHorizon horizon, EngineCounters counters, bool periodic) : IBatchHandler<CommandSlot>
    {
        private long _sinceSnapshot;
        public Ledger Ledger => ledger;
        /// <summary>The prefetch stage's fraud step (rules version 4), or null: periodic snapshots are then taken where it waits.</summary>
        public FraudStageStep? FraudStep;
        public Action<long>? Written;

        public void OnBatch(RingBuffer<CommandSlot> ring, long first, long last)
        {
            // Two clock reads per batch and three plain stores: the writer's whole cost of its metrics.
            long started = Stopwatch.GetTimestamp();
            long firstCommand = lastSequence;
            for (long seq = first; seq <= last; seq++)
            {
                ref var slot = ref ring[seq];
                if (slot.Query is not null)
                {
                    // A query that can go round the ring again never reads the disk here: a cold payment the prefetch stage
                    // did not bring in throws, and the query is sent again with it named (DelegateQuery, docs/storage.md).
                    if (slot.Query is IColdRetryQuery retry) ledger.BeginQuery(retry.Prefetched, noIo: retry.MayRetry);
                    slot.Query.Execute(ledger);
                    ledger.EndQuery();
                    continue;
                }
                ledger.Apply(slot.Command, slot.Attachment, slot.Prefetched, slot.PaymentPrefetched, slot.Fraud, out slot.Result);
                slot.ReadBack?.Execute(ledger, slot.Result);
                // The journaler numbers commands the same way: every non-query slot, in ring order.
                lastSequence++;
                _sinceSnapshot++;
            }
            counters.OnApplied(Stopwatch.GetTimestamp() - started, lastSequence - firstCommand);
            bool due = periodic && options.SnapshotEveryCommands > 0 && _sinceSnapshot >= options.SnapshotEveryCommands;
            // With the fraud stage running ahead, its state matches the ledger's only where it waits for the writer: ask it to.
            if (due && FraudStep is { } step && !step.SnapshotPointIs(last))
            {
                step.RequestSnapshot();
                due = false;
            }
            if (due)
            {
                // A snapshot must never hold a command the journal could still lose: wait for the journaler to make
                // this batch durable first. It is at most one batch behind, so the wait is short and bounded, unless the
                // journaler failed: then the batch will never be durable, and this stage fails too rather than spin.
                var spin = new SpinWait();
                while (journaler.Sequence.Value < last)
                {
                    if (journaler.Fault is { } fault)
                        throw new InvalidOperationException("the journal stage failed while a snapshot waited for it to make the batch durable; no snapshot was written", fault);
                    spin.SpinOnce();
                }
                WriteSnapshot(lastSequence, pause: true);
                FraudStep?.SnapshotTaken();
                _sinceSnapshot = 0;
                Written?.Invoke(lastSequence);
            }
        }

        /// <summary>
        /// Writes the state as of <paramref name="sequence"/> on this thread: the periodic snapshot when they are taken on the writer
        /// (<paramref name="pause"/>: the writer stops for the duration, recorded in <c>rampay_snapshot_pause_seconds</c>), and the
        /// stop snapshot, after the drain.
        /// </summary>
        public void WriteSnapshot(long sequence, bool pause)
        {
            long started = Stopwatch.GetTimestamp();
            ledger.VerifyInvariants();
            options.WriteFence?.CheckCanWrite(); // before the file exists; and again below, after the encoding
            SnapshotStore.Write(options.SnapshotDirectory, sequence, ledger.ClockMs, stream =>
            {
                // Streamed, not built in memory first: no copy of the state, and no 2 GB limit of a MemoryStream.
                using var buffered = new BufferedStream(new FenceCheckingStream(stream, options.WriteFence), 1 << 20);
                ledger.WriteState(buffered);
                buffered.Flush();
            }, options.SnapshotsToKeep);
            double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            EngineCounters.SnapshotDurationSeconds.Record(seconds);
            if (pause) EngineCounters.SnapshotPauseSeconds.Record(seconds);
            counters.OnSnapshot(sequence);
            if (ledger.KeyLog is { } keys) horizon.OnSnapshot(sequence, keys.Inserted - keys.Budget, ledger.ClockMs - keys.WindowMs);
        }
    }

    /// <summary>
    /// Asks the write fence (the writer lease) at the snapshot stream's flush, which comes after the whole state is encoded,
    /// before the file is published: a writer that lost its lease while encoding publishes nothing.
    /// </summary>
    private sealed class FenceCheckingStream(Stream inner, IWriteFence? fence) : Stream
    {
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
        public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);
        public override void Flush()
        {
            fence?.CheckCanWrite();
            inner.Flush();
        }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>Hands each durable, applied result to the completion and completes each query, in ring order.</summary>
    private sealed class OutputStage(ICommandCompletion? completion, long lastSequence, EngineCounters counters) : IBatchHandler<CommandSlot>
    {
        private long _last = lastSequence;

        public long LastSequence => Volatile.Read(ref _last);

        public void OnBatch(RingBuffer<CommandSlot> ring, long first, long last)
        {
            long lastCommand = 0;
            for (long seq = first; seq <= last; seq++)
            {
                ref var slot = ref ring[seq];
                if (slot.Query is { } query)
                {
                    slot.Query = null; // the ring must not keep the query (and its caller) alive until the slot is reused
                    query.Complete();
                    continue;
                }
                counters.OnCompleted(slot.Command, slot.Result);
                completion?.OnCompleted(slot.JournalSequence, ref slot);
                slot.Attachment = null;
                slot.ReadBack = null; // like a query: the ring must not keep the producer's object alive
                lastCommand = slot.JournalSequence;
            }
            if (lastCommand != 0) Volatile.Write(ref _last, lastCommand);
        }
    }

    /// <summary>
    /// A query that runs a delegate and completes a task: convenient, allocates; see <see cref="QueryAsync{T}"/>. Under rules
    /// version 3 a read of a payment only the cold tier holds is not done on the writer: the delegate's read throws
    /// <see cref="ColdPaymentNeededException"/>, and once the answer would be handed out the query is sent through the ring
    /// again (from the thread pool: never from a pipeline thread, which could wait on a full ring it must empty) with the
    /// payment named, which the prefetch stage reads (and, for a history page, the account's chain from it). After
    /// <see cref="MaxRounds"/> rounds (the payment keeps changing: rare) the writer reads the store itself (counted).
    /// </summary>
    private sealed class DelegateQuery<T>(RamPayEngine engine, Func<IReadOnlyLedger, T> read) : ILedgerQuery, IColdRetryQuery
    {
        public const int MaxRounds = 4;
        private readonly TaskCompletionSource<T> _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T? _value;
        private Exception? _error;
        private int _round;

        public Task<T> Answer => _answer.Task;
        public ColdPaymentNeededException? Needed { get; private set; }
        public QueryPrefetch? Prefetched { get; set; }
        public bool MayRetry => _round < MaxRounds;

        public void Execute(IReadOnlyLedger ledger)
        {
            // A read that throws (a bad id, say) is the caller's problem, not the writer's: keep it for the caller.
            Needed = null;
            try { _value = read(ledger); }
            catch (ColdPaymentNeededException cold) when (MayRetry) { Needed = cold; }
            catch (Exception e) { _error = e; }
        }

        public void Complete()
        {
            if (Needed is not null)
            {
                _round++;
                ThreadPool.UnsafeQueueUserWorkItem(static q => q.Resubmit(), this, preferLocal: false);
                return;
            }
            if (_error is not null) _answer.SetException(_error);
            else _answer.SetResult(_value!);
        }

        private void Resubmit()
        {
            try { engine.Query(this); }
            catch (Exception e) { _answer.TrySetException(e); }
        }
    }
}

/// <summary>A query the engine may send round the ring again for a cold payment it needs (the prefetch stage reads it).</summary>
internal interface IColdRetryQuery
{
    /// <summary>What the last round's read needed and did not find (null: nothing, or the first round).</summary>
    ColdPaymentNeededException? Needed { get; }
    /// <summary>What the prefetch stage read for it, over every round (set by the prefetch stage).</summary>
    QueryPrefetch? Prefetched { get; set; }
    /// <summary>False on the last round: the writer then reads the store itself.</summary>
    bool MayRetry { get; }
}
