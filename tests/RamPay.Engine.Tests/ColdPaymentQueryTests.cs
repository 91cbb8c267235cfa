using RamPay.Core;

namespace RamPay.Engine.Tests;

/// <summary>
/// Reads of old payments (rules version 3) are served without disk I/O on the writer: a query whose read needs a payment only
/// the cold tier holds goes round the ring again with it named, and the prefetch stage reads it (a history page: the
/// account's chain from it). Proven by the writer's count of its own store reads for queries (0) against thousands of
/// reads of payments long gone from memory, with answers equal to the all-in-memory ledger's.
/// </summary>
public class ColdPaymentQueryTests
{
    private const int Ring = 256;

    private static EngineOptions Options(string dir) => new()
    {
        DataDirectory = dir, Clock = new SteppingClock(1_700_000_000_000, stepMs: 1).Now, RingSize = Ring, MaxBatchSize = Ring, TickIntervalMs = 0,
        SnapshotEveryCommands = 0, SnapshotOnStop = false, Fsync = false,
        Ledger = AllInMemory, RulesVersion = 3, IdempotencyKeyBudget = 1_000_000,
        ColdTier = new ColdTierOptions
        {
            HotMaxKeys = 8 * Ring, GenerationCommands = 2 * Ring, SegmentKeys = 4096,
            Payments = new ColdPaymentOptions { HotPayments = 256, ChunkShift = 6, MaxInFlight = 4, SegmentBytes = 1 << 20 },
        },
    };

    private static LedgerOptions AllInMemory => new() { MaxAccounts = 64, MaxPayments = 10_000, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16 };

    private sealed record PaymentRead(Payment Payment, string? Note);

    private static Task<PaymentRead> Get(RamPayEngine engine, long id) =>
        engine.QueryAsync(l => new PaymentRead(l.GetPayment(id), l.GetPaymentNote(id)?.Description));

    /// <summary>One history page of <paramref name="size"/> below <paramref name="before"/>, each payment read, as the server's pages do.</summary>
    private static Task<Payment[]> Page(RamPayEngine engine, long account, long before, int size) =>
        engine.QueryAsync(l =>
        {
            var ids = new long[size];
            int n = l.History(account, before, ids);
            return ids.AsSpan(0, n).ToArray().Select(l.GetPayment).ToArray();
        });

    [Fact]
    public async Task Reads_of_old_payments_and_history_pages_do_no_disk_io_on_the_writer_and_equal_the_all_in_memory_answers()
    {
        var k = new Commands();
        var rng = new Random(41);
        using var dir = new TempDataDir();
        var note = new PaymentNote("read back off the writer", null).Encode();
        var reads = new Dictionary<long, PaymentRead>();
        var pages = new List<(long Account, long Before, Payment[] Items)>();
        long payments;
        using (var engine = RamPayEngine.Start(Options(dir.Path)))
        {
            // 1. 30,000 payments among 8 wallets (every 50th with a note), 256 of them kept in memory.
            long ticket = engine.Submit(k.Open(AccountFlags.Funding));
            for (int w = 0; w < 8; w++) ticket = engine.Submit(k.Open(AccountFlags.DebitsMustNotExceedCredits));
            for (int w = 0; w < 8; w++) ticket = engine.Submit(k.Move(CommandType.Deposit, 1, 2 + w, 1_000_000_000_000));
            for (int i = 0; i < 30_000; i++)
            {
                long from = 2 + rng.Next(8), to = 2 + (from - 2 + 1 + rng.Next(7)) % 8;
                ticket = engine.Submit(k.Move(CommandType.Transfer, from, to, rng.Next(100, 10_000)), 0, i % 50 == 3 ? note : null);
            }
            Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromMinutes(3)));
            payments = engine.PaymentTier.Ledger.Payments;

            // 2. While refunds of old payments go through (the writer changes, re-writes and retires them meanwhile), reads of
            //    old payments: answered, and never from the disk on the writer thread.
            var traffic = Task.Run(() =>
            {
                long last = 0;
                for (int i = 0; i < 20_000; i++) last = engine.Submit(k.OnPayment(CommandType.Refund, 9 + rng.Next(20_000), 1 + i % 7));
                Assert.True(engine.WaitForCompletion(last, TimeSpan.FromMinutes(3)));
            });
            var concurrent = new List<Task<PaymentRead>>();
            for (int i = 0; i < 1_000 && !traffic.IsCompleted; i++) concurrent.Add(Get(engine, 17 + i * 20));
            var answers = await Task.WhenAll(concurrent);
            await traffic;
            for (int i = 0; i < answers.Length; i++) Assert.Equal(17 + i * 20, answers[i].Payment.Id);
            var busy = engine.PaymentTier;
            Assert.Equal(0, busy.Ledger.ReadColdReads);

            // 3. Quiet: 3,000 reads of random payments (almost all cold), and 60 history pages of 50 by cursor through two
            //    accounts plus their first pages.
            for (int i = 0; i < 3_000; i++)
            {
                long id = 1 + rng.Next((int)payments);
                reads[id] = await Get(engine, id);
            }
            foreach (long account in new long[] { 3, 7 })
            {
                long before = 0;
                for (int p = 0; p < 60; p++)
                {
                    var items = await Page(engine, account, before, 50);
                    pages.Add((account, before, items));
                    if (items.Length == 0) break;
                    before = items[^1].Id;
                }
            }
            var quiet = engine.PaymentTier;
            // The writer read the disk for none of them; the prefetch stage read them, and the writer used its copies.
            Assert.Equal(0, quiet.Ledger.ReadColdReads);
            Assert.True(quiet.QueryPrefetchHits > 5_000, $"{quiet.QueryPrefetchHits} cold reads served from the prefetch stage's copies");
            Assert.True(quiet.QueryPrefetchReads >= quiet.QueryPrefetchHits / 2, $"{quiet.QueryPrefetchReads} payments read by the prefetch stage");
            // At most one extra round per read, and per page (the prefetch stage walks the page's chain, not one payment a round).
            long retries = quiet.QueryRetries - busy.QueryRetries;
            Assert.True(retries > 0 && retries <= 3_000 + 2 * pages.Count, $"{retries} queries sent round again for {3_000 + pages.Count}");
            payments = quiet.Ledger.Payments; // with the refunds (each one a payment)
            Assert.True(quiet.Ledger.ResidentPayments < payments / 20, $"{quiet.Ledger.ResidentPayments} of {payments} resident");
            engine.Stop();
        }

        // 4. The same journal, every payment in memory: the same answers.
        var (memory, _, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, AllInMemory, useSnapshot: false, []);
        Assert.Equal(payments, memory.PaymentCount);
        foreach (var (id, read) in reads)
        {
            Assert.True(PaymentCodec.SamePersisted(memory.GetPayment(id), read.Payment), $"payment {id}: refunded {read.Payment.Refunded}, want {memory.GetPayment(id).Refunded}");
            Assert.Equal(memory.GetPaymentNote(id)?.Description, read.Note);
        }
        Assert.Contains(reads.Values, r => r.Note is not null);
        foreach (var (account, before, items) in pages)
        {
            var ids = new long[50];
            int n = memory.History(account, before, ids);
            Assert.Equal(ids.AsSpan(0, n).ToArray(), items.Select(p => p.Id).ToArray());
            foreach (var p in items) Assert.True(PaymentCodec.SamePersisted(memory.GetPayment(p.Id), p), $"page item {p.Id}");
        }
        Assert.True(pages.Count(p => p.Items.Length == 50) >= 100, "deep pages were read");
    }
}
