namespace RamPay.Core.Tests;

/// <summary>
/// The hot tier of idempotency keys holds at most <see cref="ColdKeyTier.HotMaxKeys"/> entries, the setting, even when the
/// array behind it is rounded up to a power of two (CI once read 3,072 + keys from a budget of 3,072, on a 4,096 array).
/// </summary>
public class HotKeyBudgetTests
{
    private const int Generation = 512;
    private static readonly Currency Usd = Currency.USD;

    [Fact]
    public void A_hot_budget_that_is_not_a_power_of_two_bounds_the_keys_in_memory_by_the_setting_not_by_the_array()
    {
        // 1. HotMaxKeys = 3 generations + 100 (1,636): the array is 2,048 entries.
        const int hotMaxKeys = 3 * Generation + 100;
        var store = new MemoryColdKeyStore(20_000);
        var l = new Ledger(new LedgerOptions
        {
            MaxAccounts = 8, MaxPayments = 1 << 15, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16,
            ColdKeys = new ColdKeyTier { Store = store, HotMaxKeys = hotMaxKeys, GenerationCommands = Generation },
        });
        Assert.True(new Command { Type = CommandType.UpgradeRules, Argument = 2, Amount = 1 << 20, TimestampMs = 1_000 }.ApplyTo(l).IsOk);
        Assert.True(Cmd.Open(AccountFlags.Funding, Usd).WithKey("f").At(1_000).By(1).ApplyTo(l).IsOk);
        Assert.True(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd).WithKey("w").At(1_000).By(1).ApplyTo(l).IsOk);

        // 2. Every command's prefetch saw no generation visible (a background writer that is behind): nothing retires after
        //    a command, so the hot tier fills to its limit and only the hot-full path (MakeRoom) makes room.
        long most = 0;
        for (int i = 0; i < 10_000; i++)
        {
            var lookup = new KeyLookup { State = KeyLookupState.Miss, Generation = 0 };
            l.Apply(Cmd.Deposit(1, 2, 1, Usd).WithKey("d" + i).At(2_000).By(1), [], lookup, out var r);
            Assert.True(r.IsOk);
            most = Math.Max(most, l.KeyLog!.HotCount);
        }

        // 3. It reached the setting and never went past it; every key is still found (hot or cold).
        Assert.Equal(hotMaxKeys, most);
        Assert.True(l.KeyLog!.HotFullWaits > 0);
        Assert.True(Cmd.Deposit(1, 2, 1, Usd).WithKey("d0").At(2_000).By(1).ApplyTo(l).Replayed);
    }
}
