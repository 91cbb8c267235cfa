using RamPay.Core;

namespace RamPay.Server;

/// <summary>
/// Every setting of the server, bound from the configuration section <c>RamPay</c> (appsettings.json, environment
/// variables <c>RAMPAY_...</c> or <c>RamPay__...</c>, command-line flags). Defaults are the embedded default: a local
/// data folder, loopback ports, no outside server.
/// </summary>
public sealed class ServerOptions
{
    public const string Section = "RamPay";

    /// <summary>Journal and snapshots live here.</summary>
    public string DataDirectory { get; set; } = "rampay-data";
    /// <summary>fdatasync every journal batch. Off only for experiments: an acknowledged command could then be lost.</summary>
    public bool Fsync { get; set; } = true;
    /// <summary>ISO codes the platform holds money in; a funding account is opened for each at first start.</summary>
    public string Currencies { get; set; } = "USD,EUR,GBP";
    /// <summary>The wallet currency of a sign-up that names none.</summary>
    public string DefaultCurrency { get; set; } = "USD";
    /// <summary>The largest single deposit, in minor units (default 1,000,000.00).</summary>
    public long MaxDepositAmount { get; set; } = 100_000_000;
    /// <summary>The most payments in one <c>POST /v1/payments/batch</c>.</summary>
    public int MaxBatchPayments { get; set; } = 100;
    /// <summary>How long a request waits for its command to become durable before it answers 503.</summary>
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

    public sealed class PostgresSettings
    {
        /// <summary>Npgsql connection string of the database the rows go to; empty (the embedded default) = no PostgreSQL sink.</summary>
        public string Connection { get; set; } = "";
    }

    public sealed class KafkaSettings
    {
        /// <summary>Kafka bootstrap servers (host:port,...) the events go to; empty (the embedded default) = no Kafka sink.</summary>
        public string BootstrapServers { get; set; } = "";
        public string Topic { get; set; } = "rampay.events";
        /// <summary>How long the sink waits for the brokers to describe the topic when it (re)connects before it fails and backs off.</summary>
        public int OpenTimeoutMs { get; set; } = 10_000;
        /// <summary>How long one batch may wait for the brokers' acknowledgements before the sink tears its producer down and re-sends from its checkpoint.</summary>
        public int WriteTimeoutMs { get; set; } = 30_000;

        /// <summary>The Kafka sink's options from these settings (one place for <see cref="Validate"/> and the server's start).</summary>
        public RamPay.Kafka.KafkaSinkOptions ToSinkOptions(string checkpointDirectory, Action<string>? log = null) => new()
        {
            BootstrapServers = BootstrapServers,
            Topic = Topic,
            CheckpointDirectory = checkpointDirectory,
            OpenTimeout = TimeSpan.FromMilliseconds(OpenTimeoutMs),
            WriteTimeout = TimeSpan.FromMilliseconds(WriteTimeoutMs),
            Log = log,
        };
    }

    public sealed class SinkSettings
    {
        /// <summary>Past this many journal records behind, ingress holds new commands back (HTTP 503 sinks_lagging, TCP stops reading); 0 = no limit.</summary>
        public long MaxLagRecords { get; set; } = 5_000_000;
        /// <summary>Past this many seconds (journaled time) behind, ingress holds back likewise; 0 = no limit.</summary>
        public int MaxLagSeconds { get; set; } = 300;
        /// <summary>Changes per batch handed to each sink (one PostgreSQL transaction, one Kafka flush).</summary>
        public int BatchChanges { get; set; } = 8192;
        /// <summary>Batches that may wait for a sink before the follower pauses (the journal keeps the rest).</summary>
        public int QueueBatches { get; set; } = 8;
        /// <summary>At a clean stop, how long the sinks may take to catch up with the journal before the process exits anyway.</summary>
        public int DrainTimeoutMs { get; set; } = 10_000;
    }
    public FraudOptions Fraud { get; set; } = new();

