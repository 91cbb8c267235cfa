using RamPay.Core;
using RamPay.Engine;
using RamPay.Journal;

namespace RamPay.Engine.Tests;

/// <summary>
/// Crash recovery through the whole engine, written as numbered steps: write through the engine, damage the
/// journal the way a crash (or a disk) would, restart, and check exactly what survives.
/// </summary>
public class CrashRecoveryTests
{
    private const int Count = 2000;

    private static EngineOptions Options(TempDataDir dir, SteppingClock clock) => new()
    {
        DataDirectory = dir.Path,
        Clock = clock.Now,
        RingSize = 256,
        MaxBatchSize = 64,
        SnapshotEveryCommands = 0,
        SnapshotOnStop = false, TickIntervalMs = 0,
        Ledger = new LedgerOptions { MaxAccounts = 100, MaxPayments = 1 << 16, IdempotencyMaxKeys = 1 << 14 },
    };

    /// <summary>Step 1 of every test: run <see cref="Count"/> commands through an engine and stop it.</summary>
    private static List<Command> WriteThroughEngine(TempDataDir dir)
    {
        var commands = new Commands().Workload(seed: 11, wallets: 15, count: Count);
        using var engine = RamPayEngine.Start(Options(dir, new SteppingClock()));
        foreach (var c in commands) engine.Submit(c);
        return commands;
    }

    /// <summary>The state after the first <paramref name="survivors"/> commands, computed without the journal.</summary>
    private static string ExpectedHash(List<Command> commands, int survivors, LedgerOptions options)
    {
        var ledger = new Ledger(options);
        var clock = new SteppingClock();
        for (int i = 0; i < survivors; i++)
        {
            var c = commands[i];
            c.TimestampMs = clock.Now();
            ledger.Apply(c, out _);
        }
        return ledger.ComputeStateHash();
    }

    private static string LastSegment(TempDataDir dir) => Directory.GetFiles(dir.Journal, "journal-*.seg").Order().Last();

    private static long RecordOffset(string segment, long sequence)
    {
        // Records are fixed size for commands: segment header, then (header + payload) per record.
        long first = SegmentFormat.TryParseFileName(Path.GetFileName(segment), out long f) ? f : throw new InvalidOperationException();
        return SegmentFormat.HeaderSize + (sequence - first) * (RecordFormat.HeaderSize + CommandCodec.Size);
    }

    [Fact]
    public void Torn_last_record_is_truncated_and_every_earlier_command_survives()
    {
        using var dir = new TempDataDir();
        // 1. Write 2000 commands through the engine.
        var commands = WriteThroughEngine(dir);
        // 2. Cut the last segment in the middle of the last record, as a crash during its write would.
        string segment = LastSegment(dir);
        long cut = RecordOffset(segment, Count) + 50;
        using (var f = new FileStream(segment, FileMode.Open)) f.SetLength(cut);
        // 3. Restart.
        var options = Options(dir, new SteppingClock());
        using var engine = RamPayEngine.Start(options);
        // 4. Exactly the first 1999 survive; the tail repair is reported; the engine continues at 2000.
        Assert.Equal(Count - 1, engine.Recovery.LastSequence);
        Assert.NotEmpty(engine.Recovery.Warnings);
        Assert.Equal(ExpectedHash(commands, Count - 1, options.Ledger), engine.Recovery.StateHash);
        Assert.Equal(RecordOffset(segment, Count), new FileInfo(segment).Length);
        engine.Submit(commands[^1]);
        engine.Stop();
        Assert.Equal(Count, engine.CompletedSequence);
        // 5. A later replay sees old and new records: the same 2000 commands, the last one re-stamped.
        var reloaded = EngineRecovery.Load(dir.Snapshots, dir.Journal, options.Ledger, useSnapshot: false, []);
        Assert.Equal(Count, reloaded.LastSequence);
        Assert.Empty(JournalVerifier.Verify(dir.Journal).Problems);
    }

