using RamPay.Core;

namespace RamPay.Server;

/// <summary>
/// Every setting of the server, bound from the configuration section <c>RamPay</c> (appsettings.json, environment
/// variables <c>RAMPAY_...</c> or <c>RamPay__...</c>, command-line flags). Defaults are the embedded default: a local
/// data folder, loopback ports, no outside server.
/// </summary>
public sealed partial class ServerOptions
{
    public const string Section = "RamPay";

    [Setting("The data folder: journal, snapshots, sink checkpoints, writer-fence, JWT key, kept fraud models.", Flag = "--data", Value = "<dir>")]
    public string DataDirectory { get; set; } = "rampay-data";
    [Setting("fdatasync every journal batch. Off only for experiments: an acknowledged command could then be lost.", Flag = "--fsync", Value = "<true|false>")]
    public bool Fsync { get; set; } = true;
    [Setting("ISO codes the platform holds money in; a funding account is opened for each at first start.")]
    public string Currencies { get; set; } = "USD,EUR,GBP";
    [Setting("The wallet currency of a sign-up that names none.")]
    public string DefaultCurrency { get; set; } = "USD";
    [Setting("The largest single deposit, in minor units (default 1,000,000.00).")]
    public long MaxDepositAmount { get; set; } = 100_000_000;
    [Setting("The most payments in one POST /v1/payments/batch.")]
    public int MaxBatchPayments { get; set; } = 100;
    [Setting("How long a request waits for its command to become durable before it answers 503.")]
    public int CommandTimeoutMs { get; set; } = 30_000;

    public HttpSettings Http { get; set; } = new();
    public TcpSettings Tcp { get; set; } = new();
    public JwtSettings Jwt { get; set; } = new();
    public AuthSettings Auth { get; set; } = new();
    public AdminSettings Admin { get; set; } = new();
    public RateLimitSettings RateLimit { get; set; } = new();
    public RedisSettings Redis { get; set; } = new();
    public EngineSettings Engine { get; set; } = new();
    public PostgresSettings Postgres { get; set; } = new();
    public KafkaSettings Kafka { get; set; } = new();
    public SinkSettings Sinks { get; set; } = new();
    public LoggingSettings Logging { get; set; } = new();
    public OtlpSettings Otlp { get; set; } = new();
    public JournalSettings Journal { get; set; } = new();
    public EventsSettings Events { get; set; } = new();
    public WebSettings Web { get; set; } = new();

    /// <summary>The web app's API additions (docs/api.md, "For the web app"; issue 15).</summary>
    public sealed class WebSettings
    {
        [Setting("Payee lookups by email (GET /v1/users/lookup) each user may make per minute, against enumeration of who has an account; 0 = no limit.")]
        public int LookupsPerMinute { get; set; } = 30;

        [Setting("Lookups a quiet user may make at once before LookupsPerMinute applies.")]
        public int LookupBurst { get; set; } = 10;
    }

    /// <summary>Journal retirement (docs/operations-journal.md).</summary>
    public sealed class JournalSettings
    {
        [Setting("Where retired journal segments are moved (crash-safely); empty = they are deleted, and whatever reads the journal from its first record (rampay db rebuild, replay without a snapshot) then says the records are gone.")]
        public string ArchiveDirectory { get; set; } = "";

        [Setting("How often segments wholly behind the newest snapshot and every sink's checkpoint are retired (also right after each periodic snapshot); 0 = never (the journal is kept whole). Retired segments go to ArchiveDirectory, or are deleted when it is empty.")]
        public int RetireEveryMs { get; set; } = 60_000;
    }

    /// <summary>
    /// OpenTelemetry traces over OTLP. Read and checked by <see cref="Observability.ObservabilityExtensions"/> (which also
    /// honours the standard OTEL_EXPORTER_OTLP_* variables); declared here so that --help and README list them.
    /// </summary>
    public sealed class OtlpSettings
    {
        [Setting("OTLP endpoint (http:// or https:// URL) that OpenTelemetry traces are exported to; empty = traces off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/operations.md).")]
        public string Endpoint { get; set; } = "";

        [Setting("The OTLP protocol: grpc or http/protobuf.")]
        public string Protocol { get; set; } = "grpc";
    }

    public sealed class LoggingSettings
    {
        public const string Text = "text";
        public const string Json = "json";

        [Setting("Console log format: text (one 'rampay-server: ...' line per event) or json (one JSON object per line: time, level, category, message and the event's fields).")]
        public string Format { get; set; } = Text;

        public bool IsJson => string.Equals(Format, Json, StringComparison.OrdinalIgnoreCase);
    }

