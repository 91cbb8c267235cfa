namespace RamPay.Journal;

/// <summary>What a read delivered.</summary>
/// <param name="LastSequence">The last record delivered, or 0 when none was.</param>
/// <param name="TornTail">An unreadable end of the last segment the read stopped at (recovery has not cut it yet), else null.</param>
public readonly record struct JournalReadSummary(long RecordsVisited, long LastSequence, JournalProblem? TornTail);

/// <summary>
/// Replays a journal: records in sequence order across segments, every CRC and sequence checked,
/// read in 1 MiB chunks with no allocation per record. Safe to run while a writer appends: it sees
/// the records that were written when each segment was opened.
/// </summary>
public static class JournalReader
{
    /// <summary>Visits every record with sequence greater than <paramref name="afterSequence"/> (replay after a snapshot).</summary>
    /// <exception cref="JournalCorruptException">A gap, a repeat, a bad record before valid data, or missing (deleted) records.</exception>
    public static JournalReadSummary Read(string directory, long afterSequence, IRecordVisitor visitor) =>
        ReadRange(OsJournalFileSystem.Instance, directory, afterSequence + 1, long.MaxValue, visitor);

    /// <summary>As <see cref="Read(string, long, IRecordVisitor)"/>, through <paramref name="files"/>.</summary>
    public static JournalReadSummary Read(IJournalFileSystem files, string directory, long afterSequence, IRecordVisitor visitor) =>
        ReadRange(files, directory, afterSequence + 1, long.MaxValue, visitor);

    /// <summary>Visits the records with sequence in [<paramref name="fromSequence"/>, <paramref name="toSequence"/>] (inspection).</summary>
    public static JournalReadSummary ReadRange(string directory, long fromSequence, long toSequence, IRecordVisitor visitor) =>
        ReadRange(OsJournalFileSystem.Instance, directory, fromSequence, toSequence, visitor);

    /// <summary>
    /// As the other overload, through <paramref name="files"/>. Records before the first live segment are read from
    /// the journal archive the retirement manifest names; when they are not there the read throws
    /// <see cref="JournalArchiveMissingException"/> before delivering anything.
    /// </summary>
    public static JournalReadSummary ReadRange(IJournalFileSystem files, string directory, long fromSequence, long toSequence, IRecordVisitor visitor)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(visitor);
        ArgumentOutOfRangeException.ThrowIfLessThan(fromSequence, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(toSequence, fromSequence - 1);

        ReadableSegments readable = ReadableSegments.List(files, directory, fromSequence);
        SegmentFile[] segments = readable.Segments;
        if (segments.Length == 0 || fromSequence > toSequence) return new JournalReadSummary(0, 0, null);
        if (fromSequence < segments[0].FirstSequence) throw readable.Missing(fromSequence, "reading the journal");

        // Start in the last segment that begins at or before fromSequence; earlier ones hold nothing wanted.
        int first = 0;
        while (first + 1 < segments.Length && segments[first + 1].FirstSequence <= fromSequence) first++;

        var scanner = new SegmentScanner(files);
        var counter = new CountingVisitor(visitor);
        long previousLast = segments[first].FirstSequence - 1;
        for (int i = first; i < segments.Length; i++)
        {
            JournalProblem? gap = segments[i].CheckFollows(previousLast);
            // A hole inside the archive, or between it and the live journal, is a missing archive segment.
            if (gap is not null && i <= readable.LiveStart && readable.Manifest is not null) throw readable.Missing(previousLast + 1, "reading the journal");
            if (gap is not null) throw gap.ToException();

            bool isLast = i == segments.Length - 1;
            SegmentScanResult result = scanner.Scan(segments[i], isLast, fromSequence - 1, toSequence, counter);
            if (result.Problem is { Kind: JournalProblemKind.TornTail } torn) return counter.Summary(torn);
            if (result.Problem is not null) throw result.Problem.ToException();
            if (result.ReachedUntil) break;
            previousLast = result.LastSequence;
        }
        return counter.Summary(null);
    }

    /// <summary>Counts what the caller's visitor saw, so the summary needs no second pass.</summary>
    private sealed class CountingVisitor(IRecordVisitor inner) : IRecordVisitor
    {
        private long _visited;
        private long _lastSequence;

        public void OnRecord(in RecordHeader header, ReadOnlySpan<byte> payload)
        {
            inner.OnRecord(in header, payload);
            _visited++;
            _lastSequence = header.Sequence;
        }

        public JournalReadSummary Summary(JournalProblem? tornTail) => new(_visited, _lastSequence, tornTail);
    }
}
