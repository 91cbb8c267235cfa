using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace RamPay.Web.Tests;

/// <summary>
/// The web app end to end (issue 15): a real server process, a real headless chromium, the user's clicks. Every page
/// visited is checked with axe-core (WCAG 2.1 A and AA rules: no violation) and screenshotted into
/// tests/RamPay.Web.Tests/out/screenshots; a page error, a console error, or a file of the app that does not load
/// (HTTP 4xx/5xx outside /v1) fails the test. Chromium's own "Failed to load resource" console lines are left out: they
/// are its log of the API's 4xx answers, which the app shows in words (an overdraft, an unknown payee), and of the
/// response the test drops on purpose; the app's files are checked by their responses instead.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class EndToEndTests(WebServer server, ITestOutputHelper output) : IClassFixture<WebServer>
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
        string payer = WebServer.NewEmail("over"), payee = WebServer.NewEmail("payee");
        var (wallet, token) = await server.SignUpAsync(payer, "Olga", depositMinor: 1_000);
        await server.SignUpAsync(payee, "Pat");
        var page = await LogInAsync(payer, WebServer.Password);
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
        string payer = WebServer.NewEmail("dbl"), payee = WebServer.NewEmail("payee");
        var (wallet, token) = await server.SignUpAsync(payer, "Dora", depositMinor: 10_000);
        await server.SignUpAsync(payee, "Pat");
        var page = await LogInAsync(payer, WebServer.Password);
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
        string payer = WebServer.NewEmail("lost"), payee = WebServer.NewEmail("payee");
        var (wallet, token) = await server.SignUpAsync(payer, "Lou", depositMinor: 10_000);
        await server.SignUpAsync(payee, "Pat");
        var page = await LogInAsync(payer, WebServer.Password);
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
        string payer = WebServer.NewEmail("held"), payee = WebServer.NewEmail("payee");
        var (wallet, token) = await server.SignUpAsync(payer, "Hal", depositMinor: 20_000);
        var (payeeWallet, payeeToken) = await server.SignUpAsync(payee, "Pat");
        var user = await LogInAsync(payer, WebServer.Password);
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
        await CheckPageAsync(admin, "admin-health");
        NoConsoleErrors();
    }
}
