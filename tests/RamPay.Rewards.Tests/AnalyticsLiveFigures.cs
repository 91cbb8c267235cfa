using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using RamPay.Kafka;
using RamPay.Server.Tests;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// docs/benchmarks.md ("The analytics worker: backlog and live", issue 13), run by <c>bench/analytics-live.sh</c>: the
/// events/s <c>rampay-worker analytics</c> consumes from a local broker (librdkafka's mock, <c>tools/kafka-mock</c>, a
/// process of its own), against the aim of 100,000 payments/s (an ordinary payment, a transfer or deposit, is 2 events:
/// <c>PaymentCreated</c> and <c>PaymentApproved</c>, docs/events.md), so 200,000 events/s, with lag under 1 s.
/// <list type="number">
/// <item><b>Backlog.</b> <c>rampay-load kafka-sink</c> (a real engine's journal, the real Kafka sink: contract events)
/// writes <c>RAMPAY_ANALYTICS_BENCH_BACKLOG_EVENTS</c> events to a topic of <c>RAMPAY_ANALYTICS_BENCH_PARTITIONS</c>
/// partitions; the run checks that the broker dropped none (the mock keeps 5 MiB of message sets per partition,
/// rdkafka_mock.c's <c>max_size</c>: about 60,000 of these events compressed). A new analytics worker then reads it
/// all; the rate is the committed events over the time from its first to its last commit, and the steady rate the
/// middle 80 % of them; the CPU of each of its threads (utime + stime) over the whole run.</item>
/// <item><b>Live.</b> This process produces to a second topic (<c>RAMPAY_ANALYTICS_BENCH_LIVE_PARTITIONS</c> partitions, 8)
/// at a fixed rate (the backlog's first events as templates,
/// their <c>sequence</c> moved on at each pass so that every event is new to the worker), for
/// <c>RAMPAY_ANALYTICS_BENCH_SECONDS</c> at each rate of <c>RAMPAY_ANALYTICS_BENCH_RATES</c> (payments/s; twice as many
/// events/s), while another analytics worker consumes; every 100 ms the group's committed offsets are read from the
/// broker: lag = produced − committed, in events and in seconds (now − when the oldest uncommitted event was produced).
/// The committed offsets move at the worker's flush (at most every 250 ms while events come: the rollups file saved,
/// then the commit), so the lag includes that durable step. CPU of the worker, the broker and this producing process.
/// <c>RAMPAY_ANALYTICS_BENCH_TIME_LAPSE</c> (0: off) moves the events' time on: each event's <c>occurred_at</c> and
/// <c>created_at</c> are its template's plus the time since the live phase began times that factor (60: a stream
/// minute a second), so that the rollups grow as a stream's over hours do (a user's new minute, hour and day buckets)
/// instead of counting into the templates' few minutes; the files the worker leaves are reported.</item>
/// </list>
/// Each result is printed as a line <c>RESULT {json}</c>. <c>RAMPAY_ANALYTICS_BENCH_WORKER_ENV</c>
/// (<c>NAME=VALUE;NAME=VALUE</c>) sets variables of the workers (e.g. <c>DOTNET_gcServer=0</c>), to compare settings.
/// It asserts only what makes a figure valid: no event dropped by the broker, every event committed.
/// </summary>
[Trait("Category", "Figures")]
public sealed class AnalyticsLiveFigures(ITestOutputHelper output)
{
    private static int Setting(string name, int fallback) => int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_ANALYTICS_BENCH_" + name), out int v) ? v : fallback;

