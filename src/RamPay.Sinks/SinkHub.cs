using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RamPay.Core;
using RamPay.Journal;

namespace RamPay.Sinks;

/// <summary>Settings of the sinks' hub. Every queue is bounded by one of these.</summary>
public sealed record SinkHubOptions
{
    public required string SnapshotDirectory { get; init; }
    public required string JournalDirectory { get; init; }
    /// <summary>Where each sink's last known checkpoint is noted (a hint for lag while the sink is unreachable at start).</summary>
    public required string StateDirectory { get; init; }
    public required LedgerOptions Ledger { get; init; }
    /// <summary>Changes per batch handed to the sinks: a PostgreSQL transaction, a Kafka flush.</summary>
    public int BatchChanges { get; init; } = 8192;
    /// <summary>Batches a sink may have waiting in memory; past it the sink's batches go to its spool on disk.</summary>
    public int QueueBatches { get; init; } = 8;
    /// <summary>
    /// Bytes each sink's spool (<see cref="ChangeSpool"/>) may hold on disk while the sink is behind its memory queue;
    /// past it the follower waits for that sink (and so do the others). 0 = no spool: a full queue holds the
    /// follower, as before. Size it above what the sink's lag limit lets through (docs/sinks.md).
    /// </summary>
    public long SpoolMaxBytes { get; init; } = 4L << 30;
    /// <summary>Ingress is refused (back-pressure) while a sink is more records than this behind the journal; 0 = no limit.</summary>
    public long MaxLagRecords { get; init; } = 5_000_000;
    /// <summary>Ingress is refused while a sink is more seconds than this behind (journaled time); 0 = no limit.</summary>
    public int MaxLagSeconds { get; init; } = 300;
    /// <summary>Per sink (by <see cref="IChangeSink.Name"/>) limits that replace <see cref="MaxLagRecords"/> and <see cref="MaxLagSeconds"/>.</summary>
    public IReadOnlyDictionary<string, SinkLimits> Limits { get; init; } = new Dictionary<string, SinkLimits>();

