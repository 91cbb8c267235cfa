namespace RamPay.Journal;

/// <summary>One segment as the verifier found it.</summary>
/// <param name="ValidBytes">File offset just past the last valid record.</param>
public sealed record JournalSegmentSummary(string Path, long FirstSequence, long LastSequence, long Records, long FileBytes, long ValidBytes);

/// <summary>Result of <see cref="JournalVerifier.Verify"/>: counts, ranges and every problem with its location.</summary>
public sealed class JournalVerifyReport
{
    public required string Directory { get; init; }
    public required IReadOnlyList<JournalSegmentSummary> Segments { get; init; }
    public required IReadOnlyList<JournalProblem> Problems { get; init; }

    /// <summary>Segment files whose creation crashed before the rename; recovery deletes them.</summary>
    public required IReadOnlyList<string> TemporaryFiles { get; init; }

    public long Records => Segments.Sum(s => s.Records);
    public long Bytes => Segments.Sum(s => s.FileBytes);

    /// <summary>First valid sequence, 0 for an empty journal.</summary>
    public long FirstSequence => Segments.FirstOrDefault(s => s.Records > 0)?.FirstSequence ?? 0;

    /// <summary>Last valid sequence, 0 for an empty journal.</summary>
    public long LastSequence => Segments.LastOrDefault(s => s.Records > 0)?.LastSequence ?? 0;

    public bool IsHealthy => Problems.Count == 0;

    public override string ToString() =>
        $"{Directory}: {Segments.Count} segments, {Records} records, sequences {FirstSequence}..{LastSequence}, {Bytes} bytes, "
        + (IsHealthy ? "no problems" : $"{Problems.Count} problems:{Environment.NewLine}  " + string.Join(Environment.NewLine + "  ", Problems));
}

/// <summary>Checks every segment header, record CRC and sequence of a journal without changing a byte.</summary>
public static class JournalVerifier
{
    public static JournalVerifyReport Verify(string directory) => Verify(directory, OsJournalFileSystem.Instance);

    /// <summary>As <see cref="Verify(string)"/>, through <paramref name="files"/>. Only the live directory: retired segments are not read.</summary>
    public static JournalVerifyReport Verify(string directory, IJournalFileSystem files)
    {
        ArgumentNullException.ThrowIfNull(files);
        SegmentFile[] segments = SegmentFile.List(files, directory);
        var summaries = new List<JournalSegmentSummary>(segments.Length);
        var problems = new List<JournalProblem>();
        var scanner = new SegmentScanner(files);
        // Unknown after a damaged segment: its true end cannot be known, so no gap is claimed after it.
        long? previousLast = null;
        for (int i = 0; i < segments.Length; i++)
        {
            if (previousLast is long last && segments[i].CheckFollows(last) is { } gap) problems.Add(gap);

            SegmentScanResult result = scanner.Scan(segments[i], i == segments.Length - 1, long.MaxValue, long.MaxValue, visitor: null);
            summaries.Add(new JournalSegmentSummary(segments[i].Path, result.FirstSequence, result.LastSequence, result.Records, result.FileBytes, result.ValidBytes));
            if (result.Problem is not null) problems.Add(result.Problem);
            previousLast = result.Problem is null ? result.LastSequence : null;
        }
        return new JournalVerifyReport
        {
            Directory = directory,
            Segments = summaries,
            Problems = problems,
            TemporaryFiles = SegmentFile.ListTemporary(files, directory),
        };
    }
}
