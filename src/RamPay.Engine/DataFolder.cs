namespace RamPay.Engine;

/// <summary>
/// Every path under a data directory (the server's <c>RamPay:DataDirectory</c>, the <c>rampay</c> tools' <c>--data</c>),
/// named once: the server's services, the engine's defaults (<see cref="EngineOptions"/>), the command line and
/// <c>DatabaseTools</c> all take their paths from here, so they agree on every one of them:
/// <code>
/// journal/                   segment files (RamPay.Journal), retired.manifest
/// snapshots/                 state snapshots, retention.anchor
/// cold/                      the cold tiers (rules 2+): idempotency keys; payments/ under it (rules 3)
///                            (RamPay:Engine:ColdTier:Directory / PaymentsDirectory move them elsewhere)
/// sinks/                     the sinks' state: kafka.checkpoint, NAME.checkpoint-hint
/// fraud-models/              every fraud model ever put in force, by hash (replay needs them)
/// writer-fence               the highest fencing token that wrote here (with Redis)
/// jwt-keys.json (+.lock)     the generated HS256 key ring (when RamPay:Jwt:SigningKey is empty)
/// jwt-signing.key            an older single key, read once as the ring's first key
/// auth-sessions.log          live log-in sessions (refresh-token families) and revocations
/// events/                    the event log (events-*.seg segments; an events.db here is the old SQLite layout, migrated at open)
/// webhooks/                  webhook endpoints and outbox (webhooks.db)
/// notifications/             notification preferences, outbox and audit log (notifications.db)
/// consumers/                 the in-server consumers' checkpoints (rewards, analytics)
/// </code>
/// It lives in RamPay.Engine (it was RamPay.Server.Hosting.DataFolder) so that the command line and RamPay.Postgres can
/// use it too; the server names it through a global alias. File names inside those folders are also constants of the
/// libraries that write them (FencingTokenFile.FileName, KafkaCheckpointFile.FileName, SigningKeyRing.FileName,
/// SessionStore.FileName, EventLog.FileName...), which this project cannot reference: DataFolderTests holds each of them
/// to the name here. Files that must survive a power loss are written with <c>RamPay.Journal.AtomicFile</c>.
/// </summary>
public sealed class DataFolder(string root)
{
    /// <summary>The folder names under the root, for <see cref="EngineOptions"/>' defaults (which keep a relative root relative).</summary>
    public const string JournalName = "journal", SnapshotsName = "snapshots", ColdName = "cold", ColdPaymentsName = "payments";

    public string Root { get; } = Path.GetFullPath(root);

    public string Journal => Path.Combine(Root, JournalName);
    public string Snapshots => Path.Combine(Root, SnapshotsName);
    public string Cold => Path.Combine(Root, ColdName);
    /// <summary>The payments' cold tier when <see cref="Cold"/> is where the cold tiers are (the engine's default).</summary>
    public string ColdPayments => Path.Combine(Cold, ColdPaymentsName);
    public string Sinks => Path.Combine(Root, "sinks");
    public string KafkaCheckpoint => Path.Combine(Sinks, "kafka.checkpoint");
    public string FraudModels => Path.Combine(Root, FraudModelStore.FolderName);
    public string WriterFence => Path.Combine(Root, "writer-fence");
    public string JwtKeys => Path.Combine(Root, "jwt-keys.json");
    public string JwtKeysLock => JwtKeys + ".lock";
    public string LegacyJwtKey => Path.Combine(Root, "jwt-signing.key");
    public string AuthSessions => Path.Combine(Root, "auth-sessions.log");
    public string Events => Path.Combine(Root, "events");
    public string EventLog => Path.Combine(Events, "events.db");
    public string Webhooks => Path.Combine(Root, "webhooks");
    public string WebhookStore => Path.Combine(Webhooks, "webhooks.db");
    public string Notifications => Path.Combine(Root, "notifications");
    public string NotificationStore => Path.Combine(Notifications, "notifications.db");
    public string Consumers => Path.Combine(Root, "consumers");
}
