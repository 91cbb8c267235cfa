using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using RamPay.Core;
using RamPay.Engine;
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
        var jwt = new Jwt(Jwt.LoadOrCreateKey(options.Jwt.SigningKey, dataDirectory), options.Jwt.Issuer, options.Jwt.Audience, options.Jwt.TokenLifetimeSeconds);
        using var engine = new EngineHost(EngineOptionsFrom(options, dataDirectory) with { Fraud = fraud }, TimeSpan.FromMilliseconds(options.CommandTimeoutMs));
        var platform = new Platform(engine, options, jwt, new RateLimiter(options.RateLimit.RequestsPerSecond, options.RateLimit.Burst));
        engine.OnFatal = fault =>
        {
            Console.Error.WriteLine(Prefix + "FATAL: the engine failed; stopping so that a restart replays the journal.\n" + fault);
            Environment.Exit(70);
        };

        var app = builder.Build();
        app.Use(ErrorHandling.Middleware);
        app.UseSwagger();
        app.UseSwaggerUI();
        Routes.Map(app, new Api(platform), ctx => Ready(ctx, engine));

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

        TcpIngress? tcp = null;
        try
        {
            await engine.StartAsync();
            var recovery = engine.Recovery!;
            Console.WriteLine($"{Prefix}recovered: snapshot at {recovery.SnapshotSequence}, {recovery.RecordsReplayed} records replayed, last sequence {recovery.LastSequence}, {recovery.Elapsed.TotalMilliseconds:0} ms");
            foreach (var warning in recovery.Warnings) Console.WriteLine(Prefix + "recovery warning: " + warning);
            await UserService.BootstrapAsync(platform, message => Console.WriteLine(Prefix + message));
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
            return 1;
        }

        await app.WaitForShutdownAsync();
        // Listeners first, so nothing new arrives while the engine drains what it has.
        if (tcp is not null) await tcp.StopAsync();
        engine.Stop();
        Console.WriteLine(Prefix + "stopped cleanly");
        return 0;
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

    private static async Task Ready(HttpContext ctx, EngineHost engine)
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
            w.WriteEndObject();
        });
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
          --fraud <true|false>      score every payment for fraud (RamPay:Fraud:Enabled, default true)
          --fraud-model <file>      a model from 'rampay fraud train' (RamPay:Fraud:ModelPath, default: the embedded model)
          -h, --help                this text

        Every setting (README.md lists them all) can also come from appsettings.json, from environment variables
        RAMPAY_SECTION__KEY or RamPay__Section__Key, or from --RamPay:Section:Key=value.
        Fraud thresholds and rules: RamPay:Fraud:ReviewThreshold (0.5), DeclineThreshold (0.9), AmountThreshold,
        MaxPaymentsPerDay, BlockedAccounts, ReviewTimeoutMs (docs/fraud.md).
        On start it prints "rampay-server: http listening on ...", "rampay-server: tcp listening on ..." and
        "rampay-server: ready ..."; Ctrl-C or SIGTERM stops it cleanly (listeners, then the engine, then a snapshot).
        """;
}
