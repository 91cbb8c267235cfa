using System.Text.Json.Nodes;
using Bunit;
using RamPay.Web.Components;
using RamPay.Web.Pages;
using RamPay.Web.Pages.Admin;

namespace RamPay.Web.Tests;

// Reward-rule changes, webhook endpoint deletion and the latency chart (issue 15's remaining items).
public sealed partial class PageTests
{
    [Fact]
    public async Task A_reward_rule_is_changed_with_its_current_terms_in_the_form_and_the_whole_new_terms_sent()
    {
        await LogInAsync("admin");
        string rule = Rule.Replace("\"payee_accounts\":[]", "\"payee_accounts\":[6]", StringComparison.Ordinal);
        bool changed = false;
        On("GET /v1/admin/reward_rules", _ => FakeApi.Json(200, $$"""{"data":[{{(changed ? rule.Replace("\"percent_bps\":150", "\"percent_bps\":225", StringComparison.Ordinal).Replace("\"version\":1", "\"version\":2", StringComparison.Ordinal) : rule)}}]}"""));
        On("GET /v1/admin/rewards/funding", Funding);
        On("POST /v1/admin/reward_rules/4", seen =>
        {
            changed = true;
            return FakeApi.Json(200, rule.Replace("\"percent_bps\":150", "\"percent_bps\":225", StringComparison.Ordinal).Replace("\"version\":1", "\"version\":2", StringComparison.Ordinal));
        });
        var cut = RenderPage<RewardRules>();
        cut.WaitForAssertion(() => Assert.Contains("1.50 %", cut.Find("tr[data-rule-id='4']").TextContent, StringComparison.Ordinal));

        cut.Find("button[aria-label='Change rule 4 (Cashback)']").Click();
        Assert.Equal("Change rule 4", cut.Find("[data-testid=rule-form-title]").TextContent);
        // The rule's terms, in the units the form takes: per cent and major units.
        Assert.Equal("Cashback", Field(cut, "Name").QuerySelector("input")!.GetAttribute("value"));
        Assert.Equal("1.50", Field(cut, "Cashback (%)").QuerySelector("input")!.GetAttribute("value"));
        Assert.Equal("10.00", Field(cut, "Minimum payment").QuerySelector("input")!.GetAttribute("value"));
        Assert.Equal("5.00", Field(cut, "Cap per payment").QuerySelector("input")!.GetAttribute("value"));
        Assert.Equal("6", Field(cut, "Only payments to these accounts").QuerySelector("input")!.GetAttribute("value"));

        // A bad rate is refused before anything is sent, as for a new rule.
        Type(cut, "Cashback (%)", "2.255");
        cut.Find("form[aria-label='Change reward rule 4']").Submit();
        cut.WaitForAssertion(() => AssertFieldError(cut, "Cashback (%)", "two decimal places at most"));
        Assert.Empty(Sent("POST", "/v1/admin/reward_rules"));

        Type(cut, "Cashback (%)", "2.25");
        cut.Find("form[aria-label='Change reward rule 4']").Submit();
        cut.WaitForAssertion(() => Assert.Contains("Rule 4 changed: version 2", cut.Markup, StringComparison.Ordinal));
        var sent = Assert.Single(Sent("POST", "/v1/admin/reward_rules"));
        Assert.Equal("/v1/admin/reward_rules/4", sent.Path);
        var body = JsonNode.Parse(sent.Body!)!;
        Assert.Equal(("Cashback", 225, "USD", 1000L, 500L), (body["name"]!.GetValue<string>(), body["percent_bps"]!.GetValue<int>(), body["currency"]!.GetValue<string>(),
            body["min_amount"]!.GetValue<long>(), body["max_per_payment"]!.GetValue<long>()));
        Assert.Null(body["max_per_user_per_month"]);
        Assert.Equal([6L], body["payee_accounts"]!.AsArray().Select(p => p!.GetValue<long>()));
        // Back to a new-rule form, and the table shows the new version.
        Assert.Equal("New rule", cut.Find("[data-testid=rule-form-title]").TextContent);
        cut.WaitForAssertion(() => Assert.Contains("2.25 %", cut.Find("tr[data-rule-id='4']").TextContent, StringComparison.Ordinal));
        Assert.Contains("4 v2", cut.Find("tr[data-rule-id='4']").TextContent, StringComparison.Ordinal);

        // Cancel leaves the form without sending.
        cut.Find("button[aria-label='Change rule 4 (Cashback)']").Click();
        cut.FindAll("button").Single(b => b.TextContent.Trim() == "Cancel").Click();
        Assert.Equal("New rule", cut.Find("[data-testid=rule-form-title]").TextContent);
        Assert.Single(Sent("POST", "/v1/admin/reward_rules"));
    }

