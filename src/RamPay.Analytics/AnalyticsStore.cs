using System.Diagnostics;
using RamPay.Events;
using RamPay.Journal;

namespace RamPay.Analytics;

/// <summary>
/// The rollups and the positions they reach, persisted together in one file (replaced atomically: temp file, fsync,
/// rename, fsync of the folder), so that a start resumes from where the file says rather than rebuilding, and a crash
/// between two saves only re-feeds the events after the saved position (which the rollups do not hold yet).
/// <para>
/// Format, version 1 (little-endian): magic "RPAN", i32 version, i64 events applied; i32 position count, each a source
/// (string) and its position (i64 sequence, i32 index, i32 ordinal); i32 measure count M; i32 bucket count, each: u8
/// interval, i64 start ms, u16 currency, M × i64; i32 user-bucket count, each: i64 user, u8 interval, i64 start, u16
/// currency, 4 × i64; i32 open distinct-set count, each: u8 interval, i64 start, u16 currency, i32 n + n × i64 senders,
/// i32 m + m × i64 receivers.
/// Version 2 appends the fraud score distribution: i32 model count, each a string (the version, index order); i32 cell
/// count, each: u8 interval, i64 start, u16 currency, u16 model index, u8 bin, i64 payments. A version 1 file loads
/// with no scores (those of the events it already holds are not counted: docs/analytics.md).
/// </para>
/// </summary>
public sealed class AnalyticsStore
{
    private const uint Magic = 0x4E415052; // "RPAN"
    private const int Version = 2;
    private readonly string _path;
    private readonly Stopwatch _sinceSave = Stopwatch.StartNew();
    private bool _dirty;
    private readonly object _saving = new(); // Apply and Save (the consumer's task, the host's timer and stop) one at a time

    public AnalyticsStore(string path)
    {
        _path = path;
        Rollups = File.Exists(path) ? Load(path) : new AnalyticsRollups();
    }

    public AnalyticsRollups Rollups { get; }
    public string Path => _path;
    /// <summary>How often the rollups are saved while events keep coming (a batch applied with saveNow is saved at once; the analytics worker sets this to never and saves at its flush).</summary>
    public int SaveEveryMs { get; init; } = 1_000;
    public long Saves { get; private set; }

    public void Apply(EventBatch batch, bool saveNow) => Apply(batch, AnalyticsRollups.Parse(batch.Events), null, saveNow);

    public void Apply(EventBatch batch, EventFields[] fields, IReadOnlyDictionary<long, PaymentScore>? scores, bool saveNow)
    {
        lock (_saving)
        {
            Rollups.Apply(batch, fields, scores);
            _dirty = true;
            if (saveNow || _sinceSave.ElapsedMilliseconds >= SaveEveryMs) SaveLocked();
        }
    }

    /// <summary>Writes the file if anything changed since the last save.</summary>
    public void Save()
    {
        lock (_saving) SaveLocked();
    }

