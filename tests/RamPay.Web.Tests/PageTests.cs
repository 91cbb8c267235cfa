using System.Text.Json.Nodes;
using Bunit;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor.Services;
using RamPay.Web.Components;
using RamPay.Web.Pages;
using RamPay.Web.Pages.Admin;
using RamPay.Web.Services;
using NotificationSettings = RamPay.Web.Pages.Settings.Notifications;

namespace RamPay.Web.Tests;

/// <summary>
/// The pages added for webhooks, rewards, analytics, dead letters and notifications (docs/web.md), with bunit and the API
/// faked at the HTTP level: what each sends (paths, queries, bodies in minor units) and what it shows (errors next to
/// their fields). The notification pages are also tested end to end against the real notifications API
/// (NotificationPagesEndToEndTests.cs).
/// </summary>
public sealed partial class PageTests : BunitContext, IAsyncLifetime
{
    Task IAsyncLifetime.InitializeAsync() => Task.CompletedTask;
    async Task IAsyncLifetime.DisposeAsync() => await base.DisposeAsync();

    private readonly FakeApi _api = new();
    private readonly Dictionary<string, Func<FakeApi.Seen, HttpResponseMessage>> _routes = new(StringComparer.Ordinal);

    public PageTests()
    {
        JSInterop.Mode = JSRuntimeMode.Loose;
        Services.AddMudServices();
        Services.AddScoped(_ => new HttpClient(_api) { BaseAddress = new Uri("http://rampay.test/") });
        Services.AddScoped<Session>();
        Services.AddScoped(sp => new ApiClient(sp.GetRequiredService<HttpClient>(), sp.GetRequiredService<Session>(),
            sp.GetRequiredService<Microsoft.AspNetCore.Components.NavigationManager>()) { RetryDelayMs = 1 });
        // "METHOD /path" (without the query) -> answer; anything else is a 404 the test would see.
        _api.Answer = seen =>
        {
            string path = seen.Path.Split('?')[0];
            return Task.FromResult(_routes.TryGetValue($"{seen.Method} {path}", out var answer)
                ? answer(seen)
                : FakeApi.Json(404, $$$"""{"error":{"code":"not_found","message":"no route {{{seen.Method}}} {{{path}}} in the test"}}"""));
        };
    }

    private void On(string route, string json, int status = 200) => _routes[route] = _ => FakeApi.Json(status, json);
    private void On(string route, Func<FakeApi.Seen, HttpResponseMessage> answer) => _routes[route] = answer;

    private async Task LogInAsync(string role = "user")
    {
        var session = Services.GetRequiredService<Session>();
        await session.SetTokensAsync(new TokenResponse("token-1", "Bearer", 3600, "refresh-1", 86_400));
        await session.SetUserAsync(TestUsers.Ada(role));
    }

    private List<FakeApi.Seen> Sent(string method, string pathPrefix)
    {
        lock (_api.Requests) return _api.Requests.Where(r => r.Method == method && r.Path.StartsWith(pathPrefix, StringComparison.Ordinal)).ToList();
    }

    /// <summary>The MudBlazor input control whose label contains <paramref name="label"/> (the field and its error text).</summary>
    private static AngleSharp.Dom.IElement Field(IRenderedComponent<Microsoft.AspNetCore.Components.IComponent> cut, string label) =>
        cut.FindAll(".mud-input-control").Single(c => c.QuerySelector("label")?.TextContent.Contains(label, StringComparison.Ordinal) == true);

    private static void Type(IRenderedComponent<Microsoft.AspNetCore.Components.IComponent> cut, string label, string text) =>
        Field(cut, label).QuerySelector("input")!.Change(text);

    private static void AssertFieldError(IRenderedComponent<Microsoft.AspNetCore.Components.IComponent> cut, string label, string message)
    {
        var control = Field(cut, label);
        Assert.Contains(message, control.TextContent, StringComparison.Ordinal);
        Assert.Equal("true", control.QuerySelector("input")!.GetAttribute("aria-invalid"));
    }

