using RamPay.Core;
using RamPay.Storage;

namespace RamPay.Engine.Tests;

/// <summary>
/// The cold key tier's index grows without stopping the store (issue 10, fault 6): a larger table of 1 MiB chunks is
/// filled beside the old one a bounded amount per generation while lookups search both. The index lives in memory only
/// (rebuilt from the hash files at start), so it has no persisted layout to pin; the hash files' layout is
/// <see cref="KeySegmentStoreTests"/>' golden test.
/// </summary>
public class KeyIndexGrowthTests
{
    internal static IdempotencyKey Key(long i) => new((ulong)i * 0x9E3779B97F4A7C15 | 1, (ulong)(i + 1) * 0xBF58476D1CE4E5B9);
    private static ulong HashOf(long i) => KeySegmentStore.Hash(1, Key(i));

    private static long[] Find(KeyIndex index, long i, long floor = 0, long limit = long.MaxValue)
    {
        Span<long> into = stackalloc long[16];
        int n = index.Candidates(HashOf(i), floor, limit, into, 0, out bool more);
        Assert.False(more);
        return into[..n].ToArray();
    }

    [Fact]
    public void A_table_of_several_chunks_finds_every_entry_and_only_allocates_the_chunks_it_writes()
    {
        var pool = new KeyIndexChunks();
        // 3 chunks of 16,384 buckets and a short fourth; nothing allocated until written.
        var index = new KeyIndex(5 * (3 * KeyIndexChunks.ChunkBuckets + 100), pool);
        Assert.Equal(3 * KeyIndexChunks.ChunkBuckets + 100, index.Buckets);
        Assert.Equal(0, index.AllocatedBytes);
        Assert.Empty(Find(index, 1));
        const int n = 200_000; // 4 keys a bucket on average: many buckets full, entries overflowing across chunk edges
        for (long i = 0; i < n; i++) index.Insert(HashOf(i), i, floor: 0);
        Assert.Equal((3 * KeyIndexChunks.ChunkBuckets + 100) * 64, index.AllocatedBytes);
        for (long i = 0; i < n; i++) Assert.Contains(i, Find(index, i));
        // Below the floor a slot is free and its entry is not a candidate.
        Assert.DoesNotContain(Find(index, 5, floor: 100_000), x => x < 100_000);
        Assert.Contains(150_000L, Find(index, 150_000, floor: 100_000));
        Assert.DoesNotContain(150_000L, Find(index, 150_000, floor: 0, limit: 150_000));
    }

    [Fact]
    public void Chunks_reserved_ahead_are_taken_by_the_next_table_before_any_new_one()
    {
        var pool = new KeyIndexChunks();
        pool.Reserve();
        pool.Reserve();
        Assert.Equal(2 * KeyIndexChunks.ChunkBuckets * 64, pool.PooledBytes);
        var table = new KeyIndex(5 * 4 * KeyIndexChunks.ChunkBuckets, pool);
        for (long i = 100_000; i < 100_100; i++) table.Insert(HashOf(i), i, 0);
        Assert.Equal(0, pool.PooledBytes); // both reserved chunks taken before any new one
        Assert.Equal(4 * KeyIndexChunks.ChunkBuckets * 64, table.AllocatedBytes);
        for (long i = 100_000; i < 100_100; i++) Assert.Contains(i, Find(table, i));
        for (long i = 0; i < 1_000; i++) Assert.Empty(Find(table, i));
        pool.Reserve();
        pool.Clear(); // the table is the largest needed: nothing is held for a next one
        Assert.Equal(0, pool.PooledBytes);
        Assert.Equal(0, pool.Count);
        // A table is never made larger than the store needs.
        Assert.Equal(1_000, new KeyIndex(1_000_000, pool, maxBuckets: 1_000).Buckets);
    }

    [Fact]
    public void An_entry_in_both_tables_is_a_candidate_once()
    {
        var pool = new KeyIndexChunks();
        var old = new KeyIndex(1_000, pool);
        var @new = new KeyIndex(2_000, pool);
        old.Insert(HashOf(7), 7, 0);
        @new.Insert(HashOf(7), 7, 0);
        @new.Insert(HashOf(7), 9, 0); // a newer version of the same key
        Span<long> into = stackalloc long[16];
        int n = @new.Candidates(HashOf(7), 0, long.MaxValue, into, 0, out _);
        n = old.Candidates(HashOf(7), 0, long.MaxValue, into, n, out _);
        Assert.Equal([7L, 9L], into[..n].ToArray().Order().ToArray());
    }

