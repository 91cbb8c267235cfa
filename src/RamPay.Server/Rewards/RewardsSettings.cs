namespace RamPay.Server;

public sealed partial class ServerOptions
{
    public RewardsSettings Rewards { get; set; } = new();

    /// <summary>Rewards (docs/rewards.md; issue 13).</summary>
    public sealed class RewardsSettings
    {
        [Setting("Run the rewards consumer inside the server, fed from the event log. Set false when rampay-worker rewards consumes the Kafka topic instead (the ledger refuses a second reward either way, but one shape at a time does each command once).")]
        public bool InServerConsumer { get; set; } = true;

        [Setting("The most buckets one analytics query (GET /v1/admin/analytics, /v1/analytics/me) may span; a wider from/to/interval is 400 invalid_range. 44640 = 31 days of minutes; each bucket walked holds the rollups' lock.")]
        public long AnalyticsMaxBuckets { get; set; } = RamPay.Analytics.AnalyticsRollups.DefaultMaxBuckets;

        [Setting("How long each user's analytics buckets (GET /v1/analytics/me) are kept, counted back from the newest payment: minute=, hour=, day= each a duration (90m, 2h, 8d) or forever. An older range is 400 range_not_retained. The platform's buckets are kept for ever.")]
        public string AnalyticsUserRetention { get; set; } = RamPay.Analytics.AnalyticsRetention.DefaultText;

        public void Validate()
        {
            if (AnalyticsMaxBuckets is < 1 or > 1_000_000) throw new OptionsException("RamPay:Rewards:AnalyticsMaxBuckets must be 1..1000000");
            if (!RamPay.Analytics.AnalyticsRetention.TryParse(AnalyticsUserRetention, out _, out string error))
                throw new OptionsException($"RamPay:Rewards:AnalyticsUserRetention: {error}");
        }
    }
}
