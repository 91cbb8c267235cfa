using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Options;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Redis;
using RamPay.Server.Auth;
using RamPay.Server.Events;
using RamPay.Server.Notifications;
using RamPay.Server.Rewards;
using RamPay.Server.Http;
using RamPay.Server.Observability;
using RamPay.Server.Tcp;

namespace RamPay.Server.Hosting;

/// <summary>The server's settings, checked, and the fraud model they name (loaded once).</summary>
public sealed record ServerSettings(ServerOptions Options, FraudConfiguration Fraud)
{
    /// <summary>
    /// Binds and checks <c>RamPay:*</c>. A bad setting is an <see cref="OptionsException"/> that names its key; the
    /// server then stops before anything starts, with exit code 2.
    /// </summary>
    public static ServerSettings Load(IConfiguration configuration)
    {
        var options = new ServerOptions();
        try
        {
            configuration.GetSection(ServerOptions.Section).Bind(options);
        }
        catch (InvalidOperationException e)
        {
            // "Failed to convert configuration value at 'RamPay:Http:Port' to type 'System.Int32'": it names the key.
            throw new OptionsException(e.Message);
        }
        options.Validate();
        return new ServerSettings(options, FraudConfigurationFrom(options.Fraud));
    }

    /// <summary>The fraud settings and model the configuration names; a model file that cannot be read is a configuration error.</summary>
    private static FraudConfiguration FraudConfigurationFrom(ServerOptions.FraudOptions o)
    {
        var settings = o.ToSettings();
        if (!o.Enabled) return new FraudConfiguration { Settings = settings };
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
        return new FraudConfiguration { Settings = settings, Model = model };
    }
}

/// <summary>What <c>Program</c> composes: configuration sources, the HTTP side, and the server's hosted services.</summary>
public static class ServerComposition
{
    /// <summary>
    /// Configuration sources, lowest precedence first: appsettings.json (the builder's), RAMPAY_* and RamPay__*
    /// environment variables, then the command line, whose short flags (<c>--data</c>...) come from <see cref="SettingsCatalog"/>.
    /// </summary>
    public static ConfigurationManager AddServerSources(this ConfigurationManager configuration, string[] args)
    {
        configuration.AddInMemoryCollection(RamPayEnvironment());
        configuration.AddEnvironmentVariables();
        configuration.AddCommandLine(args, SettingsCatalog.Flags());
        return configuration;
    }

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

    /// <summary>Kestrel on the configured address, with the configured body limit.</summary>
    public static IWebHostBuilder UseServerKestrel(this IWebHostBuilder web, ServerOptions options) => web.UseRamPayWebAssets().ConfigureKestrel(k =>
    {
        k.Listen(IPAddress.Parse(options.Http.Host), options.Http.Port);
        k.Limits.MaxRequestBodySize = options.Http.MaxRequestBodyBytes;
        k.AddServerHeader = false;
        // Idempotency-Key and Authorization reach the endpoint whatever their bytes, which refuses bad ones with a JSON error.
        k.RequestHeaderEncodingSelector = RequestText.HeaderEncoding;
    });