    [Fact]
    public async Task A_refused_rule_change_is_shown_in_words_and_the_form_keeps_the_terms()
    {
        await LogInAsync("admin");
        On("GET /v1/admin/reward_rules", $$"""{"data":[{{Rule}}]}""");
        On("GET /v1/admin/rewards/funding", Funding);
        On("POST /v1/admin/reward_rules/4", """{"error":{"code":"reward_rule_not_found","message":"No reward rule with this id."}}""", 404);
        var cut = RenderPage<RewardRules>();
        cut.WaitForAssertion(() => cut.Find("button[aria-label='Change rule 4 (Cashback)']"));
        cut.Find("button[aria-label='Change rule 4 (Cashback)']").Click();
        cut.Find("form[aria-label='Change reward rule 4']").Submit();
        cut.WaitForAssertion(() => Assert.Contains("No reward rule with this id.", cut.Find("[role=alert]").TextContent, StringComparison.Ordinal));
        Assert.Equal("Change rule 4", cut.Find("[data-testid=rule-form-title]").TextContent);
        Assert.Equal("1.50", Field(cut, "Cashback (%)").QuerySelector("input")!.GetAttribute("value"));
    }

    [Fact]
    public async Task A_webhook_endpoint_is_deleted_only_after_a_second_explicit_press()
    {
        await LogInAsync();
        bool deleted = false;
        On("GET /v1/webhook_endpoints", _ => FakeApi.Json(200, deleted ? """{"data":[],"has_more":false}""" : $$"""{"data":[{{Endpoint}}],"has_more":false}"""));
        On("DELETE /v1/webhook_endpoints/we_1", _ => { deleted = true; return FakeApi.Json(200, """{"id":"we_1","deleted":true}"""); });
        var cut = RenderPage<Webhooks>();
        cut.WaitForAssertion(() => cut.Find("tr[data-endpoint-id='we_1']"));

        // The first press only asks; "Keep it" goes back with nothing sent.
        cut.Find("button[aria-label='Delete endpoint we_1']").Click();
        Assert.Contains("cannot be undone", cut.Find("[data-testid=confirm-delete]").TextContent, StringComparison.Ordinal);
        cut.FindAll("button").Single(b => b.TextContent.Trim() == "Keep it").Click();
        Assert.Empty(cut.FindAll("[data-testid=confirm-delete]"));
        Assert.Empty(Sent("DELETE", "/v1/webhook_endpoints"));

        cut.Find("button[aria-label='Delete endpoint we_1']").Click();
        cut.Find("button[aria-label='Delete for good: endpoint we_1']").Click();
        cut.WaitForAssertion(() => Assert.Contains("Endpoint we_1 deleted", cut.Markup, StringComparison.Ordinal));
        Assert.Single(Sent("DELETE", "/v1/webhook_endpoints/we_1"));
        cut.WaitForAssertion(() => Assert.Empty(cut.FindAll("tr[data-endpoint-id]")));
    }

