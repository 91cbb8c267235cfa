namespace RamPay.Core.Tests;

/// <summary>WriteState / ReadState / ComputeStateHash: a restored ledger must be indistinguishable from the original.</summary>
public class SnapshotTests
{
    private static readonly Currency Usd = Currency.USD, Eur = Currency.EUR;

    private static LedgerOptions Options => TestLedger.SmallOptions with
    {
        IdempotencyMaxKeys = 64,
        IdempotencyWindowMs = 100_000,
        DefaultHoldTimeoutMs = 50_000,
    };

    /// <summary>Open holds with different expiries, a frozen account, refunds, expired/voided/captured holds, payment notes, remembered keys and rejections.</summary>
    private sealed class World
    {
        public readonly TestLedger T = new(Options);
        public readonly long Fund, Alice, Bob, Carol, FundEur, Eve;
        public readonly long Pay, Refund, Captured, Voided, ExpiredHold, HoldA, HoldB, HoldC, EurHold;
        public readonly long Start = TestLedger.Start;

        public World()
        {
            Fund = T.OpenFunding(Usd);
            Alice = T.OpenWallet(Usd, owner: 11);
            Bob = T.OpenWallet(Usd, owner: 12);
            Carol = T.OpenWallet(Usd, owner: 13);
            FundEur = T.OpenFunding(Eur);
            Eve = T.OpenWallet(Eur, owner: 14);
            T.Deposit(Fund, Alice, 10_000, Usd);
            T.Deposit(FundEur, Eve, 500, Eur);
            Pay = T.Ok(Cmd.Transfer(Alice, Bob, 2_000, Usd), key: "pay", note: new PaymentNote("dinner", null));
            Refund = T.Ok(Cmd.Refund(Pay, 300, Usd), key: "refund");
            T.Ok(Cmd.Refund(Pay, 200, Usd));
            Captured = T.Ok(Cmd.Authorize(Alice, Carol, 700, Usd));
            T.Ok(Cmd.Capture(Captured, 500));
            T.Ok(Cmd.Refund(Captured, 100, Usd));
            Voided = T.Ok(Cmd.Authorize(Alice, Bob, 100, Usd));
            T.Ok(Cmd.Void(Voided));
            ExpiredHold = T.Ok(Cmd.Authorize(Alice, Bob, 100, Usd, timeoutMs: 10));
            T.Now = Start + 100;
            // Open holds, created out of expiry order so the heap is not trivially sorted.
            HoldA = T.Ok(Cmd.Authorize(Alice, Bob, 300, Usd, timeoutMs: 30_000), key: "hold-a", note: new PaymentNote("hotel", "https://example.com/hooks/1"));
            HoldB = T.Ok(Cmd.Authorize(Alice, Carol, 200, Usd, timeoutMs: 10_000));
            HoldC = T.Ok(Cmd.Authorize(Bob, Alice, 400, Usd, timeoutMs: 20_000));
            EurHold = T.Ok(Cmd.Authorize(Eve, FundEur, 50, Eur));
            T.Ok(Cmd.Freeze(Carol));
            Assert.Equal(ResultCode.InsufficientFunds, T.Run(Cmd.Transfer(Eve, FundEur, 10_000, Eur), key: "too-much").Code);
            T.Tick(Start + 200); // the ledger clock, which a TestLedger wrapping a restored copy starts from
            Assert.Equal(PaymentStatus.Expired, T.Payment(ExpiredHold).Status);
            Assert.Equal(4, T.Ledger.OpenHoldCount);
            Assert.True(T.Account(Carol).Frozen);
        }
    }

    private static Ledger RoundTrip(Ledger original)
    {
        var bytes = StateBytes.Write(original);
        var restored = StateBytes.Read(bytes, original.Options);
        Assert.Equal(bytes, StateBytes.Write(restored)); // byte-identical
        return restored;
    }

    [Fact]
    public void Round_trip_preserves_the_hash_and_every_observable()
    {
        var w = new World();
        var original = w.T.Ledger;
        var restored = RoundTrip(original);

        Assert.Equal(StateBytes.Hash(original), StateBytes.Hash(restored));
        Assert.Equal(LedgerView.Of(original), LedgerView.Of(restored));
        Assert.Equal(original.ClockMs, restored.ClockMs);
        Assert.Equal(original.CommandsApplied, restored.CommandsApplied);
        Assert.Equal(original.OpenHoldCount, restored.OpenHoldCount);
        Assert.Equal(original.Idempotency.Count, restored.Idempotency.Count);
        Assert.Equal(original.Idempotency.Expired, restored.Idempotency.Expired);
        Assert.Equal(original.IdempotencyEvictedEarly, restored.IdempotencyEvictedEarly);
        var rt = new TestLedger(restored);
        foreach (long acct in new[] { w.Alice, w.Bob, w.Carol, w.Eve })
        {
            Assert.Equal(w.T.History(acct), rt.History(acct));
            Assert.Equal(w.T.Account(acct), rt.Account(acct));
        }
        Assert.True(rt.Account(w.Carol).Frozen);
        Assert.Equal(w.Pay, rt.Payment(w.Refund).ParentId);
        Assert.Equal(500, rt.Payment(w.Pay).Refunded);
        Assert.Equal(new PaymentNote("hotel", "https://example.com/hooks/1"), restored.GetPaymentNote(w.HoldA));
        restored.VerifyInvariants();
    }

