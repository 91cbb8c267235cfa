using System.Net;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace RamPay.Web.Tests;

// Issue 15's remaining user and operator flows in the browser: an authorization captured in part (the rest released)
// and another voided, a payment's events on its detail page, a held payment declined by an operator; and the content
// security policy and security headers on the app's responses (and the API's own answers left without them).
public sealed partial class EndToEndTests
{
    /// <summary>A payer (signed up with a deposit, logged in in a browser of their own) and a payee to pay.</summary>
    private sealed record PayerAndPayee(string Payer, string Payee, long Wallet, string Token, long PayeeWallet, string PayeeToken, IPage Page);

    private async Task<PayerAndPayee> PayerAndPayeeAsync(string who, string name, long depositMinor)
    {
        string payer = WebServer.NewEmail(who), payee = WebServer.NewEmail("payee");
        var (wallet, token) = await server.SignUpAsync(payer, name, depositMinor);
        var (payeeWallet, payeeToken) = await server.SignUpAsync(payee, "Pat");
        return new PayerAndPayee(payer, payee, wallet, token, payeeWallet, payeeToken, await LogInAsync(payer, WebServer.Password));
    }

    /// <summary>An authorization to the payee by email, or (given <paramref name="payeeAccount"/>) by account number.</summary>
    private static async Task AuthorizeAsync(IPage page, string payeeEmail, string amount, long? payeeAccount = null)
    {
        await FillPayAsync(page, payeeEmail, amount);
        if (payeeAccount is { } account)
        {
            await page.GetByLabel("Account number", new() { Exact = true }).CheckAsync();
            await page.GetByLabel("Payee's account number").FillAsync(account.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        await page.GetByLabel("Authorize only: hold the money now, capture or void it later").CheckAsync();
        await Expect(page.GetByTestId("pay-button")).ToHaveTextAsync("Authorize");
        await page.GetByTestId("pay-button").ClickAsync();
        await Expect(page.GetByTestId("paid-id")).ToContainTextAsync("Payment #");
        await Expect(page.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync("authorized");
    }

    [Fact]
    public async Task An_authorization_is_captured_in_part_another_is_voided_and_the_payments_events_are_shown()
    {
        var (_, payee, wallet, token, payeeWallet, payeeToken, page) = await PayerAndPayeeAsync("auth", "Ann", 10_000);

        // 30.00 held: available drops, posted does not.
        await AuthorizeAsync(page, payee, "30.00");
        long held = IdOf(await page.GetByTestId("paid-id").InnerTextAsync());
        await Expect(page.GetByTestId("available")).ToHaveTextAsync("70.00 USD");
        await NavigateAsync(page, $"payments/{held}");
        await Expect(page.GetByTestId("status")).ToHaveTextAsync("authorized");
        await CheckPageAsync(page, "payment-authorized");

        // More than the hold is refused, in words, next to the amount; then 12.34 captured, the rest released.
        var capture = page.GetByLabel("Amount to capture (USD; empty = all of it)");
        await capture.FillAsync("30.01");
        await page.GetByRole(AriaRole.Button, new() { Name = "Capture", Exact = true }).ClickAsync();
        await Expect(capture).ToHaveAttributeAsync("aria-invalid", "true");
        await Expect(page.GetByTestId("status")).ToHaveTextAsync("authorized");
        await capture.FillAsync("12.34");
        await page.GetByRole(AriaRole.Button, new() { Name = "Capture", Exact = true }).ClickAsync();
        await Expect(page.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync("Captured 12.34 USD");
        await Expect(page.GetByTestId("status")).ToHaveTextAsync("captured");
        var payment = await server.GetAsync($"v1/payments/{held}", token);
        Assert.Equal(("captured", 1_234L), (payment["status"]!.GetValue<string>(), payment["captured"]!.GetValue<long>()));
        Assert.Equal(1_234, (await server.GetAsync($"v1/accounts/{payeeWallet}", payeeToken))["available"]!.GetValue<long>());
        Assert.Equal(10_000 - 1_234, (await server.GetAsync($"v1/accounts/{wallet}", token))["available"]!.GetValue<long>());

        // Its events, from the event log (a moment behind the ledger): created, authorized, captured.
        var captured = page.Locator("tr[data-event-type='PaymentCaptured']");
        await UntilAsync(page, captured, async () => { await NavigateAsync(page, "wallet"); await NavigateAsync(page, $"payments/{held}"); });
        await Expect(page.Locator("tr[data-event-type='PaymentCreated']")).ToHaveCountAsync(1);
        await Expect(page.Locator("tr[data-event-type='PaymentAuthorized']")).ToHaveCountAsync(1);
        await Expect(page.Locator("tr[data-event-id]")).ToHaveCountAsync(3);
        await CheckPageAsync(page, "payment-events");
        await page.SetViewportSizeAsync(390, 844);
        await page.WaitForTimeoutAsync(300); // the layout settles (the drawer folds away)
        await CheckPhoneWidthAsync(page, "payment-events-phone");
        await WideAgainAsync(page);

        // A second authorization, to the payee's account number this time, voided: the money is back.
        await AuthorizeAsync(page, payee, "5.00", payeeAccount: payeeWallet);
        long voided = IdOf(await page.GetByTestId("paid-id").InnerTextAsync());
        Assert.Equal(payeeWallet, (await server.GetAsync($"v1/payments/{voided}", token))["to_account"]!.GetValue<long>());
        await NavigateAsync(page, $"payments/{voided}");
        await page.GetByRole(AriaRole.Button, new() { Name = "Void", Exact = true }).ClickAsync();
        await Expect(page.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync("Voided");
        await Expect(page.GetByTestId("status")).ToHaveTextAsync("voided");
        Assert.Equal(10_000 - 1_234, (await server.GetAsync($"v1/accounts/{wallet}", token))["available"]!.GetValue<long>());
        Assert.Equal(3, (await server.PaymentIdsAsync(wallet, token)).Count); // the deposit and the two authorizations
        NoConsoleErrors();
    }

    [Fact]
    public async Task A_held_payment_declined_by_an_operator_releases_the_payers_money()
    {
        var (_, payee, wallet, token, _, _, user) = await PayerAndPayeeAsync("decl", "Dan", 20_000);
        await FillPayAsync(user, payee, "75.00");
        await user.GetByTestId("pay-button").ClickAsync();
        await Expect(user.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync("held for review");
        long heldId = IdOf(await user.GetByTestId("paid-id").InnerTextAsync());
        await Expect(user.GetByTestId("available")).ToHaveTextAsync("125.00 USD");

        var admin = await LogInAsync(WebServer.AdminEmail, WebServer.AdminPassword);
        await admin.GetByRole(AriaRole.Button, new() { Name = $"Decline payment {heldId}" }).ClickAsync();
        await Expect(admin.Locator("main").GetByRole(AriaRole.Status)).ToContainTextAsync($"Payment #{heldId} declined");
        await Expect(admin.Locator($"tr[data-payment-id='{heldId}']")).ToHaveCountAsync(0);
        Assert.Equal("declined", (await server.GetAsync($"v1/payments/{heldId}", token))["status"]!.GetValue<string>());
        Assert.Equal(20_000, (await server.GetAsync($"v1/accounts/{wallet}", token))["available"]!.GetValue<long>());

        await NavigateAsync(user, $"payments/{heldId}");
        await Expect(user.GetByTestId("status")).ToHaveTextAsync("declined");
        NoConsoleErrors();
    }

    [Fact]
    public async Task The_apps_responses_carry_the_content_security_policy_and_security_headers_and_the_apis_do_not_become_the_app()
    {
        // A page route (the app's index.html), the app's own files and the framework's script (its name, fingerprinted,
        // read from index.html).
        string html = await server.Http.GetStringAsync("");
        string framework = System.Text.RegularExpressions.Regex.Match(html, @"src=""(_framework/blazor\.webassembly[^""]*\.js)""").Groups[1].Value;
        Assert.False(framework.Length == 0, "index.html names no _framework/blazor.webassembly script:\n" + html);
        foreach (string path in new[] { "", "wallet", "admin/analytics", "css/app.css", framework })
        {
            using var r = await server.Http.GetAsync(path);
            Assert.True(r.StatusCode == HttpStatusCode.OK, $"GET /{path}: {(int)r.StatusCode}");
            string csp = string.Join(";", r.Headers.TryGetValues("Content-Security-Policy", out var v) ? v : []);
            foreach (string part in new[] { "default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "connect-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'self'" })
                Assert.Contains(part, csp, StringComparison.Ordinal);
            Assert.DoesNotContain("'unsafe-eval'", csp.Replace("'wasm-unsafe-eval'", "", StringComparison.Ordinal), StringComparison.Ordinal);
            Assert.DoesNotContain("script-src 'self' 'unsafe-inline'", csp, StringComparison.Ordinal);
            Assert.Equal("nosniff", Header(r, "X-Content-Type-Options"));
            Assert.Equal("DENY", Header(r, "X-Frame-Options"));
            Assert.Equal("no-referrer", Header(r, "Referrer-Policy"));
            Assert.Equal("same-origin", Header(r, "Cross-Origin-Opener-Policy"));
            Assert.Contains("camera=()", Header(r, "Permissions-Policy"), StringComparison.Ordinal);
        }
        using (var index = await server.Http.GetAsync("wallet"))
            Assert.Equal("text/html", index.Content.Headers.ContentType?.MediaType);
        // An unknown API path stays the API's JSON 404, not the app's page.
        using (var api = await server.Http.GetAsync("v1/no-such-thing"))
        {
            Assert.Equal(HttpStatusCode.NotFound, api.StatusCode);
            Assert.Equal("application/json", api.Content.Headers.ContentType?.MediaType);
            Assert.Contains("\"not_found\"", await api.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // And in the browser the policy is in force with the app working under it: no violation reported.
        var page = await NewPageAsync("login");
        var violations = await page.EvaluateAsync<int>("""
            () => new Promise(resolve => {
              let n = 0;
              document.addEventListener('securitypolicyviolation', () => n++);
              setTimeout(() => resolve(n), 500);
            })
            """);
        Assert.Equal(0, violations);
        Assert.Equal("DENY", (await page.EvaluateAsync<string>("async () => (await fetch('/login')).headers.get('x-frame-options')")));
        NoConsoleErrors();
    }

    private static string Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? string.Join(",", v) : r.Content.Headers.TryGetValues(name, out var c) ? string.Join(",", c) : "";
}
