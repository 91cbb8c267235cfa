using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RamPay.Webhooks;

namespace RamPay.Notifications;

/// <summary>
/// Tells a webhook endpoint's owner that it was disabled for failing (docs/webhooks.md, "Delivery"): a planned
/// notification (template <c>webhook_endpoint_disabled</c>) rendered for the owner's channels and added to the outbox,
/// so it is sent, retried and audited like every other message (<c>GET /v1/admin/notifications</c>). Wired to
/// <see cref="WebhookDispatcher.Disabled"/>, which fires once per disabling across every process sharing the store; the
/// outbox's unique key (channel, user, event id, template) makes a repeated call add nothing.
/// </summary>
public sealed class EndpointDisabledNotifier(INotificationOutbox outbox, IRecipientDirectory directory, NotificationOptions options,
    ILogger<EndpointDisabledNotifier>? logger = null, TimeProvider? clock = null)
{
    public const string Template = NotificationTemplates.WebhookEndpointDisabled;
    private readonly ILogger _logger = logger ?? NullLogger<EndpointDisabledNotifier>.Instance;
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;

    /// <summary>Raised after a message was added (a dispatcher wakes up).</summary>
    public event Action? Enqueued;

    /// <summary>The outbox's event id of one disabling: the endpoint and the time it went on failing from, so a later disabling is told again.</summary>
    public static string EventId(WebhookEndpoint endpoint) =>
        $"webhook_endpoint_disabled:{endpoint.Id}:{endpoint.FailingSinceMs.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Queues the owner's notification; returns how many messages were added (0: no channel, no recipient, or already queued).</summary>
    public async Task<int> NotifyAsync(WebhookEndpoint endpoint, TimeSpan failingFor, CancellationToken cancellationToken = default)
    {
        if (!options.Smtp.Enabled && !options.Sms.Enabled) return 0;
        var recipient = await directory.FindAsync(endpoint.Owner, cancellationToken).ConfigureAwait(false);
        if (recipient is null) return 0;
        var planned = new PlannedNotification(endpoint.Owner, Template, EventId(endpoint), new Dictionary<string, string>
        {
            ["endpoint_id"] = endpoint.Id,
            ["url"] = endpoint.Url,
            ["failing_for"] = failingFor.TotalHours >= 1 ? $"{failingFor.TotalHours:0.#} hours" : $"{Math.Max(1, failingFor.TotalMinutes):0} minutes",
        });
        var messages = new List<NotificationStore.NewMessage>(2);
        NotificationConsumer.Render(planned, recipient, options, messages);
        int added = outbox.Enqueue(messages, "webhook_endpoint_disabled", null, _clock.GetUtcNow().ToUnixTimeMilliseconds());
        _logger.LogInformation("webhook endpoint {EndpointId} disabled: {Count} message(s) to its owner {Owner} queued", endpoint.Id, added, endpoint.Owner);
        if (added > 0) Enqueued?.Invoke();
        return added;
    }

    /// <summary>
    /// A handler for <see cref="WebhookDispatcher.Disabled"/>: queues the notification off the dispatcher's task and logs
    /// a failure (the endpoint stays disabled either way; the log says the owner was not told).
    /// </summary>
    public Action<WebhookEndpoint> Handler(TimeSpan failingFor) => endpoint => _ = Task.Run(async () =>
    {
        try { await NotifyAsync(endpoint, failingFor).ConfigureAwait(false); }
        catch (Exception e) { _logger.LogError(e, "webhook endpoint {EndpointId} disabled, but its owner {Owner} could not be told", endpoint.Id, endpoint.Owner); }
    });
}
