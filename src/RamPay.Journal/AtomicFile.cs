namespace RamPay.Journal;

/// <summary>
/// Replaces a small file so that after a crash or a power loss it holds either its old content or its new content,
/// whole, never nothing and never a part: the one way every durable file outside the journal is written (the
/// writer-fence token, the JWT signing key, the Kafka checkpoint, kept fraud models, the sinks' hints).
/// </summary>
/// <remarks>
/// The four steps, in this order, each for a reason:
/// <list type="number">
/// <item>write the new content to <c>path.tmp</c> beside the target (same directory, so step 3 is a rename);</item>
/// <item>fsync that file: without it, the rename can reach the disk before the data, and after a power loss the
///   name points at an empty or partial file (ext4's delayed allocation, XFS);</item>
/// <item>rename it over the target: atomic, a reader sees the old file or the new one;</item>
/// <item>fsync the directory: the rename is a change to the directory, and until the directory is flushed a power
///   loss can undo it, bringing the old content back after the caller was told the new one was durable (for the
///   writer-fence token that is a fencing token rolled back).</item>
/// </list>
/// The steps go through <see cref="IAtomicFileSteps"/> so that a test can record their order and cut power between them.
/// </remarks>
public static class AtomicFile
{
    public const string TemporarySuffix = ".tmp";

    /// <summary>Replaces <paramref name="path"/> with <paramref name="content"/> durably (the directory must exist).</summary>
    /// <param name="mode">Permissions of the new file on Unix (e.g. 0600 for a key); null = the process's default.</param>
    public static void Write(string path, ReadOnlySpan<byte> content, UnixFileMode? mode = null) => Write(OsFileSteps.Instance, path, content, mode);

    /// <summary><see cref="Write(string, ReadOnlySpan{byte}, UnixFileMode?)"/> through the given steps (tests).</summary>
    public static void Write(IAtomicFileSteps steps, string path, ReadOnlySpan<byte> content, UnixFileMode? mode = null)
    {
        ArgumentNullException.ThrowIfNull(steps);
        string target = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(target) ?? throw new ArgumentException($"{path} has no directory", nameof(path));
        string temporary = target + TemporarySuffix;
        using (var file = steps.Create(temporary, mode))
        {
            // 1.
            file.Write(content);
            // 2.
            file.Flush();
        }
        // 3.
        steps.Rename(temporary, target);
        // 4.
        steps.FlushDirectory(directory);
    }
}

/// <summary>The system calls behind <see cref="AtomicFile"/>, one member per step.</summary>
public interface IAtomicFileSteps
{
    /// <summary>Creates (or truncates) a file for writing.</summary>
    IAtomicFileBeingWritten Create(string path, UnixFileMode? mode);

    /// <summary>rename(2): atomically replaces <paramref name="to"/> if it exists.</summary>
    void Rename(string from, string to);

    /// <summary>fsync(2) on the directory: makes the creations and renames in it durable.</summary>
    void FlushDirectory(string directory);
}

/// <summary>A file being written by <see cref="AtomicFile"/>.</summary>
public interface IAtomicFileBeingWritten : IDisposable
{
    void Write(ReadOnlySpan<byte> bytes);

    /// <summary>fsync(2): the file's data and size reach stable storage.</summary>
    void Flush();
}

/// <summary>The real calls.</summary>
internal sealed class OsFileSteps : IAtomicFileSteps
{
    public static readonly OsFileSteps Instance = new();

    public IAtomicFileBeingWritten Create(string path, UnixFileMode? mode)
    {
        var stream = new FileStream(path, new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 0 });
        try
        {
            // Set on the handle, not at creation: a temporary left by a crash would otherwise keep its old mode.
            if (mode is { } m && !OperatingSystem.IsWindows()) File.SetUnixFileMode(stream.SafeFileHandle, m);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        return new OsFile(stream);
    }

    public void Rename(string from, string to) => File.Move(from, to, overwrite: true);

    public void FlushDirectory(string directory) => Durability.FlushDirectory(directory);

    private sealed class OsFile(FileStream stream) : IAtomicFileBeingWritten
    {
        public void Write(ReadOnlySpan<byte> bytes) => stream.Write(bytes);

        public void Flush() => stream.Flush(flushToDisk: true);

        public void Dispose() => stream.Dispose();
    }
}
