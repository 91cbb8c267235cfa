namespace RamPay.Journal;

/// <summary>
/// The journal on disk contradicts itself (bad CRC before valid data, a sequence gap, a broken
/// segment header). Never skipped silently: an operator has to look at the named file and offset.
/// </summary>
public class JournalCorruptException : IOException
{
    public JournalCorruptException(JournalProblem problem)
        : base(problem.ToString())
    {
        Problem = problem;
    }

    public JournalProblem Problem { get; }
    public string FilePath => Problem.FilePath;
    public long Offset => Problem.Offset;
    public long Sequence => Problem.Sequence;
}

/// <summary>The journal holds data written by a newer RamPay; this build must not read or truncate it.</summary>
public sealed class JournalVersionException : JournalCorruptException
{
    public JournalVersionException(JournalProblem problem)
        : base(problem)
    {
    }
}

/// <summary>Classifies a <see cref="JournalProblem"/>; only <see cref="TornTail"/> is repairable.</summary>
public enum JournalProblemKind : byte
{
    /// <summary>Unreadable bytes at the end of the last segment with no valid record after them: an unacknowledged write.</summary>
    TornTail = 1,
    /// <summary>An unreadable record with valid data after it, or anywhere in a non-last segment.</summary>
    CorruptRecord = 2,
    /// <summary>A checksum-valid record whose sequence is not the previous one + 1.</summary>
    SequenceMismatch = 3,
    /// <summary>A segment that does not start right after the previous segment's last record.</summary>
    SequenceGap = 4,
    /// <summary>A segment header that is unreadable or disagrees with the file name.</summary>
    BadSegmentHeader = 5,
    /// <summary>Data written by a newer RamPay.</summary>
    UnsupportedVersion = 6,
    /// <summary>The records requested by a reader were deleted (segments below a snapshot).</summary>
    MissingRecords = 7,
    /// <summary>
    /// Raised by a consumer, not by the journal (which treats types and payloads as opaque): an intact
    /// record whose type the consumer does not know.
    /// </summary>
    BadRecordType = 8,
    /// <summary>Raised by a consumer: an intact record whose payload does not decode.</summary>
    BadPayload = 9,
    /// <summary>The journal's retirement manifest (<see cref="RetirementManifest"/>) does not parse or fails its CRC.</summary>
    BadRetirementManifest = 10,
}

/// <summary>One finding of the verifier, recovery or reader, with where it is.</summary>
/// <param name="Sequence">The sequence expected at <paramref name="Offset"/> (0 when unknown).</param>
public sealed record JournalProblem(JournalProblemKind Kind, string FilePath, long Offset, long Sequence, string Message)
{
    public override string ToString() => $"{Kind} in {FilePath} at offset {Offset} (sequence {Sequence}): {Message}";

    public JournalCorruptException ToException() =>
        Kind == JournalProblemKind.UnsupportedVersion ? new JournalVersionException(this) : new JournalCorruptException(this);
}
