using System.Text;
using System.Text.Json;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Kafka.Tests;

/// <summary>RewardIssued and RewardReversed (docs/events.md, docs/rewards.md), from a real journal through the real follower.</summary>
public class RewardEventTests
{
    [Fact]
    public void A_reward_and_its_reversal_give_one_event_each_keyed_by_the_payer()
    {
        var events = LedgerChanges.Events(LedgerChanges.Run(Scenario.RewardCommands()));
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
