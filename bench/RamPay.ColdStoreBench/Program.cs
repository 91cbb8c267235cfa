using System.Diagnostics;
using RamPay.Core;
using RamPay.Storage;
using RocksDbSharp;

// The cold key tier's candidate stores, in one run: insert rate (synced per generation of 131,072 keys), point-lookup
// latency and rate for hits and misses, and bytes of disk and memory per key.
//   dotnet run -c Release --project bench/RamPay.ColdStoreBench -- --keys 10000000 --stores segments,rocksdb
// (The first cold tier's hashed tables, "tables" here until they were removed, have their recorded figures in
// docs/storage.md and docs/benchmarks.md.)
// Ours are fed through a ledger under rules version 2 (the writer's real path: generations closed by the key log, the
// writer waiting when the hot tier is full); RocksDB gets the same keys and 112-byte values in synced WriteBatches.
// For ours it also reports the longest time between two generations becoming visible (the store's longest step: a
// key-index growth used to be one, fault 6 in docs/benchmarks.md), sampled by a thread every millisecond, and the
// process's memory (VmRSS, the GC's large-object heap and its fragmentation) before and after, in the same run:
//   dotnet run -c Release --project bench/RamPay.ColdStoreBench -- --keys 40000000 --stores segments --fsync off --reads 0
long n = 10_000_000;
string stores = "segments,rocksdb";
string root = Path.Combine(Path.GetTempPath(), "rampay-coldstore-bench");
int reads = 200_000;
bool fsync = true;
for (int a = 0; a + 1 < args.Length; a += 2)
    switch (args[a])
    {
        case "--keys": n = long.Parse(args[a + 1]); break;
        case "--stores": stores = args[a + 1]; break;
        case "--dir": root = args[a + 1]; break;
        case "--reads": reads = int.Parse(args[a + 1]); break;
        case "--fsync": fsync = args[a + 1] == "on"; break;
        default: throw new ArgumentException($"unknown option {args[a]}");
    }
const int Generation = 1 << 17;
IdempotencyKey Key(long i) => new((ulong)i * 0x9E3779B97F4A7C15 | 1, (ulong)(i + 1) * 0xBF58476D1CE4E5B9);
Console.WriteLine($"# {DateTime.UtcNow:u}, {n:N0} keys, {Environment.ProcessorCount} cores, load average {File.ReadAllText("/proc/loadavg").Trim()}");

foreach (string store in stores.Split(','))
{
    string dir = Path.Combine(root, store);
    if (Directory.Exists(dir)) Directory.Delete(dir, true);
    Directory.CreateDirectory(dir);
    switch (store)
    {
        case "segments":
        {
            var options = new KeySegmentStoreOptions { Directory = dir, KeyCapacity = n, Fsync = fsync };
            using (var s = new KeySegmentStore(options))
                RunOurs(store, s, () => s.FlushedThroughIndex, () => s.IndexBytes, () => s.ReadsIssued, () => s.Lookups);
            // What a start costs: the index rebuilt from the hash files (8 bytes read a key), files in the page cache.
            for (int start = 0; start < 2; start++)
            {
                var t = Stopwatch.StartNew();
                var cpu = Process.GetCurrentProcess().TotalProcessorTime;
                using var s = new KeySegmentStore(options);
                Console.WriteLine($"{store}: a start took {t.ElapsedMilliseconds:N0} ms ({(Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMilliseconds:N0} ms of CPU) for {s.Keys:N0} keys (index rebuilt from the hash files: {s.IndexBytes / 1e6:F0} MB); load {File.ReadAllText("/proc/loadavg").Trim()}");
            }
            break;
        }
        case "rocksdb": RunRocks(dir); break;
        case "payments-restart": RunPaymentsRestart(dir); break;
        default: throw new ArgumentException($"unknown store {store}");
    }
    Directory.Delete(dir, true);
}

