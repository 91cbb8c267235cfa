using System.Collections.Concurrent;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Postgres.Tests;

/// <summary>
/// A real engine writes a journal; a hub with a <see cref="PostgresSink"/> turns it into rows. The rows must be the
/// ledger's state exactly: checked column by column (<see cref="Mirror"/>), by <c>rampay db verify</c>, and against
/// the rows <c>rampay db rebuild</c> writes from the same journal.
/// </summary>
[Trait("Category", "Integration")]
public sealed class SinkCorrectnessTests
{
    private static readonly Currency Usd = Currency.USD, Eur = Currency.EUR;

    [Fact]
    public async Task Every_kind_of_command_ends_up_as_the_rows_the_ledger_implies()
    {
        await using var db = await TestDatabase.CreateAsync();
        using var run = EngineRun.Start();
        var c = new Commands("rich");

        void Ok((long Sequence, CommandResult Result) r, long id, string what)
        {
            Assert.True(r.Result.Code == ResultCode.Ok && !r.Result.Replayed && r.Result.Id == id, $"{what}: expected ok id {id}, got {r.Result}");
        }
        long Refused((long Sequence, CommandResult Result) r, ResultCode code, string what)
        {
            Assert.True(r.Result.Code == code, $"{what}: expected {code}, got {r.Result}");
            return r.Sequence;
        }

        Ok(run.Execute(c.Open(AccountFlags.Funding, Usd)), 1, "USD funding");
        Ok(run.Execute(c.Open(AccountFlags.Funding, Eur)), 2, "EUR funding");
        var (registerAlice, aliceProfile) = c.Register("alice@example.com", "Alice Liddell", Usd);
        var aliceRegistered = run.Execute(registerAlice, aliceProfile);
        Ok(aliceRegistered, 1, "alice");
        Assert.Equal(3, aliceRegistered.Result.SecondaryId);
        var (registerBob, bobProfile) = c.Register("bob@example.com", "Bob", Usd);
        Ok(run.Execute(registerBob, bobProfile), 2, "bob");
        var (registerCarol, carolProfile) = c.Register("carol@example.com", "Carol", Eur, UserRole.Admin);
        Ok(run.Execute(registerCarol, carolProfile), 3, "carol");
        var (again, againProfile) = c.Register("Alice@Example.com", "Another Alice", Usd);
        Refused(run.Execute(again, againProfile), ResultCode.EmailTaken, "an e-mail taken");
        Ok(run.Execute(c.Open(AccountFlags.DebitsMustNotExceedCredits, Usd, owner: 1)), 6, "alice's second wallet");
        const long alice = 3, bob = 4, carol = 5, aliceSavings = 6;

        var deposit = c.Move(CommandType.Deposit, 1, alice, 10_000, Usd);
        Ok(run.Execute(deposit), 1, "deposit to alice");
        Ok(run.Execute(c.Move(CommandType.Deposit, 1, bob, 5_000, Usd)), 2, "deposit to bob");
        Ok(run.Execute(c.Move(CommandType.Deposit, 2, carol, 7_000, Eur)), 3, "deposit to carol");
        Refused(run.Execute(c.Move(CommandType.Deposit, 1, carol, 100, Usd)), ResultCode.CurrencyMismatch, "USD into a EUR wallet");

        var t1 = c.Move(CommandType.Transfer, alice, bob, 2_500, Usd);
        byte[] t1Note = Commands.Note("invoice 17", "https://shop.example/hooks/17");
        Ok(run.Execute(t1, t1Note), 4, "alice pays bob");
        Refused(run.Execute(c.Move(CommandType.Transfer, bob, alice, 1_000_000, Usd)), ResultCode.InsufficientFunds, "more than bob has");
        Refused(run.Execute(c.Move(CommandType.Transfer, alice, carol, 100, Usd)), ResultCode.CurrencyMismatch, "USD to EUR");
        Ok(run.Execute(c.SetFrozen(bob, true)), bob, "freeze bob");
        Refused(run.Execute(c.Move(CommandType.Transfer, alice, bob, 100, Usd)), ResultCode.AccountFrozen, "to a frozen wallet");
        Ok(run.Execute(c.SetFrozen(bob, false)), bob, "unfreeze bob");
        Ok(run.Execute(c.SetFrozen(aliceSavings, true)), aliceSavings, "freeze alice's savings");

        var a1 = run.Execute(c.Move(CommandType.Authorize, alice, bob, 3_000, Usd), Commands.Note("hold for order 9", null));
        Ok(a1, 5, "authorize A1");
        var a1Capture = run.Execute(c.OnPayment(CommandType.Capture, 5, 1_200));
        Ok(a1Capture, 5, "capture 1200 of A1");
        Ok(run.Execute(c.OnPayment(CommandType.Refund, 5, 500)), 6, "refund 500 of A1");
        var r2 = run.Execute(c.OnPayment(CommandType.Refund, 5, 300));
        Ok(r2, 7, "refund 300 of A1");
        Refused(run.Execute(c.OnPayment(CommandType.Refund, 5, 1_000)), ResultCode.AmountExceedsCaptured, "refund more than is left");
        Refused(run.Execute(c.OnPayment(CommandType.Void, 5)), ResultCode.PaymentNotAuthorized, "void a captured payment");

        Ok(run.Execute(c.Move(CommandType.Authorize, bob, alice, 700, Usd)), 8, "authorize A2");
        Ok(run.Execute(c.OnPayment(CommandType.Void, 8)), 8, "void A2");

        Ok(run.Execute(c.Move(CommandType.Authorize, alice, bob, 900, Usd, holdMs: 60_000)), 9, "authorize A3 (60 s)");
        Ok(run.Execute(c.Move(CommandType.Authorize, bob, alice, 400, Usd, holdMs: 30_000)), 10, "authorize A4 (30 s)");
        // A4 lapses as the ledger's clock reaches the next command: a transfer (the expiry comes first in its record).
        run.AdvanceClock(45_000);
        var t2 = run.Execute(c.Move(CommandType.Transfer, alice, bob, 10, Usd));
        Ok(t2, 11, "a transfer 45 s later");
        // A3 lapses on a Tick.
        run.AdvanceClock(30_000);
        var tick = run.Execute(Commands.Tick());
        Assert.Equal(ResultCode.Ok, tick.Result.Code);
        Refused(run.Execute(c.OnPayment(CommandType.Capture, 9)), ResultCode.HoldExpired, "capture an expired hold");

        Ok(run.Execute(c.OnPayment(CommandType.Refund, 4, 1_000)), 12, "refund 1000 of T1");
        var r4 = run.Execute(c.OnPayment(CommandType.Refund, 4, 500));
        Ok(r4, 13, "refund 500 of T1");

        // Retries with the same key: the first result again, nothing new; a key reused for another amount: refused.
        var replay = run.Execute(t1, t1Note);
        Assert.True(replay.Result is { Code: ResultCode.Ok, Replayed: true, Id: 4 }, replay.Result.ToString());
        Assert.True(run.Execute(registerAlice, aliceProfile).Result is { Code: ResultCode.Ok, Replayed: true, Id: 1 });
        Assert.True(run.Execute(deposit).Result is { Code: ResultCode.Ok, Replayed: true, Id: 1 });
        Refused(run.Execute(deposit with { Amount = 10_001 }), ResultCode.ExistsWithDifferentAmount, "a key reused for another amount");
        var last = run.Execute(Commands.Tick());

        long lastTimestamp = run.DurableTimestampMs;
        var ledger = run.Stop();
        long head = run.DurableSequence;
        Assert.Equal(last.Sequence, head);

        // The sink catches up from the start of the journal, in small batches (so records are split across transactions).
        using (var sink = new PostgresSink(db.ConnectionString))
        using (var hub = run.StartHub(sink, batchChanges: 5))
        {
            await Mirror.WaitForCheckpointAsync(hub, head);
            Assert.Equal(0, hub.Sinks[0].Lag(head, lastTimestamp).Records);
            Assert.False(hub.IsOverLagLimit(out _));
        }

        await Mirror.AssertMatchesAsync(db, ledger, head, lastTimestamp);
        var report = Mirror.AssertVerifyAgrees(db, run.DataDirectory, EngineRun.LedgerOptions, head);
        Assert.Equal((3, 6, 13), (report.Users, report.Accounts, report.Payments));

        // The rows a person would look at, literally.
        var a1Row = (await db.RowsAsync("SELECT kind, status, amount, captured, refunded, description, webhook_url, created_sequence, journal_sequence, expires_at IS NOT NULL FROM payments WHERE id = 5")).Single();
        Assert.Equal(new object?[] { "authorization", "captured", 3_000L, 1_200L, 800L, "hold for order 9", null, a1.Sequence, r2.Sequence, true }, a1Row);
        Assert.Equal(new object?[] { "voided", 0L, 0L }, (await db.RowsAsync("SELECT status, captured, refunded FROM payments WHERE id = 8")).Single());
        // Each expired hold carries the record whose time made it lapse.
        Assert.Equal(new object?[] { "expired", 0L, tick.Sequence }, (await db.RowsAsync("SELECT status, captured, journal_sequence FROM payments WHERE id = 9")).Single());
        Assert.Equal(new object?[] { "expired", 0L, t2.Sequence }, (await db.RowsAsync("SELECT status, captured, journal_sequence FROM payments WHERE id = 10")).Single());
        Assert.Equal(new object?[] { "transfer", "posted", 2_500L, 2_500L, 1_500L, "invoice 17", "https://shop.example/hooks/17", r4.Sequence },
            (await db.RowsAsync("SELECT kind, status, amount, captured, refunded, description, webhook_url, journal_sequence FROM payments WHERE id = 4")).Single());

        // Entries: the capture posts the captured part (its own record), holds post nothing, debit = credit.
        Assert.Equal(
            new[] { new object?[] { a1Capture.Sequence, (short)0, alice, "debit", 1_200L }, new object?[] { a1Capture.Sequence, (short)1, bob, "credit", 1_200L } },
            (await db.RowsAsync("SELECT journal_sequence, entry_index, account_id, direction, amount FROM ledger_entries WHERE payment_id = 5 ORDER BY entry_index")).ToArray());
        Assert.Equal(0, await db.ScalarAsync("SELECT count(*) FROM ledger_entries WHERE payment_id IN (8, 9, 10)"));
        Assert.Equal(2 * 10, await db.ScalarAsync("SELECT count(*) FROM ledger_entries")); // 3 deposits, 2 transfers, 1 capture, 4 refunds
        Assert.Equal(0, await db.ScalarAsync("SELECT sum(amount) FILTER (WHERE direction = 'debit') - sum(amount) FILTER (WHERE direction = 'credit') FROM ledger_entries"));

        Assert.Equal(
            new[] { new object?[] { 6L, 5L, 500L }, new object?[] { 7L, 5L, 300L }, new object?[] { 12L, 4L, 1_000L }, new object?[] { 13L, 4L, 500L } },
            (await db.RowsAsync("SELECT id, payment_id, amount FROM refunds ORDER BY id")).ToArray());

        // Alice: credited 10000 + 500 + 300 + 1000 + 500, debited 2500 + 1200 + 10, nothing held any more.
        Assert.Equal(new object?[] { 3_710L, 12_300L, 0L, 0L, 8_590L, 8_590L, false, 1L },
            (await db.RowsAsync("SELECT debits_posted, credits_posted, debits_pending, credits_pending, balance, available, frozen, owner_user_id FROM accounts WHERE id = 3")).Single());
        var aliceAccount = ledger.GetAccount(alice);
        Assert.Equal((aliceAccount.DebitsPosted, aliceAccount.CreditsPosted, aliceAccount.Posted), (3_710L, 12_300L, 8_590L));
        Assert.Equal(new object?[] { true, 1L, true }, (await db.RowsAsync("SELECT frozen, owner_user_id, is_wallet FROM accounts WHERE id = 6")).Single());
        Assert.Equal(new object?[] { false, true, false }, (await db.RowsAsync("SELECT is_wallet, is_funding, owner_user_id IS NOT NULL FROM accounts WHERE id = 1")).Single());

        Assert.Equal(
            new[]
            {
                new object?[] { 1L, "alice@example.com", "Alice Liddell", "user", 3L },
                new object?[] { 2L, "bob@example.com", "Bob", "user", 4L },
                new object?[] { 3L, "carol@example.com", "Carol", "admin", 5L },
            },
            (await db.RowsAsync("SELECT id, email, name, role, wallet_account_id FROM users ORDER BY id")).ToArray());
        Assert.Equal(new object?[] { head, lastTimestamp }, (await db.RowsAsync("SELECT journal_sequence, journal_time FROM sink_checkpoint")).Select(r => new object?[] { r[0], Mirror.Ms(r[1]) }).Single());
        // The password hashes the profiles carried stay in the ledger: no row of any table holds one.
        foreach (var table in new[] { "users", "accounts", "payments", "ledger_entries", "refunds" })
            Assert.Equal(0, await db.ScalarAsync($"SELECT count(*) FROM {table} t WHERE row_to_json(t)::text LIKE '%pbkdf2%'"));
    }

