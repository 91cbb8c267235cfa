using System.Runtime.CompilerServices;

namespace RamPay.Journal;

/// <summary>
/// Appends records with group commit: <see cref="Append"/> copies a record into a batch buffer,
/// <see cref="Commit"/> writes the whole batch with one write and one fdatasync. A record is
/// durable, and may be acknowledged, once <see cref="DurableSequence"/> has reached it.
/// One thread owns a writer; it is not thread-safe. After an I/O failure it refuses all further
/// calls: the state on disk is unknown until a restart runs recovery.
/// </summary>
public sealed class JournalWriter : IDisposable
{
    private readonly JournalOptions _options;
    private readonly string _directory; // full path, so segment paths compare exactly
    private readonly IJournalFileSystem _files;
    private byte[] _batch;
    private int _batchBytes;
    private IJournalFile? _segment;
    private string? _segmentPath;
    private long _segmentBytes; // committed bytes in the current segment, where the next batch goes
    private Exception? _fault;
    private bool _disposed;

    private JournalWriter(JournalOptions options, string directory, JournalRecoveryReport recovery)
    {
        _options = options;
        _files = options.FileSystem;
        _directory = directory;
        Recovery = recovery;
        _batch = GC.AllocateUninitializedArray<byte>(options.BatchBufferInitialBytes);
        LastSequence = recovery.LastSequence;
        DurableSequence = recovery.LastSequence;
    }

    /// <summary>What recovery found when the writer opened the journal.</summary>
    public JournalRecoveryReport Recovery { get; }

    /// <summary>The last appended sequence, committed or not.</summary>
    public long LastSequence { get; private set; }

    /// <summary>
    /// The last committed sequence: on stable storage when <see cref="JournalOptions.Fsync"/> is true,
    /// only handed to the operating system otherwise.
    /// </summary>
    public long DurableSequence { get; private set; }

    /// <summary>Bytes appended but not yet committed.</summary>
    public int PendingBytes => _batchBytes;

    /// <summary>
    /// Opens (creating if needed) the journal directory, runs <see cref="JournalRecovery.Recover"/>
    /// (cutting a torn tail) and positions after the last valid record. Callers need not recover first.
    /// </summary>
    public static JournalWriter Open(JournalOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        string directory = Path.GetFullPath(options.Directory);
        IJournalFileSystem files = options.FileSystem;
        if (!files.DirectoryExists(directory))
        {
            files.CreateDirectory(directory);
            if (options.Fsync && Path.GetDirectoryName(directory) is { } parent) files.FlushDirectory(parent);
        }

        JournalRecoveryReport recovery = JournalRecovery.Recover(directory, files);
        var writer = new JournalWriter(options, directory, recovery);
        if (recovery.LastSegmentPath is { } path)
        {
            writer._segment = files.OpenWrite(path, create: false);
            writer._segmentPath = path;
            writer._segmentBytes = writer._segment.Length;
        }
        return writer;
    }

    /// <summary>
    /// Buffers one record. No allocation in steady state. Rarely it does I/O first: it commits the
    /// pending batch when the batch buffer is at its maximum size, or when the record would not fit
    /// in the current segment (then it starts a new segment).
    /// </summary>
    /// <exception cref="InvalidOperationException"><paramref name="sequence"/> is not <see cref="LastSequence"/> + 1: a caller bug.</exception>
    public void Append(byte type, long sequence, long timestampMs, ReadOnlySpan<byte> payload)
    {
        ThrowIfUnusable();
        if (sequence != LastSequence + 1) ThrowSequenceNotNext(sequence);
        int recordBytes = RecordFormat.RecordLength(type, payload.Length);
        if (_segment is null || _segmentBytes + _batchBytes + recordBytes > _options.SegmentSizeBytes) StartSegment(sequence);
        if (_batchBytes + recordBytes > _batch.Length) MakeRoom(recordBytes);

        _batchBytes += RecordFormat.Write(_batch.AsSpan(_batchBytes), type, sequence, timestampMs, payload);
        LastSequence = sequence;
    }

