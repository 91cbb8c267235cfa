using RamPay.Fraud;

namespace RamPay.Core.Tests;

/// <summary>
/// Rules version 4: the fraud stage counts an attempt only when the ledger would accept its sender as the paying account's
/// owner and both accounts exist (docs/fraud.md, "Who is counted"). Before this rule a caller who does not own an account
/// could raise its counters with attempts the ledger refused (<c>not_account_owner</c>) and get its owner's payments held or
/// declined. The ledger checks the stage's rule on every Transfer and Authorize (an invariant), so these runs also prove
/// that the stage and the ledger agree on each one.
/// </summary>
public class FraudStageOwnershipTests
{
    private static readonly Currency Usd = Currency.USD;
    private const long Ada = 1, Mallory = 3;
    private const long Funding = 1, AdaWallet = 2, Merchant = 3, MalloryWallet = 4;

    private static Command Upgrade(long at) => new() { Type = CommandType.UpgradeRules, Argument = 4, Amount = 1 << 16, TimestampMs = at };
    private static Command Owned(Command c) => c with { Flags = CommandFlags.OwnerOnly };

    /// <summary>Ada's wallet (2) funded, a merchant (3), Mallory's wallet (4); scoring with the count model, daily limit 5.</summary>
    private static TestLedger Setup()
    {
        var model = FraudStageTests.CountModel(); // logit 2 · (sender_count_1h − 4): held from the 5th counted attempt in the hour
        var t = new TestLedger(new Ledger(TestLedger.SmallOptions with { FraudModels = FraudModelCatalog.WithDefault().With(model), MaxOpenHolds = 1_000 }));
        Assert.True(t.RunExact(Upgrade(t.Now)).IsOk);
        Assert.Equal(Funding, t.Ok(Cmd.Open(AccountFlags.Funding, Usd)));
        Assert.Equal(AdaWallet, t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd, owner: Ada)));
        Assert.Equal(Merchant, t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd, owner: 2)));
        Assert.Equal(MalloryWallet, t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd, owner: Mallory)));
        Assert.True(t.RunExact(new Command { Type = CommandType.ConfigureFraud, TimestampMs = t.Now }, new FraudSettings
        {
            Enabled = true, ModelSha256 = model.Sha256, MaxPaymentsPerDay = 5,
            ReviewThresholdPpm = 500_000, DeclineThresholdPpm = FraudSettings.ThresholdOff,
        }.Encode()).IsOk);
        t.Ok(Cmd.Deposit(Funding, AdaWallet, 100_000, Usd));
        return t;
    }

    /// <summary>Ada's own payment to the merchant: its result and the stored score.</summary>
    private static (CommandResult Result, PaymentFraud Fraud) AdaPays(TestLedger t)
    {
        t.Now += 1_000;
        var r = t.Run(Owned(Cmd.Transfer(AdaWallet, Merchant, 100, Usd)), client: Ada);
        return (r, t.Ledger.GetFraudScore(r.Id)!.Value);
    }

    [Fact]
    public void An_attacker_s_refused_attempts_from_a_victim_s_account_do_not_change_the_victim_s_score()
    {
        var control = Setup();
        var attacked = Setup();
        // Mallory tries twenty times to pay from Ada's wallet: each refused by the ledger (not the owner), each left uncounted.
        for (int i = 0; i < 20; i++)
        {
            attacked.Now += 100;
            Assert.Equal(ResultCode.NotAccountOwner, attacked.Run(Owned(Cmd.Transfer(AdaWallet, MalloryWallet, 50, Usd)), client: Mallory).Code);
            Assert.Equal(ResultCode.NotAccountOwner, attacked.Run(Owned(Cmd.Authorize(AdaWallet, Merchant, 50, Usd)), client: Mallory).Code);
        }
        control.Now = attacked.Now;
        var expected = AdaPays(control);
        var actual = AdaPays(attacked);
        Assert.True(expected.Result.IsOk, expected.Result.ToString());
        Assert.Equal(expected.Result.Code, actual.Result.Code);
        Assert.Equal(expected.Fraud, actual.Fraud);
        Assert.Empty(actual.Fraud.ReasonNames);
        // Bit for bit: the victim's features, and so every score, are what they would have been without the attack.
        Assert.Equal(BitConverter.SingleToInt32Bits(expected.Fraud.Score), BitConverter.SingleToInt32Bits(actual.Fraud.Score));
        Assert.Equal(control.Ledger.FraudStage.SeenAccounts, attacked.Ledger.FraudStage.SeenAccounts);
    }

    [Fact]
    public void The_owner_s_own_refused_attempts_still_count_and_so_do_an_admin_s()
    {
        // The fix is about who sends, not about refusals: Ada's own attempts the ledger refuses (for funds) still count.
        var t = Setup();
        for (int i = 0; i < 5; i++)
        {
            t.Now += 100;
            Assert.Equal(ResultCode.InsufficientFunds, t.Run(Owned(Cmd.Transfer(AdaWallet, Merchant, 1_000_000, Usd)), client: Ada).Code);
        }
        var (r, fraud) = AdaPays(t);
        Assert.Equal(ResultCode.FraudSuspected, r.Code);
        Assert.Contains("daily_limit_exceeded", fraud.ReasonNames);

        // Without the OwnerOnly flag (an admin or the system acting on any account) the ledger accepts any sender: counted.
        var admin = Setup();
        for (int i = 0; i < 5; i++)
        {
            admin.Now += 100;
            Assert.Equal(ResultCode.InsufficientFunds, admin.Run(Cmd.Transfer(AdaWallet, Merchant, 1_000_000, Usd), client: Mallory).Code);
        }
        Assert.Equal(ResultCode.FraudSuspected, AdaPays(admin).Result.Code);
    }

    [Fact]
    public void Attempts_naming_an_account_not_yet_opened_leave_no_trace_on_it()
    {
        var control = Setup();
        var attacked = Setup();
        // Account 5 does not exist yet: attempts from it, or to it, are refused (account_not_found) and counted for no one.
        for (int i = 0; i < 10; i++)
        {
            attacked.Now += 100;
            Assert.Equal(ResultCode.AccountNotFound, attacked.Run(Owned(Cmd.Transfer(5, MalloryWallet, 50, Usd)), client: Mallory).Code);
            Assert.Equal(ResultCode.AccountNotFound, attacked.Run(Cmd.Transfer(5, Merchant, 50, Usd)).Code);
            Assert.Equal(ResultCode.AccountNotFound, attacked.Run(Cmd.Deposit(Funding, 5, 50, Usd)).Code);
        }
        control.Now = attacked.Now;
        foreach (var t in new[] { control, attacked })
        {
            Assert.Equal(5, t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd, owner: 9)));
            t.Ok(Cmd.Deposit(Funding, 5, 1_000, Usd));
        }
        control.Now += 1_000;
        attacked.Now = control.Now;
        var expected = control.Run(Owned(Cmd.Transfer(5, Merchant, 100, Usd)), client: 9);
        var actual = attacked.Run(Owned(Cmd.Transfer(5, Merchant, 100, Usd)), client: 9);
        Assert.True(expected.IsOk, expected.ToString());
        Assert.Equal(expected.Code, actual.Code);
        Assert.Equal(control.Ledger.GetFraudScore(expected.Id), attacked.Ledger.GetFraudScore(actual.Id));
    }
}