    /// <summary>
    /// Remembers keys [from, from + count) (client 1 + i % clients, the key's index as the amount), closes their generation
    /// with ticks and waits until the store has written them.
    /// </summary>
    internal static void RememberAndWait(Ledger ledger, KeySegmentStore store, long from, int count, int clients)
    {
        for (long i = from; i < from + count; i++)
            ledger.Apply(new Command { Type = CommandType.Freeze, ClientId = 1 + i % clients, Key = Key(i), FromAccount = 99, Amount = i, TimestampMs = 1_000 + i }, out _);
        for (int t = 0; t < 64; t++) ledger.Apply(new Command { Type = CommandType.Tick, TimestampMs = 1_000 + from + count }, out _);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (store.FlushedThroughIndex < from + count)
        {
            Assert.Null(store.Fault);
            Assert.True(DateTime.UtcNow < deadline);
            Thread.Sleep(1);
        }
    }

    /// <summary>
    /// Through the store: 16 initial keys grown to 60,000 (about eight growths, the last ones over many generations), a
    /// reader looking up visible keys the whole time, and segments dropped under a horizon while a copy runs.
    /// </summary>
    [Fact]
    public void The_store_grows_its_index_over_many_generations_and_every_visible_key_is_found_meanwhile()
    {
        using var dir = new TempDataDir();
        using var store = new KeySegmentStore(new KeySegmentStoreOptions
        {
            Directory = dir.Path, KeyCapacity = 100_000, SegmentKeys = 1_024, InitialIndexKeys = 16, Fsync = false,
        });
        var ledger = new Ledger(new LedgerOptions
        {
            MaxAccounts = 8, MaxPayments = 16, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16, IdempotencyWindowMs = 1_000_000,
            ColdKeys = new ColdKeyTier { Store = store, HotMaxKeys = 512, GenerationCommands = 64 },
        });
        ledger.Apply(new Command { Type = CommandType.UpgradeRules, Argument = 2, Amount = 100_000, TimestampMs = 1 }, out _);

        using var stop = new CancellationTokenSource();
        long checkedLookups = 0;
        string? readerFailure = null;
        var reader = new Thread(() =>
        {
            var rng = new Random(3);
            while (!stop.IsCancellationRequested && readerFailure is null)
            {
                long visible = store.FlushedThroughIndex, floor = store.FloorIndex; // written after the index: all indexed
                if (visible <= floor) { Thread.Yield(); continue; }
                long i = floor + rng.NextInt64(visible - floor);
                if (!store.TryLookup(1 + i % 3, Key(i), long.MaxValue, out var e) || e.Index != i)
                {
                    if (i >= store.FloorIndex) readerFailure = $"key {i} not found (visible {visible}, floor {floor})";
                }
                else checkedLookups++;
            }
        }) { IsBackground = true };
        reader.Start();

        const int n = 60_000;
        int sawGrowing = 0;
        for (long from = 0; from < n; from += 500)
        {
            RememberAndWait(ledger, store, from, 500, clients: 3);
            if (store.IndexGrowing) sawGrowing++;
            // Past 40,000 keys, the oldest 10,000 are dead under a snapshot's horizon: segments drop while a copy may run.
            if (from == 40_000) store.SetHorizon(snapshotSequence: 1, deadBelowIndex: 10_240, expiredAtOrBeforeMs: long.MinValue);
        }
        stop.Cancel();
        reader.Join();
        Assert.Null(readerFailure);
        Assert.Null(store.Fault);
        Assert.True(checkedLookups > 1_000, $"{checkedLookups} lookups checked");
        Assert.True(store.IndexGrowths >= 7, $"{store.IndexGrowths} growths");
        Assert.True(sawGrowing >= 10, $"a growth's copy was seen running after {sawGrowing} batches only"); // spread over generations
        Assert.Equal(10_240, store.FloorIndex);
        for (long i = store.FloorIndex; i < n; i++)
        {
            Assert.True(store.TryLookup(1 + i % 3, Key(i), long.MaxValue, out var e), $"key {i}");
            Assert.Equal(i, e.Command.Amount);
        }
        for (long i = n; i < n + 5_000; i++) Assert.False(store.TryLookup(1 + i % 3, Key(i), long.MaxValue, out _));
        // The index's memory: the table, the one before (or its copy source) and pooled chunks; 64 B a bucket of 2.5 to 5 keys.
        Assert.True(store.IndexBytes < 4L * 64 * n / 2, $"index {store.IndexBytes} bytes for {n} keys");
    }
}
