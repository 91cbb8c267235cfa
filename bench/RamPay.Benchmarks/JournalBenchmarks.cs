using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using RamPay.Journal;

namespace RamPay.Benchmarks;

/// <summary>
/// Group commit with fsync ON: each invoke appends <see cref="RecordsPerInvoke"/> 80-byte records,
/// committing (one write + one fdatasync) every <see cref="BatchSize"/> records. Reported time is per record.
/// The journal lives in a temp directory (set RAMPAY_BENCH_DIR to measure another disk).
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(launchCount: 1, warmupCount: 2, iterationCount: 6)]
public class JournalAppendBenchmarks
{
    private const int RecordsPerInvoke = 1024;
    private const int PayloadBytes = 80;
    private const byte RecordType = 1;

    private readonly byte[] _payload = new byte[PayloadBytes];
    private string _directory = "";
    private JournalWriter _writer = null!;

    [Params(1, 64, 1024)]
    public int BatchSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _directory = BenchmarkFiles.NewDirectory("append");
        _writer = JournalWriter.Open(new JournalOptions { Directory = _directory, Fsync = true });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _writer.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = RecordsPerInvoke)]
    public long AppendWithGroupCommit()
    {
        long sequence = _writer.LastSequence;
        for (int i = 1; i <= RecordsPerInvoke; i++)
        {
            sequence++;
            _writer.Append(RecordType, sequence, sequence, _payload);
            if (i % BatchSize == 0) _writer.Commit();
        }
        _writer.Commit();
        return _writer.DurableSequence;
    }
}

/// <summary>
/// Replay: reads a 1,000,000-record journal (112-byte records, 80-byte payloads, written once in
/// setup) with every CRC and sequence checked, summing a payload field. Reported time is per record.
/// The file is in the page cache after setup, so this measures parsing + CRC, not the disk.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(launchCount: 1, warmupCount: 2, iterationCount: 8)]
public class JournalReplayBenchmarks
{
    private const int Records = 1_000_000;
    private const int PayloadBytes = 80;

    private string _directory = "";

    [GlobalSetup]
    public void Setup()
    {
        _directory = BenchmarkFiles.NewDirectory("replay");
        var payload = new byte[PayloadBytes];
        // Fsync off only to make setup fast: replay reads the same bytes either way.
        using var writer = JournalWriter.Open(new JournalOptions { Directory = _directory, Fsync = false });
        for (long sequence = 1; sequence <= Records; sequence++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(8), sequence);
            writer.Append(1, sequence, sequence, payload);
            if (sequence % 1024 == 0) writer.Commit();
        }
        writer.Commit();
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_directory, recursive: true);

    [Benchmark(OperationsPerInvoke = Records)]
    public long Replay()
    {
        var visitor = new AmountSum();
        JournalReader.Read(_directory, 0, visitor);
        if (visitor.Count != Records) throw new InvalidOperationException($"replayed {visitor.Count} records, expected {Records}");
        return visitor.Sum;
    }

    private sealed class AmountSum : IRecordVisitor
    {
        public long Sum;
        public long Count;

        public void OnRecord(in RecordHeader header, ReadOnlySpan<byte> payload)
        {
            Sum += BinaryPrimitives.ReadInt64LittleEndian(payload[8..]);
            Count++;
        }
    }
}

/// <summary>Where benchmarks put their files: the temp directory, or RAMPAY_BENCH_DIR to measure another disk.</summary>
internal static class BenchmarkFiles
{
    public static string NewDirectory(string name)
    {
        string root = Environment.GetEnvironmentVariable("RAMPAY_BENCH_DIR") ?? Path.GetTempPath();
        string directory = Path.Combine(root, $"rampay-bench-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        return directory;
    }
}