    // ---------------------------------------------------------------- ComputeStateHash itself

    [Fact]
    public void ComputeStateHash_of_an_empty_ledger_is_the_sha256_of_its_state_bytes()
    {
        var l = new Ledger(Options);
        Assert.Equal(StateBytes.Hash(l), l.ComputeStateHash());
    }

    [Fact]
    public void ComputeStateHash_is_the_sha256_of_the_state_bytes_and_can_be_called_repeatedly()
    {
        var w = new World();
        string h1 = w.T.Ledger.ComputeStateHash();
        Assert.Matches("^[0-9a-f]{64}$", h1);
        Assert.Equal(StateBytes.Hash(w.T.Ledger), h1);
        Assert.Equal(h1, w.T.Ledger.ComputeStateHash());
        w.T.Ok(Cmd.Transfer(w.Alice, w.Bob, 1, Usd));
        Assert.NotEqual(h1, w.T.Ledger.ComputeStateHash());
    }

    [Fact]
    public void ComputeStateHash_of_a_restored_ledger_equals_the_originals()
    {
        var w = new World();
        var restored = RoundTrip(w.T.Ledger);
        Assert.Equal(w.T.Ledger.ComputeStateHash(), restored.ComputeStateHash());
    }

    [Fact]
    public void State_hash_changes_with_state_and_with_the_command_counter()
    {
        var w = new World();
        string h1 = StateBytes.Hash(w.T.Ledger);
        Assert.Equal(h1, StateBytes.Hash(w.T.Ledger));
        // A replay changes no balance but counts a command and may move the clock: the hash covers both.
        Assert.True(w.T.Run(Cmd.Transfer(w.Alice, w.Bob, 2_000, Usd), key: "pay").Replayed);
        string h2 = StateBytes.Hash(w.T.Ledger);
        Assert.NotEqual(h1, h2);
        w.T.Ok(Cmd.Transfer(w.Alice, w.Bob, 1, Usd));
        Assert.NotEqual(h2, StateBytes.Hash(w.T.Ledger));
    }

    [Fact]
    public void The_restored_ledger_replays_remembered_keys_identically()
    {
        var w = new World();
        var rt = new TestLedger(RoundTrip(w.T.Ledger));
        var results = new List<CommandResult>();
        foreach (var (body, key) in new[]
                 {
                     (Cmd.Transfer(w.Alice, w.Bob, 2_000, Usd), "pay"),
                     (Cmd.Refund(w.Pay, 300, Usd), "refund"),
                     (Cmd.Authorize(w.Alice, w.Bob, 300, Usd, timeoutMs: 30_000), "hold-a"),
                     (Cmd.Transfer(w.Eve, w.FundEur, 10_000, Eur), "too-much"),
                     (Cmd.Transfer(w.Alice, w.Bob, 1, Usd), "pay"), // conflict
                 })
        {
            var a = w.T.Run(body, key);
            Assert.Equal(a, rt.Run(body, key));
            results.Add(a);
        }
        Assert.Equal(
            [
                new CommandResult { Code = ResultCode.Ok, Id = w.Pay, Replayed = true },
                new CommandResult { Code = ResultCode.Ok, Id = w.Refund, Replayed = true },
                new CommandResult { Code = ResultCode.Ok, Id = w.HoldA, Replayed = true },
                new CommandResult { Code = ResultCode.InsufficientFunds, Replayed = true },
                new CommandResult { Code = ResultCode.ExistsWithDifferentAmount },
            ],
            results);
        Assert.Equal(StateBytes.Hash(w.T.Ledger), StateBytes.Hash(rt.Ledger));
    }

