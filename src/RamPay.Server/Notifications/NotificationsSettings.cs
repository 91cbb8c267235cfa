using RamPay.Notifications;

namespace RamPay.Server;

public sealed partial class ServerOptions
{
    public NotificationsSettings Notifications { get; set; } = new();

    /// <summary>Email and SMS notifications (docs/notifications.md). Each channel is off until configured; both need the event log.</summary>
    public sealed class NotificationsSettings
    {
        public NotificationsSmtpSettings Smtp { get; set; } = new();
        public NotificationsSmsSettings Sms { get; set; } = new();

        [Setting("The address people reach this server at, for the unsubscribe link in every email (e.g. https://pay.example.com); empty: the server's own HTTP address.")]
        public string PublicUrl { get; set; } = "";
        [Setting("Run the notifications event consumer in the server (the embedded default). Set false when rampay-worker notifications consumes the Kafka topic instead; the server still sends phone verification codes.")]
        public bool InServerConsumer { get; set; } = true;
        [Setting("An email or SMS attempt's time limit.")]
        public int TimeoutMs { get; set; } = 30_000;
        [Setting("A message not sent this long after it was queued is dead-lettered.")]
        public int MaxAgeMinutes { get; set; } = 24 * 60;
        [Setting("The first retry's delay; each next one doubles, with +-50 % jitter (the webhooks' schedule), up to 30 minutes.")]
        public int RetryBaseMs { get; set; } = 2_000;
        [Setting("Events older than this when the consumer reads them notify nobody (a new consumer on an old journal does not mail its history).")]
        public int MaxEventAgeMinutes { get; set; } = 60;
        [Setting("How long the audit log keeps sent and dead messages (email, SMS and webhook deliveries); older ones are deleted hourly.")]
        public int AuditRetentionDays { get; set; } = 90;
        [Setting("How long a phone verification code is valid.")]
        public int CodeValidityMinutes { get; set; } = 10;
        [Setting("Wrong codes allowed per verification code before it is spent (a new PATCH of the phone sends another).")]
        public int CodeMaxAttempts { get; set; } = 5;
        [Setting("PostgreSQL connection string of the outbox and audit log the server and rampay-worker notifications processes share; empty: the server's own SQLite (<data>/notifications). Preferences stay in the server's store. Set it from a secret.")]
        public string SharedStore { get; set; } = "";
        [Setting("The PostgreSQL schema of that shared outbox (created and migrated at start).")]
        public string SharedStoreSchema { get; set; } = RamPay.Webhooks.PostgresSchema.DefaultSchema;

