using System.Text.RegularExpressions;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace RamPay.Web.Tests;

// The two notification pages end to end: the real server sends the verification code to the test's SMS receiver (the
// SMS gateway of WebServer, in Twilio's request shape), the user types it in the real browser, and the operator finds
// that text message in the audit log.
public sealed partial class EndToEndTests
{
    /// <summary>The verification code in the text message the server sent to <paramref name="phone"/> (the newest one).</summary>
    private async Task<string> CodeSentToAsync(string phone, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            foreach (string body in server.Sms.Bodies.Reverse())
            {
                var form = body.Split('&').Select(p => p.Split('=', 2)).Where(p => p.Length == 2)
                    .ToDictionary(p => p[0], p => Uri.UnescapeDataString(p[1].Replace('+', ' ')), StringComparer.Ordinal);
                if (form.GetValueOrDefault("To") == phone && Regex.Match(form.GetValueOrDefault("Body", ""), @"verification code is (\d{6})") is { Success: true } m)
                    return m.Groups[1].Value;
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no verification code reached the SMS receiver for {phone} within {seconds} s");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task A_user_verifies_a_phone_with_the_code_sent_by_SMS_and_turns_texts_on_and_an_operator_finds_the_message_in_the_audit_log()
    {
        string email = WebServer.NewEmail("sms");
        var (_, token) = await server.SignUpAsync(email, "Sam");
        long userId = (await server.GetAsync("v1/users/me", token))["user_id"]!.GetValue<long>();
        // A number of this test's own (E.164, UK mobile range kept for drama), so the receiver's messages are told apart.
        string phone = "+4477009" + Random.Shared.Next(10_000, 99_999).ToString(System.Globalization.CultureInfo.InvariantCulture);

        var page = await LogInAsync(email, WebServer.Password);
        await NavigateAsync(page, "settings/notifications");
        await Expect(page.GetByTestId("phone-state")).ToHaveTextAsync("No phone number.");
        // Texts need a verified phone: the server's refusal is shown under the switch, and nothing changed.
        await page.GetByLabel("Text me (needs a verified phone)").CheckAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Save", Exact = true }).ClickAsync();
        await Expect(page.GetByTestId("sms-error")).ToBeVisibleAsync();
        Assert.False((await server.GetAsync("v1/users/me", token))["notifications"]!["sms"]!.GetValue<bool>());

        // Not E.164: refused next to the phone field.
        await page.GetByLabel("Phone number (international form, such as +447700900123)").FillAsync("07700 900123");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save phone and send a code" }).ClickAsync();
        await Expect(page.Locator(".mud-input-error").First).ToBeVisibleAsync();
        await page.GetByLabel("Phone number (international form, such as +447700900123)").FillAsync(phone);
        await page.GetByRole(AriaRole.Button, new() { Name = "Save phone and send a code" }).ClickAsync();
        await Expect(page.GetByTestId("phone-state")).ToHaveTextAsync($"{phone}: not verified yet");
        string code = await CodeSentToAsync(phone);

        // A wrong code is refused under the code field; the right one verifies the phone.
        string wrong = ((int.Parse(code, System.Globalization.CultureInfo.InvariantCulture) + 1) % 1_000_000).ToString("D6", System.Globalization.CultureInfo.InvariantCulture);
        var codeField = page.GetByLabel("The 6-digit code sent by text message");
        await codeField.FillAsync(wrong);
        await page.GetByRole(AriaRole.Button, new() { Name = "Verify", Exact = true }).ClickAsync();
        await Expect(page.Locator(".mud-input-error").First).ToBeVisibleAsync();
        await Expect(page.GetByTestId("phone-state")).ToHaveTextAsync($"{phone}: not verified yet");
        await codeField.FillAsync(code);
        await page.GetByRole(AriaRole.Button, new() { Name = "Verify", Exact = true }).ClickAsync();
        await Expect(page.GetByTestId("phone-state")).ToHaveTextAsync($"{phone}: verified");

        // Now texts can be turned on (and email off): the server has both.
        await page.GetByLabel("Email me about payments to and from my wallet").UncheckAsync();
        await page.GetByLabel("Text me (needs a verified phone)").CheckAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Save", Exact = true }).ClickAsync();
        await Expect(page.Locator("main").GetByRole(AriaRole.Status)).ToBeVisibleAsync();
        await Expect(page.GetByTestId("sms-error")).ToHaveCountAsync(0);
        var me = await server.GetAsync("v1/users/me", token);
        Assert.Equal((phone, true, false, true), (me["phone"]!.GetValue<string>(), me["phone_verified"]!.GetValue<bool>(),
            me["notifications"]!["email"]!.GetValue<bool>(), me["notifications"]!["sms"]!.GetValue<bool>()));
        await CheckPageAsync(page, "notification-settings");
        await page.SetViewportSizeAsync(390, 844);
        await page.WaitForTimeoutAsync(300);
        await CheckPhoneWidthAsync(page, "notification-settings-phone");

        // The operator's audit log: this user's text messages, the verification code among them, sent.
        var admin = await LogInAsync(WebServer.AdminEmail, WebServer.AdminPassword);
        await NavigateAsync(admin, "admin/notifications");
        await admin.GetByLabel("User id").FillAsync(userId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await admin.GetByLabel("Channel").SelectOptionAsync("sms");
        var show = admin.GetByRole(AriaRole.Button, new() { Name = "Show", Exact = true });
        await show.ClickAsync();
        var sent = admin.Locator("tr[data-notification-id][data-status='sent']").Filter(new() { HasText = "phone_verification" });
        await UntilAsync(admin, sent, () => show.ClickAsync());
        await Expect(sent.First).ToContainTextAsync(phone);
        // Only this user's SMS rows are listed.
        foreach (var row in await admin.Locator("tr[data-notification-id]").AllAsync())
        {
            var cells = row.Locator("td");
            Assert.Equal(userId.ToString(System.Globalization.CultureInfo.InvariantCulture), (await cells.Nth(1).InnerTextAsync()).Trim());
            Assert.Equal("sms", (await cells.Nth(2).InnerTextAsync()).Trim());
        }
        // A user id that is not a number is refused before anything is sent.
        await admin.GetByLabel("User id").FillAsync("abc");
        await show.ClickAsync();
        await Expect(admin.Locator(".mud-input-error").First).ToBeVisibleAsync();
        await admin.GetByLabel("User id").FillAsync(userId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await show.ClickAsync();
        await Expect(sent.First).ToBeVisibleAsync();
        await CheckPageAsync(admin, "admin-notifications");
        await admin.SetViewportSizeAsync(390, 844);
        await admin.WaitForTimeoutAsync(300);
        await CheckPhoneWidthAsync(admin, "admin-notifications-phone");
        NoConsoleErrors();
    }
}
