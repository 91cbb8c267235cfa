using System.Runtime.CompilerServices;
using RamPay.Core;
using RamPay.Storage;

namespace RamPay.Engine.Tests;

/// <summary>
/// The payments' log-structured cold tier on its own: its layout frozen by golden files, read back by today's code, and
/// its recovery as numbered crash steps (a torn tail, a damaged record, an older segment damaged, a missing segment, a
/// damaged header, versions written after the recovered state, and a write held back until the journal is durable).
/// </summary>
public class PaymentLogStoreTests
{
    private const int Chunk = 16;
    private const long SegmentBytes = 4096; // 33 payment records a segment

    private static string GoldenFolder([CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "Golden", "coldpayments-v1");

    internal static Payment P(long id, PaymentStatus status = PaymentStatus.Posted, long refunded = 0) => new()
    {
        Id = id, FromAccount = 2 + id % 3, ToAccount = 5, Amount = 1000 + id, Captured = status == PaymentStatus.Authorized ? 0 : 1000 + id,
        Refunded = refunded, CreatedAtMs = 1_700_000_000_000 + id, ExpiresAtMs = status == PaymentStatus.Authorized ? 1_700_100_000_000 : 0,
        PrevForFrom = id > 3 ? id - 3 : 0, PrevForTo = id - 1, Currency = Currency.USD,
        Kind = status is PaymentStatus.Posted ? PaymentKind.Transfer : PaymentKind.Authorization, Status = status,
        FraudScore = id % 4 == 0 ? 0.25f : 0, FraudModel = (ushort)(id % 4 == 0 ? 1 : 0),
    };

    internal static readonly PaymentNote Note = new("golden note", "https://example.com/hook");

    /// <summary>
    /// Four generations: chunks 1-16, 17-32, 33-48 (payment 3 open in the first: not written; payment 2 with a note), then
    /// the pool's changed ones (3 captured, 2 refunded) stamped later; 50 payment records and a note: two segments.
    /// </summary>
    internal static List<PaymentBatch> Batches()
    {
        var list = new List<PaymentBatch>();
        for (int g = 0; g < 4; g++)
        {
            var b = new PaymentBatch(Chunk, 4) { Generation = g + 1, Stamp = 100 * (g + 1) };
            if (g < 3)
            {
                b.ChunkLength = Chunk;
                b.ChunkFirstId = g * Chunk + 1;
                for (int j = 0; j < Chunk; j++) b.Items[j] = g * Chunk + j + 1 == 3 ? default : P(g * Chunk + j + 1);
                if (g == 0) b.Notes[1] = Note;
            }
            if (g == 3)
            {
                b.PoolCount = 2;
                b.Items[0] = P(3, PaymentStatus.Captured);
                b.Items[1] = P(2, refunded: 500);
            }
            list.Add(b);
        }
        return list;
    }

    // The start's read block (PaymentLogStoreOptions.RecoveryReadBytes): the crash steps run with the default and with blocks
    // that split records (a header in one block, its body in the next) or hold less than one record (the buffer grows).
    private int _recoveryReadBytes = new PaymentLogStoreOptions { Directory = "x" }.RecoveryReadBytes;

    private PaymentLogStore Open(string dir, long recoverAt = long.MaxValue, Func<long>? durable = null)
    {
        var store = new PaymentLogStore(new PaymentLogStoreOptions
        {
            Directory = dir, SegmentBytes = SegmentBytes, Fsync = false, DurableSequence = durable ?? (() => long.MaxValue),
            RecoveryReadBytes = _recoveryReadBytes,
        });
        store.Recover(recoverAt);
        return store;
    }

    private void WriteAll(string dir)
    {
        using var store = Open(dir);
        foreach (var b in Batches()) store.Flush(b);
        store.WaitVisible(4);
    }

    internal static void AssertAll(PaymentLogStore store, bool withPool = true)
    {
        for (long id = 1; id <= 48; id++)
        {
            bool found = store.TryRead(id, out var p);
            if (id == 3 && !withPool) { Assert.False(found); continue; }
            Assert.True(found, $"payment {id}");
            var want = id == 3 ? P(3, PaymentStatus.Captured) : id == 2 && withPool ? P(2, refunded: 500) : P(id);
            Assert.True(PaymentCodec.SamePersisted(want, p), $"payment {id} read back differs");
        }
        Assert.False(store.TryRead(49, out _));
        Assert.Equal(Note, PaymentNote.TryDecode(store.ReadNote(2)!));
        Assert.Null(store.ReadNote(1));
    }

    /// <summary>The layout written today, byte for byte. Regenerate only with a new format version, in a new folder (RAMPAY_WRITE_GOLDEN=1 writes it when missing).</summary>
    [Fact]
    public void The_persisted_layout_matches_the_golden_files_and_is_read_back()
    {
        using var dir = new TempDataDir();
        WriteAll(dir.Path);
        string golden = GoldenFolder();
        if (!Directory.Exists(golden) && Environment.GetEnvironmentVariable("RAMPAY_WRITE_GOLDEN") == "1") CopyDirectory(dir.Path, golden);
        string[] written = Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        Assert.Equal(["payments-000001.log", "payments-000002.log"], written);
        foreach (string name in written)
            Assert.True(File.ReadAllBytes(Path.Combine(golden, name)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(dir.Path, name))), $"{name} differs from its golden file");
        // A 64-byte header, the note (64 bytes aligned), 33 payment records of 120 bytes; the other 16 in the second segment.
        Assert.Equal(PaymentLogStore.HeaderBytes + 64 + 33 * 120, new FileInfo(Path.Combine(dir.Path, written[0])).Length);
        Assert.Equal(PaymentLogStore.HeaderBytes + 16 * 120, new FileInfo(Path.Combine(dir.Path, written[1])).Length);

        using var copy = new TempDataDir();
        CopyDirectory(golden, copy.Path);
        using var store = Open(copy.Path);
        AssertAll(store);
        Assert.Equal(50, store.RecordsWritten); // 49 payment records and the note
        Assert.Equal(2, store.RecoveryReads); // one block a segment, not two reads a record (the start at 100 M payments took minutes)
        Assert.Equal(1, store.GarbageRecords); // 2's first version is superseded; 3 had none before it closed
    }

