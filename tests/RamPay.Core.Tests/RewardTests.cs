namespace RamPay.Core.Tests;

/// <summary>Cashback in the ledger (LedgerRewards.cs, docs/rewards.md). Every step verifies the invariants (TestLedger).</summary>
public class RewardTests
{
    private static readonly Currency Usd = Currency.USD;
    private const long System = 900;

    internal static RewardRuleTerms Terms(int bps = 150, long min = 0, long maxPerPayment = 0, long maxPerMonth = 0,
        long startsAt = 0, long endsAt = 0, long[]? payees = null, string name = "cashback", Currency? currency = null) =>
        new(name, bps, currency ?? Usd, min, maxPerPayment, maxPerMonth, startsAt, endsAt, payees ?? []);

    internal static Command Define(RewardRuleTerms terms, long ruleId, out byte[] attachment)
    {
        attachment = terms.Encode();
        return new Command { Type = CommandType.DefineRewardRule, Argument = ruleId, Amount = RewardRuleTerms.Digest(attachment) };
    }

    internal static Command Issue(long paymentId, long ruleId) => new() { Type = CommandType.IssueReward, PaymentId = paymentId, Argument = ruleId };
    internal static Command Reverse(long paymentId, long ruleId) => new() { Type = CommandType.ReverseReward, PaymentId = paymentId, Argument = ruleId };

    /// <summary>Funding 1, rewards account, alice (user 1) with 100,000 and bob (user 2), a rule; the rewards account holds <paramref name="fund"/>.</summary>
    private sealed class World
    {
        public readonly TestLedger T = new();
        public long Fund, Rewards, Alice, Bob, Alice2, Rule;

        public World(long fund = 1_000_000, RewardRuleTerms? terms = null)
        {
            Fund = T.OpenFunding(Usd);
            Alice = T.OpenWallet(Usd, owner: 1);
            Bob = T.OpenWallet(Usd, owner: 2);
            Alice2 = T.OpenWallet(Usd, owner: 1);
            T.Deposit(Fund, Alice, 100_000, Usd);
            Rewards = T.Ok(new Command { Type = CommandType.OpenRewardsAccount, Currency = Usd });
            if (fund > 0) T.Deposit(Fund, Rewards, fund, Usd);
            Rule = DefineRule(terms ?? Terms());
        }

        public long DefineRule(RewardRuleTerms terms, long ruleId = 0)
        {
            var r = T.Run(Define(terms, ruleId, out var a), attachment: a);
            Assert.True(r.IsOk, r.ToString());
            return r.Id;
        }

        public long Pay(long from, long to, long amount) => T.Ok(Cmd.Transfer(from, to, amount, Usd));
        public CommandResult Issue(long payment, long? rule = null) => T.Run(RewardTests.Issue(payment, rule ?? Rule), client: System);
        public CommandResult Reverse(long payment, long? rule = null) => T.Run(RewardTests.Reverse(payment, rule ?? Rule), client: System);
    }

    [Fact]
    public void Cashback_is_the_floor_of_amount_times_bps_paid_from_the_rewards_account_to_the_payer()
    {
        var w = new World();
        long payment = w.Pay(w.Alice, w.Bob, 12_345);
        long before = w.T.Available(w.Alice), fundBefore = w.T.Available(w.Rewards);
        var r = w.Issue(payment);
        Assert.Equal(ResultCode.Ok, r.Code);
        var reward = w.T.Ledger.GetReward(r.Id);
        Assert.Equal(185, reward.Amount); // floor(12,345 × 150 / 10,000) = floor(185.175)
        Assert.Equal(RewardStatus.Issued, reward.Status);
        Assert.Equal(before + 185, w.T.Available(w.Alice));
        Assert.Equal(fundBefore - 185, w.T.Available(w.Rewards));
        var payout = w.T.Payment(r.SecondaryId);
        Assert.Equal(PaymentKind.Reward, payout.Kind);
        Assert.Equal(payment, payout.ParentId);
        Assert.Equal(r.SecondaryId, w.T.History(w.Alice)[0]); // in the payer's history
    }

