using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MimeKit;
using RamPay.Server.Tests;

namespace RamPay.Notifications.Tests;

/// <summary>Email and SMS notifications against a real server process, a real exim4 and a local SMS gateway (docs/notifications.md).</summary>
[Trait("Category", "Integration")]
public sealed partial class NotificationTests
{
    private static readonly string[] Fast = ["Notifications:RetryBaseMs=200", "Fraud:Enabled=false"];

    private static async Task WaitUntil(Func<bool> done, string what, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!done())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(what);
            await Task.Delay(50);
        }
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> done, string what, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await done())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(what);
            await Task.Delay(100);
        }
    }

    [GeneratedRegex(@"payment (\d+)")]
    private static partial Regex PaymentIdIn();

    private static long PaymentOf(MimeMessage m) => long.Parse(PaymentIdIn().Match(m.TextBody ?? "").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    private static async Task<JsonArray> AuditAsync(Api api, string query) =>
        (await api.GetAsync("/v1/admin/notifications?" + query, await api.AdminTokenAsync())).Expect(HttpStatusCode.OK)["data"]!.AsArray();

    private static string[] Settings(params string[][] parts) => [.. parts.SelectMany(p => p)];

    [Fact]
    public async Task Email_carries_an_unsubscribe_link_that_stops_it_and_only_admins_read_the_audit_log()
    {
        var exim = Exim.Shared();
        using var hooks = new SmsGateway(); // any HTTP receiver will do for the webhook rows of the audit log
        await using var server = await ServerProcess.StartAsync(Settings(exim.Settings(), Fast, ["Webhooks:AllowPrivateNetworks=true"]));
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(100_000);
        (await api.PostAsync("/v1/webhook_endpoints", bob.Token, new { url = hooks.Url, enabled_events = new[] { "PaymentApproved" } }, key: "")).Expect(HttpStatusCode.Created);
        long paid = (await api.PayAsync(alice, bob.WalletId, 1234)).Long("id");

        // 1. Bob gets "money received" by email, with the unsubscribe link in both parts and in List-Unsubscribe.
        await WaitUntil(() => exim.To(bob.Email).Count >= 1, "bob's money_received email");
        var mail = Assert.Single(exim.To(bob.Email));
        Assert.Equal("You received 12.34 USD", mail.Subject);
        Assert.Equal(paid, PaymentOf(mail));
        Assert.Equal("money_received", mail.Headers["X-RamPay-Notification"]);
        Assert.Contains("noreply@rampay.test", mail.From.ToString(), StringComparison.Ordinal);
        string link = Regex.Match(mail.TextBody ?? "", @"To stop them: (\S+)").Groups[1].Value;
        Assert.StartsWith(server.HttpBaseAddress.ToString().TrimEnd('/') + "/v1/notifications/unsubscribe?token=", link, StringComparison.Ordinal);
        Assert.Contains(WebUtility.HtmlEncode(link), mail.HtmlBody, StringComparison.Ordinal);
        Assert.Equal($"<{link}>", mail.Headers["List-Unsubscribe"]);
        Assert.Contains("12.34 USD", mail.HtmlBody, StringComparison.Ordinal);
        await WaitUntil(() => exim.To(alice.Email).Any(m => m.Subject == "You sent 12.34 USD"), "alice's payment_sent email");

        // 2. A forged token is refused and changes nothing; the link itself turns Bob's email off.
        (await api.GetAsync("/v1/notifications/unsubscribe?token=" + bob.UserId + ".forged", null)).ExpectError(HttpStatusCode.BadRequest, "invalid_token");
        Assert.True((await api.GetAsync("/v1/users/me", bob.Token)).Expect(HttpStatusCode.OK)["notifications"]!["email"]!.GetValue<bool>());
        using (var response = await server.Http.GetAsync(new Uri(link)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Contains("no longer", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        var me = (await api.GetAsync("/v1/users/me", bob.Token)).Expect(HttpStatusCode.OK);
        Assert.False(me["notifications"]!["email"]!.GetValue<bool>());
        Assert.False(me["notifications"]!["sms"]!.GetValue<bool>());
        Assert.Null(me["phone"]);
        Assert.False(me["phone_verified"]!.GetValue<bool>());

        // 3. The next payment mails Alice (so its events were handled) and not Bob.
        long paid2 = (await api.PayAsync(alice, bob.WalletId, 500)).Long("id");
        await WaitUntil(() => exim.To(alice.Email).Any(m => m.Subject == "You sent 5.00 USD"), "alice's second payment_sent email");
        await Task.Delay(500);
        Assert.Single(exim.To(bob.Email));

        // 4. The audit log: admins only; every email and the webhook deliveries, newest first, paged by cursor.
        (await api.GetAsync("/v1/admin/notifications", bob.Token)).ExpectError(HttpStatusCode.Forbidden, "forbidden");
        (await api.GetAsync("/v1/admin/notifications", null)).ExpectError(HttpStatusCode.Unauthorized, "unauthorized");
        var bobs = await AuditAsync(api, $"user={bob.UserId}&channel=email");
        var row = Assert.Single(bobs)!;
        Assert.Equal(("email", bob.Email, "money_received", "sent", 1), (row.Str("channel"), row.Str("destination"), row.Str("template"), row.Str("status"), (int)row.Long("attempts")));
        Assert.Null(row["last_error"]);
        await WaitUntilAsync(async () => (await AuditAsync(api, $"user={bob.UserId}&channel=webhook&status=sent")).Count == 2, "both webhook deliveries in the audit log");
        var alices = await AuditAsync(api, $"user={alice.UserId}&limit=100");
        Assert.Equal(["payment_sent", "payment_sent", "money_received"], alices.Select(r => r!.Str("template")));
        var first = (await api.GetAsync($"/v1/admin/notifications?user={alice.UserId}&limit=1", await api.AdminTokenAsync())).Expect(HttpStatusCode.OK);
        Assert.True(first["has_more"]!.GetValue<bool>());
        var next = await AuditAsync(api, $"user={alice.UserId}&limit=5&starting_after={first["data"]![0]!.Str("id")}");
        Assert.Equal(alices.Skip(1).Select(r => r!.Str("id")), next.Select(r => r!.Str("id")));
        var all = await AuditAsync(api, "limit=100");
        Assert.Contains(all, r => r!.Str("channel") == "webhook" && r!.Long("user_id") == bob.UserId && r!.Str("destination") == hooks.Url);
        (await api.GetAsync("/v1/admin/notifications?channel=fax", await api.AdminTokenAsync())).ExpectError(HttpStatusCode.BadRequest, "invalid_request");
        (await api.GetAsync("/v1/admin/notifications?starting_after=ntf_999999", await api.AdminTokenAsync())).ExpectError(HttpStatusCode.BadRequest, "invalid_cursor");
        _ = paid2;
    }

    [Fact]
    public async Task Sms_goes_only_to_a_verified_phone_and_STOP_ends_it()
    {
        var exim = Exim.Shared();
        using var gateway = new SmsGateway();
        await using var server = await ServerProcess.StartAsync(Settings(exim.Settings(), gateway.Settings(), Fast));
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(100_000);
        string phone = "+1555" + Random.Shared.Next(1_000_000, 9_999_999).ToString(System.Globalization.CultureInfo.InvariantCulture);

        // 1. Bad input changes nothing: SMS on with no verified phone, a phone not in E.164.
        (await api.SendAsync(HttpMethod.Patch, "/v1/users/me", bob.Token, new { notifications = new { sms = true } })).ExpectError(HttpStatusCode.BadRequest, "phone_not_verified");
        (await api.SendAsync(HttpMethod.Patch, "/v1/users/me", bob.Token, new { phone = "555-1234" })).ExpectError(HttpStatusCode.BadRequest, "invalid_phone");
        (await api.SendAsync(HttpMethod.Patch, "/v1/users/me", bob.Token, new { phone = 15551234567 })).ExpectError(HttpStatusCode.BadRequest, "invalid_phone");
        Assert.Null((await api.GetAsync("/v1/users/me", bob.Token)).Expect(HttpStatusCode.OK)["phone"]);

        // 2. A new phone: a 6-digit code by SMS (Twilio's form, basic auth), the phone unverified, SMS still off.
        var view = (await api.SendAsync(HttpMethod.Patch, "/v1/users/me", bob.Token, new { phone, notifications = new { sms = false } })).Expect(HttpStatusCode.OK);
        Assert.Equal(phone, view.Str("phone"));
        Assert.False(view["phone_verified"]!.GetValue<bool>());
        await WaitUntil(() => gateway.To(phone).Count == 1, "the verification code by SMS");
        var codeSms = gateway.To(phone)[0];
        Assert.Equal(SmsGateway.From, codeSms.From);
        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{SmsGateway.AccountSid}:{SmsGateway.AuthToken}")), codeSms.Authorization);
        string code = Regex.Match(codeSms.Body, @"\b(\d{6})\b").Groups[1].Value;
        Assert.Equal(6, code.Length);

        // 3. Unverified: a payment mails Bob but sends no SMS.
        long p1 = (await api.PayAsync(alice, bob.WalletId, 100)).Long("id");
        await WaitUntil(() => exim.To(bob.Email).Any(m => PaymentOf(m) == p1), "bob's email for the first payment");
        Assert.Single(gateway.To(phone));
        (await api.SendAsync(HttpMethod.Patch, "/v1/users/me", bob.Token, new { notifications = new { sms = true } })).ExpectError(HttpStatusCode.BadRequest, "phone_not_verified");

        // 4. A wrong code, a malformed one, then the right one; SMS on.
        string wrong = code == "000000" ? "000001" : "000000";
        (await api.PostAsync("/v1/users/me/phone/verify", bob.Token, new { code = wrong }, key: "")).ExpectError(HttpStatusCode.BadRequest, "invalid_code");
        (await api.PostAsync("/v1/users/me/phone/verify", bob.Token, new { code = "12ab56" }, key: "")).ExpectError(HttpStatusCode.BadRequest, "invalid_code");
        (await api.PostAsync("/v1/users/me/phone/verify", alice.Token, new { code }, key: "")).ExpectError(HttpStatusCode.BadRequest, "invalid_code"); // not Alice's
        Assert.True((await api.PostAsync("/v1/users/me/phone/verify", bob.Token, new { code }, key: "")).Expect(HttpStatusCode.OK)["phone_verified"]!.GetValue<bool>());
        Assert.True((await api.SendAsync(HttpMethod.Patch, "/v1/users/me", bob.Token, new { notifications = new { sms = true } })).Expect(HttpStatusCode.OK)["notifications"]!["sms"]!.GetValue<bool>());

        // 5. Verified and on: the payment comes by SMS too.
        long p2 = (await api.PayAsync(alice, bob.WalletId, 250)).Long("id");
        await WaitUntil(() => gateway.To(phone).Any(s => s.Body.Contains($"payment {p2}", StringComparison.Ordinal)), "bob's SMS for the second payment");
        var sms = gateway.To(phone).Single(s => s.Body.Contains($"payment {p2}", StringComparison.Ordinal));
        Assert.Contains("you received 2.50 USD", sms.Body, StringComparison.Ordinal);
        Assert.Contains("Reply STOP", sms.Body, StringComparison.Ordinal);

        // 6. STOP through the inbound webhook: a wrong signature is refused; a signed STOP turns SMS off for good.
        string inbound = server.HttpBaseAddress.ToString().TrimEnd('/') + "/v1/notifications/sms/inbound";
        var form = new Dictionary<string, string> { ["From"] = phone, ["To"] = SmsGateway.From, ["Body"] = "Stop", ["MessageSid"] = "SM123", ["AccountSid"] = SmsGateway.AccountSid };
        Assert.Equal(HttpStatusCode.Forbidden, await PostForm(server, inbound, form, "bm90IGEgc2lnbmF0dXJl"));
        Assert.True((await api.GetAsync("/v1/users/me", bob.Token)).Expect(HttpStatusCode.OK)["notifications"]!["sms"]!.GetValue<bool>());
        Assert.Equal(HttpStatusCode.OK, await PostForm(server, inbound, form, TwilioSignature.Compute(SmsGateway.AuthToken, inbound, form)));
        Assert.False((await api.GetAsync("/v1/users/me", bob.Token)).Expect(HttpStatusCode.OK)["notifications"]!["sms"]!.GetValue<bool>());
        long p3 = (await api.PayAsync(alice, bob.WalletId, 300)).Long("id");
        await WaitUntil(() => exim.To(bob.Email).Any(m => PaymentOf(m) == p3), "bob's email for the third payment");
        await Task.Delay(500);
        Assert.DoesNotContain(gateway.To(phone), s => s.Body.Contains($"payment {p3}", StringComparison.Ordinal));
        // After STOP, turning SMS back on needs the number verified again? No: the user may, but nothing goes out while the number is opted out.
        var smsRows = await AuditAsync(api, $"user={bob.UserId}&channel=sms&limit=100");
        Assert.Equal(["money_received", "phone_verification"], smsRows.Select(r => r!.Str("template")));
        Assert.All(smsRows, r => Assert.Equal("sent", r!.Str("status")));
    }

    private static async Task<HttpStatusCode> PostForm(ServerProcess server, string url, Dictionary<string, string> form, string signature)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new FormUrlEncodedContent(form) };
        request.Headers.TryAddWithoutValidation("X-Twilio-Signature", signature);
        using var response = await server.Http.SendAsync(request);
        return response.StatusCode;
    }

    [Fact]
    public async Task Smtp_down_then_back_is_retried_and_delivered_and_a_refused_address_is_dead_lettered()
    {
        using var exim = Exim.Private(); // not started yet: the SMTP server is down
        await using var server = await ServerProcess.StartAsync(Settings(exim.Settings(), Fast));
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(100_000);
        long paid = (await api.PayAsync(alice, bob.WalletId, 700)).Long("id");

        // 1. Down: attempts fail and wait for a retry (status failed, the error kept).
        await WaitUntilAsync(async () => (await AuditAsync(api, $"user={bob.UserId}&channel=email")).Any(r => r!.Str("status") == "failed"), "a failed attempt in the audit log");
        var failed = (await AuditAsync(api, $"user={bob.UserId}&channel=email"))[0]!;
        Assert.NotNull(failed["last_error"]);
        Assert.Empty(exim.To(bob.Email));

        // 2. Back: the retry delivers it.
        exim.Start();
        await WaitUntil(() => exim.To(bob.Email).Any(m => PaymentOf(m) == paid), "bob's email after SMTP came back");
        await WaitUntilAsync(async () => (await AuditAsync(api, $"user={bob.UserId}&channel=email"))[0]!.Str("status") == "sent", "sent in the audit log");
        var sent = (await AuditAsync(api, $"user={bob.UserId}&channel=email"))[0]!;
        Assert.True(sent.Long("attempts") >= 2, $"attempts {sent.Long("attempts")}");

        // 3. A permanent refusal (550 at RCPT) is dead-lettered at once, with the reason in the audit log.
        string email = $"bounce-{Guid.NewGuid():N}@example.com";
        var created = (await api.PostAsync("/v1/users", null, new { email, password = Api.Password, name = "Bounce", currency = "USD" }, key: "")).Expect(HttpStatusCode.Created);
        long carol = created.Long("user_id");
        await api.PayAsync(alice, created.Long("wallet_account_id"), 100);
        await WaitUntilAsync(async () => (await AuditAsync(api, $"user={carol}&status=dead")).Count == 1, "carol's email dead-lettered");
        var dead = (await AuditAsync(api, $"user={carol}&status=dead"))[0]!;
        Assert.Equal(1, dead.Long("attempts"));
        Assert.Contains("550", dead.Str("last_error"), StringComparison.Ordinal);
        Assert.Empty(await AuditAsync(api, $"user={carol}&status=sent"));
        Assert.Empty(exim.To(email));
    }

    [Fact]
    public async Task SIGKILL_of_the_server_mid_delivery_then_restart_delivers_every_email_at_least_once()
    {
        using var exim = Exim.Private();
        exim.Start();
        await using var server = await ServerProcess.StartAsync(Settings(exim.Settings(connections: 1), Fast));
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(1_000_000);
        const int Payments = 40;
        var ids = new List<long>();
        // 1. Payments whose emails are queued; 2. SIGKILL as soon as the first one is delivered.
        for (int i = 0; i < Payments; i++) ids.Add((await api.PayAsync(alice, bob.WalletId, 100 + i)).Long("id"));
        await WaitUntil(() => exim.To(bob.Email).Count >= 1, "the first of bob's emails");
        await server.KillAsync();
        int before = exim.To(bob.Email).Count;
        Assert.True(before < Payments, $"all {before} emails went out before the kill: the test proves nothing");
        // 3. Restart: every payment's email arrives at least once.
        await server.RestartAsync();
        try
        {
            await WaitUntil(() => ids.All(id => exim.To(bob.Email).Any(m => PaymentOf(m) == id)), "every payment's email to bob after the restart", seconds: 90);
        }
        catch (TimeoutException)
        {
            api.ForgetAdminToken();
            var rows = await AuditAsync(api, $"user={bob.UserId}&limit=100");
            var missing = ids.Where(id => !exim.To(bob.Email).Any(m => PaymentOf(m) == id)).ToList();
            Assert.Fail($"missing {string.Join(",", missing)}; audit: {string.Join("; ", rows.Select(r => $"{r!.Str("event_id")} {r!.Str("status")} {r!.Long("attempts")} {r!["last_error"]}"))}\n{server.Output[^Math.Min(server.Output.Length, 6000)..]}");
        }
        var got = exim.To(bob.Email).Select(PaymentOf).ToList();
        Assert.Equal(ids.Order(), got.Distinct().Order());
        api.ForgetAdminToken();
        await WaitUntilAsync(async () => (await AuditAsync(api, $"user={bob.UserId}&channel=email&status=sent&limit=100")).Count == Payments, "every email sent in the audit log");
    }
}
