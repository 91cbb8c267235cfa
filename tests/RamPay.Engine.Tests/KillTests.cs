using System.Diagnostics;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Journal;

namespace RamPay.Engine.Tests;

/// <summary>
/// A real crash: the engine runs in its own process (<c>rampay simulate</c>), which is killed with SIGKILL while
/// it is writing. Written as numbered steps.
/// </summary>
public class KillTests
{
    [Fact]
    public void After_SIGKILL_mid_load_every_acknowledged_command_survives_and_replay_agrees_with_recovery()
    {
        using var dir = new TempDataDir();
        // 1. Start `rampay simulate` on a workload far longer than the test will let it run; it prints the journal
        //    sequence it has acknowledged (durable and applied) every 2,000 commands.
        string rampay = Path.Combine(AppContext.BaseDirectory, "rampay.dll");
        Assert.True(File.Exists(rampay), $"{rampay} should be copied next to the tests");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { rampay, "simulate", "--data", dir.Path, "--count", "1000000", "--wallets", "200", "--report-every", "2000" })
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;

        // 2. Read acknowledgements until at least 20,000 commands are acknowledged, then SIGKILL the process.
        long acknowledged = 0;
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (acknowledged < 20_000 && DateTime.UtcNow < deadline)
        {
            string? line = process.StandardOutput.ReadLine();
            if (line is null) break;
            if (line.StartsWith("completed ", StringComparison.Ordinal)) acknowledged = long.Parse(line["completed ".Length..], System.Globalization.CultureInfo.InvariantCulture);
        }
        process.Kill(entireProcessTree: true); // SIGKILL on Unix: no drain, no final snapshot, no flush
        Assert.True(process.WaitForExit(30_000), "the killed process did not exit");
        Assert.True(acknowledged >= 20_000, $"only {acknowledged} commands were acknowledged before the deadline; stderr: {process.StandardError.ReadToEnd()}");

        // 3. Restart the engine on the same data: recovery truncates whatever tail the kill left.
        var options = new EngineOptions { DataDirectory = dir.Path, TickIntervalMs = 0, SnapshotOnStop = false };
        string recoveredHash;
        long recovered;
        using (var engine = RamPayEngine.Start(options))
        {
            recovered = engine.Recovery.LastSequence;
            recoveredHash = engine.Recovery.StateHash;
            // 4. Every acknowledged command is there (more may be: durable, but not yet reported when killed).
            Assert.True(recovered >= acknowledged, $"recovered to {recovered}, but {acknowledged} were acknowledged");
            Assert.True(recovered < 1_000_000, "the process finished before the kill: nothing was tested mid-load");
            engine.Stop();
            engine.LedgerAfterStop.VerifyInvariants();
        }

        // 5. The journal is now clean, and replaying it from the first record gives the state recovery gave.
        var verify = JournalVerifier.Verify(dir.Journal);
        Assert.Empty(verify.Problems);
        Assert.Equal(recovered, verify.LastSequence);
        var replay = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: false, []);
        Assert.Equal(recovered, replay.LastSequence);
        Assert.Equal(recoveredHash, replay.Ledger.ComputeStateHash());
        Assert.True(replay.Ledger.PaymentCount > 1000);
    }
}
