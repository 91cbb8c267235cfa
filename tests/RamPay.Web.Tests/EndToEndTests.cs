using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace RamPay.Web.Tests;

/// <summary>
/// The web app end to end (issue 15): a real server process, a real headless chromium, the user's clicks. Every page
/// visited is checked with axe-core (WCAG 2.1 A and AA rules: no violation) and screenshotted into
/// artifacts/screenshots (<see cref="WebServer.Screenshots"/>); a page error, a console error, or a file of the app that does not load
/// (HTTP 4xx/5xx outside /v1) fails the test. Chromium's own "Failed to load resource" console lines are left out: they
/// are its log of the API's 4xx answers, which the app shows in words (an overdraft, an unknown payee), and of the
/// response the test drops on purpose; the app's files are checked by their responses instead.
/// </summary>
[Trait("Category", "EndToEnd")]
[Trait("Category", "Integration")]
public sealed partial class EndToEndTests(WebServer server, ITestOutputHelper output) : IClassFixture<WebServer>
{
    private static readonly Regex ExpectedNetworkLog = new(@"^Failed to load resource: ", RegexOptions.Compiled);

    /// <summary>
    /// A browser of its own (a fresh context: no shared storage) with the app loaded at <paramref name="path"/>. Other
    /// processes on a shared machine may change its network interfaces (containers starting), which makes Chromium
    /// abort requests with ERR_NETWORK_CHANGED; when that stops the app's first load, the load is tried again in a new
    /// context (at most three times) and the abandoned page's console is not counted.
    /// </summary>
    private async Task<IPage> NewPageAsync(string path, bool phone = false)
    {
        for (int attempt = 1; ; attempt++)
        {
            var context = await server.Browser.NewContextAsync(new BrowserNewContextOptions
            {
                BaseURL = server.BaseAddress.ToString(),
                ViewportSize = phone ? new ViewportSize { Width = 390, Height = 844 } : new ViewportSize { Width = 1280, Height = 900 },
            });
            // axe-core is added as an init script (through the DevTools protocol, so the app's CSP, which forbids inline
            // script, stays on for the app itself).
            await context.AddInitScriptAsync(server.AxeSource);
            // Generous waits: the machine running the tests may be loaded, and the app's first load compiles its WebAssembly.
            context.SetDefaultTimeout(60_000);
            SetDefaultExpectTimeout(30_000);
            var page = await context.NewPageAsync();
            var errors = new List<string>();
            bool networkChanged = false;
            page.Console += (_, m) =>
            {
                output.WriteLine($"console {m.Type}: {m.Text}");
                if (m.Text.Contains("ERR_NETWORK_CHANGED", StringComparison.Ordinal)) networkChanged = true;
                if (m.Type == "error" && !ExpectedNetworkLog.IsMatch(m.Text)) lock (errors) errors.Add($"{page.Url}: {m.Text}");
            };
            page.PageError += (_, e) => { lock (errors) errors.Add($"{page.Url}: page error: {e}"); };
            // Every file of the app must load: a 4xx or 5xx that is not an API answer is a broken app.
            page.Response += (_, r) =>
            {
                string p = new Uri(r.Url).AbsolutePath;
                if (r.Status >= 400 && !p.StartsWith("/v1/", StringComparison.Ordinal)) lock (errors) errors.Add($"{r.Url}: HTTP {r.Status}");
            };
            await page.GotoAsync(path);
            try
            {
                await page.Locator("main h1").WaitForAsync(new LocatorWaitForOptions { Timeout = 60_000 });
                _pages.Add(errors);
                return page;
            }
            catch (TimeoutException) when (networkChanged && attempt < 3)
            {
                output.WriteLine($"the app's load was cut by ERR_NETWORK_CHANGED (attempt {attempt}); loading it again");
                await context.CloseAsync();
            }
        }
    }

    /// <summary>Goes to a page of the app the way its links do (client-side routing: no reload of the app).</summary>
    private static async Task NavigateAsync(IPage page, string path)
    {
        await page.EvaluateAsync("p => Blazor.navigateTo(p)", path);
        await page.WaitForURLAsync(new Regex(Regex.Escape(path) + "$"));
    }

    private readonly List<List<string>> _pages = [];

    private void NoConsoleErrors()
    {
        var all = _pages.SelectMany(e => { lock (e) return e.ToList(); }).ToList();
        Assert.True(all.Count == 0, "console errors:\n" + string.Join("\n", all));
    }

