using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Hosting.Server;
using RamPay.Journal;
using RamPay.Kafka;
using RamPay.Postgres;
using RamPay.Redis;
using RamPay.Server.Http;
using RamPay.Sinks;

namespace RamPay.Server.Hosting;

/// <summary>
/// A hosted service that acts in the host's lifecycle phases (docs/architecture.md, "The server"). The host runs each
/// phase for every service before the next phase: start is StartingAsync, StartAsync (Kestrel listens here: it is
/// registered after ours), StartedAsync, in registration order; stop is StoppingAsync, StopAsync (Kestrel first),
/// StoppedAsync, in reverse order. Each service overrides only the phases it acts in.
/// </summary>
public abstract class LifecycleService : IHostedLifecycleService
{
    public virtual Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public virtual Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public virtual Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public virtual Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public virtual Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public virtual Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Says where HTTP listens, once Kestrel does (before the engine replays: /health/ready answers "starting").</summary>
public sealed class HttpAnnouncement(IServer server, ILogger<HttpAnnouncement> logger) : LifecycleService
{
    public override Task StartedAsync(CancellationToken cancellationToken)
    {
        foreach (var address in server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [])
            logger.LogInformation("http listening on {Address}", address);
        return Task.CompletedTask;
    }
}

/// <summary>Redis, when <c>RamPay:Redis:Connection</c> names one: shared rate limits and the writer lease.</summary>
public sealed class RedisClient : IDisposable
{
    private RedisClient(StackExchange.Redis.ConnectionMultiplexer? connection) => Connection = connection;

    /// <summary>Null without Redis (the embedded default).</summary>
    public StackExchange.Redis.ConnectionMultiplexer? Connection { get; }

    /// <summary>Connects without waiting for Redis to be up (it retries in the background).</summary>
    public static RedisClient Connect(ServerOptions options, ILogger<RedisClient> logger)
    {
        if (!options.Redis.Enabled) return new RedisClient(null);
        var connection = RedisConnection.ConnectAsync(options.Redis.Connection, TimeSpan.FromSeconds(5), "rampay-server").GetAwaiter().GetResult();
        logger.LogInformation("redis {Redis}: {RedisState}", options.Redis.Connection, connection.IsConnected ? "connected" : "not reachable yet (retrying)");
        return new RedisClient(connection);
    }

    public void Dispose() => Connection?.Dispose();
}

/// <summary>
/// The journal's writer lease (with Redis only): taken before the engine opens the journal, waiting while another
/// process holds it (SIGTERM ends the wait); released last at a clean stop, after the sinks' final writes. Losing it
/// is a fatal fault.
/// </summary>
public sealed class WriterLeaseService(ServerOptions options, DataFolder data, RedisClient redis, IFatalFaultHandler fatal,
    IHostApplicationLifetime lifetime, ILogger<WriterLeaseService> logger) : LifecycleService
{
    /// <summary>The lease once held; null without Redis. The engine asks it before every journal write.</summary>
    public RedisWriterLease? Lease { get; private set; }

    public override async Task StartedAsync(CancellationToken cancellationToken)
    {
        if (redis.Connection is not { } connection) return;
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        var o = options.Redis;
        var leaseOptions = new WriterLeaseOptions
        {
            Key = o.LeaseName.Length > 0 ? o.KeyPrefix + "writer-lease:" + o.LeaseName : RedisWriterLease.DefaultKey(o.KeyPrefix, data.Root),
            Ttl = TimeSpan.FromMilliseconds(o.LeaseTtlMs),
            SafetyMargin = TimeSpan.FromMilliseconds(o.LeaseSafetyMarginMs),
            RedisTimeout = TimeSpan.FromMilliseconds(Math.Min(1_000, o.LeaseTtlMs / 3)),
            FenceFile = data.WriterFence,
        };
        try
        {
            Lease = await RedisWriterLease.AcquireAsync(connection, leaseOptions, logger, cancel.Token);
        }
        catch (StaleFencingTokenException e)
        {
            logger.LogError("refusing to start: {Reason}", e.Message);
            throw;
        }
        Lease.Lost = reason => fatal.Fail("lost the writer lease: " + reason);
        logger.LogInformation("writer lease {LeaseKey}: fencing token {FencingToken}", Lease.Key, Lease.Token);
    }

    // Last of all (registered first, stopped last): a process waiting for the lease takes over at once.
    public override async Task StoppedAsync(CancellationToken cancellationToken)
    {
        if (Lease is not { } lease) return;
        await lease.ReleaseAsync();
        logger.LogInformation("writer lease {LeaseKey} released", lease.Key);
    }
}

/// <summary>
/// The engine: recovers (snapshot, then the journal replayed) once HTTP listens, under the writer lease if any; at a
/// clean stop, after the listeners, drains what was submitted and snapshots. A failure while stopping is fatal.
/// </summary>
public sealed class EngineService(EngineHost engine, WriterLeaseService lease, IFatalFaultHandler fatal, ILogger<EngineService> logger) : LifecycleService
{
    private bool _started;

