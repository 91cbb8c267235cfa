using System.Globalization;
using System.Text;

namespace RamPay.Journal;

/// <summary>
/// <c>&lt;journal&gt;/retired.manifest</c>: what <see cref="JournalRetirement"/> has taken out of the live journal
/// directory, so that a reader that needs older records knows where they went (the archive) or that they are gone.
/// Text, four lines, rewritten whole (temporary file, fsync, rename, directory fsync):
/// <code>
/// rampay-journal-retired 1
/// through 123456          (every record up to this sequence is out of the live directory)
/// archive /abs/path       ("-" when retired segments were deleted)
/// crc 1a2b3c4d            (CRC32C of the three lines above, with their newlines, hex)
/// </code>
/// </summary>
public sealed record RetirementManifest(long Through, string? ArchiveDirectory)
{
    public const string FileName = "retired.manifest";
    private const string Magic = "rampay-journal-retired 1";

    internal static string PathIn(string journalDirectory) => Path.Combine(journalDirectory, FileName);

    /// <summary>The manifest of <paramref name="journalDirectory"/>, or null when nothing was ever retired.</summary>
    /// <exception cref="JournalCorruptException">The file exists but does not parse or its CRC fails.</exception>
    public static RetirementManifest? Read(IJournalFileSystem files, string journalDirectory)
    {
        string path = PathIn(journalDirectory);
        if (!files.FileExists(path)) return null;
        byte[] bytes;
        using (IJournalFile file = files.OpenRead(path))
        {
            long length = file.Length;
            if (length > 64 * 1024) throw Bad(path, $"{length} bytes is too long for a manifest");
            bytes = new byte[length];
            int total = 0;
            while (total < bytes.Length)
            {
                int read = file.Read(bytes.AsSpan(total), total);
                if (read == 0) break;
                total += read;
            }
            if (total != bytes.Length) throw Bad(path, "shorter than its length");
        }
        string text = Encoding.UTF8.GetString(bytes);
        string[] lines = text.Split('\n');
        if (lines.Length != 5 || lines[4].Length != 0 || lines[0] != Magic) throw Bad(path, "not a version-1 retirement manifest");
        int bodyBytes = Encoding.UTF8.GetByteCount(lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n");
        uint crc = Crc32C.Compute(bytes.AsSpan(0, bodyBytes));
        if (!lines[3].StartsWith("crc ", StringComparison.Ordinal)
            || !uint.TryParse(lines[3].AsSpan(4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint stored) || stored != crc)
        {
            throw Bad(path, "CRC mismatch");
        }
        if (!lines[1].StartsWith("through ", StringComparison.Ordinal)
            || !long.TryParse(lines[1].AsSpan(8), NumberStyles.None, CultureInfo.InvariantCulture, out long through) || through < 1)
        {
            throw Bad(path, "bad 'through' line");
        }
        if (!lines[2].StartsWith("archive ", StringComparison.Ordinal)) throw Bad(path, "bad 'archive' line");
        string archive = lines[2][8..];
        return new RetirementManifest(through, archive == "-" ? null : archive);
    }

    /// <summary>Replaces the manifest durably.</summary>
    public void Write(IJournalFileSystem files, string journalDirectory)
    {
        if (ArchiveDirectory is { } a && (a.Contains('\n') || a == "-")) throw new ArgumentException($"archive path '{a}' cannot be recorded");
        string body = $"{Magic}\nthrough {Through.ToString(CultureInfo.InvariantCulture)}\narchive {ArchiveDirectory ?? "-"}\n";
        byte[] bodyBytes = Encoding.UTF8.GetBytes(body);
        byte[] bytes = Encoding.UTF8.GetBytes(body + "crc " + Crc32C.Compute(bodyBytes).ToString("x8", CultureInfo.InvariantCulture) + "\n");
        string path = PathIn(journalDirectory);
        string temporary = path + SegmentFormat.TempSuffix;
        using (IJournalFile file = files.OpenWrite(temporary, create: true))
        {
            file.Write(bytes, 0);
            file.FlushAll();
        }
        files.Move(temporary, path, overwrite: true);
        files.FlushDirectory(journalDirectory);
    }

    private static JournalCorruptException Bad(string path, string message) =>
        new JournalProblem(JournalProblemKind.BadRetirementManifest, path, 0, 0, message).ToException();
}

/// <summary>
/// Records a reader asked for are no longer in the live journal: they were retired behind a snapshot
/// (<see cref="JournalRetirement"/>) and the archive that should hold them is not configured, missing, or incomplete
/// (or, for journals from before retirement, they were deleted). Whatever needs the journal from its first record
/// (<c>rampay db rebuild</c>, <c>rampay replay --no-snapshot</c>, a sink far behind) needs the archive.
/// </summary>
public sealed class JournalArchiveMissingException : JournalCorruptException
{
    public JournalArchiveMissingException(JournalProblem problem, string? archiveDirectory)
        : base(problem)
    {
        ArchiveDirectory = archiveDirectory;
    }

    /// <summary>Where the retired segments should be, or null when they were deleted (no archive configured).</summary>
    public string? ArchiveDirectory { get; }
}

/// <summary>
/// The segments a reader may use: the archived ones before the first live segment (when the manifest names an
/// archive), then the live ones. Each knows where it came from, so a hole reads as a missing archive, not corruption.
/// </summary>
internal sealed class ReadableSegments
{
    public required SegmentFile[] Segments { get; init; }
    /// <summary>Index of the first live segment in <see cref="Segments"/> (== Length when none is live).</summary>
    public required int LiveStart { get; init; }
    public required RetirementManifest? Manifest { get; init; }
    public required string Directory { get; init; }
    public required IJournalFileSystem Files { get; init; }

    /// <param name="fromSequence">The first record the reader needs: when the live journal holds it, neither the manifest nor the archive is read (an idle tailer lists often).</param>
    public static ReadableSegments List(IJournalFileSystem files, string directory, long fromSequence)
    {
        SegmentFile[] live = SegmentFile.List(files, directory);
        if (live.Length > 0 && live[0].FirstSequence <= fromSequence)
            return new ReadableSegments { Segments = live, LiveStart = 0, Manifest = null, Directory = directory, Files = files };
        RetirementManifest? manifest = files.DirectoryExists(directory) ? RetirementManifest.Read(files, directory) : null;
        if (manifest?.ArchiveDirectory is not { } archive)
            return new ReadableSegments { Segments = live, LiveStart = 0, Manifest = manifest, Directory = directory, Files = files };
        long firstLive = live.Length > 0 ? live[0].FirstSequence : long.MaxValue;
        // A segment in both places (a move interrupted before its delete) is read from the live directory.
        SegmentFile[] archived = [.. SegmentFile.List(files, archive).Where(s => s.FirstSequence < firstLive)];
        return new ReadableSegments { Segments = [.. archived, .. live], LiveStart = archived.Length, Manifest = manifest, Directory = directory, Files = files };
    }

    /// <summary>The error for records before <paramref name="sequence"/>'s segment that cannot be found.</summary>
    public JournalArchiveMissingException Missing(long sequence, string need)
    {
        string oldest = Segments.Length > 0 ? $"the oldest segment available starts at {Segments[0].FirstSequence}" : "no segment is available";
        string message = Manifest switch
        {
            null => $"{need}: record {sequence} was requested but {oldest} (older segments were deleted)",
            { ArchiveDirectory: null } m =>
                $"{need}: record {sequence} was requested but records up to {m.Through} were retired and deleted (no journal archive was configured: RamPay:Journal:ArchiveDirectory); {oldest}",
            { ArchiveDirectory: { } a } m =>
                $"{need}: record {sequence} was requested; records up to {m.Through} were retired into the archive {a}, which does not hold it ({(Files.DirectoryExists(a) ? "archive incomplete" : "archive directory missing")}); {oldest}",
        };
        return new JournalArchiveMissingException(
            new JournalProblem(JournalProblemKind.MissingRecords, Segments.Length > 0 ? Segments[0].Path : Directory, 0, sequence, message),
            Manifest?.ArchiveDirectory);
    }
}