    /// <summary>Runs axe-core's WCAG 2.1 A/AA rules on the page as it is and saves a screenshot of it.</summary>
    private async Task CheckPageAsync(IPage page, string name)
    {
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(WebServer.Screenshots, name + ".png"), FullPage = true });
        var violations = await page.EvaluateAsync<JsonElement>("""
            async () => {
              const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
              return r.violations.map(v => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; ')}`);
            }
            """);
        var list = violations.EnumerateArray().Select(v => v.GetString()!).ToList();
        Assert.True(list.Count == 0, $"axe-core on {name} ({page.Url}):\n" + string.Join("\n", list));
        output.WriteLine($"{name}: no WCAG 2.1 AA violation");
    }

    /// <summary>At a phone's width the page must not scroll sideways: fails naming the elements that stick out.</summary>
    private async Task CheckPhoneWidthAsync(IPage page, string name)
    {
        var wide = await page.EvaluateAsync<string[]>("""
            () => document.documentElement.scrollWidth <= window.innerWidth ? [] :
              [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                .filter(e => !e.closest('.rp-table-wrap') || e.classList.contains('rp-table-wrap'))
                .slice(0, 8).map(e => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')} right=${Math.round(e.getBoundingClientRect().right)}`)
            """);
        Assert.True(wide.Length == 0, $"{name} scrolls sideways at {page.ViewportSize?.Width} px: " + string.Join("; ", wide));
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(WebServer.Screenshots, name + ".png"), FullPage = true });
    }

    /// <summary>
    /// Back to a desktop's width. The responsive drawer opens again and pushes the page to the right with a slide-in
    /// transition; a click sent while the page moves lands beside its target (CI saw a Delete press that never reached
    /// its button), so this returns once the drawer is open and the transition is over.
    /// </summary>
    private static async Task WideAgainAsync(IPage page)
    {
        await page.SetViewportSizeAsync(1280, 900);
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Menu", Exact = true })).ToHaveAttributeAsync("aria-expanded", "true");
        await page.WaitForTimeoutAsync(600); // MudBlazor's drawer transition is 225 ms; twice that and more
    }

    private async Task<IPage> LogInAsync(string email, string password)
    {
        var page = await NewPageAsync("login");
        await page.GetByLabel("Email").FillAsync(email);
        await page.GetByLabel("Password").FillAsync(password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in", Exact = true }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Log out" })).ToBeVisibleAsync();
        return page;
    }

    private static async Task FillPayAsync(IPage page, string payeeEmail, string amount)
    {
        await NavigateAsync(page, "pay");
        await page.GetByLabel("Payee's email").FillAsync(payeeEmail);
        await page.GetByLabel("Amount (USD)").FillAsync(amount);
    }

    private static long IdOf(string text) => long.Parse(Regex.Match(text, @"#(\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Two_users_sign_up_one_deposits_and_pays_the_other_who_refunds_part()
    {
        string aliceEmail = WebServer.NewEmail("alice"), bobEmail = WebServer.NewEmail("bob");
        var alice = await NewPageAsync("signup");
        await Expect(alice.GetByRole(AriaRole.Heading, new() { Name = "Sign up" })).ToBeVisibleAsync();
        await CheckPageAsync(alice, "signup");
        await alice.GetByLabel("Name").FillAsync("Alice");
        await alice.GetByLabel("Email").FillAsync(aliceEmail);
        await alice.GetByLabel("Password (at least 8 characters)").FillAsync(WebServer.Password);
        await alice.GetByRole(AriaRole.Button, new() { Name = "Sign up" }).ClickAsync();
        await Expect(alice.GetByRole(AriaRole.Heading, new() { Name = "Wallet" })).ToBeVisibleAsync();

        await alice.GetByLabel("Amount (USD)").FillAsync("100");
        await alice.GetByRole(AriaRole.Button, new() { Name = "Deposit" }).ClickAsync();
        await Expect(alice.GetByTestId("available")).ToHaveTextAsync("100.00 USD");
        await CheckPageAsync(alice, "wallet");

        // Bob, in a browser of his own (keyboard only: Tab to each field, Enter submits).
        var bob = await NewPageAsync("signup", phone: true);
        await bob.GetByLabel("Name").FocusAsync();
        await bob.Keyboard.TypeAsync("Bob");
        await bob.Keyboard.PressAsync("Tab");
        await bob.Keyboard.TypeAsync(bobEmail);
        await bob.Keyboard.PressAsync("Tab");
        await bob.Keyboard.TypeAsync(WebServer.Password);
        await bob.Keyboard.PressAsync("Enter");
        await Expect(bob.GetByRole(AriaRole.Heading, new() { Name = "Wallet" })).ToBeVisibleAsync();
        await Expect(bob.GetByTestId("available")).ToHaveTextAsync("0.00 USD");
        Assert.True(await bob.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"), "the wallet scrolls sideways at a phone's width");
        await CheckPageAsync(bob, "wallet-phone");

        // Alice pays Bob 25.50 by email.
        await FillPayAsync(alice, bobEmail, "25.50");
        await alice.GetByLabel("Description (optional)").FillAsync("dinner");
        await CheckPageAsync(alice, "pay");
        await alice.GetByTestId("pay-button").ClickAsync();
        await Expect(alice.GetByTestId("paid-id")).ToContainTextAsync("Payment #");
        long paymentId = IdOf(await alice.GetByTestId("paid-id").InnerTextAsync());
        await Expect(alice.GetByTestId("available")).ToHaveTextAsync("74.50 USD");

        // Bob refunds 5.25 of it from the payment's page.
        await NavigateAsync(bob, $"payments/{paymentId}");
        await Expect(bob.GetByTestId("status")).ToHaveTextAsync("posted");
        await bob.GetByLabel("Amount to refund (USD)").FillAsync("5.25");
        await bob.GetByRole(AriaRole.Button, new() { Name = "Refund" }).ClickAsync();
        await Expect(bob.GetByTestId("refunded")).ToHaveTextAsync("5.25 USD");
        await CheckPageAsync(bob, "payment-detail");

        await NavigateAsync(alice, "wallet");
        await Expect(alice.GetByTestId("available")).ToHaveTextAsync("79.75 USD");
        await NavigateAsync(alice, "history");
        await Expect(alice.Locator($"tr[data-payment-id='{paymentId}']")).ToBeVisibleAsync();
        await alice.GetByLabel("Kind").SelectOptionAsync("refund");
        await alice.GetByRole(AriaRole.Button, new() { Name = "Filter" }).ClickAsync();
        await Expect(alice.Locator($"tr[data-payment-id='{paymentId}']")).ToHaveCountAsync(0);
        await Expect(alice.Locator("tbody tr[data-payment-id]")).ToHaveCountAsync(1);
        await CheckPageAsync(alice, "history");
        NoConsoleErrors();
    }

    [Fact]
    public async Task An_overdraft_is_shown_in_words_next_to_the_amount_and_moves_nothing()
    {
        var (_, payee, wallet, token, _, _, page) = await PayerAndPayeeAsync("over", "Olga", 1_000);
        await FillPayAsync(page, payee, "20.00");
        await page.GetByTestId("pay-button").ClickAsync();
        var amountField = page.Locator(".mud-input-control").Filter(new() { Has = page.GetByLabel("Amount (USD)") });
        await Expect(amountField).ToContainTextAsync("available balance is lower than the amount");
        await Expect(page.GetByLabel("Amount (USD)")).ToHaveAttributeAsync("aria-invalid", "true");
        await CheckPageAsync(page, "pay-overdraft");
        Assert.Single(await server.PaymentIdsAsync(wallet, token)); // the deposit only
        NoConsoleErrors();
    }

    [Fact]
    public async Task A_double_clicked_Pay_makes_one_payment()
    {
        var (_, payee, wallet, token, _, _, page) = await PayerAndPayeeAsync("dbl", "Dora", 10_000);
        await FillPayAsync(page, payee, "3.00");
        await page.GetByTestId("pay-button").DblClickAsync();
        await Expect(page.GetByTestId("paid-id")).ToContainTextAsync("Payment #");
        await page.WaitForTimeoutAsync(500); // anything a second click sent would have landed by now
        Assert.Equal(2, (await server.PaymentIdsAsync(wallet, token)).Count); // the deposit and one payment
        await Expect(page.GetByTestId("available")).ToHaveTextAsync("97.00 USD");
        NoConsoleErrors();
    }

    [Fact]
    public async Task A_Pay_whose_response_is_lost_is_retried_by_the_app_and_shows_the_same_payment()
    {
        var (_, payee, wallet, token, _, _, page) = await PayerAndPayeeAsync("lost", "Lou", 10_000);
        await FillPayAsync(page, payee, "4.00");

        // The first POST reaches the server (the payment is made) but its response is dropped on the way back.
        long madeId = 0;
        var keys = new List<string>();
        await page.RouteAsync("**/v1/payments", async route =>
        {
            keys.Add(route.Request.Headers["idempotency-key"]);
            if (keys.Count == 1)
            {
                var response = await route.FetchAsync();
                madeId = JsonDocument.Parse(await response.TextAsync()).RootElement.GetProperty("id").GetInt64();
                await route.AbortAsync("connectionreset");
                return;
            }
            await route.ContinueAsync();
        });
        await page.GetByTestId("pay-button").ClickAsync();
        await Expect(page.GetByTestId("paid-id")).ToContainTextAsync("Payment #");
        Assert.Equal(madeId, IdOf(await page.GetByTestId("paid-id").InnerTextAsync()));
        Assert.Equal(2, keys.Count);
        Assert.Equal(keys[0], keys[1]);
        Assert.Equal(2, (await server.PaymentIdsAsync(wallet, token)).Count); // the deposit and one payment
        NoConsoleErrors();
    }

    [Fact]
    public async Task A_payment_held_by_fraud_screening_is_approved_by_an_admin_in_the_review_queue()
    {
        var (payer, payee, wallet, token, payeeWallet, payeeToken, user) = await PayerAndPayeeAsync("held", "Hal", 20_000);
        await FillPayAsync(user, payee, "60.00");
        await user.GetByTestId("pay-button").ClickAsync();
        await Expect(user.GetByTestId("paid-id")).ToContainTextAsync("Payment #");
        await Expect(user.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync("held for review");
        long heldId = IdOf(await user.GetByTestId("paid-id").InnerTextAsync());

        var admin = await LogInAsync(WebServer.AdminEmail, WebServer.AdminPassword);
        await Expect(admin.GetByRole(AriaRole.Heading, new() { Name = "Review queue" })).ToBeVisibleAsync();
        var row = admin.Locator($"tr[data-payment-id='{heldId}']");
        await Expect(row).ToContainTextAsync("amount over threshold");
        await CheckPageAsync(admin, "admin-review");
        await admin.GetByRole(AriaRole.Button, new() { Name = $"Approve payment {heldId}" }).ClickAsync();
        await Expect(admin.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync($"Payment #{heldId} approved: now posted");
        await Expect(row).ToHaveCountAsync(0);
        var payment = await server.GetAsync($"v1/payments/{heldId}", payeeToken);
        Assert.Equal("posted", payment["status"]!.GetValue<string>());
        Assert.Equal(6_000, (await server.GetAsync($"v1/accounts/{payeeWallet}", payeeToken))["available"]!.GetValue<long>());

        // The other operator pages, each checked and pictured.
        await NavigateAsync(admin, "admin/users");
        await admin.GetByLabel("Email contains").FillAsync(payer[..8]);
        await admin.GetByRole(AriaRole.Button, new() { Name = "Search" }).ClickAsync();
        await Expect(admin.Locator("tbody tr[data-user-id]")).ToHaveCountAsync(1);
        await admin.GetByRole(AriaRole.Button, new() { Name = $"Freeze account {wallet}" }).ClickAsync();
        await Expect(admin.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync($"Account {wallet} frozen");
        await CheckPageAsync(admin, "admin-users");
        Assert.True((await server.GetAsync($"v1/accounts/{wallet}", token))["frozen"]!.GetValue<bool>());
        await admin.GetByRole(AriaRole.Button, new() { Name = $"Unfreeze account {wallet}" }).ClickAsync();
        await Expect(admin.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync($"Account {wallet} unfrozen");

        await NavigateAsync(admin, $"admin/payments?account={wallet}");
        await Expect(admin.Locator($"tr[data-payment-id='{heldId}']")).ToBeVisibleAsync();
        await CheckPageAsync(admin, "admin-payments");
        await NavigateAsync(admin, "admin/health");
        await Expect(admin.GetByTestId("health-status")).ToHaveTextAsync("ready");
        // The sinks' lag: on the embedded default the event log is the one sink, with its checkpoint and lag.
        var eventsSink = admin.Locator("table:has(caption:has-text('Sinks and their lag')) tbody tr").Filter(new() { HasText = "events" });
        await Expect(eventsSink).ToHaveCountAsync(1);
        await Expect(eventsSink.Locator("td").Nth(1)).ToHaveTextAsync("ok");
        await CheckPageAsync(admin, "admin-health");
        NoConsoleErrors();
    }

    // ---- the pages of webhooks, rewards, analytics and dead letters ----------------------------------------------------

    /// <summary>Presses <paramref name="refresh"/> until <paramref name="found"/> has a match (the app does not poll by itself).</summary>
    private static async Task UntilAsync(IPage page, ILocator found, Func<Task> refresh, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (await found.CountAsync() == 0)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"nothing matched {found} within {seconds} s");
            await page.WaitForTimeoutAsync(500);
            await refresh();
        }
    }

    [Fact]
    public async Task A_user_adds_a_webhook_endpoint_sees_its_secret_once_then_its_deliveries_redelivers_one_and_disables_it()
    {
        using var receiver = new WebhookReceiver();
        string email = WebServer.NewEmail("hook");
        var (wallet, token) = await server.SignUpAsync(email, "Hana", depositMinor: 1_000);
        var page = await LogInAsync(email, WebServer.Password);
        await NavigateAsync(page, "webhooks");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Webhook endpoints" })).ToBeVisibleAsync();
        await page.GetByLabel("URL (https://...)").FillAsync(receiver.Url);
        await page.GetByLabel("Description (optional)").FillAsync("my shop");
        await page.GetByRole(AriaRole.Button, new() { Name = "Add endpoint" }).ClickAsync();
        await Expect(page.GetByTestId("secret")).ToContainTextAsync("whsec_");
        string secret = (await page.GetByTestId("secret").InnerTextAsync()).Trim();
        var row = page.Locator("tr[data-endpoint-id]");
        await Expect(row).ToHaveCountAsync(1);
        string endpointId = (await row.GetAttributeAsync("data-endpoint-id"))!;
        await CheckPageAsync(page, "webhooks");
        // Shown once: the API never lists it again, and once put away the page has it no more.
        Assert.DoesNotContain(secret, (await server.GetAsync("v1/webhook_endpoints", token)).ToJsonString(), StringComparison.Ordinal);
        await page.GetByRole(AriaRole.Button, new() { Name = "I have kept it" }).ClickAsync();
        await Expect(page.GetByTestId("secret")).ToHaveCountAsync(0);

        // An event for it (a deposit), delivered to the receiver, shown among the deliveries.
        await server.DepositAsync(wallet, token, 500);
        await page.GetByRole(AriaRole.Button, new() { Name = $"Deliveries of endpoint {endpointId}" }).ClickAsync();
        var show = page.GetByRole(AriaRole.Button, new() { Name = "Show", Exact = true });
        var succeeded = page.Locator("tr[data-delivery-id][data-status='succeeded']");
        await UntilAsync(page, succeeded, () => show.ClickAsync());
        await page.GetByLabel("Status").SelectOptionAsync("succeeded");
        await show.ClickAsync();
        await Expect(page.Locator("tr[data-delivery-id]:not([data-status='succeeded'])")).ToHaveCountAsync(0);
        int before = receiver.Count;
        await succeeded.First.GetByRole(AriaRole.Button, new() { Name = "Redeliver" }).ClickAsync();
        await Expect(page.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync("queued again");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (receiver.Count <= before && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.True(receiver.Count > before, "the redelivered event did not reach the receiver");
        await CheckPageAsync(page, "webhook-deliveries");

        await page.GetByRole(AriaRole.Button, new() { Name = $"Disable endpoint {endpointId}" }).ClickAsync();
        await Expect(page.GetByTestId("endpoint-status")).ToHaveTextAsync("disabled");
        Assert.Equal("disabled", (await server.GetAsync($"v1/webhook_endpoints/{endpointId}", token))["status"]!.GetValue<string>());
        await page.SetViewportSizeAsync(390, 844);
        await page.WaitForTimeoutAsync(300); // the layout settles (the drawer folds away)
        await CheckPhoneWidthAsync(page, "webhooks-phone");

        // Deleted, after the confirmation: gone from the page and from the API.
        await WideAgainAsync(page);
        var delete = page.GetByRole(AriaRole.Button, new() { Name = $"Delete endpoint {endpointId}", Exact = true });
        await delete.ClickAsync();
        // Pressing Delete again while the confirmation shows changes nothing, so a press lost to the layout is retried.
        await UntilAsync(page, page.GetByTestId("confirm-delete"), () => delete.ClickAsync(), seconds: 20);
        await Expect(page.GetByTestId("confirm-delete")).ToContainTextAsync("cannot be undone");
        await CheckPageAsync(page, "webhooks-delete");
        await page.GetByRole(AriaRole.Button, new() { Name = $"Delete for good: endpoint {endpointId}" }).ClickAsync();
        await Expect(page.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync($"Endpoint {endpointId} deleted");
        await Expect(page.Locator("tr[data-endpoint-id]")).ToHaveCountAsync(0);
        Assert.Empty((await server.GetAsync("v1/webhook_endpoints", token))["data"]!.AsArray());
        NoConsoleErrors();
    }

    [Fact]
    public async Task An_operator_defines_a_cashback_rule_and_funds_it_and_the_payer_sees_the_reward_then_the_rule_is_ended()
    {
        string payer = WebServer.NewEmail("rwd"), payee = WebServer.NewEmail("shop");
        await server.SignUpAsync(payer, "Rita", depositMinor: 10_000);
        var (payeeWallet, _) = await server.SignUpAsync(payee, "Shop");
        // Only payments to this test's payee earn it, so the other tests' balances are not touched.
        string name = $"Shop {payeeWallet} cashback";
        var admin = await LogInAsync(WebServer.AdminEmail, WebServer.AdminPassword);
        await NavigateAsync(admin, "admin/rewards");
        await admin.GetByLabel("Name", new() { Exact = true }).FillAsync(name);
        await admin.GetByLabel("Cashback (%)").FillAsync("1.5");
        await admin.GetByLabel("Only payments to these accounts (comma-separated; optional)").FillAsync(payeeWallet.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await admin.GetByRole(AriaRole.Button, new() { Name = "Create rule" }).ClickAsync();
        await Expect(admin.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync("in force from now on");
        await admin.GetByLabel("Top-up amount (USD)").FillAsync("100");
        await admin.GetByRole(AriaRole.Button, new() { Name = "Top up", Exact = true }).ClickAsync();
        await Expect(admin.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync("Topped up 100.00 USD");
        var ruleRow = admin.Locator("tr[data-rule-id]").Filter(new() { HasText = name });
        await Expect(ruleRow.GetByTestId("rule-status")).ToHaveTextAsync("active");
        await CheckPageAsync(admin, "admin-rewards");

        var user = await LogInAsync(payer, WebServer.Password);
        await FillPayAsync(user, payee, "20.00");
        await user.GetByTestId("pay-button").ClickAsync();
        await Expect(user.GetByTestId("paid-id")).ToContainTextAsync("Payment #");
        long paid = IdOf(await user.GetByTestId("paid-id").InnerTextAsync());
        // 1.5 % of 20.00 USD, paid by the rewards consumer once the payment's events reach it.
        await NavigateAsync(user, "rewards");
        await UntilAsync(user, user.Locator("tr[data-reward-id]"), async () => { await NavigateAsync(user, "wallet"); await NavigateAsync(user, "rewards"); });
        await Expect(user.Locator("tr[data-reward-id]")).ToHaveCountAsync(1);
        await Expect(user.Locator("tr[data-reward-id]")).ToContainTextAsync($"#{paid}");
        await Expect(user.GetByTestId("rewards-total-USD")).ToHaveTextAsync("0.30 USD");
        await CheckPageAsync(user, "rewards");
        await user.SetViewportSizeAsync(390, 844);
        await user.WaitForTimeoutAsync(300);
        await CheckPhoneWidthAsync(user, "rewards-phone");

        // The operator changes the rule (2 % from now on): the form holds its terms, the API has version 2.
        await ruleRow.GetByRole(AriaRole.Button, new() { Name = "Change rule" }).ClickAsync();
        await Expect(admin.GetByTestId("rule-form-title")).ToHaveTextAsync(new Regex(@"^Change rule \d+$"));
        await Expect(admin.GetByLabel("Cashback (%)")).ToHaveValueAsync("1.50");
        await admin.GetByLabel("Cashback (%)").FillAsync("2");
        await admin.GetByRole(AriaRole.Button, new() { Name = "Save changes" }).ClickAsync();
        await Expect(admin.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync("changed: version 2");
        await Expect(ruleRow).ToContainTextAsync("2.00 %");
        string adminToken = await server.TokenAsync(WebServer.AdminEmail, WebServer.AdminPassword);
        var changed = (await server.GetAsync("v1/admin/reward_rules", adminToken))["data"]!.AsArray().Single(r => r!["name"]!.GetValue<string>() == name)!;
        Assert.Equal((200, 2), (changed["percent_bps"]!.GetValue<int>(), changed["version"]!.GetValue<int>()));

        await ruleRow.GetByRole(AriaRole.Button, new() { Name = "End rule" }).ClickAsync();
        await Expect(ruleRow.GetByTestId("rule-status")).ToHaveTextAsync("ended");
        NoConsoleErrors();
    }

    [Fact]
    public async Task An_operator_sees_dead_lettered_deliveries_and_the_analytics_charts()
    {
        string email = WebServer.NewEmail("dead");
        var (wallet, token) = await server.SignUpAsync(email, "Dee", depositMinor: 1_000);
        // An endpoint nothing listens on: its delivery fails, and deleting the endpoint dead-letters it.
        var endpoint = await server.SendAsync(HttpMethod.Post, "v1/webhook_endpoints", token,
            new { url = $"http://127.0.0.1:{WebhookReceiver.FreePort()}/hook", enabled_events = new[] { "*" } }, System.Net.HttpStatusCode.Created);
        string endpointId = endpoint["id"]!.GetValue<string>();
        await server.DepositAsync(wallet, token, 100);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await server.GetAsync($"v1/webhook_endpoints/{endpointId}/deliveries?status=failed", token))["data"]!.AsArray().Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "no failed attempt within 60 s");
            await Task.Delay(200);
        }
        await server.SendAsync(HttpMethod.Delete, $"v1/webhook_endpoints/{endpointId}", token, null, System.Net.HttpStatusCode.OK);

        var admin = await LogInAsync(WebServer.AdminEmail, WebServer.AdminPassword);
        await NavigateAsync(admin, "admin/deliveries");
        var rows = admin.Locator("tr[data-delivery-id]").Filter(new() { HasText = endpointId });
        await Expect(rows.First).ToBeVisibleAsync();
        Assert.Equal(await rows.CountAsync(), await admin.Locator($"tr[data-delivery-id][data-status='dead']").Filter(new() { HasText = endpointId }).CountAsync());
        await Expect(rows.First).ToContainTextAsync("127.0.0.1");
        await CheckPageAsync(admin, "admin-dead-letters");
        // Its endpoint is gone: the operator is told so in words, and the row says it.
        await rows.First.GetByRole(AriaRole.Button, new() { Name = "Redeliver" }).ClickAsync();
        await Expect(admin.Locator("main").GetByRole(AriaRole.Alert)).ToContainTextAsync("No such webhook endpoint");
        await Expect(rows.First).ToContainTextAsync("The endpoint is deleted.");

        await NavigateAsync(admin, "admin/analytics");
        await Expect(admin.GetByTestId("analytics-range")).ToContainTextAsync("24 buckets");
        // The day's deposits are in the rollups (the analytics consumer may be a moment behind).
        var desc = admin.Locator("svg[data-testid=volume-chart] desc");
        await UntilAsync(admin, admin.Locator("svg[data-testid=volume-chart] desc:not(:has-text('highest 0.00 USD'))"),
            () => admin.GetByRole(AriaRole.Button, new() { Name = "Show", Exact = true }).ClickAsync());
        Assert.DoesNotContain("highest 0.00 USD", await desc.TextContentAsync(), StringComparison.Ordinal);
        await Expect(admin.GetByTestId("fraud-chart")).ToBeVisibleAsync();
        // Acknowledgement latency of this server's own commands (the deposits above among them): p50 and p99 drawn.
        await Expect(admin.GetByTestId("latency-chart")).ToBeVisibleAsync();
        await Expect(admin.Locator("svg[data-testid=latency-chart] circle.rp-line-p99").First).ToBeAttachedAsync();
        Assert.DoesNotContain("Nothing was acknowledged", await admin.Locator("svg[data-testid=latency-chart] desc").TextContentAsync(), StringComparison.Ordinal);
        await CheckPageAsync(admin, "admin-analytics");
        await admin.SetViewportSizeAsync(390, 844);
        await admin.WaitForTimeoutAsync(300);
        await CheckPhoneWidthAsync(admin, "admin-analytics-phone");
        await NavigateAsync(admin, "admin/deliveries");
        await Expect(rows.First).ToBeVisibleAsync();
        await CheckPhoneWidthAsync(admin, "admin-dead-letters-phone");
        NoConsoleErrors();
    }
}
