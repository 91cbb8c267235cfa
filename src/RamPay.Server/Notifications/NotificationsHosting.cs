using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using RamPay.Events;
using RamPay.Notifications;
using RamPay.Server.Events;
using RamPay.Server.Hosting;
using RamPay.Server.Http;

namespace RamPay.Server.Notifications;

/// <summary>
/// The notifications' parts on the embedded default: the store (<c>&lt;data&gt;/notifications</c>: outbox, audit log,
/// preferences) always, so users can set their phone and choices whatever is configured; the consumer and dispatcher
/// when the event log is on and at least one channel (SMTP, SMS) is configured.
/// </summary>
public sealed class NotificationsHolder : IDisposable
{
    private readonly IServer _server;

    public NotificationsHolder(ServerOptions options, DataFolder data, Platform platform, IServer server, ILogger<NotificationDispatcher> logger)
    {
        _server = server;
        Settings = options.Notifications;
        Options = Settings.ToOptions();
        Store = new NotificationStore(data.Notifications);
        // The outbox and audit log: the shared PostgreSQL one when configured (rampay-worker notifications use it too).
        Outbox = Settings.SharedStore.Length > 0 ? new PostgresNotificationOutbox(Settings.SharedStore, Settings.SharedStoreSchema) : Store;
        Directory = new LedgerRecipientDirectory(platform, this);
        if (!(Options.Smtp.Enabled || Options.Sms.Enabled)) return;
        // The dispatcher runs whenever a channel is configured (phone verification codes go through it); the consumer
        // needs the event log too.
        Dispatcher = new NotificationDispatcher(Outbox, Options, logger);
        if (!options.Events.Enabled || !Settings.InServerConsumer) return;
        Consumer = new NotificationConsumer(Outbox, Directory, Options);
        Consumer.Enqueued += Dispatcher.Wake;
    }

    public ServerOptions.NotificationsSettings Settings { get; }
    public NotificationOptions Options { get; }
    /// <summary>Preferences, phone verification, STOP, the unsubscribe secret (and, on the embedded default, the outbox).</summary>
    public NotificationStore Store { get; }
    /// <summary>The outbox and audit log: <see cref="Store"/>, or the shared PostgreSQL outbox (RamPay:Notifications:SharedStore).</summary>
    public INotificationOutbox Outbox { get; }
    public IRecipientDirectory Directory { get; }
    public NotificationConsumer? Consumer { get; }
    public NotificationDispatcher? Dispatcher { get; }

    /// <summary>The secret that signs unsubscribe links (kept in the store: the same across restarts).</summary>
    public string UnsubscribeSecret => _secret ??= Store.Secret("unsubscribe_secret");
    private string? _secret;

    /// <summary>The address people reach the server at: the setting, or the server's own first HTTP address.</summary>
    public string PublicUrl
    {
        get
        {
            if (Settings.PublicUrl.Length > 0) return Settings.PublicUrl.TrimEnd('/');
            var address = _server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "http://localhost:8080";
            return address.Replace("://0.0.0.0:", "://localhost:", StringComparison.Ordinal).Replace("://[::]:", "://localhost:", StringComparison.Ordinal).TrimEnd('/');
        }
    }

    public string UnsubscribeUrl(long user) => $"{PublicUrl}/v1/notifications/unsubscribe?token={Uri.EscapeDataString(UnsubscribeToken.Create(user, UnsubscribeSecret))}";

    /// <summary>The recipient as the consumer needs it: email when on, phone when verified, on and not opted out.</summary>
    public Recipient RecipientOf(long userId, string name, string email)
    {
        var p = Store.Preferences(userId);
        string? phone = p.Sms && p.PhoneVerified && p.Phone is { } ph && !Store.OptedOut(ph) ? ph : null;
        return new Recipient(userId, name, p.Email ? email : null, phone, UnsubscribeUrl(userId));
    }

    public void Dispose()
    {
        Dispatcher?.Dispose();
        if (!ReferenceEquals(Outbox, Store)) Outbox.Dispose();
        Store.Dispose();
    }
}

/// <summary>Recipients from the ledger (name, email) and the preference store.</summary>
public sealed class LedgerRecipientDirectory(Platform platform, NotificationsHolder holder) : IRecipientDirectory
{
    public async ValueTask<Recipient?> FindAsync(long userId, CancellationToken cancellationToken)
    {
        var user = await platform.Engine.QueryAsync(l => l.GetUser(userId));
        return user is null ? null : holder.RecipientOf(userId, user.Name, user.Email);
    }
}

/// <summary>
/// Runs the notification dispatcher from start to stop (the consumer is fed by <see cref="EventConsumersService"/>),
/// and hourly deletes audit rows (email, SMS, webhook deliveries) older than RamPay:Notifications:AuditRetentionDays.
/// </summary>
public sealed class NotificationDispatcherService(NotificationsHolder notifications, WebhooksHolder webhooks, ILogger<NotificationDispatcherService> logger,
    ILogger<EndpointDisabledNotifier> notifierLogger) : LifecycleService
{
    private readonly CancellationTokenSource _stop = new();
    private Task? _run, _prune;

    public override Task StartedAsync(CancellationToken cancellationToken)
    {
        if (notifications.Dispatcher is { } d)
        {
            _run = Task.Run(() => d.RunAsync(_stop.Token));
            if (webhooks.Dispatcher is { } hooks)
            {
                // An endpoint disabled for failing: its owner is told through the outbox (template, retries, audit log).
                var notifier = new EndpointDisabledNotifier(notifications.Outbox, notifications.Directory, notifications.Options, notifierLogger);
                notifier.Enqueued += d.Wake;
                hooks.Disabled += notifier.Handler(webhooks.Options.DisableAfter);
            }
            logger.LogInformation("notifications: email {Email}, sms {Sms}", notifications.Options.Smtp.Enabled ? "on" : "off", notifications.Options.Sms.Enabled ? "on" : "off");
        }
        _prune = Task.Run(() => PruneAsync(_stop.Token));
        return Task.CompletedTask;
    }

    private async Task PruneAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                long before = DateTimeOffset.UtcNow.AddDays(-notifications.Settings.AuditRetentionDays).ToUnixTimeMilliseconds();
                int n = notifications.Outbox.Prune(before) + (webhooks.Store?.PruneFinished(before) ?? 0);
                if (n > 0) logger.LogInformation("notifications audit: {Count} rows past retention deleted", n);
                await Task.Delay(TimeSpan.FromHours(1), stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is System.Data.Common.DbException or IOException)
            {
                logger.LogWarning(e, "notifications audit retention failed; trying again in an hour");
                await Task.Delay(TimeSpan.FromHours(1), stop).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _stop.Cancel();
        foreach (var t in new[] { _run, _prune })
            if (t is not null) await t.WaitAsync(TimeSpan.FromSeconds(35), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
    }
}

public static class NotificationsComposition
{
    /// <summary>Registers <see cref="NotificationsHolder"/> and, when a channel is configured, the consumer (as an <see cref="IEventConsumer"/>).</summary>
    public static IServiceCollection AddRamPayNotifications(this IServiceCollection services, ServerOptions options)
    {
        services.AddSingleton<NotificationsHolder>();
        if (options.Events.Enabled && options.Notifications.InServerConsumer && (options.Notifications.Smtp.Host.Length > 0 || options.Notifications.Sms.Url.Length > 0))
            services.AddSingleton<IEventConsumer>(sp => sp.GetRequiredService<NotificationsHolder>().Consumer!);
        return services;
    }
}
