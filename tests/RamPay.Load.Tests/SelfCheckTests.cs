using RamPay.Client;
using RamPay.Contracts;

namespace RamPay.Load.Tests;

public sealed class SelfCheckTests
{
    private static readonly long[] Deposited = [1_000, 1_000, 1_000];
    private static readonly AckedPayment[] Acked = [new(10, 0, 1, 100), new(11, 1, 2, 30), new(12, 2, 0, 5)];

    private static Account Wallet(long id, long posted) => new(id, 2, "USD", "wallet", false, posted, 0, posted, 0, posted, 0, 0, DateTimeOffset.UnixEpoch);

    private static Account[] Server(params long[] posted) => posted.Select((p, i) => Wallet(100 + i, p)).ToArray();

    [Fact]
    public void The_expected_balances_are_deposits_plus_incoming_minus_outgoing()
    {
        Assert.Equal([905, 1_070, 1_025], SelfCheck.ExpectedBalances(Deposited, Acked));
    }

    [Fact]
    public void Balances_that_agree_pass()
    {
        Assert.Empty(SelfCheck.CompareBalances(Deposited, Acked, Server(905, 1_070, 1_025), unknownOutcomes: 0));
    }

    [Fact]
    public void An_acknowledged_payment_the_server_lost_fails_both_wallets()
    {
        // Payment 11 (wallet 1 → 2, 30) acknowledged but not applied.
        List<string> problems = SelfCheck.CompareBalances(Deposited, Acked, Server(905, 1_100, 995), 0);
        Assert.Contains(problems, p => p.StartsWith("wallet 1 ") && p.Contains("off by 30"));
        Assert.Contains(problems, p => p.StartsWith("wallet 2 ") && p.Contains("off by -30"));
    }

    [Fact]
    public void A_payment_applied_twice_fails()
    {
        List<string> problems = SelfCheck.CompareBalances(Deposited, Acked, Server(805, 1_170, 1_025), 0);
        Assert.Equal(2, problems.Count);
    }

    [Fact]
    public void Money_from_nowhere_fails_the_sum_even_when_one_wallet_hides_it()
    {
        List<string> problems = SelfCheck.CompareBalances(Deposited, Acked, Server(905, 1_070, 1_026), 0);
        Assert.Contains(problems, p => p.Contains("in all"));
    }

    [Fact]
    public void Held_funds_fail_because_the_run_makes_no_authorizations()
    {
        Account[] server = Server(905, 1_070, 1_025);
        server[0] = server[0] with { Pending = -5, Available = 900 };
        Assert.Single(SelfCheck.CompareBalances(Deposited, Acked, server, 0));
    }

    [Fact]
    public void One_payment_id_acknowledged_twice_fails()
    {
        AckedPayment[] acked = [.. Acked, new(10, 0, 1, 0)];
        Assert.Contains(SelfCheck.CompareBalances(Deposited, acked, Server(905, 1_070, 1_025), 0), p => p.Contains("payment id 10"));
    }

    [Fact]
    public void Unknown_outcomes_fail_the_check_because_it_cannot_be_exact()
    {
        Assert.Single(SelfCheck.CompareBalances(Deposited, Acked, Server(905, 1_070, 1_025), unknownOutcomes: 3));
    }

    [Fact]
    public void A_sampled_payment_must_match_what_was_sent()
    {
        var wallets = new[] { new Wallet(0, "a", 1, 100), new Wallet(1, "b", 2, 101) };
        var sent = new AckedPayment(10, 0, 1, 25);
        var server = new Payment(10, "transfer", "posted", 100, 101, 25, "USD", 25, 0, DateTimeOffset.UnixEpoch, null, null, null, null);
        Assert.Null(SelfCheck.ComparePayment(sent, server, wallets, "USD"));
        Assert.NotNull(SelfCheck.ComparePayment(sent, server with { Amount = 26 }, wallets, "USD"));
        Assert.NotNull(SelfCheck.ComparePayment(sent, server with { ToAccount = 100, FromAccount = 101 }, wallets, "USD"));
        Assert.NotNull(SelfCheck.ComparePayment(sent, server with { Currency = "EUR" }, wallets, "USD"));
    }
}
