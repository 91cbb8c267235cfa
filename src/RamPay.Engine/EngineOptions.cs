using RamPay.Core;

namespace RamPay.Engine;

public enum WaitStrategyKind
{
    /// <summary>Consumers sleep on a monitor until signalled: the right choice when cores are few.</summary>
    Blocking,
    /// <summary>Consumers spin, then yield: lowest latency, but each consumer keeps a core busy.</summary>
    SpinThenYield,
    /// <summary>Consumers spin for a few microseconds, yield, then block: near spinning under load, idle when idle.</summary>
    SpinThenBlock,
}

/// <summary>Everything the engine is told at start. Every queue and buffer is bounded by one of these.</summary>
public sealed record EngineOptions
{
    /// <summary>
    /// The idempotency capacity a RamPay server gives its ledger unless configured otherwise
    /// (<c>RamPay:Engine:IdempotencyMaxKeys</c>), and what the <c>rampay</c> tools assume of a data directory unless
    /// told otherwise. The capacity decides which keys are still remembered, so it is part of the state: replaying a
    /// journal with another capacity may reach another state. (A bare <see cref="LedgerOptions"/> keeps a smaller
    /// default, for tests and embedded ledgers.)
    /// </summary>
    public const int ServerIdempotencyMaxKeys = 1 << 22;

    /// <summary>Where the journal segments and snapshots live.</summary>
    public required string DataDirectory { get; init; }
    public LedgerOptions Ledger { get; init; } = new();
    /// <summary>Ring slots (a power of two). A full ring makes producers wait: back-pressure, never a drop.</summary>
    public int RingSize { get; init; } = 1 << 16;
    /// <summary>Most slots a stage takes in one batch; bounds a journal write and a reply burst.</summary>
    public int MaxBatchSize { get; init; } = 4096;
    /// <summary>fdatasync after each batch. Off only for tests and benchmarks of the non-durable path.</summary>
    public bool Fsync { get; init; } = true;
    public long SegmentSizeBytes { get; init; } = 256L * 1024 * 1024;
    /// <summary>Write a snapshot after this many commands (0 = only when asked or at a clean stop).</summary>
    public long SnapshotEveryCommands { get; init; } = 1_000_000;
    /// <summary>
    /// With the snapshotter (<see cref="SnapshotOffWriter"/>): also a snapshot once this many ms have passed since the last one
    /// and at least one command was applied (0 = by count only). Bounds the restart's tail on a quiet server too. Not used when
    /// the writer takes the snapshots.
    /// </summary>
    public long SnapshotEveryMs { get; init; }
    /// <summary>
    /// Take the periodic snapshots from a replica ledger that follows the durable journal on its own thread (the snapshotter),
    /// so the writer never pauses for them; false = the writer encodes and writes them itself, pausing for the duration. Costs a
    /// second copy of the state in memory (docs/snapshots.md); with a <see cref="ColdTier"/> the replica's key log follows the
    /// writer's store (<see cref="ColdKeyTier.Follower"/>), so only the hot keys are doubled. The stop snapshot is always the
    /// writer's, after the drain.
    /// </summary>
    public bool SnapshotOffWriter { get; init; }
    /// <summary>Whether the snapshotter takes the periodic snapshots (cold key tier or not).</summary>
    public bool TakesSnapshotsOffWriter => SnapshotOffWriter;
    public int SnapshotsToKeep { get; init; } = 3;
    /// <summary>
    /// Reserve a follower of the payments' cold tier for the sinks' replica (rules version 3): the payment log keeps the older
    /// versions it may read from the moment it is opened, until the replica has passed them (<see cref="RamPayEngine.SinksPaymentTier"/>;
    /// docs/storage.md, "The sinks' replica"). Likewise a hold on the key store (rules version 2 and later, with the cold tier): no
    /// key the sinks' replica may need at its restart point is collected (<see cref="RamPayEngine.SinksKeyTier"/>,
    /// <see cref="RamPayEngine.SinksAt"/>). A host that runs no sinks releases both (<see cref="RamPayEngine.ReleaseSinksPaymentFollower"/>).
    /// </summary>
    public bool SinksFollowPaymentLog { get; init; }
    public bool SnapshotOnStop { get; init; } = true;
    /// <summary>
    /// Every this many ms the engine submits a <see cref="Core.CommandType.Tick"/>, so holds and idempotency keys
    /// expire by journaled time even when no other command arrives (0 = no ticker; tests drive time themselves).
    /// </summary>
    public int TickIntervalMs { get; init; } = 1000;
    public WaitStrategyKind WaitStrategy { get; init; } = WaitStrategyKind.SpinThenBlock;
    /// <summary>The clock stamped on each command as it enters (unix ms). Tests replace it; the ledger never reads a clock itself.</summary>
    public Func<long> Clock { get; init; } = static () => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    /// <summary>
    /// Asked before each journal batch is appended and committed, and before each snapshot: a fence that throws stops
    /// the writer (the pipeline faults). Null (the default) = this process alone owns the data directory.
    /// </summary>
    public IWriteFence? WriteFence { get; init; }
    /// Fraud settings and model to put in force at start (journaled as a ConfigureFraud command when they differ from
    /// the recovered ledger's). Null: leave whatever the journal last configured (scoring is off in a new ledger).
    /// </summary>
    public FraudConfiguration? Fraud { get; init; }