    public override async Task StartedAsync(CancellationToken cancellationToken)
    {
        _started = true;
        await engine.StartAsync(lease.Lease);
        var recovery = engine.Recovery!;
        logger.LogInformation("recovered: snapshot at {SnapshotSequence}, {RecordsReplayed} records replayed, last sequence {LastSequence}, {RecoveryMs:0} ms",
            recovery.SnapshotSequence, recovery.RecordsReplayed, recovery.LastSequence, recovery.Elapsed.TotalMilliseconds);
        foreach (var warning in recovery.Warnings) logger.LogWarning("recovery: {RecoveryWarning}", warning);
        if (engine.RunningEngine is { } running && (running.Options.SnapshotEveryCommands > 0 || running.Options.SnapshotEveryMs > 0))
        {
            if (running.SnapshotsOffWriter)
                logger.LogInformation("periodic snapshots off the writer (a replica ledger): every {SnapshotEveryCommands} commands or {SnapshotEveryMs} ms",
                    running.Options.SnapshotEveryCommands, running.Options.SnapshotEveryMs);
            else
                logger.LogWarning("periodic snapshots on the writer thread every {SnapshotEveryCommands} commands: each pauses the writer while it encodes the whole state",
                    running.Options.SnapshotEveryCommands);
        }
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        if (!_started) return Task.CompletedTask;
        try
        {
            engine.Stop();
            logger.LogInformation("engine stopped: drained and snapshotted at journal sequence {JournalSequence}", engine.CompletedSequence);
        }
        catch (Exception e)
        {
            // E.g. the writer lease was lost during the drain: the fence refused the last writes (and the snapshot).
            fatal.Fail("the engine failed while stopping", e);
        }
        return Task.CompletedTask;
    }
}

/// <summary>First-start set-up, safe on every start: the funding accounts and the admin user (journaled commands).</summary>
public sealed class BootstrapService(Platform platform, ILogger<BootstrapService> logger) : LifecycleService
{
    public override Task StartedAsync(CancellationToken cancellationToken) => UserService.BootstrapAsync(platform, logger);
}

/// <summary>
/// The sinks (PostgreSQL rows, Kafka events, the local event log: only the last by default), following the journal behind the engine, and
/// ingress back-pressure on their lag. At a clean stop they catch up with the engine's last durable record, bounded
/// by <c>RamPay:Sinks:DrainTimeoutMs</c>: in StoppedAsync, so after the engine has stopped, which leaves its cold stores
/// open for the sinks' replica until this service releases them (<c>RamPayEngine.ReleaseSinksPaymentFollower</c>).
/// </summary>
public sealed class SinksService(ServerOptions options, DataFolder data, EngineHost engine, RamPay.Server.Events.EventLogHolder events, ILogger<SinksService> logger, ILoggerFactory loggers) : LifecycleService
{
    /// <summary>Null without sinks, and until the engine has recovered.</summary>
    public SinkHub? Hub { get; private set; }

