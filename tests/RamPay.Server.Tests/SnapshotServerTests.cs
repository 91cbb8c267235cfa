using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using RamPay.Core;

namespace RamPay.Server.Tests;

/// <summary>
/// The server takes periodic snapshots off the writer by default, says so on /metrics, and a restart after SIGKILL starts
/// from the newest of them (a snapshot load plus a short tail) rather than the whole journal.
/// </summary>
[Collection(nameof(CrashCollection))]
public sealed partial class SnapshotServerTests
{
    [Fact]
    public void Snapshots_off_the_writer_and_journal_retirement_are_on_by_default()
    {
        var defaults = new ServerOptions();
        Assert.True(defaults.Engine.SnapshotOffWriter);
        Assert.True(defaults.Engine.SnapshotEveryCommands > 0);
        Assert.True(defaults.Engine.SnapshotEveryMs > 0);
        Assert.True(defaults.Journal.RetireEveryMs > 0);
        defaults.Validate();
        // With the cold key tier (the default under rules version 2) and without it, the snapshotter takes them (docs/snapshots.md).
        var engine = RamPay.Server.Hosting.ServerComposition.EngineOptionsFrom(defaults, new RamPay.Engine.DataFolder("unused"));
        Assert.NotNull(engine.ColdTier);
        Assert.True(engine.TakesSnapshotsOffWriter);
        var noColdTier = new ServerOptions();
        noColdTier.Engine.ColdTier.Enabled = false;
        Assert.True(RamPay.Server.Hosting.ServerComposition.EngineOptionsFrom(noColdTier, new RamPay.Engine.DataFolder("unused")).TakesSnapshotsOffWriter);
        Assert.Equal(defaults.Engine.SnapshotEveryMs, engine.SnapshotEveryMs);

        var timeWithoutReplica = new ServerOptions();
        timeWithoutReplica.Engine.SnapshotOffWriter = false;
        Assert.Throws<OptionsException>(timeWithoutReplica.Validate);
        var negative = new ServerOptions();
        negative.Engine.SnapshotEveryMs = -1;
        Assert.Throws<OptionsException>(negative.Validate);
    }

    [Fact]
    public async Task A_restart_after_SIGKILL_loads_the_newest_periodic_snapshot_and_replays_only_the_tail()
    {
        // 1. A server that snapshots every 40 commands off the writer, here with the cold key tier off (the next test has it on).
        await using var server = await ServerProcess.StartAsync([.. ServerFixture.TestSettings, "Engine:SnapshotEveryCommands=40", "Engine:ColdTier:Enabled=false"]);
        var api = new Api(server);

        // 2. Enough commands for a few snapshots: sign-ups (each a RegisterUser and a Deposit) and payments.
        var users = new List<TestUser>();
        for (int i = 0; i < 12; i++) users.Add(await api.SignUpAsync(deposit: 10_000));
        for (int i = 0; i < 60; i++) await api.PayAsync(users[i % users.Count], users[(i + 1) % users.Count].WalletId, 1 + i);
        var before = await api.StateAsync(users[0].WalletId);

        // 3. /metrics shows the snapshots (none paused the writer) and the journal's size.
        long snapshotSequence = 0;
        string metrics = "";
        for (int attempt = 0; attempt < 200 && snapshotSequence < 80; attempt++)
        {
            metrics = await server.Http.GetStringAsync("/metrics");
            snapshotSequence = Gauge(metrics, "rampay_snapshot_last_sequence");
            if (snapshotSequence < 80) await Task.Delay(50);
        }
        Assert.True(snapshotSequence >= 80, $"no snapshot at or after 80 on /metrics:\n{metrics}");
        Assert.Equal(0, snapshotSequence % 40);
        Assert.True(Gauge(metrics, "rampay_journal_retained_bytes") > 0, metrics);
        Assert.True(Gauge(metrics, "rampay_snapshotter_sequence") >= snapshotSequence, metrics);
        Assert.True(Gauge(metrics, "rampay_snapshot_duration_seconds_count") >= 2, metrics);
        Assert.DoesNotContain("rampay_snapshot_pause_seconds_count", metrics, StringComparison.Ordinal);
        Assert.Contains("periodic snapshots off the writer", server.Output, StringComparison.Ordinal);

        // 4. SIGKILL (no stop snapshot) and restart: recovery starts from a periodic snapshot, not from the journal's start.
        await server.KillAsync();
        await server.RestartAsync();
        // The output holds both runs: the second run's recovery is the last such line.
        var recovered = RecoveredLine().Matches(server.Output).LastOrDefault();
        Assert.True(recovered is not null && RecoveredLine().Matches(server.Output).Count == 2, server.Output);
        long from = long.Parse(recovered!.Groups[1].Value, CultureInfo.InvariantCulture);
        long replayed = long.Parse(recovered.Groups[2].Value, CultureInfo.InvariantCulture);
        Assert.True(from >= 80 && from % 40 == 0, $"recovered from snapshot {from}:\n{server.Output}");
        Assert.True(replayed < 200, $"replayed {replayed} records after snapshot {from}:\n{server.Output}");
        Assert.Equal(before, await new Api(server).StateAsync(users[0].WalletId));
    }

