using RamPay.Journal;

namespace RamPay.Simulation.Tests;

/// <summary>The simulated machine lost power: every object that was using the file system is gone.</summary>
public sealed class SimulatedCrashException(string where) : Exception($"simulated crash at {where}");

/// <summary>A simulated device error (a failed flush), as the operating system reports one: an <see cref="IOException"/>.</summary>
public sealed class SimulatedIOException(string message) : IOException(message);

/// <summary>
/// An in-memory <see cref="IJournalFileSystem"/> with the failure model of a POSIX file system on a disk with a
/// volatile write cache, driven by one seeded <see cref="Random"/> so that a run replays exactly:
/// <list type="bullet">
/// <item>A write is visible to readers at once, but only a flush of the file (fdatasync/fsync) makes it durable. At a
/// crash each file keeps its durable bytes plus a random prefix of the writes since its last flush, in order, the
/// last of them possibly torn (a prefix of its bytes).</item>
/// <item>Creations, renames and deletions change the directory at once, but survive a crash only after a flush of
/// that directory; a crash puts back the directory as of its last flush (a deleted file reappears, a created one
/// vanishes, a rename is undone).</item>
/// <item>A flush can fail (<see cref="FlushFailureChance"/>): it throws <see cref="IOException"/> and makes nothing
/// durable: what it was flushing may still be lost at the next crash (the "fsyncgate" behaviour).</item>
/// <item>A crash can be scheduled at any mutating operation (<see cref="CrashAfterOperations"/>): that operation
/// throws <see cref="SimulatedCrashException"/>, a write having stored a random prefix of its bytes first.</item>
/// </list>
/// Not modelled: reads that fail or return stale data after a failed flush, bit rot of durable bytes, a full disk,
/// directories that vanish (a directory is durable when created), and metadata-only fsync differences.
/// One thread.
/// </summary>
public sealed class SimulatedFileSystem(Random random) : IJournalFileSystem
{
    private readonly Random _random = random;
    private readonly Dictionary<string, Inode> _current = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Inode> _durable = new(StringComparer.Ordinal);
    private readonly HashSet<string> _directories = new(StringComparer.Ordinal);
    private int _generation;
    private long _operations;

    /// <summary>Chance (0..1) that a file flush fails with an I/O error.</summary>
    public double FlushFailureChance { get; set; }

    /// <summary>
    /// A broken disk, for proving the checks can fail: file flushes report success but make nothing durable.
    /// </summary>
    public bool LieAboutFlushes { get; set; }

    /// <summary>The mutating operation that crashes, counted from now (0 = none armed).</summary>
    public long CrashAfterOperations { get; set; }

    public long Operations => _operations;
    public int Crashes { get; private set; }
    public int FailedFlushes { get; private set; }
    public int TornWrites { get; private set; }

    /// <summary>Power loss: directories back to their last flush, files back to their durable bytes plus a random prefix of what followed.</summary>
    public void Crash()
    {
        Crashes++;
        _generation++;
        CrashAfterOperations = 0;
        _current.Clear();
        foreach (var (path, inode) in _durable) _current[path] = inode;
        // Files no directory names any more are gone; each surviving inode settles once, even under two names.
        foreach (var inode in _current.Values.Distinct())
        {
            int keep = _random.Next(inode.Pending.Count + 1);
            byte[] data = inode.Durable;
            int length = inode.DurableLength;
            for (int i = 0; i < keep; i++) (data, length) = inode.Pending[i].ApplyTo(data, length, inode.Pending[i].Bytes.Length);
            if (keep < inode.Pending.Count && inode.Pending[keep].Bytes is { Length: > 0 } torn && _random.Next(2) == 0)
            {
                (data, length) = inode.Pending[keep].ApplyTo(data, length, _random.Next(torn.Length));
                TornWrites++;
            }
            inode.Settle(data, length);
        }
    }