    public override Task StartedAsync(CancellationToken cancellationToken)
    {
        var list = new List<IChangeSink>();
        if (options.Postgres.Connection.Length > 0) list.Add(new PostgresSink(options.Postgres.Connection, options.Postgres.AnalyticsRollupTables));
        if (options.Kafka.BootstrapServers.Length > 0)
            list.Add(new KafkaEventSink(options.Kafka.ToSinkOptions(data.Sinks), loggers.CreateLogger<KafkaEventSink>()));
        list.AddRange(events.Sinks()); // the local event log (on by default: the hub then runs with no outside server)
        if (list.Count == 0)
        {
            engine.RunningEngine?.ReleaseSinksPaymentFollower();
            return Task.CompletedTask;
        }
        var engineOptions = ServerComposition.EngineOptionsFrom(options, data);
        // Rules 3: the replica reads the writer's payment log at its own position (bounded memory), as the snapshotter's does.
        var ledgerOptions = engine.RunningEngine?.SinksPaymentTier is { } payments ? engineOptions.Ledger with { ColdPayments = payments } : engineOptions.Ledger;
        // And the key store (a small hot set of keys, not every key of the window); the hub reports where the sinks could restart.
        if (engine.RunningEngine?.SinksKeyTier is { } keys) ledgerOptions = ledgerOptions with { ColdKeys = keys };
        var hub = new SinkHub(new SinkHubOptions
        {
            SnapshotDirectory = data.Snapshots,
            JournalDirectory = data.Journal,
            StateDirectory = data.Sinks,
            Ledger = ledgerOptions,
            BatchChanges = options.Sinks.BatchChanges,
            QueueBatches = options.Sinks.QueueBatches,
            MaxLagRecords = options.Sinks.MaxLagRecords,
            MaxLagSeconds = options.Sinks.MaxLagSeconds,
            SpoolMaxBytes = (long)options.Sinks.SpoolMaxMb << 20,
            Logger = loggers.CreateLogger<SinkHub>(),
            ResumePosition = engine.RunningEngine is { } running ? running.SinksAt : null,
            Limits = new Dictionary<string, SinkLimits>
            {
                [PostgresSink.SinkName] = new(options.Postgres.MaxLagRecords < 0 ? options.Sinks.MaxLagRecords : options.Postgres.MaxLagRecords,
                    options.Postgres.MaxLagSeconds < 0 ? options.Sinks.MaxLagSeconds : options.Postgres.MaxLagSeconds),
                ["kafka"] = new(options.Kafka.MaxLagRecords < 0 ? options.Sinks.MaxLagRecords : options.Kafka.MaxLagRecords,
                    options.Kafka.MaxLagSeconds < 0 ? options.Sinks.MaxLagSeconds : options.Kafka.MaxLagSeconds),
            },
        }, list, () => engine.CompletedSequence, () => engine.CompletedTimestampMs);
        hub.Start();
        engine.BackPressure = () => hub.IsOverLagLimit(out string reason) ? reason : null;
        Hub = hub;
        logger.LogInformation("sinks: {Sinks} (follower starts once each reports its checkpoint)", string.Join(", ", list.Select(s => s.Name)));
        return Task.CompletedTask;
    }

