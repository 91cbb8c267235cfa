namespace RamPay.Core.Tests;

/// <summary>The ledger's state machine: accounts, one- and two-phase payments, refunds, freezing, limits, history, clock.</summary>
public class LedgerTests
{
    private static readonly Currency Usd = Currency.USD, Eur = Currency.EUR;

    // The standard world: ids are assigned 1, 2, 3... in opening order.
    private readonly TestLedger _t = new();
    private readonly long _fundUsd, _alice, _bob, _fundEur, _eve, _plainUsd;

    public LedgerTests()
    {
        _fundUsd = _t.OpenFunding(Usd);
        _alice = _t.OpenWallet(Usd, owner: 100);
        _bob = _t.OpenWallet(Usd, owner: 200);
        _fundEur = _t.OpenFunding(Eur);
        _eve = _t.OpenWallet(Eur, owner: 300);
        _plainUsd = _t.OpenPlain(Usd);
    }

    private void FundAlice(long amount) => _t.Deposit(_fundUsd, _alice, amount, Usd);

    // ---------------------------------------------------------------- accounts

    [Fact]
    public void Accounts_get_sequential_ids_with_their_flags_currency_owner_and_creation_time()
    {
        Assert.Equal([1L, 2, 3, 4, 5, 6], new[] { _fundUsd, _alice, _bob, _fundEur, _eve, _plainUsd });
        Assert.Equal(6, _t.Ledger.AccountCount);
        var alice = _t.Account(_alice);
        Assert.Equal(2, alice.Id);
        Assert.Equal(100, alice.Owner);
        Assert.Equal(Usd, alice.Currency);
        Assert.Equal(AccountFlags.DebitsMustNotExceedCredits, alice.Flags);
        Assert.True(alice.IsWallet);
        Assert.False(alice.Frozen);
        Assert.Equal(TestLedger.Start, alice.CreatedAtMs);
        Assert.Equal((0L, 0L, 0L, 0L, 0L), (alice.DebitsPosted, alice.CreditsPosted, alice.DebitsPending, alice.CreditsPending, alice.LastPaymentId));
        Assert.Equal(AccountFlags.Funding, _t.Account(_fundUsd).Flags);
        Assert.False(_t.Account(_fundUsd).IsWallet);
        Assert.Equal(Eur, _t.Account(_eve).Currency);
        Assert.Equal(AccountFlags.None, _t.Account(_plainUsd).Flags);
    }

    [Fact]
    public void Open_account_accepts_both_flags_together()
    {
        long id = _t.Ok(Cmd.Open(AccountFlags.Funding | AccountFlags.DebitsMustNotExceedCredits, Currency.GBP, owner: 9));
        Assert.Equal(7, id);
        Assert.Equal(AccountFlags.Funding | AccountFlags.DebitsMustNotExceedCredits, _t.Account(id).Flags);
        Assert.Equal(Currency.GBP, _t.Account(id).Currency);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(0x80)]
    [InlineData(0xFF)]
    public void Open_account_with_unknown_flags_is_invalid_command(byte flags)
    {
        _t.Rejects(ResultCode.InvalidCommand, Cmd.Open((AccountFlags)flags, Usd));
        Assert.Equal(6, _t.Ledger.AccountCount);
    }

