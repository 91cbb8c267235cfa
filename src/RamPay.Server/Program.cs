using RamPay.Server.Hosting;
using RamPay.Server.Observability;

namespace RamPay.Server;

/// <summary>
/// The composition root. Settings are read and checked first (a bad one: exit 2); then the HTTP side and the server's
/// services are registered, and the host runs them: its start and stop order is written once, in
/// <see cref="ServerComposition.AddRamPayServer"/>.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.Out.Write(SettingsCatalog.Help());
            return ServerRun.CleanStop;
        }
        if (HealthCheckCommand.Requested(args)) return await HealthCheckCommand.RunAsync(args); // the image's HEALTHCHECK
        var app = Compose(args, out int refused);
        return app is null ? refused : await ServerRun.RunAsync(app);
    }

    /// <summary>The server, composed and not started; null (and the exit code) when a setting is bad.</summary>
    /// <param name="adjust">Tests only: a last change to the builder (a log recorder, say).</param>
    public static WebApplication? Compose(string[] args, out int exitCode, Action<WebApplicationBuilder>? adjust = null)
    {
        exitCode = ServerRun.CleanStop;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddServerSources(args);
        ServerSettings settings;
        try
        {
            settings = ServerSettings.Load(builder.Configuration);
            builder.Services.AddRamPayObservability(builder.Configuration);
        }
        catch (OptionsException e)
        {
            using var log = ServerLogging.CreateStartupLoggerFactory(json: string.Equals(builder.Configuration["RamPay:Logging:Format"], "json", StringComparison.OrdinalIgnoreCase));
            log.CreateLogger("RamPay.Server").LogError("bad configuration: {Reason}", e.Message);
            exitCode = ServerRun.BadConfiguration;
            return null;
        }

        builder.Logging.AddServerConsole(json: settings.Options.Logging.IsJson);
        builder.WebHost.UseServerKestrel(settings.Options);
        builder.Services.AddRamPayHttp();
        builder.Services.AddRamPayServer(settings);
        // Further parts register here, one line each: builder.Services.AddRamPayX(settings.Options);
        adjust?.Invoke(builder);

        var app = builder.Build();
        app.UseRamPayHttp();
        return app;
    }
}