    /// <summary>The back-pressure limits of the sink named <paramref name="sink"/>.</summary>
    public SinkLimits LimitsFor(string sink) =>
        Limits.TryGetValue(sink, out var limits) ? limits : new SinkLimits(MaxLagRecords, MaxLagSeconds);
    public TimeSpan RetryMin { get; init; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan RetryMax { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>How long the follower sleeps when it has caught up with the journal.</summary>
    public TimeSpan IdlePoll { get; init; } = TimeSpan.FromMilliseconds(2);
    /// <summary>
    /// Told, on the follower's thread after each poll, the lowest journal sequence the sinks could restart from (the lowest sink
    /// checkpoint, never above the replica; 0 until every sink has reported one): the engine holds the key store's collection
    /// behind the newest snapshot at or before it (<c>RamPayEngine.SinksAt</c>), so the replica's keys are on disk when it restarts.
    /// </summary>
    public Action<long>? ResumePosition { get; init; }
    /// <summary>Where the follower and the sinks' threads report a sink's first failure and a stop for good (the host's logger).</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;
}

/// <summary>
/// Runs the sinks behind the engine: one follower thread turns durable journal records into changes
/// (<see cref="LedgerFollower"/>) and hands each batch to every sink's runner thread, which writes it with retries and
/// backoff. Nothing here touches the writer's thread. When a sink is slow or down, its memory queue fills and its
/// batches go to its own spool on disk (<see cref="ChangeSpool"/>), so the follower and the other sinks go on; that
/// sink's lag (records and seconds) grows until <see cref="IsOverLagLimit"/> tells ingress to push back, by that
/// sink's own limits (<see cref="SinkHubOptions.LimitsFor"/>).
/// </summary>
public sealed class SinkHub : IDisposable, IJournalConsumer
{
    private readonly SinkHubOptions _options;
    private readonly Func<long> _durableSequence;
    private readonly Func<long> _durableTimestampMs;
    private readonly SinkRunner[] _runners;
    private readonly ConcurrentBag<ChangeBatch> _pool = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _followerThread;
    private volatile string? _followerError;
    private long _followerSequence;
    private volatile bool _stopRequested;
    private long _drainTarget = long.MaxValue;

    /// <param name="durableSequence">The journal sequence the engine has made durable (and applied): the follower reads no further.</param>
    /// <param name="durableTimestampMs">That record's journaled time, for the lag in seconds.</param>
    public SinkHub(SinkHubOptions options, IReadOnlyList<IChangeSink> sinks, Func<long> durableSequence, Func<long> durableTimestampMs)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (sinks.Count == 0) throw new ArgumentException("a hub needs at least one sink", nameof(sinks));
        if (options.BatchChanges < 1 || options.QueueBatches < 1) throw new ArgumentException("BatchChanges and QueueBatches must be positive");
        if (options.SpoolMaxBytes < 0) throw new ArgumentException("SpoolMaxBytes must not be negative");
        foreach (var (name, limits) in options.Limits)
        {
            if (limits.MaxLagRecords < 0 || limits.MaxLagSeconds < 0) throw new ArgumentException($"the {name} sink's lag limits must not be negative");
        }
        _options = options;
        _durableSequence = durableSequence;
        _durableTimestampMs = durableTimestampMs;
        Directory.CreateDirectory(options.StateDirectory);
        _runners = [.. sinks.Select(s => new SinkRunner(s, this))];
        _followerThread = new Thread(FollowerLoop) { IsBackground = true, Name = "rampay-sinks-follower" };
    }

    internal SinkHubOptions Options => _options;
    internal CancellationToken Stopping => _stop.Token;

    public IReadOnlyList<SinkRunner> Sinks => _runners;

    /// <summary>The last journal sequence the follower has turned into changes.</summary>
    public long FollowerSequence => Interlocked.Read(ref _followerSequence);

    /// <summary>Why the follower stopped for good (a corrupt journal, a sink ahead of the journal), or null.</summary>
    public string? FollowerError => _followerError;

    private volatile bool _replicaReady;
    /// <summary>
    /// True once the follower's replica is built (the snapshot at or before the lowest sink checkpoint loaded and the journal
    /// replayed to it) and it turns records into changes; false while it waits for the sinks' checkpoints or replays.
    /// </summary>
    public bool ReplicaReady => _replicaReady;

    /// <summary>True when the follower's thread has ended (stopped, or stopped for good): it reads no store any more.</summary>
    public bool FollowerStopped => !_followerThread.IsAlive;

    /// <summary>True when a stop came while the replica was still being built: its replay was cancelled (the sinks resume from their checkpoints).</summary>
    public bool StoppedDuringReplay { get; private set; }

    public void Start()
    {
        foreach (var runner in _runners) runner.Start();
        _followerThread.Start();
    }

    string IJournalConsumer.Name => "sinks";

    /// <summary>
    /// For journal retirement (<see cref="JournalRetirement"/>; the host registers the hub with its
    /// <see cref="JournalConsumerRegistry"/>): the lowest checkpoint of all sinks, which is where the follower rebuilds
    /// its replica from after a restart. 0 until every sink has answered once since start: a checkpoint hint may be
    /// ahead of a database restored from a backup, so nothing is retired on its word.
    /// </summary>
    public long FinishedThroughSequence
    {
        get
        {
            long lowest = long.MaxValue;
            foreach (var runner in _runners)
            {
                if (!runner.Opened) return 0;
                lowest = Math.Min(lowest, runner.Checkpoint.Sequence);
                // A sink that fsyncs only now and then may lose its last writes to a power loss and then need them again.
                if (runner.Sink is IPowerLossCheckpointSink sink) lowest = Math.Min(lowest, sink.FsyncedThroughSequence);
            }
            return lowest;
        }
    }

    /// <summary>The engine's durable position now, and its time.</summary>
    public long HeadSequence => _durableSequence();
    public long HeadTimestampMs => _durableTimestampMs();

    /// <summary>
    /// True (with a reason for the client) while some sink is further behind than the configured limit: ingress
    /// refuses new commands until it catches up, so the lag stays bounded instead of growing without end.
    /// </summary>
    public bool IsOverLagLimit(out string reason)
    {
        long head = HeadSequence;
        long headMs = HeadTimestampMs;
        foreach (var runner in _runners)
        {
            var lag = runner.Lag(head, headMs);
            var limits = runner.Limits;
            if (limits.MaxLagRecords > 0 && lag.Records > limits.MaxLagRecords)
            {
                reason = $"the {runner.Name} sink is {lag.Records} records behind the journal (limit {limits.MaxLagRecords})";
                return true;
            }
            if (limits.MaxLagSeconds > 0 && lag.Seconds > limits.MaxLagSeconds) // false for NaN (unknown)
            {
                reason = $"the {runner.Name} sink is {lag.Seconds:F0} s behind the journal (limit {limits.MaxLagSeconds} s)";
                return true;
            }
        }
        reason = "";
        return false;
    }

    /// <summary>
    /// Stop the engine first. Lets the sinks catch up with the journal's final durable record for up to
    /// <paramref name="drainTimeout"/> (a sink that is down keeps its checkpoint and resumes at the next start), then stops.
    /// <para>
    /// A follower still building its replica (waiting for a sink's checkpoint, or replaying the journal to it, which may take
    /// minutes after a restart far behind) is not waited for: its replay is cancelled between records, and the hub returns once
    /// the follower has stopped reading, so the host may then close the engine's stores it reads (the key store, the payment log).
    /// </para>
    /// </summary>
    public void Stop(TimeSpan drainTimeout)
    {
        if (_stopRequested) return;
        Interlocked.Exchange(ref _drainTarget, HeadSequence);
        _stopRequested = true;
        long deadline = _replicaReady ? Environment.TickCount64 + (long)drainTimeout.TotalMilliseconds : 0;
        long target = Interlocked.Read(ref _drainTarget);
        while (Environment.TickCount64 < deadline && _followerError is null && _runners.Any(r => r.Checkpoint.Sequence < target && r.Error is not { Fatal: true }))
            Thread.Sleep(10);
        _stop.Cancel();
        // Bounded, but long enough for a replay to see its cancellation (every few thousand records) or a snapshot being loaded to end.
        if (_followerThread.IsAlive && !_followerThread.Join(TimeSpan.FromSeconds(60)))
            _options.Logger.LogWarning("sinks: the follower did not stop within 60 s (at journal sequence {Sequence})", FollowerSequence);
        foreach (var runner in _runners) runner.Join(TimeSpan.FromSeconds(10));
    }

    public void Dispose()
    {
        Stop(TimeSpan.Zero);
        foreach (var runner in _runners)
        {
            runner.Sink.Dispose();
            runner.DisposeSpool();
        }
        _stop.Dispose();
    }

    private long _replicaResidentPayments;
    /// <summary>The follower's replica's payments in memory after its last poll (for <c>/metrics</c>): bounded under rules 3 with the payments' tier.</summary>
    public long ReplicaResidentPayments => Interlocked.Read(ref _replicaResidentPayments);

    private long _replicaResidentKeys;
    /// <summary>The follower's replica's idempotency keys in memory after its last poll: bounded when it follows the key store (<see cref="LedgerFollower.ResidentKeys"/>).</summary>
    public long ReplicaResidentKeys => Interlocked.Read(ref _replicaResidentKeys);

    private void FollowerLoop()
    {
        try
        {
            // The follower starts where the furthest-behind sink stands, so it must first hear every checkpoint.
            long start = long.MaxValue;
            foreach (var runner in _runners)
            {
                if (!runner.WaitOpened(_stop.Token)) return;
                start = Math.Min(start, runner.Checkpoint.Sequence);
            }
            using var follower = new LedgerFollower(_options.SnapshotDirectory, _options.JournalDirectory, _options.Ledger, start, _stop.Token);
            Interlocked.Exchange(ref _followerSequence, follower.LastSequence);
            _replicaReady = true;
            ChangeBatch? batch = null;
            while (!_stop.IsCancellationRequested)
            {
                long durable = Math.Min(_durableSequence(), Interlocked.Read(ref _drainTarget));
                batch ??= Rent();
                int read = batch.Count < batch.Capacity ? follower.Poll(durable, batch.Capacity - batch.Count, batch) : 0;
                Interlocked.Exchange(ref _followerSequence, follower.LastSequence);
                if (read > 0)
                {
                    Interlocked.Exchange(ref _replicaResidentPayments, follower.ResidentPayments);
                    Interlocked.Exchange(ref _replicaResidentKeys, follower.ResidentKeys);
                }
                _options.ResumePosition?.Invoke(Math.Min(follower.LastSequence, FinishedThroughSequence));
                // Hand a batch on when it is full, or when the journal has nothing more for now (low latency when idle).
                if (batch.Count > 0 && (batch.IsFull || read == 0))
                {
                    if (!Publish(batch)) return;
                    batch = null;
                    continue;
                }
                if (read == 0) _stop.Token.WaitHandle.WaitOne(_options.IdlePoll);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested && !_replicaReady)
        {
            // The host stops while the replica replays (a restart far behind): nothing was handed on, the sinks resume from
            // their checkpoints at the next start.
            StoppedDuringReplay = true;
            _options.Logger.LogInformation("sinks: stopped while the follower's replica was replaying to the lowest sink checkpoint; the sinks resume from their checkpoints at the next start");
        }
        catch (Exception e)
        {
            _followerError = $"{e.GetType().Name}: {e.Message}";
            _options.Logger.LogError(e, "sinks: the follower stopped for good at journal sequence {Sequence}", FollowerSequence);
        }
    }

    private ChangeBatch Rent()
    {
        if (_pool.TryTake(out var batch)) return batch;
        return new ChangeBatch(_options.BatchChanges);
    }

    /// <summary>
    /// Gives the batch to every runner: into its memory queue, or its spool when the queue is full, so one slow or
    /// failing sink does not hold the others back. Waits only for a runner whose spool is at its budget too. False when stopping.
    /// </summary>
    private bool Publish(ChangeBatch batch)
    {
        batch.Readers = _runners.Length;
        foreach (var runner in _runners)
        {
            while (true)
            {
                // Spool only when it spares another sink a wait: while every other sink still has batches queued, the
                // follower is ahead of them all and waiting costs nobody anything, while spooling costs disk and CPU.
                var result = runner.Offer(batch, spool: AnotherIsIdle(runner));
                if (result == OfferResult.Queued) break;
                if (result != OfferResult.Full)
                {
                    Release(batch); // copied to disk, or not wanted: this runner will not read the shared batch
                    break;
                }
                if (_stop.Token.WaitHandle.WaitOne(2)) return false;
            }
        }
        return true;
    }

    private bool AnotherIsIdle(SinkRunner runner)
    {
        foreach (var other in _runners)
        {
            if (other != runner && other.QueuedBatches == 0 && other.SpooledBatches == 0 && other.Error is not { Fatal: true }) return true;
        }
        return false;
    }

    /// <summary>A runner is done with the batch; the last one returns it to the pool.</summary>
    internal void Release(ChangeBatch batch)
    {
        if (Interlocked.Decrement(ref batch.Readers) != 0) return;
        batch.Clear();
        if (_pool.Count < _options.QueueBatches * (_runners.Length + 1)) _pool.Add(batch);
    }
}

/// <summary>A sink's back-pressure limits: records and seconds (journaled time) behind the journal's head; 0 = no limit.</summary>
public readonly record struct SinkLimits(long MaxLagRecords, int MaxLagSeconds);

/// <summary>How far a sink is behind the journal's durable head. Seconds is NaN while unknown (the sink has never written).</summary>
public readonly record struct SinkLag(long Records, double Seconds);

/// <summary>What went wrong with a sink last. A fatal error stops the sink until the process restarts.</summary>
public sealed record SinkError(string Message, DateTimeOffset At, bool Fatal);
