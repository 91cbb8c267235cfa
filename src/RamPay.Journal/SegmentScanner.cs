namespace RamPay.Journal;

/// <summary>A segment file found in a journal directory; the first sequence comes from its name.</summary>
internal readonly record struct SegmentFile(string Path, long FirstSequence)
{
    /// <summary>Segment files in sequence order; empty when the directory does not exist.</summary>
    public static SegmentFile[] List(string directory) => List(OsJournalFileSystem.Instance, directory);

    /// <summary>Segment files in sequence order; empty when the directory does not exist.</summary>
    public static SegmentFile[] List(IJournalFileSystem files, string directory)
    {
        var segments = new List<SegmentFile>();
        foreach (string path in files.ListFiles(directory, SegmentFormat.FilePrefix + "*" + SegmentFormat.FileExtension))
        {
            if (SegmentFormat.TryParseFileName(System.IO.Path.GetFileName(path), out long firstSequence))
            {
                segments.Add(new SegmentFile(path, firstSequence));
            }
        }
        segments.Sort(static (a, b) => a.FirstSequence.CompareTo(b.FirstSequence));
        return [.. segments];
    }

    /// <summary>Leftovers of segment creations that crashed before their rename.</summary>
    public static string[] ListTemporary(IJournalFileSystem files, string directory) =>
        files.ListFiles(directory, SegmentFormat.FilePrefix + "*" + SegmentFormat.FileExtension + SegmentFormat.TempSuffix);

    /// <summary>A segment must start right after the previous one's last record; null when it does.</summary>
    public JournalProblem? CheckFollows(long previousLastSequence) =>
        FirstSequence == previousLastSequence + 1
            ? null
            : new JournalProblem(JournalProblemKind.SequenceGap, Path, 0, previousLastSequence + 1,
                $"segment starts at sequence {FirstSequence} but the previous segment ends at {previousLastSequence}");
}

/// <summary>What a scan of one segment found.</summary>
/// <param name="LastSequence">The last valid record's sequence (FirstSequence - 1 when there is none).</param>
/// <param name="ValidBytes">File offset just past the last valid record.</param>
/// <param name="ReachedUntil">The scan stopped early because it delivered the requested last sequence.</param>
internal readonly record struct SegmentScanResult(
    long FirstSequence, long LastSequence, long Records, long FileBytes, long ValidBytes, bool ReachedUntil, JournalProblem? Problem);

/// <summary>
/// Reads segment files in large chunks and parses records out of the buffer, checking CRCs and
/// sequence contiguity. Shared by the reader, the verifier and recovery so they agree on what is
/// valid, torn or corrupt. One instance owns one chunk buffer; not thread-safe.
/// </summary>
internal sealed class SegmentScanner(IJournalFileSystem files)
{
    /// <summary>Bytes read per system call; large enough that a replay is bound by the CRC, not by syscalls.</summary>
    public const int ChunkBytes = 1024 * 1024;

    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(ChunkBytes);

    /// <summary>
    /// Scans <paramref name="segment"/> and hands records with sequence in
    /// (<paramref name="afterSequence"/>, <paramref name="untilSequence"/>] to <paramref name="visitor"/>.
    /// Stops at the first problem. An unreadable spot in the last segment is a torn tail only when no
    /// valid record follows it; otherwise (and anywhere in a non-last segment) it is corruption.
    /// </summary>
    public SegmentScanResult Scan(SegmentFile segment, bool isLast, long afterSequence, long untilSequence, IRecordVisitor? visitor)
    {
        using IJournalFile file = files.OpenRead(segment.Path);
        long fileBytes = file.Length;

        int headerBytes = ReadAt(file, 0, _buffer.AsSpan(0, SegmentFormat.HeaderSize), fileBytes);
        SegmentHeaderStatus headerStatus = SegmentFormat.TryReadHeader(_buffer.AsSpan(0, headerBytes), out uint version, out long firstSequence);
        JournalProblem? headerProblem = headerStatus switch
        {
            SegmentHeaderStatus.Ok when firstSequence == segment.FirstSequence => null,
            SegmentHeaderStatus.Ok => Problem(JournalProblemKind.BadSegmentHeader, segment, 0, segment.FirstSequence,
                $"header says first sequence {firstSequence}, the file name says {segment.FirstSequence}"),
            SegmentHeaderStatus.UnsupportedVersion => Problem(JournalProblemKind.UnsupportedVersion, segment, 0, segment.FirstSequence,
                version > SegmentFormat.CurrentVersion
                    ? $"segment written by a newer RamPay (segment format {version}; this build reads {SegmentFormat.CurrentVersion})"
                    : $"unknown segment format {version}"),
            _ => Problem(JournalProblemKind.BadSegmentHeader, segment, 0, segment.FirstSequence, $"segment header: {headerStatus}"),
        };
        if (headerProblem is not null)
        {
            return new SegmentScanResult(segment.FirstSequence, segment.FirstSequence - 1, 0, fileBytes, 0, false, headerProblem);
        }

        long expected = firstSequence;
        long records = 0;
        long bufferFileOffset = SegmentFormat.HeaderSize; // file offset of _buffer[0]
        int start = 0;
        int end = 0;
        // Every pass either consumes a record (at least HeaderSize bytes), refills, or returns.
        long passesMax = (2 * (fileBytes / RecordFormat.HeaderSize)) + 4;
        for (long pass = 0; pass < passesMax; pass++)
        {
            RecordReadStatus status = RecordFormat.TryRead(_buffer.AsSpan(start, end - start), out RecordHeader header, out ReadOnlySpan<byte> payload);
            long offset = bufferFileOffset + start;
            if (status == RecordReadStatus.Ok)
            {
                if (header.Sequence != expected)
                {
                    return Stop(Problem(JournalProblemKind.SequenceMismatch, segment, offset, expected,
                        $"record has sequence {header.Sequence}, expected {expected} (a gap or a repeat)"));
                }
                if (header.Sequence > afterSequence) visitor?.OnRecord(in header, payload);
                start += header.Length;
                records++;
                expected++;
                if (header.Sequence >= untilSequence)
                {
                    return new SegmentScanResult(firstSequence, expected - 1, records, fileBytes, bufferFileOffset + start, true, null);
                }
                continue;
            }

            long unread = fileBytes - (bufferFileOffset + end);
            if (status == RecordReadStatus.Incomplete && unread > 0)
            {
                // Slide the partial record to the front and read the next chunk behind it.
                Buffer.BlockCopy(_buffer, start, _buffer, 0, end - start);
                bufferFileOffset += start;
                end -= start;
                start = 0;
                end += ReadAt(file, bufferFileOffset + end, _buffer.AsSpan(end), fileBytes);
                continue;
            }
            if (status == RecordReadStatus.Incomplete && start == end)
            {
                return new SegmentScanResult(firstSequence, expected - 1, records, fileBytes, offset, false, null);
            }
            return Stop(ClassifyBadRecord(file, segment, isLast, status, offset, expected, fileBytes));

            SegmentScanResult Stop(JournalProblem problem) =>
                new(firstSequence, expected - 1, records, fileBytes, offset, false, problem);
        }
        throw new InvalidOperationException($"scan of {segment.Path} did not finish within {passesMax} passes");
    }

