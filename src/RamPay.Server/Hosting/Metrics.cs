using System.Diagnostics.Metrics;
using RamPay.Core;
using RamPay.Fraud;
using RamPay.Server.Observability;
using RamPay.Sinks;

namespace RamPay.Server.Hosting;

/// <summary>
/// The server's state as observable <see cref="System.Diagnostics.Metrics"/> instruments (meter <c>RamPay</c>): every
/// value is read from counters the engine, the ledger and the sinks already keep, when a scrape asks, so nothing is
/// recorded on the writer's path. OpenTelemetry's Prometheus exporter renders them on <c>GET /metrics</c>
/// (<see cref="ObservabilityExtensions"/>); docs/operations.md lists every series.
/// </summary>
public sealed class Metrics : IDisposable
{
    public const string MeterName = "RamPay";

    private static readonly string[] DecisionNames = ["allow", "review", "decline"];

    private readonly Meter _meter = new(MeterName);

    public Metrics(EngineHost engine, Func<SinkHub?> sinks)
    {
        // Today's series, names unchanged (a test pins them).
        _meter.CreateObservableGauge("rampay_journal_sequence", () => engine.CompletedSequence,
            description: "The last journal sequence that is durable and applied.");
        _meter.CreateObservableGauge("rampay_ready", () => engine.State == EngineState.Ready ? 1 : 0,
            description: "1 when the server takes requests.");
        _meter.CreateObservableGauge("rampay_ingress_backpressure", () => engine.BackPressure?.Invoke() is null ? 0 : 1,
            description: "1 while ingress holds new commands back because a sink lags past its limit.");
        _meter.CreateObservableGauge("rampay_sink_checkpoint_sequence", () => PerSink(sinks, (r, _) => r.Checkpoint.Sequence),
            description: "The last journal sequence the sink has written.");
        _meter.CreateObservableGauge("rampay_sink_lag_records", () => PerSink(sinks, (r, h) => r.Lag(h.HeadSequence, h.HeadTimestampMs).Records),
            description: "Journal records durable but not yet written by the sink.");
        _meter.CreateObservableGauge("rampay_sink_lag_seconds", () => PerSink(sinks, (r, h) => Finite(r.Lag(h.HeadSequence, h.HeadTimestampMs).Seconds)),
            description: "Journaled time between the sink's checkpoint and the journal's head.");
        _meter.CreateObservableGauge("rampay_sink_connected", () => PerSink(sinks, (r, _) => r.Connected ? 1 : 0),
            description: "1 while the sink's last call succeeded.");
        _meter.CreateObservableGauge("rampay_sink_queued_batches", () => PerSink(sinks, (r, _) => r.QueuedBatches),
            description: "Batches of changes waiting for the sink.");
        _meter.CreateObservableGauge("rampay_sink_spooled_batches", () => PerSink(sinks, (r, _) => r.SpooledBatches),
            description: "Batches waiting for the sink in its spool on disk (its memory queue was full: the other sinks did not wait).");
        _meter.CreateObservableGauge("rampay_sink_spooled_bytes", () => PerSink(sinks, (r, _) => r.SpooledBytes),
            description: "Bytes of the sink's spool on disk.");
        _meter.CreateObservableCounter("rampay_sink_changes_written_total", () => PerSink(sinks, (r, _) => r.ChangesWritten),
            description: "Changes the sink has written since start.");
        _meter.CreateObservableCounter("rampay_sink_failures_total", () => PerSink(sinks, (r, _) => r.Failures),
            description: "Failed calls to the sink since start (each retried).");
        _meter.CreateObservableGauge("rampay_sinks_follower_sequence", () => sinks()?.FollowerSequence ?? 0,
            description: "The last journal sequence the sinks' follower has turned into changes.");
        _meter.CreateObservableGauge("rampay_sinks_replica_keys", () => sinks()?.ReplicaResidentKeys ?? 0,
            description: "Idempotency keys in memory in the sinks' replica: a small hot set while it follows the key store, every key of the window otherwise.");
        _meter.CreateObservableGauge("rampay_idempotency_cold_keys_held_for_sinks", () => engine.RunningEngine?.KeysHeldForSinks ?? 0,
            description: "Keys on disk only because the sinks could restart behind the oldest kept snapshot; grows while a sink stays behind (alert on growth).");

        // The engine's counters (RamPay.Engine.EngineCounters), kept by the stage that owns each one.
        _meter.CreateObservableCounter("rampay_commands_applied_total", () => CompletedCommands(engine),
            description: "Commands durable and applied, by command type and result code (the output stage counts them; commands replayed at start are not counted).");
        _meter.CreateObservableGauge("rampay_ring_used_slots", () => engine.RunningEngine?.RingUsedSlots ?? 0,
            description: "Ring slots claimed by producers and not yet completed by the output stage.");
        _meter.CreateObservableGauge("rampay_ring_capacity_slots", () => engine.RunningEngine?.Options.RingSize ?? 0,
            description: "The ring's size in slots; producers wait when it is full.");
        _meter.CreateObservableCounter("rampay_writer_apply_seconds_total", () => engine.RunningEngine?.Counters.ApplySeconds ?? 0,
            description: "Time the writer thread spent applying batches (commands and queries), since start.");
        _meter.CreateObservableCounter("rampay_writer_batches_total", () => engine.RunningEngine?.Counters.ApplyBatches ?? 0,
            description: "Batches the writer thread has applied since start.");
        _meter.CreateObservableCounter("rampay_writer_commands_total", () => engine.RunningEngine?.Counters.ApplyCommands ?? 0,
            description: "Commands the writer thread has applied since start.");
        _meter.CreateObservableGauge("rampay_idempotency_keys", () => KeyTier(engine) is { RulesVersion: >= 2 } k ? k.HotKeys + k.ColdKeys : engine.RunningEngine?.IdempotencyKeys ?? 0,
            description: "Idempotency keys the ledger remembers now (rules 2: in memory plus on disk, dead ones not yet deleted included).");
        _meter.CreateObservableGauge("rampay_idempotency_capacity_keys", () => KeyTier(engine) is { RulesVersion: >= 2 } k ? k.KeyBudget : engine.RunningEngine?.IdempotencyCapacity ?? 0,
            description: "The idempotency table's capacity (rules 2: the key budget); at capacity the oldest key is forgotten early.");
        _meter.CreateObservableCounter("rampay_idempotency_evicted_early_total", () => engine.RunningEngine?.IdempotencyEvictedEarly ?? 0,
            description: "Keys forgotten before their window ended because the table was full, over the ledger's life (kept in snapshots).");
        PaymentTierSeries(engine);
        PaymentReadSeries(engine, sinks);
        // Rules version 2's key tiers (docs/storage.md, docs/operations.md). An alert on any increase of the first: a key
        // forgotten before its window means a retried payment could be paid twice.
        _meter.CreateObservableCounter("rampay_idempotency_keys_evicted_early_total", () => KeyTier(engine)?.EvictedEarly ?? 0,
            description: "Idempotency keys forgotten before their window ended (rules 2: the key budget, that is the cold tier's disk budget, was reached; rules 1: the table was full), over the ledger's life.");
        _meter.CreateObservableCounter("rampay_idempotency_cold_faults_total", () => KeyTier(engine)?.ColdFault is null ? 0 : 1,
            description: "Failures of the cold tier's writer since start (0 or 1: the engine stops when it next needs the tier; /health/ready says why).");
        _meter.CreateObservableGauge("rampay_idempotency_cold_keys", () => KeyTier(engine)?.ColdKeys ?? 0,
            description: "Idempotency keys in the cold tier's segment files (live, or dead and not yet deleted with their segment).");
        _meter.CreateObservableGauge("rampay_idempotency_cold_disk_bytes", () => KeyTier(engine)?.ColdDiskBytes ?? 0,
            description: "Bytes of disk the cold tier's segment files take (136 a key).");
        _meter.CreateObservableGauge("rampay_idempotency_cold_index_bytes", () => KeyTier(engine)?.ColdIndexBytes ?? 0,
            description: "Bytes of memory the cold tier's index takes.");
        _meter.CreateObservableGauge("rampay_idempotency_hot_keys", () => KeyTier(engine)?.HotKeys ?? 0,
            description: "Idempotency keys held in memory (rules 2: at most RamPay:Engine:ColdTier:HotMaxKeys).");
        _meter.CreateObservableCounter("rampay_idempotency_cold_hits_total", () => KeyTier(engine)?.ColdHits ?? 0,
            description: "Retried keys answered from the cold tier (read by the prefetch stage, or by the writer's rare path), since start, replay included.");
        _meter.CreateObservableCounter("rampay_idempotency_cold_lookups_total", () => KeyTier(engine)?.ColdLookups ?? 0,
            description: "Keys the prefetch stage looked up in the cold tier (one per keyed command), since start.");
        _meter.CreateObservableCounter("rampay_idempotency_hot_full_waits_total", () => KeyTier(engine)?.HotFullWaits ?? 0,
            description: "Times the writer waited for the cold tier's writer because the hot tier was full (back-pressure), since start.");
        _meter.CreateObservableGauge("rampay_rules_version", () => KeyTier(engine)?.RulesVersion ?? 0,
            description: "The ledger's rules version (2: every key kept for its window, up to the key budget).");
        _meter.CreateObservableCounter("rampay_fraud_decisions_total", () => FraudDecisions(engine),
            description: "Payments scored for fraud since start, by decision (allow, review, decline).");
        SnapshotMetrics.Register(_meter, engine);
    }

