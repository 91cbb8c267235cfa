using RamPay.Sinks;

namespace RamPay.Events.Tests;

/// <summary>
/// The event log writes its batches into the page cache and fsyncs at most every EventLogOptions.FsyncInterval: a
/// power loss may roll its last batches back. These tests show that it then re-derives exactly what it lost from its
/// own checkpoint, and that journal retirement is only ever told the fsynced checkpoint.
/// </summary>
public sealed class EventLogPowerLossTests : IDisposable
{
    private static readonly Lazy<Change[]> ScenarioChanges = new(() => LedgerChanges.Run(Scenario.Commands()));
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private EventLog NewLog(string name, TimeProvider clock, TimeSpan fsyncInterval) => new(new EventLogOptions
    {
        Directory = Path.Combine(_dir.Path, name),
        Clock = clock,
        FsyncInterval = fsyncInterval,
        Retention = TimeSpan.FromDays(100_000),
    });

    private static FakeClock Clock() => new();

    private static List<(string Id, byte[] Json)> All(EventLog log) =>
        [.. log.ReadAfter(EventPosition.None, 100_000).Select(e => (e.EventId, e.Json.ToArray()))];

    [Fact]
    public void A_power_loss_rolls_back_whole_batches_with_their_checkpoint_and_the_log_re_derives_them_to_the_same_bytes_and_rows()
    {
        var changes = ScenarioChanges.Value;
        var batches = LedgerChanges.Batches(changes, 3);
        Assert.True(batches.Count >= 6, "enough batches to lose some");

        // 1. A reference log is given every batch and never crashes.
        using var reference = NewLog("reference", Clock(), TimeSpan.Zero);
        foreach (var (c, through) in batches) reference.Append(c, through);
        var expected = All(reference);

        // 2. The live log fsyncs its first batch only (the interval is a minute on a clock that stands still): every later
        //    batch is a write into the page cache. After each batch, note the segment's length: where a power loss that
        //    kept the disk's writes up to that batch would cut it.
        var clock = Clock();
        using var live = NewLog("live", clock, TimeSpan.FromMinutes(1));
        string segment = Assert.Single(live.SegmentPaths());
        var lengthAfter = new List<long>();
        var bytesAfter = new List<byte[]>();
        foreach (var (c, through) in batches)
        {
            live.Append(c, through);
            lengthAfter.Add(new FileInfo(segment).Length);
            bytesAfter.Add(File.ReadAllBytes(segment));
        }
        // 3. Only the first batch is known to be on the disk for good, and that is all retirement may count.
        Assert.Equal(batches[0].Through, live.FsyncedCheckpoint);
        Assert.Equal(batches[0].Through.Sequence, new EventLogSink(live).FsyncedThroughSequence);
        Assert.Equal(batches[^1].Through, live.ReadCheckpoint());
        // The segment only grows: what a batch wrote is never rewritten by a later one, so what a power loss can leave is
        // a prefix of the final file (and, past it, whatever the disk's unwritten blocks hold: zeros here).
        byte[] file = File.ReadAllBytes(segment);
        for (int b = 0; b < batches.Count; b++) Assert.True(file.AsSpan(0, bytesAfter[b].Length).SequenceEqual(bytesAfter[b]));

        // 4. Power losses at every batch boundary after the fsynced one, in the middle of a batch (a torn write), and in
        //    the middle of a batch with the rest of the disk block zeroed (a grown file whose data never reached the disk).
        var cuts = new List<(long Length, bool Zeros, int LastKeptBatch)>();
        for (int b = 0; b < batches.Count; b++)
        {
            cuts.Add((lengthAfter[b], false, b));
            if (b + 1 < batches.Count)
            {
                cuts.Add((lengthAfter[b] + (lengthAfter[b + 1] - lengthAfter[b]) / 2, false, b));
                cuts.Add((lengthAfter[b] + (lengthAfter[b + 1] - lengthAfter[b]) / 2, true, b));
            }
        }
        foreach (var (length, zeros, kept) in cuts)
        {
            string name = $"lost-{length}-{zeros}";
            string folder = Path.Combine(_dir.Path, name);
            Directory.CreateDirectory(folder);
            var content = file.AsSpan(0, (int)length).ToArray();
            if (zeros) content = [.. content, .. new byte[4096 - (int)(length % 4096)]];
            File.WriteAllBytes(Path.Combine(folder, Path.GetFileName(segment)), content);

            // 5. The log reopens at the checkpoint of the last whole batch the disk kept, holding exactly its events, and has
            //    cut the file back to that batch's end.
            using var rebooted = NewLog(name, Clock(), TimeSpan.FromMinutes(1));
            var checkpoint = rebooted.ReadCheckpoint();
            Assert.Equal(batches[kept].Through, checkpoint);
            Assert.Equal(lengthAfter[kept], new FileInfo(Path.Combine(folder, Path.GetFileName(segment))).Length);
            Assert.Equal(checkpoint, rebooted.FsyncedCheckpoint); // what the file holds at open is fsynced then
            var held = All(rebooted);
            var upTo = expected.Where(e => EventPosition.TryParse(e.Id, out var p) && p.Sequence <= checkpoint.Sequence).ToList();
            Assert.Equal(upTo.Select(e => e.Id), held.Select(e => e.Id));

            // 6. A consumer had made durable (in its own store) a position past the rollback: the last event before the
            //    last batch. Until the log has re-derived, nothing after it is there to read.
            var before = LedgerChanges.Events(batches.SkipLast(1).SelectMany(b => b.Changes)).Last();
            var consumerAt = new EventPosition(before.Change.Sequence, before.Change.Index, before.Event.Ordinal);
            if (checkpoint.Sequence < consumerAt.Sequence) Assert.Empty(rebooted.ReadAfter(consumerAt, 1000));

            // 7. The sink's runner re-sends from the checkpoint (the follower rebuilds from the journal, which
            //    retirement kept: it counted only the fsynced checkpoint). The same events come back: same ids, bytes, rows,
            //    and the same file, byte for byte.
            foreach (var (c, through) in batches.Where(b => b.Through.Sequence > checkpoint.Sequence)) rebooted.Append(c, through);
            Assert.Equal(expected.Select(e => e.Id), All(rebooted).Select(e => e.Id));
            Assert.Equal(expected.Select(e => e.Json), All(rebooted).Select(e => e.Json));
            Assert.Equal(reference.LastRow, rebooted.LastRow);
            Assert.Equal(reference.Bytes, rebooted.Bytes);
            rebooted.CloseWriter();
            Assert.Equal(file, File.ReadAllBytes(Path.Combine(folder, Path.GetFileName(segment))));
            foreach (long user in new long[] { 1, 2 })
                Assert.Equal(reference.List(user, 100, null, null, null).Data.Select(e => (e.Record.EventId, e.Party)), rebooted.List(user, 100, null, null, null).Data.Select(e => (e.Record.EventId, e.Party)));

            // 8. The consumer reads on from its position: every event after it, once, and none before.
            Assert.Equal(reference.ReadAfter(consumerAt, 1000).Select(e => e.EventId), rebooted.ReadAfter(consumerAt, 1000).Select(e => e.EventId));
        }
    }