    [Fact]
    public void A_second_reward_for_the_same_payment_and_rule_is_refused_for_ever_whatever_the_key()
    {
        var w = new World();
        long payment = w.Pay(w.Alice, w.Bob, 10_000);
        var first = w.T.Run(Issue(payment, w.Rule), key: "k1", client: System);
        Assert.True(first.IsOk);
        // Same key: the stored result. Another key, another client, or a year later (the key long expired): refused.
        Assert.True(w.T.Run(Issue(payment, w.Rule), key: "k1", client: System).Replayed);
        var again = w.T.Run(Issue(payment, w.Rule), key: "k2", client: System + 1);
        Assert.Equal(ResultCode.RewardExists, again.Code);
        Assert.Equal(first.Id, again.Id);
        w.T.Tick(w.T.Now + 400L * 24 * 3600 * 1000);
        Assert.Equal(ResultCode.RewardExists, w.T.Run(Issue(payment, w.Rule), key: "k1", client: System).Code);
        Assert.Equal(1, w.T.Ledger.RewardCount);
        Assert.Equal(100_000 - 10_000 + 150, w.T.Available(w.Alice));
    }

    [Fact]
    public void Same_user_payments_platform_money_unsettled_and_other_currencies_earn_nothing()
    {
        var w = new World();
        long own = w.Pay(w.Alice, w.Alice2, 10_000);
        Assert.Equal(ResultCode.RewardNotEligible, w.Issue(own).Code);
        long deposit = w.T.Deposit(w.Fund, w.Bob, 5_000, Usd);
        Assert.Equal(ResultCode.RewardNotEligible, w.Issue(deposit).Code);
        long auth = w.T.Ok(Cmd.Authorize(w.Alice, w.Bob, 2_000, Usd));
        Assert.Equal(ResultCode.RewardNotEligible, w.Issue(auth).Code);
        w.T.Ok(Cmd.Capture(auth, 1_000));
        Assert.Equal(15, w.T.Ledger.GetReward(w.Issue(auth).Id).Amount); // on the captured amount
        long eurRule = w.DefineRule(Terms(currency: Currency.EUR));
        Assert.Equal(ResultCode.RewardNotEligible, w.T.Run(Issue(w.Pay(w.Alice, w.Bob, 100), eurRule)).Code);
        Assert.Equal(ResultCode.RewardRuleNotFound, w.Issue(own, 99).Code);
        Assert.Equal(ResultCode.PaymentNotFound, w.Issue(9_999).Code);
        // A user may not issue rewards.
        Assert.Equal(ResultCode.AdminRequired, w.T.Run(Issue(own, w.Rule) with { Flags = CommandFlags.OwnerOnly }).Code);
    }

    [Fact]
    public void The_rule_in_force_at_the_payments_journaled_time_applies()
    {
        var w = new World();
        long before = w.Pay(w.Alice, w.Bob, 10_000);
        w.T.Now += 1_000;
        Assert.Equal(w.Rule, w.DefineRule(Terms(bps: 500), w.Rule)); // a change: 5 % from now on
        w.T.Now += 1_000;
        long after = w.Pay(w.Alice, w.Bob, 10_000);
        w.T.Now += 1_000;
        w.T.Ok(new Command { Type = CommandType.EndRewardRule, Argument = w.Rule });
        w.T.Now += 1_000;
        long ended = w.Pay(w.Alice, w.Bob, 10_000);
        // Issued after all the changes, each by its own payment's time.
        Assert.Equal(150, w.T.Ledger.GetReward(w.Issue(before).Id).Amount);
        Assert.Equal(500, w.T.Ledger.GetReward(w.Issue(after).Id).Amount);
        Assert.Equal(ResultCode.RewardNotEligible, w.Issue(ended).Code);
        Assert.Equal(ResultCode.RewardRuleEnded, w.T.Run(new Command { Type = CommandType.EndRewardRule, Argument = w.Rule }).Code);
        // A rule made after a payment does not reach back to it.
        w.T.Now += 1_000;
        long late = w.DefineRule(Terms(bps: 100));
        Assert.Equal(ResultCode.RewardNotEligible, w.Issue(ended, late).Code);
    }

