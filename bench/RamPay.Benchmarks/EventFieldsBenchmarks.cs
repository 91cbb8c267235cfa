using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using RamPay.Analytics;

namespace RamPay.Benchmarks;

/// <summary>
/// Reading an event's fields as the analytics and rewards workers do (docs/benchmarks.md, "Analytics worker: reading the
/// fields"): the scanner (<see cref="EventFields.TryRead(ReadOnlySpan{byte}, out EventFields)"/>'s fast way) against
/// the baseline, the reference reading with Utf8JsonReader that it falls back to. The event is the contract's golden
/// PaymentApproved (tests/RamPay.Kafka.Tests/EventEncoderTests.cs, 768 bytes), half of an ordinary payment's two events.
/// <c>dotnet run -c Release --project bench/RamPay.Benchmarks -- --filter '*EventFields*'</c>
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[Config(typeof(InProcessConfig))]
public class EventFieldsBenchmarks
{
    private sealed class InProcessConfig : ManualConfig
    {
        public InProcessConfig() =>
            AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(15));
    }

    private readonly byte[] _approved =
        """{"event_id":"42-0-1","type":"PaymentApproved","version":1,"sequence":42,"index":0,"ordinal":1,"occurred_at":"2023-11-14T22:13:20.007Z","key":20,"client_id":77,"payment":{"id":9,"kind":"transfer","status":"posted","from_account":20,"to_account":21,"amount":1250,"currency":"USD","captured":1250,"refunded":0,"parent_id":null,"created_at":"2023-11-14T22:13:20.007Z","expires_at":null,"description":null,"webhook_url":null},"balances":{"from":{"id":20,"owner":77,"currency":"USD","balance":8750,"available":8750,"debits_posted":1250,"credits_posted":10000,"debits_pending":0,"credits_pending":0,"frozen":false},"to":{"id":21,"owner":78,"currency":"USD","balance":1250,"available":1250,"debits_posted":0,"credits_posted":1250,"debits_pending":0,"credits_pending":0,"frozen":false}}}"""u8.ToArray();

    [Benchmark(Baseline = true)]
    public long Reader()
    {
        EventFields.TryReadWithReader(_approved, out var f, EventFields.AllTypes);
        return f.Amount + f.ToOwner;
    }

    [Benchmark]
    public long Scanner()
    {
        EventFields.TryRead(_approved, out var f, EventFields.AllTypes);
        return f.Amount + f.ToOwner;
    }
}