    public sealed class PostgresSettings
    {
        [Setting("Npgsql connection string of the database committed commands are written to as rows (docs/architecture.md, the sinks); empty (the embedded default) = no PostgreSQL sink.")]
        public string Connection { get; set; } = "";
        [Setting("Back-pressure limit of the PostgreSQL sink alone: past this many journal records behind, ingress holds back; -1 = RamPay:Sinks:MaxLagRecords, 0 = no limit.")]
        public long MaxLagRecords { get; set; } = -1;
        [Setting("Back-pressure limit of the PostgreSQL sink alone, in seconds behind (journaled time); -1 = RamPay:Sinks:MaxLagSeconds, 0 = no limit.")]
        public int MaxLagSeconds { get; set; } = -1;
        [Setting("Analytics rollup tables in PostgreSQL kept by triggers on payments (docs/analytics.md): the views rampay_analytics and rampay_fraud_scores answer in milliseconds, and each sink statement pays for the triggers; false = the views scan payments (seconds at 1M rows) and the sink keeps its full pace.")]
        public bool AnalyticsRollupTables { get; set; }
    }

    public sealed class KafkaSettings
    {
        [Setting("Kafka bootstrap servers (host:port,...) committed commands are published to as events (docs/events.md); the checkpoint is <data>/sinks/kafka.checkpoint. Empty (the embedded default) = no Kafka sink.")]
        public string BootstrapServers { get; set; } = "";
        [Setting("The Kafka topic the events go to.")]
        public string Topic { get; set; } = "rampay.events";
        [Setting("How long the sink waits for the brokers to describe the topic when it (re)connects before it fails and backs off.")]
        public int OpenTimeoutMs { get; set; } = 10_000;
        [Setting("How long one batch may wait for the brokers' acknowledgements before the sink tears its producer down and re-sends from its checkpoint.")]
        public int WriteTimeoutMs { get; set; } = 30_000;
        [Setting("Back-pressure limit of the Kafka sink alone: past this many journal records behind, ingress holds back; -1 = RamPay:Sinks:MaxLagRecords, 0 = no limit.")]
        public long MaxLagRecords { get; set; } = -1;
        [Setting("Back-pressure limit of the Kafka sink alone, in seconds behind (journaled time); -1 = RamPay:Sinks:MaxLagSeconds, 0 = no limit.")]
        public int MaxLagSeconds { get; set; } = -1;

        /// <summary>The Kafka sink's options from these settings (one place for <see cref="Validate"/> and the server's start).</summary>
        public RamPay.Kafka.KafkaSinkOptions ToSinkOptions(string checkpointDirectory) => new()
        {
            BootstrapServers = BootstrapServers,
            Topic = Topic,
            CheckpointDirectory = checkpointDirectory,
            OpenTimeout = TimeSpan.FromMilliseconds(OpenTimeoutMs),
            WriteTimeout = TimeSpan.FromMilliseconds(WriteTimeoutMs),
        };
    }

    public sealed class SinkSettings
    {
        [Setting("Past this many journal records behind, ingress holds new commands back (HTTP 503 sinks_lagging, TCP stops reading); 0 = no limit.")]
        public long MaxLagRecords { get; set; } = 5_000_000;
        [Setting("Past this many seconds (journaled time) behind, ingress holds back likewise; 0 = no limit.")]
        public int MaxLagSeconds { get; set; } = 300;
        [Setting("Changes per batch handed to each sink (one PostgreSQL transaction, one Kafka flush).")]
        public int BatchChanges { get; set; } = 8192;
        [Setting("Batches that may wait in memory for each sink; past it that sink's batches go to its spool on disk (<data>/sinks/<sink>.spool), so the other sinks go on.")]
        public int QueueBatches { get; set; } = 8;
        [Setting("Disk each sink's spool may use while that sink is behind (slow or down), in MiB; past it the follower waits for that sink and so the others wait too. 0 = no spool (a full queue holds every sink). Keep it above what the sink's MaxLagRecords lets through (docs/sinks.md).")]
        public int SpoolMaxMb { get; set; } = 4096;
        [Setting("At a clean stop, how long the sinks may take to catch up with the journal before the process exits anyway.")]
        public int DrainTimeoutMs { get; set; } = 10_000;
    }
    public FraudOptions Fraud { get; set; } = new();

    public sealed class HttpSettings
    {
        [Setting("The HTTP listener's address.", Flag = "--host", Value = "<addr>")]
        public string Host { get; set; } = "127.0.0.1";
        [Setting("The HTTP port; 0 = any free port (printed at start).", Flag = "--http-port", Value = "<n>")]
        public int Port { get; set; } = 8080;
        [Setting("The largest HTTP request body; a larger one is 413 payload_too_large.")]
        public int MaxRequestBodyBytes { get; set; } = 1 << 20;
        /// <summary>Cross-origin access for a web app (RamPay:Http:Cors:Origins); off by default.</summary>
        public CorsSettings Cors { get; set; } = new();
    }