    [Fact]
    public void One_commit_per_fsync_interval_is_fsynced_and_an_interval_of_zero_fsyncs_every_commit()
    {
        var batches = LedgerChanges.Batches(ScenarioChanges.Value, 3);
        var clock = Clock();
        using (var log = NewLog("interval", clock, TimeSpan.FromSeconds(1)))
        {
            log.Append(batches[0].Changes, batches[0].Through);
            Assert.Equal(batches[0].Through, log.FsyncedCheckpoint); // the first commit after opening
            clock.Now += TimeSpan.FromMilliseconds(400);
            log.Append(batches[1].Changes, batches[1].Through);
            clock.Now += TimeSpan.FromMilliseconds(400);
            log.Append(batches[2].Changes, batches[2].Through);
            Assert.Equal(batches[0].Through, log.FsyncedCheckpoint); // 800 ms since: not yet
            Assert.Equal(batches[2].Through, log.ReadCheckpoint());
            clock.Now += TimeSpan.FromMilliseconds(200);
            log.Append(batches[3].Changes, batches[3].Through);
            Assert.Equal(batches[3].Through, log.FsyncedCheckpoint); // a second since the last fsync
        }
        // Reopened (a restart): what the files hold is fsynced at open, so retirement may count all of it at once.
        using (var reopened = NewLog("interval", clock, TimeSpan.FromSeconds(1)))
            Assert.Equal(batches[3].Through, reopened.FsyncedCheckpoint);

        using var every = NewLog("every", Clock(), TimeSpan.Zero);
        foreach (var (c, through) in batches.Take(4))
        {
            every.Append(c, through);
            Assert.Equal(through, every.FsyncedCheckpoint);
        }
    }
}
