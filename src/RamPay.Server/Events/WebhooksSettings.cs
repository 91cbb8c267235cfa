namespace RamPay.Server;

public sealed partial class ServerOptions
{
    public WebhooksSettings Webhooks { get; set; } = new();

    /// <summary>Signed webhooks (docs/webhooks.md). They need the event log (RamPay:Events:Enabled).</summary>
    public sealed class WebhooksSettings
    {
        [Setting("Deliver events to registered webhook endpoints and to payments' own webhook_url (needs RamPay:Events:Enabled).")]
        public bool Enabled { get; set; } = true;
        [Setting("Allow webhook URLs on loopback, private and link-local networks, and plain http (tests, private deployments); false refuses them at registration and at connect time.")]
        public bool AllowPrivateNetworks { get; set; }
        [Setting("An attempt's time limit: any 2xx within it is delivered.")]
        public int TimeoutMs { get; set; } = 10_000;
        [Setting("A delivery failing this long after it was queued is dead-lettered (Stripe: 3 days).")]
        public int MaxAgeMinutes { get; set; } = 3 * 24 * 60;
        [Setting("The first retry's delay; each next one doubles, with +-50 % jitter, up to an hour.")]
        public int RetryBaseMs { get; set; } = 2_000;
        [Setting("Webhook attempts in flight at once, over all endpoints.")]
        public int MaxConcurrency { get; set; } = RamPay.Webhooks.WebhookOptions.DefaultMaxConcurrency;
        [Setting("Webhook attempts in flight at once to one endpoint (and the most connections to one host and port); at most MaxConcurrency is used.")]
        public int MaxPerEndpoint { get; set; } = RamPay.Webhooks.WebhookOptions.DefaultMaxPerEndpoint;
        [Setting("How long a rotated-out signing secret keeps signing beside the new one.")]
        public int SecretOverlapMinutes { get; set; } = 24 * 60;
        [Setting("An endpoint whose every attempt has failed this long is disabled.")]
        public int DisableAfterMinutes { get; set; } = 3 * 24 * 60;
        [Setting("Consecutive failures that open an endpoint's circuit breaker (its deliveries then wait RamPay:Webhooks:BreakerOpenMs).")]
        public int BreakerFailures { get; set; } = 5;
        [Setting("How long an endpoint's open circuit holds its deliveries back.")]
        public int BreakerOpenMs { get; set; } = 30_000;
        [Setting("Run the webhooks event consumer and dispatcher in the server (the embedded default). Set false when rampay-worker webhooks processes deliver from the Kafka topic (needs RamPay:Webhooks:SharedStore); the server keeps the API and the admin lists.")]
        public bool InServer { get; set; } = true;
        [Setting("PostgreSQL connection string of the store the server and rampay-worker webhooks processes share (endpoints, deliveries, attempts); empty: the server's own SQLite (<data>/webhooks). Set it from a secret.")]
        public string SharedStore { get; set; } = "";
        [Setting("The PostgreSQL schema of that shared store (created and migrated at start).")]
        public string SharedStoreSchema { get; set; } = RamPay.Webhooks.PostgresSchema.DefaultSchema;
        [Setting("How long a dispatcher holds the deliveries it claimed: when a worker dies mid-attempt, another continues them after this. Must exceed TimeoutMs.")]
        public int LeaseMs { get; set; } = 60_000;

        public void Validate()
        {
            if (TimeoutMs is < 100 or > 120_000) throw new OptionsException("RamPay:Webhooks:TimeoutMs must be 100..120000");
            if (MaxAgeMinutes is < 1 or > 30 * 24 * 60) throw new OptionsException("RamPay:Webhooks:MaxAgeMinutes must be 1..43200");
            if (RetryBaseMs is < 10 or > 3_600_000) throw new OptionsException("RamPay:Webhooks:RetryBaseMs must be 10..3600000");
            if (MaxConcurrency is < 1 or > 10_000 || MaxPerEndpoint is < 1 or > 1_000) throw new OptionsException("RamPay:Webhooks:MaxConcurrency (1..10000) and MaxPerEndpoint (1..1000)");
            if (SecretOverlapMinutes is < 0 or > 30 * 24 * 60 || DisableAfterMinutes < 1) throw new OptionsException("RamPay:Webhooks:SecretOverlapMinutes must be 0..43200 and DisableAfterMinutes positive");
            if (BreakerFailures < 1 || BreakerOpenMs < 0) throw new OptionsException("RamPay:Webhooks:BreakerFailures must be positive and BreakerOpenMs not negative");
            if (LeaseMs <= TimeoutMs || LeaseMs > 3_600_000) throw new OptionsException("RamPay:Webhooks:LeaseMs must exceed TimeoutMs (and be at most 3600000)");
            SharedStoreCheck.Validate("RamPay:Webhooks", SharedStore, SharedStoreSchema);
            if (!InServer && SharedStore.Length == 0) throw new OptionsException("RamPay:Webhooks:InServer=false needs RamPay:Webhooks:SharedStore (the workers deliver from it)");
        }

        public RamPay.Webhooks.WebhookOptions ToOptions() => new()
        {
            AllowPrivateNetworks = AllowPrivateNetworks,
            Timeout = TimeSpan.FromMilliseconds(TimeoutMs),
            MaxAge = TimeSpan.FromMinutes(MaxAgeMinutes),
            RetryBase = TimeSpan.FromMilliseconds(RetryBaseMs),
            RetryMax = TimeSpan.FromHours(1) > TimeSpan.FromMilliseconds(RetryBaseMs) ? TimeSpan.FromHours(1) : TimeSpan.FromMilliseconds(RetryBaseMs),
            MaxConcurrency = MaxConcurrency,
            MaxPerEndpoint = MaxPerEndpoint,
            SecretOverlap = TimeSpan.FromMinutes(SecretOverlapMinutes),
            DisableAfter = TimeSpan.FromMinutes(DisableAfterMinutes),
            BreakerFailures = BreakerFailures,
            BreakerOpen = TimeSpan.FromMilliseconds(BreakerOpenMs),
            Lease = TimeSpan.FromMilliseconds(LeaseMs),
        };
    }

    /// <summary>Checks a shared-store setting pair (a connection string, when set, and a schema name).</summary>
    public static class SharedStoreCheck
    {
        public static void Validate(string prefix, string connection, string schema)
        {
            try { RamPay.Webhooks.PostgresSchema.Check(schema); }
            catch (ArgumentException e) { throw new OptionsException($"{prefix}:SharedStoreSchema: {e.Message}"); }
            if (connection.Length == 0) return;
            try { _ = new Npgsql.NpgsqlConnectionStringBuilder(connection); }
            catch (ArgumentException e) { throw new OptionsException($"{prefix}:SharedStore is not an Npgsql connection string: {e.Message}"); }
        }
    }
}