    public override Task StoppedAsync(CancellationToken cancellationToken)
    {
        if (Hub is { } hub)
        {
            // The engine has stopped: the sinks reach its last durable record (bounded), so a clean stop leaves the
            // database and the topic complete. A sink that is down resumes from its checkpoint at the next start. A replica
            // still replaying (a restart far behind) is cancelled instead: the sinks resume from their checkpoints.
            hub.Stop(TimeSpan.FromMilliseconds(options.Sinks.DrainTimeoutMs));
            foreach (var sink in hub.Sinks)
                logger.LogInformation("sink {Sink} stopped at journal sequence {SinkSequence} of {JournalSequence}", sink.Name, sink.Checkpoint.Sequence, engine.CompletedSequence);
            hub.Dispose();
        }
        // Only now, with the sinks' follower stopped, are the engine's cold stores closed (the engine's stop left them open for it:
        // closed under its replica, a read threw ObjectDisposedException and the sinks stopped for good; benchmarks.md, run J).
        engine.RunningEngine?.ReleaseSinksPaymentFollower();
        return Task.CompletedTask;
    }
}

/// <summary>Last to start: the engine takes requests, and the server says so (<c>rampay-server: ready</c>, which scripts wait for).</summary>
public sealed class ReadyService(ServerOptions options, DataFolder data, EngineHost engine, RamPay.Engine.FraudConfiguration fraud, ILogger<ReadyService> logger) : LifecycleService
{
    public override Task StartedAsync(CancellationToken cancellationToken)
    {
        if (fraud.Settings.Enabled)
            logger.LogInformation("fraud scoring on: model {FraudModel} ({FraudModelHash}), review at {ReviewThreshold}, decline at {DeclineThreshold}",
                fraud.Model!.Version, fraud.Model.Sha256Hex[..16], options.Fraud.ReviewThreshold, options.Fraud.DeclineThreshold);
        else
            logger.LogInformation("fraud scoring off");
        engine.MarkReady();
        logger.LogInformation("ready: data {DataDirectory}, journal sequence {JournalSequence}", data.Root, engine.CompletedSequence);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Journal retirement (docs/operations-journal.md): every <c>RamPay:Journal:RetireEveryMs</c>, segments wholly behind the
/// newest valid snapshot and behind every journal consumer (the sinks, registered before the first pass) move to
/// <c>RamPay:Journal:ArchiveDirectory</c>, or are deleted when none is set; also right after each periodic snapshot. On by
/// default (every 60 s). Stops before the engine.
/// </summary>
public sealed class JournalRetirementService(ServerOptions options, DataFolder data, SinksService sinks, EngineHost engine, ILogger<JournalRetirementService> logger) : LifecycleService
{
    private JournalRetirementTimer? _timer;
    private IDisposable? _sinksRegistration;

    public override Task StartedAsync(CancellationToken cancellationToken)
    {
        if (options.Journal.RetireEveryMs <= 0) return Task.CompletedTask;
        var consumers = new JournalConsumerRegistry();
        // The sinks first: a pass before they are registered would not hold back the segments they still need.
        if (sinks.Hub is { } hub) _sinksRegistration = consumers.Register(hub);
        string? archive = options.Journal.ArchiveDirectory.Length > 0 ? Path.GetFullPath(options.Journal.ArchiveDirectory) : null;
        var retirement = new JournalRetirement(new JournalRetirementOptions
        {
            JournalDirectory = data.Journal,
            SnapshotDirectory = data.Snapshots,
            ArchiveDirectory = archive,
        }, consumers);
        _timer = new JournalRetirementTimer(retirement, options.Journal.RetireEveryMs,
            report => { if (report.SegmentsRetired > 0) logger.LogInformation("journal retirement: {Report}", report.ToString()); },
            error => logger.LogError(error, "journal retirement failed (the segments stay; the next pass tries again)"));
        _timer.Start();
        // A pass right after each periodic snapshot: the new snapshot is usually what lets the next segments go. On the thread
        // pool: RequestPass runs the pass on the calling thread, which is the snapshotter's (or the writer's, when it takes them).
        var timer = _timer;
        if (engine.RunningEngine is { } running) running.SnapshotWritten = _ => ThreadPool.QueueUserWorkItem(static t => t.RequestPass(), timer, preferLocal: false);
        logger.LogInformation("journal retirement every {RetireEveryMs} ms, {Destination}", options.Journal.RetireEveryMs, archive is null ? "deleting retired segments" : "archiving to " + archive);
        return Task.CompletedTask;
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        if (engine.RunningEngine is { } running) running.SnapshotWritten = null;
        _timer?.Dispose();
        _sinksRegistration?.Dispose();
        return Task.CompletedTask;
    }
}
