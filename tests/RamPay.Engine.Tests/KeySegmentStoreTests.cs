using System.Runtime.CompilerServices;
using RamPay.Core;
using RamPay.Storage;

namespace RamPay.Engine.Tests;

/// <summary>
/// The segmented cold tier (<see cref="KeySegmentStore"/>) on its own: its persisted layout against golden files, and
/// what a restart finds after a crash at each point of its write and drop paths. Entries are fed the way the engine feeds
/// them: a ledger under rules version 2 closes generations and hands them over.
/// </summary>
public class KeySegmentStoreTests
{
    private const int SegmentKeys = 8;
    private const int Keys = 20;

    private static IdempotencyKey Key(long i) => new((ulong)i * 0x9E3779B97F4A7C15 | 1, (ulong)(i + 1) * 0xBF58476D1CE4E5B9);

    private static KeySegmentStore Open(string dir, long capacity = 64) =>
        new(new KeySegmentStoreOptions { Directory = dir, KeyCapacity = capacity, SegmentKeys = SegmentKeys, InitialIndexKeys = 16, Fsync = false });

    /// <summary>A ledger under rules version 2 over <paramref name="store"/>: generations of 8 commands, 32 keys hot.</summary>
    private static Ledger LedgerOver(KeySegmentStore store, long budget = 1_000)
    {
        var ledger = new Ledger(new LedgerOptions
        {
            MaxAccounts = 8, MaxPayments = 16, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16, IdempotencyWindowMs = 1_000_000,
            ColdKeys = new ColdKeyTier { Store = store, HotMaxKeys = 32, GenerationCommands = 8 },
        });
        ledger.Apply(new Command { Type = CommandType.UpgradeRules, Argument = 2, Amount = budget, TimestampMs = 1 }, out _);
        return ledger;
    }

    /// <summary>Keys [from, to) remembered (freezes of an account that does not exist: refused, and remembered), then ticks to close the generation.</summary>
    private static void Remember(Ledger ledger, KeySegmentStore store, long from, long to)
    {
        for (long i = from; i < to; i++)
            ledger.Apply(new Command { Type = CommandType.Freeze, ClientId = 1 + i % 3, Key = Key(i), FromAccount = 99, Amount = i, TimestampMs = 1_000 + i }, out _);
        for (int t = 0; t < 16; t++) ledger.Apply(new Command { Type = CommandType.Tick, TimestampMs = 1_000 + to }, out _);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (store.FlushedThroughIndex < to)
        {
            Assert.Null(store.Fault);
            Assert.True(DateTime.UtcNow < deadline, $"the store reached {store.FlushedThroughIndex} of {to}");
            Thread.Sleep(5);
        }
    }