    private static RamPay.Engine.KeyTierStats? KeyTier(EngineHost host) => host.RunningEngine?.KeyTier;
    private static RamPay.Engine.PaymentTierStats? PaymentTier(EngineHost host) => host.RunningEngine?.PaymentTier;

    /// <summary>Rules version 3's payment tiers (docs/storage.md, "Payments"): what is in memory, what the cold tier serves and holds.</summary>
    private void PaymentTierSeries(EngineHost engine)
    {
        _meter.CreateObservableGauge("rampay_payments_resident", () => PaymentTier(engine)?.Ledger.ResidentPayments ?? 0,
            description: "Payments in memory (the newest, open holds, and old ones changed since written); the rest are in the payments' cold tier under rules version 3.");
        _meter.CreateObservableCounter("rampay_payments_cold_loads_total", () => PaymentTier(engine)?.Ledger.ColdLoads ?? 0,
            description: "Old payments brought back from the cold tier for a command (capture, void, refund, review, reward) since start, the replay included.");
        _meter.CreateObservableCounter("rampay_payments_writer_cold_reads_total", () => PaymentTier(engine)?.Ledger.WriterColdReads ?? 0,
            description: "Old payments the writer had to read itself because no current prefetched copy was in the slot (rare: after back-pressure).");
        _meter.CreateObservableGauge("rampay_payments_cold_disk_bytes", () => PaymentTier(engine)?.ColdDiskBytes ?? 0,
            description: "Bytes of disk the payment log takes (120 a payment version).");
        _meter.CreateObservableCounter("rampay_payments_cold_faults_total", () => PaymentTier(engine)?.ColdFault is null ? 0 : 1,
            description: "Failures of the payment log's writer since start (0 or 1: the engine stops when it next needs the tier).");
    }