    /// <summary>
    /// The rules the engine puts in force. At start, a ledger under older rules (a new data directory included) is moved
    /// to these by a journaled UpgradeRules command, recorded once; replay of the journal before it keeps the old rules.
    /// The library's default stays 1 (no upgrade command: embedded uses and tests see the journal they always saw, as
    /// with <see cref="ServerIdempotencyMaxKeys"/>); a server runs with <see cref="ServerRulesVersion"/>.
    /// </summary>
    public int RulesVersion { get; init; } = 1;
    /// <summary>
    /// The rules a RamPay server puts in force unless configured (<c>RamPay:Engine:RulesVersion</c>): 4, version 3's rules
    /// (payments without a ceiling, settled older ones in the payments' cold tier, version 2's keys for their whole window)
    /// with the fraud features and scores computed by the fraud stage ahead of the writer, counting attempted payments
    /// (docs/fraud.md). A data folder written under 1, 2 or 3 is moved to it by the journaled upgrade point at its first
    /// start; its journal before that point replays under its old rules, to its old state hash (Golden/v1, Golden/v3).
    /// </summary>
    public const int ServerRulesVersion = 4;
    /// <summary>
    /// Rules version 2's key budget: the most idempotency keys remembered (on disk included) before the oldest is
    /// forgotten early (and counted). Journaled with the upgrade, so it is part of the state from then on; size it for
    /// peak key rate × window (docs/storage.md). Changing it later has no effect on a ledger already upgraded.
    /// </summary>
    public long IdempotencyKeyBudget { get; init; } = DefaultIdempotencyKeyBudget;
    /// <summary>134,217,728 keys: a 24 h window at 1,553 keys per second.</summary>
    public const long DefaultIdempotencyKeyBudget = 1L << 27;

    /// <summary>
    /// Rules version 2's cold tier for idempotency keys: keys leave memory a generation at a time into a store on disk,
    /// and a prefetch stage on the ring reads each command's key before the writer applies it. Null: every key stays in
    /// memory (the key log grows with the keys live in the window).
    /// </summary>
    public ColdTierOptions? ColdTier { get; init; }

    // The paths under DataDirectory: a server and the rampay tools pass their DataFolder's (DataFolder names every path
    // of a data folder); unset, each defaults to the same place under DataDirectory by DataFolder's names, for tests.
    private readonly string? _journalDirectory, _snapshotDirectory, _coldDirectory;
    /// <summary>The journal's segments (default <c>&lt;data&gt;/journal</c>).</summary>
    public string JournalDirectory { get => _journalDirectory ?? Path.Combine(DataDirectory, DataFolder.JournalName); init => _journalDirectory = value; }
    /// <summary>The cold tiers (default <c>&lt;data&gt;/cold</c>; <see cref="ColdTierOptions.Directory"/> wins when set).</summary>
    public string ColdDirectory { get => ColdTier?.Directory ?? _coldDirectory ?? Path.Combine(DataDirectory, DataFolder.ColdName); init => _coldDirectory = value; }
    /// <summary>The snapshots (default <c>&lt;data&gt;/snapshots</c>).</summary>
    public string SnapshotDirectory { get => _snapshotDirectory ?? Path.Combine(DataDirectory, DataFolder.SnapshotsName); init => _snapshotDirectory = value; }

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory)) throw new ArgumentException("DataDirectory is required");
        if (RingSize < 2 || (RingSize & (RingSize - 1)) != 0) throw new ArgumentException("RingSize must be a power of two, at least 2");
        if (MaxBatchSize < 1) throw new ArgumentException("MaxBatchSize must be at least 1");
        if (SnapshotEveryCommands < 0) throw new ArgumentException("SnapshotEveryCommands must be 0 (off) or positive");
        if (SnapshotEveryMs < 0) throw new ArgumentException("SnapshotEveryMs must be 0 (off) or positive");
        if (SnapshotEveryMs > 0 && !SnapshotOffWriter) throw new ArgumentException("SnapshotEveryMs needs SnapshotOffWriter: the writer snapshots by count only");
        if (SnapshotsToKeep < 1) throw new ArgumentException("SnapshotsToKeep must be at least 1");
        if (TickIntervalMs < 0) throw new ArgumentException("TickIntervalMs must be 0 (off) or positive");
        if (RulesVersion < 1 || RulesVersion > Core.Ledger.NewestRulesVersion) throw new ArgumentException($"RulesVersion must be within 1..{Core.Ledger.NewestRulesVersion}");
        if (IdempotencyKeyBudget < 1) throw new ArgumentException("IdempotencyKeyBudget must be at least 1");
        Fraud?.Validate();
        ColdTier?.Validate(this);
        Ledger.Validate();
    }
}

