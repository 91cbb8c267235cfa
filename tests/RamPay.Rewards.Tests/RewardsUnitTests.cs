using System.Text;
using RamPay.Worker;

namespace RamPay.Rewards.Tests;

/// <summary>The rewards consumer's event selection and the worker's token renewal time, without processes.</summary>
public sealed class RewardsUnitTests
{
    private static EventRecord Event(int sequence, string type, string json) =>
        new(new EventPosition(sequence, 0, 1), type, 1, 0, 2, Encoding.UTF8.GetBytes(json));

    [Fact]
    public void A_deposit_into_a_platform_account_is_a_top_up_candidate_and_a_users_deposit_is_not()
    {
        var events = new[]
        {
            Event(1, "PaymentApproved", """{"payment":{"id":7,"kind":"deposit"},"balances":{"from":{"owner":0},"to":{"owner":0}}}"""),
            Event(2, "PaymentApproved", """{"payment":{"id":8,"kind":"deposit"},"balances":{"from":{"owner":0},"to":{"owner":5}}}"""),
            Event(3, "PaymentApproved", """{"payment":{"id":9,"kind":"transfer"},"balances":{"from":{"owner":4},"to":{"owner":5}}}"""),
            Event(4, "PaymentRefunded", """{"payment":{"id":9,"kind":"transfer"},"refund":{"id":10}}"""),
            Event(5, "PaymentApproved", """{"payment":{"id":7,"kind":"deposit"},"balances":{"from":{"owner":0},"to":{"owner":0}}}"""), // redelivered
        };
        var (settled, refunds, topUps) = RewardsConsumer.Select(events);
        Assert.Equal([9L], settled);
        Assert.Equal([(9L, 10L)], refunds);
        Assert.Equal([7L], topUps);
        Assert.Equal("rewards:retry:9:2:7", RewardsConsumer.RetryKey(9, 2, 7));
    }

    [Fact]
    public void A_token_is_renewed_two_thirds_of_the_way_through_its_life()
    {
        static string Jwt(string payload) => "e30." + Convert.ToBase64String(Encoding.UTF8.GetBytes(payload)).TrimEnd('=').Replace('+', '-').Replace('/', '_') + ".sig";
        Assert.Equal(1_000 + 2_400, ServiceTokenHandler.RenewAt(Jwt("""{"sub":"1000000000000","iat":1000,"exp":4600}""")));
        Assert.Equal(long.MaxValue, ServiceTokenHandler.RenewAt("not-a-jwt"));
        Assert.Equal(long.MaxValue, ServiceTokenHandler.RenewAt(Jwt("""{"sub":"1"}""")));
    }
}