    /// <summary>The current bytes of a file (tests of the simulation itself).</summary>
    public byte[] ReadAll(string path) => _current.TryGetValue(path, out var inode) ? inode.Data.AsSpan(0, inode.Length).ToArray() : throw new FileNotFoundException(path);

    public IJournalFile OpenRead(string path)
    {
        if (!_current.TryGetValue(path, out var inode)) throw new FileNotFoundException($"simulated: {path}", path);
        return new SimulatedFile(this, inode, path, writable: false);
    }

    public IJournalFile OpenWrite(string path, bool create)
    {
        if (create)
        {
            Mutate($"create {path}");
            RequireDirectory(path);
            // O_CREAT|O_TRUNC: an existing file is truncated in place (the truncation is not durable until a flush);
            // a new one is a new inode whose name is not durable until its directory is flushed.
            if (_current.TryGetValue(path, out var truncated))
            {
                truncated.SetLength(0);
                return new SimulatedFile(this, truncated, path, writable: true);
            }
            var inode = new Inode();
            _current[path] = inode;
            return new SimulatedFile(this, inode, path, writable: true);
        }
        if (!_current.TryGetValue(path, out var existing)) throw new FileNotFoundException($"simulated: {path}", path);
        return new SimulatedFile(this, existing, path, writable: true);
    }

    public bool FileExists(string path) => _current.ContainsKey(path);
    public bool DirectoryExists(string path) => _directories.Contains(Normalize(path));

    public void CreateDirectory(string path)
    {
        for (string? d = Normalize(path); !string.IsNullOrEmpty(d) && d != "/"; d = Path.GetDirectoryName(d)) _directories.Add(d);
    }