        public void Validate()
        {
            Smtp.Validate();
            Sms.Validate();
            if (PublicUrl.Length > 0 && (!Uri.TryCreate(PublicUrl, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https")))
                throw new OptionsException("RamPay:Notifications:PublicUrl must be an absolute http(s) URL or empty");
            if (TimeoutMs is < 100 or > 300_000) throw new OptionsException("RamPay:Notifications:TimeoutMs must be 100..300000");
            if (MaxAgeMinutes is < 1 or > 30 * 24 * 60) throw new OptionsException("RamPay:Notifications:MaxAgeMinutes must be 1..43200");
            if (RetryBaseMs is < 10 or > 3_600_000) throw new OptionsException("RamPay:Notifications:RetryBaseMs must be 10..3600000");
            if (MaxEventAgeMinutes is < 1 or > 30 * 24 * 60) throw new OptionsException("RamPay:Notifications:MaxEventAgeMinutes must be 1..43200");
            if (AuditRetentionDays is < 1 or > 3650) throw new OptionsException("RamPay:Notifications:AuditRetentionDays must be 1..3650");
            if (CodeValidityMinutes is < 1 or > 24 * 60 || CodeMaxAttempts is < 1 or > 100) throw new OptionsException("RamPay:Notifications:CodeValidityMinutes must be 1..1440 and CodeMaxAttempts 1..100");
            SharedStoreCheck.Validate("RamPay:Notifications", SharedStore, SharedStoreSchema);
        }

        public NotificationOptions ToOptions() => new()
        {
            Smtp = Smtp.ToOptions(),
            Sms = Sms.ToOptions(),
            Timeout = TimeSpan.FromMilliseconds(TimeoutMs),
            MaxAge = TimeSpan.FromMinutes(MaxAgeMinutes),
            RetryBase = TimeSpan.FromMilliseconds(RetryBaseMs),
            RetryMax = TimeSpan.FromMinutes(30) > TimeSpan.FromMilliseconds(RetryBaseMs) ? TimeSpan.FromMinutes(30) : TimeSpan.FromMilliseconds(RetryBaseMs),
            MaxEventAge = TimeSpan.FromMinutes(MaxEventAgeMinutes),
        };
    }

    /// <summary>Email through SMTP (MailKit). Off while Host is empty.</summary>
    public sealed class NotificationsSmtpSettings
    {
        [Setting("SMTP server for email notifications; empty turns email off.")]
        public string Host { get; set; } = "";
        [Setting("SMTP port (587 submission with STARTTLS, 465 implicit TLS, 25 a local relay).")]
        public int Port { get; set; } = 587;
        [Setting("The sender address of notification emails (required when Host is set).")]
        public string From { get; set; } = "";
        [Setting("SMTP user name; empty: no authentication.")]
        public string UserName { get; set; } = "";
        [Setting("SMTP password (set it from a secret, e.g. RamPay__Notifications__Smtp__Password).")]
        public string Password { get; set; } = "";
        [Setting("auto (STARTTLS when offered), starttls (required), tls (implicit, port 465) or none (plain: a relay on the same host or network).")]
        public string Security { get; set; } = "auto";
        [Setting("SMTP connections kept open (each sends one message at a time).")]
        public int Connections { get; set; } = 4;

        public void Validate()
        {
            if (Host.Length == 0) return;
            if (Port is < 1 or > 65535) throw new OptionsException("RamPay:Notifications:Smtp:Port must be 1..65535");
            if (!MimeKit.MailboxAddress.TryParse(From, out var from) || !from.Address.Contains('@'))
                throw new OptionsException("RamPay:Notifications:Smtp:From must be an email address when RamPay:Notifications:Smtp:Host is set");
            if (Security is not ("auto" or "starttls" or "tls" or "none")) throw new OptionsException("RamPay:Notifications:Smtp:Security must be auto, starttls, tls or none");
            if (Connections is < 1 or > 256) throw new OptionsException("RamPay:Notifications:Smtp:Connections must be 1..256");
        }

        public SmtpOptions ToOptions() => new() { Host = Host, Port = Port, From = From, UserName = UserName, Password = Password, Security = Security, Connections = Connections };
    }

    /// <summary>SMS through an HTTP gateway with Twilio's request shape. Off while Url is empty.</summary>
    public sealed class NotificationsSmsSettings
    {
        [Setting("The SMS gateway's Messages URL (Twilio: https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json); empty turns SMS off.")]
        public string Url { get; set; } = "";
        [Setting("The gateway account (the basic-auth user name).")]
        public string AccountSid { get; set; } = "";
        [Setting("The gateway's auth token (basic-auth password; also checks X-Twilio-Signature on the inbound STOP webhook).")]
        public string AuthToken { get; set; } = "";
        [Setting("The sending number, E.164 (required when Url is set).")]
        public string From { get; set; } = "";
        [Setting("The inbound webhook's URL exactly as the gateway calls it (for X-Twilio-Signature); empty: the request's own URL.")]
        public string InboundUrl { get; set; } = "";
        [Setting("SMS requests in flight at once.")]
        public int MaxConcurrency { get; set; } = 16;

        public void Validate()
        {
            if (Url.Length == 0) return;
            if (!Uri.TryCreate(Url, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https")) throw new OptionsException("RamPay:Notifications:Sms:Url must be an absolute http(s) URL");
            if (!PhoneNumber.IsE164(From)) throw new OptionsException("RamPay:Notifications:Sms:From must be an E.164 number (+15551234567) when RamPay:Notifications:Sms:Url is set");
            if (AccountSid.Length == 0 || AuthToken.Length == 0) throw new OptionsException("RamPay:Notifications:Sms:AccountSid and AuthToken are required when RamPay:Notifications:Sms:Url is set");
            if (MaxConcurrency is < 1 or > 1024) throw new OptionsException("RamPay:Notifications:Sms:MaxConcurrency must be 1..1024");
        }

        public SmsOptions ToOptions() => new() { Url = Url, AccountSid = AccountSid, AuthToken = AuthToken, From = From, MaxConcurrency = MaxConcurrency };
    }
}