void RunOurs(string name, IColdKeyStore store, Func<long> flushed, Func<long> memoryBytes, Func<long> readsIssued, Func<long> lookups)
{
    var ledger = new Ledger(new LedgerOptions
    {
        MaxAccounts = 8, MaxPayments = 16, InitialPaymentCapacity = 0, IdempotencyMaxKeys = 16,
        ColdKeys = new ColdKeyTier { Store = store, HotMaxKeys = 4 * Generation, GenerationCommands = Generation },
    });
    ledger.Apply(new Command { Type = CommandType.UpgradeRules, Argument = 2, Amount = n, TimestampMs = 1 }, out _);
    Memory(name + " before");
    // The store's steps: the gap between two visible generations, and the flushed count where the longest one ended.
    long longestStepTicks = 0, longestAt = 0;
    bool done = false;
    var monitor = new Thread(() =>
    {
        long lastVisible = 0, lastChange = Stopwatch.GetTimestamp();
        while (!Volatile.Read(ref done))
        {
            long visible = store.VisibleGeneration, now = Stopwatch.GetTimestamp();
            if (visible != lastVisible)
            {
                if (now - lastChange > longestStepTicks) { longestStepTicks = now - lastChange; longestAt = flushed(); }
                lastVisible = visible;
                lastChange = now;
            }
            Thread.Sleep(1);
        }
    }) { IsBackground = true, Name = "step-monitor" };
    monitor.Start();
    long longestApplyTicks = 0;
    var sw = Stopwatch.StartNew();
    for (long i = 0; i < n; i++)
    {
        long t0 = Stopwatch.GetTimestamp();
        ledger.Apply(new Command { Type = CommandType.Freeze, ClientId = 1, Key = Key(i), FromAccount = 99, TimestampMs = 2 }, out _);
        long took = Stopwatch.GetTimestamp() - t0;
        if (took > longestApplyTicks) longestApplyTicks = took;
    }
    for (int i = 0; i < Generation; i++) ledger.Apply(new Command { Type = CommandType.Tick, TimestampMs = 2 }, out _);
    while (flushed() < n) Thread.Sleep(2);
    double seconds = sw.Elapsed.TotalSeconds;
    Volatile.Write(ref done, true);
    monitor.Join();
    Console.WriteLine($"{name}: inserted {n:N0} keys in {seconds:F1} s = {n / seconds:N0} keys/s; the writer waited for a full hot tier {ledger.KeyLog!.HotFullWaits:N0} times");
    Console.WriteLine($"{name}: longest store step (between two visible generations of {Generation:N0} keys) {longestStepTicks * 1000.0 / Stopwatch.Frequency:F0} ms, ending at {longestAt:N0} keys; " +
        $"the writer's longest single Apply {longestApplyTicks * 1000.0 / Stopwatch.Frequency:F0} ms (hot tier {4 * Generation:N0} keys)");
    // Only where the store reports it (today's code; read by name so this file builds against older code for a baseline).
    if (store.GetType().GetProperty("LongestIndexStep")?.GetValue(store) is TimeSpan indexStep)
        Console.WriteLine($"{name}: the store's longest time on its index for one generation {indexStep.TotalMilliseconds:F0} ms over {store.GetType().GetProperty("IndexGrowths")!.GetValue(store)} growths ({store.GetType().GetProperty("LongestIndexStepParts")!.GetValue(store)})");
    Memory(name + " after");
    // Held by the index at the end (the plateau: the store holds KeyCapacity = --keys keys): today's code reports its table's
    // buckets; read by name so the baseline builds.
    object? buckets = store.GetType().GetProperty("IndexBuckets")?.GetValue(store);
    Console.WriteLine($"{name}: index holds {memoryBytes() / 1e6:F0} MB = {(double)memoryBytes() / n:F1} B/key at {n:N0} keys (table {(buckets is null ? "?" : $"{buckets:N0} buckets = {(long)buckets * 64 / 1e6:F0} MB")})");
    GC.Collect(2, GCCollectionMode.Forced, blocking: true);
    Memory(name + " after a full GC");
    if (reads == 0) return;
    Lookups(name + " hit", i => store.TryLookup(1, Key(i), long.MaxValue, out _), hit: true);
    long readsBefore = readsIssued(), lookupsBefore = lookups();
    Lookups(name + " miss", i => store.TryLookup(1, Key(n + i), long.MaxValue, out _), hit: false);
    long disk = DiskBytes(Path.Combine(root, name));
    Console.WriteLine($"{name}: disk {disk / 1e9:F2} GB = {(double)disk / n:F0} B/key; memory (index) {memoryBytes() / 1e6:F0} MB = {(double)memoryBytes() / n:F1} B/key; " +
        $"record reads per miss {(double)(readsIssued() - readsBefore) / (lookups() - lookupsBefore):F3}");
}