    private void SaveLocked()
    {
        if (!_dirty) return;
        using var buffer = new MemoryStream();
        lock (Rollups.Gate) Write(Rollups, buffer);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(_path))!);
        AtomicFile.Write(_path, buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
        _dirty = false;
        Saves++;
        _sinceSave.Restart();
    }

    internal static void Write(AnalyticsRollups r, Stream stream)
    {
        using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        w.Write(Magic); w.Write(Version); w.Write(r.EventsApplied);
        w.Write(r.Positions.Count);
        foreach (var (source, p) in r.Positions.OrderBy(kv => kv.Key, StringComparer.Ordinal)) { w.Write(source); w.Write(p.Sequence); w.Write(p.Index); w.Write(p.Ordinal); }
        w.Write(AnalyticsRollups.MeasureCount);
        w.Write(r.Buckets.Count);
        foreach (var (k, v) in r.Buckets) { w.Write((byte)k.Interval); w.Write(k.StartMs); w.Write(k.Currency); foreach (long x in v) w.Write(x); }
        w.Write(r.UserBuckets.Count);
        foreach (var (k, v) in r.UserBuckets) { w.Write(k.User); w.Write((byte)k.Interval); w.Write(k.StartMs); w.Write(k.Currency); foreach (long x in v) w.Write(x); }
        w.Write(r.ActiveSets.Count);
        foreach (var (k, v) in r.ActiveSets)
        {
            w.Write((byte)k.Interval); w.Write(k.StartMs); w.Write(k.Currency);
            w.Write(v.Senders.Count); foreach (long x in v.Senders) w.Write(x);
            w.Write(v.Receivers.Count); foreach (long x in v.Receivers) w.Write(x);
        }
        w.Write(r.Models.Count);
        foreach (string model in r.Models) w.Write(model);
        w.Write(r.Scores.Count);
        foreach (var (k, v) in r.Scores) { w.Write((byte)k.Interval); w.Write(k.StartMs); w.Write(k.Currency); w.Write(k.Model); w.Write(k.Bin); w.Write(v); }
    }

    internal static AnalyticsRollups Load(string path)
    {
        using var stream = File.OpenRead(path);
        using var r = new BinaryReader(stream);
        if (r.ReadUInt32() != Magic) throw new InvalidDataException($"{path} is not a RamPay analytics file");
        int version = r.ReadInt32();
        if (version is not (1 or Version)) throw new InvalidDataException($"{path}: analytics file version {version} is not known to this RamPay");
        var rollups = new AnalyticsRollups { EventsApplied = r.ReadInt64() };
        int positions = r.ReadInt32();
        for (int i = 0; i < positions; i++) rollups.Positions[r.ReadString()] = new EventPosition(r.ReadInt64(), r.ReadInt32(), r.ReadInt32());
        int measures = r.ReadInt32();
        if (measures > AnalyticsRollups.MeasureCount) throw new InvalidDataException($"{path} holds {measures} measures; this RamPay knows {AnalyticsRollups.MeasureCount}");
        int buckets = r.ReadInt32();
        for (int i = 0; i < buckets; i++)
        {
            var key = ((Interval)r.ReadByte(), r.ReadInt64(), r.ReadUInt16());
            var values = new long[AnalyticsRollups.MeasureCount];
            for (int m = 0; m < measures; m++) values[m] = r.ReadInt64();
            rollups.Buckets.Add(key, values);
        }
        int users = r.ReadInt32();
        for (int i = 0; i < users; i++)
        {
            var key = (r.ReadInt64(), (Interval)r.ReadByte(), r.ReadInt64(), r.ReadUInt16());
            var values = new long[AnalyticsRollups.UserMeasures];
            for (int m = 0; m < values.Length; m++) values[m] = r.ReadInt64();
            rollups.UserBuckets.Add(key, values);
        }
        int sets = r.ReadInt32();
        for (int i = 0; i < sets; i++)
        {
            var key = ((Interval)r.ReadByte(), r.ReadInt64(), r.ReadUInt16());
            var senders = new HashSet<long>();
            for (int n = r.ReadInt32(); n > 0; n--) senders.Add(r.ReadInt64());
            var receivers = new HashSet<long>();
            for (int n = r.ReadInt32(); n > 0; n--) receivers.Add(r.ReadInt64());
            rollups.ActiveSets.Add(key, (senders, receivers));
        }
        if (version >= 2)
        {
            int models = r.ReadInt32();
            for (int i = 0; i < models; i++) rollups.AddModel(r.ReadString());
            int cells = r.ReadInt32();
            for (int i = 0; i < cells; i++)
            {
                var key = ((Interval)r.ReadByte(), r.ReadInt64(), r.ReadUInt16(), r.ReadUInt16(), r.ReadByte());
                if (key.Item4 >= models || key.Item5 > 9) throw new InvalidDataException($"{path}: a score cell names model {key.Item4} of {models}, bin {key.Item5}");
                rollups.Scores.Add(key, r.ReadInt64());
            }
        }
        if (stream.Position != stream.Length) throw new InvalidDataException($"{path}: trailing bytes");
        return rollups;
    }
}

/// <summary>
/// The analytics consumer: every event into the rollups. Fed from the server's event log it saves at most once a
/// second (what a crash loses since is fed again: its checkpoint is the position saved with the rollups); fed from
/// Kafka it saves every batch before the offsets are committed (<c>rampay-worker analytics</c> does not use it: its
/// <c>AnalyticsRole.Worker</c> applies batches to the same store and saves when the worker flushes, before a commit).
/// </summary>
public sealed class AnalyticsConsumer(AnalyticsStore store, AnalyticsConsumer.ScoreLookup? scores = null) : IEventConsumer
{
    /// <summary>The fraud scores of these payments (those scored; the others are left out), read where the ledger is: in the server, through the ring.</summary>
    public delegate Task<IReadOnlyDictionary<long, PaymentScore>> ScoreLookup(IReadOnlyList<long> paymentIds, CancellationToken cancellationToken);

    public string Name => "analytics";
    public AnalyticsStore Store => store;

    /// <summary>The position the rollups in memory hold (at start, the saved one): the feeder resumes after it.</summary>
    public ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(store.Rollups.PositionOf(EventBatch.LogSource));

    public async ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken)
    {
        // One parse per event; the scores of the payments the batch creates in one lookup (one query through the ring).
        var fields = AnalyticsRollups.Parse(batch.Events);
        IReadOnlyDictionary<long, PaymentScore>? known = null;
        if (scores is not null)
        {
            var ids = AnalyticsRollups.ScoreCandidates(batch.Events, fields);
            if (ids.Count > 0) known = await scores(ids, cancellationToken).ConfigureAwait(false);
        }
        store.Apply(batch, fields, known ?? (scores is null ? null : Empty), saveNow: !batch.FromLog);
    }

    private static readonly IReadOnlyDictionary<long, PaymentScore> Empty = new Dictionary<long, PaymentScore>();
}