    /// <summary>Rules version 3: who reads the payment log for what, and the replicas' payments in memory (docs/storage.md, "Payments").</summary>
    private void PaymentReadSeries(EngineHost engine, Func<SinkHub?> sinks)
    {
        _meter.CreateObservableCounter("rampay_payments_prefetch_hits_total", () => PaymentTier(engine)?.Ledger.PrefetchHits ?? 0,
            description: "Old payments a command acted on that the writer took from the prefetch stage's copy (no I/O on the writer).");
        _meter.CreateObservableCounter("rampay_payments_query_prefetch_reads_total", () => PaymentTier(engine)?.QueryPrefetchReads ?? 0,
            description: "Old payments the prefetch stage read from the payment log for queries (GET /v1/payments/{id}, history pages), off the writer.");
        _meter.CreateObservableCounter("rampay_payments_query_retries_total", () => PaymentTier(engine)?.QueryRetries ?? 0,
            description: "Queries sent round the ring again because they needed an old payment not yet prefetched.");
        _meter.CreateObservableCounter("rampay_payments_query_writer_reads_total", () => PaymentTier(engine)?.Ledger.ReadColdReads ?? 0,
            description: "Old payments a query read from the payment log on the writer thread (the last resort after 4 rounds; should stay 0).");
        _meter.CreateObservableGauge("rampay_payments_replica_resident", () => ReplicaResident(engine, sinks),
            description: "Payments in memory in each replica ledger (replica=snapshotter, sinks): bounded like the writer's under rules 3.");
        _meter.CreateObservableGauge("rampay_payments_cold_index_bytes", () => PaymentTier(engine)?.ColdIndexBytes ?? 0,
            description: "Memory the payment log's index takes (8 bytes a payment on disk).");
    }

    private static IEnumerable<Measurement<long>> ReplicaResident(EngineHost engine, Func<SinkHub?> sinks)
    {
        if (engine.RunningEngine is { SnapshotsOffWriter: true } running)
            yield return new Measurement<long>(running.SnapshotterPayments.Resident, new KeyValuePair<string, object?>("replica", "snapshotter"));
        if (sinks() is { } hub) yield return new Measurement<long>(hub.ReplicaResidentPayments, new KeyValuePair<string, object?>("replica", "sinks"));
    }

    /// <summary>Prometheus has no "unknown": -1 stands for a lag in seconds not known yet (the sink has never written).</summary>
    private static double Finite(double seconds) => double.IsFinite(seconds) ? seconds : -1;

    private static IEnumerable<Measurement<double>> PerSink(Func<SinkHub?> sinks, Func<SinkRunner, SinkHub, double> value)
    {
        var hub = sinks();
        if (hub is null) yield break;
        foreach (var runner in hub.Sinks) yield return new Measurement<double>(value(runner, hub), new KeyValuePair<string, object?>("sink", runner.Name));
    }

    private static IEnumerable<Measurement<long>> CompletedCommands(EngineHost host)
    {
        if (host.RunningEngine is not { } engine) yield break;
        foreach (var (type, code, count) in engine.Counters.CompletedCounts())
            yield return new Measurement<long>(count, new("type", RamPayTelemetry.CommandTypeName(type)), new("result", ResultCodes.Name(code)));
    }

    private static IEnumerable<Measurement<long>> FraudDecisions(EngineHost host)
    {
        if (host.RunningEngine is not { } engine) yield break;
        for (int d = 0; d < DecisionNames.Length; d++)
            yield return new Measurement<long>(engine.FraudDecisions((FraudDecision)d), new KeyValuePair<string, object?>("decision", DecisionNames[d]));
    }

    public void Dispose() => _meter.Dispose();
}
