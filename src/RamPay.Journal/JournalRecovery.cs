namespace RamPay.Journal;

/// <summary>What <see cref="JournalRecovery.Recover"/> found and repaired.</summary>
public sealed class JournalRecoveryReport
{
    public required JournalVerifyReport Verified { get; init; }

    /// <summary>The torn tail that was cut off (segment, offset, expected sequence), or null when the tail was clean.</summary>
    public JournalProblem? TruncatedTail { get; init; }

    public long TruncatedBytes { get; init; }
    public required IReadOnlyList<string> RemovedTemporaryFiles { get; init; }

    /// <summary>The last good sequence: the writer continues with the next one. 0 for an empty journal.</summary>
    public long LastSequence => Verified.Segments.Count == 0 ? 0 : Verified.Segments[^1].LastSequence;

    /// <summary>The segment the writer appends to, or null for an empty journal.</summary>
    public string? LastSegmentPath => Verified.Segments.Count == 0 ? null : Verified.Segments[^1].Path;

    public override string ToString() =>
        TruncatedTail is null
            ? $"journal clean, last sequence {LastSequence}"
            : $"cut a torn tail of {TruncatedBytes} bytes from {TruncatedTail.FilePath} at offset {TruncatedTail.Offset}; last good sequence {LastSequence}";
}

/// <summary>
/// Brings a journal directory to a state a writer can append to: a torn tail of the last segment
/// (bytes of an unacknowledged batch) is cut off and fsynced; anything else wrong stops startup.
/// </summary>
public static class JournalRecovery
{
    /// <exception cref="JournalCorruptException">Damage before valid data, a sequence gap, a bad segment header.</exception>
    /// <exception cref="JournalVersionException">Data written by a newer RamPay.</exception>
    public static JournalRecoveryReport Recover(string directory) => Recover(directory, OsJournalFileSystem.Instance);

    /// <summary>
    /// As <see cref="Recover(string)"/>, through <paramref name="files"/>. It checks the live segments only, from the
    /// first one present: segments retired behind a snapshot (<see cref="JournalRetirement"/>) are not needed to
    /// start, and whether the journal continues the snapshot is checked by the replay that starts from it.
    /// </summary>
    public static JournalRecoveryReport Recover(string directory, IJournalFileSystem files)
    {
        ArgumentNullException.ThrowIfNull(files);
        JournalVerifyReport verified = JournalVerifier.Verify(directory, files);
        JournalProblem? fatal = verified.Problems.FirstOrDefault(p => p.Kind != JournalProblemKind.TornTail);
        if (fatal is not null) throw fatal.ToException();

        // The scanner reports a torn tail only for the last segment, so there is at most one.
        JournalProblem? torn = verified.Problems.SingleOrDefault();
        long truncatedBytes = 0;
        if (torn is not null)
        {
            using IJournalFile file = files.OpenWrite(torn.FilePath, create: false);
            truncatedBytes = file.Length - torn.Offset;
            file.SetLength(torn.Offset);
            file.FlushAll();
        }

        foreach (string temporary in verified.TemporaryFiles) files.Delete(temporary);
        if (verified.TemporaryFiles.Count > 0) files.FlushDirectory(directory);

        return new JournalRecoveryReport
        {
            Verified = verified,
            TruncatedTail = torn,
            TruncatedBytes = truncatedBytes,
            RemovedTemporaryFiles = verified.TemporaryFiles,
        };
    }
}
