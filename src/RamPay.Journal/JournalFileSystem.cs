using Microsoft.Win32.SafeHandles;

namespace RamPay.Journal;

/// <summary>
/// The file operations the journal writer, recovery, the readers, retirement and the snapshot store do their I/O
/// through. <see cref="OsJournalFileSystem"/> (the default everywhere) is the operating system; a test can pass a
/// simulated one that tears writes, fails flushes and loses what was not flushed at a crash
/// (tests/RamPay.Simulation.Tests). Paths are full paths; a listing returns full paths.
/// <para>
/// The contract is POSIX's, which the simulation models: a write is visible to readers at once but survives a crash
/// only after a flush of the file; a creation, rename or deletion survives a crash only after a flush of its
/// directory; a failed flush may have lost the data it was flushing, so the caller must not retry and claim durability.
/// </para>
/// </summary>
public interface IJournalFileSystem
{
    /// <summary>Opens an existing file for reading (others may keep appending to it or delete it).</summary>
    IJournalFile OpenRead(string path);

    /// <summary>Opens a file for reading and writing: an existing one (<paramref name="create"/> false) or a new, empty one replacing any file of that name.</summary>
    IJournalFile OpenWrite(string path, bool create);

    bool FileExists(string path);
    bool DirectoryExists(string path);

    /// <summary>Creates the directory and its missing parents (not made durable: flush the parent when that matters).</summary>
    void CreateDirectory(string path);

    /// <summary>Full paths of the files in <paramref name="directory"/> whose names match <paramref name="searchPattern"/> (* wildcards); empty when it does not exist.</summary>
    string[] ListFiles(string directory, string searchPattern);

    /// <summary>Renames a file (atomic within one file system).</summary>
    void Move(string source, string destination, bool overwrite);

    void Delete(string path);

    /// <summary>Makes the creations, renames and deletions in <paramref name="directory"/> durable.</summary>
    void FlushDirectory(string directory);
}

/// <summary>An open file of an <see cref="IJournalFileSystem"/>: positioned reads and writes, flushes.</summary>
public interface IJournalFile : IDisposable
{
    long Length { get; }

    /// <summary>Reads up to destination.Length bytes at <paramref name="offset"/>; returns how many (0 at the end).</summary>
    int Read(Span<byte> destination, long offset);

    /// <summary>Writes all of <paramref name="source"/> at <paramref name="offset"/>.</summary>
    void Write(ReadOnlySpan<byte> source, long offset);

    /// <summary>fdatasync: the data and the size, not the other metadata. Throws when the device failed.</summary>
    void FlushData();

    /// <summary>fsync: for the rare paths that change a file outside an append (truncation, a new file's header).</summary>
    void FlushAll();

    void SetLength(long length);
}

/// <summary>The operating system's files: what RamPay uses unless a test says otherwise. Stateless.</summary>
public sealed class OsJournalFileSystem : IJournalFileSystem
{
    public static readonly OsJournalFileSystem Instance = new();

    private OsJournalFileSystem()
    {
    }

    public IJournalFile OpenRead(string path) =>
        new OsJournalFile(File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));

    public IJournalFile OpenWrite(string path, bool create) =>
        new OsJournalFile(File.OpenHandle(path, create ? FileMode.Create : FileMode.Open, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete));

    public bool FileExists(string path) => File.Exists(path);
    public bool DirectoryExists(string path) => Directory.Exists(path);
    public void CreateDirectory(string path) => Directory.CreateDirectory(path);

    public string[] ListFiles(string directory, string searchPattern) =>
        Directory.Exists(directory) ? Directory.GetFiles(directory, searchPattern) : [];

    public void Move(string source, string destination, bool overwrite) => File.Move(source, destination, overwrite);
    public void Delete(string path) => File.Delete(path);
    public void FlushDirectory(string directory) => Durability.FlushDirectory(directory);

    private sealed class OsJournalFile(SafeFileHandle handle) : IJournalFile
    {
        public long Length => RandomAccess.GetLength(handle);
        public int Read(Span<byte> destination, long offset) => RandomAccess.Read(handle, destination, offset);
        public void Write(ReadOnlySpan<byte> source, long offset) => RandomAccess.Write(handle, source, offset);
        public void FlushData() => Durability.FlushData(handle);
        public void FlushAll() => Durability.FlushAll(handle);
        public void SetLength(long length) => RandomAccess.SetLength(handle, length);
        public void Dispose() => handle.Dispose();
    }
}

/// <summary>A write-only, forward-only stream over an <see cref="IJournalFile"/> with its own buffer (snapshot payloads).</summary>
internal sealed class JournalFileWriteStream(IJournalFile file, long startOffset, int bufferBytes) : Stream
{
    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(bufferBytes);
    private int _buffered;
    private long _fileOffset = startOffset; // where _buffer[0] goes

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _fileOffset + _buffered; set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> source)
    {
        while (source.Length > 0)
        {
            if (_buffered == 0 && source.Length >= _buffer.Length)
            {
                file.Write(source, _fileOffset);
                _fileOffset += source.Length;
                return;
            }
            int n = Math.Min(source.Length, _buffer.Length - _buffered);
            source[..n].CopyTo(_buffer.AsSpan(_buffered));
            _buffered += n;
            source = source[n..];
            if (_buffered == _buffer.Length) Flush();
        }
    }

    public override void Flush()
    {
        if (_buffered == 0) return;
        file.Write(_buffer.AsSpan(0, _buffered), _fileOffset);
        _fileOffset += _buffered;
        _buffered = 0;
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
