using RamPay.Core;

namespace RamPay.Engine.Tests;

/// <summary>
/// The payments' cold tier (rules version 3), proven on the cold path: at most 1 % of the payments driven stay in memory
/// (open holds aside, which are hot state), captures, voids and refunds of payments that left memory long ago work as on
/// recent ones and are served from the cold tier (counted), reads of old payments and deep history pages are served, and the
/// state equals the all-in-memory ledger's, live, replayed and after a restart.
/// </summary>
public class ColdPaymentTests
{
    private const int Ring = 256;
    private const int HotPayments = 256;
    private const int ChunkShift = 6; // 64 payments a chunk

    private static EngineOptions Options(string dir, long startMs, bool coldPayments = true, bool snapshotOnStop = false, long snapshotEvery = 0) => new()
    {
        DataDirectory = dir, Clock = new SteppingClock(startMs, stepMs: 1).Now, RingSize = Ring, MaxBatchSize = Ring, TickIntervalMs = 0,
        SnapshotEveryCommands = snapshotEvery, SnapshotsToKeep = 2, SnapshotOnStop = snapshotOnStop, Fsync = false,
        // The old ceiling, far below what is driven: rules version 3 lifts it.
        Ledger = new LedgerOptions { MaxAccounts = 64, MaxPayments = 10_000, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16 },
        RulesVersion = 3, IdempotencyKeyBudget = 1_000_000,
        ColdTier = new ColdTierOptions
        {
            HotMaxKeys = 8 * Ring, GenerationCommands = 2 * Ring, SegmentKeys = 4096,
            Payments = coldPayments ? new ColdPaymentOptions { HotPayments = HotPayments, ChunkShift = ChunkShift, MaxInFlight = 4, SegmentBytes = 1 << 20 } : null,
        },
    };

    private sealed class Read<T>(Func<IReadOnlyLedger, T> read) : ILedgerQuery
    {
        public T? Value;
        public void Execute(IReadOnlyLedger ledger) => Value = read(ledger);
        public void Complete() { }
    }

    private static T Ask<T>(RamPayEngine engine, Func<IReadOnlyLedger, T> read)
    {
        var q = new Read<T>(read);
        Assert.True(engine.WaitForCompletion(engine.Query(q), TimeSpan.FromMinutes(2)));
        return q.Value!;
    }

    private static Dictionary<long, CommandResult> Run(RamPayEngine engine, RecordingCompletion completion, List<(Command Command, byte[]? Note)> commands, long firstCorrelation)
    {
        for (int i = 0; i < commands.Count; i++) engine.Submit(commands[i].Command, firstCorrelation + i, commands[i].Note);
        Ask(engine, _ => 0);
        var results = new Dictionary<long, CommandResult>();
        foreach (var c in completion.Completed) if (c.Correlation >= firstCorrelation && c.Correlation < firstCorrelation + commands.Count) results[c.Correlation] = c.Result;
        Assert.Equal(commands.Count, results.Count);
        return results;
    }

