using System.Collections.Concurrent;

namespace RamPay.Journal;

/// <summary>
/// Something that resumes from the journal after a restart (the PostgreSQL and Kafka sinks today; in-server consumers
/// later) and so needs the records after its position to stay in the live journal.
/// </summary>
public interface IJournalConsumer
{
    /// <summary>A short name for logs and the retirement report ("sinks", "webhooks").</summary>
    string Name { get; }

    /// <summary>
    /// The last sequence this consumer has finished with: it never needs a record at or before it again, and it can
    /// rebuild its state from a snapshot at or before it. 0 = it needs the journal from its start (or its position is
    /// not known yet: a sink that has not answered since start). Read from another thread: must be thread-safe.
    /// </summary>
    long FinishedThroughSequence { get; }
}

/// <summary>
/// The journal consumers of one process. A consumer registers when it starts and disposes the registration when it
/// stops; retirement keeps every record after the lowest position. Thread-safe.
/// </summary>
public sealed class JournalConsumerRegistry
{
    private readonly ConcurrentDictionary<long, IJournalConsumer> _consumers = new();
    private long _nextId;

    public IDisposable Register(IJournalConsumer consumer)
    {
        ArgumentNullException.ThrowIfNull(consumer);
        long id = Interlocked.Increment(ref _nextId);
        _consumers[id] = consumer;
        return new Registration(this, id);
    }

    /// <summary>The lowest position of any registered consumer (long.MaxValue when none is), and whose it is.</summary>
    public long LowestPosition(out string? name)
    {
        long lowest = long.MaxValue;
        name = null;
        foreach (var consumer in _consumers.Values)
        {
            long position = consumer.FinishedThroughSequence;
            if (position < lowest)
            {
                lowest = position;
                name = consumer.Name;
            }
        }
        return lowest;
    }

    private sealed class Registration(JournalConsumerRegistry registry, long id) : IDisposable
    {
        public void Dispose() => registry._consumers.TryRemove(id, out _);
    }
}

/// <summary>Configuration of <see cref="JournalRetirement"/>.</summary>
public sealed record JournalRetirementOptions
{
    public required string JournalDirectory { get; init; }
    public required string SnapshotDirectory { get; init; }

    /// <summary>
    /// Where retired segments are moved (RamPay:Journal:ArchiveDirectory); null = they are deleted, and whatever
    /// needs the journal from its first record (<c>rampay db rebuild</c>, a replay without a snapshot) cannot run.
    /// </summary>
    public string? ArchiveDirectory { get; init; }

    public IJournalFileSystem FileSystem { get; init; } = OsJournalFileSystem.Instance;

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(JournalDirectory);
        ArgumentException.ThrowIfNullOrWhiteSpace(SnapshotDirectory);
        ArgumentNullException.ThrowIfNull(FileSystem);
        if (ArchiveDirectory is { } archive)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(archive);
            if (string.Equals(Path.GetFullPath(archive).TrimEnd('/'), Path.GetFullPath(JournalDirectory).TrimEnd('/'), StringComparison.Ordinal))
                throw new ArgumentException("the journal archive must be another directory than the journal");
        }
    }
}

/// <summary>What one retirement pass did.</summary>
/// <param name="Bound">Every record at or before it was no longer needed (the snapshot the pass relied on; 0 = nothing could go).</param>
/// <param name="RetiredThrough">The last sequence of the last segment retired by this pass (0 = none).</param>
/// <param name="HeldBackBy">What kept the bound low: "snapshot" (no newer snapshot) or a consumer's name.</param>
public sealed record RetirementReport(long Bound, int SegmentsRetired, long RetiredThrough, long BytesRetired, bool Archived, string HeldBackBy)
{
    public override string ToString() =>
        SegmentsRetired == 0
            ? $"no journal segment retired (bound {Bound}, held back by {HeldBackBy})"
            : $"{(Archived ? "archived" : "deleted")} {SegmentsRetired} journal segments ({BytesRetired} bytes) through sequence {RetiredThrough} (bound {Bound}, held back by {HeldBackBy})";
}