    private static string GoldenFolder([CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "Golden", "coldkeys-v1");

    private static void WriteTwentyKeys(string dir)
    {
        using var store = Open(dir);
        Remember(LedgerOver(store), store, 0, Keys);
    }

    private static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)), overwrite: true);
    }

    private static void AssertHolds(KeySegmentStore store, long from, long to)
    {
        for (long i = from; i < to; i++)
        {
            Assert.True(store.TryLookup(1 + i % 3, Key(i), long.MaxValue, out var e), $"key {i} not found");
            Assert.Equal(i, e.Index);
            Assert.Equal(i, e.Command.Amount);
            Assert.Equal(1_000 + i, e.Command.TimestampMs);
            Assert.Equal(CommandType.Freeze, e.Command.Type);
        }
    }

    /// <summary>
    /// The layout written today, byte for byte: three segments of 8 records (the third holding 4), their hash files (the
    /// full ones with their trailer), and the manifest. Regenerate only with a new format version, in a new folder
    /// (RAMPAY_WRITE_GOLDEN=1 writes Golden/coldkeys-v1 when it is missing).
    /// </summary>
    [Fact]
    public void The_persisted_layout_matches_the_golden_files()
    {
        using var dir = new TempDataDir();
        WriteTwentyKeys(dir.Path);
        string golden = GoldenFolder();
        if (!Directory.Exists(golden) && Environment.GetEnvironmentVariable("RAMPAY_WRITE_GOLDEN") == "1") Copy(dir.Path, golden);
        string[] written = Directory.GetFiles(dir.Path).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToArray();
        string[] expected = Directory.GetFiles(golden).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(expected, written);
        Assert.Equal(["keys-0000000000000000.hash", "keys-0000000000000000.seg", "keys-0000000000000008.hash", "keys-0000000000000008.seg",
            "keys-0000000000000016.hash", "keys-0000000000000016.seg", "keys.manifest"], written);
        foreach (string name in written)
            Assert.True(File.ReadAllBytes(Path.Combine(golden, name)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(dir.Path, name))), $"{name} differs from its golden file");
        Assert.Equal(4096 + SegmentKeys * 128, new FileInfo(Path.Combine(dir.Path, "keys-0000000000000000.seg")).Length);
        Assert.Equal(SegmentKeys * 8 + KeySegmentStore.HashTrailerBytes, new FileInfo(Path.Combine(dir.Path, "keys-0000000000000000.hash")).Length);
    }

    [Fact]
    public void The_golden_files_are_read_back_by_todays_code()
    {
        using var dir = new TempDataDir();
        Copy(GoldenFolder(), dir.Path);
        using var store = Open(dir.Path);
        Assert.Equal(Keys, store.FlushedThroughIndex);
        Assert.Equal(0, store.FloorIndex);
        AssertHolds(store, 0, Keys);
        Assert.False(store.TryLookup(1, Key(Keys), long.MaxValue, out _));
        Assert.False(store.TryLookup(2, Key(0), long.MaxValue, out _)); // key 0 belongs to client 1
        // A lookup limited below an entry's index does not see it (the tier ahead of a recovered state).
        Assert.False(store.TryLookup(1 + 5 % 3, Key(5), 5, out _));
    }

    [Fact]
    public void A_miss_reads_nothing_from_disk()
    {
        using var dir = new TempDataDir();
        Copy(GoldenFolder(), dir.Path);
        using var store = Open(dir.Path);
        for (long i = 1_000; i < 11_000; i++) Assert.False(store.TryLookup(1, Key(i), long.MaxValue, out _));
        Assert.True(store.ReadsIssued <= 2, $"{store.ReadsIssued} record reads for 10,000 misses"); // a 24-bit tag may collide
    }

    /// <summary>Crashes of the write and drop paths, as numbered steps, each on a copy of the same twenty keys.</summary>
    [Fact]
    public void A_restart_after_a_crash_keeps_every_intact_entry_and_cuts_a_torn_tail()
    {
        using var root = new TempDataDir();
        string clean = Path.Combine(root.Path, "clean");
        WriteTwentyKeys(clean);
        string newest = "keys-0000000000000016.seg";

        // 1. The newest segment's last record torn half-way (the crash came before its fsync): the 19 before it survive.
        string torn = Path.Combine(root.Path, "torn");
        Copy(clean, torn);
        using (var f = File.OpenHandle(Path.Combine(torn, newest), FileMode.Open, FileAccess.ReadWrite))
            RandomAccess.SetLength(f, RandomAccess.GetLength(f) - 50);
        using (var store = Open(torn))
        {
            Assert.Equal(Keys - 1, store.FlushedThroughIndex);
            AssertHolds(store, 0, Keys - 1);
            Assert.False(store.TryLookup(1 + 19 % 3, Key(19), long.MaxValue, out _));
            // 2. The replay hands the lost entry over again: it is written where it was, and found.
            Remember(LedgerOver(store), store, 0, Keys);
            AssertHolds(store, 0, Keys);
        }

        // 3. A record in the middle of the newest segment damaged (pages written out of order): the tail from it is cut.
        string damaged = Path.Combine(root.Path, "damaged");
        Copy(clean, damaged);
        FlipByte(Path.Combine(damaged, newest), 4096 + 1 * 128 + 40); // index 17
        using (var store = Open(damaged))
        {
            Assert.Equal(17, store.FlushedThroughIndex);
            AssertHolds(store, 0, 17);
        }

        // 4. A full segment's hash file damaged: its trailer no longer matches, so the hashes are rebuilt from the records.
        string hashes = Path.Combine(root.Path, "hashes");
        Copy(clean, hashes);
        FlipByte(Path.Combine(hashes, "keys-0000000000000008.hash"), 3 * 8);
        using (var store = Open(hashes))
        {
            Assert.Equal(Keys, store.FlushedThroughIndex);
            AssertHolds(store, 0, Keys);
        }

        // 5. A record of an older (full) segment damaged: that is not a torn tail but lost data, refused loudly.
        string older = Path.Combine(root.Path, "older");
        Copy(clean, older);
        FlipByte(Path.Combine(older, "keys-0000000000000000.hash"), 0);
        FlipByte(Path.Combine(older, "keys-0000000000000000.seg"), 4096 + 3 * 128 + 20);
        Assert.Throws<InvalidDataException>(() => Open(older).Dispose());

        // 6. A segment missing between two others: refused.
        string gap = Path.Combine(root.Path, "gap");
        Copy(clean, gap);
        File.Delete(Path.Combine(gap, "keys-0000000000000008.seg"));
        File.Delete(Path.Combine(gap, "keys-0000000000000008.hash"));
        Assert.Throws<InvalidDataException>(() => Open(gap).Dispose());

        // 7. The manifest damaged: refused (it says which keys were deleted and under which snapshot).
        string manifest = Path.Combine(root.Path, "manifest");
        Copy(clean, manifest);
        FlipByte(Path.Combine(manifest, "keys.manifest"), 17);
        Assert.Throws<InvalidDataException>(() => Open(manifest).Dispose());
    }

    /// <summary>
    /// Dropping dead segments, as numbered steps: the manifest is written first, so a crash before the files are deleted
    /// leaves files a restart deletes; the horizon's snapshot is recorded, so recovery from an older one can be refused.
    /// </summary>
    [Fact]
    public void Dead_segments_are_dropped_whole_and_a_crash_half_way_through_a_drop_finishes_it_at_restart()
    {
        using var root = new TempDataDir();
        string dir = Path.Combine(root.Path, "store");
        string before = Path.Combine(root.Path, "before-drop");
        using (var store = Open(dir))
        {
            // 1. Twenty keys in three segments; a copy is kept (the files as they were before the drop).
            var ledger = LedgerOver(store);
            Remember(ledger, store, 0, Keys);
            Copy(dir, before);
            // 2. A snapshot at sequence 500 whose state kills every entry below index 12: the first segment (0..7) is dead,
            //    the second (8..15) is not. The next write drops the first.
            store.SetHorizon(500, deadBelowIndex: 12, expiredAtOrBeforeMs: 0);
            Remember(ledger, store, Keys, Keys + 8);
            Assert.Equal(8, store.FloorIndex);
            Assert.Equal(1, store.SegmentsDropped);
            Assert.Equal(500, store.RecycledUnderSequence);
            Assert.False(File.Exists(Path.Combine(dir, "keys-0000000000000000.seg")));
            Assert.False(store.TryLookup(1, Key(0), long.MaxValue, out _));
            AssertHolds(store, 8, Keys + 8);
            // 3. Expiry by time drops a segment too: every entry of 8..15 is stamped at or before 1,015.
            store.SetHorizon(600, deadBelowIndex: 0, expiredAtOrBeforeMs: 1_015);
            Remember(ledger, store, Keys + 8, Keys + 16);
            Assert.Equal(16, store.FloorIndex);
            Assert.Equal(600, store.RecycledUnderSequence);
            AssertHolds(store, 16, Keys + 16);
            Assert.True(store.Keys <= 3 * SegmentKeys, $"{store.Keys} keys kept");
        }
        // 4. A crash after the manifest was written but before the files were deleted: the old files are back.
        foreach (string f in new[] { "keys-0000000000000000.seg", "keys-0000000000000000.hash", "keys-0000000000000008.seg", "keys-0000000000000008.hash" })
            File.Copy(Path.Combine(before, f), Path.Combine(dir, f));
        using (var store = Open(dir))
        {
            // 5. The restart deletes them, and the floor and the horizon's snapshot are as the manifest says.
            Assert.False(File.Exists(Path.Combine(dir, "keys-0000000000000000.seg")));
            Assert.False(File.Exists(Path.Combine(dir, "keys-0000000000000008.hash")));
            Assert.Equal(16, store.FloorIndex);
            Assert.Equal(600, store.RecycledUnderSequence);
            Assert.Equal(Keys + 16, store.FlushedThroughIndex);
            AssertHolds(store, 16, Keys + 16);
        }
    }

    /// <summary>The index grows (rebuilt off the writer) and stays exact; many keys share buckets and overflow.</summary>
    [Fact]
    public void The_index_grows_past_its_initial_size_and_finds_every_key()
    {
        using var dir = new TempDataDir();
        const int n = 3_000;
        using var store = Open(dir.Path, capacity: 10_000);
        var ledger = LedgerOver(store, budget: 10_000);
        Remember(ledger, store, 0, n);
        Assert.True(store.IndexBytes > 64 * 64, $"index {store.IndexBytes} bytes");
        AssertHolds(store, 0, n);
        for (long i = n; i < n + 3_000; i++) Assert.False(store.TryLookup(1 + i % 3, Key(i), long.MaxValue, out _));
    }

    internal static void FlipByte(string path, long offset)
    {
        using var f = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        Span<byte> b = stackalloc byte[1];
        RandomAccess.Read(f, b, offset);
        b[0] ^= 0x5A;
        RandomAccess.Write(f, b, offset);
    }
}
