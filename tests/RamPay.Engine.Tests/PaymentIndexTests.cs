using RamPay.Storage;

namespace RamPay.Engine.Tests;

/// <summary>
/// The payment log's compact index (issue 10: ~0.25 bytes a payment instead of 8): a position per block of 64 ids for the
/// first versions the log wrote in id order, exact entries for everything else. Checked against a plain dictionary over a
/// log shaped like the store's (chunks in id order with open holds skipped, segments that end mid-block, pool records of
/// re-written payments and of holds written late), and the format-1 import (8 bytes a payment) of the same positions.
/// Its checkpoint layout is pinned by <see cref="PaymentIndexCheckpointTests"/>' golden files.
/// </summary>
public class PaymentIndexTests
{
    private const long Record = PaymentLogStore.PaymentRecordBytes;

    /// <summary>
    /// Appends generations as <c>PaymentLogStore.Write</c> does: a chunk of <paramref name="chunk"/> ids in order (about one in
    /// 50 an open hold, not written), then the pool (re-written older ids, and the holds written late); a new segment when
    /// <paramref name="segmentBytes"/> is reached. Returns every record (id, position) in log order.
    /// </summary>
    private static List<(long Id, long Position)> Log(int chunks, int chunk, long segmentBytes, int seed)
    {
        var rng = new Random(seed);
        var log = new List<(long, long)>();
        long segment = 1, offset = PaymentLogStore.HeaderBytes;
        var held = new List<long>();
        void Append(long id)
        {
            if (offset + Record > segmentBytes) { segment++; offset = PaymentLogStore.HeaderBytes; }
            log.Add((id, segment << 40 | offset));
            offset += Record;
        }
        long next = 1;
        for (int g = 0; g < chunks; g++)
        {
            if (rng.Next(4) == 0) offset += 8 * (1 + rng.Next(20)); // a note before the chunk's payments
            for (int j = 0; j < chunk; j++, next++)
                if (rng.Next(50) == 0) held.Add(next);
                else Append(next);
            for (int k = rng.Next(30); k > 0; k--) Append(1 + rng.NextInt64(next - 1)); // captures, refunds of older ones
            for (int k = held.Count - 1; k >= 0; k--)
                if (rng.Next(3) == 0) { Append(held[k]); held.RemoveAt(k); }
        }
        return log;
    }

    [Theory]
    [InlineData(1, 4096)]          // segments of 33 records: most blocks split by a segment's end
    [InlineData(2, 1 << 20)]       // segments of ~8,700 records
    [InlineData(3, 256L << 20)]    // the default: one segment
    public void Every_id_maps_to_its_newest_record_and_first_versions_in_order_cost_a_block_each(int seed, long segmentBytes)
    {
        var log = Log(chunks: 40, chunk: 1024, segmentBytes, seed); // chunks aligned to blocks, as the store's (2^16 ids)
        var index = new PaymentIndex();
        var newest = new Dictionary<long, long>();
        foreach (var (id, position) in log)
        {
            long superseded = index.Add(id, position);
            Assert.Equal(newest.TryGetValue(id, out long before) ? before + 1 : 0, superseded);
            newest[id] = position;
            Assert.Equal(position + 1, index.Get(id));
        }
        for (long id = 0; id <= 41_000; id++)
            Assert.Equal(newest.TryGetValue(id, out long p) ? p + 1 : 0, index.Get(id));
        Assert.Equal(newest.Count, index.CountPayments());
        // The same record again (a start from a checkpoint copied after it), or an older one: nothing changes.
        foreach (var (id, position) in log.Take(2_000)) Assert.Equal(-1, index.Add(id, position));
        for (long id = 1; id <= 41_000; id++) Assert.Equal(newest.TryGetValue(id, out long p) ? p + 1 : 0, index.Get(id));

        // Memory: re-written ids and holds written late are exact, and so is the rest of a block a segment's end split.
        long rewritten = log.Count - newest.Count, late = 0, highest = 0;
        var seen = new HashSet<long>();
        foreach (var (id, _) in log)
            if (seen.Add(id))
            {
                if (id < highest) late++;
                highest = Math.Max(highest, id);
            }
        long splits = log.Select(l => l.Position >> 40).Distinct().Count() - 1;
        Assert.True(index.ExactEntries <= rewritten + late + splits * 63, $"{index.ExactEntries} exact entries ({rewritten} re-written, {late} late, {splits} segment ends)");
        Assert.True(late > 100 && rewritten > 100, "the log has holds written late and re-written payments");
        if (segmentBytes == 256L << 20)
            Assert.True(index.Bytes < 300_000 + 48 * index.ExactEntries, $"{index.Bytes} bytes for 40,960 payments and {index.ExactEntries} exact entries");
    }

    [Fact]
    public void Readers_on_other_threads_see_every_record_added_before_they_began()
    {
        var log = Log(chunks: 300, chunk: 1000, 1 << 20, seed: 9);
        var index = new PaymentIndex();
        long added = 0;
        var positions = new long[log.Count];
        string? failure = null;
        using var stop = new CancellationTokenSource();
        var reader = new Thread(() =>
        {
            var rng = new Random(4);
            while (!stop.IsCancellationRequested && failure is null)
            {
                long upTo = Volatile.Read(ref added);
                if (upTo == 0) continue;
                int i = rng.Next((int)upTo);
                // A later version of the same id may already be indexed: the position found is this one or later, never none.
                long found = index.Get(log[i].Id);
                if (found < log[i].Position + 1) failure = $"record {i} (id {log[i].Id}) at {log[i].Position}: found {found}";
            }
        }) { IsBackground = true };
        reader.Start();
        for (int i = 0; i < log.Count; i++)
        {
            index.Add(log[i].Id, log[i].Position);
            Volatile.Write(ref added, i + 1);
        }
        stop.Cancel();
        reader.Join();
        Assert.Null(failure);
    }

    [Fact]
    public void A_format_1_index_imported_block_by_block_gives_the_same_positions()
    {
        var log = Log(chunks: 60, chunk: 1024, 1 << 18, seed: 5);
        var v1 = new long[1 << 20]; // id - 1 -> newest position + 1, as format 1 stored it
        foreach (var (id, position) in log) v1[id - 1] = position + 1;
        var index = new PaymentIndex();
        for (long b = 0; b < 60 * 1024 / 64; b++) index.ImportBlock(b * 64, v1.AsSpan((int)(b * 64), 64));
        for (long id = 1; id <= 61_500; id++) Assert.Equal(v1[id - 1], index.Get(id));
        Assert.Equal(v1.Count(p => p != 0), index.CountPayments());
        // Re-written ids sit in the runs of their blocks (the gaps they leave are filled), so only they and the holds are exact.
        long rewritten = log.Count - v1.Count(p => p != 0);
        Assert.True(index.ExactEntries <= rewritten + 61_440 / 25 + 63L * (log[^1].Position >> 40), $"{index.ExactEntries} exact entries, {rewritten} re-written");
        // And the live path carries on from an imported block.
        long last = log[^1].Position;
        Assert.Equal(0, index.Add(61_441, last + Record));
        Assert.Equal(last + Record + 1, index.Get(61_441));
    }
}