    public sealed class CorsSettings
    {
        [Setting("Comma-separated origins a browser app may call the API from (https://app.example.com), or * alone; empty = CORS off.")]
        public string Origins { get; set; } = "";

        public string[] OriginList() => Origins.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    public sealed class TcpSettings
    {
        [Setting("The TCP listener's address.", Flag = "--tcp-host", Value = "<addr>")]
        public string Host { get; set; } = "127.0.0.1";
        [Setting("The TCP port; 0 = any free port (printed at start); -1 = no TCP listener.", Flag = "--tcp-port", Value = "<n>")]
        public int Port { get; set; } = 7070;
        [Setting("The most commands in one TCP frame (sent to the client in Welcome).")]
        public int MaxCommandsPerBatch { get; set; } = RamPay.Protocol.ProtocolLimits.DefaultMaxCommandsPerBatch;
        [Setting("Batches one connection may have in flight (read but not yet answered) before the server stops reading it.")]
        public int MaxInFlightBatches { get; set; } = 16;
        [Setting("The most TCP connections at once; more are refused.")]
        public int MaxConnections { get; set; } = 1024;
    }

    public sealed class JwtSettings
    {
        [Setting("HS256 key (at least 32 bytes of UTF-8). Set: used alone, no rotation. Empty = a key ring generated into the data folder (jwt-keys.json, mode 0600, written atomically; servers starting at once agree on one under jwt-keys.json.lock; an older jwt-signing.key becomes its first key), rotated with POST /v1/admin/auth/keys/rotate; old keys verify until their tokens expire.")]
        public string SigningKey { get; set; } = "";
        [Setting("The iss claim of issued tokens, required on every token presented.")]
        public string Issuer { get; set; } = "rampay";
        [Setting("The aud claim of issued tokens, required on every token presented.")]
        public string Audience { get; set; } = "rampay";
        [Setting("How long a token from POST /v1/auth/token is valid.")]
        public int TokenLifetimeSeconds { get; set; } = 3600;
        [Setting("How long a log-in can be renewed with refresh tokens (POST /v1/auth/refresh), from the log-in; default 30 days.")]
        public int RefreshTokenLifetimeSeconds { get; set; } = 30 * 24 * 3600;
        [Setting("Live log-in sessions (refresh-token families, in auth-sessions.log in the data folder) kept; past it, the one that expires soonest is dropped.")]
        public int MaxRefreshTokens { get; set; } = 100_000;
        [Setting("Access tokens revoked at logout and not yet expired; past it, logout answers 503 too_many_revocations.")]
        public int MaxRevokedTokens { get; set; } = 100_000;
    }

    public sealed class AuthSettings
    {
        [Setting("PBKDF2-SHA256 iterations for new password hashes (stored in each hash, so it can change later).")]
        public int PasswordHashIterations { get; set; } = 100_000;
    }

    public sealed class AdminSettings
    {
        [Setting("The admin user created at first start.", Flag = "--admin-email", Value = "<email>")]
        public string Email { get; set; } = "admin@rampay.local";
        [Setting("The admin's password (at least 8 characters); empty = a random one, printed once at first start.", Flag = "--admin-password", Value = "<pw>")]
        public string Password { get; set; } = "";
        [Setting("The admin's display name.")]
        public string Name { get; set; } = "Administrator";
    }

    public sealed class RateLimitSettings
    {
        [Setting("Sustained HTTP requests per second per user (per client address before login); 0 = no limit.")]
        public int RequestsPerSecond { get; set; } = 1_000;
        [Setting("How many requests a quiet client may send at once.")]
        public int Burst { get; set; } = 2_000;
        [Setting("Sustained commands per second per user over TCP (a frame costs its command count); 0 = no limit (the default).")]
        public int TcpCommandsPerSecond { get; set; }
        [Setting("Commands a quiet TCP user may send at once (over the limit: error 14 rate_limited); 0 = the larger of TcpCommandsPerSecond and Tcp:MaxCommandsPerBatch.")]
        public int TcpBurst { get; set; }

        /// <summary>The TCP burst in force: never below a full frame, or a full frame could never pass.</summary>
        public int EffectiveTcpBurst(int maxCommandsPerBatch) => TcpBurst > 0 ? TcpBurst : Math.Max(TcpCommandsPerSecond, maxCommandsPerBatch);
    }