    [Fact]
    public void Old_payments_are_captured_voided_refunded_and_read_from_the_cold_tier_and_the_state_equals_the_all_in_memory_one()
    {
        var k = new Commands();
        var rng = new Random(17);
        using var dir = new TempDataDir();
        var completion = new RecordingCompletion();
        string live;
        PaymentTierStats stats;
        long driven;
        var note = new PaymentNote("an old note", "https://example.com/hook").Encode();
        int oldOps;
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_000_000), completion))
        {
            // 1. 150,000 payments (15 x the configured ceiling): deposits, transfers (every 100th with a note), 1 in 20 an
            //    authorization with a 30-day hold.
            var phase1 = new List<(Command, byte[]?)> { (k.Open(AccountFlags.Funding), null) };
            for (int w = 0; w < 8; w++) phase1.Add((k.Open(AccountFlags.DebitsMustNotExceedCredits), null));
            for (int w = 0; w < 8; w++) phase1.Add((k.Move(CommandType.Deposit, 1, 2 + w, 1_000_000_000_000), null));
            while (phase1.Count < 150_000)
            {
                long from = 2 + rng.Next(8), to = 2 + (from - 2 + 1 + rng.Next(7)) % 8;
                if (phase1.Count % 20 == 0) phase1.Add((k.Move(CommandType.Authorize, from, to, rng.Next(100, 10_000)) with { Argument = 30L * 24 * 3600 * 1000 }, null));
                else phase1.Add((k.Move(CommandType.Transfer, from, to, rng.Next(100, 10_000)), phase1.Count % 100 == 1 ? note : null));
            }
            var r1 = Run(engine, completion, phase1, 0);
            Assert.All(r1.Values, r => Assert.True(r.IsOk, r.ToString()));
            long paymentsAfter1 = Ask(engine, l => l.PaymentCount);
            Assert.True(paymentsAfter1 > 140_000);

            // 2. Captures (half), voids and refunds of payments at least 50,000 payments old (long gone from memory), each
            //    followed by two new transfers so that chunks keep leaving memory.
            var auths = Enumerable.Range(0, phase1.Count).Where(i => phase1[i].Item1.Type == CommandType.Authorize && r1[i].Id < paymentsAfter1 - 50_000).ToList();
            var transfers = Enumerable.Range(0, phase1.Count).Where(i => phase1[i].Item1.Type == CommandType.Transfer && r1[i].Id < paymentsAfter1 - 50_000).ToList();
            var phase2 = new List<(Command, byte[]?)>();
            var expect = new List<(int Index, ResultCode Code, long PaymentId, string What)>();
            void Old(Command c, ResultCode code, long id, string what)
            {
                expect.Add((phase2.Count, code, id, what));
                phase2.Add((c, null));
                for (int j = 0; j < 2; j++) phase2.Add((k.Move(CommandType.Transfer, 2 + rng.Next(4), 6 + rng.Next(4), rng.Next(1, 100)), null));
            }
            for (int a = 0; a < auths.Count; a++)
            {
                long id = r1[auths[a]].Id;
                long amount = phase1[auths[a]].Item1.Amount;
                if (a % 3 == 0) Old(k.OnPayment(CommandType.Capture, id, amount / 2), ResultCode.Ok, id, "capture");
                else if (a % 3 == 1) Old(k.OnPayment(CommandType.Void, id), ResultCode.Ok, id, "void");
            }
            for (int t = 0; t < 3_000; t++)
            {
                int i = transfers[rng.Next(transfers.Count)];
                long id = r1[i].Id;
                // Refunds are cumulative: the whole amount at most, then amount_exceeds_captured.
                Old(k.OnPayment(CommandType.Refund, id, phase1[i].Item1.Amount + 1), ResultCode.AmountExceedsCaptured, id, "refund above");
            }
            // Captures and voids of old settled payments (transfers): refused exactly as for a recent one, from the cold tier.
            // (An open authorization never leaves memory: open holds are hot state, bounded by MaxOpenHolds.)
            for (int t = 0; t < 1_000; t++)
            {
                int i = transfers[rng.Next(transfers.Count)];
                Old(k.OnPayment(t % 2 == 0 ? CommandType.Capture : CommandType.Void, r1[i].Id), ResultCode.PaymentNotAuthorized, r1[i].Id, "capture/void of a transfer");
            }
            var refunded = transfers.Take(1_500).ToList();
            foreach (int i in refunded) Old(k.OnPayment(CommandType.Refund, r1[i].Id, phase1[i].Item1.Amount), ResultCode.Ok, r1[i].Id, "refund");
            foreach (int i in refunded.Take(300)) Old(k.OnPayment(CommandType.Refund, r1[i].Id, 1), ResultCode.AmountExceedsCaptured, r1[i].Id, "refund again");
            oldOps = expect.Count;
            var r2 = Run(engine, completion, phase2, 1_000_000);
            foreach (var (index, code, id, what) in expect) Assert.True(r2[1_000_000 + index].Code == code, $"{what} of old payment {id}: {r2[1_000_000 + index]}");

            // 3. Reads of old payments: status, note, fraud-free, and a deep history page costs what a shallow one does.
            var capturedId = r1[auths[0]].Id;
            var old = Ask(engine, l => l.GetPayment(capturedId));
            Assert.Equal(PaymentStatus.Captured, old.Status);
            Assert.Equal(phase1[auths[0]].Item1.Amount / 2, old.Captured);
            int noted = Enumerable.Range(0, 2_000).First(i => phase1[i].Item2 is not null);
            Assert.Equal("an old note", Ask(engine, l => l.GetPaymentNote(r1[noted].Id))?.Description);
            var voided = Ask(engine, l => l.GetPayment(r1[auths[1]].Id));
            Assert.Equal(PaymentStatus.Voided, voided.Status);
            var untouched = transfers.Skip(1_500).Take(20).ToList(); // maybe refused a refund above its amount, never changed
            foreach (int i in untouched)
            {
                var p = Ask(engine, l => l.GetPayment(r1[i].Id));
                Assert.Equal((PaymentStatus.Posted, phase1[i].Item1.Amount, 0L), (p.Status, p.Amount, p.Refunded));
            }

            stats = engine.PaymentTier;
            driven = Ask(engine, l => l.PaymentCount);
            long openHolds = Ask(engine, l => l.OpenHoldCount);
            // The cold path, not a bigger hot one: at most 1 % of the payments driven in memory, open holds aside.
            Assert.True(stats.Ledger.ResidentPayments - openHolds <= driven / 100, $"{stats.Ledger.ResidentPayments} resident ({openHolds} open holds) of {driven}");
            engine.Stop();
            live = engine.LedgerAfterStop.ComputeStateHash();
        }
        // Every old capture, void and refund was served from the cold tier (the first touch of each loads it).
        Assert.True(stats.Ledger.ColdLoads >= 3_000, $"cold loads {stats.Ledger.ColdLoads} for {oldOps} old operations");
        // Each load came from the prefetched copy or, when back-pressure retired a generation after the prefetch looked (more
        // often on a loaded machine), from the writer's own read: both from the cold tier.
        Assert.Equal(stats.Ledger.ColdLoads, stats.Ledger.PrefetchHits + stats.Ledger.WriterColdReads);
        Assert.True(stats.Ledger.PrefetchHits >= stats.Ledger.ColdLoads / 2, $"prefetch hits {stats.Ledger.PrefetchHits} of {stats.Ledger.ColdLoads} loads");
        Assert.True(stats.Ledger.ReadColdReads >= 10, $"reads served from the cold tier {stats.Ledger.ReadColdReads}");
        Assert.True(stats.ColdRecordsWritten > driven - 2_000, $"{stats.ColdRecordsWritten} records written for {driven} payments");
        Assert.Null(stats.ColdFault);
        Assert.True(driven > 10 * 10_000, "driven past the old ceiling");

        // The same journal replayed by an all-in-memory ledger (no cold tier, no prefetch) reaches the same state.
        var (memory, _, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, Options(dir.Path, 0, coldPayments: false).Ledger, useSnapshot: false, []);
        Assert.Equal(live, memory.ComputeStateHash());
        memory.VerifyInvariants();

        // Deep history pages by cursor: the same pages as the all-in-memory ledger's, from the restarted cold engine.
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_800_000_000_000)))
        {
            Assert.Equal(live, engine.Recovery.StateHash); // the whole journal replayed through the prefetch step
            Assert.True(engine.PaymentTier.Ledger.ColdLoads > 1_000, $"replay served {engine.PaymentTier.Ledger.ColdLoads} payments from the cold tier");
            long cursor = 0;
            var want = new long[50];
            for (int page = 0; page < 200; page++)
            {
                long before = cursor;
                var got = Ask(engine, l => { var into = new long[50]; int n = l.History(3, before, into); return into[..n]; });
                int m = memory.History(3, before, want);
                Assert.Equal(want[..m], got);
                if (m == 0) break;
                cursor = got[^1];
            }
        }
    }

    /// <summary>
    /// A crash around the payment generations, as numbered steps: the cold tier ahead of the snapshot recovery starts from
    /// (generations written after it), and behind it (generations lost): both recover the state, and old payments still work.
    /// </summary>
    [Fact]
    public void A_crash_with_the_payment_tier_ahead_of_or_behind_the_snapshot_recovers_the_same_state()
    {
        var k = new Commands();
        var rng = new Random(3);
        using var dir = new TempDataDir();
        string cold = Path.Combine(dir.Path, "cold");
        string saved = Path.Combine(dir.Path, "cold-at-step-1");
        var traffic = new List<(Command, byte[]?)> { (k.Open(AccountFlags.Funding), null) };
        for (int w = 0; w < 4; w++) traffic.Add((k.Open(AccountFlags.DebitsMustNotExceedCredits), null));
        for (int w = 0; w < 4; w++) traffic.Add((k.Move(CommandType.Deposit, 1, 2 + w, 1_000_000_000_000), null));
        while (traffic.Count < 40_000)
            traffic.Add(traffic.Count % 10 == 0
                ? (k.Move(CommandType.Authorize, 2 + rng.Next(2), 4 + rng.Next(2), 500) with { Argument = 30L * 24 * 3600 * 1000 }, null)
                : (k.Move(CommandType.Transfer, 2 + rng.Next(2), 4 + rng.Next(2), 100), null));

        // 1. Run 1 applies 20,000 commands and stops with a snapshot: most payments are only in the cold tier.
        var first = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_000_000, snapshotOnStop: true), first))
            Run(engine, first, traffic[..20_000], 0);
        // 2. A copy of the cold tier as it is now (the disk if run 2's writes never reached it).
        CopyDirectory(cold, saved);
        var auth = first.Completed.Where(c => c.Correlation % 10 == 0 && c.Correlation > 100 && c.Correlation < 5_000).Select(c => c.Result.Id).ToList();

        // 3. Run 2 captures old authorizations, adds 20,000 commands, and "crashes" (no snapshot at stop): the cold tier now
        //    holds versions newer than the snapshot (captured authorizations among them).
        string live;
        var second = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_100_000)))
        {
            var oldTransfers = first.Completed.Where(c => c.Correlation % 10 == 5 && c.Correlation > 100 && c.Correlation < 5_000).Select(c => c.Result.Id);
            var more = auth.Take(200).Select(id => (k.OnPayment(CommandType.Capture, id, 100), (byte[]?)null))
                .Concat(oldTransfers.Take(200).Select(id => (k.OnPayment(CommandType.Refund, id, 40), (byte[]?)null)))
                .Concat(traffic[20_000..]).ToList();
            for (int i = 0; i < more.Count; i++) engine.Submit(more[i].Item1, 100_000 + i, more[i].Item2);
            Ask(engine, _ => 0);
            Assert.True(engine.PaymentTier.Ledger.ColdLoads >= 200);
            engine.Stop();
            live = engine.LedgerAfterStop.ComputeStateHash();
        }

        // 4. Recovery with the cold tier ahead: the versions after the snapshot are cut, the replay writes them again.
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_200_000)))
            Assert.Equal(live, engine.Recovery.StateHash);

        // 5. A reader without the cold tier replays the whole journal (the snapshot holds only the resident payments).
        var warnings = new List<string>();
        var (tool, toolSnapshot, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, Options(dir.Path, 0, coldPayments: false).Ledger, useSnapshot: true, warnings);
        Assert.Equal(0, toolSnapshot);
        Assert.Equal(live, tool.ComputeStateHash());

        // 6. Recovery with the cold tier behind (run 2's writes lost): the replay rebuilds them; an old authorization
        //    captured in run 2 is captured again by the replay, and a void of it is now refused as it was live.
        Directory.Delete(cold, recursive: true);
        CopyDirectory(saved, cold);
        var after = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_300_000), after))
        {
            Assert.Equal(live, engine.Recovery.StateHash);
            long ticket = engine.Submit(k.OnPayment(CommandType.Void, auth[0]), correlation: 7);
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(30)));
            long ticket2 = engine.Submit(k.OnPayment(CommandType.Void, auth[300]), correlation: 8);
            Assert.True(engine.WaitForCompletion(ticket2, TimeSpan.FromSeconds(30)));
        }
        Assert.Equal(ResultCode.PaymentNotAuthorized, after.Completed.Single(c => c.Correlation == 7).Result.Code);
        Assert.Equal(ResultCode.Ok, after.Completed.Single(c => c.Correlation == 8).Result.Code);
    }

    /// <summary>Without rules version 3 the old ceiling holds (too_many_payments), so old journals keep their results.</summary>
    [Fact]
    public void Under_rules_version_2_the_ceiling_still_refuses_and_under_3_it_is_lifted()
    {
        foreach (int rules in new[] { 2, 3 })
        {
            var k = new Commands();
            using var dir = new TempDataDir();
            var completion = new RecordingCompletion();
            var options = Options(dir.Path, 1_700_000_000_000) with { RulesVersion = rules, Ledger = Options(dir.Path, 0).Ledger with { MaxPayments = 100 } };
            if (rules == 2) options = options with { ColdTier = options.ColdTier! with { Payments = null } };
            using var engine = RamPayEngine.Start(options, completion);
            var list = new List<(Command, byte[]?)> { (k.Open(AccountFlags.Funding), null), (k.Open(AccountFlags.DebitsMustNotExceedCredits), null) };
            for (int i = 0; i < 150; i++) list.Add((k.Move(CommandType.Deposit, 1, 2, 10), null));
            var results = Run(engine, completion, list, 0);
            int refused = results.Values.Count(r => r.Code == ResultCode.TooManyPayments);
            Assert.Equal(rules == 2 ? 50 : 0, refused);
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(d.Replace(from, to));
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(f, f.Replace(from, to), overwrite: true);
    }
}