/// <summary>
/// Bounds the journal's disk: takes out of the live journal directory the segments that every record of is at or
/// before both the newest durable snapshot and the position of every registered consumer, and moves them into the
/// archive (or deletes them when none is configured). The host calls <see cref="RetireNow"/> after each snapshot and
/// periodically (consumers move on between snapshots); calls must not overlap (one thread, or the caller's lock).
/// The journal writer may append concurrently: the segment it appends to, the last one, is never retired.
/// <para>
/// The bound is always the sequence of a snapshot whose CRCs check: a pass first records it as the snapshot
/// directory's retention anchor (<see cref="SnapshotStore.WriteRetentionAnchor"/>), which snapshot pruning keeps, so
/// the engine and every consumer at or after the bound can still rebuild their state after the segments are gone.
/// Then the manifest (<see cref="RetirementManifest"/>) says where the records went, then each segment is moved,
/// oldest first: copied to <c>name.tmp</c> in the archive, fsynced, renamed, the archive directory fsynced, and only
/// then deleted from the journal directory (fsynced last). A crash at any step leaves the segment in the journal, in
/// the archive, or in both, never in neither; the next pass finishes the job.
/// </para>
/// </summary>
public sealed class JournalRetirement
{
    /// <summary>The steps of moving one segment, in order; <see cref="AfterStep"/> lets a test crash after any of them.</summary>
    public enum Step
    {
        AnchorWritten = 1,
        ManifestWritten = 2,
        CopiedToTemporary = 3,
        CopyFlushed = 4,
        RenamedInArchive = 5,
        ArchiveDirectoryFlushed = 6,
        DeletedFromJournal = 7,
        JournalDirectoryFlushed = 8,
    }

    private const int CopyChunkBytes = 1 << 20;

    private readonly JournalRetirementOptions _options;
    private readonly JournalConsumerRegistry _consumers;
    private readonly IJournalFileSystem _files;
    private readonly string _journal;
    private readonly string _snapshots;
    private readonly string? _archive;
    private byte[]? _copyBuffer;

