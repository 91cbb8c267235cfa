using System.Globalization;
using System.Text.RegularExpressions;

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
        var engine = RamPay.Server.Hosting.ServerComposition.EngineOptionsFrom(defaults, new RamPay.Server.Hosting.DataFolder("unused"));
        Assert.NotNull(engine.ColdTier);
        Assert.True(engine.TakesSnapshotsOffWriter);
        var noColdTier = new ServerOptions();
        noColdTier.Engine.ColdTier.Enabled = false;
        Assert.True(RamPay.Server.Hosting.ServerComposition.EngineOptionsFrom(noColdTier, new RamPay.Server.Hosting.DataFolder("unused")).TakesSnapshotsOffWriter);
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
        // 1. A server that snapshots every 40 commands off the writer (the snapshotter needs the cold key tier off).
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

    private static long Gauge(string metrics, string name)
    {
        var match = Regex.Match(metrics, "^" + Regex.Escape(name) + @"(?:\{[^}]*\})? ([0-9.e+E-]+)", RegexOptions.Multiline);
        return match.Success ? (long)double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
    }

    [GeneratedRegex(@"recovered: snapshot at (\d+), (\d+) records replayed")]
    private static partial Regex RecoveredLine();
}
