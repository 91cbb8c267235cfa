using RamPay.Storage;

namespace RamPay.Engine.Tests;

/// <summary>
/// The key tier's default capacity covers the keys the kept snapshots still hold. The long run of issue 10 (budget 33.5 M
/// keys, a snapshot every 10 M commands, three kept) stopped FATAL at 44 M payments with ColdTierFullException: the store
/// may keep 1.25 × capacity, every key made since the oldest kept snapshot stays on disk, and the capacity was the budget.
/// </summary>
public class KeyCapacityDefaultTests
{
    [Fact]
    public void The_default_capacity_is_the_budget_plus_the_kept_snapshots_span()
    {
        var engine = new EngineOptions
        {
            DataDirectory = "unused", IdempotencyKeyBudget = 33_554_432, SnapshotEveryCommands = 10_000_000, SnapshotsToKeep = 3,
            ColdTier = new ColdTierOptions(),
        };
        long capacity = engine.ColdTier!.KeyCapacityFor(engine);
        Assert.Equal(33_554_432 + 3 * 10_000_000, capacity);

        // What the store then retains at most covers the worst case the run met: the budget, three snapshot intervals behind
        // the newest snapshot and one interval not yet snapshotted (the oldest kept snapshot is that far behind).
        long retained = new KeySegmentStoreOptions { Directory = "unused", KeyCapacity = capacity, SegmentKeys = engine.ColdTier!.SegmentKeys }.MaxRetainedKeys;
        Assert.True(retained >= engine.IdempotencyKeyBudget + (engine.SnapshotsToKeep + 1) * engine.SnapshotEveryCommands,
            $"retained {retained:N0} keys");
        // The run's failure: with the budget as the capacity the store held at most 44,040,192 keys.
        Assert.Equal(44_040_192, new KeySegmentStoreOptions { Directory = "unused", KeyCapacity = engine.IdempotencyKeyBudget, SegmentKeys = engine.ColdTier!.SegmentKeys }.MaxRetainedKeys);
    }

    [Fact]
    public void An_explicit_capacity_is_kept_and_snapshots_by_time_only_add_nothing()
    {
        var explicitCapacity = new EngineOptions { DataDirectory = "unused", IdempotencyKeyBudget = 1_000_000, SnapshotEveryCommands = 10_000_000, ColdTier = new ColdTierOptions { KeyCapacity = 2_000_000 } };
        Assert.Equal(2_000_000, explicitCapacity.ColdTier!.KeyCapacityFor(explicitCapacity));
        var byTime = new EngineOptions { DataDirectory = "unused", IdempotencyKeyBudget = 1_000_000, SnapshotEveryCommands = 0, ColdTier = new ColdTierOptions() };
        Assert.Equal(1_000_000, byTime.ColdTier!.KeyCapacityFor(byTime));
    }
}
