using System.Text.Json;
using RamPay.Events;

namespace RamPay.Webhooks;

/// <summary>
/// The webhooks' event consumer (docs/webhooks.md): turns each event into deliveries (one per subscribed endpoint
/// that may see it, cut to what its owner may see, plus the payment's own <c>webhook_url</c>) in the durable outbox,
/// with its checkpoint in the same transaction. Sending is the <see cref="WebhookDispatcher"/>'s job, apart, so a slow
/// receiver never holds the feed back.
/// </summary>
public sealed class WebhookConsumer(IWebhookStore store, TimeProvider? clock = null) : IEventConsumer
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;

    public string Name => "webhooks";

    private static ReadOnlySpan<byte> WebhookUrlProperty => "\"webhook_url\""u8;

    /// <summary>Raised after a batch added deliveries (the dispatcher wakes up).</summary>
    public event Action? Enqueued;

    public ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken) => ValueTask.FromResult(store.ReadCheckpoint(Name));

    public ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken)
    {
        var endpoints = store.Endpoints().Where(e => e.Status != "deleted").ToList();
        var deliveries = new List<WebhookStore.NewDelivery>();
        var urls = new List<(long, long, string)>();
        var known = new Dictionary<long, (long Owner, string Url)?>();
        foreach (var e in batch.Events)
        {
            // With no endpoint, only a payment's own webhook_url can want an event: one set on this event, or on an
            // earlier event of this batch (known). Skipping the parse then is most of this consumer's cost per event.
            if (endpoints.Count == 0 && known.Count == 0 && e.Json.Span.IndexOf(WebhookUrlProperty) < 0) continue;
            Plan(e, endpoints, deliveries, urls, known, fromFeed: true);
        }
        long now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        int added = store.Enqueue(deliveries, Name, batch.FromLog ? batch.Through : null, now, paymentUrls: urls);
        if (added > 0) Enqueued?.Invoke();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// The deliveries one event gives. Also used by redelivery (POST /v1/events/{id}/redeliver). <paramref name="fromFeed"/>:
    /// the event comes from the feed, so an endpoint gets it only if it occurred once the endpoint existed (as Stripe's
    /// endpoints do). The feed may reach an older event after a new endpoint was registered (it runs behind the writer),
    /// and that event was never the new endpoint's to receive; a redelivery is asked for, so it is exempt.
    /// </summary>
    public static void Plan(EventRecord e, IReadOnlyList<WebhookEndpoint> endpoints, List<WebhookStore.NewDelivery> deliveries,
        List<(long, long, string)> urls, Dictionary<long, (long Owner, string Url)?> known, IWebhookStore? store = null, string? onlyEndpoint = null,
        bool fromFeed = false)
    {
        using var doc = e.Parse();
        var viewers = Viewers(e.Type, doc.RootElement);
        // One payload per party, shared by the deliveries that get the same cut (payloads are never changed once made):
        // ten admin endpoints store one copy of the event's bytes, not ten.
        byte[]? full = null, payer = null, payee = null;
        string? eventId = null; // formatted once per event, not per delivery
        byte[] PayloadFor(EventParty p) => p switch
        {
            EventParty.Full => full ??= e.Json.ToArray(),
            EventParty.Payer => payer ??= EventAudience.Cut(e.Json, p).ToArray(),
            _ => payee ??= EventAudience.Cut(e.Json, p).ToArray(),
        };
        foreach (var endpoint in endpoints)
        {
            if (onlyEndpoint is not null && endpoint.Id != onlyEndpoint) continue;
            if (!endpoint.Wants(e.Type)) continue;
            if (fromFeed && e.OccurredAtMs < endpoint.CreatedMs) continue;
            EventParty? party = endpoint.AllEvents ? EventParty.Full : PartyOf(viewers, endpoint.Owner);
            if (party is not { } p) continue;
            deliveries.Add(new(endpoint.Id, endpoint.Owner, endpoint.Url, eventId ??= e.EventId, e.Type, PayloadFor(p)));
        }
        if (onlyEndpoint is not null && !onlyEndpoint.StartsWith(WebhookStore.PaymentUrlPrefix, StringComparison.Ordinal)) return;
        // The payment's own webhook_url: set on its creation events; later events of the payment go there too.
        if (!doc.RootElement.TryGetProperty("payment", out var payment) || payment.ValueKind != JsonValueKind.Object) return;
        if (!payment.TryGetProperty("id", out var idElement) || idElement.ValueKind != JsonValueKind.Number) return;
        long paymentId = idElement.GetInt64();
        (long Owner, string Url)? target = null;
        if (payment.TryGetProperty("webhook_url", out var url) && url.ValueKind == JsonValueKind.String && payment.TryGetProperty("from_account", out _))
        {
            long owner = doc.RootElement.TryGetProperty("client_id", out var client) && client.ValueKind == JsonValueKind.Number ? client.GetInt64() : 0;
            if (owner > 0)
            {
                target = (owner, url.GetString()!);
                urls.Add((paymentId, owner, target.Value.Url));
            }
        }
        else if (!known.TryGetValue(paymentId, out target))
        {
            target = store?.PaymentUrl(paymentId);
            known[paymentId] = target;
        }
        if (target is { } t)
        {
            known[paymentId] = t;
            string endpointId = WebhookStore.PaymentUrlPrefix + t.Owner;
            if (onlyEndpoint is not null && onlyEndpoint != endpointId) return;
            deliveries.Add(new(endpointId, t.Owner, t.Url, eventId ??= e.EventId, e.Type, PayloadFor(PartyOf(viewers, t.Owner) ?? EventParty.Payer)));
        }
    }

    /// <summary>What <paramref name="user"/> may see of the event (null: it is not theirs).</summary>
    private static EventParty? PartyOf(List<EventViewer> viewers, long user)
    {
        if (user <= 0) return null;
        foreach (var v in viewers)
            if (v.UserId == user) return v.Party;
        return null;
    }

    /// <summary>Who an event concerns, read from its JSON (the same rules as <see cref="EventAudience.Viewers"/>, which reads the change).</summary>
    public static List<EventViewer> Viewers(string type, JsonElement root)
    {
        var list = new List<EventViewer>(2);
        static long Owner(JsonElement o) => o.ValueKind == JsonValueKind.Object && o.TryGetProperty("owner", out var w) && w.ValueKind == JsonValueKind.Number ? w.GetInt64() : 0;
        switch (type)
        {
            case "UserRegistered":
                return list;
            case "AccountFrozen":
            case "AccountUnfrozen":
                if (root.TryGetProperty("account", out var account) && Owner(account) is > 0 and var o) list.Add(new(o, EventParty.Full));
                return list;
        }
        if (!root.TryGetProperty("balances", out var balances) || balances.ValueKind != JsonValueKind.Object)
        {
            // A refused attempt: the one who tried.
            if (root.TryGetProperty("client_id", out var client) && client.ValueKind == JsonValueKind.Number && client.GetInt64() > 0) list.Add(new(client.GetInt64(), EventParty.Full));
            return list;
        }
        long payer = balances.TryGetProperty("from", out var from) ? Owner(from) : 0;
        long payee = balances.TryGetProperty("to", out var to) ? Owner(to) : 0;
        if (payer == payee)
        {
            if (payer > 0) list.Add(new(payer, EventParty.Full));
            return list;
        }
        if (payer > 0) list.Add(new(payer, EventParty.Payer));
        if (payee > 0 && type != "AnomalyDetected") list.Add(new(payee, EventParty.Payee));
        return list;
    }
}
