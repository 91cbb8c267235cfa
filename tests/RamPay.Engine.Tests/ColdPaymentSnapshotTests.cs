using System.Diagnostics;
using RamPay.Core;
using RamPay.Journal;
using RamPay.Storage;

namespace RamPay.Engine.Tests;

/// <summary>
/// Periodic snapshots off the writer with the payments' cold tier on (rules version 3): the snapshotter's replica follows the
/// writer's payment log (<see cref="ColdPaymentTier.Follower"/>): it drops what the log holds durably at its own position and
/// reads old payments back at that position, so it holds about the writer's hot payments, not every payment, and its
/// snapshots, with the log cut at their sequence, are the all-in-memory state. Proven on the cold path: 256 payments hot
/// (chunks of 64) for about 95,000 driven.
/// </summary>
public class ColdPaymentSnapshotTests
{
    private const int Ring = 256;
    private const int HotPayments = 256;
    private const int ChunkShift = 6;
    private const int SnapshotEvery = 20_000;

    internal static EngineOptions Options(string dir, long startMs) => new()
    {
        DataDirectory = dir, Clock = new SteppingClock(startMs, stepMs: 1).Now, RingSize = Ring, MaxBatchSize = Ring, TickIntervalMs = 0,
        SnapshotEveryCommands = SnapshotEvery, SnapshotOffWriter = true, SnapshotsToKeep = 2, SnapshotOnStop = false, Fsync = false,
        Ledger = new LedgerOptions { MaxAccounts = 64, MaxPayments = 10_000, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16 },
        RulesVersion = 3, IdempotencyKeyBudget = 1_000_000,
        ColdTier = new ColdTierOptions
        {
            HotMaxKeys = 8 * Ring, GenerationCommands = 2 * Ring, SegmentKeys = 4096,
            Payments = new ColdPaymentOptions { HotPayments = HotPayments, ChunkShift = ChunkShift, MaxInFlight = 4, SegmentBytes = 1 << 20 },
        },
    };

    /// <summary>The same journal, every payment and key in memory (no cold tier, no prefetch).</summary>
    private static LedgerOptions AllInMemory => new() { MaxAccounts = 64, MaxPayments = 10_000, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16 };

    private static void WaitFor(Func<bool> condition, string what) => EngineTestWaits.WaitFor(condition, what, 180);

    /// <summary>
    /// A funding account, eight wallets each given 10^12, then new payments between them up to 60,000 commands: every 100th
    /// an authorization with a 30-day hold, every 100th transfer (another offset) with <paramref name="note"/>.
    /// </summary>
    internal static List<(Command, byte[]?)> NewPayments(Commands k, Random rng, byte[] note)
    {
        var list = new List<(Command, byte[]?)> { (k.Open(AccountFlags.Funding), null) };
        for (int w = 0; w < 8; w++) list.Add((k.Open(AccountFlags.DebitsMustNotExceedCredits), null));
        for (int w = 0; w < 8; w++) list.Add((k.Move(CommandType.Deposit, 1, 2 + w, 1_000_000_000_000), null));
        while (list.Count < 60_000)
        {
            long from = 2 + rng.Next(8), to = 2 + (from - 2 + 1 + rng.Next(7)) % 8;
            if (list.Count % 100 == 7) list.Add((k.Move(CommandType.Authorize, from, to, rng.Next(100, 10_000)) with { Argument = 30L * 24 * 3600 * 1000 }, null));
            else list.Add((k.Move(CommandType.Transfer, from, to, rng.Next(100, 10_000)), list.Count % 100 == 1 ? note : null));
        }
        return list;
    }
    internal static Dictionary<long, CommandResult> Run(RamPayEngine engine, RecordingCompletion completion, List<(Command Command, byte[]? Note)> commands, long firstCorrelation)
    {
        long ticket = 0;
        for (int i = 0; i < commands.Count; i++) ticket = engine.Submit(commands[i].Command, firstCorrelation + i, commands[i].Note);
        Assert.True(engine.WaitForCompletion(ticket, TimeSpan.FromMinutes(3)));
        var results = new Dictionary<long, CommandResult>();
        foreach (var c in completion.Completed) if (c.Correlation >= firstCorrelation && c.Correlation < firstCorrelation + commands.Count) results[c.Correlation] = c.Result;
        Assert.Equal(commands.Count, results.Count);
        return results;
    }