    /// <summary>
    /// Seeded random streams of every command type, followed live by a hub (the sink writes while the engine
    /// appends, in batches of a seeded size): the rows mirror the ledger, <c>db verify</c> agrees, and
    /// <c>db rebuild</c> of the same journal into another database writes identical rows (the batching does not show).
    /// </summary>
    [Theory]
    [InlineData(1, 1, 800)]
    [InlineData(2, 3, 1_500)]
    [InlineData(3, 17, 2_500)]
    [InlineData(4, 64, 2_500)]
    [InlineData(5, 1000, 2_500)]
    public async Task Random_command_streams_followed_live_give_the_rows_of_the_ledger_and_of_a_rebuild(int seed, int batchChanges, int count)
    {
        await using var db = await TestDatabase.CreateAsync();
        using var run = EngineRun.Start();
        var steps = RandomWorkload.Build(seed, count);
        using var sink = new PostgresSink(db.ConnectionString);
        using var hub = run.StartHub(sink, batchChanges);

        RandomWorkload.Run(run, steps.Take(count / 2));
        await Task.Delay(50); // let the sink write some of it while the rest arrives
        RandomWorkload.Run(run, steps.Skip(count / 2));
        long lastTimestamp = run.DurableTimestampMs;
        var ledger = run.Stop();
        long head = run.DurableSequence;
        Assert.Equal(steps.Count, head);
        await Mirror.WaitForCheckpointAsync(hub, head);
        Assert.True(hub.Sinks[0].Failures == 0, hub.Sinks[0].Error?.Message);

        await Mirror.AssertMatchesAsync(db, ledger, head, lastTimestamp);
        Mirror.AssertVerifyAgrees(db, run.DataDirectory, EngineRun.LedgerOptions, head);

        // The stream did exercise what it should.
        var statuses = (await db.RowsAsync("SELECT kind || '/' || status, count(*) FROM payments GROUP BY 1")).ToDictionary(r => (string)r[0]!, r => (long)r[1]!);
        foreach (var expected in new[] { "deposit/posted", "transfer/posted", "authorization/captured", "authorization/voided", "authorization/expired", "refund/posted" })
            Assert.True(statuses.GetValueOrDefault(expected) > 0, $"seed {seed}: no {expected} payment ({string.Join(", ", statuses)})");
        Assert.True(await db.ScalarAsync("SELECT count(*) FROM payments WHERE kind = 'authorization' AND captured < amount AND status = 'captured'") > 0, "no partial capture");
        Assert.True(await db.ScalarAsync("SELECT count(*) FROM (SELECT payment_id FROM refunds GROUP BY 1 HAVING count(*) > 1) r") > 0, "no payment refunded twice");
        Assert.True(await db.ScalarAsync("SELECT count(*) FROM payments WHERE description IS NOT NULL") > 0, "no payment note");
        Assert.True(await db.ScalarAsync("SELECT count(*) FROM users") > 8, "no user registered during the run");

        await using var rebuilt = await TestDatabase.CreateAsync();
        var stats = DatabaseTools.Rebuild(rebuilt.ConnectionString, run.DataDirectory, EngineRun.LedgerOptions, batchChanges: 4096);
        Assert.Equal(head, stats.LastSequence);
        Assert.Equal(await Mirror.DumpAsync(rebuilt), await Mirror.DumpAsync(db));
    }

