using System.Diagnostics;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Journal;

namespace RamPay.Engine.Tests;

/// <summary>
/// Periodic snapshots taken off the writer by the snapshotter's replica (<see cref="EngineOptions.SnapshotOffWriter"/>): they
/// are the writer's state at their sequence, byte for byte; they never hold a command the journal could still lose; recovery
/// from any kept one reaches the same state; and a torn or killed snapshot falls back to the previous one.
/// </summary>
public class SnapshotFollowerTests
{
    private static EngineOptions Options(TempDataDir dir, long snapshotEvery, int keep = 3) => new()
    {
        DataDirectory = dir.Path,
        Clock = new SteppingClock().Now,
        RingSize = 1024,
        SnapshotEveryCommands = snapshotEvery,
        SnapshotOffWriter = true,
        SnapshotsToKeep = keep,
        SnapshotOnStop = false, TickIntervalMs = 0, Fsync = false,
        Ledger = new LedgerOptions { MaxAccounts = 1000, MaxPayments = 1 << 20, IdempotencyMaxKeys = 1 << 16 },
    };

    private static void WaitFor(Func<bool> condition, string what) => EngineTestWaits.WaitFor(condition, what, 60);

    private static long[] SnapshotSequences(TempDataDir dir) => EngineTestWaits.SnapshotSequences(dir.Snapshots);

    /// <summary>The state replayed from the journal alone through <paramref name="sequence"/>, as a snapshot's payload.</summary>
    private static byte[] ReplayedState(TempDataDir dir, LedgerOptions options, long sequence)
    {
        var (ledger, _, _, last) = EngineRecovery.Load(dir.Snapshots, dir.Journal, options, useSnapshot: false, sequence, []);
        Assert.Equal(sequence, last);
        using var bytes = new MemoryStream();
        ledger.WriteState(bytes);
        return bytes.ToArray();
    }

