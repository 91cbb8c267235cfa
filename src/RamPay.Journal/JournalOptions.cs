namespace RamPay.Journal;

/// <summary>Configuration of a <see cref="JournalWriter"/>.</summary>
public sealed class JournalOptions
{
    public const long DefaultSegmentSizeBytes = 256L * 1024 * 1024;

    /// <summary>The directory holding the segment files; created when missing.</summary>
    public required string Directory { get; init; }

    /// <summary>A segment rolls to a new file before a record would take it past this size.</summary>
    public long SegmentSizeBytes { get; init; } = DefaultSegmentSizeBytes;

    /// <summary>Initial size of the batch buffer that <see cref="JournalWriter.Append"/> fills.</summary>
    public int BatchBufferInitialBytes { get; init; } = 64 * 1024;

    /// <summary>
    /// The batch buffer doubles up to this size; an Append that finds it full commits the batch first,
    /// so one batch never holds more than this many bytes.
    /// </summary>
    public int BatchBufferMaxBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>
    /// true (the default): Commit returns only after fdatasync, the journal's durability promise.
    /// false is UNSAFE for production: records survive a process crash but not a power loss or a
    /// kernel crash. It exists only for tests and benchmarks of the code path without the disk flush.
    /// </summary>
    public bool Fsync { get; init; } = true;

    /// <summary>Where the writer does its I/O: the operating system unless a test simulates faults.</summary>
    public IJournalFileSystem FileSystem { get; init; } = OsJournalFileSystem.Instance;

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(Directory);
        ArgumentNullException.ThrowIfNull(FileSystem);
        long segmentMin = SegmentFormat.HeaderSize + RecordFormat.MaxRecordSize;
        if (SegmentSizeBytes < segmentMin)
        {
            throw new ArgumentOutOfRangeException(nameof(SegmentSizeBytes), SegmentSizeBytes, $"must hold at least one maximum-size record ({segmentMin} bytes)");
        }
        if (BatchBufferInitialBytes < RecordFormat.MaxRecordSize || BatchBufferInitialBytes > BatchBufferMaxBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchBufferInitialBytes), BatchBufferInitialBytes, $"must be between {RecordFormat.MaxRecordSize} and {nameof(BatchBufferMaxBytes)}");
        }
        if (BatchBufferMaxBytes > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchBufferMaxBytes), BatchBufferMaxBytes, "too large for one buffer");
        }
    }
}
