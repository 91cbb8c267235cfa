using System.Security.Cryptography;

namespace RamPay.Core.Tests;

/// <summary>
/// Rules versions: a ledger starts under version 1 and moves on only at a journaled UpgradeRules command. Version 2 keeps
/// every key for its whole window up to a key budget (instead of version 1's in-memory table size).
/// </summary>
public class RulesVersionTests
{
    private static readonly Currency Usd = Currency.USD;

    private static Command Upgrade(int version, long budget, long at) =>
        new() { Type = CommandType.UpgradeRules, Argument = version, Amount = budget, TimestampMs = at };

    /// <summary>A funded wallet pair under the given options; version 2 from the start when <paramref name="budget"/> is set.</summary>
    private static TestLedger Funded(LedgerOptions options, long? budget)
    {
        var t = new TestLedger(options);
        if (budget is { } b) Assert.True(t.RunExact(Upgrade(2, b, t.Now)).IsOk);
        t.Ok(Cmd.Open(AccountFlags.Funding, Usd));
        t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd));
        t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd));
        t.Ok(Cmd.Deposit(1, 2, 1_000_000_000, Usd));
        return t;
    }

    private static LedgerOptions Options(int v1Keys = 64, long windowMs = 60_000) =>
        TestLedger.SmallOptions with { IdempotencyMaxKeys = v1Keys, IdempotencyWindowMs = windowMs };

    [Fact]
    public void A_new_ledger_is_under_rules_version_1_and_writes_state_format_3()
    {
        var l = new Ledger(TestLedger.SmallOptions);
        Assert.Equal(1, l.RulesVersion);
        Assert.Null(l.KeyLog);
        using var s = new MemoryStream();
        l.WriteState(s);
        Assert.Equal(3, BitConverter.ToInt32(s.GetBuffer(), 4));
    }

    [Fact]
    public void Under_version_1_a_retry_after_the_table_overflowed_pays_again_and_under_version_2_it_is_replayed()
    {
        foreach (var (budget, expectReplayed) in new[] { ((long?)null, false), (1_000_000L, true) })
        {
            var t = Funded(Options(v1Keys: 64), budget);
            t.Ok(Cmd.Transfer(2, 3, 10, Usd), key: "pay-1");
            for (int i = 0; i < 200; i++) t.Ok(Cmd.Transfer(2, 3, 1, Usd)); // 200 keys within the window, more than 64
            var retry = t.Run(Cmd.Transfer(2, 3, 10, Usd), key: "pay-1");
            Assert.True(retry.IsOk);
            Assert.Equal(expectReplayed, retry.Replayed);
            Assert.Equal(expectReplayed ? 0 : 142, t.Ledger.IdempotencyEvictedEarly);
        }
    }

    [Fact]
    public void Version_2_honours_a_key_for_its_window_names_a_different_field_and_forgets_it_when_the_window_ends()
    {
        var t = Funded(Options(windowMs: 60_000), budget: 1_000);
        long first = t.Ok(Cmd.Transfer(2, 3, 10, Usd), key: "k");
        t.Now += 59_999;
        var again = t.Run(Cmd.Transfer(2, 3, 10, Usd), key: "k");
        Assert.True(again.Replayed);
        Assert.Equal(first, again.Id);
        Assert.Equal(ResultCode.ExistsWithDifferentAmount, t.Run(Cmd.Transfer(2, 3, 11, Usd), key: "k").Code);
        t.Now += 1;
        var after = t.Run(Cmd.Transfer(2, 3, 10, Usd), key: "k");
        Assert.True(after.IsOk && !after.Replayed);
        Assert.NotEqual(first, after.Id);
        Assert.Equal(0, t.Ledger.IdempotencyEvictedEarly);
    }

    [Fact]
    public void Past_the_budget_the_oldest_key_goes_and_is_counted()
    {
        var t = Funded(Options(), budget: 10);
        t.Ok(Cmd.Transfer(2, 3, 10, Usd), key: "oldest");
        for (int i = 0; i < 10; i++) t.Ok(Cmd.Transfer(2, 3, 1, Usd));
        Assert.True(t.Ledger.IdempotencyEvictedEarly >= 1);
        var retry = t.Run(Cmd.Transfer(2, 3, 10, Usd), key: "oldest");
        Assert.False(retry.Replayed); // forgotten early, and counted: the one loss the budget allows
    }

    [Fact]
    public void An_upgrade_carries_the_remembered_keys_over_and_refuses_to_go_back_or_stand_still()
    {
        var t = Funded(Options(), budget: null);
        long id = t.Ok(Cmd.Transfer(2, 3, 10, Usd), key: "before");
        Assert.True(t.RunExact(Upgrade(2, 1_000, t.Now)).IsOk);
        Assert.Equal(2, t.Ledger.RulesVersion);
        Assert.Equal(5, t.Ledger.KeyLog!.Inserted); // 3 opens, 1 deposit, 1 transfer
        var retry = t.Run(Cmd.Transfer(2, 3, 10, Usd), key: "before");
        Assert.True(retry.Replayed);
        Assert.Equal(id, retry.Id);
        Assert.Equal(ResultCode.InvalidCommand, t.RunExact(Upgrade(2, 1_000, t.Now)).Code);
        Assert.Equal(ResultCode.InvalidCommand, t.RunExact(Upgrade(1, 1_000, t.Now)).Code);
        Assert.Throws<RulesVersionNotSupportedException>(() => t.RunExact(Upgrade(Ledger.NewestRulesVersion + 1, 1_000, t.Now)));
    }

    [Fact]
    public void An_upgrade_without_a_budget_is_refused_and_changes_nothing()
    {
        var t = Funded(Options(), budget: null);
        var r = t.RunExact(Upgrade(2, 0, t.Now));
        Assert.Equal(ResultCode.InvalidCommand, r.Code);
        Assert.Equal(1, t.Ledger.RulesVersion);
        Assert.Null(t.Ledger.KeyLog);
    }

    /// <summary>A small version-2 state, built the same way every time (for the golden test of format 4).</summary>
    private static Ledger GoldenV2()
    {
        var t = Funded(Options(windowMs: 60_000), budget: 3_000);
        long auth = t.Ok(Cmd.Authorize(2, 3, 500, Usd, timeoutMs: 30_000), key: "auth");
        t.Ok(Cmd.Capture(auth, 200));
        t.Ok(Cmd.Transfer(2, 3, 7, Usd), key: "pay");
        t.Run(Cmd.Transfer(2, 3, 8, Usd), key: "pay"); // exists_with_different_amount
        t.Now += 1_000;
        t.Ok(Cmd.Refund(auth, 50, Usd));
        return t.Ledger;
    }

    [Fact]
    public void State_format_4_is_pinned_by_a_golden_hash_and_round_trips_with_its_hot_keys()
    {
        var l = GoldenV2();
        using var s = new MemoryStream();
        l.WriteState(s);
        byte[] bytes = s.ToArray();
        Assert.Equal(0x4C534152u, BitConverter.ToUInt32(bytes, 0)); // RASL
        Assert.Equal(4, BitConverter.ToInt32(bytes, 4));           // format 4
        Assert.Equal(2, BitConverter.ToInt32(bytes, 8));           // rules version 2
        // The whole encoding (logical part, then the hot keys): a change here is a new format version, never an edit.
        Assert.Equal("e777d949d0fb1139d5e5eb7cfdd92824ff1779a66c795580bdb5f7e33da557c4", Convert.ToHexStringLower(SHA256.HashData(bytes)));
        Assert.Equal("2e36805f9c2bfceeda28ac27529a456974ee4a0e222a0f0ce894c3569c067818", l.ComputeStateHash());

        var back = Ledger.ReadState(new MemoryStream(bytes), Options(windowMs: 60_000));
        Assert.Equal(2, back.RulesVersion);
        Assert.Equal(l.ComputeStateHash(), back.ComputeStateHash());
        Assert.Equal(l.KeyLog!.HotCount, back.KeyLog!.HotCount);
        var t = new TestLedger(back) { Now = l.ClockMs };
        Assert.True(t.Run(Cmd.Transfer(2, 3, 7, Usd), key: "pay").Replayed);
    }

    [Fact]
    public void The_state_hash_under_version_2_does_not_depend_on_which_keys_are_in_memory()
    {
        // The hash is over the logical encoding: the hot entries are only in a snapshot's physical tail.
        var l = GoldenV2();
        using var full = new MemoryStream();
        l.WriteState(full);
        string hashOfFull = Convert.ToHexStringLower(SHA256.HashData(full.ToArray()));
        Assert.NotEqual(hashOfFull, l.ComputeStateHash());
    }
}
