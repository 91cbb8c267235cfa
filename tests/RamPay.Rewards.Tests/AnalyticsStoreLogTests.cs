using RamPay.Analytics;
using RamPay.Core;

namespace RamPay.Rewards.Tests;

/// <summary>
/// The analytics store's snapshot and redo log (<see cref="AnalyticsStore"/>, <see cref="AnalyticsLog"/>) and the per-user
/// retention (<see cref="AnalyticsRetention"/>): the golden files of both layouts, what a restart or a crash at any point
/// reads back, torn and damaged records, and every kept bucket against a plain recount.
/// </summary>
public sealed class AnalyticsStoreLogTests : IDisposable
{
    /// <summary>The golden version 3 files' retention: the golden events span two and a half days, so minute and hour buckets are dropped.</summary>
    private static readonly AnalyticsRetention GoldenRetention = AnalyticsRetention.Parse("minute=2h,hour=1d,day=forever");

    private readonly string _dir = Directory.CreateTempSubdirectory("rampay-analytics-log-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_version_2_golden_file_loads_to_what_its_events_make_and_is_saved_again_as_version_3()
    {
        string golden = Path.Combine(AnalyticsGolden.Folder(), "analytics-v2.rollups");
        string path = Path.Combine(_dir, "analytics.rollups");
        File.Copy(golden, path);
        var loaded = AnalyticsStore.Load(path, AnalyticsRetention.Forever);
        // A version 2 file has no retention state (the "r" line): only the rollups themselves are compared.
        static List<string> Rollups(AnalyticsRollups r) => [.. AnalyticsGolden.Lines(r).Where(l => !l.StartsWith("r ", StringComparison.Ordinal))];
        Assert.Equal(File.ReadAllLines(Path.Combine(AnalyticsGolden.Folder(), "analytics-v2.lines.txt")), Rollups(loaded));
        Assert.Equal(Rollups(AnalyticsGolden.Apply(new AnalyticsRollups())), Rollups(loaded));

        // An upgraded server's first clean stop writes it as version 3, which loads to the same.
        var store = new AnalyticsStore(path, AnalyticsRetention.Forever);
        store.SaveSnapshot();
        store.Dispose();
        Assert.Equal(3, BitConverter.ToInt32(File.ReadAllBytes(path), 4));
        Assert.Equal(Rollups(loaded), Rollups(AnalyticsStore.Load(path, AnalyticsRetention.Forever)));
    }

    [Fact]
    public void The_version_3_golden_snapshot_and_log_load_and_are_written_again_byte_for_byte()
    {
        string golden = Path.Combine(AnalyticsGolden.Folder(), "analytics-v3");
        // 1. The golden snapshot and log segment, read by this RamPay: what the lines file says, and what the same
        //    events make in memory.
        foreach (string f in Directory.GetFiles(golden, "analytics.rollups*")) File.Copy(f, Path.Combine(_dir, Path.GetFileName(f)));
        var loaded = AnalyticsStore.Load(Path.Combine(_dir, "analytics.rollups"), GoldenRetention);
        Assert.Equal(File.ReadAllLines(Path.Combine(golden, "lines.txt")), AnalyticsGolden.Lines(loaded));
        var memory = new AnalyticsRollups(GoldenRetention);
        foreach (var (source, events, fields, scores) in AnalyticsGolden.Batches(lateModel: true)) memory.Apply(new EventBatch(events, source), fields, scores);
        Assert.Equal(AnalyticsGolden.Lines(memory), AnalyticsGolden.Lines(loaded));
        Assert.Contains(AnalyticsGolden.Lines(loaded), l => l.Contains("model-c", StringComparison.Ordinal)); // named in the log, not the snapshot
        Assert.True(loaded.UserBucketsFrom(Interval.Minute) > AnalyticsGolden.T0 && loaded.UserBucketsFrom(Interval.Hour) > AnalyticsGolden.T0, "the golden files drop old buckets");

        // 2. The same events written by this RamPay: the same files, byte for byte.
        string again = Path.Combine(_dir, "again");
        WriteGolden(again);
        var written = Directory.GetFiles(again).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["analytics.rollups", "analytics.rollups.log.00000001", "lines.txt"], written);
        foreach (string name in written) Assert.True(File.ReadAllBytes(Path.Combine(golden, name)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(again, name))), $"{name} differs from the golden one");
    }

    /// <summary>
    /// Written once (<c>RAMPAY_WRITE_GOLDEN=1 dotnet test tests/RamPay.Rewards.Tests -c Release --filter Write_the_version_3_golden_files</c>)
    /// and never rewritten: a later layout gets a new folder beside it.
    /// </summary>
    [Fact]
    public void Write_the_version_3_golden_files()
    {
        if (Environment.GetEnvironmentVariable("RAMPAY_WRITE_GOLDEN") != "1") return;
        string folder = Path.Combine(AnalyticsGolden.Folder(), "analytics-v3");
        Assert.False(Directory.Exists(folder), $"{folder} exists: golden files are never rewritten");
        WriteGolden(folder);
    }

    /// <summary>Batches 0-2 and a snapshot (at a clean stop), then batches 3-5 each saved at once: one snapshot, one log segment.</summary>
    private static void WriteGolden(string folder)
    {
        Directory.CreateDirectory(folder);
        var store = new AnalyticsStore(Path.Combine(folder, "analytics.rollups"), GoldenRetention);
        var batches = AnalyticsGolden.Batches(lateModel: true);
        for (int b = 0; b < batches.Count; b++)
        {
            var (source, events, fields, scores) = batches[b];
            store.Apply(new EventBatch(events, source), fields, scores, saveNow: b >= 3);
            if (b == 2) store.SaveSnapshot();
        }
        store.Dispose();
        File.WriteAllLines(Path.Combine(folder, "lines.txt"), AnalyticsGolden.Lines(store.Rollups));
    }

    [Fact]
    public void Restarts_and_crashes_anywhere_read_back_what_memory_held_and_every_kept_user_bucket_is_a_plain_recount()
    {
        // 1. Payments over six days (time mostly forward, sometimes minutes back, now and then three hours back, so that
        //    for a while they reach minutes no longer kept), users on both sides, two currencies; a retention of 2 hours of
        //    minutes and a day of hours; snapshots every 16 KiB of log.
        var retention = AnalyticsRetention.Parse("minute=2h,hour=1d");
        var random = new Random(6122026);
        long t = 1_800_000_000_000;
        var payments = new List<(long At, long From, long To, ushort Currency, long Amount)>();
        for (int n = 0; n < 30_000; n++)
        {
            t += random.Next(2_000) == 0 ? -3 * 3_600_000 : random.Next(10) == 0 ? -random.Next(5 * 60_000) : random.Next(35_000);
            payments.Add((t, random.Next(1, 80), random.Next(0, 80), random.Next(3) == 0 ? Currency.EUR.Code : Currency.USD.Code, random.Next(1, 100_000)));
        }
        string path = Path.Combine(_dir, "analytics.rollups");
        AnalyticsStore Open() => new(path, retention) { SaveEveryMs = int.MaxValue, MinLogBytesBeforeSnapshot = 16 << 10 };
        var store = Open();
        var reference = new AnalyticsRollups(retention); // fed each batch once, never restarted
        var unsaved = new List<EventBatch>();
        var fieldsOf = new Dictionary<EventBatch, EventFields[]>();
        long sequence = 0, snapshots = 0;
        int restarts = 0, crashes = 0, checks = 0;
        foreach (var chunk in payments.Chunk(250))
        {
            var events = new List<EventRecord>();
            var fields = new EventFields[chunk.Length];
            for (int k = 0; k < chunk.Length; k++)
            {
                var p = chunk[k];
                events.Add(new EventRecord(new EventPosition(++sequence, 0, 1), "PaymentApproved", 1, p.At, p.From, Array.Empty<byte>()));
                fields[k] = AnalyticsUserBucketsTests.Approved(p.Currency, p.Amount, p.From, p.To);
            }
            var batch = new EventBatch(events, "kafka:t/" + (sequence % 2));
            fieldsOf[batch] = fields;
            store.Apply(batch, fields, null, saveNow: false);
            reference.Apply(batch, fields, null);
            unsaved.Add(batch);
            switch (random.Next(8))
            {
                case 0 or 1 or 2:
                    store.Save(); // a flush: what it holds is durable
                    unsaved.Clear();
                    break;
                case 3:
                    // 2. A crash: what was not saved is lost; the new process reads the files, and the source delivers
                    //    again everything not saved, then the last batch once more: nothing counts twice.
                    snapshots += store.Snapshots;
                    store.Dispose();
                    store = Open();
                    crashes++;
                    foreach (var again in unsaved) store.Apply(again, fieldsOf[again], null, saveNow: false);
                    store.Apply(batch, fields, null, saveNow: false);
                    break;
                case 4:
                    // 3. A clean stop and start.
                    store.SaveSnapshot();
                    unsaved.Clear();
                    snapshots += store.Snapshots;
                    store.Dispose();
                    store = Open();
                    restarts++;
                    Assert.Equal(AnalyticsGolden.Lines(reference), AnalyticsGolden.Lines(store.Rollups));
                    break;
                case 5:
                    // 4. Another process reads the files while this one writes them: whatever is saved.
                    store.Save();
                    unsaved.Clear();
                    Assert.Equal(AnalyticsGolden.Lines(store.Rollups), AnalyticsGolden.Lines(AnalyticsStore.Load(path, retention)));
                    checks++;
                    break;
            }
            Assert.Equal(AnalyticsGolden.Lines(reference), AnalyticsGolden.Lines(store.Rollups));
        }
        store.Save();
        snapshots += store.Snapshots;
        Assert.Equal(AnalyticsGolden.Lines(reference), AnalyticsGolden.Lines(AnalyticsStore.Load(path, retention)));
        Assert.True(restarts >= 5 && crashes >= 5 && checks >= 5 && snapshots >= 10, $"{restarts} restarts, {crashes} crashes, {checks} reads, {snapshots} snapshots");

        // 5. Every user bucket kept is the sum of that user's payments in it, and every bucket the recount has at or after
        //    the oldest kept start is there: the retention drops whole buckets, never a part of one.
        var expected = new Dictionary<(long, Interval, long, ushort), long[]>();
        foreach (var p in payments)
            foreach (var i in AnalyticsRollups.Intervals)
            {
                long start = AnalyticsRollups.StartOf(p.At, i);
                AnalyticsUserBucketsTests.Add(expected, (p.From, i, start, p.Currency), 0, p.Amount);
                if (p.To > 0) AnalyticsUserBucketsTests.Add(expected, (p.To, i, start, p.Currency), 2, p.Amount);
            }
        var rollups = store.Rollups;
        long kept = 0;
        foreach (var (key, values) in expected)
        {
            bool retained = key.Item3 >= rollups.UserBucketsFrom(key.Item2);
            Assert.Equal(retained, rollups.UserBuckets.TryGetValue(key, out var got));
            if (!retained) continue;
            Assert.Equal(values, got);
            kept++;
        }
        Assert.Equal(kept, rollups.UserBuckets.Count);
        Assert.True(kept < expected.Count / 2, $"the retention dropped most buckets: {kept} of {expected.Count} kept");
        Assert.True(rollups.UserPaymentsBeyondRetention > 100, $"payments beyond the retention: {rollups.UserPaymentsBeyondRetention}");
        Assert.Equal(payments.Max(p => p.At), rollups.UserWatermarkMs);
        Assert.Equal(AnalyticsRollups.StartOf(payments.Max(p => p.At), Interval.Minute) - 2 * 3_600_000, rollups.UserBucketsFrom(Interval.Minute));
        store.Dispose();
    }

    [Fact]
    public void A_last_record_cut_short_is_left_out_and_damage_before_the_end_throws()
    {
        // 1. Three batches, each saved: three records in one segment.
        string path = Path.Combine(_dir, "analytics.rollups");
        var batches = AnalyticsGolden.Batches();
        var store = new AnalyticsStore(path, AnalyticsRetention.Forever);
        var twoBatches = new List<string>();
        for (int b = 0; b < 3; b++)
        {
            store.Apply(new EventBatch(batches[b].Events, batches[b].Source), batches[b].Fields, batches[b].Scores, saveNow: true);
            if (b == 1) twoBatches = AnalyticsGolden.Lines(store.Rollups);
        }
        var threeBatches = AnalyticsGolden.Lines(store.Rollups);
        store.Dispose();
        string segment = Assert.Single(AnalyticsStore.Segments(path)).File;
        byte[] whole = File.ReadAllBytes(segment);
        List<string> Read(byte[] bytes)
        {
            File.WriteAllBytes(segment, bytes);
            return AnalyticsGolden.Lines(AnalyticsStore.Load(path, AnalyticsRetention.Forever));
        }
        Assert.Equal(threeBatches, Read(whole));

        // 2. The last save cut short by a crash, at any byte, or followed by the zeros a file system may leave: two batches.
        int lastStart = RecordStarts(whole)[^1];
        for (int cut = lastStart; cut < whole.Length; cut += 7) Assert.Equal(twoBatches, Read(whole[..cut]));
        Assert.Equal(threeBatches, Read([.. whole, .. new byte[100]]));
        Assert.Equal(twoBatches, Read([.. whole[..(lastStart + 20)], .. new byte[whole.Length - lastStart - 20]])); // the size grew, the data did not come
        var lastBad = (byte[])whole.Clone();
        lastBad[^3] ^= 0x10;
        Assert.Equal(twoBatches, Read(lastBad));

        // 3. A byte changed in a record that others follow, or a length out of bounds: damage, said loudly.
        var middleBad = (byte[])whole.Clone();
        middleBad[RecordStarts(whole)[1] + 12] ^= 0x01;
        Assert.Throws<InvalidDataException>(() => Read(middleBad));
        var badLength = (byte[])whole.Clone();
        BitConverter.TryWriteBytes(badLength.AsSpan(RecordStarts(whole)[1]), -5);
        Assert.Throws<InvalidDataException>(() => Read(badLength));
        var zerosThenMore = (byte[])whole.Clone();
        Array.Clear(zerosThenMore, RecordStarts(whole)[1], 8);
        Assert.Throws<InvalidDataException>(() => Read(zerosThenMore));

        // 4. Records written twice, as a save whose fdatasync failed writes its records again in a new segment (the
        //    golden batches score payments, so a model version is named twice too): each event counted once.
        Assert.Equal(threeBatches, Read([.. whole, .. whole[RecordStarts(whole)[1]..]]));
        File.WriteAllBytes(segment, whole);
        string next = segment[..^8] + (Assert.Single(AnalyticsStore.Segments(path)).Number + 1).ToString("D8", System.Globalization.CultureInfo.InvariantCulture);
        File.WriteAllBytes(next, whole);
        Assert.Equal(threeBatches, AnalyticsGolden.Lines(AnalyticsStore.Load(path, AnalyticsRetention.Forever)));
        File.Delete(next);

        // 5. A snapshot with a byte changed fails its CRC.
        File.WriteAllBytes(segment, whole);
        store = new AnalyticsStore(path, AnalyticsRetention.Forever);
        store.SaveSnapshot();
        store.Dispose();
        byte[] snapshot = File.ReadAllBytes(path);
        snapshot[snapshot.Length / 2] ^= 0x01;
        File.WriteAllBytes(path, snapshot);
        Assert.Contains("CRC", Assert.Throws<InvalidDataException>(() => AnalyticsStore.Load(path, AnalyticsRetention.Forever)).Message);
    }

    private static List<int> RecordStarts(byte[] segment)
    {
        var starts = new List<int>();
        for (int at = 0; at < segment.Length; at += AnalyticsLog.HeaderBytes + BitConverter.ToInt32(segment, at)) starts.Add(at);
        return starts;
    }

    [Fact]
    public void A_snapshot_cut_short_at_any_step_and_a_log_with_no_snapshot_read_back_whole()
    {
        string path = Path.Combine(_dir, "analytics.rollups");
        var batches = AnalyticsGolden.Batches();
        void Feed(AnalyticsStore s, int from, int to)
        {
            for (int b = from; b < to; b++) s.Apply(new EventBatch(batches[b].Events, batches[b].Source), batches[b].Fields, batches[b].Scores, saveNow: true);
        }

        // 1. The first process crashes before any snapshot: the log alone holds everything.
        var store = new AnalyticsStore(path, AnalyticsRetention.Forever);
        Feed(store, 0, 2);
        var lines = AnalyticsGolden.Lines(store.Rollups);
        store.Dispose();
        Assert.False(File.Exists(path));
        store = new AnalyticsStore(path, AnalyticsRetention.Forever);
        Assert.Equal(lines, AnalyticsGolden.Lines(store.Rollups));

        // 2. A snapshot renamed into place, the crash before its segments were deleted: they are not read again, and go.
        Feed(store, 2, 4);
        var before = AnalyticsStore.Segments(path).Select(s => (s.File, Bytes: File.ReadAllBytes(s.File))).ToList();
        Assert.Equal(2, before.Count); // the first process's segment and this one's
        store.SaveSnapshot();
        lines = AnalyticsGolden.Lines(store.Rollups);
        store.Dispose();
        Assert.Empty(AnalyticsStore.Segments(path));
        foreach (var (file, bytes) in before) File.WriteAllBytes(file, bytes);
        store = new AnalyticsStore(path, AnalyticsRetention.Forever);
        Assert.Equal(lines, AnalyticsGolden.Lines(store.Rollups));
        Assert.Empty(AnalyticsStore.Segments(path));

        // 3. The crash before the rename (the temporary file written, the old snapshot still in place): the old snapshot
        //    and every segment after it.
        Feed(store, 4, 6);
        lines = AnalyticsGolden.Lines(store.Rollups);
        store.Dispose();
        File.WriteAllBytes(path + ".tmp", [1, 2, 3]);
        Assert.Equal(lines, AnalyticsGolden.Lines(new AnalyticsStore(path, AnalyticsRetention.Forever).Rollups));
    }

    [Fact]
    public void A_batch_an_event_of_which_throws_leaves_nothing_in_the_log_not_even_the_model_it_named()
    {
        // 1. A batch: a payment scored by a model never seen, then a refund event without its refund (the rollups throw).
        string path = Path.Combine(_dir, "analytics.rollups");
        var store = new AnalyticsStore(path, AnalyticsRetention.Forever);
        static EventFields Created(long payment)
        {
            var f = EventFields.Empty;
            f.Valid = f.PayloadRead = f.HasPayment = true;
            (f.Type, f.TypeName, f.Kind) = (EventType.PaymentCreated, "PaymentCreated", EventPaymentKind.Transfer);
            (f.PaymentId, f.Amount, f.Currency, f.FromAccount, f.ToAccount, f.CreatedAtMs) = (payment, 500, Currency.USD.Code, 2, 3, AnalyticsGolden.T0);
            return f;
        }
        var refundless = EventFields.Empty;
        refundless.Valid = refundless.HasPayment = true;
        (refundless.Type, refundless.Currency) = (EventType.PaymentRefunded, Currency.USD.Code);
        EventRecord Record(long sequence, string type) => new(new EventPosition(sequence, 0, 1), type, 1, AnalyticsGolden.T0, 2, ReadOnlyMemory<byte>.Empty);
        var scores = new Dictionary<long, PaymentScore> { [1] = new("model-z", 0.5f), [2] = new("model-z", 0.7f) };
        Assert.Throws<InvalidDataException>(() => store.Apply(new EventBatch([Record(1, "PaymentCreated"), Record(2, "PaymentRefunded")], "log"), [Created(1), refundless], scores, saveNow: false));

        // 2. The next batch scores a payment by the same model, and is saved: the log names the model there.
        var good = new EventBatch([Record(3, "PaymentCreated")], "log");
        store.Apply(good, [Created(2)], scores, saveNow: true);
        store.Dispose();
        var expected = new AnalyticsRollups();
        expected.Apply(good, [Created(2)], scores);
        Assert.Equal(AnalyticsGolden.Lines(expected), AnalyticsGolden.Lines(AnalyticsStore.Load(path, AnalyticsRetention.Forever)));
    }

    [Fact]
    public void The_worker_refuses_a_retention_it_cannot_read_and_keeps_the_one_it_is_given()
    {
        var e = Assert.Throws<ArgumentException>(() => RamPay.Worker.AnalyticsRole.Create(f => f switch { "--out" => _dir, "--user-retention" => "minute=1m", _ => null }));
        Assert.Contains("--user-retention", e.Message);
        var worker = (RamPay.Worker.AnalyticsRole.Worker)RamPay.Worker.AnalyticsRole.Create(f => f switch { "--out" => _dir, "--user-retention" => "minute=3h", _ => null });
        Assert.Equal(new AnalyticsRetention(3 * 3_600_000L, AnalyticsRetention.Default.UserHourMs, 0), worker.Store.Rollups.Retention);
        worker.Store.Dispose();
    }

    [Fact]
    public void A_retention_reads_as_documented_and_refuses_what_would_drop_a_bucket_being_filled()
    {
        Assert.Equal(AnalyticsRetention.Default, AnalyticsRetention.Parse(AnalyticsRetention.DefaultText));
        Assert.Equal(AnalyticsRetention.Default, AnalyticsRetention.Parse(""));
        Assert.Equal(new AnalyticsRetention(90 * 60_000L, 2 * 3_600_000L, 0), AnalyticsRetention.Parse("minute=90m,hour=2h,day=forever"));
        Assert.Equal(new AnalyticsRetention(AnalyticsRetention.Default.UserMinuteMs, 0, 40 * 86_400_000L), AnalyticsRetention.Parse("day=40d, hour=forever"));
        Assert.Equal("minute=90m,hour=2h,day=forever", AnalyticsRetention.Parse("minute=90m,hour=2h,day=forever").ToString());
        foreach (string bad in new[] { "minute=1m", "hour=1h", "day=1d", "minute=2x", "minute=", "week=2d", "minute=2h,minute=3h", "minute=-5m", "minute=0m", "minute=2 h", "minute=99999999999d" })
            Assert.False(AnalyticsRetention.TryParse(bad, out _, out string error) || error.Length == 0, bad);
    }
}