    /// <summary>
    /// Redis, for what several RamPay processes must agree on: shared rate limits and the journal's writer lease.
    /// Empty <see cref="Connection"/> (the embedded default) = no Redis: limits are per process and no lease is taken.
    /// </summary>
    public sealed class RedisSettings
    {
        [Setting("Redis shared by several servers (StackExchange.Redis configuration, e.g. 127.0.0.1:6379 or host:6379,password=...): rate limits shared by all of them, and a writer lease on the journal, so a second server on the same data waits until the first stops or its lease expires. Empty = no Redis.", Flag = "--redis", Value = "<host:port>")]
        public string Connection { get; set; } = "";
        [Setting("Prepended to every key RamPay writes in Redis.")]
        public string KeyPrefix { get; set; } = "rampay:";
        [Setting("Names the journal's writer lease; empty = the data directory's full path. Every process that opens the same journal must use the same name.")]
        public string LeaseName { get; set; } = "";
        [Setting("The writer lease's time to live; renewed every third of it.")]
        public int LeaseTtlMs { get; set; } = 5_000;
        [Setting("The writer stops this long before the lease could expire in Redis (pauses, clock-rate drift); at most half the TTL.")]
        public int LeaseSafetyMarginMs { get; set; } = 1_000;
        [Setting("The longest a rate-limit decision waits for Redis before the in-process limiter decides.")]
        public int TimeoutMs { get; set; } = 200;
        [Setting("After Redis failed a rate-limit call, decisions stay in-process this long before Redis is tried again.")]
        public int RetryAfterFailureMs { get; set; } = 1_000;

        public bool Enabled => !string.IsNullOrWhiteSpace(Connection);
    }

    public sealed class EngineSettings
    {
        [Setting("Slots in the engine's ring (a power of two, at least 1024).")]
        public int RingSize { get; set; } = 1 << 16;
        [Setting("The most commands in one journal batch (one fsync).")]
        public int MaxBatchSize { get; set; } = 4096;
        [Setting("A snapshot every this many commands (0 = by time only, or only at a clean stop when SnapshotEveryMs is 0 too). With SnapshotOffWriter the snapshotter takes it from its replica ledger and the writer never pauses (the cold key tier on or off: the replica follows the cold tier); a restart then loads the newest snapshot and replays at most about this many commands plus those applied while it was written (docs/snapshots.md).")]
        public long SnapshotEveryCommands { get; set; } = 10_000_000;
        [Setting("Also a snapshot once this long has passed since the last one and a command was applied (0 = by count only), so a quiet server's restart and journal retirement stay bounded too. Only with SnapshotOffWriter.")]
        public long SnapshotEveryMs { get; set; } = 300_000;
        [Setting("Take periodic snapshots from a replica ledger on their own thread, off the writer (it costs a second copy of the state in memory); false = the writer takes them, pausing for the whole encoding (23 s at 10 M payments).")]
        public bool SnapshotOffWriter { get; set; } = true;
        [Setting("Ledger limit: accounts (too_many_accounts past it).")]
        public int MaxAccounts { get; set; } = 1 << 20;
        [Setting("Ledger limit: payments kept (too_many_payments past it), under rules versions 1 and 2; rules version 3 has no such limit.")]
        public long MaxPayments { get; set; } = 1L << 26;
        [Setting("Ledger limit: authorizations holding funds at once.")]
        public int MaxOpenHolds { get; set; } = 1 << 20;
        [Setting("Idempotency keys remembered; the oldest are forgotten past it.")]
        public int IdempotencyMaxKeys { get; set; } = RamPay.Engine.EngineOptions.ServerIdempotencyMaxKeys;
        [Setting("How the pipeline's threads wait for work: SpinThenBlock (lowest latency), SpinThenYield, or Blocking (least CPU when idle).")]
        public RamPay.Engine.WaitStrategyKind WaitStrategy { get; set; } = RamPay.Engine.WaitStrategyKind.SpinThenBlock;
        [Setting("The ledger's rules version. 4 (the default): as 3, and fraud features and scores are computed in the prefetch stage ahead of the writer, counting every attempted payment in sequence order (docs/fraud.md). 3: the writer scores; payments have no ceiling (MaxPayments no longer refuses with too_many_payments) and settled old ones live on disk (ColdTier:PaymentsEnabled), and every idempotency key is honoured for its whole 24 h window, up to IdempotencyKeyBudget keys, older ones on disk (ColdTier). 2: the keys as in 3, payments all in memory up to MaxPayments. 1: the keys are a table of IdempotencyMaxKeys, forgotten early past it. A ledger under older rules is moved to these by a journaled upgrade point at start (once; the journal before it replays under its old rules); a ledger is never moved back. See docs/storage.md.")]
        public int RulesVersion { get; set; } = RamPay.Engine.EngineOptions.ServerRulesVersion;
        [Setting("Rules version 2: the most idempotency keys remembered (memory and disk); past it the oldest is forgotten early, counted in rampay_idempotency_keys_evicted_early_total and reported by /health/ready. Journaled with the upgrade: later changes have no effect on an upgraded ledger. Size it for peak keys/s x 86,400 (docs/storage.md: 136 bytes of disk a key).")]
        public long IdempotencyKeyBudget { get; set; } = RamPay.Engine.EngineOptions.DefaultIdempotencyKeyBudget;
        public ColdTierSettings ColdTier { get; set; } = new();
    }