    public JournalRetirement(JournalRetirementOptions options, JournalConsumerRegistry consumers)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(consumers);
        options.Validate();
        _options = options;
        _consumers = consumers;
        _files = options.FileSystem;
        _journal = Path.GetFullPath(options.JournalDirectory);
        _snapshots = Path.GetFullPath(options.SnapshotDirectory);
        _archive = options.ArchiveDirectory is { } a ? Path.GetFullPath(a) : null;
    }

    /// <summary>Called after each step of a pass (tests crash here by throwing).</summary>
    public Action<Step, string>? AfterStep { get; set; }

    public JournalRetirementOptions Options => _options;

    /// <summary>
    /// One pass. <paramref name="extraPosition"/> is one more consumer position for a caller that has no registration
    /// (the simulation), long.MaxValue for none.
    /// </summary>
    public RetirementReport RetireNow(long extraPosition = long.MaxValue)
    {
        long[] snapshots = SnapshotStore.ListValid(_files, _snapshots);
        if (snapshots.Length == 0) return new RetirementReport(0, 0, 0, 0, _archive is not null, "snapshot");

        long lowest = _consumers.LowestPosition(out string? heldBy);
        if (extraPosition < lowest)
        {
            lowest = extraPosition;
            heldBy = "caller";
        }
        // The newest valid snapshot at or before every consumer's position: what they can rebuild from.
        long limit = Math.Min(snapshots[^1], lowest);
        long bound = 0;
        foreach (long s in snapshots)
        {
            if (s <= limit) bound = s;
        }
        string reason = lowest < snapshots[^1] ? heldBy ?? "consumer" : "snapshot";

        if (_archive is not null) RemoveUnfinishedCopies();
        SegmentFile[] live = SegmentFile.List(_files, _journal);
        // Segment i ends where segment i + 1 begins; the last one (the writer's) always stays.
        int retire = 0;
        while (retire + 1 < live.Length && live[retire + 1].FirstSequence - 1 <= bound) retire++;
        if (bound == 0 || retire == 0) return new RetirementReport(bound, 0, 0, 0, _archive is not null, reason);

        long through = live[retire].FirstSequence - 1;
        lock (SnapshotStore.PruneLock(_snapshots))
        {
            if (SnapshotStore.ReadRetentionAnchor(_files, _snapshots) != bound)
            {
                SnapshotStore.WriteRetentionAnchor(_files, _snapshots, bound);
            }
            // The snapshot writer may have pruned it after the listing above; from now on a prune keeps it.
            if (!_files.FileExists(Path.Combine(_snapshots, SnapshotFormat.FileName(bound))))
                return new RetirementReport(bound, 0, 0, 0, _archive is not null, "snapshot pruned meanwhile");
        }
        AfterStep?.Invoke(Step.AnchorWritten, _snapshots);
        RetirementManifest? previous = RetirementManifest.Read(_files, _journal);
        // An archive switched off later keeps being named: it holds the older segments. The newer ones are deleted,
        // and a reader that needs them gets the "archive does not hold it" error.
        var manifest = new RetirementManifest(Math.Max(through, previous?.Through ?? 0), _archive ?? previous?.ArchiveDirectory);
        if (manifest != previous) manifest.Write(_files, _journal);
        AfterStep?.Invoke(Step.ManifestWritten, _journal);

        long bytes = 0;
        for (int i = 0; i < retire; i++)
        {
            bytes += Retire(live[i].Path);
        }
        _files.FlushDirectory(_journal);
        AfterStep?.Invoke(Step.JournalDirectoryFlushed, _journal);
        return new RetirementReport(bound, retire, through, bytes, _archive is not null, reason);
    }

    /// <summary>Moves one segment into the archive (or deletes it); returns its size.</summary>
    private long Retire(string path)
    {
        long length;
        if (_archive is null)
        {
            using (IJournalFile file = _files.OpenRead(path)) length = file.Length;
            _files.Delete(path);
            AfterStep?.Invoke(Step.DeletedFromJournal, path);
            return length;
        }

        if (!_files.DirectoryExists(_archive))
        {
            _files.CreateDirectory(_archive);
            if (Path.GetDirectoryName(_archive) is { } parent) _files.FlushDirectory(parent);
        }
        string name = Path.GetFileName(path);
        string target = Path.Combine(_archive, name);
        string temporary = target + SegmentFormat.TempSuffix;
        _copyBuffer ??= GC.AllocateUninitializedArray<byte>(CopyChunkBytes);
        using (IJournalFile source = _files.OpenRead(path))
        using (IJournalFile copy = _files.OpenWrite(temporary, create: true))
        {
            length = source.Length;
            long offset = 0;
            while (offset < length)
            {
                int read = source.Read(_copyBuffer.AsSpan(0, (int)Math.Min(_copyBuffer.Length, length - offset)), offset);
                if (read == 0) throw new IOException($"{path} shrank while it was copied into the archive");
                copy.Write(_copyBuffer.AsSpan(0, read), offset);
                offset += read;
            }
            AfterStep?.Invoke(Step.CopiedToTemporary, temporary);
            copy.FlushAll();
            AfterStep?.Invoke(Step.CopyFlushed, temporary);
        }
        // overwrite: a copy left by a pass that crashed after its rename is replaced by this identical one.
        _files.Move(temporary, target, overwrite: true);
        AfterStep?.Invoke(Step.RenamedInArchive, target);
        _files.FlushDirectory(_archive);
        AfterStep?.Invoke(Step.ArchiveDirectoryFlushed, _archive);
        _files.Delete(path);
        AfterStep?.Invoke(Step.DeletedFromJournal, path);
        return length;
    }

    /// <summary>Copies that a crashed pass left under their temporary names; the live segment is still in the journal.</summary>
    private void RemoveUnfinishedCopies()
    {
        string[] leftovers = _files.ListFiles(_archive!, SegmentFormat.FilePrefix + "*" + SegmentFormat.FileExtension + SegmentFormat.TempSuffix);
        foreach (string leftover in leftovers) _files.Delete(leftover);
        if (leftovers.Length > 0) _files.FlushDirectory(_archive!);
    }
}

/// <summary>
/// Runs <see cref="JournalRetirement.RetireNow"/> every <paramref name="intervalMs"/> on a timer, one pass at a time,
/// and on demand (<see cref="RequestPass"/>, e.g. after a snapshot). A failed pass is reported to
/// <paramref name="onError"/> and retried at the next tick: retirement only frees disk, it never blocks the writer.
/// </summary>
public sealed class JournalRetirementTimer(JournalRetirement retirement, int intervalMs, Action<RetirementReport> onPass, Action<Exception> onError) : IDisposable
{
    private readonly object _gate = new();
    private Timer? _timer;
    private bool _disposed;

    public void Start()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(intervalMs, 1);
        _timer = new Timer(_ => RequestPass(), null, intervalMs, intervalMs);
    }

    /// <summary>Runs one pass now on the calling thread (waits for a pass in progress first). False when disposed.</summary>
    public bool RequestPass()
    {
        lock (_gate)
        {
            if (_disposed) return false;
            try
            {
                onPass(retirement.RetireNow());
            }
            catch (Exception e)
            {
                onError(e);
            }
            return true;
        }
    }

    public void Dispose()
    {
        _timer?.Dispose();
        lock (_gate) _disposed = true;
    }
}
