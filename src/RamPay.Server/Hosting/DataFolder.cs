using RamPay.Engine;
using RamPay.Events;
using RamPay.Journal;
using RamPay.Kafka;
using RamPay.Notifications;
using RamPay.Redis;
using RamPay.Server.Auth;
using RamPay.Webhooks;

namespace RamPay.Server.Hosting;

/// <summary>
/// Every path under the server's data directory (<c>RamPay:DataDirectory</c>), named once; the services take their paths
/// from here (the engine through <see cref="EngineOptions"/>, built by <see cref="ServerComposition.EngineOptionsFrom"/>):
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
/// events/                    the event log (events.db)
/// webhooks/                  webhook endpoints and outbox (webhooks.db)
/// notifications/             notification preferences, outbox and audit log (notifications.db)
/// consumers/                 the in-server consumers' checkpoints (rewards, analytics)
/// </code>
/// File names inside those folders stay constants of the libraries that write them (FencingTokenFile.FileName,
/// KafkaCheckpointFile.FileName, FraudModelStore.FolderName, SigningKeyRing.FileName, SessionStore.FileName...), so a
/// library used outside the server (the CLI, a test) keeps the same layout; a test holds this type and the engine's own
/// defaults to the same paths. Files that must survive a power loss are written with <see cref="AtomicFile"/>.
/// </summary>
public sealed class DataFolder(string root)
{
    public string Root { get; } = Path.GetFullPath(root);

    public string Journal => Path.Combine(Root, "journal");
    public string Snapshots => Path.Combine(Root, "snapshots");
    public string Cold => Path.Combine(Root, "cold");
    /// <summary>The payments' cold tier when <see cref="Cold"/> is where the cold tiers are (the engine's default).</summary>
    public string ColdPayments => Path.Combine(Cold, "payments");
    public string Sinks => Path.Combine(Root, "sinks");
    public string KafkaCheckpoint => Path.Combine(Sinks, KafkaCheckpointFile.FileName);
    public string FraudModels => Path.Combine(Root, FraudModelStore.FolderName);
    public string WriterFence => Path.Combine(Root, FencingTokenFile.FileName);
    public string JwtKeys => Path.Combine(Root, SigningKeyRing.FileName);
    public string JwtKeysLock => JwtKeys + ".lock";
    public string LegacyJwtKey => Path.Combine(Root, SigningKeyRing.LegacyFileName);
    public string AuthSessions => Path.Combine(Root, SessionStore.FileName);
    public string Events => Path.Combine(Root, "events");
    public string EventLog => Path.Combine(Events, RamPay.Events.EventLog.FileName);
    public string Webhooks => Path.Combine(Root, "webhooks");
    public string WebhookStore => Path.Combine(Webhooks, RamPay.Webhooks.WebhookStore.FileName);
    public string Notifications => Path.Combine(Root, "notifications");
    public string NotificationStore => Path.Combine(Notifications, RamPay.Notifications.NotificationStore.FileName);
    public string Consumers => Path.Combine(Root, "consumers");
}
