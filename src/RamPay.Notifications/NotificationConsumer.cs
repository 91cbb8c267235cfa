using RamPay.Events;

namespace RamPay.Notifications;

/// <summary>
/// The notifications' event consumer (docs/notifications.md): plans each event's notifications
/// (<see cref="NotificationPlanner"/>), looks up each recipient's address and choices, renders the templates, and adds
/// the messages to the durable outbox with its checkpoint in the same transaction. Sending is the
/// <see cref="NotificationDispatcher"/>'s job, apart, so a slow SMTP server never holds the feed back. A channel that is
/// not configured queues nothing. Events older than <see cref="NotificationOptions.MaxEventAge"/> notify nobody.
/// </summary>
public sealed class NotificationConsumer(INotificationOutbox store, IRecipientDirectory directory, NotificationOptions options, TimeProvider? clock = null) : IEventConsumer
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;

    public string Name => "notifications";

    /// <summary>Raised after a batch added messages (the dispatcher wakes up).</summary>
    public event Action? Enqueued;

    public ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken) => ValueTask.FromResult(store.ReadCheckpoint(Name));

    public async ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken)
    {
        long now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        var planned = new List<PlannedNotification>();
        if (options.Smtp.Enabled || options.Sms.Enabled)
            foreach (var e in batch.Events)
                if (now - e.OccurredAtMs <= (long)options.MaxEventAge.TotalMilliseconds) NotificationPlanner.Plan(e, planned);
        var messages = new List<NotificationStore.NewMessage>(planned.Count);
        var recipients = new Dictionary<long, Recipient?>();
        foreach (var p in planned)
        {
            if (!recipients.TryGetValue(p.UserId, out var recipient))
                recipients[p.UserId] = recipient = await directory.FindAsync(p.UserId, cancellationToken).ConfigureAwait(false);
            if (recipient is null) continue;
            Render(p, recipient, options, messages);
        }
        int added = store.Enqueue(messages, Name, batch.FromLog ? batch.Through : null, now);
        if (added > 0) Enqueued?.Invoke();
    }

    /// <summary>A planned notification's messages for the recipient's channels (configured, and on for them).</summary>
    public static void Render(PlannedNotification p, Recipient recipient, NotificationOptions options, List<NotificationStore.NewMessage> into)
    {
        var values = new Dictionary<string, string>(p.Values) { ["name"] = recipient.Name, ["unsubscribe_url"] = recipient.UnsubscribeUrl };
        if (options.Smtp.Enabled && recipient.Email is { } email)
        {
            var (subject, text, html) = NotificationTemplates.Email(p.Kind, values);
            into.Add(new(p.UserId, "email", email, p.Kind, p.EventId, subject, text, html));
        }
        if (options.Sms.Enabled && recipient.Phone is { } phone)
            into.Add(new(p.UserId, "sms", phone, p.Kind, p.EventId, "", NotificationTemplates.Sms(p.Kind, values), null));
    }
}