    [Theory]
    [InlineData(0)]    // the default block (1 MiB: a whole test segment at once)
    [InlineData(200)]  // a block of 200 bytes: most records straddle two blocks
    [InlineData(7)]    // less than a record header: the buffer grows to each record
    public void Crash_steps_recover_or_refuse_with_a_message(int readBytes)
    {
        if (readBytes > 0) _recoveryReadBytes = readBytes;
        using var dir = new TempDataDir();
        WriteAll(dir.Path);
        string seg1 = Path.Combine(dir.Path, "payments-000001.log"), seg2 = Path.Combine(dir.Path, "payments-000002.log");
        long length2 = new FileInfo(seg2).Length;

        // 1. A torn tail (half a record appended to the newest segment): cut at the last whole record, nothing lost.
        using (var f = new FileStream(seg2, FileMode.Append)) f.Write(new byte[60].Select((_, i) => (byte)(i + 1)).ToArray());
        using (var store = Open(dir.Path)) AssertAll(store);
        Assert.Equal(length2, new FileInfo(seg2).Length);

        // 2. The store continues after the cut: a new generation is appended and read back after another restart.
        using (var store = Open(dir.Path))
        {
            var b = new PaymentBatch(Chunk, 1) { Generation = 1, Stamp = 500, PoolCount = 1 };
            b.Items[0] = P(5, refunded: 7);
            store.Flush(b);
            store.WaitVisible(1);
        }
        using (var store = Open(dir.Path))
        {
            Assert.True(store.TryRead(5, out var p) && p.Refunded == 7);
        }

        // 3. Recovery of a state at stamp 300 (a snapshot taken before the pool's generation): the later versions are cut,
        //    the older ones are read again (the replay writes the newer ones again).
        using (var store = Open(dir.Path, recoverAt: 300))
        {
            AssertAll(store, withPool: false);
            Assert.True(store.TryRead(5, out var p) && p.Refunded == 0);
        }
        Assert.True(new FileInfo(seg2).Length < length2);

        // 4. A damaged record in the newest segment ends it there (it was never visible: its fsync did not return).
        WriteFresh(dir.Path);
        length2 = new FileInfo(seg2).Length;
        Corrupt(seg2, PaymentLogStore.HeaderBytes + 3 * 120 + 20);
        using (var store = Open(dir.Path)) Assert.True(store.TryRead(37, out _) && !store.TryRead(38, out _) && !store.TryRead(48, out _));

        // 5. A damaged record in an older segment stops the start: the tier lost durable data.
        WriteFresh(dir.Path);
        Corrupt(seg1, PaymentLogStore.HeaderBytes + 5 * 120 + 30);
        var e = Assert.Throws<InvalidDataException>(() => Open(dir.Path));
        Assert.Contains("older segment", e.Message);

        // 6. A missing segment stops the start.
        WriteFresh(dir.Path);
        File.Delete(seg1);
        e = Assert.Throws<InvalidDataException>(() => Open(dir.Path));
        Assert.Contains("misses segment payments-000001.log", e.Message);

        // 7. A damaged segment header stops the start.
        WriteFresh(dir.Path);
        Corrupt(seg2, 17);
        e = Assert.Throws<InvalidDataException>(() => Open(dir.Path));
        Assert.Contains("header", e.Message);
    }

    [Fact]
    public void A_generation_is_written_only_once_the_journal_is_durable_through_its_stamp()
    {
        using var dir = new TempDataDir();
        long durable = 5;
        using var store = Open(dir.Path, durable: () => Volatile.Read(ref durable));
        var b = new PaymentBatch(Chunk, 1) { Generation = 1, Stamp = 10, PoolCount = 1 };
        b.Items[0] = P(1);
        store.Flush(b);
        Thread.Sleep(200);
        Assert.Equal(0, store.VisibleGeneration);
        Assert.False(store.TryRead(1, out _));
        Volatile.Write(ref durable, 10);
        store.WaitVisible(1);
        Assert.True(store.TryRead(1, out _));
    }

    private void WriteFresh(string dir)
    {
        foreach (var f in Directory.GetFiles(dir)) File.Delete(f);
        WriteAll(dir);
    }

    private static void Corrupt(string path, long offset)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        int b = f.ReadByte();
        f.Position = offset;
        f.WriteByte((byte)(b ^ 0x5A));
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)), overwrite: true);
    }
}
