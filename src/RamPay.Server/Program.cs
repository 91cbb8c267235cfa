using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Kafka;
using RamPay.Postgres;
using RamPay.Redis;
using RamPay.Sinks;
using RamPay.Server.Auth;
using RamPay.Server.Hosting;
using RamPay.Server.Http;
using RamPay.Server.Tcp;

namespace RamPay.Server;

public static class Program
{
    private const string Prefix = "rampay-server: ";

    /// <summary>Friendly flags and the configuration keys they set (any key can also be given as --RamPay:Section:Key=value).</summary>
    private static readonly Dictionary<string, string> Flags = new()
    {
        ["--data"] = "RamPay:DataDirectory",
        ["--http-port"] = "RamPay:Http:Port",
        ["--tcp-port"] = "RamPay:Tcp:Port",
        ["--host"] = "RamPay:Http:Host",
        ["--tcp-host"] = "RamPay:Tcp:Host",
        ["--fsync"] = "RamPay:Fsync",
        ["--admin-email"] = "RamPay:Admin:Email",
        ["--admin-password"] = "RamPay:Admin:Password",
        ["--redis"] = "RamPay:Redis:Connection",
        ["--fraud"] = "RamPay:Fraud:Enabled",
        ["--fraud-model"] = "RamPay:Fraud:ModelPath",
    };

    public static async Task<int> Main(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine(Help);
            return 0;
        }
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        // Precedence, lowest first: appsettings.json, RAMPAY_* and RamPay__* environment variables, then flags.
        builder.Configuration.AddInMemoryCollection(RamPayEnvironment());
        builder.Configuration.AddEnvironmentVariables();
        builder.Configuration.AddCommandLine(args, Flags);
        var options = new ServerOptions();
        builder.Configuration.GetSection(ServerOptions.Section).Bind(options);
        RamPay.Engine.FraudConfiguration fraud;
        try
        {
            options.Validate();
            fraud = FraudConfigurationFrom(options.Fraud);
        }
        catch (OptionsException e)
        {
            await Console.Error.WriteLineAsync(Prefix + "bad configuration: " + e.Message);
            return 2;
        }

