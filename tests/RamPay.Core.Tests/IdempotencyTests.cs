namespace RamPay.Core.Tests;

/// <summary>
/// Idempotency keys: replay, conflicting bodies, client scoping, remembered rejections, the time window and the count bound.
/// "No state change" is checked with <see cref="LedgerView"/>, which leaves out the clock and the command counter: every
/// Apply moves those (and so ComputeStateHash, which covers them), replay or not.
/// </summary>
public class IdempotencyTests
{
    private static readonly Currency Usd = Currency.USD;
    private const long Window = 10_000;

    private readonly TestLedger _t = new(TestLedger.SmallOptions with { IdempotencyWindowMs = Window });
    private readonly long _fund, _alice, _bob;

    public IdempotencyTests() => (_fund, _alice, _bob) = _t.OpenFundedPair(Usd, deposit: 1_000);

    [Fact]
    public void Same_key_same_body_returns_the_first_result_replayed_without_state_change()
    {
        var first = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "pay-1");
        Assert.Equal((ResultCode.Ok, 2L, false), (first.Code, first.Id, first.Replayed));
        var before = LedgerView.Of(_t.Ledger);
        long commands = _t.Ledger.CommandsApplied;

        var again = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "pay-1", at: _t.Now + 5);
        var third = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "pay-1", at: _t.Now + 9);

        Assert.Equal((ResultCode.Ok, 2L, true), (again.Code, again.Id, again.Replayed));
        Assert.Equal(again, third);
        Assert.Equal(before, LedgerView.Of(_t.Ledger));
        Assert.Equal(900, _t.Available(_alice));
        Assert.Equal(100, _t.Available(_bob));
        // What does move: the command counter and the clock (hence the state hash).
        Assert.Equal(commands + 2, _t.Ledger.CommandsApplied);
        Assert.Equal(_t.Now + 9, _t.Ledger.ClockMs);
    }

    [Fact]
    public void Replay_of_every_command_kind_returns_its_id()
    {
        long acct = _t.Ok(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd, owner: 5), key: "open");
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 100, Usd), key: "transfer");
        long hold = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: 60_000), key: "auth");
        _t.Ok(Cmd.Capture(hold, 40), key: "capture");
        long refund = _t.Ok(Cmd.Refund(pay, 30, Usd), key: "refund");
        long hold2 = _t.Ok(Cmd.Authorize(_alice, _bob, 10, Usd), key: "auth2");
        _t.Ok(Cmd.Void(hold2), key: "void");
        _t.Ok(Cmd.Freeze(acct), key: "freeze");
        _t.Ok(Cmd.Unfreeze(acct), key: "unfreeze");
        var before = LedgerView.Of(_t.Ledger);

        Assert.Equal(acct, Replay(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd, owner: 5), "open"));
        Assert.Equal(pay, Replay(Cmd.Transfer(_alice, _bob, 100, Usd), "transfer"));
        Assert.Equal(hold, Replay(Cmd.Authorize(_alice, _bob, 100, Usd, timeoutMs: 60_000), "auth"));
        Assert.Equal(hold, Replay(Cmd.Capture(hold, 40), "capture"));
        Assert.Equal(refund, Replay(Cmd.Refund(pay, 30, Usd), "refund"));
        Assert.Equal(hold2, Replay(Cmd.Void(hold2), "void"));
        Assert.Equal(acct, Replay(Cmd.Freeze(acct), "freeze"));
        Assert.Equal(acct, Replay(Cmd.Unfreeze(acct), "unfreeze"));
        Assert.Equal(before, LedgerView.Of(_t.Ledger));
        Assert.False(_t.Account(acct).Frozen);
    }

    private long Replay(Command body, string key)
    {
        var r = _t.Run(body, key);
        Assert.True(r.IsOk && r.Replayed, $"expected a replayed ok for {key}, got {r}");
        return r.Id;
    }

    public static TheoryData<string, ResultCode> DifferentFields => new()
    {
        { "type", ResultCode.ExistsWithDifferentType },
        { "from_account", ResultCode.ExistsWithDifferentFromAccount },
        { "to_account", ResultCode.ExistsWithDifferentToAccount },
        { "payment_id", ResultCode.ExistsWithDifferentPaymentId },
        { "amount", ResultCode.ExistsWithDifferentAmount },
        { "currency", ResultCode.ExistsWithDifferentCurrency },
        { "flags", ResultCode.ExistsWithDifferentFlags },
        { "argument", ResultCode.ExistsWithDifferentArgument },
    };

    [Theory]
    [MemberData(nameof(DifferentFields))]
    public void Same_key_with_one_field_different_names_that_field_and_changes_nothing(string field, ResultCode expected)
    {
        var original = Cmd.Transfer(_alice, _bob, 100, Usd);
        var first = _t.Run(original, key: "k");
        Assert.True(first.IsOk);
        var before = LedgerView.Of(_t.Ledger);

        var changed = field switch
        {
            "type" => original with { Type = CommandType.Authorize },
            "from_account" => original with { FromAccount = _fund },
            "to_account" => original with { ToAccount = _fund },
            "payment_id" => original with { PaymentId = 1 },
            "amount" => original with { Amount = 101 },
            "currency" => original with { Currency = Currency.EUR },
            "flags" => original with { Flags = 1 },
            "argument" => original with { Argument = 60_000 },
            _ => throw new ArgumentOutOfRangeException(nameof(field)),
        };
        var r = _t.Run(changed, key: "k");

        Assert.Equal("exists_with_different_" + field, ResultCodes.Name(r.Code));
        Assert.Equal(expected, r.Code);
        Assert.Equal((0L, false), (r.Id, r.Replayed));
        Assert.Equal(before, LedgerView.Of(_t.Ledger));
        // The remembered command is still the original one.
        var replay = _t.Run(original, key: "k");
        Assert.Equal((ResultCode.Ok, first.Id, true), (replay.Code, replay.Id, replay.Replayed));
    }

    [Fact]
    public void The_first_differing_field_in_declaration_order_is_named()
    {
        _t.Ok(Cmd.Transfer(_alice, _bob, 100, Usd), key: "k");
        var r = _t.Run(Cmd.Transfer(_bob, _alice, 5, Currency.EUR), key: "k");
        Assert.Equal(ResultCode.ExistsWithDifferentFromAccount, r.Code);
    }

    [Fact]
    public void Timestamp_is_not_part_of_the_body()
    {
        var first = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "k", at: _t.Now);
        var again = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "k", at: _t.Now + 1234);
        Assert.Equal(first with { Replayed = true }, again);
    }

    [Fact]
    public void Keys_are_scoped_per_client()
    {
        var a = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "same", client: 1);
        var b = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "same", client: 2);
        Assert.Equal((ResultCode.Ok, 2L, false), (a.Code, a.Id, a.Replayed));
        Assert.Equal((ResultCode.Ok, 3L, false), (b.Code, b.Id, b.Replayed));
        Assert.Equal(800, _t.Available(_alice));
        // A different body under the other client's key is not a conflict either.
        var c = _t.Run(Cmd.Transfer(_alice, _bob, 7, Usd), key: "same", client: 3);
        Assert.Equal((ResultCode.Ok, 4L, false), (c.Code, c.Id, c.Replayed));
        // And each client replays its own.
        Assert.Equal(2, _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "same", client: 1).Id);
        Assert.Equal(ResultCode.ExistsWithDifferentAmount, _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "same", client: 3).Code);
    }

    [Fact]
    public void A_rejection_is_remembered_and_replayed_even_after_the_cause_is_fixed()
    {
        var first = _t.Run(Cmd.Transfer(_alice, _bob, 5_000, Usd), key: "big");
        Assert.Equal(ResultCode.InsufficientFunds, first.Code);
        Assert.Equal(1, _t.Ledger.PaymentCount);
        _t.Deposit(_fund, _alice, 10_000, Usd);

        var retry = _t.Run(Cmd.Transfer(_alice, _bob, 5_000, Usd), key: "big");
        Assert.Equal((ResultCode.InsufficientFunds, 0L, true), (retry.Code, retry.Id, retry.Replayed));
        Assert.Equal(0, _t.Available(_bob));

        // A fresh key executes.
        _t.Ok(Cmd.Transfer(_alice, _bob, 5_000, Usd), key: "big-2");
        Assert.Equal(5_000, _t.Available(_bob));
    }

    [Fact]
    public void A_rejection_is_remembered_for_the_window_then_the_key_executes_anew()
    {
        Assert.Equal(ResultCode.InsufficientFunds, _t.Run(Cmd.Transfer(_alice, _bob, 5_000, Usd), key: "big").Code);
        _t.Deposit(_fund, _alice, 10_000, Usd);
        var late = _t.Run(Cmd.Transfer(_alice, _bob, 5_000, Usd), key: "big", at: _t.Now + Window);
        Assert.Equal((ResultCode.Ok, false), (late.Code, late.Replayed));
        Assert.Equal(5_000, _t.Available(_bob));
    }

    [Fact]
    public void A_missing_key_is_idempotency_key_required_and_nothing_is_remembered()
    {
        var before = LedgerView.Of(_t.Ledger);
        var c = Cmd.Transfer(_alice, _bob, 100, Usd).At(_t.Now).By(TestLedger.DefaultClient);
        Assert.True(c.Key.IsEmpty);
        var r = _t.RunExact(c);
        Assert.Equal((ResultCode.IdempotencyKeyRequired, 0L, false), (r.Code, r.Id, r.Replayed));
        Assert.Equal("idempotency_key_required", ResultCodes.Name(r.Code));
        Assert.Equal(before, LedgerView.Of(_t.Ledger));
        // Every non-tick type needs one.
        foreach (var type in new[] { CommandType.OpenAccount, CommandType.Deposit, CommandType.Capture, CommandType.Void, CommandType.Refund, CommandType.Freeze, CommandType.Unfreeze, CommandType.None })
            Assert.Equal(ResultCode.IdempotencyKeyRequired, _t.RunExact(c with { Type = type }).Code);
        Assert.Equal(before, LedgerView.Of(_t.Ledger));
    }

    [Fact]
    public void A_tick_needs_no_key_and_is_not_remembered()
    {
        int keys = _t.Ledger.Idempotency.Count;
        Assert.Equal(ResultCode.Ok, _t.Tick(_t.Now + 1).Code);
        Assert.Equal(ResultCode.Ok, _t.RunExact(Cmd.Tick(_t.Now + 2).WithKey("tick")).Code);
        Assert.Equal(ResultCode.Ok, _t.RunExact(Cmd.Tick(_t.Now + 3).WithKey("tick")).Code);
        Assert.Equal(keys, _t.Ledger.Idempotency.Count);
    }

    [Fact]
    public void Conflicts_and_missing_keys_are_not_remembered_but_other_results_are()
    {
        int keys = _t.Ledger.Idempotency.Count; // 4 so far: 3 opens, 1 deposit
        Assert.Equal(4, keys);
        _t.Run(Cmd.Transfer(_alice, _bob, 1, Usd), key: "a");
        _t.Run(Cmd.Transfer(_alice, _bob, 2, Usd), key: "a"); // conflict: not stored
        _t.Run(Cmd.Transfer(_alice, _bob, 0, Usd), key: "b"); // invalid_amount: stored
        _t.RunExact(Cmd.Transfer(_alice, _bob, 1, Usd));      // no key
        Assert.Equal(keys + 2, _t.Ledger.Idempotency.Count);
        Assert.Equal(ResultCode.InvalidAmount, _t.Run(Cmd.Transfer(_alice, _bob, 0, Usd), key: "b").Code);
    }

    [Fact]
    public void Just_before_the_window_ends_the_key_is_remembered()
    {
        long t0 = _t.Now;
        var first = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "w", at: t0);
        _t.Tick(t0 + Window - 1);
        var again = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "w", at: t0 + Window - 1);
        Assert.Equal(first with { Replayed = true }, again);
        Assert.Equal(100, _t.Available(_bob));
    }

    [Fact]
    public void When_the_window_has_passed_by_a_tick_the_key_is_forgotten_and_executes_anew()
    {
        long t0 = _t.Now;
        int keys = _t.Ledger.Idempotency.Count;
        var first = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "w", at: t0);
        long expiredBefore = _t.Ledger.Idempotency.Expired;
        _t.Tick(t0 + Window); // ts + window <= now: every key stored at t0 goes
        Assert.Equal(expiredBefore + keys + 1, _t.Ledger.Idempotency.Expired);
        Assert.Equal(0, _t.Ledger.Idempotency.Count);
        Assert.Equal(0, _t.Ledger.IdempotencyEvictedEarly);

        var again = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "w", at: t0 + Window);
        Assert.Equal((ResultCode.Ok, false), (again.Code, again.Replayed));
        Assert.NotEqual(first.Id, again.Id);
        Assert.Equal(200, _t.Available(_bob));
        // Now the new execution is the remembered one.
        Assert.Equal(again with { Replayed = true }, _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "w"));
    }

    [Fact]
    public void The_command_itself_can_carry_the_time_past_the_window()
    {
        long t0 = _t.Now;
        _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "w", at: t0);
        // A different body with the same key: outside the window it is no conflict, just a new command.
        var r = _t.Run(Cmd.Transfer(_alice, _bob, 50, Usd), key: "w", at: t0 + Window);
        Assert.Equal((ResultCode.Ok, false), (r.Code, r.Replayed));
        Assert.Equal(150, _t.Available(_bob));
    }

    [Fact]
    public void The_window_is_measured_from_the_ledger_clock_not_the_commands_stale_timestamp()
    {
        long t0 = _t.Now;
        _t.Tick(t0 + 5_000);
        // Stamped in the past: stored with the ledger time t0 + 5000.
        _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "late", at: t0);
        _t.Tick(t0 + Window + 4_999);
        Assert.True(_t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "late").Replayed);
        _t.Tick(t0 + Window + 5_000);
        Assert.False(_t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "late").Replayed);
    }

    [Fact]
    public void Past_max_keys_the_oldest_key_is_evicted_early_and_then_executes_anew()
    {
        var t = new TestLedger(TestLedger.SmallOptions with { IdempotencyMaxKeys = 3 });
        // Accounts are opened with keys too: they fill the table first.
        long fund = t.OpenFunding(Usd), a = t.OpenPlain(Usd), b = t.OpenPlain(Usd);
        Assert.Equal(3, t.Ledger.Idempotency.Count);
        Assert.Equal(0, t.Ledger.IdempotencyEvictedEarly);
        _ = fund;

        var r1 = t.Run(Cmd.Transfer(a, b, 1, Usd), key: "k1");
        var r2 = t.Run(Cmd.Transfer(a, b, 2, Usd), key: "k2");
        var r3 = t.Run(Cmd.Transfer(a, b, 3, Usd), key: "k3");
        Assert.Equal(3, t.Ledger.IdempotencyEvictedEarly); // the three opens
        var r4 = t.Run(Cmd.Transfer(a, b, 4, Usd), key: "k4");
        Assert.Equal(4, t.Ledger.IdempotencyEvictedEarly); // k1
        Assert.Equal(3, t.Ledger.Idempotency.Count);
        Assert.Equal((1L, 2L, 3L, 4L), (r1.Id, r2.Id, r3.Id, r4.Id));

        // k2..k4 replay (replays add nothing), k1 executes anew and in turn evicts k2.
        Assert.Equal(r2 with { Replayed = true }, t.Run(Cmd.Transfer(a, b, 2, Usd), key: "k2"));
        Assert.Equal(r3 with { Replayed = true }, t.Run(Cmd.Transfer(a, b, 3, Usd), key: "k3"));
        Assert.Equal(r4 with { Replayed = true }, t.Run(Cmd.Transfer(a, b, 4, Usd), key: "k4"));
        Assert.Equal(4, t.Ledger.IdempotencyEvictedEarly);
        var again1 = t.Run(Cmd.Transfer(a, b, 1, Usd), key: "k1");
        Assert.Equal((ResultCode.Ok, 5L, false), (again1.Code, again1.Id, again1.Replayed));
        Assert.Equal(5, t.Ledger.IdempotencyEvictedEarly);
        Assert.Equal(11, t.Posted(b));
        Assert.False(t.Run(Cmd.Transfer(a, b, 2, Usd), key: "k2").Replayed);
        Assert.Equal(0, t.Ledger.Idempotency.Expired);
    }

    [Fact]
    public void An_evicted_key_with_a_different_body_is_no_conflict()
    {
        var t = new TestLedger(TestLedger.SmallOptions with { IdempotencyMaxKeys = 1 });
        long a = t.OpenPlain(Usd), b = t.OpenPlain(Usd);
        t.Ok(Cmd.Transfer(a, b, 1, Usd), key: "x");
        t.Ok(Cmd.Transfer(a, b, 1, Usd), key: "y");
        t.Ok(Cmd.Transfer(a, b, 99, Usd), key: "x");
        Assert.Equal(101, t.Posted(b));
    }
}