// The payment log's index memory and start (PaymentLogStore.Recover): --keys payments written in chunks of 65,536 (every 8th chunk also
// re-writes 4,096 older payments, as refunds of old payments do), then opened three times from its index checkpoint
// (the default interval: 1 GiB of log or twice the index) and three times with the checkpoints moved aside (the whole log
// read, as every start did before checkpoints). Files are in the page cache (just written): this measures the read's work,
// not the disk.
void RunPaymentsRestart(string dir)
{
    const int Chunk = 1 << 16;
    var sw = Stopwatch.StartNew();
    using (var store = new PaymentLogStore(new PaymentLogStoreOptions { Directory = dir, Fsync = false }))
    {
        store.Recover(0);
        long id = 0, generation = 0;
        var batch = new PaymentBatch(Chunk, 4096);
        var rng = new Random(5);
        while (id < n)
        {
            batch.Generation = ++generation;
            batch.Stamp = generation * 10;
            batch.ChunkFirstId = id + 1;
            batch.ChunkLength = (int)Math.Min(Chunk, n - id);
            for (int j = 0; j < batch.ChunkLength; j++)
                batch.Items[j] = new Payment { Id = id + j + 1, FromAccount = 2, ToAccount = 3, Amount = 100 + j, Captured = 100 + j, Currency = Currency.USD, Status = PaymentStatus.Posted };
            batch.PoolCount = generation % 8 == 0 ? 4096 : 0;
            for (int j = 0; j < batch.PoolCount; j++)
            {
                long old = 1 + rng.NextInt64(id);
                batch.Items[batch.ChunkLength + j] = new Payment { Id = old, FromAccount = 2, ToAccount = 3, Amount = 100, Captured = 100, Refunded = 1, Currency = Currency.USD, Status = PaymentStatus.Posted };
            }
            id += batch.ChunkLength;
            store.Flush(batch);
            store.WaitVisible(generation); // one batch object, reused
        }
        Console.WriteLine($"payments: wrote {n:N0} payments ({store.RecordsWritten:N0} records, {store.DiskBytes / 1e6:F0} MB of log, index {store.IndexBytes / 1e6:F0} MB) in {sw.Elapsed.TotalSeconds:F1} s; {store.CheckpointsWritten} checkpoint(s)");
        // Memory per payment with the store open (batch objects reused: the index is what grows with n); exact entries only
        // where the code reports them (read by name so the baseline builds).
        object? exact = store.GetType().GetProperty("IndexExactEntries")?.GetValue(store);
        Console.WriteLine($"payments: index {store.IndexBytes / 1e6:F1} MB = {(double)store.IndexBytes / n:F3} B/payment; exact entries {exact ?? "-"}");
        GC.Collect(2, GCCollectionMode.Forced, blocking: true);
        Memory("payments written, after a full GC");
        Console.WriteLine($"payments: VmRSS {Rss() / (double)n:F2} B/payment, GC heap {GC.GetGCMemoryInfo(GCKind.Any).HeapSizeBytes / (double)n:F2} B/payment (the process, {n:N0} payments)");
    }
    string aside = dir + "-aside";
    Directory.CreateDirectory(aside);
    foreach (string mode in new[] { "checkpoint", "whole log", "checkpoint", "whole log", "checkpoint", "whole log" })
    {
        if (mode == "whole log") foreach (var f in Directory.GetFiles(dir, "*.ckpt")) File.Move(f, Path.Combine(aside, Path.GetFileName(f)));
        else foreach (var f in Directory.GetFiles(aside, "*.ckpt")) File.Move(f, Path.Combine(dir, Path.GetFileName(f)));
        var t = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        using var store = new PaymentLogStore(new PaymentLogStoreOptions { Directory = dir, Fsync = false, CheckpointEveryBytes = 0 });
        store.Recover(long.MaxValue);
        double ms = t.Elapsed.TotalMilliseconds;
        // CPU time too: on a machine at load 40 the wall time is mostly waiting for a core.
        Console.WriteLine($"payments start from {mode}: {(Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMilliseconds:F0} ms of CPU");
        if (!store.TryRead(n / 2, out var p) || p.Id != n / 2) throw new InvalidOperationException("payment not read back");
        Console.WriteLine($"payments start from {mode}: {ms:F0} ms, {store.RecoveryLogBytes / 1e6:F0} MB of log read ({store.RecoveredFrom}); load {File.ReadAllText("/proc/loadavg").Trim()}");
    }
    Directory.Delete(aside, true);
}