        var logging = builder.Logging;
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Parse(options.Http.Host), options.Http.Port);
            k.Limits.MaxRequestBodySize = options.Http.MaxRequestBodyBytes;
            k.AddServerHeader = false;
        });
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower);
        builder.Services.AddEndpointsApiExplorer();
        builder.Services.AddSwaggerGen(c =>
        {
            c.SwaggerDoc("v1", new() { Title = "RamPay", Version = "v1", Description = "See docs/api.md. Send 'Authorization: Bearer <token>' from POST /v1/auth/token." });
            c.OperationFilter<JsonRequestBodyFilter>();
        });

        string dataDirectory = Path.GetFullPath(options.DataDirectory);
        using var engine = new EngineHost(EngineOptionsFrom(options, dataDirectory) with { Fraud = fraud }, TimeSpan.FromMilliseconds(options.CommandTimeoutMs));
        // Redis (optional): shared rate limits and the writer lease. Connecting does not wait for Redis to be up.
        StackExchange.Redis.ConnectionMultiplexer? redis = null;
        if (options.Redis.Enabled)
        {
            redis = await RedisConnection.ConnectAsync(options.Redis.Connection, TimeSpan.FromSeconds(5), "rampay-server");
            Console.WriteLine($"{Prefix}redis {options.Redis.Connection}: {(redis.IsConnected ? "connected" : "not reachable yet (retrying)")}");
        }
        var tokens = builder.Services.AddRamPayAuth(options, dataDirectory, Limiter(redis, options, "http", options.RateLimit.RequestsPerSecond, options.RateLimit.Burst));
        var platform = new Platform(engine, options, tokens,
            Limiter(redis, options, "tcp", options.RateLimit.TcpCommandsPerSecond, options.RateLimit.EffectiveTcpBurst(options.Tcp.MaxCommandsPerBatch)));
        engine.OnFatal = fault =>
        {
            Console.Error.WriteLine(Prefix + "FATAL: the engine failed; stopping so that a restart replays the journal.\n" + fault);
            Environment.Exit(70);
        };

        var app = builder.Build();
        app.Use(ErrorHandling.Middleware);
        app.UseRamPayAuth();
        app.UseSwagger();
        app.UseSwaggerUI();
        SinkHub? sinks = null;
        using var metrics = new Metrics(engine, () => sinks);
        Routes.Map(app, new Api(platform), ctx => Ready(ctx, engine, sinks));
        app.MapGet("/metrics", () => Results.Text(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8")).WithTags("health");

        try
        {
            await app.StartAsync();
        }
        catch (IOException e)
        {
            await Console.Error.WriteLineAsync($"{Prefix}cannot listen for HTTP on {options.Http.Host}:{options.Http.Port}: {e.Message}");
            return 1;
        }
        foreach (var address in app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses)
            Console.WriteLine(Prefix + "http listening on " + address);

        // With Redis, only the holder of the journal's writer lease may open it: wait for it (SIGTERM ends the wait).
        RedisWriterLease? lease = null;
        if (redis is not null)
        {
            try
            {
                lease = await RedisWriterLease.AcquireAsync(redis, LeaseOptions(options, dataDirectory), message => Console.WriteLine(Prefix + message), app.Lifetime.ApplicationStopping);
            }
            catch (OperationCanceledException)
            {
                await app.StopAsync();
                Console.WriteLine(Prefix + "stopped before taking the writer lease");
                return 0;
            }
            catch (StaleFencingTokenException e)
            {
                await Console.Error.WriteLineAsync(Prefix + "refusing to start: " + e.Message);
                await app.StopAsync();
                return 1;
            }
            lease.Lost = reason =>
            {
                Console.Error.WriteLine(Prefix + "FATAL: lost the writer lease; stopping at once so that nothing more is written: " + reason);
                Environment.Exit(70);
            };
            Console.WriteLine($"{Prefix}writer lease {lease.Key}: fencing token {lease.Token}");
        }

        TcpIngress? tcp = null;
        try
        {
            await engine.StartAsync(lease);
            var recovery = engine.Recovery!;
            Console.WriteLine($"{Prefix}recovered: snapshot at {recovery.SnapshotSequence}, {recovery.RecordsReplayed} records replayed, last sequence {recovery.LastSequence}, {recovery.Elapsed.TotalMilliseconds:0} ms");
            foreach (var warning in recovery.Warnings) Console.WriteLine(Prefix + "recovery warning: " + warning);
            await UserService.BootstrapAsync(platform, message => Console.WriteLine(Prefix + message));
            sinks = StartSinks(options, engine, dataDirectory);
            if (options.Tcp.Port >= 0)
            {
                tcp = new TcpIngress(platform, app.Services.GetRequiredService<ILoggerFactory>().CreateLogger<TcpIngress>());
                tcp.Start(new IPEndPoint(IPAddress.Parse(options.Tcp.Host), options.Tcp.Port));
                Console.WriteLine($"{Prefix}tcp listening on {tcp.LocalEndPoint}");
            }
            Console.WriteLine(fraud.Settings.Enabled
                ? $"{Prefix}fraud scoring on: model {fraud.Model!.Version} ({fraud.Model.Sha256Hex[..16]}), review at {options.Fraud.ReviewThreshold}, decline at {options.Fraud.DeclineThreshold}"
                : $"{Prefix}fraud scoring off");
            engine.MarkReady();
            Console.WriteLine($"{Prefix}ready: data {dataDirectory}, journal sequence {engine.CompletedSequence}");
        }
        catch (Exception e)
        {
            await Console.Error.WriteLineAsync(Prefix + "start-up failed: " + e);
            if (tcp is not null) await tcp.StopAsync();
            await app.StopAsync();
            if (lease is not null)
            {
                try { engine.Stop(); } catch (Exception stop) { await Console.Error.WriteLineAsync(Prefix + "stopping the engine failed: " + stop.Message); }
                await lease.ReleaseAsync();
            }
            return 1;
        }

        await app.WaitForShutdownAsync();
        // Listeners first, so nothing new arrives while the engine drains what it has.
        if (tcp is not null) await tcp.StopAsync();
        try
        {
            engine.Stop();
        }
        catch (Exception e)
        {
            // E.g. the writer lease was lost during the drain: the fence refused the last writes (and the snapshot).
            await Console.Error.WriteLineAsync(Prefix + "FATAL: the engine failed while stopping; a restart replays the journal.\n" + e);
            return 70;
        }
        if (sinks is not null)
        {
            // The engine has stopped: let the sinks reach its last durable record (bounded), so a clean stop leaves
            // the database and the topic complete. A sink that is down resumes from its checkpoint at the next start.
            sinks.Stop(TimeSpan.FromMilliseconds(options.Sinks.DrainTimeoutMs));
            foreach (var sink in sinks.Sinks) Console.WriteLine($"{Prefix}sink {sink.Name} stopped at journal sequence {sink.Checkpoint.Sequence} of {engine.CompletedSequence}");
            sinks.Dispose();
        }
        // Only after the last write (the sinks' too): a process waiting for the lease takes over at once.
        if (lease is not null) await lease.ReleaseAsync();
        redis?.Dispose();
        Console.WriteLine(Prefix + "stopped cleanly");
        return 0;
    }

    /// <summary>
    /// A rate limiter: in-process without Redis; with Redis, one bucket per key shared by every server on that
    /// Redis, falling back to the in-process one (fail open) while Redis does not answer.
    /// </summary>
    private static IRateLimiter Limiter(StackExchange.Redis.IConnectionMultiplexer? redis, ServerOptions options, string name, int ratePerSecond, int burst)
    {
        var local = new InProcessRateLimiter(ratePerSecond, burst);
        if (redis is null || !local.Enabled) return local;
        return new RedisRateLimiter(redis, $"{options.Redis.KeyPrefix}rl:{name}:", local,
            TimeSpan.FromMilliseconds(options.Redis.TimeoutMs), TimeSpan.FromMilliseconds(options.Redis.RetryAfterFailureMs),
            message => Console.Error.WriteLine(Prefix + message), name + " rate limit");
    }

    private static WriterLeaseOptions LeaseOptions(ServerOptions o, string dataDirectory) => new()
    {
        Key = o.Redis.LeaseName.Length > 0 ? o.Redis.KeyPrefix + "writer-lease:" + o.Redis.LeaseName : RedisWriterLease.DefaultKey(o.Redis.KeyPrefix, dataDirectory),
        Ttl = TimeSpan.FromMilliseconds(o.Redis.LeaseTtlMs),
        SafetyMargin = TimeSpan.FromMilliseconds(o.Redis.LeaseSafetyMarginMs),
        RedisTimeout = TimeSpan.FromMilliseconds(Math.Min(1_000, o.Redis.LeaseTtlMs / 3)),
        FenceFile = FencingTokenFile.PathIn(dataDirectory),
    };

    /// <summary><c>RAMPAY_HTTP__PORT=8081</c> is <c>RamPay:Http:Port</c>; the ASP.NET form <c>RamPay__Http__Port</c> works as well.</summary>
    private static Dictionary<string, string?> RamPayEnvironment()
    {
        var map = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            string name = (string)e.Key;
            if (name.StartsWith("RAMPAY_", StringComparison.Ordinal) && name.Length > 7)
                map[ServerOptions.Section + ":" + name[7..].Replace("__", ":", StringComparison.Ordinal)] = (string?)e.Value;
        }
        return map;
    }

    /// <summary>The fraud settings and model the configuration names; a model file that cannot be read is a configuration error.</summary>
    private static RamPay.Engine.FraudConfiguration FraudConfigurationFrom(ServerOptions.FraudOptions o)
    {
        var settings = o.ToSettings();
        if (!o.Enabled) return new RamPay.Engine.FraudConfiguration { Settings = settings };
        RamPay.Fraud.FraudModel model;
        try
        {
            model = string.IsNullOrWhiteSpace(o.ModelPath) ? RamPay.Fraud.FraudModel.Default : RamPay.Fraud.FraudModel.Load(o.ModelPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new OptionsException($"RamPay:Fraud:ModelPath: cannot load '{o.ModelPath}': {e.Message}");
        }
        if (!model.FitsFeatureSchema)
            throw new OptionsException($"RamPay:Fraud:ModelPath: the model reads feature schema '{model.SchemaId}', not {RamPay.Fraud.Features.SchemaId}");
        return new RamPay.Engine.FraudConfiguration { Settings = settings, Model = model };
    }

    private static EngineOptions EngineOptionsFrom(ServerOptions o, string dataDirectory) => new()
    {
        DataDirectory = dataDirectory,
        Fsync = o.Fsync,
        RingSize = o.Engine.RingSize,
        MaxBatchSize = o.Engine.MaxBatchSize,
        SnapshotEveryCommands = o.Engine.SnapshotEveryCommands,
        WaitStrategy = o.Engine.WaitStrategy,
        Ledger = new LedgerOptions
        {
            MaxAccounts = o.Engine.MaxAccounts,
            MaxPayments = o.Engine.MaxPayments,
            InitialPaymentCapacity = Math.Min(new LedgerOptions().InitialPaymentCapacity, o.Engine.MaxPayments),
            MaxOpenHolds = o.Engine.MaxOpenHolds,
            IdempotencyMaxKeys = o.Engine.IdempotencyMaxKeys,
        },
    };

    /// <summary>Starts the configured sinks (none on the embedded default) behind the engine, and ingress back-pressure on their lag.</summary>
    private static SinkHub? StartSinks(ServerOptions options, EngineHost engine, string dataDirectory)
    {
        var list = new List<IChangeSink>();
        if (options.Postgres.Connection.Length > 0) list.Add(new PostgresSink(options.Postgres.Connection));
        if (options.Kafka.BootstrapServers.Length > 0)
        {
            list.Add(new KafkaEventSink(options.Kafka.ToSinkOptions(Path.Combine(dataDirectory, "sinks"), message => Console.Error.WriteLine(Prefix + "kafka: " + message))));
        }
        if (list.Count == 0) return null;
        var engineOptions = EngineOptionsFrom(options, dataDirectory);
        var hub = new SinkHub(new SinkHubOptions
        {
            SnapshotDirectory = engineOptions.SnapshotDirectory,
            JournalDirectory = engineOptions.JournalDirectory,
            StateDirectory = Path.Combine(dataDirectory, "sinks"),
            Ledger = engineOptions.Ledger,
            BatchChanges = options.Sinks.BatchChanges,
            QueueBatches = options.Sinks.QueueBatches,
            MaxLagRecords = options.Sinks.MaxLagRecords,
            MaxLagSeconds = options.Sinks.MaxLagSeconds,
        }, list, () => engine.CompletedSequence, () => engine.CompletedTimestampMs);
        hub.Start();
        engine.BackPressure = () => hub.IsOverLagLimit(out string reason) ? reason : null;
        Console.WriteLine($"{Prefix}sinks: {string.Join(", ", list.Select(s => s.Name))} (follower starts once each reports its checkpoint)");
        return hub;
    }

    private static async Task Ready(HttpContext ctx, EngineHost engine, SinkHub? sinks)
    {
        var state = engine.State;
        (int Accounts, long Payments) counts = default;
        if (state == EngineState.Ready) counts = await engine.QueryAsync(l => (l.AccountCount, l.PaymentCount));
        await JsonOut.Write(ctx, state == EngineState.Ready ? 200 : 503, w =>
        {
            w.WriteStartObject();
            w.WriteString("status", state switch { EngineState.Ready => "ready", EngineState.Starting => "starting", EngineState.Failed => "failed", _ => "stopping" });
            if (state == EngineState.Ready)
            {
                w.WriteNumber("journal_sequence", engine.CompletedSequence);
                w.WriteNumber("accounts", counts.Accounts);
                w.WriteNumber("payments", counts.Payments);
            }
            if (state == EngineState.Failed) w.WriteString("error", engine.Failure?.Message);
            if (sinks is not null) WriteSinks(w, sinks);
            w.WriteEndObject();
        });
    }

    /// <summary>The sinks' detail in /health/ready: readiness does not depend on them (the journal is the truth), lag is reported.</summary>
    private static void WriteSinks(System.Text.Json.Utf8JsonWriter w, SinkHub hub)
    {
        long head = hub.HeadSequence, headMs = hub.HeadTimestampMs;
        w.WriteStartObject("sinks");
        w.WriteBoolean("backpressure", hub.IsOverLagLimit(out string reason));
        if (reason.Length > 0) w.WriteString("backpressure_reason", reason);
        w.WriteNumber("follower_sequence", hub.FollowerSequence);
        if (hub.FollowerError is { } followerError) w.WriteString("follower_error", followerError);
        foreach (var sink in hub.Sinks)
        {
            var lag = sink.Lag(head, headMs);
            w.WriteStartObject(sink.Name);
            // A failed follower stops every sink: say so on each, not only at the top.
            w.WriteString("status", sink.Error is { Fatal: true } || hub.FollowerError is not null ? "failed" : !sink.Opened ? "connecting" : sink.Connected ? "ok" : "retrying");
            w.WriteNumber("checkpoint", sink.Checkpoint.Sequence);
            w.WriteNumber("lag_records", lag.Records);
            if (double.IsFinite(lag.Seconds)) w.WriteNumber("lag_seconds", Math.Round(lag.Seconds, 3)); else w.WriteNull("lag_seconds");
            w.WriteNumber("changes_written", sink.ChangesWritten);
            w.WriteNumber("failures", sink.Failures);
            if (sink.Error is { } error) w.WriteString("last_error", error.Message);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    private const string Help = """
        rampay-server: the RamPay payment server (HTTP JSON API and binary TCP protocol) on an embedded journal.

        Usage: rampay-server [flags] [--RamPay:Section:Key=value ...]

        Flags:
          --data <dir>              journal and snapshots (RamPay:DataDirectory, default ./rampay-data)
          --host <addr>             HTTP address (RamPay:Http:Host, default 127.0.0.1)
          --http-port <n>           HTTP port, 0 = any free port (RamPay:Http:Port, default 8080)
          --tcp-host <addr>         TCP address (RamPay:Tcp:Host, default 127.0.0.1)
          --tcp-port <n>            TCP port, 0 = any free port, -1 = none (RamPay:Tcp:Port, default 7070)
          --fsync <true|false>      fdatasync every journal batch (RamPay:Fsync, default true)
          --admin-email <email>     the admin created at first start (RamPay:Admin:Email)
          --admin-password <pw>     their password (RamPay:Admin:Password; empty = random, printed once)
          --redis <host:port>       Redis shared by several servers (RamPay:Redis:Connection; default none): rate limits
                                    per user shared by all of them, and a writer lease on the journal, so a second server
                                    on the same data waits ("waiting for the writer lease ... held by ...") until the
                                    first stops or its lease expires, then takes over
          --fraud <true|false>      score every payment for fraud (RamPay:Fraud:Enabled, default true)
          --fraud-model <file>      a model from 'rampay fraud train' (RamPay:Fraud:ModelPath, default: the embedded model)
          -h, --help                this text

        Every setting (README.md lists them all) can also come from appsettings.json, from environment variables
        RAMPAY_SECTION__KEY or RamPay__Section__Key, or from --RamPay:Section:Key=value. With none of the outside
        servers configured (the default) it needs nothing but its data folder; --RamPay:Postgres:Connection=<npgsql
        connection string> adds the PostgreSQL sink (rows), --RamPay:Kafka:BootstrapServers=<host:port> the Kafka sink
        (events, topic RamPay:Kafka:Topic); /metrics and /health/ready report their lag.
        Fraud thresholds and rules: RamPay:Fraud:ReviewThreshold (0.5), DeclineThreshold (0.9), AmountThreshold,
        MaxPaymentsPerDay, BlockedAccounts, ReviewTimeoutMs (docs/fraud.md).
        On start it prints "rampay-server: http listening on ...", "rampay-server: tcp listening on ..." and
        "rampay-server: ready ..."; Ctrl-C or SIGTERM stops it cleanly (listeners, then the engine, then a snapshot,
        then the sinks catch up, then the writer lease is released). Exit codes: 0 clean stop, 1 start-up failed, 2 bad configuration,
        70 the engine failed or the writer lease was lost (a restart replays the journal).
        """;
}
