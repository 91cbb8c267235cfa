using RamPay.Core;
using RamPay.Storage;

namespace RamPay.Engine.Tests;

/// <summary>
/// The key index's memory is bounded by what the store can hold (issue 10, indexmem): it grows to the largest table
/// <see cref="KeySegmentStoreOptions.MaxRetainedKeys"/> needs (six keys a bucket of seven) and no further, and then holds
/// neither the table it replaced nor chunks for a next one. Before, at the store's plateau (the budget plus the keys the
/// oldest snapshot still holds) it kept the table, the last one replaced and most of a next table that never came.
/// </summary>
public class KeyIndexBoundTests
{
    private static IdempotencyKey Key(long i) => KeyIndexGrowthTests.Key(i);

    [Fact]
    public void The_index_stops_at_the_largest_table_the_store_needs_and_then_holds_nothing_else()
    {
        using var dir = new TempDataDir();
        var options = new KeySegmentStoreOptions { Directory = dir.Path, KeyCapacity = 20_000, SegmentKeys = 1_024, InitialIndexKeys = 16, Fsync = false };
        // 25,000 + two segments = 27,048 keys at most; at six a bucket, 4,508 buckets (doubling from 64 would give 8,192).
        Assert.Equal(27_048, options.MaxRetainedKeys);
        Assert.Equal(4_508, options.MaxIndexBuckets);
        using var store = new KeySegmentStore(options);
        var ledger = new Ledger(new LedgerOptions
        {
            MaxAccounts = 8, MaxPayments = 16, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16, IdempotencyWindowMs = 1_000_000,
            ColdKeys = new ColdKeyTier { Store = store, HotMaxKeys = 512, GenerationCommands = 64 },
        });
        ledger.Apply(new Command { Type = CommandType.UpgradeRules, Argument = 2, Amount = 20_000, TimestampMs = 1 }, out _);

        // Past its capacity at five a bucket (22,540), up to what the store may hold: no growth beyond the largest table.
        const int n = 26_900;
        long growthsAtLargest = -1;
        for (long from = 0; from < n; from += 100)
        {
            KeyIndexGrowthTests.RememberAndWait(ledger, store, from, 100, clients: 1);
            Assert.True(store.IndexBuckets <= options.MaxIndexBuckets);
            if (store.IndexBuckets == options.MaxIndexBuckets && growthsAtLargest < 0) growthsAtLargest = store.IndexGrowths;
        }
        Assert.Null(store.Fault);
        Assert.True(growthsAtLargest > 0, "the index never reached its largest table");
        Assert.Equal(growthsAtLargest, store.IndexGrowths);
        Assert.False(store.IndexGrowing);
        // The table alone: one short chunk of 4,508 buckets, nothing replaced kept, nothing reserved ahead.
        Assert.Equal(options.MaxIndexBuckets * 64, store.IndexBytes);
        for (long i = 0; i < n; i++)
        {
            Assert.True(store.TryLookup(1, Key(i), long.MaxValue, out var e), $"key {i}");
            Assert.Equal(i, e.Command.Amount);
        }
        for (long i = n; i < n + 2_000; i++) Assert.False(store.TryLookup(1, Key(i), long.MaxValue, out _));
    }
}
