using RamPay.Events;

namespace RamPay.Webhooks;

/// <summary>
/// The webhooks' durable state: endpoints, per-user secrets, the delivery outbox with its claims, every attempt (the
/// audit log) and the consumer's checkpoint. Two implementations pass the same tests (<c>WebhookStoreContract</c>):
/// <see cref="WebhookStore"/> (SQLite, the embedded default, one process) and <see cref="PostgresWebhookStore"/> (the
/// store the server and every <c>rampay-worker webhooks</c> of a group share, docs/webhooks.md "Workers").
/// </summary>
public interface IWebhookStore : IDisposable
{
    // ---- endpoints (the API's side) ----
    /// <summary>Every live endpoint (cached briefly: another process's change is seen within a second).</summary>
    IReadOnlyList<WebhookEndpoint> Endpoints();
    WebhookEndpoint? Endpoint(string id);
    WebhookEndpoint Create(long owner, bool allEvents, string url, IReadOnlyList<string> events, string? description, long nowMs);
    void Update(string id, string? url, IReadOnlyList<string>? events, string? description, string? status);
    void Delete(string id);
    string RotateSecret(string id, long overlapUntilMs);
    void SetFailing(string id, long sinceMs);
    /// <summary>Disables an enabled endpoint; true only for the one caller (of any process) that made the change, so its owner is told once.</summary>
    bool DisableFailing(string id);
    (string Secret, string? OldSecret, long OldUntilMs) UserSecret(long user);
    string RotateUserSecret(long user, long overlapUntilMs);
    (long Owner, string Url)? PaymentUrl(long paymentId);

    // ---- the consumer's side ----
    EventPosition ReadCheckpoint(string name);
    /// <summary>Adds deliveries (one already there is left alone, or made pending again with <paramref name="redeliver"/>) and moves the checkpoint, in one transaction.</summary>
    int Enqueue(IReadOnlyList<WebhookStore.NewDelivery> deliveries, string name, EventPosition? through, long nowMs, bool redeliver = false,
        IReadOnlyList<(long PaymentId, long Owner, string Url)>? paymentUrls = null);

    // ---- the dispatcher's side ----
    /// <summary>
    /// Claims up to <paramref name="max"/> pending deliveries due by <paramref name="nowMs"/> and not claimed by anyone
    /// (in PostgreSQL: <c>FOR UPDATE SKIP LOCKED</c>), for <paramref name="leaseMs"/>: nobody else gets them until their
    /// outcome is recorded, they are released, or the lease runs out (the claimer died: another dispatcher continues).
    /// Deliveries of <paramref name="skipEndpoints"/> are left alone (the dispatcher holds its share of them already):
    /// one busy endpoint's backlog does not fill every claim and hold the other endpoints back.
    /// </summary>
    List<WebhookDelivery> Claim(long nowMs, int max, long leaseMs, IReadOnlyCollection<string>? skipEndpoints = null);
    /// <summary>Gives claimed deliveries back unattempted (the dispatcher had no room for them).</summary>
    void Release(IReadOnlyCollection<long> ids);
    void Defer(string endpointId, long untilMs);
    long PendingCount();
    /// <summary>Records attempts (the delivery's new state, the attempt's row; the claim ends) in one transaction.</summary>
    void Record(IReadOnlyList<WebhookStore.Outcome> outcomes);

    // ---- reading (the API, the audit log) ----
    List<WebhookAttempt> Attempts(string endpointId, string? status, int limit);
    List<WebhookDelivery> Deliveries(string endpointId, string? status, int limit);
    List<WebhookStore.DeliverySummary> AllDeliveries(string? status, long beforeId, int limit);
    List<WebhookStore.AuditRow> AuditPage(long? owner, string? status, long beforeCreatedMs, long beforeId, int limit);
    long? DeliveryCreatedMs(long id);
    int PruneFinished(long beforeMs);
}
