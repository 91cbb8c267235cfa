using System.Diagnostics;
using RamPay.Core;
using RamPay.Sinks;
using RamPay.Storage;

namespace RamPay.Engine.Tests;

/// <summary>
/// The sinks' replica (<see cref="LedgerFollower"/>) under rules version 3 with the payments' cold tier: it follows the writer's
/// payment log read-only at its own position (<see cref="RamPayEngine.SinksPaymentTier"/>), as the snapshotter's replica does,
/// so it holds about the writer's hot payments, not every payment; and the changes it hands the sinks (rows, events) are,
/// field for field, those of an all-in-memory replica of the same journal. Proven on the cold path: 256 payments hot (chunks
/// of 64) for about 110,000 driven, with refunds, captures and voids of payments long gone from memory, the snapshotter
/// following the same log at another position, and a sink that restarts far behind the writer.
/// </summary>
public class ColdPaymentSinksTests
{
    /// <summary>The snapshot test's world (256 payments hot in chunks of 64, a snapshot every 20,000 off the writer), with the sinks' follower reserved.</summary>
    private static EngineOptions Options(string dir, long startMs) => ColdPaymentSnapshotTests.Options(dir, startMs) with { SinksFollowPaymentLog = true };

    /// <summary>The sinks' ledger options without a tier: every payment in memory (the baseline, and what the sinks did before).</summary>
    private static LedgerOptions AllInMemory => new() { MaxAccounts = 64, MaxPayments = 10_000, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16 };

    /// <summary>A sink's follower on its own thread, behind the writer, collecting every change and the most payments it held.</summary>
    private sealed class SinkThread
    {
        private readonly Thread _thread;
        private volatile bool _stop;
        private Exception? _fault;
        public readonly List<Change> Changes = [];
        public long MaxResident, ColdReads, Last;

        public SinkThread(RamPayEngine engine, long afterSequence, long until)
        {
            var ledger = AllInMemory with { ColdPayments = engine.SinksPaymentTier ?? throw new InvalidOperationException("no sinks' payment tier") };
            _thread = new Thread(() =>
            {
                try
                {
                    using var follower = new LedgerFollower(engine.Options.SnapshotDirectory, engine.Options.JournalDirectory, ledger, afterSequence);
                    var batch = new ChangeBatch(512);
                    var replica = (Ledger)follower.Ledger;
                    while (follower.LastSequence < until && !_stop)
                    {
                        batch.Clear();
                        if (follower.Poll(engine.CompletedSequence, 512, batch) == 0) { Thread.Sleep(1); continue; }
                        foreach (var c in batch.Changes) Changes.Add(c);
                        MaxResident = Math.Max(MaxResident, replica.PaymentTier.ResidentPayments);
                    }
                    ColdReads = replica.PaymentTier.WriterColdReads + replica.PaymentTier.ReadColdReads;
                    Last = follower.LastSequence;
                }
                catch (Exception e)
                {
                    _fault = e;
                }
            }) { IsBackground = true, Name = "test-sink-follower" };
            _thread.Start();
        }

        public void Join()
        {
            var clock = Stopwatch.StartNew();
            while (_thread.IsAlive && clock.Elapsed < TimeSpan.FromMinutes(3)) _thread.Join(100);
            _stop = true;
            _thread.Join();
            if (_fault is not null) throw new Xunit.Sdk.XunitException("the sinks' follower failed: " + _fault);
        }
    }

    internal static void AssertSame(in Change want, in Change got)
    {
        string at = $"change ({want.Sequence}, {want.Index})";
        Assert.True(want.Sequence == got.Sequence && want.Index == got.Index && want.Kind == got.Kind && want.TimestampMs == got.TimestampMs,
            $"{at}: got ({got.Sequence}, {got.Index}, {got.Kind})");
        Assert.True(want.Command.Equals(got.Command), at + ": the command");
        Assert.True(want.Result.Equals(got.Result), $"{at}: result {got.Result}, the all-in-memory replica says {want.Result}");
        Assert.True(PaymentCodec.SamePersisted(want.Payment, got.Payment), $"{at}: payment {got.Payment.Id} {got.Payment.Status}/{got.Payment.Refunded}, want {want.Payment.Status}/{want.Payment.Refunded}");
        Assert.True(PaymentCodec.SamePersisted(want.Parent, got.Parent), $"{at}: parent {got.Parent.Id} refunded {got.Parent.Refunded}, want {want.Parent.Refunded}");
        Assert.True(want.From.Equals(got.From) && want.To.Equals(got.To), at + ": the accounts");
        Assert.Equal(want.Note?.Description, got.Note?.Description);
        Assert.Equal(want.Note?.WebhookUrl, got.Note?.WebhookUrl);
        Assert.Equal(want.FraudModelVersion, got.FraudModelVersion);
    }