    /// <summary>
    /// Writes the pending batch with one write call and one fdatasync. When it returns, every appended
    /// record is durable. An exception leaves the writer faulted: never retry an fsync.
    /// </summary>
    public void Commit()
    {
        ThrowIfUnusable();
        if (_batchBytes == 0) return;
        try
        {
            _segment!.Write(_batch.AsSpan(0, _batchBytes), _segmentBytes);
            if (_options.Fsync) _segment.FlushData();
        }
        catch (Exception e)
        {
            _fault = e;
            throw;
        }
        _segmentBytes += _batchBytes;
        _batchBytes = 0;
        DurableSequence = LastSequence;
    }

    /// <summary>
    /// Deletes segments all of whose records have a sequence below <paramref name="sequence"/>
    /// (pass the oldest kept snapshot's sequence + 1). The segment being appended to is never deleted.
    /// Oldest first, so a crash midway still leaves a contiguous journal. Returns how many were deleted.
    /// </summary>
    public int DeleteSegmentsBefore(long sequence)
    {
        ThrowIfUnusable();
        SegmentFile[] segments = SegmentFile.List(_files, _directory);
        int deleted = 0;
        // segments[i] ends just before segments[i + 1] starts; the last one is the tail and stays.
        for (int i = 0; i + 1 < segments.Length && segments[i + 1].FirstSequence <= sequence; i++)
        {
            if (string.Equals(segments[i].Path, _segmentPath, StringComparison.Ordinal)) break;
            _files.Delete(segments[i].Path);
            deleted++;
        }
        if (deleted > 0 && _options.Fsync) _files.FlushDirectory(_directory);
        return deleted;
    }

    /// <summary>Closes the segment. Records appended since the last <see cref="Commit"/> are discarded: they were never acknowledged.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _segment?.Dispose();
    }

    /// <summary>
    /// Commits what belongs to the current segment, then creates the next one: header written to a
    /// temporary file, flushed, renamed into place, directory flushed. A crash leaves either no segment
    /// or a complete header, never a half-written one under the real name.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void StartSegment(long firstSequence)
    {
        Commit();
        string path = Path.Combine(_directory, SegmentFormat.FileName(firstSequence));
        string temporary = path + SegmentFormat.TempSuffix;
        IJournalFile? next = null;
        try
        {
            next = _files.OpenWrite(temporary, create: true);
            Span<byte> header = stackalloc byte[SegmentFormat.HeaderSize];
            SegmentFormat.WriteHeader(header, firstSequence);
            next.Write(header, 0);
            if (_options.Fsync) next.FlushAll();
            _files.Move(temporary, path, overwrite: false);
            if (_options.Fsync) _files.FlushDirectory(_directory);
        }
        catch (Exception e)
        {
            next?.Dispose();
            _fault = e;
            throw;
        }
        _segment?.Dispose();
        _segment = next;
        _segmentPath = path;
        _segmentBytes = SegmentFormat.HeaderSize;
    }

    /// <summary>Grows the batch buffer (doubling, bounded by the options) or, at its maximum, commits it.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void MakeRoom(int recordBytes)
    {
        if (_batch.Length >= _options.BatchBufferMaxBytes)
        {
            Commit();
            return;
        }
        int size = (int)Math.Min(_options.BatchBufferMaxBytes, Math.Max(2L * _batch.Length, _batchBytes + (long)recordBytes));
        byte[] grown = GC.AllocateUninitializedArray<byte>(size);
        _batch.AsSpan(0, _batchBytes).CopyTo(grown);
        _batch = grown;
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_fault is not null) ThrowFaulted();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowFaulted() =>
        throw new InvalidOperationException("the journal writer failed an earlier write or flush; restart so recovery can establish what is on disk", _fault);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowSequenceNotNext(long sequence) =>
        throw new InvalidOperationException($"journal append out of order: sequence {sequence}, expected {LastSequence + 1}");
}