    [Fact]
    public void Open_account_without_currency_is_invalid_currency()
    {
        _t.Rejects(ResultCode.InvalidCurrency, Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Currency.None));
        Assert.Equal(6, _t.Ledger.AccountCount);
    }

    /// <summary>
    /// Currency codes are 1 + a base-26 number of three letters, so 1..17576 are the only valid codes. A code
    /// above that (it can arrive through the 80-byte wire/journal format) is not a currency at all.
    /// </summary>
    [Theory]
    [InlineData(17577)]
    [InlineData(0xFFFF)]
    public void Open_account_with_an_out_of_range_currency_code_is_invalid_currency(int code)
    {
        _t.Rejects(ResultCode.InvalidCurrency, Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, new Currency((ushort)code)));
    }

    [Fact]
    public void Open_account_at_max_accounts_is_too_many_accounts()
    {
        var t = new TestLedger(TestLedger.SmallOptions with { MaxAccounts = 2 });
        Assert.Equal(1, t.OpenWallet(Usd));
        Assert.Equal(2, t.OpenWallet(Usd));
        t.Rejects(ResultCode.TooManyAccounts, Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd));
        Assert.Equal(2, t.Ledger.AccountCount);
        Assert.False(t.Ledger.AccountExists(3));
    }

    [Fact]
    public void Account_exists_only_for_opened_ids()
    {
        Assert.False(_t.Ledger.AccountExists(0));
        Assert.False(_t.Ledger.AccountExists(-1));
        Assert.True(_t.Ledger.AccountExists(6));
        Assert.False(_t.Ledger.AccountExists(7));
        Assert.Throws<ArgumentOutOfRangeException>(() => _t.Ledger.GetAccount(7));
    }

    // ---------------------------------------------------------------- deposits

    [Fact]
    public void Deposit_from_funding_posts_on_both_sides()
    {
        long id = _t.Deposit(_fundUsd, _alice, 5_000, Usd);
        Assert.Equal(1, id);
        var p = _t.Payment(id);
        Assert.Equal((PaymentKind.Deposit, PaymentStatus.Posted, 5_000L, 5_000L, 0L), (p.Kind, p.Status, p.Amount, p.Captured, p.Refunded));
        Assert.Equal((_fundUsd, _alice), (p.FromAccount, p.ToAccount));
        Assert.Equal(5_000, _t.Account(_alice).CreditsPosted);
        Assert.Equal(5_000, _t.Available(_alice));
        Assert.Equal(5_000, _t.Account(_fundUsd).DebitsPosted);
        Assert.Equal(-5_000, _t.Posted(_fundUsd)); // a funding account may go negative
        Assert.Equal(5_000, _t.Ledger.TotalDebitsPosted);
        Assert.Equal(5_000, _t.Ledger.TotalCreditsPosted);
    }

    [Fact]
    public void Deposit_from_a_plain_account_is_not_a_funding_account()
    {
        _t.Rejects(ResultCode.NotAFundingAccount, Cmd.Deposit(_plainUsd, _alice, 10, Usd));
    }

    [Fact]
    public void Deposit_from_a_funded_wallet_is_not_a_funding_account()
    {
        FundAlice(100);
        _t.Rejects(ResultCode.NotAFundingAccount, Cmd.Deposit(_alice, _bob, 10, Usd));
        Assert.Equal(100, _t.Available(_alice));
    }

    [Fact]
    public void Deposit_in_the_wrong_currency_is_currency_mismatch()
    {
        _t.Rejects(ResultCode.CurrencyMismatch, Cmd.Deposit(_fundUsd, _eve, 10, Eur));
        _t.Rejects(ResultCode.CurrencyMismatch, Cmd.Deposit(_fundEur, _alice, 10, Eur));
    }

    // ---------------------------------------------------------------- one-phase transfers

    [Fact]
    public void Transfer_posts_on_both_sides()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Transfer(_alice, _bob, 300, Usd));
        Assert.Equal(2, id);
        var p = _t.Payment(id);
        Assert.Equal((PaymentKind.Transfer, PaymentStatus.Posted, 300L, 300L), (p.Kind, p.Status, p.Amount, p.Captured));
        Assert.Equal(Usd, p.Currency);
        Assert.Equal(TestLedger.Start, p.CreatedAtMs);
        var alice = _t.Account(_alice);
        var bob = _t.Account(_bob);
        Assert.Equal((1_000L, 300L, 700L), (alice.CreditsPosted, alice.DebitsPosted, alice.Available));
        Assert.Equal((300L, 0L, 300L), (bob.CreditsPosted, bob.DebitsPosted, bob.Available));
        Assert.Equal(1_300, _t.Ledger.TotalDebitsPosted);
        Assert.Equal(1_300, _t.Ledger.TotalCreditsPosted);
    }

    [Fact]
    public void Transfer_of_the_exact_balance_is_allowed_and_one_more_is_insufficient_funds()
    {
        FundAlice(500);
        _t.Ok(Cmd.Transfer(_alice, _bob, 500, Usd));
        Assert.Equal(0, _t.Available(_alice));
        _t.Rejects(ResultCode.InsufficientFunds, Cmd.Transfer(_alice, _bob, 1, Usd));
    }

    [Fact]
    public void Transfer_above_a_wallets_balance_is_insufficient_funds()
    {
        FundAlice(500);
        _t.Rejects(ResultCode.InsufficientFunds, Cmd.Transfer(_alice, _bob, 501, Usd));
        Assert.Equal(500, _t.Available(_alice));
        Assert.Equal(0, _t.Available(_bob));
    }

    [Fact]
    public void A_plain_account_may_go_negative()
    {
        _t.Ok(Cmd.Transfer(_plainUsd, _bob, 700, Usd));
        Assert.Equal(-700, _t.Posted(_plainUsd));
        Assert.Equal(700, _t.Posted(_bob));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(long.MinValue)]
    public void Transfer_of_a_non_positive_amount_is_invalid_amount(long amount)
    {
        FundAlice(100);
        _t.Rejects(ResultCode.InvalidAmount, Cmd.Transfer(_alice, _bob, amount, Usd));
    }

    [Fact]
    public void Transfer_without_currency_is_invalid_currency()
    {
        FundAlice(100);
        _t.Rejects(ResultCode.InvalidCurrency, Cmd.Transfer(_alice, _bob, 10, Currency.None));
    }

    [Fact]
    public void Transfer_across_currencies_is_currency_mismatch()
    {
        FundAlice(100);
        _t.Deposit(_fundEur, _eve, 100, Eur);
        _t.Rejects(ResultCode.CurrencyMismatch, Cmd.Transfer(_alice, _eve, 10, Usd));
        _t.Rejects(ResultCode.CurrencyMismatch, Cmd.Transfer(_alice, _eve, 10, Eur));
        _t.Rejects(ResultCode.CurrencyMismatch, Cmd.Transfer(_alice, _bob, 10, Eur));
        _t.Rejects(ResultCode.CurrencyMismatch, Cmd.Transfer(_alice, _bob, 10, Currency.GBP));
    }

    [Theory]
    [InlineData(0, 3)]
    [InlineData(2, 0)]
    [InlineData(99, 3)]
    [InlineData(2, 99)]
    [InlineData(-2, 3)]
    [InlineData(2, 7)]
    public void Transfer_with_an_unknown_account_on_either_side_is_account_not_found(long from, long to)
    {
        FundAlice(100);
        _t.Rejects(ResultCode.AccountNotFound, Cmd.Transfer(from, to, 10, Usd));
    }

    [Fact]
    public void Transfer_to_the_same_account_is_same_account()
    {
        FundAlice(100);
        _t.Rejects(ResultCode.SameAccount, Cmd.Transfer(_alice, _alice, 10, Usd));
        _t.Rejects(ResultCode.SameAccount, Cmd.Authorize(_alice, _alice, 10, Usd));
    }

    [Fact]
    public void Deposit_that_would_overflow_a_balance_is_overflow()
    {
        _t.Deposit(_fundUsd, _alice, long.MaxValue, Usd);
        Assert.Equal(long.MaxValue, _t.Available(_alice));
        Assert.Equal(long.MaxValue, _t.Account(_fundUsd).DebitsPosted);
        _t.Rejects(ResultCode.Overflow, Cmd.Deposit(_fundUsd, _bob, 1, Usd));
        _t.Rejects(ResultCode.Overflow, Cmd.Deposit(_fundUsd, _alice, 1, Usd));
        _t.Rejects(ResultCode.Overflow, Cmd.Deposit(_fundUsd, _alice, long.MaxValue, Usd));
    }

    [Fact]
    public void Deposits_adding_up_to_exactly_long_max_value_are_allowed()
    {
        _t.Deposit(_fundUsd, _alice, long.MaxValue - 10, Usd);
        _t.Deposit(_fundUsd, _bob, 10, Usd);
        Assert.Equal(long.MaxValue, _t.Ledger.TotalCreditsPosted);
        Assert.Equal(long.MaxValue, _t.Ledger.TotalDebitsPosted);
    }

    /// <summary>
    /// The ledger-wide totals are 128-bit: balances near long.MaxValue in one account (or currency) never stop
    /// money moving elsewhere, and the totals still balance.
    /// </summary>
    [Fact]
    public void Ledger_wide_totals_beyond_long_max_value_do_not_block_other_movements()
    {
        _t.Deposit(_fundUsd, _bob, 100, Usd);
        _t.Deposit(_fundUsd, _alice, long.MaxValue - 200, Usd);
        _t.Deposit(_fundEur, _eve, long.MaxValue - 10, Eur);
        _t.Ok(Cmd.Transfer(_alice, _bob, 1, Usd));
        _t.Ok(Cmd.Authorize(_bob, _alice, 1, Usd));
        _t.Ok(Cmd.Transfer(_eve, _fundEur, 1, Eur));
        Assert.Equal(101, _t.Posted(_bob));
        Assert.True(_t.Ledger.TotalDebitsPosted > long.MaxValue);
        Assert.Equal(_t.Ledger.TotalDebitsPosted, _t.Ledger.TotalCreditsPosted);
    }

    // ---------------------------------------------------------------- authorize

    [Fact]
    public void Authorize_moves_pending_amounts_and_lowers_available()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd));
        var p = _t.Payment(id);
        Assert.Equal((PaymentKind.Authorization, PaymentStatus.Authorized, 400L, 0L), (p.Kind, p.Status, p.Amount, p.Captured));
        Assert.Equal(TestLedger.Start + _t.Ledger.Options.DefaultHoldTimeoutMs, p.ExpiresAtMs);
        var alice = _t.Account(_alice);
        var bob = _t.Account(_bob);
        Assert.Equal((0L, 400L, 600L, 1_000L), (alice.DebitsPosted, alice.DebitsPending, alice.Available, alice.Posted));
        Assert.Equal((0L, 400L, 0L, 400L), (bob.CreditsPosted, bob.CreditsPending, bob.Available, bob.Pending));
        Assert.Equal(400, _t.Ledger.TotalDebitsPending);
        Assert.Equal(400, _t.Ledger.TotalCreditsPending);
        Assert.Equal(1, _t.Ledger.OpenHoldCount);
    }

    [Fact]
    public void Authorize_counts_existing_holds_against_the_balance()
    {
        FundAlice(1_000);
        _t.Ok(Cmd.Authorize(_alice, _bob, 600, Usd));
        _t.Rejects(ResultCode.InsufficientFunds, Cmd.Authorize(_alice, _bob, 401, Usd));
        _t.Rejects(ResultCode.InsufficientFunds, Cmd.Transfer(_alice, _bob, 401, Usd));
        _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd));
        Assert.Equal(0, _t.Available(_alice));
        Assert.Equal(2, _t.Ledger.OpenHoldCount);
    }

    [Fact]
    public void Pending_credits_are_not_spendable()
    {
        FundAlice(1_000);
        _t.Ok(Cmd.Authorize(_alice, _bob, 600, Usd));
        _t.Rejects(ResultCode.InsufficientFunds, Cmd.Transfer(_bob, _alice, 1, Usd));
    }

    [Fact]
    public void Authorize_with_a_custom_timeout_sets_the_expiry()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: 5_000));
        Assert.Equal(TestLedger.Start + 5_000, _t.Payment(id).ExpiresAtMs);
    }

    [Fact]
    public void Authorize_with_zero_timeout_uses_the_configured_default()
    {
        var t = new TestLedger(TestLedger.SmallOptions with { DefaultHoldTimeoutMs = 777 });
        long fund = t.OpenFunding(Usd), a = t.OpenWallet(Usd), b = t.OpenWallet(Usd);
        t.Deposit(fund, a, 100, Usd);
        long id = t.Ok(Cmd.Authorize(a, b, 10, Usd, timeoutMs: 0));
        Assert.Equal(TestLedger.Start + 777, t.Payment(id).ExpiresAtMs);
        t.Tick(TestLedger.Start + 776);
        Assert.Equal(PaymentStatus.Authorized, t.Payment(id).Status);
        t.Tick(TestLedger.Start + 777);
        Assert.Equal(PaymentStatus.Expired, t.Payment(id).Status);
    }

    [Fact]
    public void The_default_hold_timeout_is_seven_days()
    {
        Assert.Equal(7L * 24 * 3600 * 1000, new LedgerOptions().DefaultHoldTimeoutMs);
        Assert.Equal(24L * 3600 * 1000, new LedgerOptions().IdempotencyWindowMs);
    }

    /// <summary>
    /// A huge hold timeout must not wrap ExpiresAtMs around to the past (now + long.MaxValue overflows): the hold
    /// would then lapse on the very next command. Either reject it or keep the hold open far into the future.
    /// </summary>
    [Fact]
    public void Authorize_with_a_timeout_above_the_maximum_is_invalid_hold_timeout_and_changes_nothing()
    {
        FundAlice(1_000);
        _t.Rejects(ResultCode.InvalidHoldTimeout, Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: long.MaxValue));
        _t.Rejects(ResultCode.InvalidHoldTimeout, Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: _t.Ledger.Options.MaxHoldTimeoutMs + 1));
        Assert.Equal(0, _t.Ledger.OpenHoldCount);
    }

    [Fact]
    public void Authorize_with_the_maximum_timeout_holds_until_then()
    {
        FundAlice(1_000);
        long max = _t.Ledger.Options.MaxHoldTimeoutMs;
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: max));
        var p = _t.Payment(id);
        Assert.Equal(p.CreatedAtMs + max, p.ExpiresAtMs);
        _t.Tick(p.ExpiresAtMs - 1);
        Assert.Equal(PaymentStatus.Authorized, _t.Payment(id).Status);
        _t.Tick(p.ExpiresAtMs);
        Assert.Equal(PaymentStatus.Expired, _t.Payment(id).Status);
    }

    [Fact]
    public void Authorize_with_a_negative_timeout_is_invalid_hold_timeout()
    {
        FundAlice(1_000);
        _t.Rejects(ResultCode.InvalidHoldTimeout, Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: -5));
    }

    [Fact]
    public void Authorize_at_max_open_holds_is_too_many_holds_until_one_closes()
    {
        var t = new TestLedger(TestLedger.SmallOptions with { MaxOpenHolds = 2 });
        long fund = t.OpenFunding(Usd), a = t.OpenWallet(Usd), b = t.OpenWallet(Usd);
        t.Deposit(fund, a, 100, Usd);
        long h1 = t.Ok(Cmd.Authorize(a, b, 10, Usd));
        t.Ok(Cmd.Authorize(a, b, 10, Usd));
        t.Rejects(ResultCode.TooManyHolds, Cmd.Authorize(a, b, 10, Usd));
        Assert.Equal(2, t.Ledger.OpenHoldCount);
        Assert.Equal(3, t.Ledger.PaymentCount);
        // One-phase payments are not limited by the hold count.
        t.Ok(Cmd.Transfer(a, b, 10, Usd));
        t.Ok(Cmd.Void(h1));
        t.Ok(Cmd.Authorize(a, b, 10, Usd));
        Assert.Equal(2, t.Ledger.OpenHoldCount);
    }

    // ---------------------------------------------------------------- capture

    [Fact]
    public void Capture_with_amount_zero_captures_the_whole_authorization()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd));
        Assert.Equal(id, _t.Ok(Cmd.Capture(id)));
        var p = _t.Payment(id);
        Assert.Equal((PaymentStatus.Captured, 400L, 400L), (p.Status, p.Amount, p.Captured));
        var alice = _t.Account(_alice);
        var bob = _t.Account(_bob);
        Assert.Equal((400L, 0L, 600L), (alice.DebitsPosted, alice.DebitsPending, alice.Available));
        Assert.Equal((400L, 0L), (bob.CreditsPosted, bob.CreditsPending));
        Assert.Equal(0, _t.Ledger.TotalDebitsPending);
        Assert.Equal(0, _t.Ledger.OpenHoldCount);
    }

    [Fact]
    public void Partial_capture_settles_part_and_releases_the_rest()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd));
        _t.Ok(Cmd.Capture(id, 150, Usd));
        var p = _t.Payment(id);
        Assert.Equal((PaymentStatus.Captured, 400L, 150L), (p.Status, p.Amount, p.Captured));
        Assert.Equal(850, _t.Available(_alice));
        Assert.Equal(0, _t.Account(_alice).DebitsPending);
        Assert.Equal(150, _t.Posted(_bob));
        Assert.Equal(0, _t.Account(_bob).CreditsPending);
    }

    [Fact]
    public void Capture_of_exactly_the_authorized_amount_is_allowed_and_more_is_amount_exceeds_authorized()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd));
        _t.Rejects(ResultCode.AmountExceedsAuthorized, Cmd.Capture(id, 401));
        Assert.Equal(PaymentStatus.Authorized, _t.Payment(id).Status);
        _t.Ok(Cmd.Capture(id, 400));
        Assert.Equal(400, _t.Posted(_bob));
    }

    [Fact]
    public void Capture_with_a_negative_amount_is_invalid_amount()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd));
        _t.Rejects(ResultCode.InvalidAmount, Cmd.Capture(id, -1));
    }

    [Fact]
    public void Capture_in_another_currency_is_currency_mismatch()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd));
        _t.Rejects(ResultCode.CurrencyMismatch, Cmd.Capture(id, 100, Eur));
    }

    [Fact]
    public void Capture_twice_is_payment_not_authorized()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd));
        _t.Ok(Cmd.Capture(id, 100));
        _t.Rejects(ResultCode.PaymentNotAuthorized, Cmd.Capture(id, 100));
        _t.Rejects(ResultCode.PaymentNotAuthorized, Cmd.Void(id));
        Assert.Equal(100, _t.Posted(_bob));
    }

    [Fact]
    public void Capture_or_void_of_a_one_phase_payment_is_payment_not_authorized()
    {
        long deposit = _t.Deposit(_fundUsd, _alice, 1_000, Usd);
        long transfer = _t.Ok(Cmd.Transfer(_alice, _bob, 10, Usd));
        long refund = _t.Ok(Cmd.Refund(transfer, 5, Usd));
        foreach (long id in new[] { deposit, transfer, refund })
        {
            _t.Rejects(ResultCode.PaymentNotAuthorized, Cmd.Capture(id));
            _t.Rejects(ResultCode.PaymentNotAuthorized, Cmd.Void(id));
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(2)]
    [InlineData(long.MaxValue)]
    public void Capture_void_refund_of_an_unknown_payment_is_payment_not_found(long paymentId)
    {
        FundAlice(1_000); // payment 1
        _t.Rejects(ResultCode.PaymentNotFound, Cmd.Capture(paymentId));
        _t.Rejects(ResultCode.PaymentNotFound, Cmd.Void(paymentId));
        _t.Rejects(ResultCode.PaymentNotFound, Cmd.Refund(paymentId, 1, Usd));
    }

    // ---------------------------------------------------------------- void

    [Fact]
    public void Void_releases_the_hold()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd));
        Assert.Equal(id, _t.Ok(Cmd.Void(id)));
        Assert.Equal(PaymentStatus.Voided, _t.Payment(id).Status);
        Assert.Equal(0L, _t.Payment(id).Captured);
        Assert.Equal(1_000, _t.Available(_alice));
        Assert.Equal(0, _t.Account(_bob).CreditsPending);
        Assert.Equal(0, _t.Posted(_bob));
        Assert.Equal(0, _t.Ledger.TotalDebitsPending);
        Assert.Equal(0, _t.Ledger.OpenHoldCount);
        _t.Rejects(ResultCode.PaymentNotAuthorized, Cmd.Capture(id));
        _t.Rejects(ResultCode.PaymentNotAuthorized, Cmd.Void(id));
    }

    // ---------------------------------------------------------------- expiry by journaled time

    [Fact]
    public void A_hold_is_open_one_ms_before_its_expiry_and_capturable()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd, timeoutMs: 1_000));
        _t.Ok(Cmd.Capture(id), at: TestLedger.Start + 999);
        Assert.Equal(PaymentStatus.Captured, _t.Payment(id).Status);
        Assert.Equal(400, _t.Posted(_bob));
    }

    [Fact]
    public void A_tick_at_the_expiry_expires_the_hold_and_capture_is_then_hold_expired()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd, timeoutMs: 1_000));
        Assert.True(_t.Tick(TestLedger.Start + 999).IsOk);
        Assert.Equal(PaymentStatus.Authorized, _t.Payment(id).Status);
        var tick = _t.Tick(TestLedger.Start + 1_000);
        Assert.Equal((ResultCode.Ok, 0L, false), (tick.Code, tick.Id, tick.Replayed));
        Assert.Equal(PaymentStatus.Expired, _t.Payment(id).Status);
        Assert.Equal(1_000, _t.Available(_alice));
        Assert.Equal(0, _t.Account(_bob).CreditsPending);
        Assert.Equal(0, _t.Ledger.OpenHoldCount);
        _t.Rejects(ResultCode.HoldExpired, Cmd.Capture(id));
        _t.Rejects(ResultCode.HoldExpired, Cmd.Void(id));
        _t.Rejects(ResultCode.PaymentNotCaptured, Cmd.Refund(id, 1, Usd));
    }

    [Fact]
    public void Any_later_command_expires_the_hold_before_it_runs()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 1_000, Usd, timeoutMs: 50));
        // The transfer needs the held funds: it succeeds only because the hold lapsed first.
        _t.Ok(Cmd.Transfer(_alice, _plainUsd, 1_000, Usd), at: TestLedger.Start + 50);
        Assert.Equal(PaymentStatus.Expired, _t.Payment(id).Status);
        var r = _t.Run(Cmd.Capture(id), at: TestLedger.Start + 60);
        Assert.Equal(ResultCode.HoldExpired, r.Code);
    }

    [Fact]
    public void Holds_expire_in_expiry_order_independent_of_creation_order()
    {
        FundAlice(1_000);
        long late = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: 3_000));
        long early = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: 1_000));
        long mid = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: 2_000));
        _t.Tick(TestLedger.Start + 1_500);
        Assert.Equal((PaymentStatus.Authorized, PaymentStatus.Expired, PaymentStatus.Authorized),
            (_t.Payment(late).Status, _t.Payment(early).Status, _t.Payment(mid).Status));
        Assert.Equal(800, _t.Available(_alice));
        _t.Tick(TestLedger.Start + 2_000);
        Assert.Equal(PaymentStatus.Expired, _t.Payment(mid).Status);
        Assert.Equal(PaymentStatus.Authorized, _t.Payment(late).Status);
        _t.Tick(TestLedger.Start + 10_000);
        Assert.Equal(PaymentStatus.Expired, _t.Payment(late).Status);
        Assert.Equal(1_000, _t.Available(_alice));
    }

    [Fact]
    public void A_command_with_an_older_timestamp_uses_the_ledger_clock()
    {
        FundAlice(1_000);
        _t.Tick(TestLedger.Start + 5_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: 1_000), at: TestLedger.Start + 10);
        Assert.Equal(TestLedger.Start + 5_000, _t.Ledger.ClockMs);
        var p = _t.Payment(id);
        Assert.Equal(TestLedger.Start + 5_000, p.CreatedAtMs);
        Assert.Equal(TestLedger.Start + 6_000, p.ExpiresAtMs);
        // An old tick does not move the clock back either.
        _t.RunExact(Cmd.Tick(0));
        Assert.Equal(TestLedger.Start + 5_000, _t.Ledger.ClockMs);
        Assert.Equal(PaymentStatus.Authorized, _t.Payment(id).Status);
    }

    [Fact]
    public void The_clock_is_the_largest_timestamp_and_commands_are_counted()
    {
        long before = _t.Ledger.CommandsApplied;
        _t.Tick(TestLedger.Start + 3);
        _t.RunExact(Cmd.Tick(TestLedger.Start + 1));
        _t.Run(Cmd.Freeze(_alice), at: 5);
        Assert.Equal(TestLedger.Start + 3, _t.Ledger.ClockMs);
        Assert.Equal(before + 3, _t.Ledger.CommandsApplied);
    }

    // ---------------------------------------------------------------- refunds

    [Fact]
    public void Refund_creates_its_own_payment_with_the_parent_id_and_moves_money_back()
    {
        FundAlice(1_000);
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 400, Usd));
        long refund = _t.Ok(Cmd.Refund(pay, 150, Usd));
        Assert.NotEqual(pay, refund);
        Assert.Equal(pay + 1, refund);
        var r = _t.Payment(refund);
        Assert.Equal((PaymentKind.Refund, PaymentStatus.Posted, 150L, 150L, pay), (r.Kind, r.Status, r.Amount, r.Captured, r.ParentId));
        Assert.Equal((_bob, _alice), (r.FromAccount, r.ToAccount));
        Assert.Equal(150, _t.Payment(pay).Refunded);
        Assert.Equal(750, _t.Available(_alice));
        Assert.Equal(250, _t.Available(_bob));
    }

    [Fact]
    public void Partial_refunds_may_repeat_up_to_the_captured_amount_but_not_beyond()
    {
        FundAlice(1_000);
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 400, Usd));
        _t.Ok(Cmd.Refund(pay, 100, Usd));
        _t.Ok(Cmd.Refund(pay, 100, Usd));
        _t.Rejects(ResultCode.AmountExceedsCaptured, Cmd.Refund(pay, 201, Usd));
        _t.Ok(Cmd.Refund(pay, 200, Usd));
        Assert.Equal(400, _t.Payment(pay).Refunded);
        _t.Rejects(ResultCode.AmountExceedsCaptured, Cmd.Refund(pay, 1, Usd));
        Assert.Equal(1_000, _t.Available(_alice));
        Assert.Equal(0, _t.Available(_bob));
    }

    [Fact]
    public void Refund_of_an_open_or_voided_authorization_is_payment_not_captured()
    {
        FundAlice(1_000);
        long open = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd));
        _t.Rejects(ResultCode.PaymentNotCaptured, Cmd.Refund(open, 100, Usd));
        _t.Ok(Cmd.Void(open));
        _t.Rejects(ResultCode.PaymentNotCaptured, Cmd.Refund(open, 100, Usd));
    }

    [Fact]
    public void Refund_of_a_deposit_or_of_a_refund_is_payment_not_captured()
    {
        long deposit = _t.Deposit(_fundUsd, _alice, 1_000, Usd);
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 400, Usd));
        long refund = _t.Ok(Cmd.Refund(pay, 100, Usd));
        _t.Rejects(ResultCode.PaymentNotCaptured, Cmd.Refund(deposit, 100, Usd));
        _t.Rejects(ResultCode.PaymentNotCaptured, Cmd.Refund(refund, 50, Usd));
    }

    [Fact]
    public void Refund_of_a_partially_captured_authorization_is_limited_to_the_captured_amount()
    {
        FundAlice(1_000);
        long id = _t.Ok(Cmd.Authorize(_alice, _bob, 400, Usd));
        _t.Ok(Cmd.Capture(id, 150));
        _t.Rejects(ResultCode.AmountExceedsCaptured, Cmd.Refund(id, 151, Usd));
        long refund = _t.Ok(Cmd.Refund(id, 150, Usd));
        Assert.Equal(id, _t.Payment(refund).ParentId);
        Assert.Equal((400L, 150L, 150L), (_t.Payment(id).Amount, _t.Payment(id).Captured, _t.Payment(id).Refunded));
        Assert.Equal(1_000, _t.Available(_alice));
        Assert.Equal(0, _t.Posted(_bob));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Refund_of_a_non_positive_amount_is_invalid_amount(long amount)
    {
        FundAlice(1_000);
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 400, Usd));
        _t.Rejects(ResultCode.InvalidAmount, Cmd.Refund(pay, amount, Usd));
    }

    [Fact]
    public void Refund_in_another_currency_is_currency_mismatch_and_no_currency_means_the_payments()
    {
        FundAlice(1_000);
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 400, Usd));
        _t.Rejects(ResultCode.CurrencyMismatch, Cmd.Refund(pay, 10, Eur));
        long refund = _t.Ok(Cmd.Refund(pay, 10, Currency.None));
        Assert.Equal(Usd, _t.Ledger.GetPayment(refund).Currency);
        Assert.Equal(10, _t.Ledger.GetPayment(pay).Refunded);
    }

    [Fact]
    public void Refund_needs_the_payee_to_still_have_the_funds()
    {
        FundAlice(1_000);
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 400, Usd));
        _t.Ok(Cmd.Transfer(_bob, _plainUsd, 350, Usd));
        _t.Rejects(ResultCode.InsufficientFunds, Cmd.Refund(pay, 51, Usd));
        _t.Ok(Cmd.Refund(pay, 50, Usd));
        Assert.Equal(0, _t.Available(_bob));
        Assert.Equal(650, _t.Available(_alice));
    }

    [Fact]
    public void Refund_needs_the_payee_funds_not_held_elsewhere()
    {
        FundAlice(1_000);
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 400, Usd));
        _t.Ok(Cmd.Authorize(_bob, _plainUsd, 300, Usd));
        _t.Rejects(ResultCode.InsufficientFunds, Cmd.Refund(pay, 101, Usd));
        _t.Ok(Cmd.Refund(pay, 100, Usd));
    }

    // ---------------------------------------------------------------- freeze

    [Fact]
    public void A_frozen_account_can_neither_send_nor_receive()
    {
        FundAlice(1_000);
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 400, Usd));
        long hold = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd));
        Assert.Equal(_alice, _t.Ok(Cmd.Freeze(_alice)));
        Assert.True(_t.Account(_alice).Frozen);

        _t.Rejects(ResultCode.AccountFrozen, Cmd.Transfer(_alice, _bob, 1, Usd));      // send
        _t.Rejects(ResultCode.AccountFrozen, Cmd.Transfer(_bob, _alice, 1, Usd));      // receive
        _t.Rejects(ResultCode.AccountFrozen, Cmd.Deposit(_fundUsd, _alice, 1, Usd));   // receive a deposit
        _t.Rejects(ResultCode.AccountFrozen, Cmd.Authorize(_alice, _bob, 1, Usd));
        _t.Rejects(ResultCode.AccountFrozen, Cmd.Authorize(_bob, _alice, 1, Usd));
        _t.Rejects(ResultCode.AccountFrozen, Cmd.Capture(hold));
        _t.Rejects(ResultCode.AccountFrozen, Cmd.Refund(pay, 10, Usd));                // refund would credit Alice
        Assert.Equal(PaymentStatus.Authorized, _t.Payment(hold).Status);
        Assert.Equal(500, _t.Available(_alice));
    }

    [Fact]
    public void A_frozen_payee_blocks_capture_and_refund_too()
    {
        FundAlice(1_000);
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 400, Usd));
        long hold = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd));
        _t.Ok(Cmd.Freeze(_bob));
        _t.Rejects(ResultCode.AccountFrozen, Cmd.Capture(hold, 50));
        _t.Rejects(ResultCode.AccountFrozen, Cmd.Refund(pay, 10, Usd));
        _t.Rejects(ResultCode.AccountFrozen, Cmd.Transfer(_bob, _alice, 10, Usd));
    }

    [Fact]
    public void Void_still_works_on_a_frozen_account()
    {
        FundAlice(1_000);
        long hold = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd));
        _t.Ok(Cmd.Freeze(_alice));
        _t.Ok(Cmd.Freeze(_bob));
        Assert.Equal(hold, _t.Ok(Cmd.Void(hold)));
        Assert.Equal(PaymentStatus.Voided, _t.Payment(hold).Status);
        Assert.Equal(1_000, _t.Available(_alice));
    }

    [Fact]
    public void A_hold_on_a_frozen_account_still_expires()
    {
        FundAlice(1_000);
        long hold = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: 10));
        _t.Ok(Cmd.Freeze(_alice));
        _t.Tick(TestLedger.Start + 10);
        Assert.Equal(PaymentStatus.Expired, _t.Payment(hold).Status);
        Assert.Equal(1_000, _t.Available(_alice));
    }

    [Fact]
    public void Unfreeze_restores_sending_and_receiving()
    {
        FundAlice(1_000);
        long hold = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd));
        _t.Ok(Cmd.Freeze(_alice));
        _t.Ok(Cmd.Freeze(_alice)); // freezing twice is fine
        Assert.Equal(_alice, _t.Ok(Cmd.Unfreeze(_alice)));
        Assert.False(_t.Account(_alice).Frozen);
        _t.Ok(Cmd.Transfer(_alice, _bob, 100, Usd));
        _t.Ok(Cmd.Transfer(_bob, _alice, 50, Usd));
        _t.Ok(Cmd.Capture(hold));
        Assert.Equal(850, _t.Available(_alice)); // 1000 + 50 in, 100 + 100 out
        Assert.Equal(150, _t.Available(_bob));
        _t.Ok(Cmd.Unfreeze(_bob)); // unfreezing an unfrozen account is fine
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(-1)]
    public void Freeze_or_unfreeze_of_an_unknown_account_is_account_not_found(long account)
    {
        _t.Rejects(ResultCode.AccountNotFound, Cmd.Freeze(account));
        _t.Rejects(ResultCode.AccountNotFound, Cmd.Unfreeze(account));
    }

    // ---------------------------------------------------------------- limits and unknown commands

    [Fact]
    public void Payments_beyond_max_payments_are_too_many_payments()
    {
        var t = new TestLedger(TestLedger.SmallOptions with { MaxPayments = 3, InitialPaymentCapacity = 3 });
        long fund = t.OpenFunding(Usd), a = t.OpenWallet(Usd), b = t.OpenWallet(Usd);
        t.Deposit(fund, a, 100, Usd);
        long pay = t.Ok(Cmd.Transfer(a, b, 10, Usd));
        long hold = t.Ok(Cmd.Authorize(a, b, 10, Usd));
        Assert.Equal(3, t.Ledger.PaymentCount);
        t.Rejects(ResultCode.TooManyPayments, Cmd.Transfer(a, b, 10, Usd));
        t.Rejects(ResultCode.TooManyPayments, Cmd.Deposit(fund, a, 10, Usd));
        t.Rejects(ResultCode.TooManyPayments, Cmd.Authorize(a, b, 10, Usd));
        t.Rejects(ResultCode.TooManyPayments, Cmd.Refund(pay, 5, Usd));
        // Capture and void create no payment, so they still work.
        t.Ok(Cmd.Capture(hold));
        Assert.Equal(3, t.Ledger.PaymentCount);
    }

    [Theory]
    [InlineData(CommandType.None)]
    [InlineData((CommandType)12)]
    [InlineData((CommandType)255)]
    public void An_unknown_command_type_is_invalid_command(CommandType type)
    {
        _t.Rejects(ResultCode.InvalidCommand, new Command { Type = type, FromAccount = _alice, ToAccount = _bob, Amount = 1, Currency = Usd });
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.Throws<ArgumentException>(() => new Ledger(TestLedger.SmallOptions with { MaxAccounts = 0 }));
        Assert.Throws<ArgumentException>(() => new Ledger(TestLedger.SmallOptions with { MaxPayments = 0 }));
        Assert.Throws<ArgumentException>(() => new Ledger(TestLedger.SmallOptions with { InitialPaymentCapacity = 1 << 17 }));
        Assert.Throws<ArgumentException>(() => new Ledger(TestLedger.SmallOptions with { MaxOpenHolds = 0 }));
        Assert.Throws<ArgumentException>(() => new Ledger(TestLedger.SmallOptions with { DefaultHoldTimeoutMs = 0 }));
        Assert.Throws<ArgumentException>(() => new Ledger(TestLedger.SmallOptions with { IdempotencyWindowMs = 0 }));
        Assert.Throws<ArgumentException>(() => new Ledger(TestLedger.SmallOptions with { IdempotencyMaxKeys = 0 }));
    }

    // ---------------------------------------------------------------- history

    [Fact]
    public void History_lists_an_accounts_payments_newest_first_on_both_sides()
    {
        long d = _t.Deposit(_fundUsd, _alice, 1_000, Usd);            // 1: fund -> alice
        long t1 = _t.Ok(Cmd.Transfer(_alice, _bob, 100, Usd));        // 2: alice -> bob
        long other = _t.Ok(Cmd.Transfer(_plainUsd, _bob, 5, Usd));    // 3: plain -> bob
        long h = _t.Ok(Cmd.Authorize(_alice, _bob, 50, Usd));         // 4: alice -> bob
        long r = _t.Ok(Cmd.Refund(t1, 10, Usd));                      // 5: bob -> alice
        _t.Ok(Cmd.Capture(h));                                        // no new payment

        Assert.Equal([r, h, t1, d], _t.History(_alice));
        Assert.Equal([r, h, other, t1], _t.History(_bob));
        Assert.Equal([d], _t.History(_fundUsd));
        Assert.Equal([other], _t.History(_plainUsd));
        Assert.Empty(_t.History(_eve));
        Assert.Equal(r, _t.Account(_alice).LastPaymentId);
    }

    [Fact]
    public void History_pages_with_before_id_and_the_buffer_size()
    {
        FundAlice(1_000);                                            // 1
        for (int i = 0; i < 5; i++) _t.Ok(Cmd.Transfer(_alice, _bob, 1, Usd)); // 2..6
        Assert.Equal([6L, 5], _t.History(_alice, 0, max: 2));
        Assert.Equal([4L, 3], _t.History(_alice, beforeId: 5, max: 2));
        Assert.Equal([2L, 1], _t.History(_alice, beforeId: 3, max: 2));
        Assert.Empty(_t.History(_alice, beforeId: 1, max: 2));
        Assert.Equal([6L, 5, 4, 3, 2], _t.History(_bob));
        Assert.Equal([6L, 5, 4, 3, 2], _t.History(_bob, beforeId: 100));
        Assert.Empty(_t.History(_bob, 0, max: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => _t.History(99));
    }

    [Fact]
    public void Rejected_commands_create_no_payment_and_no_history()
    {
        _t.Rejects(ResultCode.InsufficientFunds, Cmd.Transfer(_alice, _bob, 1, Usd));
        Assert.Equal(0, _t.Ledger.PaymentCount);
        Assert.False(_t.Ledger.PaymentExists(1));
        Assert.Empty(_t.History(_alice));
    }
}
