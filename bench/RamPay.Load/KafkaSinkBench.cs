using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Kafka;
using RamPay.Sinks;

namespace RamPay.Load;

/// <summary>Settings of <c>rampay-load kafka-sink</c>.</summary>
public sealed record KafkaSinkBenchOptions
{
    public required string BootstrapServers { get; init; }
    /// <summary>Empty: a new topic per run, <c>rampay.bench.&lt;run&gt;</c>.</summary>
    public string Topic { get; init; } = "";
    public int Partitions { get; init; } = 8;
    public long Events { get; init; } = 2_000_000;
    /// <summary>Changes per <see cref="KafkaEventSink.Write"/>: the hub's batch (SinkHubOptions.BatchChanges).</summary>
    public int BatchChanges { get; init; } = 8192;
    public int Wallets { get; init; } = 10_000;
    public double LingerMs { get; init; } = new KafkaSinkOptions { BootstrapServers = "x", CheckpointDirectory = "x" }.LingerMs;
    public string Compression { get; init; } = new KafkaSinkOptions { BootstrapServers = "x", CheckpointDirectory = "x" }.Compression;
    public int Seed { get; init; } = 1;

    public IEnumerable<string> Problems()
    {
        if (string.IsNullOrWhiteSpace(BootstrapServers)) yield return "--bootstrap (or RAMPAY_TEST_KAFKA) is required";
        if (Partitions < 1) yield return "--partitions must be at least 1";
        if (Events < 1) yield return "--events must be positive";
        if (BatchChanges < 1) yield return "--batch must be at least 1";
        if (Wallets < 2) yield return "--wallets must be at least 2";
    }
}

