using System.Globalization;

namespace RamPay.Journal;

/// <summary>The snapshot that was loaded, and what was wrong with newer ones that were skipped.</summary>
public sealed record SnapshotInfo(string? Path, long Sequence, long TimestampMs, long PayloadLength, IReadOnlyList<string> Warnings);

/// <summary>
/// Snapshot files in one directory: written atomically (temporary file, fsync, rename, directory fsync),
/// loaded newest-valid-first, pruned to the newest few. One writer per directory.
/// </summary>
public static class SnapshotStore
{
    public const int DefaultKeepCount = 3;

    /// <summary>
    /// Writes a snapshot of the state after <paramref name="sequence"/> and returns its path. When this
    /// returns the snapshot is durable and the newest; all but the newest <paramref name="keepCount"/>
    /// are deleted. A crash before that leaves only a temporary file, which the next write removes.
    /// </summary>
    public static string Write(string directory, long sequence, long timestampMs, ReadOnlySpan<byte> payload, int keepCount = DefaultKeepCount) =>
        Write(OsJournalFileSystem.Instance, directory, sequence, timestampMs, payload, keepCount);

    /// <summary>As the other buffer overload, through <paramref name="files"/>.</summary>
    public static string Write(IJournalFileSystem files, string directory, long sequence, long timestampMs, ReadOnlySpan<byte> payload, int keepCount = DefaultKeepCount)
    {
        using var pending = new PendingSnapshot(files, directory, sequence, keepCount);
        pending.Payload.Write(payload);
        return pending.Publish(timestampMs);
    }

    /// <summary>As the buffer overload, but <paramref name="writePayload"/> streams the state into the file.</summary>
    public static string Write(string directory, long sequence, long timestampMs, Action<Stream> writePayload, int keepCount = DefaultKeepCount)
    {
        ArgumentNullException.ThrowIfNull(writePayload);
        using var pending = new PendingSnapshot(OsJournalFileSystem.Instance, directory, sequence, keepCount);
        writePayload(pending.Payload);
        return pending.Publish(timestampMs);
    }

    /// <summary>
    /// Loads the newest snapshot whose header and payload CRCs check out. Newer snapshots that fail
    /// are named in <see cref="SnapshotInfo.Warnings"/>. False when no valid snapshot exists.
    /// </summary>
    public static bool TryLoadLatest(string directory, out SnapshotInfo info, out byte[] payload) =>
        TryLoadLatest(directory, long.MaxValue, out info, out payload);

    /// <summary>
    /// As <see cref="TryLoadLatest(string, out SnapshotInfo, out byte[])"/>, among the snapshots at or before
    /// <paramref name="maxSequence"/> (a reader that must start from an older point, like a sink's follower).
    /// </summary>
    public static bool TryLoadLatest(string directory, long maxSequence, out SnapshotInfo info, out byte[] payload) =>
        TryLoadLatest(OsJournalFileSystem.Instance, directory, maxSequence, out info, out payload);

    /// <summary>As the other overloads, through <paramref name="files"/>.</summary>
    public static bool TryLoadLatest(IJournalFileSystem files, string directory, long maxSequence, out SnapshotInfo info, out byte[] payload)
    {
        ArgumentNullException.ThrowIfNull(files);
        var warnings = new List<string>();
        (string Path, long Sequence)[] snapshots = List(files, Path.GetFullPath(directory));
        for (int i = snapshots.Length - 1; i >= 0; i--)
        {
            if (snapshots[i].Sequence > maxSequence) continue;
            string? problem = TryLoad(files, snapshots[i].Path, snapshots[i].Sequence, loadPayload: true, out SnapshotHeader header, out payload);
            if (problem is null)
            {
                info = new SnapshotInfo(snapshots[i].Path, header.Sequence, header.TimestampMs, header.PayloadLength, warnings);
                return true;
            }
            warnings.Add($"{snapshots[i].Path}: {problem}; falling back to an older snapshot");
        }
        info = new SnapshotInfo(null, 0, 0, 0, warnings);
        payload = [];
        return false;
    }