    [Fact]
    public void Limits_of_a_rule_minimum_payees_per_payment_and_per_user_and_month()
    {
        var w = new World(terms: Terms(bps: 1_000, min: 500, maxPerPayment: 300, maxPerMonth: 700, payees: [3])); // bob's account
        Assert.Equal(ResultCode.RewardNotEligible, w.Issue(w.Pay(w.Alice, w.Bob, 499)).Code);
        Assert.Equal(300, w.T.Ledger.GetReward(w.Issue(w.Pay(w.Alice, w.Bob, 10_000)).Id).Amount); // capped per payment
        Assert.Equal(50, w.T.Ledger.GetReward(w.Issue(w.Pay(w.Alice, w.Bob, 500)).Id).Amount);
        Assert.Equal(300, w.T.Ledger.GetReward(w.Issue(w.Pay(w.Alice, w.Bob, 5_000)).Id).Amount);
        Assert.Equal(50, w.T.Ledger.GetReward(w.Issue(w.Pay(w.Alice, w.Bob, 5_000)).Id).Amount); // 700 a month: 50 left
        Assert.Equal(ResultCode.RewardNotEligible, w.Issue(w.Pay(w.Alice, w.Bob, 5_000)).Code);
        w.T.Now += 31L * 24 * 3600 * 1000; // next month
        Assert.Equal(300, w.T.Ledger.GetReward(w.Issue(w.Pay(w.Alice, w.Bob, 5_000)).Id).Amount);
        long carol = w.T.OpenWallet(Usd, owner: 3);
        Assert.Equal(ResultCode.RewardNotEligible, w.Issue(w.Pay(w.Alice, carol, 5_000)).Code); // not a listed payee
    }

    [Fact]
    public void An_empty_rewards_account_records_the_reward_as_skipped_and_moves_nothing_until_a_retry_can_pay()
    {
        var w = new World(fund: 100);
        long payment = w.Pay(w.Alice, w.Bob, 10_000);
        var before = LedgerView.Of(w.T.Ledger);
        var r = w.Issue(payment);
        Assert.Equal(ResultCode.RewardSkipped, r.Code);
        var skipped = w.T.Ledger.GetReward(r.Id);
        Assert.Equal(RewardStatus.Skipped, skipped.Status);
        Assert.Equal(ResultCode.InsufficientFunds, skipped.SkipReason);
        Assert.Equal(before.Accounts, LedgerView.Of(w.T.Ledger).Accounts);
        Assert.Equal(before.PaymentCount, w.T.Ledger.PaymentCount);
        w.T.Deposit(w.Fund, w.Rewards, 1_000, Usd); // the admin tops up
        var retried = w.Issue(payment);
        Assert.Equal(ResultCode.Ok, retried.Code);
        Assert.Equal(r.Id, retried.Id); // the same reward, now paid
        Assert.Equal(ResultCode.RewardExists, w.Issue(payment).Code);
        Assert.Equal(1, w.T.Ledger.RewardCount);
    }