    public sealed class HttpSettings
    {
        public string Host { get; set; } = "127.0.0.1";
        /// <summary>0 = any free port (printed at start).</summary>
        public int Port { get; set; } = 8080;
        public int MaxRequestBodyBytes { get; set; } = 1 << 20;
        /// <summary>Cross-origin access for a web app (RamPay:Http:Cors:Origins); off by default.</summary>
        public CorsSettings Cors { get; set; } = new();
    }

    public sealed class CorsSettings
    {
        /// <summary>Comma-separated origins allowed to call the API from a browser (<c>https://app.example.com</c>), or <c>*</c>; empty = CORS off.</summary>
        public string Origins { get; set; } = "";

        public string[] OriginList() => Origins.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    public sealed class TcpSettings
    {
        public string Host { get; set; } = "127.0.0.1";
        /// <summary>0 = any free port (printed at start); -1 = no TCP listener.</summary>
        public int Port { get; set; } = 7070;
        public int MaxCommandsPerBatch { get; set; } = RamPay.Protocol.ProtocolLimits.DefaultMaxCommandsPerBatch;
        /// <summary>Batches one connection may have in flight (read but not yet answered) before the server stops reading it.</summary>
        public int MaxInFlightBatches { get; set; } = 16;
        public int MaxConnections { get; set; } = 1024;
    }

    public sealed class JwtSettings
    {
        /// <summary>HS256 key (at least 32 bytes of UTF-8). Empty = generated at first start and kept in the data folder.</summary>
        public string SigningKey { get; set; } = "";
        public string Issuer { get; set; } = "rampay";
        public string Audience { get; set; } = "rampay";
        public int TokenLifetimeSeconds { get; set; } = 3600;
        /// <summary>How long a log-in can be renewed with refresh tokens (POST /v1/auth/refresh), from the log-in; default 30 days.</summary>
        public int RefreshTokenLifetimeSeconds { get; set; } = 30 * 24 * 3600;
        /// <summary>Live log-in sessions (refresh-token families) kept; past it, the one that expires soonest is dropped.</summary>
        public int MaxRefreshTokens { get; set; } = 100_000;
        /// <summary>Access tokens revoked at logout and not yet expired; past it, logout answers 503.</summary>
        public int MaxRevokedTokens { get; set; } = 100_000;
    }

    public sealed class AuthSettings
    {
        /// <summary>PBKDF2-SHA256 iterations for new password hashes (stored in each hash, so it can change later).</summary>
        public int PasswordHashIterations { get; set; } = 100_000;
    }

    public sealed class AdminSettings
    {
        public string Email { get; set; } = "admin@rampay.local";
        /// <summary>Empty = a random password, printed once at first start.</summary>
        public string Password { get; set; } = "";
        public string Name { get; set; } = "Administrator";
    }

    public sealed class RateLimitSettings
    {
        /// <summary>Sustained HTTP requests per second per user (per client address before login); 0 = no limit.</summary>
        public int RequestsPerSecond { get; set; } = 1_000;
        /// <summary>How many requests a quiet client may send at once.</summary>
        public int Burst { get; set; } = 2_000;
        /// <summary>Sustained commands per second per user over TCP (a frame costs its command count); 0 = no limit (the default).</summary>
        public int TcpCommandsPerSecond { get; set; }
        /// <summary>Commands a quiet TCP user may send at once; 0 = the larger of TcpCommandsPerSecond and Tcp:MaxCommandsPerBatch.</summary>
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
        /// <summary>StackExchange.Redis configuration, e.g. <c>127.0.0.1:6379</c> or <c>host:6379,password=...</c>; empty = no Redis.</summary>
        public string Connection { get; set; } = "";
        /// <summary>Prepended to every key RamPay writes in Redis.</summary>
        public string KeyPrefix { get; set; } = "rampay:";
        /// <summary>Names the journal's writer lease; empty = the data directory's full path. Every process that opens the same journal must use the same name.</summary>
        public string LeaseName { get; set; } = "";
        /// <summary>The writer lease's time to live; renewed every third of it.</summary>
        public int LeaseTtlMs { get; set; } = 5_000;
        /// <summary>The writer stops this long before the lease could expire in Redis (pauses, clock-rate drift); at most half the TTL.</summary>
        public int LeaseSafetyMarginMs { get; set; } = 1_000;
        /// <summary>The longest a rate-limit decision waits for Redis before the in-process limiter decides.</summary>
        public int TimeoutMs { get; set; } = 200;
        /// <summary>After Redis failed a rate-limit call, decisions stay in-process this long before Redis is tried again.</summary>
        public int RetryAfterFailureMs { get; set; } = 1_000;

