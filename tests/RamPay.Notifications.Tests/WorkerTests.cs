using System.Net;
using System.Text.RegularExpressions;
using RamPay.Kafka.Tests;
using RamPay.Server.Tests;

namespace RamPay.Notifications.Tests;

/// <summary>
/// <c>rampay-worker notifications</c> on a real Kafka-protocol broker fed by a real server's Kafka sink, mailing through
/// a real exim4: recipients and choices come from the server (a service token), so an unsubscribe made on the server
/// stops the worker's emails too.
/// </summary>
[Trait("Category", "Integration")]
public sealed class WorkerTests
{
    [Fact]
    public async Task The_notifications_worker_mails_from_the_topic_and_honours_the_servers_unsubscribe()
    {
        var exim = Exim.Shared();
        string topic = "rampay.notify.test";
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:2");
        await using var server = await ServerProcess.StartAsync($"Kafka:BootstrapServers={broker.Bootstrap}", $"Kafka:Topic={topic}", "Fraud:Enabled=false",
            "Notifications:InServerConsumer=false");
        var api = new Api(server);
        string token = (await api.PostAsync("/v1/admin/service_tokens", await api.AdminTokenAsync(), new { name = "notifications" }, key: "")).Expect(HttpStatusCode.OK).Str("access_token");
        string outbox = Directory.CreateTempSubdirectory("rampay-notify-worker-").FullName;
        using var worker = new WorkerProcess(
            ["notifications", "--kafka", broker.Bootstrap, "--group", "notifiers", "--topic", topic, "--server", server.HttpBaseAddress.ToString(), "--out", outbox],
            new Dictionary<string, string>
            {
                ["RAMPAY_SERVICE_TOKEN"] = token,
                ["RAMPAY_NOTIFICATIONS__SMTP__HOST"] = exim.Host,
                ["RAMPAY_NOTIFICATIONS__SMTP__PORT"] = exim.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["RAMPAY_NOTIFICATIONS__SMTP__FROM"] = "RamPay <noreply@rampay.test>",
                ["RAMPAY_NOTIFICATIONS__SMTP__SECURITY"] = "none",
            });
        try
        {
            var (alice, bob) = await api.PairAsync(100_000);
            long p1 = (await api.PayAsync(alice, bob.WalletId, 321)).Long("id");
            await WaitUntil(() => exim.To(bob.Email).Any(m => m.TextBody?.Contains($"payment {p1}", StringComparison.Ordinal) == true), "bob's email from the worker", () => worker.Output);
            var mail = exim.To(bob.Email).Single();
            Assert.Equal("You received 3.21 USD", mail.Subject);
            // The link is the server's (the worker has no secret of its own): it turns Bob's email off there.
            string link = Regex.Match(mail.TextBody ?? "", @"To stop them: (\S+)").Groups[1].Value;
            Assert.StartsWith(server.HttpBaseAddress.ToString().TrimEnd('/') + "/v1/notifications/unsubscribe?token=", link, StringComparison.Ordinal);
            using (var r = await server.Http.GetAsync(new Uri(link))) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            long p2 = (await api.PayAsync(alice, bob.WalletId, 654)).Long("id");
            await WaitUntil(() => exim.To(alice.Email).Any(m => m.TextBody?.Contains($"payment {p2}", StringComparison.Ordinal) == true), "alice's email for the second payment", () => worker.Output);
            await Task.Delay(500);
            Assert.Single(exim.To(bob.Email));
            // The worker's health-check mode (the image's HEALTHCHECK) fails on a port nobody answers.
            Assert.Equal(1, await WorkerProcess.RunToExitAsync("--health-check", "http://127.0.0.1:1/health/live"));
        }
        finally
        {
            worker.Kill();
            try { Directory.Delete(outbox, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task WaitUntil(Func<bool> done, string what, Func<string> context, int seconds = 90)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!done())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(what + "\n" + context());
            await Task.Delay(100);
        }
    }
}
