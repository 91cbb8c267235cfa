namespace RamPay.Journal;

/// <summary>
/// Follows a journal that a writer is still appending to, for a reader that must keep up with it (the sinks' ledger
/// follower). Unlike <see cref="JournalReader"/>, which scans from a segment's start on every call, a tailer keeps its
/// place (segment and file offset) between polls, so each poll reads only what was appended since.
/// <para>
/// The caller says how far it may read: <see cref="Poll"/> delivers records up to a sequence the writer has already
/// made durable, never beyond, so it never meets a record that is half written. A record it cannot read inside that
/// range is corruption and throws <see cref="JournalCorruptException"/>. One thread; not thread-safe.
/// </para>
/// </summary>
public sealed class JournalTailer : IDisposable
{
    private readonly string _directory;
    private readonly IJournalFileSystem _files;
    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(SegmentScanner.ChunkBytes);
    private IJournalFile? _file;
    private string _filePath = "";
    private long _bufferFileOffset; // file offset of _buffer[0]
    private int _start;
    private int _end;

    /// <summary>A tailer whose first record delivered is <paramref name="afterSequence"/> + 1.</summary>
    public JournalTailer(string directory, long afterSequence)
        : this(OsJournalFileSystem.Instance, directory, afterSequence)
    {
    }

    /// <summary>As the other constructor, through <paramref name="files"/>. It reads retired segments from the journal archive when it starts behind the live journal.</summary>
    public JournalTailer(IJournalFileSystem files, string directory, long afterSequence)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentOutOfRangeException.ThrowIfNegative(afterSequence);
        _files = files;
        _directory = directory;
        LastSequence = afterSequence;
    }

    /// <summary>The last sequence delivered (or skipped at the start).</summary>
    public long LastSequence { get; private set; }

    /// <summary>
    /// Delivers the records after <see cref="LastSequence"/> up to <paramref name="untilSequence"/> (which the writer
    /// has made durable), at most <paramref name="maxRecords"/> of them; returns how many.
    /// </summary>
    public int Poll(long untilSequence, int maxRecords, IRecordVisitor visitor)
    {
        ArgumentNullException.ThrowIfNull(visitor);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRecords, 1);
        int delivered = 0;
        if (LastSequence >= untilSequence) return 0;

        // Bounded: each pass consumes a record, reads a chunk, or moves to the next segment (or returns). Opening a
        // segment adds passes enough to skip every record it could hold.
        _passBudget = 64 + 4L * maxRecords;
        if (_file is null && !OpenSegmentFor(LastSequence + 1)) return 0;
        while (_passBudget-- > 0)
        {
            if (LastSequence >= untilSequence || delivered >= maxRecords) return delivered;
            var status = RecordFormat.TryRead(_buffer.AsSpan(_start, _end - _start), out RecordHeader header, out ReadOnlySpan<byte> payload);
            if (status == RecordReadStatus.Ok)
            {
                if (header.Sequence != _nextInFile)
                    throw Corrupt(JournalProblemKind.SequenceMismatch, _nextInFile, $"record has sequence {header.Sequence}, expected {_nextInFile}");
                _start += header.Length;
                _nextInFile++;
                if (header.Sequence <= LastSequence) continue; // the leading records of the segment the first poll opened
                visitor.OnRecord(in header, payload);
                LastSequence = header.Sequence;
                delivered++;
                continue;
            }
            if (status != RecordReadStatus.Incomplete)
                throw Corrupt(JournalProblemKind.CorruptRecord, _nextInFile, $"{status} in a record the writer had made durable");

            if (ReadMore() > 0) continue;
            // Nothing more in this segment: the writer must have moved on to the next one.
            if (!OpenSegmentFor(LastSequence + 1)) return delivered;
        }
        throw new InvalidOperationException($"journal tail poll in {_filePath} did not finish within its pass bound");
    }

    private long _passBudget;
    private long _nextInFile;

    /// <summary>Slides the unparsed bytes to the front and reads what follows them; returns bytes read (0 at the end of the file).</summary>
    private int ReadMore()
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _bufferFileOffset += _start;
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length) throw Corrupt(JournalProblemKind.CorruptRecord, LastSequence + 1, "a record longer than the read buffer");
        int read = _file!.Read(_buffer.AsSpan(_end), _bufferFileOffset + _end);
        _end += read;
        return read;
    }

    /// <summary>
    /// Opens the segment that holds <paramref name="sequence"/>: the last one starting at or before it. False when
    /// there is none yet, or when it is the segment already open (nothing new to read).
    /// </summary>
    private bool OpenSegmentFor(long sequence)
    {
        ReadableSegments readable = ReadableSegments.List(_files, _directory, sequence);
        SegmentFile[] segments = readable.Segments;
        int found = -1;
        for (int i = 0; i < segments.Length; i++)
        {
            if (segments[i].FirstSequence <= sequence) found = i;
        }
        if (found < 0)
        {
            if (segments.Length > 0) throw readable.Missing(sequence, "following the journal");
            return false;
        }
        if (segments[found].Path == _filePath) return false;
        if (_file is not null && segments[found].FirstSequence != sequence && found <= readable.LiveStart && readable.Manifest is not null)
            throw readable.Missing(sequence, "following the journal");
        if (_file is not null && segments[found].FirstSequence != sequence)
            throw Corrupt(JournalProblemKind.SequenceGap, sequence, $"the segment after {_filePath} starts at {segments[found].FirstSequence}, not at {sequence}");

        _file?.Dispose();
        _file = _files.OpenRead(segments[found].Path);
        _filePath = segments[found].Path;
        Span<byte> header = stackalloc byte[SegmentFormat.HeaderSize];
        int n = _file.Read(header, 0);
        var status = SegmentFormat.TryReadHeader(header[..n], out _, out long first);
        if (status != SegmentHeaderStatus.Ok || first != segments[found].FirstSequence)
            throw Corrupt(JournalProblemKind.BadSegmentHeader, sequence, $"segment header: {status}, first sequence {first}");
        _bufferFileOffset = SegmentFormat.HeaderSize;
        _start = _end = 0;
        // A segment opened in the middle of its records (the first poll) is read from its start, skipping what comes before.
        _nextInFile = first;
        _passBudget += 4 * (_file.Length / RecordFormat.HeaderSize) + 4;
        return true;
    }

    private JournalCorruptException Corrupt(JournalProblemKind kind, long sequence, string message) =>
        new JournalProblem(kind, _filePath, _bufferFileOffset + _start, sequence, message).ToException();

    public void Dispose()
    {
        _file?.Dispose();
        _file = null;
    }
}