        public bool Enabled => !string.IsNullOrWhiteSpace(Connection);
    }

    public sealed class EngineSettings
    {
        public int RingSize { get; set; } = 1 << 16;
        public int MaxBatchSize { get; set; } = 4096;
        /// <summary>
        /// A snapshot every this many commands; 0 (the server's default) = only at a clean stop. A snapshot pauses the
        /// writer while it encodes the whole state: measured under TCP load, 23 s at 10 M payments. Until snapshots
        /// are taken off the writer thread, the server replays the journal at start instead (about 7 M commands a
        /// second). Also, a state above 2 GB cannot be snapshotted yet (docs/benchmarks.md).
        /// </summary>
        public long SnapshotEveryCommands { get; set; }
        public int MaxAccounts { get; set; } = 1 << 20;
        public long MaxPayments { get; set; } = 1L << 26;
        public int MaxOpenHolds { get; set; } = 1 << 20;
        public int IdempotencyMaxKeys { get; set; } = RamPay.Engine.EngineOptions.ServerIdempotencyMaxKeys;
        /// <summary>How the pipeline's threads wait for work: SpinThenBlock (lowest latency), SpinThenYield, or Blocking (least CPU when idle).</summary>
        public RamPay.Engine.WaitStrategyKind WaitStrategy { get; set; } = RamPay.Engine.WaitStrategyKind.SpinThenBlock;
    }

    /// <summary>
    /// Fraud scoring in the writer (docs/fraud.md). The effective settings are journaled at start whenever they
    /// differ from the ledger's, so a change takes effect from that point of the journal on and replay stays exact.
    /// </summary>
    public sealed class FraudOptions
    {
        /// <summary>Score every payment (transfer and authorization) before it touches the ledger.</summary>
        public bool Enabled { get; set; } = true;
        /// <summary>A model file written by <c>rampay fraud train</c>; empty = the embedded default model.</summary>
        public string ModelPath { get; set; } = "";
        /// <summary>A score at or above this holds the payment for review (above 1 = never).</summary>
        public double ReviewThreshold { get; set; } = 0.5;
        /// <summary>A score at or above this declines the payment (above 1 = never).</summary>
        public double DeclineThreshold { get; set; } = 0.9;
        /// <summary>Rule: payments of at least this many minor units are held for review (0 = off).</summary>
        public long AmountThreshold { get; set; }
        /// <summary>Rule: a sender's payment beyond this many in 24 hours is declined (0 = off).</summary>
        public int MaxPaymentsPerDay { get; set; }
        /// <summary>Rule: comma-separated account ids whose payments, in or out, are declined.</summary>
        public string BlockedAccounts { get; set; } = "";
        /// <summary>A held transfer not reviewed within this long expires (its hold is released).</summary>
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
        if (Jwt.TokenLifetimeSeconds < 1) throw new OptionsException("RamPay:Jwt:TokenLifetimeSeconds must be positive");
        if (Jwt.SigningKey.Length > 0 && System.Text.Encoding.UTF8.GetByteCount(Jwt.SigningKey) < 32)
            throw new OptionsException("RamPay:Jwt:SigningKey must be at least 32 bytes");
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
        Fraud.Validate();
    }
}

public sealed class OptionsException(string message) : Exception(message);
