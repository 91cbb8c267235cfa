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
}