    [Fact]
    public void The_sinks_replica_follows_the_payment_log_in_bounded_memory_and_hands_on_the_all_in_memory_changes()
    {
        var k = new Commands();
        var rng = new Random(31);
        using var dir = new TempDataDir();
        var note = new PaymentNote("a note in the cold tier", "https://example.com/hook").Encode();
        List<long> transfers, auths;
        SinkThread first, behind;
        long end1, end2, bound, driven;

        // 1. Run 1: a sink from the journal's start follows the writer on its own thread while 60,000 new payments (1 in 100 an
        //    authorization with a 30-day hold, 1 in 100 a transfer with a note) and then 40,000 commands on old payments go through.
        var completion = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_000_000), completion))
        {
            Assert.NotNull(engine.SinksPaymentTier);
            end1 = 100_001; // + the upgrade to rules version 3, the journal's first record
            first = new SinkThread(engine, 0, end1);
            var phase1 = ColdPaymentSnapshotTests.NewPayments(k, rng, note);
            var r1 = ColdPaymentSnapshotTests.Run(engine, completion, phase1, 0);
            transfers = [.. Enumerable.Range(0, 40_000).Where(i => phase1[i].Item1.Type == CommandType.Transfer).Select(i => r1[i].Id)];
            auths = [.. Enumerable.Range(0, 40_000).Where(i => phase1[i].Item1.Type == CommandType.Authorize).Select(i => r1[i].Id)];
            ColdPaymentSnapshotTests.Run(engine, completion, ColdPaymentSnapshotTests.OldPaymentTraffic(k, rng, transfers, auths, 40_000), 100_000);
            first.Join();
            Assert.Null(engine.Fault);
            Assert.Equal(end1, first.Last);
            driven = engine.PaymentTier.Ledger.Payments;
            Assert.True(driven > 90_000, $"{driven} payments");
            Assert.True(engine.PaymentTier.Ledger.ColdLoads > 5_000, $"{engine.PaymentTier.Ledger.ColdLoads} old payments brought back by the writer");
            // Open holds are hot state (at most one per authorization); the rest: the hot window, a chunk or two the writer has
            // not yet made durable, and old payments changed but not yet re-written: at most 1 % of the payments driven.
            bound = auths.Count + 600 + driven / 100;
            Assert.True(first.MaxResident <= bound, $"the sinks' replica held up to {first.MaxResident} payments (bound {bound}) of {driven}");
            Assert.True(first.ColdReads > 5_000, $"the sinks' replica read {first.ColdReads} payments from the cold tier");
            engine.Stop(); // no stop snapshot: the restart replays a tail
        }

        // 2. Run 2: a sink that was far behind (checkpoint 70,000, before the restart point and before every kept snapshot)
        //    follows while 25,000 more commands on old payments go through: it reads the versions of its own position, which
        //    the writer has since re-written (the log keeps them for it from the moment it is opened).
        var after = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_200_000), after))
        {
            end2 = end1 + 25_000;
            behind = new SinkThread(engine, 70_000, end2);
            ColdPaymentSnapshotTests.Run(engine, after, ColdPaymentSnapshotTests.OldPaymentTraffic(k, rng, transfers, auths.Skip(auths.Count / 2).ToList(), 25_000), 200_000);
            behind.Join();
            Assert.Null(engine.Fault);
            Assert.Equal(end2, behind.Last);
            Assert.True(behind.MaxResident <= bound, $"the behind sink's replica held up to {behind.MaxResident} payments (bound {bound})");
            Assert.True(behind.ColdReads > 1_000, $"the behind sink's replica read {behind.ColdReads} payments from the cold tier");
            engine.Stop();
        }

        // 3. The all-in-memory replica of the same journal (what the sinks ran before): the same changes, field for field.
        using var memory = new LedgerFollower(dir.Snapshots, dir.Journal, AllInMemory, afterSequence: 0);
        var batch = new ChangeBatch(4096);
        int i1 = 0, i2 = 0;
        while (memory.LastSequence < end2)
        {
            batch.Clear();
            Assert.True(memory.Poll(end2, 4096, batch) > 0, "the journal ended early");
            foreach (var c in batch.Changes)
            {
                if (c.Sequence <= end1) AssertSame(c, first.Changes[i1++]);
                if (c.Sequence > 70_000) AssertSame(c, behind.Changes[i2++]);
            }
        }
        Assert.Equal(first.Changes.Count, i1);
        Assert.Equal(behind.Changes.Count, i2);
        Assert.True(((Ledger)memory.Ledger).PaymentTier.ResidentPayments >= driven, "the baseline holds every payment");
    }
}
