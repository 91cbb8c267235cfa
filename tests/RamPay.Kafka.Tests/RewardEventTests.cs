using System.Text;
using System.Text.Json;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Kafka.Tests;

/// <summary>RewardIssued and RewardReversed (docs/events.md, docs/rewards.md), from a real journal through the real follower.</summary>
public class RewardEventTests
{
    /// <summary>Funding 1, alice 2 (user 1) funded, bob 3 (user 2), rewards account 4 topped up, rule 1 (10 %): alice pays bob, a reward, a refund, a reversal.</summary>
    internal static List<Submitted> Commands()
    {
        var b = new CommandBuilder();
        var terms = new RewardRuleTerms("ten", 1_000, CommandBuilder.Usd, 0, 0, 0, 0, 0, []).Encode();
        return
        [
            b.Open(AccountFlags.Funding),
            b.Open(AccountFlags.DebitsMustNotExceedCredits, owner: 1),
            b.Open(AccountFlags.DebitsMustNotExceedCredits, owner: 2),
            new(new Command { Type = CommandType.OpenRewardsAccount, Currency = CommandBuilder.Usd, ClientId = 1, Key = b.NextKey() }),
            b.Move(CommandType.Deposit, 1, 2, 10_000),
            b.Move(CommandType.Deposit, 1, 4, 5_000),
            new(new Command { Type = CommandType.DefineRewardRule, ClientId = 1, Key = b.NextKey(), Amount = RewardRuleTerms.Digest(terms) }, terms),
            b.Move(CommandType.Transfer, 2, 3, 4_000), // payment 3
            new(new Command { Type = CommandType.IssueReward, ClientId = 1, Key = b.NextKey(), PaymentId = 3, Argument = 1 }),
            new(new Command { Type = CommandType.IssueReward, ClientId = 1, Key = b.NextKey(), PaymentId = 3, Argument = 1 }), // refused: reward_exists
            b.OnPayment(CommandType.Refund, 3, 1_000),
            new(new Command { Type = CommandType.ReverseReward, ClientId = 1, Key = b.NextKey(), PaymentId = 3, Argument = 1 }),
        ];
    }

    [Fact]
    public void A_reward_and_its_reversal_give_one_event_each_keyed_by_the_payer()
    {
        var events = LedgerChanges.Events(LedgerChanges.Run(Commands()));
        var rewards = events.Where(e => e.Event.Type is EventType.RewardIssued or EventType.RewardReversed).ToList();
        Assert.Equal([EventType.RewardIssued, EventType.RewardReversed], rewards.Select(e => e.Event.Type));
        Assert.All(rewards, e => Assert.Equal(2, e.Event.KeyAccount)); // alice's account, the source payment's key
        var encoder = new EventEncoder();
        using var issued = JsonDocument.Parse(Encoding.UTF8.GetString(encoder.Encode(rewards[0].Change, rewards[0].Event)));
        var root = issued.RootElement;
        Assert.Equal("RewardIssued", root.GetProperty("type").GetString());
        Assert.Equal(1, root.GetProperty("version").GetInt32());
        Assert.Equal(1, root.GetProperty("reward").GetProperty("id").GetInt64());
        Assert.Equal(1, root.GetProperty("reward").GetProperty("rule_id").GetInt64());
        Assert.Equal(3, root.GetProperty("reward").GetProperty("source_payment_id").GetInt64());
        Assert.Equal(400, root.GetProperty("reward").GetProperty("amount").GetInt64());
        Assert.Equal("reward", root.GetProperty("payment").GetProperty("kind").GetString());
        Assert.Equal(3, root.GetProperty("payment").GetProperty("parent_id").GetInt64());
        Assert.Equal(4_000, root.GetProperty("source_payment").GetProperty("amount").GetInt64());
        Assert.Equal(10_000 - 4_000 + 400, root.GetProperty("balances").GetProperty("to").GetProperty("balance").GetInt64());
        using var reversed = JsonDocument.Parse(Encoding.UTF8.GetString(encoder.Encode(rewards[1].Change, rewards[1].Event)));
        Assert.Equal(100, reversed.RootElement.GetProperty("reward").GetProperty("amount").GetInt64()); // floor(400 × 1,000 / 4,000)
        Assert.Equal("reward_reversal", reversed.RootElement.GetProperty("payment").GetProperty("kind").GetString());
        Assert.Equal(1_000, reversed.RootElement.GetProperty("source_payment").GetProperty("refunded").GetInt64());
    }
}
