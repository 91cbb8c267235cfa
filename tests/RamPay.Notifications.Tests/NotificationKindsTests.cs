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
}
