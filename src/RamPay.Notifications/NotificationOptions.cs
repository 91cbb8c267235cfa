namespace RamPay.Notifications;

/// <summary>SMTP: off while <see cref="Host"/> is empty.</summary>
public sealed record SmtpOptions
{
    public string Host { get; init; } = "";
    public int Port { get; init; } = 587;
    /// <summary>The envelope sender and From: header.</summary>
    public string From { get; init; } = "";
    public string UserName { get; init; } = "";
    public string Password { get; init; } = "";
    /// <summary><c>none</c> (plain, a local relay), <c>starttls</c> (STARTTLS required), <c>tls</c> (implicit TLS, port 465), <c>auto</c> (STARTTLS when offered).</summary>
    public string Security { get; init; } = "auto";
    /// <summary>Connections kept open to the server (each sends one message at a time).</summary>
    public int Connections { get; init; } = 4;

    public bool Enabled => Host.Length > 0;
}

/// <summary>The SMS gateway (Twilio's Messages request shape): off while <see cref="Url"/> is empty.</summary>
public sealed record SmsOptions
{
    /// <summary>POST target, e.g. <c>https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json</c>.</summary>
    public string Url { get; init; } = "";
    public string AccountSid { get; init; } = "";
    public string AuthToken { get; init; } = "";
    /// <summary>The sending number (E.164) or messaging service.</summary>
    public string From { get; init; } = "";
    public int MaxConcurrency { get; init; } = 16;

    public bool Enabled => Url.Length > 0;
}

/// <summary>The notification dispatcher's settings (the server's <c>RamPay:Notifications:*</c>).</summary>
public sealed record NotificationOptions
{
    public SmtpOptions Smtp { get; init; } = new();
    public SmsOptions Sms { get; init; } = new();
    /// <summary>An attempt's time limit.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>A message not sent this long after it was queued is dead-lettered.</summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromDays(1);
    /// <summary>The first retry's delay; doubles each time with ±50 % jitter (the webhooks' <see cref="RamPay.Webhooks.Retry"/>) up to <see cref="RetryMax"/>.</summary>
    public TimeSpan RetryBase { get; init; } = TimeSpan.FromSeconds(2);
    public TimeSpan RetryMax { get; init; } = TimeSpan.FromMinutes(30);
    /// <summary>Events older than this when the consumer reads them notify nobody (a new consumer on an old journal does not mail its history).</summary>
    public TimeSpan MaxEventAge { get; init; } = TimeSpan.FromHours(1);
    /// <summary>How often the dispatcher looks for due messages when idle (it is also woken when messages are queued).</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromMilliseconds(50);
    /// <summary>How long a dispatcher holds the messages it claimed (longer than an attempt): when a worker dies mid-send, another of its group sends them once this has passed.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(90);

    public void Validate()
    {
        if (Lease <= Timeout) throw new ArgumentException("the notification claim lease must be longer than an attempt's timeout");
        if (Timeout <= TimeSpan.Zero || MaxAge <= TimeSpan.Zero || RetryBase <= TimeSpan.Zero || RetryMax < RetryBase || MaxEventAge <= TimeSpan.Zero)
            throw new ArgumentException("notification timeouts must be positive, RetryMax >= RetryBase");
        if (Smtp.Connections is < 1 or > 256 || Sms.MaxConcurrency is < 1 or > 1024) throw new ArgumentException("notification concurrency limits out of range");
    }
}

/// <summary>Who a notification goes to, as the recipient directory knows them now.</summary>
/// <param name="Email">The address, or null when email notifications are off for them.</param>
/// <param name="Phone">A verified E.164 number, or null when SMS is off, the phone unverified, or the number has sent STOP.</param>
/// <param name="UnsubscribeUrl">The signed link every email carries.</param>
public sealed record Recipient(long UserId, string Name, string? Email, string? Phone, string UnsubscribeUrl);

/// <summary>Finds a user's contact details and choices (the server: its ledger and preference store; a worker: the server's API).</summary>
public interface IRecipientDirectory
{
    ValueTask<Recipient?> FindAsync(long userId, CancellationToken cancellationToken);
}