    /// <summary>The HTTP API's parts: snake_case JSON, the OpenAPI document.</summary>
    public static IServiceCollection AddRamPayHttp(this IServiceCollection services)
    {
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower);
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(c =>
        {
            c.SwaggerDoc("v1", new() { Title = "RamPay", Version = "v1", Description = "See docs/api.md. Send 'Authorization: Bearer <token>' from POST /v1/auth/token." });
            c.OperationFilter<JsonRequestBodyFilter>();
        });
        services.AddRamPayWebApp();
        return services;
    }

    /// <summary>
    /// The server's own services, and its lifecycle as hosted services. The order of the <c>AddLifecycle</c> lines is
    /// the start order; stop runs in reverse, phase by phase (<see cref="LifecycleService"/>):
    /// <code>
    ///                      start (StartedAsync, after Kestrel listens)   stop
    /// HttpAnnouncement     "http listening on ..."                       (Kestrel stops first: StopAsync, in-flight requests answered)
    /// WriterLeaseService   wait for and take the writer lease (Redis)    StoppedAsync: release it, last of all
    /// EngineService        recover: snapshot + journal replay            StopAsync: drain what was submitted, snapshot
    /// BootstrapService     funding accounts, admin user                  -
    /// SinksService         start the sinks behind the engine             StoppedAsync: catch up with the engine (bounded), then close its cold stores
    /// TcpIngress           listen                                        StopAsync: stop reading, answer what was read
    /// ReadyService         /health/ready 200, "rampay-server: ready"     -
    /// </code>
    /// A fatal fault skips all of the stop column: <see cref="IFatalFaultHandler"/> exits with 70 at once.
    /// Services that need the engine ready (consumers of the journal, say) are registered after this call.
    /// </summary>
    public static IServiceCollection AddRamPayServer(this IServiceCollection services, ServerSettings settings)
    {
        var options = settings.Options;
        services.AddSingleton(options);
        services.AddSingleton(Options.Create(options));
        services.AddSingleton(settings.Fraud);
        services.AddSingleton(sp => new DataFolder(options.DataDirectory));
        services.AddSingleton<IHostLifetime, SignalLifetime>();
        services.AddSingleton<IFatalFaultHandler, ExitingFatalFaultHandler>();
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));

        services.AddSingleton(sp => RedisClient.Connect(options, sp.GetRequiredService<ILogger<RedisClient>>()));
        services.AddSingleton(sp =>
        {
            var fatal = sp.GetRequiredService<IFatalFaultHandler>();
            return new EngineHost(EngineOptionsFrom(options, sp.GetRequiredService<DataFolder>()) with { Fraud = settings.Fraud }, TimeSpan.FromMilliseconds(options.CommandTimeoutMs))
            {
                OnFatal = fault => fatal.Fail("the engine failed", fault),
            };
        });
        // Tokens (the bearer scheme, policies, refresh and revocation), CORS and the HTTP rate limiter: Auth/AuthSetup.cs.
        var data = new DataFolder(options.DataDirectory);
        Directory.CreateDirectory(data.Root);
        services.AddRamPayAuth(options, data, sp => Limiter(sp, options, "http", options.RateLimit.RequestsPerSecond, options.RateLimit.Burst));
        services.AddSingleton(sp => new Platform(sp.GetRequiredService<EngineHost>(), options, sp.GetRequiredService<TokenService>(),
            Limiter(sp, options, "tcp", options.RateLimit.TcpCommandsPerSecond, options.RateLimit.EffectiveTcpBurst(options.Tcp.MaxCommandsPerBatch))));
        services.AddSingleton<HealthEndpoint>();
        services.AddRamPayEvents(); // the event log, events API, consumers (src/RamPay.Server/Events)
        services.AddRamPayWebhooks(options); // webhook endpoints, outbox and dispatcher (src/RamPay.Webhooks)
        services.AddRamPayNotifications(options); // email/SMS notifications, preferences, audit log (src/RamPay.Server/Notifications)

        services.AddLifecycle<HttpAnnouncement>();
        services.AddLifecycle<WriterLeaseService>();
        services.AddLifecycle<EngineService>();
        services.AddLifecycle<BootstrapService>();
        services.AddRamPayRewards(options); // rewards accounts, rewards and analytics consumers (src/RamPay.Server/Rewards)
        services.AddLifecycle<SinksService>();
        services.AddLifecycle<JournalRetirementService>();
        services.AddLifecycle<EventConsumersService>(); // in-server event consumers, fed from the event log
        services.AddLifecycle<WebhookDispatcherService>(); // sends the webhook outbox
        services.AddLifecycle<Notifications.NotificationDispatcherService>(); // sends the email/SMS outbox, audit retention
        services.AddLifecycle<TcpIngress>();
        services.AddLifecycle<ReadyService>();
        return services;
    }

    /// <summary>Registers <typeparamref name="T"/> once, as itself (others read its state) and as a hosted service.</summary>
    public static IServiceCollection AddLifecycle<T>(this IServiceCollection services) where T : class, IHostedService
    {
        services.AddSingleton<T>();
        services.AddHostedService(sp => sp.GetRequiredService<T>());
        return services;
    }

    /// <summary>
    /// A rate limiter: in-process without Redis; with Redis, one bucket per key shared by every server on that
    /// Redis, falling back to the in-process one (fail open) while Redis does not answer.
    /// </summary>
    private static IRateLimiter Limiter(IServiceProvider services, ServerOptions options, string name, int ratePerSecond, int burst)
    {
        var redis = services.GetRequiredService<RedisClient>().Connection;
        var logger = services.GetRequiredService<ILogger<RedisRateLimiter>>();
        var local = new InProcessRateLimiter(ratePerSecond, burst);
        if (redis is null || !local.Enabled) return local;
        return new RedisRateLimiter(redis, $"{options.Redis.KeyPrefix}rl:{name}:", local,
            TimeSpan.FromMilliseconds(options.Redis.TimeoutMs), TimeSpan.FromMilliseconds(options.Redis.RetryAfterFailureMs),
            logger, name + " rate limit");
    }

    public static EngineOptions EngineOptionsFrom(ServerOptions o, DataFolder data) => new()
    {
        DataDirectory = data.Root,
        JournalDirectory = data.Journal,
        SnapshotDirectory = data.Snapshots,
        ColdDirectory = data.Cold,
        Fsync = o.Fsync,
        RingSize = o.Engine.RingSize,
        MaxBatchSize = o.Engine.MaxBatchSize,
        SnapshotEveryCommands = o.Engine.SnapshotEveryCommands,
        SnapshotEveryMs = o.Engine.SnapshotEveryMs,
        SnapshotOffWriter = o.Engine.SnapshotOffWriter,
        // The sinks' replica follows the payment log (rules 3) instead of keeping every payment; SinksService releases it without sinks.
        SinksFollowPaymentLog = true,
        WaitStrategy = o.Engine.WaitStrategy,
        // Rules version 3 by default: a data folder under older rules journals the upgrade point at its first start.
        RulesVersion = o.Engine.RulesVersion,
        IdempotencyKeyBudget = o.Engine.IdempotencyKeyBudget,
        ColdTier = o.Engine.RulesVersion >= 2 ? ColdTierFrom(o) : null,
        Ledger = new LedgerOptions
        {
            MaxAccounts = o.Engine.MaxAccounts,
            MaxPayments = o.Engine.MaxPayments,
            InitialPaymentCapacity = Math.Min(new LedgerOptions().InitialPaymentCapacity, o.Engine.MaxPayments),
            MaxOpenHolds = o.Engine.MaxOpenHolds,
            IdempotencyMaxKeys = o.Engine.IdempotencyMaxKeys,
        },
    };

    /// <summary>The cold tier of idempotency keys the settings ask for (null = off: every key of the window in memory).</summary>
    public static ColdTierOptions? ColdTierFrom(ServerOptions o) => !o.Engine.ColdTier.Enabled ? null : new ColdTierOptions
    {
        Directory = string.IsNullOrWhiteSpace(o.Engine.ColdTier.Directory) ? null : o.Engine.ColdTier.Directory,
        HotMaxKeys = o.Engine.ColdTier.HotMaxKeys,
        GenerationCommands = o.Engine.ColdTier.GenerationCommands,
        KeyCapacity = o.Engine.ColdTier.KeyCapacity,
        SegmentKeys = o.Engine.ColdTier.SegmentKeys,
        Payments = o.Engine.RulesVersion < RamPay.Core.Ledger.PaymentsUnboundedRulesVersion || !o.Engine.ColdTier.PaymentsEnabled ? null : new ColdPaymentOptions
        {
            Directory = string.IsNullOrWhiteSpace(o.Engine.ColdTier.PaymentsDirectory) ? null : o.Engine.ColdTier.PaymentsDirectory,
            HotPayments = o.Engine.ColdTier.HotPayments,
            ChunkShift = o.Engine.ColdTier.PaymentChunkShift,
            SegmentBytes = o.Engine.ColdTier.PaymentSegmentBytes,
        },
    };

    /// <summary>The HTTP pipeline: error handling, the OpenAPI document and UI, the routes, health and metrics.</summary>
    public static WebApplication UseRamPayHttp(this WebApplication app)
    {
        app.Use(ErrorHandling.Middleware);
        app.UseRamPayWebApp();
        app.UseRamPayAuth();
        // The OpenAPI document and its UI only on their own paths: as plain middleware they were two more async layers
        // that every API request passed through and resumed (docs/benchmarks.md, "The host alone").
        app.UseWhen(static ctx => ctx.Request.Path.StartsWithSegments("/swagger"), static swagger => swagger.UseSwagger().UseSwaggerUI());
        var services = app.Services;
        Routes.Map(app, new Api(services.GetRequiredService<Platform>()), services.GetRequiredService<HealthEndpoint>().Ready);
        var metrics = new Metrics(services.GetRequiredService<EngineHost>(), () => services.GetRequiredService<SinksService>().Hub);
        app.Lifetime.ApplicationStopped.Register(metrics.Dispose);
        app.MapRamPayMetrics();
        return app;
    }
}