/// <summary>
/// Measures the Kafka sink alone: a real engine journals a payment workload (registrations, deposits, then transfers
/// between wallets) into a temporary folder, a real <see cref="LedgerFollower"/> turns the journal into changes, and
/// <see cref="KafkaEventSink.Write"/> publishes them batch by batch, each write waiting for every acknowledgement and
/// moving the checkpoint, as under the server's SinkHub. Only the time inside Write is counted: the journal and the
/// follower are set-up, and run on threads of their own in the server.
/// </summary>
internal static class KafkaSinkBench
{
    public static int Run(KafkaSinkBenchOptions o, TextWriter output, TextWriter error)
    {
        var problems = o.Problems().ToList();
        foreach (string p in problems) error.WriteLine("error: " + p);
        if (problems.Count > 0) return LoadCli.ExitError;

        KafkaNativeLibrary.EnsureLoaded(); // before the admin client below: the bundled librdkafka, never the machine's
        string run = LoadOptions.NewRunId();
        string topic = o.Topic.Length > 0 ? o.Topic : "rampay.bench." + run;
        string root = Directory.CreateTempSubdirectory("rampay-kafka-bench-").FullName;
        try
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"rampay-load kafka-sink: {o.Events:N0} events to {o.BootstrapServers} topic {topic} ({o.Partitions} partitions), {o.BatchChanges} changes per write, linger {o.LingerMs} ms, compression {o.Compression}"));
            CreateTopic(o, topic, output);

            var clock = Stopwatch.StartNew();
            var engineOptions = new EngineOptions
            {
                DataDirectory = Path.Combine(root, "data"), Fsync = false, SnapshotEveryCommands = 0, SnapshotOnStop = false, TickIntervalMs = 0,
                Ledger = new LedgerOptions { MaxAccounts = o.Wallets + 16, MaxPayments = Math.Max(1 << 20, o.Events), InitialPaymentCapacity = 1 << 20, IdempotencyMaxKeys = 1 << 20 },
            };
            long records = Journal(o, engineOptions);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"journal: {records:N0} commands written in {clock.Elapsed.TotalSeconds:0.0} s"));

            var sinkOptions = new KafkaSinkOptions
            {
                BootstrapServers = o.BootstrapServers, Topic = topic, CheckpointDirectory = Path.Combine(root, "sinks"),
                LingerMs = o.LingerMs, Compression = o.Compression, ClientId = "rampay-load",
            };
            using var sink = new KafkaEventSink(sinkOptions);
            sink.Open(); // the topic exists once this returns (auto-created if need be)
            int partitions = PartitionsOf(o.BootstrapServers, topic);
            long before = CountOnTopic(o.BootstrapServers, topic, partitions);
            using var follower = new LedgerFollower(engineOptions.SnapshotDirectory, engineOptions.JournalDirectory, engineOptions.Ledger, afterSequence: 0);
            long changes = 0, writes = 0, writeTicks = 0, followTicks = 0;
            var process = Process.GetCurrentProcess();
            TimeSpan writeCpu = TimeSpan.Zero;
            int largest = 0;
            while (true)
            {
                long t0 = Stopwatch.GetTimestamp();
                var batch = new ChangeBatch(o.BatchChanges);
                int read = follower.Poll(records, o.BatchChanges, batch);
                long t1 = Stopwatch.GetTimestamp();
                followTicks += t1 - t0;
                if (read == 0) break;
                process.Refresh();
                TimeSpan cpu0 = process.TotalProcessorTime;
                sink.Write(batch.Changes, new SinkCheckpoint(batch.LastSequence, batch.LastTimestampMs));
                writeTicks += Stopwatch.GetTimestamp() - t1;
                process.Refresh();
                writeCpu += process.TotalProcessorTime - cpu0; // every thread of the process: encoding, Confluent.Kafka, librdkafka, GC
                changes += batch.Count;
                largest = Math.Max(largest, batch.Count);
                writes++;
            }
            double writeSeconds = (double)writeTicks / Stopwatch.Frequency;
            double followSeconds = (double)followTicks / Stopwatch.Frequency;
            long events = sink.EventsWritten;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"follower: {changes:N0} changes in {followSeconds:0.00} s ({changes / followSeconds:N0} changes/s, not counted below)"));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"sink: {events:N0} events in {writes:N0} writes (up to {largest:N0} changes each), {writeSeconds:0.00} s inside Write, process CPU meanwhile {writeCpu.TotalSeconds:0.00} s ({writeCpu.TotalMilliseconds * 1000 / events:0.00} µs/event)"));
            long onTopic = CountOnTopic(o.BootstrapServers, topic, partitions) - before;
            if (onTopic != events)
            {
                error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"error: the topic holds {onTopic:N0} messages, the sink wrote {events:N0}"));
                return LoadCli.ExitFail;
            }
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"check: the topic's {partitions} partitions gained {onTopic:N0} messages, as many as the sink wrote"));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"kafka-sink: {events / writeSeconds:N0} events/s (load average {LoadAverage()})"));
            return LoadCli.ExitPass;
        }
        catch (Exception e) when (e is KafkaException or KafkaSinkException)
        {
            error.WriteLine("error: " + e.Message);
            return LoadCli.ExitError;
        }
        finally
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Registrations (1 event each), one deposit per wallet and then transfers between random wallets (2 events each),
    /// until the journal holds about <see cref="KafkaSinkBenchOptions.Events"/> events' worth. Returns the records written.
    /// Also the workload of <c>rampay-load event-log</c> (EventLogBench.cs).
    /// </summary>
    internal static long Journal(KafkaSinkBenchOptions o, EngineOptions options)
    {
        var rng = new Random(o.Seed);
        long key = 0;
        IdempotencyKey NextKey() => new((ulong)o.Seed, (ulong)++key);
        long records = 0;
        using var engine = RamPayEngine.Start(options);
        void Submit(in Command c, byte[]? attachment = null)
        {
            engine.Submit(c, 0, attachment);
            records++;
        }
        Submit(new Command { Type = CommandType.OpenAccount, Flags = (byte)AccountFlags.Funding, Currency = Currency.USD, ClientId = 1, Key = NextKey() });
        long events = 0;
        int wallets = 0;
        for (int i = 0; i < o.Wallets && (events < o.Events || wallets < 2); i++, wallets++)
        {
            var (register, profile) = new UserProfile(string.Create(CultureInfo.InvariantCulture, $"bench{i}@example.com"), "Bench " + i, "pbkdf2$bench").ToCommand(UserRole.User, Currency.USD);
            register.ClientId = 1;
            register.Key = NextKey();
            Submit(register, profile);
            events++;
        }
        // Accounts: 1 funding, then wallet i is account i + 2.
        for (int i = 0; i < wallets && events < o.Events; i++)
        {
            Submit(new Command { Type = CommandType.Deposit, Currency = Currency.USD, ClientId = 1, Key = NextKey(), FromAccount = 1, ToAccount = i + 2, Amount = 1_000_000_000 });
            events += 2;
        }
        var batch = new Command[1024];
        while (events < o.Events)
        {
            int n = (int)Math.Min(batch.Length, (o.Events - events + 1) / 2);
            for (int i = 0; i < n; i++)
            {
                long from = 2 + rng.Next(wallets), to = 2 + rng.Next(wallets - 1);
                if (to >= from) to++;
                batch[i] = new Command { Type = CommandType.Transfer, Currency = Currency.USD, ClientId = 1, Key = NextKey(), FromAccount = from, ToAccount = to, Amount = 1 + rng.Next(10_000) };
            }
            engine.SubmitBatch(batch.AsSpan(0, n));
            records += n;
            events += 2L * n;
        }
        engine.Stop();
        if (engine.Fault is { } fault) throw new LoadException("the engine failed: " + fault.Message);
        return records;
    }

    /// <summary>
    /// Creates the topic with <see cref="KafkaSinkBenchOptions.Partitions"/> partitions. A broker that cannot (librdkafka
    /// 2.0's mock cluster answers CreateTopics without a controller) or a topic that exists leaves it to the broker:
    /// the topic is then auto-created on first use, or used as it is; the run prints its partitions either way.
    /// </summary>
    private static void CreateTopic(KafkaSinkBenchOptions o, string topic, TextWriter output)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = o.BootstrapServers }).SetLogHandler((_, _) => { }).Build();
        try
        {
            admin.CreateTopicsAsync([new TopicSpecification { Name = topic, NumPartitions = o.Partitions, ReplicationFactor = 1 }],
                new CreateTopicsOptions { RequestTimeout = TimeSpan.FromSeconds(5), OperationTimeout = TimeSpan.FromSeconds(5) }).GetAwaiter().GetResult();
        }
        catch (KafkaException e)
        {
            output.WriteLine($"topic {topic} not created ({e.Message}): the broker's own (auto-created or existing) is used");
        }
    }

    private static int PartitionsOf(string bootstrap, string topic)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).SetLogHandler((_, _) => { }).Build();
        return admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics.Single().Partitions.Count;
    }

    /// <summary>The machine's 1-minute load average (Linux), to read a figure against what else was running.</summary>
    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    /// <summary>Messages ever written to the topic: the sum of its partitions' high watermarks.</summary>
    private static long CountOnTopic(string bootstrap, string topic, int partitions)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = bootstrap, GroupId = "rampay-load-check" }).SetLogHandler((_, _) => { }).Build();
        long total = 0;
        for (int p = 0; p < partitions; p++)
        {
            var w = consumer.QueryWatermarkOffsets(new TopicPartition(topic, p), TimeSpan.FromSeconds(10));
            total += w.High.Value;
        }
        return total;
    }
}