    /// <summary>
    /// The sequences of the snapshots in <paramref name="directory"/> whose header and payload CRCs check, ascending.
    /// Reads each payload in chunks (no whole-state allocation): for journal retirement, which must rely only on a
    /// snapshot recovery could load.
    /// </summary>
    public static long[] ListValid(IJournalFileSystem files, string directory)
    {
        ArgumentNullException.ThrowIfNull(files);
        var valid = new List<long>();
        foreach (var (path, sequence) in List(files, Path.GetFullPath(directory)))
        {
            try
            {
                if (TryLoad(files, path, sequence, loadPayload: false, out _, out _) is null) valid.Add(sequence);
            }
            catch (FileNotFoundException)
            {
                // Pruned by the snapshot writer since the listing: not a snapshot to rely on.
            }
        }
        return [.. valid];
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, object> PruneLocks = new(StringComparer.Ordinal);

    /// <summary>
    /// Held while snapshots of <paramref name="fullDirectory"/> are pruned, and by journal retirement while it sets the
    /// retention anchor and checks that the anchored snapshot still exists: so a prune either ran before (and the
    /// check sees the snapshot gone) or after (and keeps it). In-process: one engine owns a data directory.
    /// </summary>
    internal static object PruneLock(string fullDirectory) => PruneLocks.GetOrAdd(fullDirectory, static _ => new object());

    /// <summary>Name of the file in a snapshot directory that names the snapshot journal retirement relies on.</summary>
    public const string RetentionAnchorFileName = "retention.anchor";

    /// <summary>
    /// Records that journal segments up to <paramref name="sequence"/> may be retired because the snapshot at
    /// <paramref name="sequence"/> exists: from now on pruning keeps that snapshot (besides the newest few), so every
    /// reader whose position is at or after it can still rebuild its state without the retired segments. Durable
    /// when it returns (temporary file, fsync, rename, directory fsync).
    /// </summary>
    public static void WriteRetentionAnchor(IJournalFileSystem files, string directory, long sequence)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sequence, 1);
        string full = Path.GetFullPath(directory);
        string path = Path.Combine(full, RetentionAnchorFileName);
        string temporary = path + SnapshotFormat.TempSuffix;
        Span<byte> bytes = stackalloc byte[32];
        int length = System.Text.Encoding.ASCII.GetBytes(sequence.ToString(CultureInfo.InvariantCulture) + "\n", bytes);
        using (IJournalFile file = files.OpenWrite(temporary, create: true))
        {
            file.Write(bytes[..length], 0);
            file.FlushAll();
        }
        files.Move(temporary, path, overwrite: true);
        files.FlushDirectory(full);
    }

    /// <summary>The snapshot sequence the retention anchor names, or 0 when there is none (or it does not parse).</summary>
    public static long ReadRetentionAnchor(IJournalFileSystem files, string directory)
    {
        string path = Path.Combine(Path.GetFullPath(directory), RetentionAnchorFileName);
        if (!files.FileExists(path)) return 0;
        using IJournalFile file = files.OpenRead(path);
        Span<byte> bytes = stackalloc byte[32];
        int read = file.Read(bytes, 0);
        return long.TryParse(System.Text.Encoding.ASCII.GetString(bytes[..read]).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long sequence)
            ? sequence
            : 0;
    }

    private static string? TryLoad(IJournalFileSystem files, string path, long nameSequence, bool loadPayload, out SnapshotHeader header, out byte[] payload)
    {
        payload = [];
        using IJournalFile file = files.OpenRead(path);
        Span<byte> headerBytes = stackalloc byte[SnapshotFormat.HeaderSize];
        int headerRead = file.Read(headerBytes, 0);
        SnapshotHeaderStatus status = SnapshotFormat.TryReadHeader(headerBytes[..headerRead], out header);
        if (status == SnapshotHeaderStatus.UnsupportedVersion)
        {
            return header.Version > SnapshotFormat.CurrentVersion
                ? $"written by a newer RamPay (snapshot format {header.Version}; this build reads {SnapshotFormat.CurrentVersion})"
                : $"unknown snapshot format {header.Version}";
        }
        if (status != SnapshotHeaderStatus.Ok) return $"header {status}";
        if (header.Sequence != nameSequence) return $"header sequence {header.Sequence} differs from the file name";
        long fileBytes = file.Length;
        if (fileBytes != SnapshotFormat.HeaderSize + header.PayloadLength)
        {
            return $"file is {fileBytes} bytes, header promises {SnapshotFormat.HeaderSize + header.PayloadLength}";
        }

        // Loading reads the payload into one array; checking alone streams it through a 1 MiB buffer.
        byte[] bytes = GC.AllocateUninitializedArray<byte>(loadPayload ? (int)header.PayloadLength : (int)Math.Min(header.PayloadLength, 1 << 20));
        uint crc = 0;
        long total = 0;
        // Bounded by the length checked above: each read returns at least one byte until the end.
        while (total < header.PayloadLength)
        {
            Span<byte> into = loadPayload ? bytes.AsSpan((int)total) : bytes.AsSpan(0, (int)Math.Min(bytes.Length, header.PayloadLength - total));
            int read = file.Read(into, SnapshotFormat.HeaderSize + total);
            if (read == 0) return "file shrank while reading";
            crc = Crc32C.Append(crc, into[..read]);
            total += read;
        }
        if (crc != header.PayloadCrc) return "payload CRC mismatch";
        if (loadPayload) payload = bytes;
        return null;
    }

    /// <summary>Snapshot files in ascending sequence order (named ones: their contents are not checked).</summary>
    internal static (string Path, long Sequence)[] List(IJournalFileSystem files, string directory)
    {
        var snapshots = new List<(string Path, long Sequence)>();
        foreach (string path in files.ListFiles(directory, SnapshotFormat.FilePrefix + "*" + SnapshotFormat.FileExtension))
        {
            if (SnapshotFormat.TryParseFileName(Path.GetFileName(path), out long sequence)) snapshots.Add((path, sequence));
        }
        snapshots.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
        return [.. snapshots];
    }

    /// <summary>A snapshot being written to its temporary file; <see cref="Publish"/> makes it the newest.</summary>
    private sealed class PendingSnapshot : IDisposable
    {
        private readonly IJournalFileSystem _files;
        private readonly string _directory;
        private readonly long _sequence;
        private readonly int _keepCount;
        private readonly string _path;
        private readonly IJournalFile _file;
        private readonly JournalFileWriteStream _stream;

        public PendingSnapshot(IJournalFileSystem files, string directory, long sequence, int keepCount)
        {
            ArgumentNullException.ThrowIfNull(files);
            ArgumentException.ThrowIfNullOrWhiteSpace(directory);
            ArgumentOutOfRangeException.ThrowIfNegative(sequence);
            ArgumentOutOfRangeException.ThrowIfLessThan(keepCount, 1);
            _files = files;
            _directory = Path.GetFullPath(directory);
            _sequence = sequence;
            _keepCount = keepCount;
            files.CreateDirectory(_directory);
            _path = Path.Combine(_directory, SnapshotFormat.FileName(sequence));
            _file = files.OpenWrite(_path + SnapshotFormat.TempSuffix, create: true);
            // The header needs the payload's length and CRC, so it is written last, over the space left for it here.
            _stream = new JournalFileWriteStream(_file, SnapshotFormat.HeaderSize, bufferBytes: 1 << 16);
            Payload = new Crc32CWriteStream(_stream, SnapshotFormat.MaxPayloadBytes);
        }

        public Crc32CWriteStream Payload { get; }

        public string Publish(long timestampMs)
        {
            Span<byte> header = stackalloc byte[SnapshotFormat.HeaderSize];
            SnapshotFormat.WriteHeader(header, _sequence, timestampMs, Payload.Length, Payload.Crc);
            _stream.Flush();
            _file.Write(header, 0);
            _file.FlushAll();
            _file.Dispose();
            _files.Move(_path + SnapshotFormat.TempSuffix, _path, overwrite: true);
            _files.FlushDirectory(_directory);
            Prune();
            return _path;
        }

        public void Dispose() => _file.Dispose();

        /// <summary>
        /// Deletes all but the newest snapshots, and leftovers of crashed writes. The snapshot the retention anchor
        /// names is kept too: journal segments before it may have been retired, so it is what a reader behind the
        /// newest snapshots (a sink's follower) rebuilds from.
        /// </summary>
        private void Prune()
        {
            lock (PruneLock(_directory))
            {
                (string Path, long Sequence)[] snapshots = List(_files, _directory);
                long anchor = ReadRetentionAnchor(_files, _directory);
                for (int i = 0; i < snapshots.Length - _keepCount; i++)
                {
                    if (snapshots[i].Sequence != anchor) _files.Delete(snapshots[i].Path);
                }
            }
            foreach (string temporary in _files.ListFiles(_directory, SnapshotFormat.FilePrefix + "*" + SnapshotFormat.FileExtension + SnapshotFormat.TempSuffix))
            {
                _files.Delete(temporary);
            }
        }
    }

    /// <summary>Passes payload bytes through to the file while counting them and computing their CRC.</summary>
    private sealed class Crc32CWriteStream(Stream inner, long maxBytes) : Stream
    {
        private long _length;

        public uint Crc { get; private set; }
        public override long Length => _length;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Position { get => _length; set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_length + buffer.Length > maxBytes) throw new InvalidOperationException($"snapshot payload exceeds {maxBytes} bytes");
            inner.Write(buffer);
            Crc = Crc32C.Append(Crc, buffer);
            _length += buffer.Length;
        }

        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