    [Fact]
    public async Task Analytics_worker_backlog_and_live_rates()
    {
        int partitions = Setting("PARTITIONS", 32);
        int backlog = Setting("BACKLOG_EVENTS", 1_000_000);
        int seconds = Setting("SECONDS", 10);
        int brokers = Setting("BROKERS", 1);
        // The live topic's partitions: 8 by default, as the topic scripts/services.sh and the deployments create. Not the
        // backlog's 32 (those are for the mock's 5 MiB cap per partition): the mock finds a fetch's message set by walking
        // the partition's list from its oldest (rdkafka_mock.c, rd_kafka_mock_msgset_find, "FIXME: Maintain an index"), so
        // a caught-up consumer's fetch of 32 partitions of small message sets walked ~50,000 of them: its one thread, not
        // the worker, was the limit from 25,000 payments/s (docs/benchmarks.md, "Analytics worker: the fetch queue's backoff").
        int livePartitions = Math.Min(Setting("LIVE_PARTITIONS", 8), partitions);
        string mode = Environment.GetEnvironmentVariable("RAMPAY_ANALYTICS_BENCH_MODE") is { Length: > 0 } m ? m : "both";
        int[] rates = (Environment.GetEnvironmentVariable("RAMPAY_ANALYTICS_BENCH_RATES") is { Length: > 0 } r ? r : "10000,25000,50000,75000,100000")
            .Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        var workerEnv = (Environment.GetEnvironmentVariable("RAMPAY_ANALYTICS_BENCH_WORKER_ENV") ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries)
            .Select(x => x.Split('=', 2)).ToDictionary(x => x[0], x => x[1]);
        string variant = Environment.GetEnvironmentVariable("RAMPAY_ANALYTICS_BENCH_VARIANT") ?? "default";

        const string backlogTopic = "rampay.analytics.backlog", liveTopic = "rampay.analytics.live";
        await using var broker = await PrivateKafkaBroker.StartAsync(brokers, $"{backlogTopic}:{partitions}", $"{liveTopic}:{livePartitions}");
        KafkaNativeLibrary.EnsureLoaded();

        // The backlog: contract events from a real journal through the real sink.
        var clock = Stopwatch.StartNew();
        await RunLoadAsync(["kafka-sink", "--bootstrap", broker.Bootstrap, "--topic", backlogTopic, "--partitions", partitions.ToString(CultureInfo.InvariantCulture),
            "--events", backlog.ToString(CultureInfo.InvariantCulture)]);
        var marks = Watermarks(broker.Bootstrap, backlogTopic, partitions);
        long onTopic = marks.Sum(w => w.High.Value - w.Low.Value);
        output.WriteLine($"backlog: {onTopic:N0} events on {partitions} partitions in {clock.Elapsed.TotalSeconds:0.0} s; per partition {marks.Min(w => w.High.Value):N0} to {marks.Max(w => w.High.Value):N0}");
        Assert.True(marks.All(w => w.Low.Value == 0), "the broker dropped the oldest messages of a partition (the mock keeps 5 MiB per partition): use more partitions or fewer events");

        if (mode is "both" or "backlog") await BacklogAsync(broker, backlogTopic, partitions, onTopic, workerEnv, variant);
        if (mode is "both" or "live") await LiveAsync(broker, backlogTopic, liveTopic, livePartitions, rates, seconds, workerEnv, variant);
    }

    private async Task BacklogAsync(PrivateKafkaBroker broker, string topic, int partitions, long events, Dictionary<string, string> workerEnv, string variant)
    {
        string outDir = NewOutDir();
        double load = Load();
        var brokerBefore = CpuTicks(broker.ProcessId);
        using var worker = new WorkerProcess(["analytics", "--kafka", broker.Bootstrap, "--group", "bench-backlog", "--topic", topic, "--out", outDir], workerEnv);
        var before = WorkerCostFigures.ThreadTicks(worker.Id);
        using var offsets = CommittedReader(broker.Bootstrap, "bench-backlog");
        var clock = Stopwatch.StartNew();
        var samples = new List<(double T, long Committed)>();
        long committed = 0;
        Dictionary<string, long> atLast = before;
        var deadline = DateTime.UtcNow.AddMinutes(10);
        while (committed < events)
        {
            if (worker.HasExited || DateTime.UtcNow > deadline) throw new TimeoutException($"the analytics worker committed {committed} of {events}:\n" + worker.Tail());
            long now = Committed(offsets, topic, partitions);
            if (now != committed)
            {
                committed = now;
                samples.Add((clock.Elapsed.TotalSeconds, committed));
                atLast = WorkerCostFigures.ThreadTicks(worker.Id);
            }
            await Task.Delay(20);
        }
        var brokerTicks = CpuTicks(broker.ProcessId) - brokerBefore;
        var ticks = WorkerCostFigures.Minus(atLast, before);
        double first = samples[0].T, last = samples[^1].T;
        // The middle 80 %: the first commit's round and the JIT's first tiers, and the last partial round, left out.
        var low = samples.First(s => s.Committed >= events / 10);
        var high = samples.First(s => s.Committed >= events * 9 / 10);
        double steady = (high.Committed - low.Committed) / Math.Max(1e-9, high.T - low.T);
        long total = ticks.GetValueOrDefault(WorkerCostFigures.ProcessKey);
        long jit = ticks.GetValueOrDefault(".NET Tiered Com");
        var result = new Dictionary<string, object>
        {
            ["mode"] = "backlog", ["variant"] = variant, ["partitions"] = partitions, ["events"] = events, ["load_start"] = load, ["load_end"] = Load(),
            ["seconds_first_to_last_commit"] = Round(last - first, 2), ["seconds_from_start"] = Round(last, 2),
            ["events_per_s"] = Round((samples[^1].Committed - samples[0].Committed) / Math.Max(1e-9, last - first), 0),
            ["events_per_s_steady"] = Round(steady, 0),
            ["worker_cpu_us_per_event"] = Round(total * 1e4 / events, 2),
            ["worker_cpu_us_per_event_without_jit"] = Round((total - jit) * 1e4 / events, 2),
            ["broker_cpu_us_per_event"] = Round(brokerTicks * 1e4 / events, 2),
            ["worker_threads_us_per_event"] = ticks.Where(x => x.Key != WorkerCostFigures.ProcessKey && x.Value > 0).OrderByDescending(x => x.Value)
                .ToDictionary(x => x.Key, x => Round(x.Value * 1e4 / events, 2)),
        };
        output.WriteLine("RESULT " + JsonSerializer.Serialize(result));
        worker.Kill();
        TryDelete(outDir);
    }

