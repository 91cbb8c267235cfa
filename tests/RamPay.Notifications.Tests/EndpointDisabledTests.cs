using RamPay.Webhooks;

namespace RamPay.Notifications.Tests;

/// <summary>
/// An endpoint disabled for failing: its owner gets an email through the notifications outbox (template, real exim4,
/// the audit log), sent once.
/// </summary>
[Trait("Category", "Integration")]
public sealed class EndpointDisabledTests
{
    private sealed class OneRecipient(Recipient r) : IRecipientDirectory
    {
        public ValueTask<Recipient?> FindAsync(long userId, CancellationToken cancellationToken) => ValueTask.FromResult<Recipient?>(userId == r.UserId ? r : null);
    }

    [Fact]
    public async Task The_owner_of_an_endpoint_disabled_for_failing_is_emailed_once_and_the_message_is_audited()
    {
        var exim = Exim.Shared();
        string dir = Directory.CreateTempSubdirectory("rampay-disabled-").FullName;
        string email = $"owner-{Guid.NewGuid():N}@rampay.test";
        try
        {
            using var hooks = new WebhookStore(Path.Combine(dir, "webhooks"));
            using var outbox = new NotificationStore(Path.Combine(dir, "notifications"));
            // 1. An endpoint nobody answers at (a closed port), failing long enough to be disabled within the test.
            var endpoint = hooks.Create(7, false, "http://127.0.0.1:1/hook", ["*"], null, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            hooks.Enqueue([new(endpoint.Id, 7, endpoint.Url, "1-0-0", "PaymentApproved", "{}"u8.ToArray())], "webhooks", null, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            var hookOptions = new WebhookOptions
            {
                AllowPrivateNetworks = true, RetryBase = TimeSpan.FromMilliseconds(50), RetryMax = TimeSpan.FromMilliseconds(200), Timeout = TimeSpan.FromSeconds(1),
                DisableAfter = TimeSpan.FromMilliseconds(400), BreakerFailures = 1000,
            };
            var options = new NotificationOptions { Smtp = new SmtpOptions { Host = exim.Host, Port = exim.Port, From = "noreply@rampay.test", Security = "none", Connections = 1 }, Poll = TimeSpan.FromMilliseconds(20) };
            using var hookDispatcher = new WebhookDispatcher(hooks, hookOptions, new UrlGuard(true));
            using var mailer = new NotificationDispatcher(outbox, options);
            var notifier = new EndpointDisabledNotifier(outbox, new OneRecipient(new Recipient(7, "Olga", email, null, "http://rampay.test/unsub")), options);
            notifier.Enqueued += mailer.Wake;
            hookDispatcher.Disabled += notifier.Handler(hookOptions.DisableAfter);
            WebhookEndpoint? disabled = null;
            hookDispatcher.Disabled += e => disabled = e;
            using var stop = new CancellationTokenSource();
            var running = new[] { hookDispatcher.RunAsync(stop.Token), mailer.RunAsync(stop.Token) };
            // 2. The endpoint is disabled and the owner's email arrives.
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (exim.To(email).Count == 0 && DateTime.UtcNow < deadline) await Task.Delay(100);
            await Task.Delay(500);
            stop.Cancel();
            await Task.WhenAll(running);
            Assert.Equal("disabled", hooks.Endpoint(endpoint.Id)!.Status);
            var mail = Assert.Single(exim.To(email));
            Assert.Equal($"Your webhook endpoint {endpoint.Id} was disabled", mail.Subject);
            Assert.Contains("http://127.0.0.1:1/hook", mail.TextBody, StringComparison.Ordinal);
            Assert.Contains("http://rampay.test/unsub", mail.HtmlBody, StringComparison.Ordinal);
            // 3. Audited: the outbox row is the audit log's, sent, with the template's name.
            var row = Assert.Single(outbox.Page(7, "email", null, long.MaxValue, long.MaxValue, 10));
            Assert.Equal((NotificationTemplates.WebhookEndpointDisabled, "sent", email), (row.Template, row.AuditStatus, row.Destination));
            // 4. Once: the same disabling told again adds nothing.
            Assert.Equal(0, await notifier.NotifyAsync(disabled!, hookOptions.DisableAfter));
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