static long Rss() => long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))[6..].Trim().Split(' ')[0]) * 1024;

void Memory(string label)
{
    var info = GC.GetGCMemoryInfo(GCKind.Any);
    var loh = info.GenerationInfo[3];
    string rss = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))[6..].Trim();
    Console.WriteLine($"{label}: VmRSS {rss}; GC heap {info.HeapSizeBytes / 1e6:F0} MB, LOH {loh.SizeAfterBytes / 1e6:F0} MB of which fragmentation " +
        $"{loh.FragmentationAfterBytes / 1e6:F0} MB (GC #{info.Index}, {info.Generation}); total fragmentation {info.FragmentedBytes / 1e6:F0} MB");
}

void RunRocks(string dir)
{
    var table = new BlockBasedTableOptions().SetFilterPolicy(BloomFilterPolicy.Create(10, false)).SetWholeKeyFiltering(true);
    var options = new DbOptions().SetCreateIfMissing(true).SetCompression(Compression.No).SetBlockBasedTableFactory(table);
    using var db = RocksDb.Open(options, dir);
    var value = new byte[112];
    var key = new byte[24];
    var sync = new WriteOptions().SetSync(true);
    var sw = Stopwatch.StartNew();
    var batch = new WriteBatch();
    for (long i = 0; i < n; i++)
    {
        var k = Key(i);
        BitConverter.TryWriteBytes(key, 1L); BitConverter.TryWriteBytes(key.AsSpan(8), k.Hi); BitConverter.TryWriteBytes(key.AsSpan(16), k.Lo);
        BitConverter.TryWriteBytes(value, i);
        batch.Put(key, value);
        if (batch.Count() == Generation) { db.Write(batch, sync); batch.Dispose(); batch = new WriteBatch(); }
    }
    db.Write(batch, sync);
    double seconds = sw.Elapsed.TotalSeconds;
    Console.WriteLine($"rocksdb: inserted {n:N0} keys in {seconds:F1} s = {n / seconds:N0} keys/s (WriteBatch of {Generation:N0}, synced, bloom 10 bits/key, no compression)");
    bool Get(long i)
    {
        var k = Key(i);
        var kb = new byte[24];
        BitConverter.TryWriteBytes(kb, 1L); BitConverter.TryWriteBytes(kb.AsSpan(8), k.Hi); BitConverter.TryWriteBytes(kb.AsSpan(16), k.Lo);
        return db.Get(kb) is not null;
    }
    Lookups("rocksdb hit", Get, hit: true);
    Lookups("rocksdb miss", i => Get(n + i), hit: false);
    long memory = long.Parse(db.GetProperty("rocksdb.estimate-table-readers-mem")) + long.Parse(db.GetProperty("rocksdb.cur-size-all-mem-tables"))
        + long.Parse(db.GetProperty("rocksdb.block-cache-usage"));
    long disk = DiskBytes(dir);
    Console.WriteLine($"rocksdb: disk {disk / 1e9:F2} GB = {(double)disk / n:F0} B/key; memory (table readers, filters, memtables, block cache) {memory / 1e6:F0} MB = {(double)memory / n:F1} B/key");
}

void Lookups(string name, Func<long, bool> lookup, bool hit)
{
    var latency = new double[reads];
    var rng = new Random(7);
    var all = Stopwatch.StartNew();
    for (int i = 0; i < reads; i++)
    {
        long k = rng.NextInt64(n);
        long t0 = Stopwatch.GetTimestamp();
        bool found = lookup(k);
        latency[i] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
        if (found != hit) throw new InvalidOperationException($"{name}: key {k} found={found}");
    }
    double rate = reads / all.Elapsed.TotalSeconds;
    Array.Sort(latency);
    Console.WriteLine($"{name}: {reads:N0} random lookups, {rate:N0}/s on one thread: p50 {latency[reads / 2]:F2} us, p99 {latency[reads * 99 / 100]:F2} us, p99.9 {latency[reads * 999 / 1000]:F2} us");
}

static long DiskBytes(string dir)
{
    // Allocated blocks, as du counts them (the hashed tables are sparse files).
    var du = Process.Start(new ProcessStartInfo("du", ["-s", "-B1", dir]) { RedirectStandardOutput = true })!;
    string output = du.StandardOutput.ReadToEnd();
    du.WaitForExit();
    return long.Parse(output.Split('\t')[0]);
}