    private async Task LiveAsync(PrivateKafkaBroker broker, string templateTopic, string topic, int partitions, int[] paymentRates, int seconds, Dictionary<string, string> workerEnv, string variant)
    {
        var templates = ReadTemplates(broker.Bootstrap, templateTopic, partitions, perPartition: 8_000);
        string outDir = NewOutDir();
        // RAMPAY_ANALYTICS_BENCH_SEED_USERS in a variant's environment: the worker starts on rollups that already hold two
        // hours of that many users paying every minute, ending at the templates' time (a steady state's size under the
        // default retention), so that its snapshots are as large as a busy stream's.
        if (workerEnv.TryGetValue("RAMPAY_ANALYTICS_BENCH_SEED_USERS", out string? seed) && int.TryParse(seed, CultureInfo.InvariantCulture, out int seedUsers) && seedUsers > 0)
            output.WriteLine($"seeded the worker's rollups: {SeedRollups(outDir, seedUsers, templates.SelectMany(t => t).Min(t => t.TimestampMs))}");
        using var worker = new WorkerProcess(["analytics", "--kafka", broker.Bootstrap, "--group", "bench-live", "--topic", topic, "--out", outDir], workerEnv);
        if (!await WorkerProcess.AllJoinedAsync(TimeSpan.FromSeconds(90), worker)) throw new TimeoutException("the worker never joined:\n" + worker.Tail());
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig
        {
            BootstrapServers = broker.Bootstrap, LingerMs = 5, BatchNumMessages = 10_000, CompressionType = CompressionType.Lz4, Acks = Acks.Leader,
            EnableIdempotence = false, QueueBufferingMaxMessages = 2_000_000, QueueBufferingMaxKbytes = 1_048_576,
        }).Build();
        using var offsets = CommittedReader(broker.Bootstrap, "bench-live");
        int lapse = Setting("TIME_LAPSE", 0);
        var feed = new Feed(templates, topic, producer, lapse);
        // Warm-up (not reported): 20,000 events/s for 4 s, then until the lag is gone.
        await RunRateAsync(feed, 20_000, 4, worker, offsets, partitions, report: null);
        foreach (int payments in paymentRates)
        {
            var result = new Dictionary<string, object> { ["mode"] = "live", ["variant"] = variant, ["partitions"] = partitions, ["payments_per_s"] = payments, ["events_per_s_target"] = payments * 2 };
            var cpuBefore = (Worker: CpuTicks(worker.Id), Broker: CpuTicks(broker.ProcessId), Producer: CpuTicks(Environment.ProcessId));
            result["load_start"] = Load();
            var window = await RunRateAsync(feed, payments * 2, seconds, worker, offsets, partitions, result);
            double wall = window.TotalSeconds;
            result["load_end"] = Load();
            result["cpu_cores_worker"] = Round((CpuTicks(worker.Id) - cpuBefore.Worker) / 100.0 / wall, 2);
            result["cpu_cores_broker"] = Round((CpuTicks(broker.ProcessId) - cpuBefore.Broker) / 100.0 / wall, 2);
            result["cpu_cores_producer"] = Round((CpuTicks(Environment.ProcessId) - cpuBefore.Producer) / 100.0 / wall, 2);
            result["worker_cpu_us_per_event"] = Round((CpuTicks(worker.Id) - cpuBefore.Worker) * 1e4 / Math.Max(1, (long)result["events_produced"]), 2);
            if (lapse > 0)
            {
                result["time_lapse"] = lapse;
                result["stream_minutes_at_end"] = Round(feed.ShiftMs / 60_000.0, 1);
                result["worker_files_mb"] = Round(Directory.EnumerateFiles(outDir).Sum(f => new FileInfo(f).Length) / 1e6, 1);
                result["worker_rss_mb"] = Round(RssBytes(worker.Id) / 1e6, 0);
            }
            output.WriteLine("RESULT " + JsonSerializer.Serialize(result));
        }
        worker.Kill();
        TryDelete(outDir);
    }

    /// <summary>
    /// Produces <paramref name="eventsPerSecond"/> for <paramref name="seconds"/> on a thread of its own (paced by the
    /// clock, in 1 ms steps), samples the lag every 100 ms meanwhile, then waits until the worker committed everything.
    /// Returns the time from the first event produced to the last committed.
    /// </summary>
    private static async Task<TimeSpan> RunRateAsync(Feed feed, int eventsPerSecond, int seconds, WorkerProcess worker, IConsumer<Ignore, Ignore> offsets, int partitions, Dictionary<string, object>? report)
    {
        long start = feed.Sent;
        int resetsStart = SkipLogs(worker);
        long committedStart = Committed(offsets, feed.Topic, partitions);
        var timeline = new List<(double T, long Sent)>(seconds * 1_100);
        var clock = Stopwatch.StartNew();
        var production = Task.Factory.StartNew(() =>
        {
            long target = (long)eventsPerSecond * seconds;
            long sent = 0;
            while (sent < target)
            {
                double t = clock.Elapsed.TotalSeconds;
                long due = Math.Min(target, (long)(t * eventsPerSecond));
                while (sent < due)
                {
                    feed.ProduceNext();
                    sent++;
                }
                lock (timeline) timeline.Add((t, sent));
                Thread.Sleep(1);
            }
            feed.Producer.Flush(TimeSpan.FromSeconds(60));
        }, TaskCreationOptions.LongRunning);
        var lags = new List<(long Events, double Seconds)>();
        var lagTimes = new List<double>();
        while (!production.IsCompleted)
        {
            await Task.Delay(100);
            if (worker.HasExited) throw new InvalidOperationException("the worker exited:\n" + worker.Tail());
            long committed = Committed(offsets, feed.Topic, partitions) - committedStart;
            double now = clock.Elapsed.TotalSeconds;
            (double T, long Sent)[] seen;
            lock (timeline) seen = [.. timeline];
            if (seen.Length == 0) continue;
            long sentNow = seen[^1].Sent;
            // When the oldest event not yet committed (number committed + 1) was produced.
            int i = BinarySearchFirst(seen, committed + 1);
            double lagSeconds = i < 0 ? 0 : now - seen[i].T;
            if (now > 1) // the first second: the group's fetch starting up
            {
                lags.Add((Math.Max(0, sentNow - committed), Math.Max(0, lagSeconds)));
                lagTimes.Add(now);
            }
        }
        await production;
        long produced = feed.Sent - start;
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (Committed(offsets, feed.Topic, partitions) - committedStart < produced)
        {
            if (worker.HasExited || DateTime.UtcNow > deadline) throw new TimeoutException("the worker did not catch up:\n" + worker.Tail());
            await Task.Delay(20);
        }
        var elapsed = clock.Elapsed;
        if (report is not null)
        {
            var events = lags.Select(l => (double)l.Events).Order().ToArray();
            var secs = lags.Select(l => l.Seconds).Order().ToArray();
            report["seconds"] = seconds;
            report["events_produced"] = produced;
            report["events_per_s_produced"] = Round(produced / Math.Max(1e-9, LastT(timeline)), 0);
            report["catch_up_seconds_after_production"] = Round(elapsed.TotalSeconds - LastT(timeline), 2);
            report["lag_samples"] = lags.Count;
            report["lag_events_p50"] = Round(Percentile(events, 0.50), 0);
            report["lag_events_p99"] = Round(Percentile(events, 0.99), 0);
            report["lag_events_max"] = Round(events.Length == 0 ? 0 : events[^1], 0);
            report["lag_s_p50"] = Round(Percentile(secs, 0.50), 3);
            report["lag_s_p99"] = Round(Percentile(secs, 0.99), 3);
            report["lag_s_max"] = Round(secs.Length == 0 ? 0 : secs[^1], 3);
            if (seconds >= 120)
            {
                // A long window: each minute's lag p99 and max, to see whether the lag grows as the worker's state does.
                report["lag_s_p99_by_minute"] = Enumerable.Range(0, (int)Math.Ceiling(seconds / 60.0))
                    .Select(m => Enumerable.Range(0, lags.Count).Where(k => lagTimes[k] >= m * 60 && lagTimes[k] < (m + 1) * 60).Select(k => lags[k].Seconds).Order().ToArray())
                    .Select(w => Round(Percentile(w, 0.99), 3)).ToArray();
                report["lag_s_max_by_minute"] = Enumerable.Range(0, (int)Math.Ceiling(seconds / 60.0))
                    .Select(m => Round(Enumerable.Range(0, lags.Count).Where(k => lagTimes[k] >= m * 60 && lagTimes[k] < (m + 1) * 60).Select(k => lags[k].Seconds).DefaultIfEmpty(0).Max(), 3)).ToArray();
            }
            // The mock keeps 5 MiB of message sets per partition (~60,000 of these events, ~2.4 s of production at
            // 200,000 events/s over 8 partitions): a worker further behind than that finds its fetch offset gone and
            // skips to the earliest kept (KafkaEventSource.OnOffsetReset), so the lag it shows is no longer work done.
            int resets = SkipLogs(worker) - resetsStart;
            report["offset_resets_with_skipped_events"] = resets;
            report["kept_up"] = Percentile(secs, 0.99) < 1.0 && resets == 0;
        }
        return elapsed;

        static double LastT(List<(double T, long Sent)> timeline) { lock (timeline) return timeline.Count == 0 ? 0 : timeline[^1].T; }
    }

    /// <summary>The worker's ERROR lines for events skipped because the broker no longer kept them.</summary>
    private static int SkipLogs(WorkerProcess worker)
    {
        string output = worker.Output;
        int count = 0;
        for (int at = output.IndexOf("NEVER READ", StringComparison.Ordinal); at >= 0; at = output.IndexOf("NEVER READ", at + 1, StringComparison.Ordinal)) count++;
        return count;
    }

    private static int BinarySearchFirst((double T, long Sent)[] timeline, long count)
    {
        int lo = 0, hi = timeline.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) / 2;
            if (timeline[mid].Sent >= count) { found = mid; hi = mid - 1; }
            else lo = mid + 1;
        }
        return found;
    }

    private static double Percentile(double[] sorted, double q) => sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];

    /// <summary>
    /// The live topic's producer: each partition's templates in their order, round-robin over the partitions, each
    /// event's <c>sequence</c> (and the same number in its <c>event_id</c>) moved on by a pass count times the largest
    /// sequence, so that every event is newer than the one before it in its partition (the worker skips what is not).
    /// </summary>
    private sealed class Feed(List<Template>[] templates, string topic, IProducer<byte[], byte[]> producer, int timeLapse)
    {
        private readonly long _span = templates.SelectMany(t => t).Max(t => t.Sequence) + 1;
        private readonly Stopwatch _since = Stopwatch.StartNew();
        /// <summary>How far the events' time has been moved on (the time lapse).</summary>
        public long ShiftMs => (long)(_since.Elapsed.TotalMilliseconds * timeLapse);
        private readonly long[] _next = new long[templates.Length];
        private long _sent;
        public string Topic => topic;
        public IProducer<byte[], byte[]> Producer => producer;
        public long Sent => Interlocked.Read(ref _sent);

        public void ProduceNext()
        {
            int p = (int)(_sent % templates.Length);
            var list = templates[p];
            long n = _next[p]++;
            var t = list[(int)(n % list.Count)];
            var value = t.With(t.Sequence + n / list.Count * _span);
            if (timeLapse > 0) Template.MoveTimes(value, ShiftMs);
            var message = new Message<byte[], byte[]> { Key = t.Key, Value = value, Timestamp = new Timestamp(t.TimestampMs, TimestampType.CreateTime) };
            while (true)
            {
                try
                {
                    producer.Produce(new TopicPartition(topic, p), message);
                    break;
                }
                catch (ProduceException<byte[], byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    producer.Poll(TimeSpan.FromMilliseconds(5));
                }
            }
            Interlocked.Increment(ref _sent);
        }
    }

    /// <summary>An event's JSON with where its sequence is written (in <c>event_id</c> and in <c>sequence</c>).</summary>
    private sealed class Template(byte[] key, byte[] json, long timestampMs)
    {
        private static readonly byte[] IdStart = "{\"event_id\":\""u8.ToArray();
        private static readonly byte[] SequenceField = ",\"sequence\":"u8.ToArray();
        public readonly byte[] Key = key;
        public readonly long TimestampMs = timestampMs;
        public readonly long Sequence = SequenceOf(json);
        private readonly int _digits = SequenceOf(json).ToString(CultureInfo.InvariantCulture).Length;
        private readonly int _sequenceAt = json.AsSpan().IndexOf(SequenceField) + SequenceField.Length;

        public byte[] With(long sequence)
        {
            if (!json.AsSpan().StartsWith(IdStart) || _sequenceAt < SequenceField.Length) throw new InvalidDataException("not an event's JSON: " + Encoding.UTF8.GetString(json));
            Span<byte> digits = stackalloc byte[20];
            int d = sequence.TryFormat(digits, out int w, provider: CultureInfo.InvariantCulture) ? w : throw new InvalidOperationException();
            var value = new byte[json.Length + 2 * (d - _digits)];
            var o = value.AsSpan();
            var j = json.AsSpan();
            j[..IdStart.Length].CopyTo(o);
            o = o[IdStart.Length..];
            digits[..d].CopyTo(o);
            o = o[d..];
            j[(IdStart.Length + _digits).._sequenceAt].CopyTo(o);
            o = o[(_sequenceAt - IdStart.Length - _digits)..];
            digits[..d].CopyTo(o);
            o = o[d..];
            j[(_sequenceAt + _digits)..].CopyTo(o);
            return value;
        }

        private static readonly byte[][] TimeFields = ["\"occurred_at\":\""u8.ToArray(), "\"created_at\":\""u8.ToArray()];

        /// <summary>Moves every <c>occurred_at</c> and <c>created_at</c> of an event on by <paramref name="shiftMs"/>, in place (the contract's times are all "yyyy-MM-ddTHH:mm:ss.fffZ").</summary>
        public static void MoveTimes(byte[] json, long shiftMs)
        {
            foreach (var field in TimeFields)
                for (int from = 0; ;)
                {
                    int at = json.AsSpan(from).IndexOf(field);
                    if (at < 0) break;
                    var time = json.AsSpan(from + at + field.Length, 24);
                    var t = new DateTime(D(time, 0, 4), D(time, 5, 2), D(time, 8, 2), D(time, 11, 2), D(time, 14, 2), D(time, 17, 2), D(time, 20, 3), DateTimeKind.Utc);
                    if (!t.AddMilliseconds(shiftMs).TryFormat(time, out int written, "yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture) || written != 24)
                        throw new InvalidOperationException("a moved time of another width");
                    from += at + field.Length + 24;
                }
        }

        private static int D(ReadOnlySpan<byte> time, int i, int n)
        {
            int v = 0;
            for (int k = i; k < i + n; k++) v = (uint)(time[k] - '0') <= 9 ? v * 10 + (time[k] - '0') : throw new InvalidDataException("not a contract time: " + Encoding.ASCII.GetString(time));
            return v;
        }

        private static long SequenceOf(byte[] json)
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.GetProperty("sequence").GetInt64();
        }
    }

    /// <summary>The first <paramref name="perPartition"/> events of each partition of the backlog topic.</summary>
    private static List<Template>[] ReadTemplates(string bootstrap, string topic, int partitions, int perPartition)
    {
        var lists = Enumerable.Range(0, partitions).Select(_ => new List<Template>()).ToArray();
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = bootstrap, GroupId = "bench-templates", EnableAutoCommit = false }).Build();
        var marks = Watermarks(bootstrap, topic, partitions);
        consumer.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(topic, p, 0)));
        int want = Enumerable.Range(0, partitions).Sum(p => (int)Math.Min(perPartition, marks[p].High.Value));
        int have = 0;
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (have < want)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"read {have} of {want} templates");
            var m = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (m is null) continue;
            var list = lists[m.Partition.Value];
            if (list.Count >= perPartition) continue;
            list.Add(new Template(m.Message.Key, m.Message.Value, m.Message.Timestamp.UnixTimestampMs));
            have++;
        }
        return lists;
    }

    private static IConsumer<Ignore, Ignore> CommittedReader(string bootstrap, string group) =>
        // Never subscribes: only reads the group's committed offsets (OffsetFetch needs no membership).
        new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = bootstrap, GroupId = group, EnableAutoCommit = false }).SetLogHandler((_, _) => { }).Build();

    private static long Committed(IConsumer<Ignore, Ignore> reader, string topic, int partitions)
    {
        try
        {
            return reader.Committed(Enumerable.Range(0, partitions).Select(p => new TopicPartition(topic, p)), TimeSpan.FromSeconds(10)).Sum(o => Math.Max(0, o.Offset.Value));
        }
        catch (KafkaException)
        {
            return 0; // the group is being formed
        }
    }

    private static WatermarkOffsets[] Watermarks(string bootstrap, string topic, int partitions)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = bootstrap, GroupId = "bench-watermarks" }).Build();
        return Enumerable.Range(0, partitions).Select(p => consumer.QueryWatermarkOffsets(new TopicPartition(topic, p), TimeSpan.FromSeconds(30))).ToArray();
    }

    /// <summary>Runs <c>rampay-load ARGS</c> (RAMPAY_LOAD, or bench/RamPay.Load's Release build above this folder) to its end.</summary>
    private async Task RunLoadAsync(string[] args)
    {
        string? load = Environment.GetEnvironmentVariable("RAMPAY_LOAD");
        if (string.IsNullOrEmpty(load))
        {
            string? dir = AppContext.BaseDirectory;
            while (dir is not null && !Directory.Exists(Path.Combine(dir, "bench", "RamPay.Load"))) dir = Path.GetDirectoryName(dir);
            load = dir is null ? "" : Path.Combine(dir, "bench", "RamPay.Load", "bin", "Release", "net10.0", "rampay-load.dll");
        }
        if (!File.Exists(load)) throw new FileNotFoundException($"rampay-load not found at '{load}': build bench/RamPay.Load -c Release or set RAMPAY_LOAD", load);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(load);
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("rampay-load did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        output.WriteLine((await stdout).TrimEnd());
        if (process.ExitCode != 0) throw new InvalidOperationException($"rampay-load exited {process.ExitCode}: {await stderr}");
    }

    /// <summary>Two hours of <paramref name="users"/> users each paying once a minute, ending a minute before <paramref name="endMs"/>, saved as the worker's rollups.</summary>
    private static string SeedRollups(string outDir, int users, long endMs)
    {
        var clock = Stopwatch.StartNew();
        var store = new RamPay.Analytics.AnalyticsStore(Path.Combine(outDir, "analytics.rollups"));
        var random = new Random(1);
        long sequence = 0, start = endMs - 121 * 60_000L;
        for (int m = 0; m < 120; m++)
        {
            var (batch, fields) = AnalyticsGrowthFigures.MinuteOfPayments(start + m * 60_000L, 0, users, users, ref sequence, random, "seed");
            store.Apply(batch, fields, null, saveNow: false);
        }
        store.SaveSnapshot();
        string said = $"{store.Rollups.UserBuckets.Count:N0} user buckets, a {store.Sizes.SnapshotBytes / 1e6:0.0} MB snapshot, in {clock.Elapsed.TotalSeconds:0.0} s";
        store.Dispose();
        return said;
    }

    /// <summary>A process's resident memory (VmRSS of /proc/PID/status).</summary>
    private static long RssBytes(int pid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        return 0;
    }

    /// <summary>utime + stime of a whole process, in clock ticks (1/100 s).</summary>
    private static long CpuTicks(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
    }

    private static string NewOutDir() => Path.Combine(Path.GetTempPath(), "rampay-analytics-live-" + Guid.NewGuid().ToString("N"));

    private static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static double Round(double v, int digits) => Math.Round(v, digits);

    private static double Load() => double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture);
}
