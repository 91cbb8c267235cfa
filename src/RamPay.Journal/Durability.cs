using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace RamPay.Journal;

/// <summary>Flushes files and directories to stable storage.</summary>
public static partial class Durability
{
    private const int EINTR = 4;

    // A flush interrupted by a signal is retried; a few attempts bound the loop.
    private const int InterruptRetriesMax = 8;

    /// <summary>
    /// fdatasync on Linux: it skips the metadata a reader does not need (mtime) but still flushes a
    /// grown file size, so appends are durable with one device flush. Elsewhere a full fsync.
    /// </summary>
    public static void FlushData(SafeFileHandle file)
    {
        if (!OperatingSystem.IsLinux())
        {
            RandomAccess.FlushToDisk(file);
            return;
        }
        for (int attempt = 0; ; attempt++)
        {
            if (fdatasync(file) == 0) return;
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR || attempt >= InterruptRetriesMax)
            {
                // After a failed fdatasync the kernel may have dropped the dirty pages: the caller must
                // not retry and claim durability (the "fsyncgate" lesson); it fails instead.
                throw new IOException($"fdatasync failed with errno {errno}");
            }
        }
    }

    /// <summary>Full fsync, for the rare paths that change a file's size outside an append (truncation).</summary>
    public static void FlushAll(SafeFileHandle file) => RandomAccess.FlushToDisk(file);

    /// <summary>
    /// Makes file creations, renames and deletions in <paramref name="directory"/> durable; without it
    /// a fsynced file can vanish after a power loss because its directory entry was never flushed.
    /// </summary>
    public static void FlushDirectory(string directory)
    {
        // Windows has no directory handle to flush; NTFS journals its metadata.
        if (OperatingSystem.IsWindows()) return;
        const int O_RDONLY = 0;
        int fd = open(directory, O_RDONLY);
        if (fd < 0) throw new IOException($"open({directory}) failed with errno {Marshal.GetLastPInvokeError()}");
        try
        {
            if (fsync(fd) != 0) throw new IOException($"fsync({directory}) failed with errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            _ = close(fd);
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(SafeFileHandle fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
