using System.Text;
using RamPay.Webhooks;

namespace RamPay.Events.Tests;

/// <summary>Which endpoints an event is planned for (<see cref="WebhookConsumer.Plan"/>), without a store or a server.</summary>
public class WebhookPlanTests
{
    private static WebhookEndpoint AdminEndpoint(string id, long createdMs) =>
        new(id, 1, AllEvents: true, "https://example.test/hook", ["*"], null, "enabled", "whsec_x", null, 0, createdMs, 0);

    private static EventRecord Event(long occurredAtMs) =>
        new(new EventPosition(10, 0, 0), "PaymentApproved", 1, occurredAtMs, 5, Encoding.UTF8.GetBytes("""{"type":"PaymentApproved","payment":{"id":3}}"""));

    [Fact]
    public void The_feed_gives_an_endpoint_only_the_events_that_occurred_once_it_existed_and_a_redelivery_any()
    {
        var endpoints = new[] { AdminEndpoint("we_old", createdMs: 1_000), AdminEndpoint("we_new", createdMs: 2_000) };

        // 1. From the feed: an event of t = 1,500 is the older endpoint's only; the newer one was registered after it.
        var fromFeed = new List<WebhookStore.NewDelivery>();
        WebhookConsumer.Plan(Event(1_500), endpoints, fromFeed, [], [], fromFeed: true);
        Assert.Equal(["we_old"], fromFeed.Select(d => d.EndpointId));

        // 2. An event of the very millisecond an endpoint was created is its.
        var same = new List<WebhookStore.NewDelivery>();
        WebhookConsumer.Plan(Event(2_000), endpoints, same, [], [], fromFeed: true);
        Assert.Equal(["we_old", "we_new"], same.Select(d => d.EndpointId));

        // 3. A redelivery is asked for: the newer endpoint gets the older event too.
        var redelivered = new List<WebhookStore.NewDelivery>();
        WebhookConsumer.Plan(Event(1_500), endpoints, redelivered, [], [], onlyEndpoint: "we_new");
        Assert.Equal(["we_new"], redelivered.Select(d => d.EndpointId));
    }

    [Fact]
    public void Deliveries_with_the_same_cut_share_one_payload_and_each_cut_is_the_audiences()
    {
        var json = Encoding.UTF8.GetBytes("""{"type":"PaymentApproved","payment":{"id":3},"balances":{"from":{"owner":7,"available":10},"to":{"owner":8,"available":20}}}""");
        var e = new EventRecord(new EventPosition(10, 0, 0), "PaymentApproved", 1, 5_000, 5, json);
        WebhookEndpoint User(string id, long owner) => new(id, owner, AllEvents: false, "https://example.test/u", ["Payment*"], null, "enabled", "whsec_x", null, 0, 0, 0);
        var endpoints = new[] { AdminEndpoint("we_a1", 0), AdminEndpoint("we_a2", 0), User("we_payer", 7), User("we_payee", 8), User("we_other", 9), User("we_payer2", 7) };
        var planned = new List<WebhookStore.NewDelivery>();
        WebhookConsumer.Plan(e, endpoints, planned, [], [], fromFeed: true);
        Assert.Equal(["we_a1", "we_a2", "we_payer", "we_payee", "we_payer2"], planned.Select(d => d.EndpointId));
        var byId = planned.ToDictionary(d => d.EndpointId);
        // The admins get the event whole, one array for both; each party its own cut, one array per party.
        Assert.Equal(json, byId["we_a1"].Payload);
        Assert.Same(byId["we_a1"].Payload, byId["we_a2"].Payload);
        Assert.Same(byId["we_payer"].Payload, byId["we_payer2"].Payload);
        Assert.Equal(EventAudience.Cut(json, EventParty.Payer).ToArray(), byId["we_payer"].Payload);
        Assert.Equal(EventAudience.Cut(json, EventParty.Payee).ToArray(), byId["we_payee"].Payload);
        Assert.DoesNotContain("\"available\":20", Encoding.UTF8.GetString(byId["we_payer"].Payload));
        Assert.DoesNotContain("\"available\":10", Encoding.UTF8.GetString(byId["we_payee"].Payload));
        // The event's buffer may be reused by the feed: the payloads are copies.
        json[2] = (byte)'X';
        Assert.NotEqual(json, byId["we_a1"].Payload);
    }
}