    [Fact]
    public async Task With_the_cold_key_tier_on_snapshots_are_off_the_writer_and_after_SIGKILL_old_keys_are_answered_from_the_cold_tier()
    {
        // 1. The server's defaults (rules 2, the cold key tier on, snapshots off the writer) with a small hot tier (3,072 keys)
        //    and a snapshot every 50,000 commands.
        const int hotMaxKeys = 3 * 1024;
        await using var server = await ServerProcess.StartAsync([
            .. ServerFixture.TestSettings, "Engine:RingSize=1024", "Tcp:MaxCommandsPerBatch=1000", "Engine:ColdTier:GenerationCommands=1024",
            $"Engine:ColdTier:HotMaxKeys={hotMaxKeys}", "Engine:ColdTier:SegmentKeys=65536", "Engine:IdempotencyKeyBudget=2000000",
            "Engine:SnapshotEveryCommands=50000"]);
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(aliceDeposit: 1_000_000);
        Assert.Contains("periodic snapshots off the writer", server.Output, StringComparison.Ordinal);

        // 2. A keyed payment, then 200,000 keyed payments over TCP: the first key is long gone from memory.
        string key = Api.NewKey();
        object payment = new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 1_000, currency = "USD" };
        long id = (await api.PostAsync("/v1/payments", alice.Token, payment, key)).Expect(HttpStatusCode.Created).Long("id");
        var (connection, _) = await WireConnection.OpenAsync(server.TcpEndPoint, alice.Token);
        await using (connection)
        {
            string prefix = Api.NewKey();
            for (int b = 0; b < 200; b++)
            {
                var batch = Enumerable.Range(0, 1_000).Select(i => Wire.Transfer($"{prefix}-{b}-{i}", alice.WalletId, bob.WalletId, 1)).ToArray();
                var results = await connection.RoundTripAsync((ulong)b + 1, batch);
                Assert.All(results, r => Assert.Equal(ResultCode.Ok, r.Code));
            }
        }
        var before = await api.StateAsync(alice.WalletId);

        // 3. The snapshotter took the periodic snapshots (no writer pause recorded), the hot tier stayed within its budget.
        string metrics = "";
        long snapshotSequence = 0;
        for (int attempt = 0; attempt < 400 && snapshotSequence < 200_000; attempt++)
        {
            metrics = await server.Http.GetStringAsync("/metrics");
            snapshotSequence = Gauge(metrics, "rampay_snapshot_last_sequence");
            if (snapshotSequence < 200_000) await Task.Delay(50);
        }
        Assert.True(snapshotSequence >= 200_000, $"no snapshot at or after 200,000 on /metrics:\n{metrics}");
        Assert.DoesNotContain("rampay_snapshot_pause_seconds_count", metrics, StringComparison.Ordinal);
        Assert.True(Gauge(metrics, "rampay_idempotency_hot_keys") <= hotMaxKeys, metrics);

        // 4. SIGKILL and restart: recovery loads a periodic snapshot and replays only the tail (fewer than 50,000 + a few).
        await server.KillAsync();
        await server.RestartAsync();
        var recovered = RecoveredLine().Matches(server.Output).LastOrDefault();
        Assert.True(recovered is not null && RecoveredLine().Matches(server.Output).Count == 2, server.Output);
        long from = long.Parse(recovered!.Groups[1].Value, CultureInfo.InvariantCulture);
        long replayed = long.Parse(recovered.Groups[2].Value, CultureInfo.InvariantCulture);
        Assert.True(from >= 200_000 && from % 50_000 == 0, $"recovered from snapshot {from}:\n{server.Output}");
        Assert.True(replayed < 50_100, $"replayed {replayed} records after snapshot {from}:\n{server.Output}");
        api = new Api(server);
        Assert.Equal(before, await api.StateAsync(alice.WalletId));

        // 5. The first key, sent before every snapshot, is answered from the cold tier: the original payment, no second debit.
        long coldHitsBefore = Gauge(await server.Http.GetStringAsync("/metrics"), "rampay_idempotency_cold_hits_total");
        var retry = await api.PostAsync("/v1/payments", alice.Token, payment, key);
        Assert.Equal(id, retry.Expect(HttpStatusCode.Created).Long("id"));
        Assert.Equal("true", retry.Header("Idempotent-Replayed"));
        Assert.Equal(before, await api.StateAsync(alice.WalletId));
        metrics = await server.Http.GetStringAsync("/metrics");
        Assert.True(Gauge(metrics, "rampay_idempotency_cold_hits_total") > coldHitsBefore, metrics);
        Assert.Equal(0, Gauge(metrics, "rampay_idempotency_keys_evicted_early_total"));
    }

    private static long Gauge(string metrics, string name)
    {
        var match = Regex.Match(metrics, "^" + Regex.Escape(name) + @"(?:\{[^}]*\})? ([0-9.e+E-]+)", RegexOptions.Multiline);
        return match.Success ? (long)double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
    }

    [GeneratedRegex(@"recovered: snapshot at (\d+), (\d+) records replayed")]
    private static partial Regex RecoveredLine();
}
