using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using MailKit.Net.Smtp;
using MimeKit;
using Xunit.Abstractions;

namespace RamPay.Notifications.Tests;

/// <summary>
/// Notifications sent per second through the outbox and dispatcher, to a real exim4 and to the local SMS receiver, each
/// against a baseline measured in the same run, interleaved: the same messages sent straight (MailKit on one reused
/// connection per sender task; HttpClient POSTs), with no outbox, no retry bookkeeping. docs/benchmarks.md.
/// RAMPAY_NOTIFY_BENCH_N sets the messages per round (default 60: a quick check that every message arrives; docs/benchmarks.md used 300).
/// </summary>
[Trait("Category", "Integration")]
public sealed class ThroughputTests(ITestOutputHelper output)
{
    private static readonly int N = int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_NOTIFY_BENCH_N"), out int n) ? n : 60;
    private const int Rounds = 3;

    private static NotificationStore.NewMessage Email(int i, string run) =>
        new(1, "email", $"bench-{run}@example.com", "money_received", $"{run}-{i}", "You received 1.00 USD", $"Hello,\n\nYou received 1.00 USD (payment {i}).\n", "<p>You received <strong>1.00 USD</strong>.</p>");

    private static NotificationStore.NewMessage Sms(int i, string run) =>
        new(1, "sms", "+15550001234", "money_received", $"{run}-{i}", "", $"RamPay: you received 1.00 USD (payment {i}). Reply STOP to opt out.", null);

    private static async Task<double> ThroughOutboxAsync(NotificationOptions options, Func<int, NotificationStore.NewMessage> message, Func<int> delivered)
    {
        string dir = Directory.CreateTempSubdirectory("rampay-notify-bench-").FullName;
        try
        {
            using var store = new NotificationStore(dir);
            var batch = Enumerable.Range(0, N).Select(message).ToList();
            int before = delivered();
            using var dispatcher = new NotificationDispatcher(store, options);
            using var stop = new CancellationTokenSource();
            var watch = Stopwatch.StartNew();
            // Queued in batches of 100 as the consumer does (one transaction per event batch), while the dispatcher runs.
            var run = Task.Run(() => dispatcher.RunAsync(stop.Token));
            for (int i = 0; i < batch.Count; i += 100)
            {
                store.Enqueue(batch.GetRange(i, Math.Min(100, batch.Count - i)), "bench", null, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                dispatcher.Wake();
            }
            var deadline = DateTime.UtcNow.AddMinutes(3);
            while (delivered() - before < N)
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"{delivered() - before} of {N} delivered");
                await Task.Delay(2);
            }
            double rate = N / watch.Elapsed.TotalSeconds;
            // Every outcome recorded (a message can be received before its answer reaches the dispatcher).
            while (store.PendingCount() > 0)
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"{store.PendingCount()} still pending after delivery");
                await Task.Delay(10);
            }
            stop.Cancel();
            await run;
            return rate;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static int Files(string maildir) => Directory.Exists(Path.Combine(maildir, "new")) ? Directory.EnumerateFiles(Path.Combine(maildir, "new")).Count() : 0;

    private static async Task<double> StraightSmtpAsync(Exim exim, int connections, Func<int, NotificationStore.NewMessage> message)
    {
        int before = Files(exim.Maildir);
        var watch = Stopwatch.StartNew();
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, connections).Select(async _ =>
        {
            using var client = new SmtpClient();
            await client.ConnectAsync(exim.Host, exim.Port, MailKit.Security.SecureSocketOptions.None);
            int i;
            while ((i = Interlocked.Increment(ref next)) < N)
            {
                var m = message(i);
                var mime = new MimeMessage();
                mime.From.Add(MailboxAddress.Parse("noreply@rampay.test"));
                mime.To.Add(MailboxAddress.Parse(m.Destination));
                mime.Subject = m.Subject;
                mime.Body = new BodyBuilder { TextBody = m.BodyText, HtmlBody = m.BodyHtml }.ToMessageBody();
                await client.SendAsync(mime);
            }
            await client.DisconnectAsync(true);
        }));
        while (Files(exim.Maildir) - before < N) await Task.Delay(2);
        return N / watch.Elapsed.TotalSeconds;
    }

    private static async Task<double> StraightSmsAsync(SmsGateway gateway, int concurrency, Func<int, NotificationStore.NewMessage> message)
    {
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{SmsGateway.AccountSid}:{SmsGateway.AuthToken}")));
        int before = gateway.Received.Count;
        var watch = Stopwatch.StartNew();
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < N)
            {
                var m = message(i);
                using var content = new FormUrlEncodedContent([new("To", m.Destination), new("From", SmsGateway.From), new("Body", m.BodyText)]);
                using var r = await http.PostAsync(gateway.Url, content);
                r.EnsureSuccessStatusCode();
            }
        }));
        Assert.Equal(N, gateway.Received.Count - before);
        return N / watch.Elapsed.TotalSeconds;
    }

    private static double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);

    [Fact]
    public async Task Email_and_SMS_throughput_against_a_straight_send_baseline()
    {
        using var exim = Exim.Private();
        exim.Start();
        using var gateway = new SmsGateway();
        const int Connections = 4, SmsConcurrency = 16;
        var email = new NotificationOptions { Smtp = new SmtpOptions { Host = exim.Host, Port = exim.Port, From = "noreply@rampay.test", Security = "none", Connections = Connections }, Poll = TimeSpan.FromMilliseconds(5) };
        var sms = new NotificationOptions { Sms = new SmsOptions { Url = gateway.Url, AccountSid = SmsGateway.AccountSid, AuthToken = SmsGateway.AuthToken, From = SmsGateway.From, MaxConcurrency = SmsConcurrency }, Poll = TimeSpan.FromMilliseconds(5) };
        var results = new Dictionary<string, List<double>> { ["email outbox"] = [], ["email straight"] = [], ["sms outbox"] = [], ["sms straight"] = [] };
        for (int round = 0; round < Rounds; round++)
        {
            string run = $"r{round}";
            results["email straight"].Add(await StraightSmtpAsync(exim, Connections, i => Email(i, run + "s")));
            results["email outbox"].Add(await ThroughOutboxAsync(email, i => Email(i, run + "o"), () => Files(exim.Maildir)));
            results["sms straight"].Add(await StraightSmsAsync(gateway, SmsConcurrency, i => Sms(i, run + "s")));
            results["sms outbox"].Add(await ThroughOutboxAsync(sms, i => Sms(i, run + "o"), () => gateway.Received.Count));
        }
        string load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "?";
        foreach (var (name, xs) in results)
            output.WriteLine($"{name}: median {Median(xs):0} msg/s over {Rounds} rounds of {N} ({string.Join(", ", xs.Select(x => x.ToString("0", System.Globalization.CultureInfo.InvariantCulture)))})");
        output.WriteLine($"load average: {load}");
        Assert.All(results.Values, xs => Assert.All(xs, x => Assert.True(x > 0)));
    }
}