    /// <summary>Rules version 2's cold tier of idempotency keys (docs/storage.md).</summary>
    public sealed class ColdTierSettings
    {
        [Setting("Keep idempotency keys older than the hot budget on disk (rules version 2). Off: every key of the window stays in memory (130 to 260 bytes a key).")]
        public bool Enabled { get; set; } = true;
        [Setting("Where the cold tier's segment files live; empty = <data>/cold.")]
        public string Directory { get; set; } = "";
        [Setting("Idempotency keys kept in memory at most (about 130 bytes each, allocated at start); at least three generations.")]
        public int HotMaxKeys { get; set; } = 1 << 20;
        [Setting("Commands per generation, the unit the cold tier writes at once; 0 = twice Engine:RingSize.")]
        public int GenerationCommands { get; set; }
        [Setting("Keys the cold tier must hold; 0 = Engine:IdempotencyKeyBudget + 3 x Engine:SnapshotEveryCommands (the keys the kept snapshots still hold). Past 1.25 x this plus two segments (keys still needed by the oldest kept snapshot) the engine stops with an error: take snapshots (Engine:SnapshotEveryCommands) so that dead segments can be deleted.")]
        public long KeyCapacity { get; set; }
        [Setting("Keys per segment file (a power of two); a segment is deleted whole once every key in it is dead. Keep it as it was for an existing cold tier.")]
        public int SegmentKeys { get; set; } = 1 << 20;
        [Setting("Under rules version 3 and later (4 is the default): keep settled payments older than HotPayments (with their notes and fraud results) on disk, and bring back the one a capture, void, refund or review acts on before the writer needs it (docs/storage.md, \"Payments\"). Off: every payment stays in memory. Needs Enabled.")]
        public bool PaymentsEnabled { get; set; } = true;
        [Setting("Where the payment log lives; empty = <ColdTier:Directory>/payments.")]
        public string PaymentsDirectory { get; set; } = "";
        [Setting("The newest payments always kept in memory (about 104 bytes each); open authorizations and payments changed since written stay too.")]
        public long HotPayments { get; set; } = 1 << 20;
        [Setting("log2 of the payments per chunk, the unit that leaves memory at once (16 = 65,536 payments, 6.8 MB).")]
        public int PaymentChunkShift { get; set; } = 16;
        [Setting("Bytes per segment file of the payment log (120 bytes a payment version).")]
        public long PaymentSegmentBytes { get; set; } = 256L * 1024 * 1024;
    }

    /// <summary>
    /// Fraud scoring in the writer (docs/fraud.md). The effective settings are journaled at start whenever they
    /// differ from the ledger's, so a change takes effect from that point of the journal on and replay stays exact.
    /// </summary>
    public sealed class FraudOptions
    {
        [Setting("Score every payment (transfer and authorization) before it touches the ledger (docs/fraud.md).", Flag = "--fraud", Value = "<true|false>")]
        public bool Enabled { get; set; } = true;
        [Setting("A model file written by rampay fraud train; empty = the embedded default model.", Flag = "--fraud-model", Value = "<file>")]
        public string ModelPath { get; set; } = "";
        [Setting("A score at or above this holds the payment for review (above 1 = never).")]
        public double ReviewThreshold { get; set; } = 0.5;
        [Setting("A score at or above this declines the payment (fraud_suspected; above 1 = never).")]
        public double DeclineThreshold { get; set; } = 0.9;
        [Setting("Rule: payments of at least this many minor units are held for review (0 = off).")]
        public long AmountThreshold { get; set; }
        [Setting("Rule: a sender's payment beyond this many in 24 hours is declined (0 = off).")]
        public int MaxPaymentsPerDay { get; set; }
        [Setting("Rule: comma-separated account ids whose payments, in or out, are declined.")]
        public string BlockedAccounts { get; set; } = "";
        [Setting("A held transfer not reviewed within this long expires (its hold is released); at most 31 days.")]
        public long ReviewTimeoutMs { get; set; } = 7L * 24 * 3600 * 1000;

        public long[] ParseBlockedAccounts()
        {
            var ids = new SortedSet<long>();
            foreach (var part in BlockedAccounts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!long.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long id) || id < 1)
                    throw new OptionsException($"RamPay:Fraud:BlockedAccounts: '{part}' is not an account id");
                ids.Add(id);
            }
            if (ids.Count > RamPay.Fraud.FraudSettings.MaxBlockedAccounts)
                throw new OptionsException($"RamPay:Fraud:BlockedAccounts lists {ids.Count} accounts; at most {RamPay.Fraud.FraudSettings.MaxBlockedAccounts}");
            return [.. ids];
        }

