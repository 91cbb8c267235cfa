using BenchmarkDotNet.Attributes;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Journal;

namespace RamPay.Benchmarks;

/// <summary>
/// Start-up replay: a journal of 10,000 account set-up commands and 1,000,000 transfers, read back through
/// <see cref="EngineRecovery.Load"/> (CRC and sequence checks, decode, <see cref="Ledger.Apply"/>), exactly as the
/// engine does at start. Time is per record. The journal is written once and sits in the page cache.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 7, invocationCount: 1)]
public class ReplayBenchmarks
{
    private const int Wallets = 10_000;
    private const int Transfers = LedgerApplyBenchmarks.Commands;
    private const int Records = 2 * Wallets + 1 + Transfers;
    private string _data = "";

    [GlobalSetup]
    public void Setup()
    {
        _data = BenchmarkFiles.NewDirectory("replay");
        using var writer = JournalWriter.Open(new JournalOptions { Directory = Path.Combine(_data, "journal"), Fsync = false });
        Span<byte> payload = stackalloc byte[CommandCodec.Size];
        long seq = 0;
        foreach (var c in LedgerWorkload.Setup(Wallets).Concat(LedgerWorkload.Transfers(Transfers, Wallets, seed: 42)))
        {
            CommandCodec.Write(payload, c);
            writer.Append(RecordTypes.Command, ++seq, c.TimestampMs, payload);
            if (seq % 4096 == 0) writer.Commit();
        }
        writer.Commit();
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_data, recursive: true);

    [Benchmark(OperationsPerInvoke = Records)]
    public long ReplayJournal()
    {
        var (ledger, _, replayed, _) = EngineRecovery.Load(Path.Combine(_data, "snapshots"), Path.Combine(_data, "journal"),
            LedgerWorkload.Options(Wallets, Transfers), useSnapshot: false, []);
        if (replayed != Records || ledger.PaymentCount < Transfers / 2) throw new InvalidOperationException($"replayed {replayed} of {Records}");
        return replayed;
    }
}