    [Fact]
    public void The_restored_ledger_expires_holds_and_keys_at_the_same_times()
    {
        var w = new World();
        var rt = new TestLedger(RoundTrip(w.T.Ledger));
        long holdBExpiry = w.T.Payment(w.HoldB).ExpiresAtMs;
        Assert.Equal(w.Start + 100 + 10_000, holdBExpiry);

        foreach (long at in new[] { holdBExpiry - 1, holdBExpiry, w.Start + 100 + 20_000, w.Start + 100 + 29_999, w.Start + 100 + 30_000, w.Start + 100_000, w.Start + 100_100, w.Start + 200_000 })
        {
            w.T.Tick(at);
            rt.Tick(at);
            Assert.Equal(LedgerView.Of(w.T.Ledger), LedgerView.Of(rt.Ledger));
            Assert.Equal(w.T.Ledger.Idempotency.Count, rt.Ledger.Idempotency.Count);
            Assert.Equal(StateBytes.Hash(w.T.Ledger), StateBytes.Hash(rt.Ledger));
            if (at == holdBExpiry - 1) Assert.Equal(PaymentStatus.Authorized, rt.Payment(w.HoldB).Status);
            if (at == holdBExpiry)
            {
                Assert.Equal(PaymentStatus.Expired, rt.Payment(w.HoldB).Status);
                Assert.Equal(PaymentStatus.Authorized, rt.Payment(w.HoldC).Status);
            }
        }
        Assert.Equal(0, rt.Ledger.OpenHoldCount);
        Assert.Equal(0, rt.Ledger.Idempotency.Count);
        Assert.Equal(PaymentStatus.Expired, rt.Payment(w.HoldA).Status);
        Assert.Equal(PaymentStatus.Expired, rt.Payment(w.EurHold).Status);
    }

