using Microsoft.Win32.SafeHandles;

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
    public static string Write(string directory, long sequence, long timestampMs, ReadOnlySpan<byte> payload, int keepCount = DefaultKeepCount)
    {
        using var pending = new PendingSnapshot(directory, sequence, keepCount);
        pending.Payload.Write(payload);
        return pending.Publish(timestampMs);
    }

    /// <summary>As the buffer overload, but <paramref name="writePayload"/> streams the state into the file.</summary>
    public static string Write(string directory, long sequence, long timestampMs, Action<Stream> writePayload, int keepCount = DefaultKeepCount)
    {
        ArgumentNullException.ThrowIfNull(writePayload);
        using var pending = new PendingSnapshot(directory, sequence, keepCount);
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
    public static bool TryLoadLatest(string directory, long maxSequence, out SnapshotInfo info, out byte[] payload)
    {
        var warnings = new List<string>();
        (string Path, long Sequence)[] snapshots = List(Path.GetFullPath(directory));
        for (int i = snapshots.Length - 1; i >= 0; i--)
        {
            if (snapshots[i].Sequence > maxSequence) continue;
            string? problem = TryLoad(snapshots[i].Path, snapshots[i].Sequence, out SnapshotHeader header, out payload);
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

    private static string? TryLoad(string path, long nameSequence, out SnapshotHeader header, out byte[] payload)
    {
        payload = [];
        using SafeFileHandle file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Span<byte> headerBytes = stackalloc byte[SnapshotFormat.HeaderSize];
        int headerRead = RandomAccess.Read(file, headerBytes, 0);
        SnapshotHeaderStatus status = SnapshotFormat.TryReadHeader(headerBytes[..headerRead], out header);
        if (status == SnapshotHeaderStatus.UnsupportedVersion)
        {
            return header.Version > SnapshotFormat.CurrentVersion
                ? $"written by a newer RamPay (snapshot format {header.Version}; this build reads {SnapshotFormat.CurrentVersion})"
                : $"unknown snapshot format {header.Version}";
        }
        if (status != SnapshotHeaderStatus.Ok) return $"header {status}";
        if (header.Sequence != nameSequence) return $"header sequence {header.Sequence} differs from the file name";
        long fileBytes = RandomAccess.GetLength(file);
        if (fileBytes != SnapshotFormat.HeaderSize + header.PayloadLength)
        {
            return $"file is {fileBytes} bytes, header promises {SnapshotFormat.HeaderSize + header.PayloadLength}";
        }

        byte[] bytes = GC.AllocateUninitializedArray<byte>((int)header.PayloadLength);
        int total = 0;
        // Bounded by the length checked above: each read returns at least one byte until the end.
        while (total < bytes.Length)
        {
            int read = RandomAccess.Read(file, bytes.AsSpan(total), SnapshotFormat.HeaderSize + total);
            if (read == 0) return "file shrank while reading";
            total += read;
        }
        if (Crc32C.Compute(bytes) != header.PayloadCrc) return "payload CRC mismatch";
        payload = bytes;
        return null;
    }

    /// <summary>Snapshot files in ascending sequence order.</summary>
    private static (string Path, long Sequence)[] List(string directory)
    {
        if (!Directory.Exists(directory)) return [];
        var snapshots = new List<(string Path, long Sequence)>();
        foreach (string path in Directory.EnumerateFiles(directory, SnapshotFormat.FilePrefix + "*" + SnapshotFormat.FileExtension))
        {
            if (SnapshotFormat.TryParseFileName(Path.GetFileName(path), out long sequence)) snapshots.Add((path, sequence));
        }
        snapshots.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
        return [.. snapshots];
    }

    /// <summary>A snapshot being written to its temporary file; <see cref="Publish"/> makes it the newest.</summary>
    private sealed class PendingSnapshot : IDisposable
    {
        private readonly string _directory;
        private readonly long _sequence;
        private readonly int _keepCount;
        private readonly string _path;
        private readonly FileStream _file;

        public PendingSnapshot(string directory, long sequence, int keepCount)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(directory);
            ArgumentOutOfRangeException.ThrowIfNegative(sequence);
            ArgumentOutOfRangeException.ThrowIfLessThan(keepCount, 1);
            _directory = Path.GetFullPath(directory);
            _sequence = sequence;
            _keepCount = keepCount;
            Directory.CreateDirectory(_directory);
            _path = Path.Combine(_directory, SnapshotFormat.FileName(sequence));
            _file = new FileStream(_path + SnapshotFormat.TempSuffix, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 16);
            // The header needs the payload's length and CRC, so it is written last, over this placeholder.
            _file.Write(stackalloc byte[SnapshotFormat.HeaderSize]);
            Payload = new Crc32CWriteStream(_file, SnapshotFormat.MaxPayloadBytes);
        }

        public Crc32CWriteStream Payload { get; }

        public string Publish(long timestampMs)
        {
            Span<byte> header = stackalloc byte[SnapshotFormat.HeaderSize];
            SnapshotFormat.WriteHeader(header, _sequence, timestampMs, Payload.Length, Payload.Crc);
            _file.Position = 0;
            _file.Write(header);
            _file.Flush(flushToDisk: true);
            _file.Dispose();
            File.Move(_path + SnapshotFormat.TempSuffix, _path, overwrite: true);
            Durability.FlushDirectory(_directory);
            Prune();
            return _path;
        }

        public void Dispose() => _file.Dispose();

        /// <summary>Deletes all but the newest snapshots, and leftovers of crashed writes.</summary>
        private void Prune()
        {
            (string Path, long Sequence)[] snapshots = List(_directory);
            for (int i = 0; i < snapshots.Length - _keepCount; i++) File.Delete(snapshots[i].Path);
            foreach (string temporary in Directory.GetFiles(_directory, SnapshotFormat.FilePrefix + "*" + SnapshotFormat.FileExtension + SnapshotFormat.TempSuffix))
            {
                File.Delete(temporary);
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
