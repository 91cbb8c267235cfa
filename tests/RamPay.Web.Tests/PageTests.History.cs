using Bunit;
using RamPay.Web.Pages;

namespace RamPay.Web.Tests;

// History with paging and filters (issue 15): what the page asks the API for, page by page.
public sealed partial class PageTests
{
    [Fact]
    public async Task History_pages_by_the_apis_cursor_back_and_forth_and_sends_the_filters_with_the_to_day_included()
    {
        await LogInAsync();
        On("GET /v1/accounts/5/payments", seen =>
        {
            // Page 1: payments 30 and 29, more after 29; page 2: payment 28, the last.
            bool second = seen.Path.Contains("after=29", StringComparison.Ordinal);
            string data = second ? FakeApi.Payment(28, 100) : FakeApi.Payment(30, 300) + "," + FakeApi.Payment(29, 200);
            return FakeApi.Json(200, $$"""{"data":[{{data}}],"has_more":{{(second ? "false" : "true")}},"next_after":{{(second ? "null" : "29")}}}""");
        });
        var cut = RenderPage<History>();
        cut.WaitForAssertion(() => Assert.Equal(["30", "29"], cut.FindAll("tr[data-payment-id]").Select(r => r.GetAttribute("data-payment-id"))));
        var newer = cut.FindAll("button").Single(b => b.TextContent.Trim() == "Newer");
        Assert.True(newer.HasAttribute("disabled"));

        cut.FindAll("button").Single(b => b.TextContent.Trim() == "Older").Click();
        cut.WaitForAssertion(() => Assert.Equal(["28"], cut.FindAll("tr[data-payment-id]").Select(r => r.GetAttribute("data-payment-id"))));
        Assert.True(cut.FindAll("button").Single(b => b.TextContent.Trim() == "Older").HasAttribute("disabled"));
        Assert.Contains("page 2", cut.Find("caption").TextContent, StringComparison.Ordinal);
        cut.FindAll("button").Single(b => b.TextContent.Trim() == "Newer").Click();
        cut.WaitForAssertion(() => Assert.Equal(["30", "29"], cut.FindAll("tr[data-payment-id]").Select(r => r.GetAttribute("data-payment-id"))));

        // The filters: status, kind, and UTC days, the "to" day included (so the query's end is the next midnight).
        var selects = cut.FindAll("select");
        selects[0].Change("held_for_review");
        cut.FindAll("select")[1].Change("authorization");
        cut.Find("input[type=date]").Change("2026-12-01");
        cut.FindAll("input[type=date]")[1].Change("2026-12-05");
        cut.Find("form[aria-label='Filters']").Submit();
        cut.WaitForAssertion(() => Assert.Equal(4, Sent("GET", "/v1/accounts/5/payments").Count));
        Assert.Equal(
            ["/v1/accounts/5/payments?limit=20", "/v1/accounts/5/payments?limit=20&after=29", "/v1/accounts/5/payments?limit=20",
             "/v1/accounts/5/payments?limit=20&status=held_for_review&kind=authorization&from=2026-12-01T00:00:00Z&to=2026-12-06T00:00:00Z"],
            Sent("GET", "/v1/accounts/5/payments").Select(s => s.Path));
        // A new filter starts again from the newest page.
        Assert.True(cut.FindAll("button").Single(b => b.TextContent.Trim() == "Newer").HasAttribute("disabled"));
    }
}