    [Fact]
    public void Each_snapshot_is_the_writers_state_at_its_sequence_and_recovery_from_any_kept_one_reaches_the_same_hash()
    {
        using var dir = new TempDataDir();
        var options = Options(dir, snapshotEvery: 1000);
        var commands = new Commands().Workload(seed: 3, wallets: 40, count: 5500);
        string hash;
        using (var engine = RamPayEngine.Start(options))
        {
            Assert.True(engine.SnapshotsOffWriter);
            long ticket = 0;
            foreach (var c in commands) ticket = engine.Submit(c);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(60)));
            // Snapshots land exactly every 1,000 records of the journal.
            WaitFor(() => engine.Counters.LastSnapshotSequence == 5000, "the snapshot at 5,000");
            Assert.Equal(5, engine.Counters.Snapshots);
            Assert.Null(engine.Fault);
            engine.Stop();
            hash = engine.LedgerAfterStop.ComputeStateHash();
        }
        Assert.Equal([3000L, 4000, 5000], SnapshotSequences(dir));

        // Each kept snapshot holds exactly the state the journal replays to at its sequence: the writer's state there.
        foreach (long sequence in SnapshotSequences(dir))
        {
            Assert.True(SnapshotStore.TryLoadLatest(dir.Snapshots, sequence, out var info, out byte[] payload));
            Assert.Equal(sequence, info.Sequence);
            Assert.Equal(ReplayedState(dir, options.Ledger, sequence), payload);
        }

        // Recovery from each kept snapshot (the newer ones removed, as after damage) reaches the writer's final hash.
        foreach (long sequence in SnapshotSequences(dir).Reverse())
        {
            var (ledger, from, _, last) = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: true, []);
            Assert.Equal(sequence, from);
            Assert.Equal(5500, last);
            Assert.Equal(hash, ledger.ComputeStateHash());
            File.Delete(Path.Combine(dir.Snapshots, SnapshotFormat.FileName(sequence)));
        }
    }

    [Fact]
    public void A_snapshot_never_holds_a_command_the_journal_has_not_made_durable()
    {
        using var dir = new TempDataDir();
        // 1. A fence that holds the journaler before its first commit: the writer applies commands the journal does not have.
        var fence = new GatedFence();
        var options = Options(dir, snapshotEvery: 100) with { WriteFence = fence };
        var commands = new Commands().Workload(seed: 4, wallets: 10, count: 600);
        using var engine = RamPayEngine.Start(options);
        using var openAtTheEnd = fence; // a failed check below must not leave the engine's stop waiting on the gate
        long ticket = 0;
        foreach (var c in commands) ticket = engine.Submit(c);

        // 2. However long we wait, no snapshot appears: none of it is durable.
        Thread.Sleep(300);
        Assert.Equal(0, engine.Counters.Snapshots);
        Assert.Equal(0, engine.SnapshotterSequence);
        Assert.Empty(SnapshotSequences(dir));

        // 3. Open the gate: the journal catches up, and so do the snapshots, at multiples of 100 up to 600.
        fence.Open();
        Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(60)));
        WaitFor(() => engine.Counters.LastSnapshotSequence == 600, "the snapshot at 600");
        Assert.Null(engine.Fault);
        engine.Stop();
        Assert.Equal([400L, 500, 600], SnapshotSequences(dir));
    }

    [Fact]
    public void A_torn_newest_snapshot_falls_back_to_the_previous_one_with_the_same_state()
    {
        using var dir = new TempDataDir();
        var options = Options(dir, snapshotEvery: 1000);
        var commands = new Commands().Workload(seed: 5, wallets: 30, count: 3200);
        string hash;
        // 1. Run with snapshots off the writer at 1,000, 2,000 and 3,000, and stop without a stop snapshot.
        using (var engine = RamPayEngine.Start(options))
        {
            long ticket = 0;
            foreach (var c in commands) ticket = engine.Submit(c);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(60)));
            WaitFor(() => engine.Counters.LastSnapshotSequence == 3000, "the snapshot at 3,000");
            engine.Stop();
            hash = engine.LedgerAfterStop.ComputeStateHash();
        }

        // 2. Tear the newest snapshot: cut it in the middle of its payload, as a crash of a file system without ordered writes could.
        string newest = Path.Combine(dir.Snapshots, SnapshotFormat.FileName(3000));
        long length = new FileInfo(newest).Length;
        using (var file = File.OpenWrite(newest)) file.SetLength(length / 2);

        // 3. Start again: recovery names the torn snapshot, starts from the one at 2,000, replays 1,200 records, and reaches the same hash.
        using (var engine = RamPayEngine.Start(options with { SnapshotEveryCommands = 0, SnapshotOffWriter = false }))
        {
            Assert.Equal(2000, engine.Recovery.SnapshotSequence);
            Assert.Equal(1200, engine.Recovery.RecordsReplayed);
            Assert.Contains(engine.Recovery.Warnings, w => w.Contains(SnapshotFormat.FileName(3000), StringComparison.Ordinal));
            Assert.Equal(hash, engine.Recovery.StateHash);
            engine.Stop();
        }
    }

    [Fact]
    public void The_snapshotter_catches_up_from_the_newest_snapshot_after_a_restart_and_continues_the_count()
    {
        using var dir = new TempDataDir();
        var options = Options(dir, snapshotEvery: 500);
        var commands = new Commands().Workload(seed: 6, wallets: 20, count: 2400);
        using (var engine = RamPayEngine.Start(options))
        {
            long ticket = 0;
            foreach (var c in commands.Take(1200)) ticket = engine.Submit(c);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(60)));
            WaitFor(() => engine.Counters.LastSnapshotSequence == 1000, "the snapshot at 1,000");
            engine.Stop();
        }
        string hash;
        using (var engine = RamPayEngine.Start(options))
        {
            Assert.Equal(1000, engine.Recovery.SnapshotSequence);
            long ticket = 0;
            foreach (var c in commands.Skip(1200)) ticket = engine.Submit(c);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(60)));
            // Counting restarts at the writer's start (1,200): the next snapshots are at 1,700 and 2,200.
            WaitFor(() => engine.Counters.LastSnapshotSequence == 2200, "the snapshot at 2,200");
            engine.Stop();
            hash = engine.LedgerAfterStop.ComputeStateHash();
        }
        Assert.Equal([1000L, 1700, 2200], SnapshotSequences(dir));
        Assert.Equal(ReplayedState(dir, options.Ledger, 2200), SnapshotStore.TryLoadLatest(dir.Snapshots, out _, out byte[] payload) ? payload : []);
        var (replayed, _, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: false, []);
        Assert.Equal(hash, replayed.ComputeStateHash());
    }

    [Fact]
    public void With_a_cold_tier_the_snapshotter_takes_the_snapshots_and_SnapshotEveryMs_needs_the_snapshotter()
    {
        using var dir = new TempDataDir();
        var cold = Options(dir, snapshotEvery: 1000) with { ColdTier = new ColdTierOptions(), SnapshotEveryMs = 1000 };
        Assert.True(cold.TakesSnapshotsOffWriter); // its replica follows the cold tier (ColdTierSnapshotTests)
        cold.Validate();
        Assert.Throws<ArgumentException>(() => (Options(dir, 0) with { SnapshotOffWriter = false, SnapshotEveryMs = 1000 }).Validate());
        Assert.Throws<ArgumentException>(() => (Options(dir, 0) with { SnapshotEveryMs = -1 }).Validate());
    }

    [Fact]
    public void A_quiet_engine_still_snapshots_every_SnapshotEveryMs_once_a_command_was_applied()
    {
        using var dir = new TempDataDir();
        var options = Options(dir, snapshotEvery: 0) with { SnapshotEveryMs = 50 };
        var commands = new Commands().Workload(seed: 7, wallets: 5, count: 30);
        using var engine = RamPayEngine.Start(options);
        long ticket = 0;
        foreach (var c in commands) ticket = engine.Submit(c);
        Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(60)));
        WaitFor(() => engine.Counters.LastSnapshotSequence == 30, "the snapshot at 30");
        // Nothing more applied: no more snapshots, however long it waits.
        long written = engine.Counters.Snapshots;
        Thread.Sleep(200);
        Assert.Equal(written, engine.Counters.Snapshots);
        engine.Stop();
    }

    [Fact]
    public void After_SIGKILL_during_a_snapshot_off_the_writer_recovery_starts_from_the_previous_one_and_loses_nothing_acknowledged()
    {
        using var dir = new TempDataDir();
        // 1. Start `rampay simulate` with snapshots off the writer every 20,000 commands and none at the stop, on a workload far
        //    longer than the test lets it run; it prints each acknowledged 2,000 commands and each snapshot written.
        string rampay = Path.Combine(AppContext.BaseDirectory, "rampay.dll");
        Assert.True(File.Exists(rampay), $"{rampay} should be copied next to the tests");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { rampay, "simulate", "--data", dir.Path, "--count", "3000000", "--wallets", "2000", "--report-every", "2000",
                     "--snapshot-every", "20000", "--snapshot-off-writer", "--no-stop-snapshot" })
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;

        // 2. Read until 60,000 commands are acknowledged and two snapshots are written.
        long acknowledged = 0;
        int snapshots = 0;
        var deadline = DateTime.UtcNow.AddSeconds(180);
        while ((acknowledged < 60_000 || snapshots < 2) && DateTime.UtcNow < deadline)
        {
            string? line = process.StandardOutput.ReadLine();
            if (line is null) break;
            if (line.StartsWith("completed ", StringComparison.Ordinal)) acknowledged = long.Parse(line["completed ".Length..], System.Globalization.CultureInfo.InvariantCulture);
            if (line.StartsWith("snapshot ", StringComparison.Ordinal)) snapshots++;
        }
        // Keep draining its output, so the process never blocks on a full pipe while we wait for the next snapshot.
        var drain = new Thread(() =>
        {
            while (process.StandardOutput.ReadLine() is { } line)
                if (line.StartsWith("completed ", StringComparison.Ordinal)) Volatile.Write(ref acknowledged, long.Parse(line["completed ".Length..], System.Globalization.CultureInfo.InvariantCulture));
        });
        drain.Start();

        // 3. Wait for the next snapshot's temporary file to appear (the snapshotter is writing it), and SIGKILL the process then.
        string? temporary = null;
        while (temporary is null && DateTime.UtcNow < deadline && !process.HasExited)
        {
            temporary = Directory.GetFiles(dir.Snapshots, "*" + SnapshotFormat.TempSuffix).FirstOrDefault();
            if (temporary is null) Thread.Sleep(1);
        }
        process.Kill(entireProcessTree: true); // SIGKILL: no drain, no stop snapshot, no flush
        Assert.True(process.WaitForExit(30_000), "the killed process did not exit");
        Assert.True(drain.Join(TimeSpan.FromSeconds(30)), "the output reader did not finish");
        Assert.True(temporary is not null, $"no snapshot was being written before the deadline ({acknowledged} acknowledged, {snapshots} snapshots); stderr: {process.StandardError.ReadToEnd()}");
        long ackedAtKill = Volatile.Read(ref acknowledged);
        long[] kept = SnapshotSequences(dir);
        Assert.NotEmpty(kept);

        // 4. Restart: recovery starts from the newest complete snapshot (the killed one is only a temporary file), every
        //    acknowledged command is there, and the state is the one the whole journal replays to.
        var options = new EngineOptions { DataDirectory = dir.Path, TickIntervalMs = 0, SnapshotOnStop = false, SnapshotEveryCommands = 0 };
        string recoveredHash;
        long recovered;
        using (var engine = RamPayEngine.Start(options))
        {
            recovered = engine.Recovery.LastSequence;
            recoveredHash = engine.Recovery.StateHash;
            Assert.Equal(kept[^1], engine.Recovery.SnapshotSequence);
            Assert.True(recovered >= ackedAtKill, $"recovered to {recovered}, but {ackedAtKill} were acknowledged");
            engine.Stop();
        }
        var replay = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: false, []);
        Assert.Equal(recovered, replay.LastSequence);
        Assert.Equal(recoveredHash, replay.Ledger.ComputeStateHash());

        // 5. And from each older kept snapshot too (the newer ones removed, as after damage).
        foreach (long sequence in kept.Reverse())
        {
            var (ledger, from, _, last) = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: true, []);
            Assert.Equal(sequence, from);
            Assert.Equal(recovered, last);
            Assert.Equal(recoveredHash, ledger.ComputeStateHash());
            File.Delete(Path.Combine(dir.Snapshots, SnapshotFormat.FileName(sequence)));
        }
    }

    /// <summary>Holds the journaler (every write check) until opened.</summary>
    private sealed class GatedFence : IWriteFence, IDisposable
    {
        private readonly ManualResetEventSlim _open = new(false);
        public void Open() => _open.Set();
        public void Dispose() => _open.Set();
        public void CheckCanWrite() => _open.Wait();
    }
}