/// <summary>The cold tier of idempotency keys (<c>RamPay:Engine:ColdTier:*</c>). See docs/storage.md for sizing.</summary>
public sealed record ColdTierOptions
{
    /// <summary>Where the key tables live (default: <c>&lt;data&gt;/cold</c>).</summary>
    public string? Directory { get; init; }
    /// <summary>The hot budget: keys kept in memory at most (about 130 bytes each). At least three generations.</summary>
    public int HotMaxKeys { get; init; } = 1 << 20;
    /// <summary>Applied commands per generation (0 = twice the ring). A generation is what the cold tier writes at once.</summary>
    public int GenerationCommands { get; init; }
    /// <summary>
    /// Keys the disk must hold (0 = <see cref="KeyCapacityFor"/>: the budget plus the keys the kept snapshots still hold); the
    /// ledger's journaled budget must fit.
    /// </summary>
    public long KeyCapacity { get; init; }
    /// <summary>Keys per segment file (a power of two): the unit written in order and deleted once all its keys are dead (136 bytes a key).</summary>
    public int SegmentKeys { get; init; } = 1 << 20;
    /// <summary>The payments' cold tier (rules version 3): null = every payment stays in memory.</summary>
    public ColdPaymentOptions? Payments { get; init; }

    public int GenerationCommandsFor(EngineOptions engine) => GenerationCommands > 0 ? GenerationCommands : 2 * engine.RingSize;
    /// <summary>
    /// <see cref="KeyCapacity"/>, or by default the key budget plus the keys made over the kept snapshots' span
    /// (<see cref="EngineOptions.SnapshotsToKeep"/> × <see cref="EngineOptions.SnapshotEveryCommands"/>, one key a command at
    /// most): every key made since the oldest kept snapshot stays on disk, because that state's collection horizon still
    /// holds it. With the budget alone, a budget below about four snapshot intervals filled the store and stopped the engine
    /// (ColdTierFullException, FATAL) mid-run: the long run of issue 10 hit it at 44 M payments with a budget of 33.5 M and a
    /// snapshot every 10 M commands. The store keeps a quarter more than this on top (KeySegmentStoreOptions.MaxRetainedKeys).
    /// </summary>
    public long KeyCapacityFor(EngineOptions engine) =>
        KeyCapacity > 0 ? KeyCapacity : engine.IdempotencyKeyBudget + engine.SnapshotsToKeep * Math.Max(0, engine.SnapshotEveryCommands);

    public void Validate(EngineOptions engine)
    {
        int generation = GenerationCommandsFor(engine);
        if (generation < engine.RingSize) throw new ArgumentException("ColdTier:GenerationCommands must be at least the ring size");
        if (HotMaxKeys < 3L * generation) throw new ArgumentException($"ColdTier:HotMaxKeys must hold at least three generations ({3L * generation} keys)");
        if (KeyCapacity < 0) throw new ArgumentException("ColdTier:KeyCapacity must be 0 (the key budget) or positive");
        if (SegmentKeys < 8 || (SegmentKeys & (SegmentKeys - 1)) != 0) throw new ArgumentException("ColdTier:SegmentKeys must be a power of two, at least 8");
        Payments?.Validate();
    }
}

/// <summary>The payments' cold tier (<c>RamPay:Engine:ColdTier:Payments*</c>). See docs/storage.md, "Payments", for sizing.</summary>
public sealed record ColdPaymentOptions
{
    /// <summary>Where the payment log lives (default: <c>&lt;cold&gt;/payments</c>).</summary>
    public string? Directory { get; init; }
    /// <summary>The newest payments always in memory (about 104 bytes each), besides open holds and changed old payments.</summary>
    public long HotPayments { get; init; } = 1 << 20;
    /// <summary>log2 of the payments per chunk, the unit that leaves memory at once (16 = 65,536).</summary>
    public int ChunkShift { get; init; } = 16;
    /// <summary>Closed generations not yet retired, at most (back-pressure past it).</summary>
    public int MaxInFlight { get; init; } = 4;
    /// <summary>Bytes per segment file of the payment log.</summary>
    public long SegmentBytes { get; init; } = 256L * 1024 * 1024;
    /// <summary>Log bytes between two index checkpoints (<c>PaymentLogStoreOptions.CheckpointEveryBytes</c>; at least twice the index's size). Tests set it small.</summary>
    public long IndexCheckpointEveryBytes { get; init; } = 1L << 30;

    public void Validate()
    {
        if (HotPayments < 1) throw new ArgumentException("ColdTier:HotPayments must be at least 1");
        if (ChunkShift is < 4 or > 20) throw new ArgumentException("ColdTier:PaymentChunkShift must be within 4..20");
        if (MaxInFlight is < 2 or > 64) throw new ArgumentException("ColdTier:PaymentsMaxInFlight must be within 2..64");
        if (SegmentBytes < 4096) throw new ArgumentException("ColdTier:PaymentSegmentBytes must be at least 4096");
        if (IndexCheckpointEveryBytes < 0) throw new ArgumentException("ColdTier:Payments IndexCheckpointEveryBytes must not be negative");
    }
}
