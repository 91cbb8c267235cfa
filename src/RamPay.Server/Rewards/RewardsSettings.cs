namespace RamPay.Server;

public sealed partial class ServerOptions
{
    public RewardsSettings Rewards { get; set; } = new();

    /// <summary>Rewards (docs/rewards.md; issue 13).</summary>
    public sealed class RewardsSettings
    {
        [Setting("Run the rewards consumer inside the server, fed from the event log. Set false when rampay-worker rewards consumes the Kafka topic instead (the ledger refuses a second reward either way, but one shape at a time does each command once).")]
        public bool InServerConsumer { get; set; } = true;
    }
}