    [Fact]
    public void Refunds_reverse_the_reward_in_proportion_taking_what_is_there_and_recording_the_rest_as_owed()
    {
        var w = new World(terms: Terms(bps: 1_000));
        long payment = w.Pay(w.Alice, w.Bob, 10_000); // reward 1,000
        long id = w.Issue(payment).Id;
        w.T.Ok(Cmd.Refund(payment, 2_500, Usd)); // a quarter
        var r1 = w.Reverse(payment);
        Assert.True(r1.IsOk);
        Assert.Equal(250, w.T.Payment(r1.Id).Amount);
        Assert.Equal(PaymentKind.RewardReversal, w.T.Payment(r1.Id).Kind);
        Assert.True(w.Reverse(payment) is { IsOk: true, Id: 0 }); // again: nothing more is due
        // Alice spends everything but 100; the rest of the refund calls for 750 more.
        w.Pay(w.Alice, w.Bob, w.T.Available(w.Alice) - 100);
        w.T.Ok(Cmd.Refund(payment, 7_500, Usd));
        long aliceAfterRefund = w.T.Available(w.Alice);
        var r2 = w.Reverse(payment);
        Assert.Equal(aliceAfterRefund, w.T.Available(w.Alice) + w.T.Payment(r2.Id).Amount);
        var reward = w.T.Ledger.GetReward(id);
        Assert.Equal(1_000, reward.ReversalDue);
        Assert.Equal(0, reward.Owed + reward.Recovered - 1_000);
        Assert.True(reward.Owed == 0, "the refund credited alice 7,500, so she can pay the 750");
    }

    [Fact]
    public void A_reversal_when_the_payer_has_spent_everything_is_owed_and_collected_later()
    {
        var w = new World(terms: Terms(bps: 1_000));
        long payment = w.Pay(w.Alice, w.Bob, 10_000);
        long id = w.Issue(payment).Id;
        // Bob refunds half; alice spends everything (the refund included) before the reversal runs.
        w.T.Ok(Cmd.Refund(payment, 5_000, Usd));
        w.Pay(w.Alice, w.Bob, w.T.Available(w.Alice));
        var r = w.Reverse(payment);
        Assert.True(r is { IsOk: true, Id: 0 });
        Assert.Equal(500, w.T.Ledger.GetReward(id).Owed);
        w.T.Deposit(w.Fund, w.Alice, 200, Usd);
        Assert.Equal(200, w.T.Payment(w.Reverse(payment).Id).Amount);
        Assert.Equal(300, w.T.Ledger.GetReward(id).Owed);
        Assert.Equal(0, w.T.Available(w.Alice));
    }

    [Fact]
    public void Refunds_made_before_the_reward_is_issued_cancel_their_share_at_once()
    {
        var w = new World(terms: Terms(bps: 1_000));
        long payment = w.Pay(w.Alice, w.Bob, 10_000);
        w.T.Ok(Cmd.Refund(payment, 4_000, Usd));
        var r = w.Issue(payment);
        var reward = w.T.Ledger.GetReward(r.Id);
        Assert.Equal(1_000, reward.Amount);
        Assert.Equal(600, reward.PaidOut);
        Assert.Equal(0, reward.Owed);
        Assert.True(w.Reverse(payment) is { IsOk: true, Id: 0 });
    }

    [Fact]
    public void Bad_rules_are_refused_and_change_nothing()
    {
        var w = new World();
        foreach (var bad in new[] { Terms(bps: 0), Terms(bps: 10_001), Terms(name: ""), Terms(min: -1), Terms(startsAt: 10, endsAt: 10), Terms(payees: [3, 3]), Terms(name: "a\nb") })
        {
            var c = Define(bad, 0, out var attachment);
            w.T.Rejects(ResultCode.InvalidRewardRule, c, attachment: attachment);
        }
        var good = Define(Terms(), 0, out var a);
        w.T.Rejects(ResultCode.InvalidRewardRule, good with { Amount = good.Amount ^ 1 }, attachment: a); // digest must match
        w.T.Rejects(ResultCode.RewardRuleNotFound, Define(Terms(), 42, out var b), attachment: b);
        Assert.Single(w.T.Ledger.RewardRules);
    }