    private static long[] SnapshotSequences(string snapshots) => EngineTestWaits.SnapshotSequences(snapshots);

    internal static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(d.Replace(from, to));
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(f, f.Replace(from, to), overwrite: true);
    }

    /// <summary>Old-payment traffic: refunds (partial, whole, above), captures and voids of old authorizations, refused ones, and new transfers between.</summary>
    internal static List<(Command, byte[]?)> OldPaymentTraffic(Commands k, Random rng, List<long> transfers, List<long> auths, int count)
    {
        var list = new List<(Command, byte[]?)>();
        int a = 0;
        while (list.Count < count)
        {
            int r = rng.Next(10);
            long transfer = transfers[rng.Next(transfers.Count)];
            if (r == 0) list.Add((k.OnPayment(CommandType.Refund, transfer, 1 + rng.Next(50)), null));
            else if (r == 1) list.Add((k.OnPayment(CommandType.Refund, transfer, 1_000_000), null)); // above: refused, changes nothing
            else if (r == 2 && a < auths.Count) list.Add((k.OnPayment(a % 2 == 0 ? CommandType.Capture : CommandType.Void, auths[a++], 50), null));
            else if (r == 3) list.Add((k.OnPayment(CommandType.Capture, transfer, 10), null)); // not an authorization: refused
            else list.Add((k.Move(CommandType.Transfer, 2 + rng.Next(4), 6 + rng.Next(4), 1 + rng.Next(100)), null));
        }
        return list;
    }

    [Fact]
    public void The_snapshotter_follows_the_payment_log_in_bounded_memory_and_a_crash_recovers_the_all_in_memory_state()
    {
        var k = new Commands();
        var rng = new Random(23);
        using var dir = new TempDataDir();
        var note = new PaymentNote("kept in the cold tier", "https://example.com/hook").Encode();
        var completion = new RecordingCompletion();
        string live;
        long bound;
        List<long> transfers, auths;
        long journalEnd;

        // 1. Run 1: 60,000 new payments (every 100th transfer with a note, 1 in 100 an authorization with a 30-day hold), then
        //    40,000 commands of which about 40 % act on payments long gone from memory; a snapshot every 20,000 off the writer.
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_000_000), completion))
        {
            Assert.True(engine.SnapshotsOffWriter);
            var phase1 = NewPayments(k, rng, note);
            var r1 = Run(engine, completion, phase1, 0);
            Assert.All(r1.Values, r => Assert.True(r.IsOk, r.ToString()));
            transfers = [.. Enumerable.Range(0, 40_000).Where(i => phase1[i].Item1.Type == CommandType.Transfer).Select(i => r1[i].Id)];
            auths = [.. Enumerable.Range(0, 40_000).Where(i => phase1[i].Item1.Type == CommandType.Authorize).Select(i => r1[i].Id)];
            Run(engine, completion, OldPaymentTraffic(k, rng, transfers, auths, 40_000), 100_000);
            journalEnd = 100_001; // + the upgrade to rules version 3, the journal's first record
            WaitFor(() => engine.Counters.LastSnapshotSequence == 100_000, "the snapshot at 100,000");
            Assert.Null(engine.Fault);
            long driven = engine.PaymentTier.Ledger.Payments;
            Assert.True(driven > 90_000, $"{driven} payments");
            // The replica's memory: about the writer's hot payments, not every payment. Open holds (at most one per authorization
            // made) are hot state on both; the rest at most 1 % of the payments driven.
            var (resident, maxResident) = engine.SnapshotterPayments;
            bound = auths.Count + 600 + driven / 100;
            Assert.True(maxResident > 0 && maxResident <= bound, $"the snapshotter's replica held up to {maxResident} payments (bound {bound}) of {driven}");
            Assert.True(engine.PaymentTier.Ledger.ColdLoads > 5_000, $"{engine.PaymentTier.Ledger.ColdLoads} old payments brought back");
            // 2. Crash: no stop snapshot.
            engine.Stop();
            live = engine.LedgerAfterStop.ComputeStateHash();
        }
        long[] kept = SnapshotSequences(dir.Snapshots);
        Assert.Equal([80_000L, 100_000], kept);

        // 3. Each kept snapshot, with the payment log cut at its sequence (what a restart from it does, on a copy), is the state
        //    the journal alone replays to at that sequence, every payment and note field for field, from a small resident part.
        foreach (long sequence in kept)
        {
            using var copy = new TempDataDir();
            CopyDirectory(dir.Path, copy.Path);
            var (memory, _, _, last) = EngineRecovery.Load(copy.Snapshots, copy.Journal, AllInMemory, useSnapshot: false, sequence, []);
            Assert.Equal(sequence, last);
            using var keys = new KeySegmentStore(new KeySegmentStoreOptions { Directory = Path.Combine(copy.Path, "cold"), KeyCapacity = 1_000_000, SegmentKeys = 4096, Fsync = false });
            using var payments = new PaymentLogStore(new PaymentLogStoreOptions { Directory = Path.Combine(copy.Path, "cold", "payments"), SegmentBytes = 1 << 20, Fsync = false });
            var options = AllInMemory with
            {
                ColdKeys = new ColdKeyTier { Store = keys, HotMaxKeys = 8 * Ring, GenerationCommands = 2 * Ring, Follower = true },
                ColdPayments = new ColdPaymentTier { Store = payments, HotPayments = HotPayments, ChunkShift = ChunkShift },
            };
            Assert.True(SnapshotStore.TryLoadLatest(copy.Snapshots, sequence, out var info, out var payload));
            Assert.Equal(sequence, info.Sequence);
            var loaded = Ledger.ReadState(new MemoryStream(payload), options);
            Assert.Equal(memory.ComputeStateHash(), loaded.ComputeStateHash());
            long resident = loaded.PaymentTier.ResidentPayments;
            Assert.True(resident <= bound && resident < memory.PaymentCount / 20, $"snapshot {sequence} holds {resident} of {memory.PaymentCount} payments");
            for (long id = 1; id <= memory.PaymentCount; id++)
            {
                var want = memory.GetPayment(id);
                var got = loaded.GetPayment(id);
                Assert.True(PaymentCodec.SamePersisted(want, got), $"snapshot {sequence}: payment {id} is {got.Status}/{got.Refunded}, the journal says {want.Status}/{want.Refunded}");
                if (id % 100 == 0) Assert.Equal(memory.GetPaymentNote(id)?.Description, loaded.GetPaymentNote(id)?.Description);
            }
            Assert.True(loaded.PaymentTier.ReadColdReads > memory.PaymentCount / 2, "the payments were read from the cold tier");
        }

        // 4. Restart: recovery loads the newest periodic snapshot (the replica's), replays only the tail, and reaches the crashed
        //    run's state; old payments keep working, through further snapshots off the writer.
        var after = new RecordingCompletion();
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_200_000), after))
        {
            Assert.Equal(100_000, engine.Recovery.SnapshotSequence);
            Assert.Equal(journalEnd - 100_000, engine.Recovery.RecordsReplayed);
            Assert.Equal(live, engine.Recovery.StateHash);
            Run(engine, after, OldPaymentTraffic(k, rng, transfers, auths.Skip(auths.Count / 2).ToList(), 25_000), 200_000);
            WaitFor(() => engine.Counters.LastSnapshotSequence == journalEnd + SnapshotEvery, "a snapshot after the restart");
            Assert.Null(engine.Fault);
            Assert.True(engine.SnapshotterPayments.MaxResident <= bound, $"the replica held up to {engine.SnapshotterPayments.MaxResident} payments after the restart");
            engine.Stop();
            live = engine.LedgerAfterStop.ComputeStateHash();
        }

        // 5. The whole journal replayed by an all-in-memory ledger reaches the same state; and so does a restart from the
        //    snapshot the replica took after the first restart.
        var (all, _, _, _) = EngineRecovery.Load(dir.Snapshots, dir.Journal, AllInMemory, useSnapshot: false, []);
        Assert.Equal(live, all.ComputeStateHash());
        using (var engine = RamPayEngine.Start(Options(dir.Path, 1_700_000_400_000)))
        {
            Assert.Equal(journalEnd + SnapshotEvery, engine.Recovery.SnapshotSequence);
            Assert.Equal(live, engine.Recovery.StateHash);
        }
    }
}