    /// <summary>
    /// A transaction holds about <c>BatchChanges</c> changes even when records carry hold expirations: the follower
    /// reads at most as many records as the batch has room for, and the expirations those records carry may take the
    /// batch past it, never further (it used to keep filling the batch, doubling it, until the journal ran out: the
    /// whole backlog in one batch and one transaction). So memory and transaction size stay bounded during a catch-up.
    /// </summary>
    [Fact]
    public async Task Batches_stay_at_BatchChanges_even_when_records_carry_expirations()
    {
        await using var db = await TestDatabase.CreateAsync();
        using var run = EngineRun.Start();
        // Wallets that authorize one another with holds of a second, and the clock jumping now and then: about one
        // record in ten carries expirations, a handful at a time.
        var c = new Commands("expiring");
        var steps = new List<Step> { new(c.Open(AccountFlags.Funding, Usd)) };
        for (int i = 0; i < 20; i++) steps.Add(new Step(c.Open(AccountFlags.DebitsMustNotExceedCredits, Usd, owner: 1)));
        for (int i = 0; i < 20; i++) steps.Add(new Step(c.Move(CommandType.Deposit, 1, 2 + i, 1_000_000, Usd)));
        var rng = new Random(21);
        while (steps.Count < 3_000)
        {
            long from = 2 + rng.Next(20), to = 2 + (from - 2 + 1 + rng.Next(19)) % 20;
            steps.Add(new Step(c.Move(CommandType.Authorize, from, to, rng.Next(1, 100), Usd, holdMs: 1_000), null, rng.Next(10) == 0 ? rng.Next(500, 3_000) : 0));
        }
        RandomWorkload.Run(run, steps);
        var ledger = run.Stop();

        const int BatchChanges = 40;
        var sink = new RecordingSink(new PostgresSink(db.ConnectionString));
        using (var hub = run.StartHub(sink, batchChanges: BatchChanges))
            await Mirror.WaitForCheckpointAsync(hub, steps.Count);

        await Mirror.AssertMatchesAsync(db, ledger, steps.Count);
        long expirations = await db.ScalarAsync("SELECT count(*) FROM payments WHERE status = 'expired'");
        // The most expirations any BatchChanges consecutive records carry: what one read can add beyond the room.
        long mostInAWindow = await db.ScalarAsync($"""
            SELECT coalesce(max(s), 0) FROM (
                SELECT sum(n) OVER (ORDER BY journal_sequence RANGE BETWEEN {BatchChanges - 1} PRECEDING AND CURRENT ROW) AS s
                FROM (SELECT journal_sequence, count(*) AS n FROM payments WHERE status = 'expired' GROUP BY journal_sequence) e) w
            """);
        Assert.True(expirations > 1_000, $"only {expirations} holds expired: the workload does not test this");
        var sizes = sink.Writes.ToArray();
        Assert.True(sizes.Max() <= BatchChanges + mostInAWindow,
            $"a batch of {sizes.Max()} changes with BatchChanges {BatchChanges} (at most {mostInAWindow} expirations in {BatchChanges} records); sizes: {string.Join(", ", sizes.Take(50))}");
        Assert.True(sizes.Length >= (steps.Count + expirations) / (BatchChanges + mostInAWindow), $"{sizes.Length} batches for {steps.Count} records");
    }

    /// <summary>A real sink that also notes how many changes each write was given.</summary>
    private sealed class RecordingSink(PostgresSink inner) : IChangeSink
    {
        public ConcurrentQueue<int> Writes { get; } = new();
        public string Name => inner.Name;
        public SinkCheckpoint Open() => inner.Open();

        public void Write(ReadOnlySpan<Change> changes, SinkCheckpoint through)
        {
            inner.Write(changes, through);
            Writes.Enqueue(changes.Length);
        }

        public void Dispose() => inner.Dispose();
    }
}