    [Fact]
    public void Continuing_with_the_same_commands_keeps_the_hashes_equal()
    {
        var w = new World();
        var rt = new TestLedger(RoundTrip(w.T.Ledger));
        var script = new Func<TestLedger, CommandResult>[]
        {
            t => t.Run(Cmd.Capture(w.HoldC, 100), "c1"),
            t => t.Run(Cmd.Authorize(w.Alice, w.Bob, 10, Usd, timeoutMs: 5_000), "a1"),
            t => t.Run(Cmd.Authorize(w.Alice, w.Bob, 10, Usd, timeoutMs: 15_000), "a2"),
            t => t.Run(Cmd.Void(w.HoldA), "v1"),
            t => t.Run(Cmd.Unfreeze(w.Carol), "u1"),
            t => t.Run(Cmd.Capture(w.HoldB), "c2"),
            t => t.Run(Cmd.Refund(w.HoldB, 50, Usd), "r1"),
            t => t.Run(Cmd.Transfer(w.Bob, w.Carol, 1_000, Usd), "t1"),
            t => t.Tick(w.Start + 12_000),
            t => t.Run(Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Currency.GBP), "o1"),
        };
        foreach (var step in script)
        {
            Assert.Equal(step(w.T), step(rt));
            Assert.Equal(StateBytes.Hash(w.T.Ledger), StateBytes.Hash(rt.Ledger));
        }
        Assert.Equal(7, rt.Ledger.AccountCount);
    }

    [Fact]
    public void A_restored_full_idempotency_ring_evicts_the_same_key_next()
    {
        // Ring of 4 that has wrapped around several times, so its head is not at slot 0.
        var t = new TestLedger(TestLedger.SmallOptions with { IdempotencyMaxKeys = 4 });
        long a = t.OpenPlain(Usd), b = t.OpenPlain(Usd);
        for (int i = 0; i < 7; i++) t.Ok(Cmd.Transfer(a, b, 1, Usd), key: "k" + i);
        var rt = new TestLedger(RoundTrip(t.Ledger));
        Assert.Equal(StateBytes.Hash(t.Ledger), StateBytes.Hash(rt.Ledger));
        Assert.Equal(5, rt.Ledger.IdempotencyEvictedEarly);

        foreach (var tl in new[] { t, rt })
        {
            Assert.True(tl.Run(Cmd.Transfer(a, b, 1, Usd), key: "k3").Replayed);
            Assert.False(tl.Run(Cmd.Transfer(a, b, 1, Usd), key: "k2").Replayed); // evicted: runs, evicts k3
            Assert.False(tl.Run(Cmd.Transfer(a, b, 1, Usd), key: "k3").Replayed);
            Assert.True(tl.Run(Cmd.Transfer(a, b, 1, Usd), key: "k6").Replayed);
        }
        Assert.Equal(StateBytes.Hash(t.Ledger), StateBytes.Hash(rt.Ledger));
    }

    [Fact]
    public void An_empty_ledger_round_trips()
    {
        var l = new Ledger(Options);
        var bytes = StateBytes.Write(l);
        // magic, version, 4 longs, 4 Int128 totals, then counts: accounts int, payments long, notes int, holds int, users int, keys int;
        // then the fraud section of a ledger that never scored (disabled settings, no model, no features).
        Assert.Equal(132 + StateBytes.UnusedFraudSectionSize, bytes.Length);
        Assert.Equal(84, StateBytes.UnusedFraudSectionSize);
        var r = StateBytes.Read(bytes, Options);
        Assert.Equal(StateBytes.Hash(l), StateBytes.Hash(r));
        Assert.Equal(0, r.AccountCount);
    }

    [Fact]
    public void The_state_starts_with_the_magic_and_version()
    {
        var bytes = StateBytes.Write(new World().T.Ledger);
        Assert.Equal("RASL", System.Text.Encoding.ASCII.GetString(bytes, 0, 4));
        // A ledger under rules version 1 still writes format 3, byte for byte as before rules were versioned (so old
        // journals keep their state hashes); format 4 is written from rules version 2 on (RulesVersionTests).
        Assert.Equal("03000000", Convert.ToHexStringLower(bytes, 4, 4));
        Assert.Equal(3, Ledger.RulesVersion1Format);
        Assert.Equal(4, Ledger.RulesVersion2Format);
        Assert.Equal(5, Ledger.SnapshotFormatVersion);
    }

    [Fact]
    public void Read_state_rejects_a_wrong_magic()
    {
        var bytes = StateBytes.Write(new World().T.Ledger);
        bytes[0] ^= 0xFF;
        var e = Assert.Throws<InvalidDataException>(() => StateBytes.Read(bytes, Options));
        Assert.Contains("not a RamPay ledger state", e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(-1)]
    public void Read_state_rejects_an_unknown_version(int version)
    {
        var bytes = StateBytes.Write(new World().T.Ledger);
        BitConverter.TryWriteBytes(bytes.AsSpan(4), version);
        var e = Assert.Throws<InvalidDataException>(() => StateBytes.Read(bytes, Options));
        Assert.Contains("version", e.Message);
    }

    [Fact]
    public void Read_state_rejects_truncated_bytes_at_every_section()
    {
        var bytes = StateBytes.Write(new World().T.Ledger);
        var cuts = new List<int> { 0, 1, 3, 4, 7, 8, 20, 83, 84, 85, 100, 200 };
        for (int i = 1; i <= 8; i++) cuts.Add(bytes.Length * i / 9);
        cuts.AddRange([bytes.Length - 90, bytes.Length - 9, bytes.Length - 8, bytes.Length - 1]);
        foreach (int cut in cuts)
        {
            var ex = Record.Exception(() => StateBytes.Read(bytes[..cut], Options));
            Assert.True(ex is EndOfStreamException, $"cut at {cut} of {bytes.Length}: {ex?.GetType().Name ?? "no exception"}");
        }
    }

    [Fact]
    public void Read_state_rejects_trailing_bytes()
    {
        var bytes = StateBytes.Write(new World().T.Ledger);
        var e = Assert.Throws<InvalidDataException>(() => StateBytes.Read([.. bytes, 0], Options));
        Assert.Contains("trailing", e.Message);
    }

    [Fact]
    public void Read_state_rejects_a_state_larger_than_the_options_allow()
    {
        var bytes = StateBytes.Write(new World().T.Ledger);
        Assert.Throws<InvalidDataException>(() => StateBytes.Read(bytes, Options with { MaxAccounts = 5 }));
        Assert.Throws<InvalidDataException>(() => StateBytes.Read(bytes, Options with { MaxOpenHolds = 3 }));
        Assert.Throws<InvalidDataException>(() => StateBytes.Read(bytes, Options with { IdempotencyMaxKeys = 2 }));
        Assert.Throws<InvalidDataException>(() => StateBytes.Read(bytes, Options with { MaxPayments = 3, InitialPaymentCapacity = 0 }));
    }

    [Fact]
    public void Read_state_with_a_corrupted_balance_fails_the_invariants()
    {
        var l = new TestLedger(Options);
        long f = l.OpenFunding(Usd), a = l.OpenWallet(Usd);
        l.Deposit(f, a, 100, Usd);
        var bytes = StateBytes.Write(l.Ledger);
        // 4 magic + 4 version + 2 longs (clock, commands) + 4 Int128 totals + 2 longs (key counters) + 4 account count
        // = 108, where account 1 starts: id, owner, created_at, debits_posted.
        const int debitsPostedOfAccount1 = 108 + 3 * 8;
        Assert.Equal(100, BitConverter.ToInt64(bytes, debitsPostedOfAccount1));
        BitConverter.TryWriteBytes(bytes.AsSpan(debitsPostedOfAccount1), 99L);
        Assert.Throws<InvariantViolationException>(() => StateBytes.Read(bytes, Options));
    }
}
