using System.Net;
using System.Net.Http.Headers;
using System.Text;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace RamPay.Notifications;

/// <summary>A failed send: <see cref="Permanent"/> ones are dead-lettered at once, the others retried.</summary>
public sealed class SendFailedException(string message, bool permanent, Exception? inner = null) : Exception(message, inner)
{
    public bool Permanent { get; } = permanent;
}

/// <summary>
/// Sends email through SMTP with MailKit over a small pool of open connections (<see cref="SmtpOptions.Connections"/>):
/// a connection sends one message at a time and is reused, so a burst costs one SMTP session, not one per message. A
/// 5xx reply is permanent (dead letter), anything else (4xx, refused connection, timeout) is retried.
/// </summary>
public sealed class EmailSender : IDisposable
{
    private readonly SmtpOptions _options;
    private readonly MailboxAddress _from;
    private readonly System.Threading.Channels.Channel<SmtpClient> _idle;
    private readonly SemaphoreSlim _slots;

    public EmailSender(SmtpOptions options)
    {
        _options = options;
        _from = MailboxAddress.Parse(options.From);
        _slots = new SemaphoreSlim(options.Connections, options.Connections);
        _idle = System.Threading.Channels.Channel.CreateBounded<SmtpClient>(options.Connections);
    }

    public int Concurrency => _options.Connections;

    public async Task SendAsync(NotificationMessage m, CancellationToken cancellationToken)
    {
        var message = new MimeMessage();
        message.From.Add(_from);
        message.To.Add(MailboxAddress.Parse(m.Destination));
        message.Subject = m.Subject;
        // De-duplication handle for receivers and the tests: one Message-Id per outbox row, the same on every attempt.
        message.MessageId = $"ntf-{m.Id}-{m.EventId}@rampay";
        message.Headers.Add("X-RamPay-Notification", m.Template);
        message.Headers.Add("X-RamPay-Event-Id", m.EventId);
        var unsubscribe = UnsubscribeLink(m.BodyText);
        if (unsubscribe is not null)
        {
            message.Headers.Add("List-Unsubscribe", $"<{unsubscribe}>");
            message.Headers.Add("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"); // RFC 8058
        }
        var body = new BodyBuilder { TextBody = m.BodyText, HtmlBody = m.BodyHtml };
        message.Body = body.ToMessageBody();

        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        SmtpClient? client = null;
        try
        {
            client = _idle.Reader.TryRead(out var c) ? c : new SmtpClient { Timeout = 30_000 };
            try
            {
                if (!client.IsConnected)
                {
                    var security = _options.Security switch
                    {
                        "none" => SecureSocketOptions.None,
                        "starttls" => SecureSocketOptions.StartTls,
                        "tls" => SecureSocketOptions.SslOnConnect,
                        _ => SecureSocketOptions.StartTlsWhenAvailable,
                    };
                    await client.ConnectAsync(_options.Host, _options.Port, security, cancellationToken).ConfigureAwait(false);
                    if (_options.UserName.Length > 0) await client.AuthenticateAsync(_options.UserName, _options.Password, cancellationToken).ConfigureAwait(false);
                }
                await client.SendAsync(message, cancellationToken).ConfigureAwait(false);
            }
            catch (SmtpCommandException e)
            {
                // The server answered the command: 5xx is final (no such mailbox, refused), 4xx is for later.
                bool permanent = (int)e.StatusCode >= 500;
                if (!permanent) Drop(ref client);
                else await ResetAsync(client).ConfigureAwait(false);
                throw new SendFailedException($"SMTP {(int)e.StatusCode}: {e.Message}", permanent, e);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or SmtpProtocolException or ServiceNotConnectedException or TimeoutException or AuthenticationException or SslHandshakeException)
            {
                Drop(ref client);
                throw new SendFailedException(e.Message, permanent: false, e);
            }
            catch (OperationCanceledException)
            {
                Drop(ref client);
                throw;
            }
        }
        finally
        {
            if (client is not null && !_idle.Writer.TryWrite(client)) Drop(ref client);
            _slots.Release();
        }
    }

    private static async Task ResetAsync(SmtpClient client)
    {
        try { await client.NoOpAsync().ConfigureAwait(false); }
        catch (Exception) { client.Disconnect(false); }
    }

    private static void Drop(ref SmtpClient? client)
    {
        try { if (client is { IsConnected: true }) client.Disconnect(false); }
        catch (Exception) { /* the connection is broken anyway */ }
        client?.Dispose();
        client = null;
    }

    private static string? UnsubscribeLink(string text)
    {
        const string marker = "To stop them: ";
        int i = text.LastIndexOf(marker, StringComparison.Ordinal);
        if (i < 0) return null;
        int start = i + marker.Length, end = text.IndexOfAny(['\r', '\n'], start);
        return (end < 0 ? text[start..] : text[start..end]).Trim();
    }

    public void Dispose()
    {
        while (_idle.Reader.TryRead(out var c))
        {
            SmtpClient? client = c;
            Drop(ref client);
        }
        _slots.Dispose();
    }
}

/// <summary>
/// Sends SMS through an HTTP gateway with Twilio's Messages request shape: <c>POST</c> to <see cref="SmsOptions.Url"/>,
/// form fields <c>To</c>, <c>From</c>, <c>Body</c>, HTTP basic auth AccountSid:AuthToken. 2xx is sent; 408, 429 and 5xx
/// and network errors are retried; other 4xx (a bad or unsubscribed number: Twilio's 21211, 21610) are permanent.
/// </summary>
public sealed class SmsSender : IDisposable
{
    private readonly SmsOptions _options;
    private readonly HttpClient _http;

    public SmsSender(SmsOptions options, TimeSpan timeout)
    {
        _options = options;
        _http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false, UseProxy = false, UseCookies = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5), MaxConnectionsPerServer = options.MaxConcurrency,
        }) { Timeout = timeout };
        if (options.AccountSid.Length > 0)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{options.AccountSid}:{options.AuthToken}")));
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("RamPay-Notifications/1");
    }

    public int Concurrency => _options.MaxConcurrency;

    public async Task SendAsync(NotificationMessage m, CancellationToken cancellationToken)
    {
        using var content = new FormUrlEncodedContent([new("To", m.Destination), new("From", _options.From), new("Body", m.BodyText)]);
        HttpResponseMessage response;
        try
        {
            response = await _http.PostAsync(_options.Url, content, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new SendFailedException(e.InnerException?.Message ?? e.Message, permanent: false, e);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new SendFailedException("the SMS gateway did not answer in time", permanent: false, e);
        }
        using (response)
        {
            int code = (int)response.StatusCode;
            if (code is >= 200 and <= 299) return;
            string detail = await ReadSome(response, cancellationToken).ConfigureAwait(false);
            bool permanent = code is >= 400 and <= 499 && response.StatusCode is not (HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests);
            throw new SendFailedException($"HTTP {code}: {detail}", permanent);
        }
    }

    private static async Task<string> ReadSome(HttpResponseMessage response, CancellationToken ct)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
        string s = Encoding.UTF8.GetString(bytes, 0, Math.Min(bytes.Length, 300));
        return s.ReplaceLineEndings(" ");
    }

    public void Dispose() => _http.Dispose();
}
