using System.IO.Compression;
using System.Runtime.CompilerServices;
using RamPay.Storage;
using static RamPay.Engine.Tests.PaymentLogStoreTests;

namespace RamPay.Engine.Tests;

/// <summary>
/// The payment log's index checkpoints (bounded restarts, issue 10): a start loads the newest checkpoint stamped at or
/// before the recovered state and reads only the log after it. Layout frozen by a golden file; crash steps: a checkpoint
/// after the recovered state, a torn or damaged one (the next older serves, or the whole log, said in a warning), one the
/// last run did not finish, and a follower that may stand before every checkpoint.
/// </summary>
public class PaymentIndexCheckpointTests
{
    // Format 2 (PaymentIndex: a position per block of 64 ids, exact entries); format 1 (8 bytes an id) is still read.
    private static string GoldenFile(int format = 2, [CallerFilePath] string here = "") =>
        Path.Combine(Path.GetDirectoryName(here)!, "Golden", $"coldpayments-index-v{format}", PaymentLogStore.CheckpointName(400) + ".gz");

    private static byte[] Gunzip(string path)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var bytes = new MemoryStream();
        gz.CopyTo(bytes);
        return bytes.ToArray();
    }

    private static PaymentLogStore Open(string dir, long recoverAt = long.MaxValue, bool sinks = false)
    {
        var store = new PaymentLogStore(new PaymentLogStoreOptions
        {
            Directory = dir, SegmentBytes = 4096, Fsync = false, CheckpointEveryBytes = 1, CheckpointIndexMultiple = 0, KeepPriorVersions = sinks,
        });
        if (sinks) store.AddFollower(long.MinValue);
        store.Recover(recoverAt);
        return store;
    }

    /// <summary>
    /// The four generations of <see cref="PaymentLogStoreTests.Batches"/> (stamps 100 to 400) with a checkpoint after each
    /// log growth: one begins after generation 1 and lands after 2 (stamp 200), one begins after 3 and lands after 4 (400).
    /// </summary>
    private static void WriteAll(string dir)
    {
        using var store = Open(dir);
        foreach (var b in Batches()) store.Flush(b);
        store.WaitVisible(4);
        Assert.Equal(2, store.CheckpointsWritten);
    }

    private static string Checkpoint(string dir, long stamp) => Path.Combine(dir, PaymentLogStore.CheckpointName(stamp));

    [Fact]
    public void The_checkpoint_layout_matches_its_golden_file_and_a_start_reads_only_the_log_after_it()
    {
        using var dir = new TempDataDir();
        WriteAll(dir.Path);
        Assert.Equal([PaymentLogStore.CheckpointName(200), PaymentLogStore.CheckpointName(400)],
            Directory.GetFiles(dir.Path, "*.ckpt").Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToArray());
        byte[] written = File.ReadAllBytes(Checkpoint(dir.Path, 400));
        string golden = GoldenFile();
        if (!File.Exists(golden) && Environment.GetEnvironmentVariable("RAMPAY_WRITE_GOLDEN") == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(golden)!);
            using var o = new GZipStream(File.Create(golden), CompressionLevel.SmallestSize);
            o.Write(written);
        }
        Assert.True(Gunzip(golden).AsSpan().SequenceEqual(written), "the checkpoint differs from its golden file");
        // 128-byte header, one chunk of 2^14 blocks (16 bytes each: 2^20 ids), the exact entries when it began (ids 35 to 48,
        // first versions the first segment's end split from their block's run; 16 bytes each), the note (16 bytes), the 3
        // spans written when it began (32 bytes each). Format 1 took 8 MiB for the same index.
        Assert.Equal(128 + (16 << 14) + 14 * 16 + 16 + 3 * 32, written.Length);

        using var store = Open(dir.Path);
        Assert.Contains("checkpoint " + PaymentLogStore.CheckpointName(400), store.RecoveredFrom);
        Assert.Equal(2 * 120, store.RecoveryLogBytes); // generation 4's two records: the checkpoint began after generation 3
        Assert.Null(store.RecoveryWarning);
        AssertAll(store);
        Assert.Equal(50, store.RecordsWritten);
        Assert.Equal(48, store.Payments);
        Assert.Equal(1, store.GarbageRecords);
    }

    /// <summary>A checkpoint written in format 1 (before 2026-12-06, 8 bytes an id) still serves a start, turned into blocks.</summary>
    [Fact]
    public void A_format_1_checkpoint_still_serves_a_start_in_a_quarter_of_a_byte_a_payment()
    {
        using var dir = new TempDataDir();
        WriteAll(dir.Path); // the same log as format 1's golden checkpoint was written beside
        foreach (string f in Directory.GetFiles(dir.Path, "*.ckpt")) File.Delete(f);
        byte[] v1 = Gunzip(GoldenFile(format: 1));
        Assert.Equal(1, BitConverter.ToInt32(v1, 8));
        File.WriteAllBytes(Checkpoint(dir.Path, 400), v1);
        using var store = Open(dir.Path);
        Assert.Contains("checkpoint " + PaymentLogStore.CheckpointName(400), store.RecoveredFrom);
        Assert.Null(store.RecoveryWarning);
        Assert.Equal(2 * 120, store.RecoveryLogBytes);
        AssertAll(store);
        Assert.Equal(50, store.RecordsWritten);
        Assert.Equal(48, store.Payments);
        Assert.Equal(1, store.GarbageRecords);
        Assert.True(store.IndexBytes < 300_000, $"index {store.IndexBytes} bytes (format 1 held 8 MiB)");
        Assert.Equal(16, store.IndexExactEntries); // 35 to 48 (the segment's end), 3 (written late), 2 (re-written)
    }

    [Fact]
    public void Crash_steps_fall_back_to_an_older_checkpoint_or_the_whole_log_and_say_so()
    {
        using var dir = new TempDataDir();
        WriteAll(dir.Path);
        using var keep = new TempDataDir();
        foreach (string f in Directory.GetFiles(dir.Path)) File.Copy(f, Path.Combine(keep.Path, Path.GetFileName(f)));
        void Fresh()
        {
            foreach (string f in Directory.GetFiles(dir.Path)) File.Delete(f);
            foreach (string f in Directory.GetFiles(keep.Path)) File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        }

        // 1. The checkpoint landed, then the engine crashed before its next snapshot: recovery is at stamp 300, before the
        //    newest checkpoint (400). The one at 200 serves (no warning: normal), generation 4 is cut as before, and the
        //    checkpoint at 400 is deleted (the replay writes other records where it points).
        using (var store = Open(dir.Path, recoverAt: 300))
        {
            Assert.False(File.Exists(Checkpoint(dir.Path, 400)));
            Assert.Contains(PaymentLogStore.CheckpointName(200), store.RecoveredFrom);
            Assert.Null(store.RecoveryWarning);
            AssertAll(store, withPool: false);
            Assert.Equal(47, store.Payments); // payment 3's only version was in generation 4
            Assert.Equal(48, store.RecordsWritten);
            Assert.Equal(0, store.GarbageRecords);
        }

        // 2. Recovery before every checkpoint (stamp 150): the whole log is read, with a warning.
        Fresh();
        using (var store = Open(dir.Path, recoverAt: 150))
        {
            Assert.StartsWith("the whole log", store.RecoveredFrom);
            Assert.Contains("every index checkpoint was after the recovered state", store.RecoveryWarning);
            Assert.Empty(Directory.GetFiles(dir.Path, "*.ckpt"));
            Assert.True(store.TryRead(16, out _) && !store.TryRead(17, out _));
        }

        // 3. The newest checkpoint torn (its last 100 bytes lost): the older one serves, and the warning names the torn one.
        Fresh();
        using (var f = File.OpenHandle(Checkpoint(dir.Path, 400), FileMode.Open, FileAccess.ReadWrite))
            RandomAccess.SetLength(f, RandomAccess.GetLength(f) - 100);
        using (var store = Open(dir.Path))
        {
            Assert.Contains(PaymentLogStore.CheckpointName(200), store.RecoveredFrom);
            Assert.Contains(PaymentLogStore.CheckpointName(400) + ":", store.RecoveryWarning);
            Assert.Contains("torn", store.RecoveryWarning);
            AssertAll(store);
            Assert.Equal(50, store.RecordsWritten);
            Assert.Equal(1, store.GarbageRecords);
        }

        // 4. Both damaged (a flipped byte in the older one's index, the newer one torn): the whole log, loudly.
        Fresh();
        using (var f = File.OpenHandle(Checkpoint(dir.Path, 400), FileMode.Open, FileAccess.ReadWrite))
            RandomAccess.SetLength(f, 64);
        KeySegmentStoreTests.FlipByte(Checkpoint(dir.Path, 200), 128 + 8);
        using (var store = Open(dir.Path))
        {
            Assert.StartsWith("the whole log", store.RecoveredFrom);
            Assert.Contains("no usable index checkpoint", store.RecoveryWarning);
            Assert.Contains("CRC", store.RecoveryWarning);
            AssertAll(store);
            Assert.Equal(50, store.RecordsWritten);
        }

        // 5. A checkpoint the last run did not finish (its temporary file, half written): deleted, the newest whole one serves.
        Fresh();
        File.WriteAllBytes(Path.Combine(dir.Path, "payments-index.ckpt.tmp"), new byte[1000]);
        using (var store = Open(dir.Path))
        {
            Assert.Contains(PaymentLogStore.CheckpointName(400), store.RecoveredFrom);
            AssertAll(store);
        }
        Assert.False(File.Exists(Path.Combine(dir.Path, "payments-index.ckpt.tmp")));

        // 6. The sinks follow the log from a checkpoint of their own that may be older than every index checkpoint: the whole
        //    log is read (it alone gives the links to older versions they may need), with a warning.
        Fresh();
        using (var store = Open(dir.Path, sinks: true))
        {
            Assert.StartsWith("the whole log", store.RecoveredFrom);
            Assert.Contains("follower", store.RecoveryWarning);
            AssertAll(store);
        }

        // 7. After a start from a checkpoint, a follower behind it cannot join (it would need versions the checkpoint does not
        //    link): refused with a message, never a wrong read. One at or after it can.
        Fresh();
        using (var store = Open(dir.Path))
        {
            Assert.Throws<InvalidOperationException>(() => store.AddFollower(300));
            store.AddFollower(400);
        }
    }
}
