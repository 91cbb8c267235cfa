using RamPay.Events;

namespace RamPay.Notifications;

/// <summary>
/// The notifications' outbox, which is also the audit log of every email and SMS, and the consumer's checkpoint. Two
/// implementations pass the same tests (<c>NotificationOutboxContract</c>): <see cref="NotificationStore"/> (SQLite,
/// the embedded default, which also keeps the preferences) and <see cref="PostgresNotificationOutbox"/> (what the server
/// and every <c>rampay-worker notifications</c> of a group share, docs/notifications.md).
/// </summary>
public interface INotificationOutbox : IDisposable
{
    /// <summary>Adds messages (one already there, same channel, user, event and template, is left alone) and moves the checkpoint, in one transaction.</summary>
    int Enqueue(IReadOnlyList<NotificationStore.NewMessage> messages, string name, EventPosition? through, long nowMs);
    EventPosition ReadCheckpoint(string name);
    /// <summary>
    /// Claims up to <paramref name="max"/> pending messages due by <paramref name="nowMs"/> on the given channels and not
    /// claimed by anyone, for <paramref name="leaseMs"/> (until their outcome is recorded, they are released, or the
    /// lease runs out because the claimer died).
    /// </summary>
    List<NotificationMessage> Claim(long nowMs, int max, bool email, bool sms, long leaseMs);
    /// <summary>Gives claimed messages back unattempted.</summary>
    void Release(IReadOnlyCollection<long> ids);
    long PendingCount();
    /// <summary>Records outcomes (the claim ends) in one transaction; an outcome never moves a message back.</summary>
    void Record(IReadOnlyList<NotificationStore.Outcome> outcomes);
    /// <summary>The audit log, newest first, before the cursor; filtered by user, channel and audit status (<c>sent|failed|pending|dead</c>).</summary>
    List<NotificationMessage> Page(long? user, string? channel, string? status, long beforeCreatedMs, long beforeId, int limit);
    NotificationMessage? Message(long id);
    /// <summary>Dead-letters pending SMS to <paramref name="phone"/> (it sent STOP).</summary>
    int DeadLetterSms(string phone, string reason, long nowMs);
    /// <summary>Deletes sent and dead messages created before <paramref name="beforeMs"/>.</summary>
    int Prune(long beforeMs);
}
