using System.Text.Json;
using RamPay.Server.Http;
using RamPay.Sinks;

namespace RamPay.Server.Hosting;

/// <summary><c>GET /health/ready</c>: 200 once the engine takes requests, 503 with "starting", "stopping" or "failed" before and after.</summary>
public sealed class HealthEndpoint(EngineHost engine, SinksService sinks)
{
    public async Task Ready(HttpContext ctx)
    {
        var state = engine.State;
        var hub = sinks.Hub;
        (int Accounts, long Payments) counts = default;
        if (state == EngineState.Ready) counts = await engine.QueryAsync(l => (l.AccountCount, l.PaymentCount));
        var keys = state == EngineState.Ready ? engine.RunningEngine?.KeyTier : null;
        // Not ready when the cold tier's writer failed (the engine stops as soon as it needs the tier); degraded, still
        // serving, once keys were forgotten before their window: a retry of one of them would be paid again.
        bool coldFailed = keys?.ColdFault is not null;
        string? degraded = keys is { EvictedEarly: > 0 } k
            ? $"{k.EvictedEarly} idempotency keys were forgotten before their window ended: " + (k.RulesVersion >= 2
                ? $"the key budget of {k.KeyBudget} keys (the cold tier's disk budget, journaled at the upgrade) was reached"
                : "the rules version 1 table was full (RamPay:Engine:RulesVersion=2 keeps every key for its window)")
            : null;
        await JsonOut.Write(ctx, state == EngineState.Ready && !coldFailed ? 200 : 503, w =>
        {
            w.WriteStartObject();
            w.WriteString("status", state switch
            {
                EngineState.Ready when coldFailed => "failed",
                EngineState.Ready when degraded is not null => "degraded",
                EngineState.Ready => "ready", EngineState.Starting => "starting", EngineState.Failed => "failed", _ => "stopping",
            });
            if (coldFailed) w.WriteString("error", "the cold tier of idempotency keys failed: " + keys!.Value.ColdFault);
            if (degraded is not null) w.WriteString("degraded_reason", degraded);
            if (state == EngineState.Ready)
            {
                w.WriteNumber("journal_sequence", engine.CompletedSequence);
                w.WriteNumber("accounts", counts.Accounts);
                w.WriteNumber("payments", counts.Payments);
            }
            if (keys is { } tier) WriteKeys(w, tier);
            if (state == EngineState.Failed) w.WriteString("error", engine.Failure?.Message);
            if (hub is not null) WriteSinks(w, hub);
            w.WriteEndObject();
        });
    }

    /// <summary>The idempotency keys' tiers (docs/storage.md).</summary>
    private static void WriteKeys(Utf8JsonWriter w, RamPay.Engine.KeyTierStats k)
    {
        w.WriteStartObject("idempotency");
        w.WriteNumber("rules_version", k.RulesVersion);
        w.WriteNumber("evicted_early", k.EvictedEarly);
        if (k.RulesVersion >= 2)
        {
            w.WriteNumber("key_budget", k.KeyBudget);
            w.WriteNumber("keys_remembered", k.KeysRemembered);
            w.WriteNumber("hot_keys", k.HotKeys);
            w.WriteNumber("cold_keys", k.ColdKeys);
            w.WriteNumber("cold_disk_bytes", k.ColdDiskBytes);
        }
        w.WriteEndObject();
    }

    /// <summary>The sinks' detail: readiness does not depend on them (the journal is the truth), lag is reported.</summary>
    private static void WriteSinks(Utf8JsonWriter w, SinkHub hub)
    {
        long head = hub.HeadSequence, headMs = hub.HeadTimestampMs;
        w.WriteStartObject("sinks");
        w.WriteBoolean("backpressure", hub.IsOverLagLimit(out string reason));
        if (reason.Length > 0) w.WriteString("backpressure_reason", reason);
        w.WriteNumber("follower_sequence", hub.FollowerSequence);
        if (hub.FollowerError is { } followerError) w.WriteString("follower_error", followerError);
        foreach (var sink in hub.Sinks)
        {
            var lag = sink.Lag(head, headMs);
            w.WriteStartObject(sink.Name);
            // A failed follower stops every sink: say so on each, not only at the top.
            w.WriteString("status", sink.Error is { Fatal: true } || hub.FollowerError is not null ? "failed" : !sink.Opened ? "connecting" : sink.Connected ? "ok" : "retrying");
            w.WriteNumber("checkpoint", sink.Checkpoint.Sequence);
            w.WriteNumber("lag_records", lag.Records);
            if (double.IsFinite(lag.Seconds)) w.WriteNumber("lag_seconds", Math.Round(lag.Seconds, 3)); else w.WriteNull("lag_seconds");
            w.WriteNumber("changes_written", sink.ChangesWritten);
            w.WriteNumber("failures", sink.Failures);
            // Batches made while this sink's memory queue was full, waiting on disk (the other sinks did not wait).
            w.WriteNumber("spooled_batches", sink.SpooledBatches);
            w.WriteNumber("batches_spooled_total", sink.BatchesSpooledTotal);
            w.WriteNumber("max_lag_records", sink.Limits.MaxLagRecords);
            if (sink.Error is { } error) w.WriteString("last_error", error.Message);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }
}
