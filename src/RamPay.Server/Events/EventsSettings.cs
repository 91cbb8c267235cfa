namespace RamPay.Server;

public sealed partial class ServerOptions
{
    /// <summary>The event log and the events API (docs/events.md, "The event log").</summary>
    public sealed class EventsSettings
    {
        [Setting("Keep a local, durable event log in <data>/events (the events API, webhooks and in-server consumers read it); false = none of these.")]
        public bool Enabled { get; set; } = true;
        [Setting("Days an event stays in the event log (older ones can be re-derived from the journal: rampay events derive).")]
        public int RetentionDays { get; set; } = 30;
        [Setting("The most bytes of event JSON the event log holds; past it the oldest events go first.")]
        public long MaxBytes { get; set; } = 1L << 30;
        [Setting("The pause an in-server event consumer makes after a batch that was not full, so that events gather into fewer, larger batches (each costs the consumer a transaction and an fsync); 0 = none.")]
        public int ConsumerBatchIntervalMs { get; set; } = 50;
        [Setting("The longest the event log goes without an fsync; between fsyncs its batches are written to the page cache only (a SIGKILL loses nothing; after a power loss the log re-derives its last batches from the journal). 0 = fsync every batch.")]
        public int FsyncIntervalMs { get; set; } = 1_000;

        public void Validate()
        {
            if (RetentionDays is < 1 or > 3650) throw new OptionsException("RamPay:Events:RetentionDays must be 1..3650");
            if (MaxBytes < 1 << 20) throw new OptionsException("RamPay:Events:MaxBytes must be at least 1048576 (1 MiB)");
            if (ConsumerBatchIntervalMs is < 0 or > 5_000) throw new OptionsException("RamPay:Events:ConsumerBatchIntervalMs must be 0..5000");
            if (FsyncIntervalMs is < 0 or > 60_000) throw new OptionsException("RamPay:Events:FsyncIntervalMs must be 0..60000");
        }
    }
}
