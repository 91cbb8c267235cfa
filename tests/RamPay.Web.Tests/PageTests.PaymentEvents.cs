using Bunit;
using RamPay.Web.Components;

namespace RamPay.Web.Tests;

// A payment's events on its detail page (issue 15: "a payment's detail (status, fraud result, refunds, its events)"),
// read from the public GET /v1/events, which has no filter by payment.
public sealed partial class PageTests
{
    private static string Event(string id, string type, string at, long? paymentId, string status = "posted", string? reason = null, long? refundId = null) =>
        $$"""{"event_id":"{{id}}","type":"{{type}}","version":1,"occurred_at":"{{at}}","key":5,"client_id":2{{(reason is null ? "" : $",\"reason\":\"{reason}\"")}},"payment":{"id":{{(paymentId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "null")}},"status":"{{status}}"}{{(refundId is null ? "" : $",\"refund\":{{\"id\":{refundId}}}")}}}""";

    [Fact]
    public async Task A_payments_events_are_read_back_to_its_creation_and_only_its_own_are_shown()
    {
        await LogInAsync();
        // Page 1: a later payment's event, the refund of payment 7 (its refund #9), a refused attempt (no id).
        // Page 2: payment 7's capture and creation, then an event older than payment 7: the reading stops there.
        On("GET /v1/events", seen => seen.Path.Contains("starting_after=", StringComparison.Ordinal)
            ? FakeApi.Json(200, $$"""{"data":[{{Event("40-0-1", "PaymentCaptured", "2026-12-05T09:05:00.000Z", 7, "captured")}},{{Event("30-0-1", "PaymentAuthorized", "2026-12-05T09:00:00.000Z", 7, "authorized")}},{{Event("30-0-0", "PaymentCreated", "2026-12-05T09:00:00.000Z", 7, "authorized")}},{{Event("20-0-0", "PaymentCreated", "2026-12-05T08:59:59.000Z", 6)}}],"has_more":true}""")
            : FakeApi.Json(200, $$"""{"data":[{{Event("60-0-1", "PaymentApproved", "2026-12-05T09:10:00.000Z", 8)}},{{Event("50-0-0", "PaymentRefunded", "2026-12-05T09:07:00.000Z", 7, "captured", refundId: 9)}},{{Event("45-0-0", "PaymentFailed", "2026-12-05T09:06:00.000Z", null, "failed", "insufficient_funds")}}],"has_more":true}"""));
        var cut = Render<PaymentEvents>(p => p.Add(c => c.PaymentId, 7L).Add(c => c.CreatedAt, DateTimeOffset.Parse("2026-12-05T09:00:00Z", System.Globalization.CultureInfo.InvariantCulture)));
        cut.WaitForAssertion(() => Assert.Equal(4, cut.FindAll("tr[data-event-id]").Count));
        Assert.Equal(["50-0-0", "40-0-1", "30-0-1", "30-0-0"], cut.FindAll("tr[data-event-id]").Select(r => r.GetAttribute("data-event-id")));
        Assert.Equal(["PaymentRefunded", "PaymentCaptured", "PaymentAuthorized", "PaymentCreated"], cut.FindAll("tr[data-event-id]").Select(r => r.GetAttribute("data-event-type")));
        var reads = Sent("GET", "/v1/events");
        Assert.Equal(["/v1/events?limit=100", "/v1/events?limit=100&starting_after=45-0-0"], reads.Select(r => r.Path));
        Assert.Empty(cut.FindAll("[data-testid=events-short]"));

        // A refund's own detail finds the PaymentRefunded event by its `refund`.
        _api.Requests.Clear();
        var refund = Render<PaymentEvents>(p => p.Add(c => c.PaymentId, 9L).Add(c => c.CreatedAt, DateTimeOffset.Parse("2026-12-05T09:07:00Z", System.Globalization.CultureInfo.InvariantCulture)));
        refund.WaitForAssertion(() => Assert.Equal(["50-0-0"], refund.FindAll("tr[data-event-id]").Select(r => r.GetAttribute("data-event-id"))));
    }

    [Fact]
    public async Task A_payment_with_more_events_since_it_than_the_pages_read_says_its_list_may_be_short()
    {
        await LogInAsync();
        int n = 0;
        On("GET /v1/events", _ =>
        {
            int page = Interlocked.Increment(ref n);
            return FakeApi.Json(200, $$"""{"data":[{{Event($"{1000 - page}-0-0", "PaymentApproved", "2026-12-05T10:00:00.000Z", 7)}}],"has_more":true}""");
        });
        var cut = Render<PaymentEvents>(p => p.Add(c => c.PaymentId, 7L).Add(c => c.CreatedAt, DateTimeOffset.Parse("2026-12-05T09:00:00Z", System.Globalization.CultureInfo.InvariantCulture)));
        cut.WaitForAssertion(() => Assert.Contains("older events of it may be missing", cut.Find("[data-testid=events-short]").TextContent, StringComparison.Ordinal));
        Assert.Equal(PaymentEvents.MaxPages, Sent("GET", "/v1/events").Count);
        Assert.Equal(PaymentEvents.MaxPages, cut.FindAll("tr[data-event-id]").Count);
    }

    [Fact]
    public async Task Events_that_cannot_be_read_are_said_in_words()
    {
        await LogInAsync();
        On("GET /v1/events", """{"error":{"code":"events_disabled","message":"This server keeps no event log."}}""", 404);
        var cut = Render<PaymentEvents>(p => p.Add(c => c.PaymentId, 7L).Add(c => c.CreatedAt, DateTimeOffset.UnixEpoch));
        cut.WaitForAssertion(() => Assert.Contains("This server keeps no event log.", cut.Find("[role=alert]").TextContent, StringComparison.Ordinal));
    }
}
