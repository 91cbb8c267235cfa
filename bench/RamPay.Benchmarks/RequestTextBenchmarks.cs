using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using RamPay.Server.Http;

namespace RamPay.Benchmarks;

/// <summary>
/// What the text checks of <see cref="RequestText"/> add to each HTTP request, beside the baseline of parsing the same
/// body with JsonDocument (which every request with a body already does). The body is a payment as clients send it;
/// the escaped one has a description with \u escapes and quotes, which takes the slower path (a reader pass that
/// decodes each escaped string). The target check is the one every request passes through.
/// </summary>
/// <remarks>In-process: the measured code is pure CPU work on arrays, and building BenchmarkDotNet's boilerplate exe,
/// which references the whole web server, took longer than its two-minute timeout on the shared machine.</remarks>
[MemoryDiagnoser]
[MedianColumn]
[Config(typeof(InProcessConfig))]
public class RequestTextBenchmarks
{
    private sealed class InProcessConfig : ManualConfig
    {
        public InProcessConfig() =>
            AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(10));
    }

    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 16 };
    private byte[] _payment = [];
    private byte[] _escaped = [];
    private DefaultHttpContext _plainTarget = new();
    private DefaultHttpContext _escapedTarget = new();

    [GlobalSetup]
    public void Setup()
    {
        _payment = Encoding.UTF8.GetBytes("""{"from_account":1042,"to_account":2077,"amount":2500,"currency":"USD","description":"Invoice 2026-0042, thank you"}""");
        _escaped = Encoding.UTF8.GetBytes("""{"from_account":1042,"to_account":2077,"amount":2500,"currency":"USD","description":"Zo\u00eb's \"caf\u00e9\" \ud83c\udf55"}""");
        _plainTarget = Context("/v1/accounts/1042/payments?limit=20&after=981");
        _escapedTarget = Context("/v1/accounts/1042/payments?limit=20&after=981&note=caf%C3%A9");
    }

    private static DefaultHttpContext Context(string rawTarget)
    {
        var ctx = new DefaultHttpContext();
        ctx.Features.Get<IHttpRequestFeature>()!.RawTarget = rawTarget;
        return ctx;
    }

    [Benchmark(Baseline = true)]
    public int Parse_payment()
    {
        using var document = JsonDocument.Parse(_payment, Options);
        return document.RootElement.GetPropertyCount();
    }

    [Benchmark]
    public void Check_payment()
    {
        RequestText.CheckUtf8(_payment);
        RequestText.CheckEscapes(_payment);
    }

    [Benchmark]
    public void Check_payment_with_escapes()
    {
        RequestText.CheckUtf8(_escaped);
        RequestText.CheckEscapes(_escaped);
    }

    [Benchmark]
    public void Check_target() => RequestText.CheckTarget(_plainTarget);

    [Benchmark]
    public void Check_target_with_escapes() => RequestText.CheckTarget(_escapedTarget);
}