    [Fact]
    public void A_flipped_byte_in_the_last_record_is_a_torn_tail_and_only_that_record_is_lost()
    {
        using var dir = new TempDataDir();
        // 1. Write.
        var commands = WriteThroughEngine(dir);
        // 2. Flip one payload byte of the last record: its CRC no longer matches and nothing valid follows.
        string segment = LastSegment(dir);
        FlipByte(segment, RecordOffset(segment, Count) + RecordFormat.HeaderSize + 60);
        // 3. Restart.
        var options = Options(dir, new SteppingClock());
        using var engine = RamPayEngine.Start(options);
        // 4. The last record is dropped, the rest survive.
        Assert.Equal(Count - 1, engine.Recovery.LastSequence);
        Assert.Equal(ExpectedHash(commands, Count - 1, options.Ledger), engine.Recovery.StateHash);
    }

    [Fact]
    public void Garbage_after_the_last_record_is_truncated_and_nothing_is_lost()
    {
        using var dir = new TempDataDir();
        // 1. Write.
        var commands = WriteThroughEngine(dir);
        // 2. Append bytes that are not a record (a half-written batch of zeros and noise).
        string segment = LastSegment(dir);
        long length = new FileInfo(segment).Length;
        using (var f = new FileStream(segment, FileMode.Append)) f.Write(Enumerable.Range(0, 300).Select(i => (byte)(i * 37)).ToArray());
        // 3. Restart.
        var options = Options(dir, new SteppingClock());
        using var engine = RamPayEngine.Start(options);
        // 4. All 2000 survive and the garbage is gone.
        Assert.Equal(Count, engine.Recovery.LastSequence);
        Assert.Equal(length, new FileInfo(segment).Length);
        Assert.Equal(ExpectedHash(commands, Count, options.Ledger), engine.Recovery.StateHash);
    }

    [Fact]
    public void A_flipped_byte_in_a_middle_record_stops_start_up_with_a_clear_error_and_changes_nothing()
    {
        using var dir = new TempDataDir();
        // 1. Write.
        WriteThroughEngine(dir);
        // 2. Flip a byte in record 1000's payload: valid records follow it, so this is not a torn tail.
        string segment = LastSegment(dir);
        FlipByte(segment, RecordOffset(segment, 1000) + RecordFormat.HeaderSize + 45);
        byte[] before = File.ReadAllBytes(segment);
        // 3. Restart.
        var error = Assert.ThrowsAny<JournalCorruptException>(() => RamPayEngine.Start(Options(dir, new SteppingClock())));
        // 4. The error names the place; no byte of the journal was changed (no silent skip, no truncation).
        Assert.Equal(1000, error.Sequence);
        Assert.Contains(Path.GetFileName(segment), error.Message);
        Assert.Equal(before, File.ReadAllBytes(segment));
        Assert.NotEmpty(JournalVerifier.Verify(dir.Journal).Problems);
    }

    [Fact]
    public void A_corrupt_newest_snapshot_falls_back_to_the_previous_one_and_the_state_is_the_same()
    {
        using var dir = new TempDataDir();
        var commands = new Commands().Workload(seed: 12, wallets: 10, count: 3000);
        var options = Options(dir, new SteppingClock()) with { SnapshotEveryCommands = 1000 };
        // 1. Write with a snapshot every 1000 commands.
        using (var engine = RamPayEngine.Start(options)) foreach (var c in commands) engine.Submit(c);
        var snapshots = Directory.GetFiles(dir.Snapshots, "*.snap").Order().ToArray();
        Assert.True(snapshots.Length >= 2);
        // 2. Damage the newest snapshot's payload.
        FlipByte(snapshots[^1], new FileInfo(snapshots[^1]).Length - 10);
        // 3. Restart.
        using var restarted = RamPayEngine.Start(options with { Clock = new SteppingClock().Now });
        // 4. An older snapshot plus a longer tail gives the same state; the bad snapshot is reported.
        Assert.True(restarted.Recovery.SnapshotSequence < snapshots.Length * 1000);
        Assert.Equal(commands.Count, restarted.Recovery.LastSequence);
        Assert.NotEmpty(restarted.Recovery.Warnings);
        Assert.Equal(ExpectedHash(commands, commands.Count, options.Ledger), restarted.Recovery.StateHash);
    }

    private static void FlipByte(string path, long offset)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        int b = f.ReadByte();
        f.Position = offset;
        f.WriteByte((byte)(b ^ 0x5A));
    }
}