    private IRenderedComponent<Microsoft.AspNetCore.Components.IComponent> RenderPage<T>() where T : Microsoft.AspNetCore.Components.IComponent =>
        (IRenderedComponent<Microsoft.AspNetCore.Components.IComponent>)(object)Render<T>();

    // ---- webhooks ----------------------------------------------------------------------------------------------------

    private const string Endpoint = """{"id":"we_1","url":"https://hooks.example.com/r","enabled_events":["Payment*"],"status":"enabled","description":"shop","created_at":"2026-12-05T09:00:00.000Z"}""";

    [Fact]
    public async Task Webhooks_create_sends_the_url_and_events_and_shows_the_secret_once()
    {
        await LogInAsync();
        bool created = false;
        On("GET /v1/webhook_endpoints", _ => FakeApi.Json(200, created ? $$"""{"data":[{{Endpoint}}],"has_more":false}""" : """{"data":[],"has_more":false}"""));
        On("POST /v1/webhook_endpoints", _ => { created = true; return FakeApi.Json(201, Endpoint.Replace("}", ""","secret":"whsec_abc"}""", StringComparison.Ordinal)); });
        var cut = RenderPage<Webhooks>();
        cut.WaitForAssertion(() => Assert.Contains("No endpoint yet.", cut.Markup, StringComparison.Ordinal));
        Type(cut, "URL", "https://hooks.example.com/r");
        Type(cut, "Events", "Payment*, PaymentRefunded");
        Type(cut, "Description", "shop");
        cut.Find("form[aria-label='New webhook endpoint']").Submit();
        cut.WaitForAssertion(() => Assert.Equal("whsec_abc", cut.Find("[data-testid=secret]").TextContent));
        var body = JsonNode.Parse(Sent("POST", "/v1/webhook_endpoints").Single().Body!)!;
        Assert.Equal("https://hooks.example.com/r", body["url"]!.GetValue<string>());
        Assert.Equal(["Payment*", "PaymentRefunded"], body["enabled_events"]!.AsArray().Select(e => e!.GetValue<string>()));
        Assert.Equal("shop", body["description"]!.GetValue<string>());
        cut.WaitForAssertion(() => Assert.Single(cut.FindAll("tr[data-endpoint-id='we_1']")));
        // Once put away, the secret is nowhere on the page (the list never carries it).
        cut.FindAll("button").Single(b => b.TextContent.Contains("I have kept it", StringComparison.Ordinal)).Click();
        Assert.DoesNotContain("whsec_abc", cut.Markup, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Webhooks_a_refused_url_is_shown_under_the_url_field()
    {
        await LogInAsync();
        On("GET /v1/webhook_endpoints", """{"data":[],"has_more":false}""");
        On("POST /v1/webhook_endpoints", """{"error":{"code":"invalid_url","message":"The webhook URL is refused: https is required."}}""", 400);
        var cut = RenderPage<Webhooks>();
        Type(cut, "URL", "http://hooks.example.com/r");
        cut.Find("form[aria-label='New webhook endpoint']").Submit();
        cut.WaitForAssertion(() => AssertFieldError(cut, "URL", "https is required"));
    }

    [Fact]
    public async Task Webhooks_disable_rotate_deliveries_by_status_and_redeliver_send_what_the_api_asks()
    {
        await LogInAsync();
        string status = "enabled";
        On("GET /v1/webhook_endpoints", _ => FakeApi.Json(200, $$"""{"data":[{{Endpoint.Replace("\"enabled\"", $"\"{status}\"", StringComparison.Ordinal)}}],"has_more":false}"""));
        On("POST /v1/webhook_endpoints/we_1", seen => { status = JsonNode.Parse(seen.Body!)!["status"]!.GetValue<string>(); return FakeApi.Json(200, Endpoint.Replace("\"enabled\"", $"\"{status}\"", StringComparison.Ordinal)); });
        On("POST /v1/webhook_endpoints/we_1/rotate_secret", Endpoint.Replace("}", ""","secret":"whsec_new"}""", StringComparison.Ordinal));
        On("GET /v1/webhook_endpoints/we_1/deliveries", """{"data":[{"delivery_id":7,"event_id":"12-0-1","attempt":3,"attempted_at":"2026-12-05T09:01:00.000Z","status_code":null,"latency_ms":15,"error":"connection refused","status":"dead"}]}""");
        On("POST /v1/events/12-0-1/redeliver", """{"event_id":"12-0-1","queued":1}""", 202);
        var cut = RenderPage<Webhooks>();
        cut.WaitForAssertion(() => Assert.Single(cut.FindAll("tr[data-endpoint-id='we_1']")));

        cut.Find("button[aria-label='Disable endpoint we_1']").Click();
        cut.WaitForAssertion(() => Assert.Equal("disabled", cut.Find("[data-testid=endpoint-status]").TextContent));
        Assert.Equal("disabled", JsonNode.Parse(Sent("POST", "/v1/webhook_endpoints/we_1").Single().Body!)!["status"]!.GetValue<string>());
        cut.Find("button[aria-label='Enable endpoint we_1']").Click();
        cut.WaitForAssertion(() => Assert.Equal("enabled", cut.Find("[data-testid=endpoint-status]").TextContent));

        cut.Find("button[aria-label='Rotate secret of endpoint we_1']").Click();
        cut.WaitForAssertion(() => Assert.Equal("whsec_new", cut.Find("[data-testid=secret]").TextContent));

        cut.Find("button[aria-label='Deliveries of endpoint we_1']").Click();
        cut.WaitForAssertion(() => Assert.Single(cut.FindAll("tr[data-delivery-id='7']")));
        cut.Find("select").Change("dead");
        cut.Find("form[aria-label='Filter deliveries']").Submit();
        cut.WaitForAssertion(() => Assert.Contains(Sent("GET", "/v1/webhook_endpoints/we_1/deliveries"), r => r.Path.Contains("status=dead", StringComparison.Ordinal)));
        Assert.Contains("connection refused", cut.Find("tr[data-delivery-id='7']").TextContent, StringComparison.Ordinal);

        cut.Find("button[aria-label^='Redeliver event 12-0-1']").Click();
        cut.WaitForAssertion(() => Assert.Contains("queued again", cut.Markup, StringComparison.Ordinal));
        Assert.Equal("we_1", JsonNode.Parse(Sent("POST", "/v1/events/12-0-1/redeliver").Single().Body!)!["endpoint_id"]!.GetValue<string>());
    }

    // ---- rewards -----------------------------------------------------------------------------------------------------

    private static string Reward(long id, string currency, long amount, long paid, long reversed, string status = "issued") =>
        $$"""{"id":{{id}},"status":"{{status}}","source_payment_id":{{100 + id}},"rule_id":1,"rule_version":2,"account_id":5,"user_id":2,"currency":"{{currency}}","amount":{{amount}},"paid_out":{{paid}},"reversed":{{reversed}},"owed":0,"skip_reason":{{(status == "skipped" ? "\"insufficient_funds\"" : "null")}},"payout_payment_id":{{(paid > 0 ? 200 + id : "null")}},"issued_at":"2026-12-05T09:00:00.000Z"}""";

    [Fact]
    public async Task Rewards_are_shown_in_major_units_of_their_currency_with_the_total_kept_and_pages()
    {
        await LogInAsync();
        On("GET /v1/rewards", seen => FakeApi.Json(200, seen.Path.Contains("after=", StringComparison.Ordinal)
            ? $$"""{"data":[{{Reward(1, "USD", 125, 125, 25)}}],"has_more":false,"next_after":null}"""
            : $$"""{"data":[{{Reward(3, "JPY", 40, 40, 0)}},{{Reward(2, "BHD", 1005, 0, 0, "skipped")}}],"has_more":true,"next_after":2}"""));
        var cut = RenderPage<Rewards>();
        cut.WaitForAssertion(() => Assert.Equal(2, cut.FindAll("tr[data-reward-id]").Count));
        Assert.Contains("40 JPY", cut.Find("tr[data-reward-id='3']").TextContent, StringComparison.Ordinal);
        Assert.Contains("1.005 BHD", cut.Find("tr[data-reward-id='2']").TextContent, StringComparison.Ordinal);
        Assert.Contains("insufficient funds", cut.Find("tr[data-reward-id='2']").TextContent, StringComparison.Ordinal);
        cut.FindAll("button").Single(b => b.TextContent.Trim() == "More").Click();
        cut.WaitForAssertion(() => Assert.Equal(3, cut.FindAll("tr[data-reward-id]").Count));
        Assert.Contains(Sent("GET", "/v1/rewards"), r => r.Path.Contains("after=2", StringComparison.Ordinal));
        Assert.Equal("1.00 USD", cut.Find("[data-testid=rewards-total-USD]").TextContent); // 1.25 paid, 0.25 taken back
        Assert.Equal("0.000 BHD", cut.Find("[data-testid=rewards-total-BHD]").TextContent);
    }

    private const string Rule = """{"id":4,"status":"active","name":"Cashback","percent_bps":150,"currency":"USD","min_amount":1000,"max_per_payment":500,"max_per_user_per_month":null,"payee_accounts":[],"starts_at":null,"ends_at":null,"version":1,"created_at":"2026-12-05T09:00:00.000Z","updated_at":"2026-12-05T09:00:00.000Z","versions":[]}""";
    private const string Funding = """{"data":[{"currency":"USD","account_id":9,"balance":50000,"available":50000,"paid_out":0,"topped_up":50000}]}""";

    [Fact]
    public async Task Reward_rules_are_created_with_the_rate_in_basis_points_and_amounts_in_minor_units_and_ended()
    {
        await LogInAsync("admin");
        bool ended = false;
        On("GET /v1/admin/reward_rules", _ => FakeApi.Json(200, $$"""{"data":[{{(ended ? Rule.Replace("\"active\"", "\"ended\"", StringComparison.Ordinal) : Rule)}}]}"""));
        On("GET /v1/admin/rewards/funding", Funding);
        On("POST /v1/admin/reward_rules", _ => FakeApi.Json(201, Rule));
        On("POST /v1/admin/reward_rules/4/end", _ => { ended = true; return FakeApi.Json(200, Rule.Replace("\"active\"", "\"ended\"", StringComparison.Ordinal)); });
        var cut = RenderPage<RewardRules>();
        cut.WaitForAssertion(() => Assert.Contains("1.50 %", cut.Find("tr[data-rule-id='4']").TextContent, StringComparison.Ordinal));
        Assert.Contains("10.00 USD", cut.Find("tr[data-rule-id='4']").TextContent, StringComparison.Ordinal);

        // A rate with three decimals is refused before anything is sent.
        Type(cut, "Name", "Cashback");
        Type(cut, "Cashback (%)", "1.505");
        cut.Find("form[aria-label='New reward rule']").Submit();
        cut.WaitForAssertion(() => AssertFieldError(cut, "Cashback (%)", "two decimal places at most"));
        Assert.Empty(Sent("POST", "/v1/admin/reward_rules"));

        Type(cut, "Cashback (%)", "1.5");
        Type(cut, "Minimum payment", "10");
        Type(cut, "Cap per payment", "5.00");
        Type(cut, "Only payments to these accounts", "6, 7");
        cut.Find("form[aria-label='New reward rule']").Submit();
        cut.WaitForAssertion(() => Assert.Contains("in force from now on", cut.Markup, StringComparison.Ordinal));
        var sent = Sent("POST", "/v1/admin/reward_rules").Single();
        var body = JsonNode.Parse(sent.Body!)!;
        Assert.Equal(150, body["percent_bps"]!.GetValue<int>());
        Assert.Equal(1000, body["min_amount"]!.GetValue<long>());
        Assert.Equal(500, body["max_per_payment"]!.GetValue<long>());
        Assert.Null(body["max_per_user_per_month"]);
        Assert.Equal([6L, 7L], body["payee_accounts"]!.AsArray().Select(p => p!.GetValue<long>()));
        Assert.StartsWith("web-", sent.Key);

        cut.Find("button[aria-label='End rule 4 (Cashback)']").Click();
        cut.WaitForAssertion(() => Assert.Equal("ended", cut.Find("[data-testid=rule-status]").TextContent));
        Assert.Empty(cut.FindAll("button[aria-label='End rule 4 (Cashback)']"));
    }

    [Fact]
    public async Task Reward_funding_top_up_sends_minor_units_with_one_key_per_action_and_shows_refusals_by_the_amount()
    {
        await LogInAsync("admin");
        int calls = 0;
        On("GET /v1/admin/reward_rules", """{"data":[]}""");
        On("GET /v1/admin/rewards/funding", Funding);
        On("POST /v1/admin/rewards/top_up", _ => ++calls == 1
            ? FakeApi.Json(422, """{"error":{"code":"insufficient_funds","message":"The paying account's available balance is lower than the amount."}}""")
            : FakeApi.Json(201, $$$"""{"payment":{{{FakeApi.Payment(77, 2550)}}},"funding":{"currency":"USD","account_id":9,"balance":52550,"available":52550,"paid_out":0,"topped_up":52550}}"""));
        var cut = RenderPage<RewardRules>();
        cut.WaitForAssertion(() => Assert.Equal("500.00 USD", cut.Find("[data-testid=funding-balance-USD]").TextContent));
        Type(cut, "Top-up amount", "25.50");
        cut.Find("form[aria-label='Top up a rewards account']").Submit();
        cut.WaitForAssertion(() => AssertFieldError(cut, "Top-up amount", "available balance is lower"));
        cut.Find("form[aria-label='Top up a rewards account']").Submit();
        cut.WaitForAssertion(() => Assert.Contains("Topped up 25.50 USD", cut.Markup, StringComparison.Ordinal));
        var sent = Sent("POST", "/v1/admin/rewards/top_up");
        Assert.Equal(2, sent.Count);
        Assert.All(sent, s => Assert.Equal(2550, JsonNode.Parse(s.Body!)!["amount"]!.GetValue<long>()));
        Assert.NotEqual(sent[0].Key, sent[1].Key); // a refusal is a definite answer: pressing again is a new action
    }

    // ---- analytics ---------------------------------------------------------------------------------------------------

    [Fact]
    public async Task Analytics_draws_every_bucket_of_the_range_with_volume_in_major_units_and_the_fraud_rate()
    {
        await LogInAsync("admin");
        string? query = null;
        On("GET /v1/admin/analytics", seen =>
        {
            query = seen.Path;
            // Two non-empty buckets, the hour before the current one and three hours earlier.
            var now = DateTimeOffset.UtcNow;
            var hour = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, 0, 0, TimeSpan.Zero);
            string Bucket(DateTimeOffset start, long created, long amount, long transfers, long held, long declined) =>
                $$$"""{"start":"{{{start.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ}}}","currency":"USD","payments_created":{{{created}}},"payments_created_amount":{{{amount}}},"transfers_created":{{{transfers}}},"authorizations_created":0,"fraud_held_for_review":{{{held}}},"fraud_declined":{{{declined}}}}""";
            return FakeApi.Json(200, $$"""{"interval":"hour","from":"2026-12-04T00:00:00.000Z","to":"2026-12-05T00:00:00.000Z","data":[{{Bucket(hour.AddHours(-3), 4, 123_456, 4, 1, 0)}},{{Bucket(hour.AddHours(-1), 8, 1_000, 8, 1, 1)}}]}""");
        });
        var cut = RenderPage<Analytics>();
        cut.WaitForAssertion(() => Assert.Contains("24 buckets", cut.Find("[data-testid=analytics-range]").TextContent, StringComparison.Ordinal));
        Assert.Contains("interval=hour", query, StringComparison.Ordinal);
        Assert.Contains("currency=USD", query, StringComparison.Ordinal);
        // 24 bars per chart: the 22 empty buckets are drawn as zero, not left out.
        Assert.Equal(24, cut.Find("svg[data-testid=volume-chart]").QuerySelectorAll("rect").Length);
        Assert.Contains("1,234.56 USD", cut.Find("svg[data-testid=volume-chart]").TextContent, StringComparison.Ordinal);
        Assert.Contains("highest 1,234.56 USD", cut.Find("svg[data-testid=volume-chart] desc").TextContent, StringComparison.Ordinal);
        // 1 of 4 (25.00 %) and 2 of 8 (25.00 %); over the range 3 of 12.
        Assert.Contains("25.00 %", cut.Find("svg[data-testid=fraud-chart]").TextContent, StringComparison.Ordinal);
        Assert.Contains("3 of 12", cut.Find("[data-testid=fraud-total]").TextContent, StringComparison.Ordinal);
        Assert.Contains("25.00 %", cut.Find("[data-testid=fraud-total]").TextContent, StringComparison.Ordinal);
        // No latency answer in this test: the latency section says so in words and the rest of the page stands.
        Assert.Contains("no route GET /v1/admin/latency", cut.Markup, StringComparison.Ordinal);

        cut.FindAll("select")[0].Change("hour");
        cut.Find("form[aria-label='Analytics range']").Submit();
        cut.WaitForAssertion(() => Assert.Contains("interval=minute", query, StringComparison.Ordinal));
        cut.WaitForAssertion(() => Assert.Contains("60 buckets", cut.Find("[data-testid=analytics-range]").TextContent, StringComparison.Ordinal));
    }

    [Fact]
    public void A_bar_chart_of_nothing_says_so_to_screen_readers()
    {
        var cut = Render<BarChart>(p => p.Add(c => c.Id, "c").Add(c => c.Title, "Empty"));
        Assert.Equal("No data in this range.", cut.Find("desc").TextContent);
        Assert.Empty(cut.FindAll("rect"));
    }

    // ---- dead letters ------------------------------------------------------------------------------------------------

    private static string Delivery(long id, string endpoint, string status = "dead") =>
        $$"""{"delivery_id":{{id}},"endpoint_id":"{{endpoint}}","owner_user_id":3,"url":"https://hooks.example.com/r","event_id":"{{id}}-0-1","event_type":"PaymentApproved","status":"{{status}}","attempts":9,"created_at":"2026-12-02T09:00:00.000Z","last_attempt_at":"2026-12-05T09:00:00.000Z","last_status_code":500,"last_error":"HTTP 500"}""";

    [Fact]
    public async Task Dead_letters_list_every_users_dead_deliveries_page_and_redeliver_to_the_same_endpoint()
    {
        await LogInAsync("admin");
        On("GET /v1/admin/webhook_deliveries", seen => FakeApi.Json(200, seen.Path.Contains("starting_after=", StringComparison.Ordinal)
            ? $$"""{"data":[{{Delivery(3, "we_gone")}}],"has_more":false,"next_starting_after":null}"""
            : $$"""{"data":[{{Delivery(9, "we_1")}},{{Delivery(8, "payment_url:3")}}],"has_more":true,"next_starting_after":8}"""));
        On("POST /v1/events/9-0-1/redeliver", """{"event_id":"9-0-1","queued":1}""", 202);
        On("POST /v1/events/3-0-1/redeliver", """{"error":{"code":"webhook_endpoint_not_found","message":"No such webhook endpoint among yours."}}""", 404);
        var cut = RenderPage<DeadLetters>();
        cut.WaitForAssertion(() => Assert.Equal(2, cut.FindAll("tr[data-delivery-id]").Count));
        Assert.Contains("status=dead", Sent("GET", "/v1/admin/webhook_deliveries")[0].Path, StringComparison.Ordinal);
        Assert.Contains("HTTP 500", cut.Find("tr[data-delivery-id='9']").TextContent, StringComparison.Ordinal);
        // A payment's own webhook_url is its owner's to redeliver: no button.
        Assert.Empty(cut.Find("tr[data-delivery-id='8']").QuerySelectorAll("button"));

        cut.FindAll("button").Single(b => b.TextContent.Trim() == "More").Click();
        cut.WaitForAssertion(() => Assert.Equal(3, cut.FindAll("tr[data-delivery-id]").Count));
        Assert.Contains("starting_after=8", Sent("GET", "/v1/admin/webhook_deliveries")[^1].Path, StringComparison.Ordinal);

        cut.Find("button[aria-label^='Redeliver event 3-0-1']").Click();
        cut.WaitForAssertion(() => Assert.Contains("The endpoint is deleted.", cut.Find("tr[data-delivery-id='3']").TextContent, StringComparison.Ordinal));
        Assert.Contains("Delivery 3: No such webhook endpoint", cut.Find("[role=alert]").TextContent, StringComparison.Ordinal);

        cut.Find("button[aria-label^='Redeliver event 9-0-1']").Click();
        cut.WaitForAssertion(() => Assert.Contains("Event 9-0-1 queued again for we_1", cut.Markup, StringComparison.Ordinal));
        Assert.Equal("we_1", JsonNode.Parse(Sent("POST", "/v1/events/9-0-1/redeliver").Single().Body!)!["endpoint_id"]!.GetValue<string>());
    }

    // ---- notifications (COMMON.md's shape) ---------------------------------------------------------------------------

    private static string Profile(string? phone, bool verified, bool email, bool sms) =>
        $$$"""{"user_id":2,"email":"ada@example.com","name":"Ada","role":"user","wallet_account_id":5,"phone":{{{(phone is null ? "null" : $"\"{phone}\"")}}},"phone_verified":{{{(verified ? "true" : "false")}}},"notifications":{"email":{{{(email ? "true" : "false")}}},"sms":{{{(sms ? "true" : "false")}}}}}""";

    [Fact]
    public async Task Notification_preferences_set_a_phone_verify_it_and_turn_sms_on_with_each_error_next_to_its_field()
    {
        await LogInAsync();
        string? phone = null;
        bool verified = false, email = true, sms = false;
        string View() => Profile(phone, verified, email, sms);
        On("GET /v1/users/me", _ => FakeApi.Json(200, View()));
        On("PATCH /v1/users/me", seen =>
        {
            var body = JsonNode.Parse(seen.Body!)!.AsObject();
            if (body.TryGetPropertyValue("phone", out var p))
            {
                string? value = p?.GetValue<string>();
                if (value is not null && !value.StartsWith('+'))
                    return FakeApi.Json(400, """{"error":{"code":"invalid_request","message":"phone must be in E.164 form, such as +447700900123.","field":"phone"}}""");
                phone = value;
                verified = false;
            }
            if (body["notifications"] is JsonObject n)
            {
                if (n["sms"]?.GetValue<bool>() == true && !verified)
                    return FakeApi.Json(400, """{"error":{"code":"phone_not_verified","message":"Verify your phone before turning text messages on.","field":"notifications.sms"}}""");
                email = n["email"]?.GetValue<bool>() ?? email;
                sms = n["sms"]?.GetValue<bool>() ?? sms;
            }
            return FakeApi.Json(200, View());
        });
        On("POST /v1/users/me/phone/verify", seen =>
        {
            if (JsonNode.Parse(seen.Body!)!["code"]!.GetValue<string>() != "123456")
                return FakeApi.Json(400, """{"error":{"code":"invalid_code","message":"The code is wrong or expired."}}""");
            verified = true;
            return FakeApi.Json(200, View());
        });
        var cut = RenderPage<NotificationSettings>();
        cut.WaitForAssertion(() => Assert.Contains("No phone number.", cut.Find("[data-testid=phone-state]").TextContent, StringComparison.Ordinal));

        // Text messages without a verified phone: refused, the reason under the checkbox.
        cut.FindAll("input[type=checkbox]")[1].Change(true);
        cut.Find("form[aria-label='Notification channels']").Submit();
        cut.WaitForAssertion(() => Assert.Contains("Verify your phone", cut.Find("[data-testid=sms-error]").TextContent, StringComparison.Ordinal));
        Assert.Equal("true", cut.FindAll("input[type=checkbox]")[1].GetAttribute("aria-invalid"));

        // A phone not in E.164: the server's words under the phone field.
        Type(cut, "Phone number", "07700 900123");
        cut.Find("form[aria-label='Phone number']").Submit();
        cut.WaitForAssertion(() => AssertFieldError(cut, "Phone number", "E.164"));

        Type(cut, "Phone number", "+447700900123");
        cut.Find("form[aria-label='Phone number']").Submit();
        cut.WaitForAssertion(() => Assert.Contains("+447700900123: not verified yet", cut.Find("[data-testid=phone-state]").TextContent, StringComparison.Ordinal));
        Assert.Equal("+447700900123", JsonNode.Parse(Sent("PATCH", "/v1/users/me")[^1].Body!)!["phone"]!.GetValue<string>());

        Type(cut, "6-digit code", "000000");
        cut.Find("form[aria-label='Verify the phone']").Submit();
        cut.WaitForAssertion(() => AssertFieldError(cut, "6-digit code", "wrong or expired"));
        Type(cut, "6-digit code", "123456");
        cut.Find("form[aria-label='Verify the phone']").Submit();
        cut.WaitForAssertion(() => Assert.Contains("+447700900123: verified", cut.Find("[data-testid=phone-state]").TextContent, StringComparison.Ordinal));

        cut.FindAll("input[type=checkbox]")[0].Change(false);
        cut.FindAll("input[type=checkbox]")[1].Change(true);
        cut.Find("form[aria-label='Notification channels']").Submit();
        cut.WaitForAssertion(() => Assert.Contains("email off, text messages on", cut.Markup, StringComparison.Ordinal));
        var last = JsonNode.Parse(Sent("PATCH", "/v1/users/me")[^1].Body!)!["notifications"]!;
        Assert.False(last["email"]!.GetValue<bool>());
        Assert.True(last["sms"]!.GetValue<bool>());
        Assert.Empty(cut.FindAll("[data-testid=sms-error]"));
    }

    [Fact]
    public async Task Notification_log_sends_the_filters_pages_by_starting_after_and_refuses_a_bad_user_id_before_sending()
    {
        await LogInAsync("admin");
        const string Row = """{"id":"ntf_9","user_id":3,"channel":"sms","destination":"+447700900123","template":"payment_received","event_id":"12-0-1","status":"failed","attempts":2,"created_at":"2026-12-05T09:00:00.000Z","last_error":"gateway 503"}""";
        On("GET /v1/admin/notifications", seen => FakeApi.Json(200, seen.Path.Contains("starting_after=", StringComparison.Ordinal)
            ? """{"data":[{"id":"ntf_2","user_id":3,"channel":"email","destination":"a@example.com","template":"payment_sent","event_id":null,"status":"sent","attempts":1,"created_at":"2026-12-05T08:00:00.000Z","last_error":null}],"has_more":false}"""
            : $$"""{"data":[{{Row}}],"has_more":true}"""));
        var cut = RenderPage<NotificationLog>();
        cut.WaitForAssertion(() => Assert.Contains("gateway 503", cut.Find("tr[data-notification-id='ntf_9']").TextContent, StringComparison.Ordinal));

        Type(cut, "User id", "abc");
        cut.Find("form[aria-label='Filter notifications']").Submit();
        cut.WaitForAssertion(() => AssertFieldError(cut, "User id", "positive whole number"));
        Assert.Single(Sent("GET", "/v1/admin/notifications"));

        Type(cut, "User id", "3");
        cut.FindAll("select")[0].Change("sms");
        cut.FindAll("select")[1].Change("failed");
        cut.Find("form[aria-label='Filter notifications']").Submit();
        cut.WaitForAssertion(() => Assert.Equal(2, Sent("GET", "/v1/admin/notifications").Count));
        string q = Sent("GET", "/v1/admin/notifications")[1].Path;
        Assert.Contains("user=3", q, StringComparison.Ordinal);
        Assert.Contains("channel=sms", q, StringComparison.Ordinal);
        Assert.Contains("status=failed", q, StringComparison.Ordinal);

        cut.FindAll("button").Single(b => b.TextContent.Trim() == "More").Click();
        cut.WaitForAssertion(() => Assert.Single(cut.FindAll("tr[data-notification-id='ntf_2']")));
        Assert.Contains("starting_after=ntf_9", Sent("GET", "/v1/admin/notifications")[^1].Path, StringComparison.Ordinal);
    }
}
