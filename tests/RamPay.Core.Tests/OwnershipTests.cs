namespace RamPay.Core.Tests;

/// <summary>
/// <see cref="CommandFlags.OwnerOnly"/>: a user's command may only move money the user owns. Ingress sets the flag
/// on every user's command, so these rules are what keeps one user out of another's wallet.
/// </summary>
public class OwnershipTests
{
    private const long Ada = 1, Bob = 2, Mallory = 3;
    private readonly TestLedger _t = new();
    private readonly long _funding, _ada, _bob;

    public OwnershipTests()
    {
        _funding = _t.OpenFunding(Currency.USD);
        _ada = _t.OpenWallet(Currency.USD, owner: Ada);
        _bob = _t.OpenWallet(Currency.USD, owner: Bob);
        _t.Deposit(_funding, _ada, 10_000, Currency.USD);
    }

    private static Command As(Command c) => c with { Flags = CommandFlags.OwnerOnly };

    [Fact]
    public void A_user_pays_from_their_own_wallet_and_not_from_anothers()
    {
        Assert.True(_t.Run(As(Cmd.Transfer(_ada, _bob, 100, Currency.USD)), client: Ada).IsOk);
        _t.Client = Mallory;
        _t.Rejects(ResultCode.NotAccountOwner, As(Cmd.Transfer(_ada, _bob, 100, Currency.USD)));
        _t.Rejects(ResultCode.NotAccountOwner, As(Cmd.Authorize(_ada, _bob, 100, Currency.USD)));
        Assert.Equal(9_900, _t.Account(_ada).Available);
    }

    [Fact]
    public void A_deposit_goes_only_into_the_senders_own_account()
    {
        _t.Client = Bob;
        Assert.True(_t.Run(As(Cmd.Deposit(_funding, _bob, 50, Currency.USD))).IsOk);
        _t.Rejects(ResultCode.NotAccountOwner, As(Cmd.Deposit(_funding, _ada, 50, Currency.USD)));
    }

    [Fact]
    public void Either_side_may_capture_or_void_an_authorization_but_no_one_else()
    {
        long first = _t.Run(As(Cmd.Authorize(_ada, _bob, 300, Currency.USD)), client: Ada).Id;
        long second = _t.Run(As(Cmd.Authorize(_ada, _bob, 300, Currency.USD)), client: Ada).Id;
        _t.Client = Mallory;
        _t.Rejects(ResultCode.NotAccountOwner, As(Cmd.Capture(first)));
        _t.Rejects(ResultCode.NotAccountOwner, As(Cmd.Void(first)));
        Assert.True(_t.Run(As(Cmd.Capture(first, 200)), client: Bob).IsOk);
        Assert.True(_t.Run(As(Cmd.Void(second)), client: Ada).IsOk);
        Assert.Equal((200L, 9_800L), (_t.Account(_bob).Posted, _t.Account(_ada).Available));
    }

    [Fact]
    public void Only_the_payee_may_refund()
    {
        long paid = _t.Run(As(Cmd.Transfer(_ada, _bob, 500, Currency.USD)), client: Ada).Id;
        _t.Client = Ada;
        _t.Rejects(ResultCode.NotAccountOwner, As(Cmd.Refund(paid, 100, Currency.USD)));
        _t.Client = Mallory;
        _t.Rejects(ResultCode.NotAccountOwner, As(Cmd.Refund(paid, 100, Currency.USD)));
        Assert.True(_t.Run(As(Cmd.Refund(paid, 100, Currency.USD)), client: Bob).IsOk);
        Assert.Equal(9_600, _t.Account(_ada).Posted);
    }

    [Fact]
    public void Unknown_ids_are_reported_as_not_found_before_ownership()
    {
        _t.Client = Mallory;
        _t.Rejects(ResultCode.AccountNotFound, As(Cmd.Transfer(999, _bob, 1, Currency.USD)));
        _t.Rejects(ResultCode.PaymentNotFound, As(Cmd.Capture(999)));
        _t.Rejects(ResultCode.PaymentNotFound, As(Cmd.Refund(999, 1, Currency.USD)));
    }

    [Fact]
    public void Without_the_flag_the_system_may_act_on_any_account_and_unknown_flags_are_refused()
    {
        Assert.True(_t.Run(Cmd.Transfer(_ada, _bob, 1, Currency.USD), client: Mallory).IsOk);
        _t.Rejects(ResultCode.InvalidCommand, Cmd.Transfer(_ada, _bob, 1, Currency.USD) with { Flags = 0x80 });
    }
}