    [Fact]
    public async Task Deleting_an_endpoint_already_gone_says_so_in_words()
    {
        await LogInAsync();
        On("GET /v1/webhook_endpoints", $$"""{"data":[{{Endpoint}}],"has_more":false}""");
        On("DELETE /v1/webhook_endpoints/we_1", """{"error":{"code":"webhook_endpoint_not_found","message":"No such webhook endpoint among yours."}}""", 404);
        var cut = RenderPage<Webhooks>();
        cut.WaitForAssertion(() => cut.Find("tr[data-endpoint-id='we_1']"));
        cut.Find("button[aria-label='Delete endpoint we_1']").Click();
        cut.Find("button[aria-label='Delete for good: endpoint we_1']").Click();
        cut.WaitForAssertion(() => Assert.Contains("No such webhook endpoint among yours.", cut.Find("[role=alert]").TextContent, StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_analytics_page_charts_p50_and_p99_latency_per_minute_with_gaps_for_quiet_minutes()
    {
        await LogInAsync("admin");
        On("GET /v1/admin/analytics", """{"interval":"minute","from":"2026-12-05T11:00:00.000Z","to":"2026-12-05T12:00:00.000Z","data":[]}""");
        string? query = null;
        On("GET /v1/admin/latency", seen =>
        {
            query = seen.Path;
            // Minutes 0, 1 and 5 of the range had traffic: two runs, so two line segments per percentile would need two
            // points each; minute 5 alone is a dot.
            return FakeApi.Json(200, """
                {"from":"2026-12-05T11:01:00.000Z","to":"2026-12-05T12:00:30.000Z","interval_seconds":60,"data":[
                 {"start":"2026-12-05T11:01:00.000Z","count":10,"p50_us":1200,"p90_us":2000,"p99_us":4500,"p999_us":4500,"max_us":4500},
                 {"start":"2026-12-05T11:02:00.000Z","count":20,"p50_us":1100,"p90_us":1900,"p99_us":9000,"p999_us":9100,"max_us":9100},
                 {"start":"2026-12-05T11:06:00.000Z","count":5,"p50_us":900,"p90_us":1000,"p99_us":1000,"p999_us":1000,"max_us":1000}]}
                """);
        });
        var cut = RenderPage<Analytics>();
        cut.FindAll("select")[0].Change("hour");
        cut.Find("form[aria-label='Analytics range']").Submit();
        cut.WaitForAssertion(() => Assert.Contains("minutes=60", query, StringComparison.Ordinal));
        cut.WaitForAssertion(() => Assert.Contains("3 of them with traffic", cut.Find("[data-testid=latency-range]").TextContent, StringComparison.Ordinal));
        var svg = cut.Find("svg[data-testid=latency-chart]");
        // One polyline per percentile for the run of minutes 1-2; minute 6 stands alone (a dot, no line to it).
        Assert.Single(svg.QuerySelectorAll("polyline.rp-line-p50"));
        Assert.Single(svg.QuerySelectorAll("polyline.rp-line-p99"));
        Assert.Equal(3, svg.QuerySelectorAll("circle.rp-line-p50").Length);
        Assert.Equal(3, svg.QuerySelectorAll("circle.rp-line-p99").Length);
        Assert.Contains("p99 up to 9.000 ms at 12-05 11:02", svg.QuerySelector("desc")!.TextContent, StringComparison.Ordinal);
        Assert.Contains("p50 up to 1.200 ms", svg.QuerySelector("desc")!.TextContent, StringComparison.Ordinal);
        // Every figure in the table, in milliseconds by integer arithmetic.
        var rows = cut.FindAll("tr[data-latency-minute]");
        Assert.Equal(3, rows.Count);
        Assert.Contains("9.100 ms", rows[1].TextContent, StringComparison.Ordinal);
        Assert.Contains("0.900 ms", rows[2].TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public void A_latency_chart_of_nothing_says_so()
    {
        var cut = Render<LatencyChart>(p => p.Add(c => c.From, new DateTimeOffset(2026, 12, 5, 11, 0, 0, TimeSpan.Zero)).Add(c => c.Slots, 60));
        Assert.Equal("Nothing was acknowledged in this range.", cut.Find("desc").TextContent);
        Assert.Empty(cut.FindAll("polyline"));
        Assert.Equal("0.000 ms", LatencyChart.Ms(0));
        Assert.Equal("12.345 ms", LatencyChart.Ms(12_345));
    }
}
