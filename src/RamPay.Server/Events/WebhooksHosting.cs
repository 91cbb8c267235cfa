using RamPay.Events;
using RamPay.Server.Hosting;
using RamPay.Webhooks;

namespace RamPay.Server.Events;

/// <summary>The webhooks' store, consumer and dispatcher on the embedded default (<c>&lt;data&gt;/webhooks</c>); all null when off.</summary>
public sealed class WebhooksHolder : IDisposable
{
    public WebhooksHolder(ServerOptions options, DataFolder data, ILogger<WebhookDispatcher> logger)
    {
        Options = options.Webhooks.ToOptions();
        Guard = new UrlGuard(options.Webhooks.AllowPrivateNetworks);
        if (!options.Webhooks.Enabled || !options.Events.Enabled) return;
        // The shared PostgreSQL store when configured (rampay-worker webhooks processes use the same one), else SQLite.
        Store = options.Webhooks.SharedStore.Length > 0
            ? new PostgresWebhookStore(options.Webhooks.SharedStore, options.Webhooks.SharedStoreSchema)
            : new WebhookStore(data.Webhooks);
        if (!options.Webhooks.InServer) return; // rampay-worker webhooks processes consume and deliver (docs/webhooks.md, "Workers")
        Consumer = new WebhookConsumer(Store);
        Dispatcher = new WebhookDispatcher(Store, Options, Guard, logger);
        Consumer.Enqueued += Dispatcher.Wake;
    }

    public WebhookOptions Options { get; }
    public UrlGuard Guard { get; }
    public IWebhookStore? Store { get; }
    public WebhookConsumer? Consumer { get; }
    public WebhookDispatcher? Dispatcher { get; }

    public void Dispose()
    {
        Dispatcher?.Dispose();
        Store?.Dispose();
    }
}

/// <summary>Runs the webhook dispatcher from start to stop (the consumer is fed by <see cref="EventConsumersService"/>).</summary>
public sealed class WebhookDispatcherService(WebhooksHolder webhooks) : LifecycleService
{
    private readonly CancellationTokenSource _stop = new();
    private Task? _run;

    public override Task StartedAsync(CancellationToken cancellationToken)
    {
        if (webhooks.Dispatcher is { } d) _run = Task.Run(() => d.RunAsync(_stop.Token));
        return Task.CompletedTask;
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _stop.Cancel();
        if (_run is { } run) await run.WaitAsync(TimeSpan.FromSeconds(15), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
    }
}

/// <summary>Registers the webhooks' parts: <see cref="WebhooksHolder"/>, the consumer (as an <see cref="IEventConsumer"/>) and the dispatcher's service.</summary>
public static class WebhooksComposition
{
    public static IServiceCollection AddRamPayWebhooks(this IServiceCollection services, ServerOptions options)
    {
        services.AddSingleton<WebhooksHolder>();
        if (options.Webhooks.Enabled && options.Events.Enabled && options.Webhooks.InServer)
            services.AddSingleton<IEventConsumer>(sp => sp.GetRequiredService<WebhooksHolder>().Consumer!);
        return services;
    }
}