    private JournalProblem ClassifyBadRecord(
        IJournalFile file, SegmentFile segment, bool isLast, RecordReadStatus status, long offset, long expected, long fileBytes)
    {
        if (status == RecordReadStatus.UnsupportedVersion)
        {
            ReadAt(file, offset, _buffer.AsSpan(0, RecordFormat.HeaderSize), fileBytes);
            byte version = RecordFormat.PeekVersion(_buffer);
            string message = version > RecordFormat.CurrentVersion
                ? $"record written by a newer RamPay (record format {version}; this build reads {RecordFormat.CurrentVersion})"
                : $"record has unknown format version {version}";
            return Problem(JournalProblemKind.UnsupportedVersion, segment, offset, expected, message);
        }
        if (!isLast)
        {
            return Problem(JournalProblemKind.CorruptRecord, segment, offset, expected, $"{status} in a segment that is not the last one");
        }
        long validOffset = FindValidRecordAfter(file, offset, expected - 1, fileBytes, out long validSequence);
        return validOffset < 0
            ? Problem(JournalProblemKind.TornTail, segment, offset, expected, $"{status}; {fileBytes - offset} bytes to the end of the segment hold no valid record")
            : Problem(JournalProblemKind.CorruptRecord, segment, offset, expected,
                $"{status}, but a valid record (sequence {validSequence}) follows at offset {validOffset}: corruption in the middle of the journal");
    }

    /// <summary>
    /// Searches byte by byte after a bad spot for a record with a valid CRC and a plausible sequence
    /// (after the last good one, and no more than the remaining bytes could hold). Rare and slow by design:
    /// it is what tells a torn tail, which may be cut, from damage before acknowledged records, which may not.
    /// </summary>
    private long FindValidRecordAfter(IJournalFile file, long badOffset, long lastGoodSequence, long fileBytes, out long validSequence)
    {
        validSequence = 0;
        long sequenceMax = lastGoodSequence + ((fileBytes - badOffset) / RecordFormat.HeaderSize) + 1;
        // Each window overlaps the next by a maximum record, so a record starting in its first part is whole.
        int stride = ChunkBytes - RecordFormat.MaxRecordSize;
        for (long windowStart = badOffset + 1; windowStart < fileBytes; windowStart += stride)
        {
            int windowBytes = ReadAt(file, windowStart, _buffer, fileBytes);
            int candidates = windowStart + windowBytes >= fileBytes ? windowBytes : stride;
            for (int i = 0; i < candidates; i++)
            {
                if (RecordFormat.TryRead(_buffer.AsSpan(i, windowBytes - i), out RecordHeader header, out _) == RecordReadStatus.Ok
                    && header.Sequence > lastGoodSequence && header.Sequence <= sequenceMax)
                {
                    validSequence = header.Sequence;
                    return windowStart + i;
                }
            }
        }
        return -1;
    }

    /// <summary>Reads up to destination.Length bytes at <paramref name="offset"/>, never past <paramref name="fileBytes"/>.</summary>
    private static int ReadAt(IJournalFile file, long offset, Span<byte> destination, long fileBytes)
    {
        int wanted = (int)Math.Min(destination.Length, Math.Max(0, fileBytes - offset));
        int total = 0;
        // Regular files return short reads only at the end, so this loop runs once or twice.
        while (total < wanted)
        {
            int read = file.Read(destination[total..wanted], offset + total);
            if (read == 0) break;
            total += read;
        }
        return total;
    }

    private static JournalProblem Problem(JournalProblemKind kind, SegmentFile segment, long offset, long sequence, string message) =>
        new(kind, segment.Path, offset, sequence, message);
}