        /// <summary>The settings these options give (without the model hash, which the engine fills in from the model).</summary>
        public RamPay.Fraud.FraudSettings ToSettings() => new()
        {
            Enabled = Enabled,
            ReviewThresholdPpm = RamPay.Fraud.FraudSettings.ToPpm(ReviewThreshold),
            DeclineThresholdPpm = RamPay.Fraud.FraudSettings.ToPpm(DeclineThreshold),
            AmountThreshold = AmountThreshold,
            MaxPaymentsPerDay = MaxPaymentsPerDay,
            ReviewTimeoutMs = ReviewTimeoutMs,
            BlockedAccounts = ParseBlockedAccounts(),
        };

        public void Validate()
        {
            if (!(ReviewThreshold >= 0) || !(DeclineThreshold >= ReviewThreshold)) throw new OptionsException("RamPay:Fraud: thresholds must satisfy 0 <= ReviewThreshold <= DeclineThreshold (above 1 = never)");
            if (AmountThreshold < 0) throw new OptionsException("RamPay:Fraud:AmountThreshold must be 0 (off) or positive");
            if (MaxPaymentsPerDay < 0) throw new OptionsException("RamPay:Fraud:MaxPaymentsPerDay must be 0 (off) or positive");
            if (ReviewTimeoutMs < 1 || ReviewTimeoutMs > 31L * 24 * 3600 * 1000) throw new OptionsException("RamPay:Fraud:ReviewTimeoutMs must be 1..2678400000 (31 days)");
            ParseBlockedAccounts();
        }
    }

    /// <summary>The TCP protocol limits these settings give: the body limit grows with the batch limit, never below the default.</summary>
    public RamPay.Protocol.ProtocolLimits TcpLimits() => new(TcpLimitsBodyBytes(Tcp.MaxCommandsPerBatch), Tcp.MaxCommandsPerBatch);

    private static int TcpLimitsBodyBytes(int maxCommands) =>
        (int)Math.Min(int.MaxValue, Math.Max(RamPay.Protocol.ProtocolLimits.DefaultMaxBodyBytes, RamPay.Protocol.FrameCodec.BatchPrefixBytes + 64L * maxCommands));

    /// <summary>Parsed <see cref="Currencies"/>; throws a clear error for a bad list.</summary>
    public IReadOnlyList<Currency> ParseCurrencies()
    {
        var list = new List<Currency>();
        foreach (var part in Currencies.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Currency.TryParse(part, out var c)) throw new OptionsException($"RamPay:Currencies: '{part}' is not a three-letter upper-case currency code");
            if (!list.Contains(c)) list.Add(c);
        }
        if (list.Count == 0) throw new OptionsException("RamPay:Currencies names no currency");
        return list;
    }

    /// <summary>Checks every setting at start, so a bad one stops the server with its name rather than failing later.</summary>
    public void Validate()
    {
        var currencies = ParseCurrencies();
        if (!Currency.TryParse(DefaultCurrency, out var d) || !currencies.Contains(d))
            throw new OptionsException($"RamPay:DefaultCurrency '{DefaultCurrency}' must be one of RamPay:Currencies ({Currencies})");
        if (string.IsNullOrWhiteSpace(DataDirectory)) throw new OptionsException("RamPay:DataDirectory is empty");
        if (MaxDepositAmount <= 0) throw new OptionsException("RamPay:MaxDepositAmount must be positive");
        if (MaxBatchPayments is < 1 or > 10_000) throw new OptionsException("RamPay:MaxBatchPayments must be 1..10000");
        if (CommandTimeoutMs < 1) throw new OptionsException("RamPay:CommandTimeoutMs must be positive");
        if (Http.Port is < 0 or > 65535) throw new OptionsException("RamPay:Http:Port must be 0..65535");
        if (Tcp.Port is < -1 or > 65535) throw new OptionsException("RamPay:Tcp:Port must be -1..65535");
        if (Http.MaxRequestBodyBytes < 1024) throw new OptionsException("RamPay:Http:MaxRequestBodyBytes must be at least 1024");
        if (Tcp.MaxInFlightBatches < 1) throw new OptionsException("RamPay:Tcp:MaxInFlightBatches must be positive");
        if (Tcp.MaxConnections < 1) throw new OptionsException("RamPay:Tcp:MaxConnections must be positive");
        if (Tcp.MaxCommandsPerBatch < 1 || Tcp.MaxCommandsPerBatch > Engine.RingSize
            || !RamPay.Protocol.ProtocolLimits.AreValid(TcpLimitsBodyBytes(Tcp.MaxCommandsPerBatch), Tcp.MaxCommandsPerBatch))
            throw new OptionsException($"RamPay:Tcp:MaxCommandsPerBatch must be 1..{RamPay.Protocol.ProtocolLimits.HardMaxCommandsPerBatch} and at most RamPay:Engine:RingSize");
        if (Engine.RingSize < 1024 || (Engine.RingSize & (Engine.RingSize - 1)) != 0) throw new OptionsException("RamPay:Engine:RingSize must be a power of two, at least 1024");
        if (Engine.RulesVersion < 1 || Engine.RulesVersion > RamPay.Core.Ledger.NewestRulesVersion)
            throw new OptionsException($"RamPay:Engine:RulesVersion must be 1..{RamPay.Core.Ledger.NewestRulesVersion}");
        if (Engine.IdempotencyKeyBudget < 1) throw new OptionsException("RamPay:Engine:IdempotencyKeyBudget must be at least 1");
        if (Engine.ColdTier.HotMaxKeys < 1 || Engine.ColdTier.GenerationCommands < 0 || Engine.ColdTier.KeyCapacity < 0)
            throw new OptionsException("RamPay:Engine:ColdTier: HotMaxKeys must be positive, GenerationCommands and KeyCapacity 0 or positive");
        if (Engine.ColdTier.Enabled)
        {
            // The engine's own checks (three generations hot, at least the ring per generation, segment size), with the setting's name.
            try
            {
                new RamPay.Engine.EngineOptions
                {
                    DataDirectory = ".", RingSize = Engine.RingSize, RulesVersion = Engine.RulesVersion, IdempotencyKeyBudget = Engine.IdempotencyKeyBudget,
                    ColdTier = Hosting.ServerComposition.ColdTierFrom(this),
                }.Validate();
            }
            catch (ArgumentException e)
            {
                throw new OptionsException("RamPay:Engine:" + e.Message);
            }
        }
        if (Jwt.TokenLifetimeSeconds < 1) throw new OptionsException("RamPay:Jwt:TokenLifetimeSeconds must be positive");
        if (Jwt.SigningKey.Length > 0 && System.Text.Encoding.UTF8.GetByteCount(Jwt.SigningKey) < 32)
            throw new OptionsException("RamPay:Jwt:SigningKey must be at least 32 bytes");
        if (Web.LookupsPerMinute < 0 || Web.LookupBurst < 1) throw new OptionsException("RamPay:Web:LookupsPerMinute must not be negative and RamPay:Web:LookupBurst must be at least 1");
        if (Journal.RetireEveryMs < 0) throw new OptionsException("RamPay:Journal:RetireEveryMs must be 0 (never) or positive");
        if (Engine.SnapshotEveryCommands < 0) throw new OptionsException("RamPay:Engine:SnapshotEveryCommands must be 0 (by time only) or positive");
        if (Engine.SnapshotEveryMs < 0) throw new OptionsException("RamPay:Engine:SnapshotEveryMs must be 0 (by count only) or positive");
        if (Engine.SnapshotEveryMs > 0 && !Engine.SnapshotOffWriter)
            throw new OptionsException("RamPay:Engine:SnapshotEveryMs needs RamPay:Engine:SnapshotOffWriter (the writer snapshots by count only): set it to 0");
        Events.Validate();
        Webhooks.Validate();
        Notifications.Validate(); // docs/notifications.md (src/RamPay.Server/Notifications)
        Rewards.Validate(); // docs/rewards.md, docs/analytics.md (src/RamPay.Server/Rewards)
        if (Jwt.RefreshTokenLifetimeSeconds < 1) throw new OptionsException("RamPay:Jwt:RefreshTokenLifetimeSeconds must be positive");
        if (Jwt.MaxRefreshTokens < 1) throw new OptionsException("RamPay:Jwt:MaxRefreshTokens must be at least 1");
        if (Jwt.MaxRevokedTokens < 1) throw new OptionsException("RamPay:Jwt:MaxRevokedTokens must be at least 1");
        foreach (string origin in Http.Cors.OriginList())
        {
            if (origin == "*" && Http.Cors.OriginList().Length == 1) continue;
            if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.PathAndQuery != "/" || origin.EndsWith('/'))
                throw new OptionsException($"RamPay:Http:Cors:Origins: '{origin}' is not an origin (scheme://host[:port], no path), or '*' alone");
        }
        if (Auth.PasswordHashIterations is < 1 or > 10_000_000) throw new OptionsException("RamPay:Auth:PasswordHashIterations must be 1..10000000");
        if (RateLimit.RequestsPerSecond < 0 || RateLimit.Burst < 0) throw new OptionsException("RamPay:RateLimit values must not be negative");
        if (RateLimit.RequestsPerSecond > 0 && RateLimit.Burst < 1) throw new OptionsException("RamPay:RateLimit:Burst must be at least 1 when limiting");
        if (Postgres.Connection.Length > 0)
        {
            try { _ = new Npgsql.NpgsqlConnectionStringBuilder(Postgres.Connection); }
            catch (ArgumentException e) { throw new OptionsException("RamPay:Postgres:Connection is not an Npgsql connection string: " + e.Message); }
        }
        if (Sinks.MaxLagRecords < 0 || Sinks.MaxLagSeconds < 0) throw new OptionsException("RamPay:Sinks:MaxLagRecords and MaxLagSeconds must not be negative");
        if (Sinks.BatchChanges is < 1 or > 1_000_000) throw new OptionsException("RamPay:Sinks:BatchChanges must be 1..1000000");
        if (Sinks.QueueBatches is < 1 or > 1024) throw new OptionsException("RamPay:Sinks:QueueBatches must be 1..1024");
        if (Sinks.SpoolMaxMb is < 0 or > 1_048_576) throw new OptionsException("RamPay:Sinks:SpoolMaxMb must be 0..1048576");
        if (Postgres.MaxLagRecords < -1 || Postgres.MaxLagSeconds < -1) throw new OptionsException("RamPay:Postgres:MaxLagRecords and MaxLagSeconds must be -1 (the RamPay:Sinks limit), 0 (none) or positive");
        if (Kafka.MaxLagRecords < -1 || Kafka.MaxLagSeconds < -1) throw new OptionsException("RamPay:Kafka:MaxLagRecords and MaxLagSeconds must be -1 (the RamPay:Sinks limit), 0 (none) or positive");
        if (Sinks.DrainTimeoutMs < 0) throw new OptionsException("RamPay:Sinks:DrainTimeoutMs must not be negative");
        if (Kafka.BootstrapServers.Length > 0 && string.IsNullOrWhiteSpace(Kafka.Topic)) throw new OptionsException("RamPay:Kafka:Topic is empty");
        if (Kafka.OpenTimeoutMs < 1 || Kafka.WriteTimeoutMs < 1) throw new OptionsException("RamPay:Kafka:OpenTimeoutMs and WriteTimeoutMs must be positive");
        if (Kafka.BootstrapServers.Length > 0)
        {
            // The sink checks its options when it is made, which is only after the engine has recovered and journaled
            // the bootstrap: checked here, a bad topic name is bad configuration (exit 2) and nothing is written first.
            try
            {
                Kafka.ToSinkOptions("sinks").Validate();
            }
            catch (ArgumentException e)
            {
                throw new OptionsException("RamPay:Kafka: " + e.Message);
            }
        }
        if (RateLimit.TcpCommandsPerSecond < 0 || RateLimit.TcpBurst < 0) throw new OptionsException("RamPay:RateLimit:TcpCommandsPerSecond and TcpBurst must not be negative");
        if (RateLimit.TcpBurst > 0 && RateLimit.TcpBurst < Tcp.MaxCommandsPerBatch)
            throw new OptionsException("RamPay:RateLimit:TcpBurst must be at least RamPay:Tcp:MaxCommandsPerBatch (a full frame must be able to pass), or 0");
        if (Redis.LeaseTtlMs < 300) throw new OptionsException("RamPay:Redis:LeaseTtlMs must be at least 300");
        if (Redis.LeaseSafetyMarginMs < 0 || Redis.LeaseSafetyMarginMs > Redis.LeaseTtlMs / 2) throw new OptionsException("RamPay:Redis:LeaseSafetyMarginMs must be 0..LeaseTtlMs/2");
        if (Redis.TimeoutMs < 1) throw new OptionsException("RamPay:Redis:TimeoutMs must be positive");
        if (Redis.RetryAfterFailureMs < 0) throw new OptionsException("RamPay:Redis:RetryAfterFailureMs must not be negative");
        if (Admin.Password.Length is > 0 and < 8) throw new OptionsException("RamPay:Admin:Password must be at least 8 characters");
        if (!UserProfile.NormalizeEmail(Admin.Email).Contains('@')) throw new OptionsException("RamPay:Admin:Email is not an email address");
        if (!string.Equals(Logging.Format, LoggingSettings.Text, StringComparison.OrdinalIgnoreCase) && !Logging.IsJson)
            throw new OptionsException($"RamPay:Logging:Format must be {LoggingSettings.Text} or {LoggingSettings.Json}, not '{Logging.Format}'");
        Fraud.Validate();
    }
}

public sealed class OptionsException(string message) : Exception(message);