    public string[] ListFiles(string directory, string searchPattern)
    {
        string dir = Normalize(directory);
        string prefix = searchPattern[..searchPattern.IndexOf('*')];
        string suffix = searchPattern[(searchPattern.IndexOf('*') + 1)..];
        return [.. _current.Keys
            .Where(p => Path.GetDirectoryName(p) == dir)
            .Where(p => Path.GetFileName(p) is { } name && name.Length >= prefix.Length + suffix.Length && name.StartsWith(prefix, StringComparison.Ordinal) && name.EndsWith(suffix, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)];
    }

    public void Move(string source, string destination, bool overwrite)
    {
        Mutate($"rename {source} -> {destination}");
        if (!_current.TryGetValue(source, out var inode)) throw new FileNotFoundException($"simulated: {source}", source);
        if (!overwrite && _current.ContainsKey(destination)) throw new IOException($"simulated: {destination} exists");
        RequireDirectory(destination);
        _current.Remove(source);
        _current[destination] = inode;
    }

    public void Delete(string path)
    {
        Mutate($"delete {path}");
        _current.Remove(path);
    }

    public void FlushDirectory(string directory)
    {
        string dir = Normalize(directory);
        Mutate($"flush directory {dir}");
        foreach (string path in _durable.Keys.Where(p => Path.GetDirectoryName(p) == dir).ToList()) _durable.Remove(path);
        foreach (var (path, inode) in _current.Where(e => Path.GetDirectoryName(e.Key) == dir)) _durable[path] = inode;
    }

    private void Mutate(string what)
    {
        _operations++;
        if (CrashAfterOperations > 0 && --CrashAfterOperations == 0) throw new SimulatedCrashException(what);
    }

    private void RequireDirectory(string path)
    {
        if (!_directories.Contains(Path.GetDirectoryName(path)!)) throw new DirectoryNotFoundException($"simulated: no directory for {path}");
    }

    private static string Normalize(string path) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));

    /// <summary>One write or truncation since the file's last flush.</summary>
    private sealed record PendingChange(long Offset, byte[] Bytes, long NewLength)
    {
        /// <summary>Applies the first <paramref name="prefix"/> bytes of a write (or the truncation) to a copy of <paramref name="data"/>.</summary>
        public (byte[] Data, int Length) ApplyTo(byte[] data, int length, int prefix)
        {
            if (NewLength >= 0)
            {
                byte[] cut = new byte[NewLength];
                data.AsSpan(0, (int)Math.Min(length, NewLength)).CopyTo(cut);
                return (cut, (int)NewLength);
            }
            int end = (int)Math.Max(length, Offset + prefix);
            byte[] result = new byte[end];
            data.AsSpan(0, length).CopyTo(result);
            Bytes.AsSpan(0, prefix).CopyTo(result.AsSpan((int)Offset));
            return (result, end);
        }
    }

    private sealed class Inode
    {
        public byte[] Data = [];
        public int Length;
        public byte[] Durable = [];
        public int DurableLength;
        public readonly List<PendingChange> Pending = [];

        public void Write(ReadOnlySpan<byte> source, long offset)
        {
            long end = offset + source.Length;
            if (end > Data.Length) Array.Resize(ref Data, (int)Math.Max(end, Math.Min(int.MaxValue, 2L * Data.Length)));
            if (offset > Length) Data.AsSpan(Length, (int)(offset - Length)).Clear();
            source.CopyTo(Data.AsSpan((int)offset));
            Length = (int)Math.Max(Length, end);
            Pending.Add(new PendingChange(offset, source.ToArray(), -1));
        }

        public void SetLength(long length)
        {
            if (length > Data.Length) Array.Resize(ref Data, (int)length);
            if (length > Length) Data.AsSpan(Length, (int)(length - Length)).Clear();
            Length = (int)length;
            Pending.Add(new PendingChange(0, [], length));
        }

        public void Flush()
        {
            Durable = Data.AsSpan(0, Length).ToArray();
            DurableLength = Length;
            Pending.Clear();
        }

        public void Settle(byte[] data, int length)
        {
            Data = data.AsSpan(0, length).ToArray();
            Length = length;
            Durable = Data.AsSpan(0, length).ToArray();
            DurableLength = length;
            Pending.Clear();
        }
    }

    private sealed class SimulatedFile(SimulatedFileSystem files, Inode inode, string path, bool writable) : IJournalFile
    {
        private readonly int _generation = files._generation;
        private bool _disposed;

        public long Length
        {
            get
            {
                Check();
                return inode.Length;
            }
        }

        public int Read(Span<byte> destination, long offset)
        {
            Check();
            if (offset >= inode.Length) return 0;
            int n = (int)Math.Min(destination.Length, inode.Length - offset);
            inode.Data.AsSpan((int)offset, n).CopyTo(destination);
            return n;
        }

        public void Write(ReadOnlySpan<byte> source, long offset)
        {
            CheckWritable();
            try
            {
                files.Mutate($"write {source.Length} bytes at {offset} of {path}");
            }
            catch (SimulatedCrashException)
            {
                // The power went while the write was in flight: some prefix of it reached the page cache.
                int prefix = files._random.Next(source.Length + 1);
                if (prefix > 0) inode.Write(source[..prefix], offset);
                files.TornWrites++;
                throw;
            }
            inode.Write(source, offset);
        }

        public void FlushData() => Flush("fdatasync");
        public void FlushAll() => Flush("fsync");

        public void SetLength(long length)
        {
            CheckWritable();
            files.Mutate($"truncate {path} to {length}");
            inode.SetLength(length);
        }

        public void Dispose() => _disposed = true;

        private void Flush(string what)
        {
            CheckWritable();
            files.Mutate($"{what} {path}");
            if (files.FlushFailureChance > 0 && files._random.NextDouble() < files.FlushFailureChance)
            {
                files.FailedFlushes++;
                throw new SimulatedIOException($"simulated: {what} of {path} failed (EIO)");
            }
            if (!files.LieAboutFlushes) inode.Flush();
        }

        private void CheckWritable()
        {
            Check();
            if (!writable) throw new InvalidOperationException($"simulated: {path} was opened read-only");
        }

        private void Check()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_generation != files._generation) throw new InvalidOperationException($"simulated: a handle to {path} from before a crash was used");
        }
    }
}