    [Fact]
    public void Reward_state_survives_a_snapshot_with_the_same_hash_and_keeps_refusing_a_second_reward()
    {
        var w = new World(terms: Terms(bps: 1_000, maxPerMonth: 1_500));
        long p1 = w.Pay(w.Alice, w.Bob, 10_000);
        w.Issue(p1);
        w.T.Ok(Cmd.Refund(p1, 5_000, Usd));
        w.Reverse(p1);
        long p2 = w.Pay(w.Alice, w.Bob, 10_000);
        w.Issue(p2); // 500: the month's cap
        w.DefineRule(Terms(bps: 300, maxPerMonth: 1_500), w.Rule);
        using var bytes = new MemoryStream();
        w.T.Ledger.WriteState(bytes);
        bytes.Position = 0;
        var copy = Ledger.ReadState(bytes, TestLedger.SmallOptions);
        Assert.Equal(w.T.Ledger.ComputeStateHash(), copy.ComputeStateHash());
        var t2 = new TestLedger(copy);
        Assert.Equal(ResultCode.RewardExists, t2.Run(Issue(p1, w.Rule), client: System).Code);
        // The monthly total was rebuilt on load: the cap is still reached.
        long p3 = t2.Ok(Cmd.Transfer(w.Alice, w.Bob, 1_000, Usd), key: "after-load", at: w.T.Now);
        Assert.Equal(ResultCode.RewardNotEligible, t2.Run(Issue(p3, w.Rule), client: System).Code);
        Assert.Equal(2, copy.GetRewardRule(w.Rule)!.Versions.Count);
    }

    [Fact]
    public void A_ledger_without_rewards_writes_no_rewards_section()
    {
        var t = new TestLedger();
        t.OpenFundedPair(Usd, 1_000);
        byte[] magic = BitConverter.GetBytes(0x44575252u); // "RRWD"
        byte[] without = StateOf(t.Ledger);
        Assert.Equal(-1, without.AsSpan().IndexOf(magic));
        // Opening the rewards account starts the section, last of all; the bytes before it are the old layout's.
        t.Ok(new Command { Type = CommandType.OpenRewardsAccount, Currency = Usd });
        byte[] with = StateOf(t.Ledger);
        int at = with.AsSpan().LastIndexOf(magic);
        Assert.Equal(with.Length - 4 - 4 - 4 - (2 + 8) - 4 - 8, at);
        Assert.Equal(t.Ledger.ComputeStateHash(), Ledger.ReadState(new MemoryStream(with), TestLedger.SmallOptions).ComputeStateHash());
    }

    private static byte[] StateOf(Ledger l)
    {
        using var s = new MemoryStream();
        l.WriteState(s);
        return s.ToArray();
    }

    /// <summary>
    /// Golden: the state hash of a fixed sequence of reward commands. A change to the rewards section's layout, to a
    /// rule's encoding or to the cashback arithmetic changes it: that must be a new section version, never an edit.
    /// </summary>
    [Fact]
    public void Golden_state_hash_of_a_fixed_reward_history()
    {
        var w = new World(terms: Terms(bps: 250, maxPerPayment: 2_000, payees: [2, 3]));
        long p1 = w.Pay(w.Alice, w.Bob, 33_333);
        w.Issue(p1);
        w.T.Ok(Cmd.Refund(p1, 11_111, Usd));
        w.Reverse(p1);
        w.T.Now += 5_000;
        w.DefineRule(Terms(bps: 50, name: "second"));
        w.T.Ok(new Command { Type = CommandType.EndRewardRule, Argument = w.Rule });
        w.Issue(w.Pay(w.Alice, w.Bob, 1_000), 2);
        var terms = Terms(bps: 250, maxPerPayment: 2_000, payees: [2, 3]).Encode();
        Assert.Equal("010800636173686261636bfa000000a8360000000000000000d007000000000000000000000000000000000000000000000000000000000000020002000000000000000300000000000000",
            Convert.ToHexStringLower(terms));
        string hash = w.T.Ledger.ComputeStateHash();
        Assert.True(hash == RewardGolden.Hash, $"state hash {hash}");
    }
}

internal static class RewardGolden
{
    public const string Hash = "7080793780d7498bc97fc9fb12a1d31ae2f58a07c86aa1872149ca358c913b71";
}
