using Microsoft.Win32.SafeHandles;

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
    public static JournalRecoveryReport Recover(string directory)
    {
        JournalVerifyReport verified = JournalVerifier.Verify(directory);
        JournalProblem? fatal = verified.Problems.FirstOrDefault(p => p.Kind != JournalProblemKind.TornTail);
        if (fatal is not null) throw fatal.ToException();

        // The scanner reports a torn tail only for the last segment, so there is at most one.
        JournalProblem? torn = verified.Problems.SingleOrDefault();
        long truncatedBytes = 0;
        if (torn is not null)
        {
            using SafeFileHandle file = File.OpenHandle(torn.FilePath, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
            truncatedBytes = RandomAccess.GetLength(file) - torn.Offset;
            RandomAccess.SetLength(file, torn.Offset);
            Durability.FlushAll(file);
        }

        foreach (string temporary in verified.TemporaryFiles) File.Delete(temporary);
        if (verified.TemporaryFiles.Count > 0) Durability.FlushDirectory(directory);

        return new JournalRecoveryReport
        {
            Verified = verified,
            TruncatedTail = torn,
            TruncatedBytes = truncatedBytes,
            RemovedTemporaryFiles = verified.TemporaryFiles,
        };
    }
}
