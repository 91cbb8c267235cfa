using System.Net;
using RamPay.Server.Tests;

namespace RamPay.Notifications.Tests;

/// <summary>
/// Issue 12: notifications go out for money received, payment sent, refund received, payment held for review or
/// declined, and account frozen or unfrozen. <see cref="NotificationTests"/> covers the first two; this test makes a real
/// server (fraud rules a test can trip: 5,000 or more is held for review) go through the other five, and reads each
/// email from exim's maildir, addressed to the one it is about and to nobody else.
/// </summary>
[Trait("Category", "Integration")]
public sealed class NotificationKindsTests
{
    private static async Task<MimeKit.MimeMessage> MailAsync(Exim exim, string to, string subject)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (exim.To(to).FirstOrDefault(m => m.Subject == subject) is { } found) return found;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"no email '{subject}' to {to}; it has: {string.Join(" | ", exim.To(to).Select(m => m.Subject))}");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Refunds_holds_declines_freezes_and_unfreezes_each_mail_the_one_they_are_about()
    {
        var exim = Exim.Shared();
        await using var server = await ServerProcess.StartAsync([.. exim.Settings(), "Notifications:RetryBaseMs=200",
            "Fraud:Enabled=true", "Fraud:ReviewThreshold=2", "Fraud:DeclineThreshold=2", "Fraud:AmountThreshold=5000", "Fraud:MaxPaymentsPerDay=1000"]);
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(100_000);
        string admin = await api.AdminTokenAsync();

        // 1. Refund received: Bob refunds part of Alice's payment; Alice is told.
        long paid = (await api.PayAsync(alice, bob.WalletId, 1_000)).Long("id");
        (await api.PostAsync($"/v1/payments/{paid}/refunds", bob.Token, new { amount = 400, currency = "USD" })).Expect(HttpStatusCode.Created);
        var refunded = await MailAsync(exim, alice.Email, "You were refunded 4.00 USD");
        Assert.Equal("refund_received", refunded.Headers["X-RamPay-Notification"]);

        // 2. Held for review, then declined by an admin: the payer is told both times.
        var held = (await api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 6_000, currency = "USD" }))
            .Expect(HttpStatusCode.Created);
        Assert.Equal("held_for_review", held.Str("status"));
        Assert.Equal("payment_held", (await MailAsync(exim, alice.Email, "Your payment of 60.00 USD is held for review")).Headers["X-RamPay-Notification"]);
        (await api.PostAsync($"/v1/payments/{held.Long("id")}/review", admin, new { decision = "decline" })).Expect(HttpStatusCode.OK);
        Assert.Equal("payment_declined", (await MailAsync(exim, alice.Email, "Your payment of 60.00 USD was declined")).Headers["X-RamPay-Notification"]);

        // 3. Frozen, then unfrozen: the account's owner is told.
        (await api.PostAsync($"/v1/admin/accounts/{bob.WalletId}/freeze", admin, null)).Expect(HttpStatusCode.OK);
        Assert.Equal("account_frozen", (await MailAsync(exim, bob.Email, $"Your account {bob.WalletId} is frozen")).Headers["X-RamPay-Notification"]);
        (await api.PostAsync($"/v1/admin/accounts/{bob.WalletId}/unfreeze", admin, null)).Expect(HttpStatusCode.OK);
        Assert.Equal("account_unfrozen", (await MailAsync(exim, bob.Email, $"Your account {bob.WalletId} is active again")).Headers["X-RamPay-Notification"]);

        // Each went only to the one it is about: Bob was not told of Alice's hold, decline or refund; Alice not of Bob's freeze.
        var bobs = exim.To(bob.Email).Select(m => m.Headers["X-RamPay-Notification"]).ToList();
        Assert.DoesNotContain("payment_held", bobs);
        Assert.DoesNotContain("payment_declined", bobs);
        Assert.DoesNotContain("refund_received", bobs);
        Assert.DoesNotContain(exim.To(alice.Email), m => m.Headers["X-RamPay-Notification"] is "account_frozen" or "account_unfrozen");
        // Every email carries its unsubscribe link.
        Assert.All(exim.To(alice.Email).Concat(exim.To(bob.Email)), m => Assert.Contains("/v1/notifications/unsubscribe?token=", m.Headers["List-Unsubscribe"], StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_sms_the_gateway_refuses_with_500_is_retried_until_sent_and_audited_with_its_attempts()
    {
        using var gateway = new SmsGateway();
        await using var server = await ServerProcess.StartAsync([.. gateway.Settings(), "Notifications:RetryBaseMs=200", "Fraud:Enabled=false"]);
        var api = new Api(server);
        var user = await api.SignUpAsync();
        string phone = "+1555" + Random.Shared.Next(1_000_000, 9_999_999).ToString(System.Globalization.CultureInfo.InvariantCulture);
        gateway.Script(500, 503);
        (await api.SendAsync(HttpMethod.Patch, "/v1/users/me", user.Token, new { phone })).Expect(HttpStatusCode.OK);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (gateway.To(phone).Count < 3)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{gateway.To(phone).Count} SMS attempts reached the gateway");
            await Task.Delay(100);
        }
        var sent = gateway.To(phone);
        Assert.Single(sent.Select(s => s.Body).Distinct()); // the same message each time
        // The audit log: one SMS row, sent, after 3 attempts (a 500, a 503, then the 201).
        string admin = await api.AdminTokenAsync();
        System.Text.Json.Nodes.JsonNode? row = null;
        deadline = DateTime.UtcNow.AddSeconds(60);
        while (row is null || row.Str("status") != "sent")
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the audit row: {row?.ToJsonString()}");
            var rows = (await api.GetAsync($"/v1/admin/notifications?user={user.UserId}&channel=sms", admin)).Expect(HttpStatusCode.OK)["data"]!.AsArray();
            row = Assert.Single(rows);
            await Task.Delay(100);
        }
        Assert.Equal(("phone_verification", phone, 3L), (row.Str("template"), row.Str("destination"), row.Long("attempts")));
        await Task.Delay(500);
        Assert.Equal(3, gateway.To(phone).Count); // sent once it was accepted: no fourth attempt
    }
}
