using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace RamPay.Server.Tests;

/// <summary>
/// The trace of one payment, exported by the real server's OTLP exporter (http/protobuf) to a receiver in this test:
/// the caller's trace context → the HTTP request's span → the engine span from submit to durable completion.
/// </summary>
public sealed class TracingTests
{
    [Fact]
    public async Task A_payment_is_traced_from_the_callers_context_through_the_HTTP_span_to_the_durable_engine_span()
    {
        await using var receiver = OtlpReceiver.Start();
        await using var server = await ServerProcess.StartAsync(
            new Dictionary<string, string> { ["OTEL_BSP_SCHEDULE_DELAY"] = "100" },
            [.. ServerFixture.TestSettings, $"Otlp:Endpoint={receiver.Endpoint}", "Otlp:Protocol=http/protobuf"]);
        var api = new Api(server);
        var (alice, bob) = await api.PairAsync(aliceDeposit: 1_000);

        string traceId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
        string callerSpanId = Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.NextInt64(1, long.MaxValue)));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/payments")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 25, currency = "USD", capture = true }), Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", alice.Token);
        request.Headers.Add("Idempotency-Key", Api.NewKey());
        request.Headers.Add("traceparent", $"00-{traceId}-{callerSpanId}-01");
        using var response = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);

        var spans = await receiver.WaitForAsync(s => s.Count(x => x.TraceId == traceId) >= 2, TimeSpan.FromSeconds(30));
        var ours = spans.Where(s => s.TraceId == traceId).ToList();
        string Describe() => string.Join('\n', spans.Select(s => s.ToString()));

        var http = Assert.Single(ours, s => s.ParentSpanId == callerSpanId);
        Assert.Equal("POST /v1/payments", http.Name);
        Assert.Equal("/v1/payments", http.Attributes.GetValueOrDefault("http.route"));
        Assert.Equal("201", http.Attributes.GetValueOrDefault("http.response.status_code"));

        var engine = Assert.Single(ours, s => s.Name == "rampay.engine");
        Assert.True(engine.ParentSpanId == http.SpanId, Describe());
        Assert.Equal("transfer", engine.Attributes.GetValueOrDefault("rampay.command.type"));
        Assert.Equal("1", engine.Attributes.GetValueOrDefault("rampay.command.count"));
        Assert.Equal("ok", engine.Attributes.GetValueOrDefault("rampay.result"));
        Assert.True(long.Parse(engine.Attributes["rampay.journal.sequence"], System.Globalization.CultureInfo.InvariantCulture) > 0, Describe());
        // The engine span (submit → durable) lies inside the request's span.
        Assert.True(engine.StartNs >= http.StartNs && engine.EndNs <= http.EndNs && engine.EndNs > engine.StartNs, Describe());
        Assert.Equal(2, ours.Count);
    }
}

/// <summary>One span as OTLP carries it (ids in lowercase hex, times in unix ns, attribute values as text).</summary>
public sealed record ReceivedSpan(string TraceId, string SpanId, string ParentSpanId, string Name, ulong StartNs, ulong EndNs, Dictionary<string, string> Attributes)
{
    public override string ToString() => $"{Name} trace={TraceId} span={SpanId} parent={ParentSpanId} {string.Join(' ', Attributes.Select(a => a.Key + "=" + a.Value))}";
}

/// <summary>
/// An OTLP/HTTP (protobuf) trace receiver on a free loopback port: decodes <c>ExportTraceServiceRequest</c> bodies with a
/// small protobuf wire-format reader (only the fields the test needs) and answers 200 with an empty response message.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly List<ReceivedSpan> _spans = [];
    private readonly Task _loop;

    private OtlpReceiver(int port)
    {
        Endpoint = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Endpoint + "/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public string Endpoint { get; }

    public static OtlpReceiver Start()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return new OtlpReceiver(port);
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException) { return; }
            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            if (context.Request.Url!.AbsolutePath == "/v1/traces")
            {
                var spans = ParseExportRequest(body.ToArray());
                lock (_spans) _spans.AddRange(spans);
            }
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/x-protobuf";
            context.Response.Close();
        }
    }

    public async Task<List<ReceivedSpan>> WaitForAsync(Func<List<ReceivedSpan>, bool> done, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            List<ReceivedSpan> copy;
            lock (_spans) copy = [.. _spans];
            if (done(copy)) return copy;
            if (DateTime.UtcNow > deadline) throw new Xunit.Sdk.XunitException($"waited {timeout.TotalSeconds} s for spans; received:\n{string.Join('\n', copy)}");
            await Task.Delay(100);
        }
    }

    // ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
    // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
    // ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
    // Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5;
    //        fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9; }
    // KeyValue { string key = 1; AnyValue value = 2; }  AnyValue { string s = 1; bool b = 2; int64 i = 3; double d = 4; }
    internal static List<ReceivedSpan> ParseExportRequest(byte[] body)
    {
        var spans = new List<ReceivedSpan>();
        foreach (var (f1, resourceSpans) in Fields(body))
            if (f1 == 1)
                foreach (var (f2, scopeSpans) in Fields(resourceSpans.Bytes))
                    if (f2 == 2)
                        foreach (var (f3, span) in Fields(scopeSpans.Bytes))
                            if (f3 == 2) spans.Add(ParseSpan(span.Bytes));
        return spans;
    }

    private static ReceivedSpan ParseSpan(byte[] span)
    {
        string traceId = "", spanId = "", parent = "", name = "";
        ulong start = 0, end = 0;
        var attributes = new Dictionary<string, string>();
        foreach (var (field, value) in Fields(span))
        {
            switch (field)
            {
                case 1: traceId = Convert.ToHexStringLower(value.Bytes); break;
                case 2: spanId = Convert.ToHexStringLower(value.Bytes); break;
                case 4: parent = Convert.ToHexStringLower(value.Bytes); break;
                case 5: name = Encoding.UTF8.GetString(value.Bytes); break;
                case 7: start = value.Number; break;
                case 8: end = value.Number; break;
                case 9:
                    string key = "", text = "";
                    foreach (var (kf, kv) in Fields(value.Bytes))
                    {
                        if (kf == 1) key = Encoding.UTF8.GetString(kv.Bytes);
                        if (kf != 2) continue;
                        foreach (var (af, av) in Fields(kv.Bytes))
                            text = af switch
                            {
                                1 => Encoding.UTF8.GetString(av.Bytes),
                                2 => (av.Number != 0).ToString(),
                                3 => ((long)av.Number).ToString(System.Globalization.CultureInfo.InvariantCulture),
                                4 => BitConverter.UInt64BitsToDouble(av.Number).ToString(System.Globalization.CultureInfo.InvariantCulture),
                                _ => text,
                            };
                    }
                    attributes[key] = text;
                    break;
            }
        }
        return new ReceivedSpan(traceId, spanId, parent, name, start, end, attributes);
    }

    private readonly record struct WireValue(ulong Number, byte[] Bytes);

    /// <summary>The fields of one protobuf message: varint, fixed64 and fixed32 as numbers, length-delimited as bytes.</summary>
    private static IEnumerable<(int Field, WireValue Value)> Fields(byte[] message)
    {
        int at = 0;
        while (at < message.Length)
        {
            ulong tag = Varint(message, ref at);
            int field = (int)(tag >> 3);
            switch ((int)(tag & 7))
            {
                case 0: yield return (field, new WireValue(Varint(message, ref at), []));
                    break;
                case 1: yield return (field, new WireValue(BitConverter.ToUInt64(message, at), []));
                    at += 8;
                    break;
                case 2:
                    int length = (int)Varint(message, ref at);
                    yield return (field, new WireValue(0, message[at..(at + length)]));
                    at += length;
                    break;
                case 5: yield return (field, new WireValue(BitConverter.ToUInt32(message, at), []));
                    at += 4;
                    break;
                default: throw new InvalidDataException($"protobuf wire type {tag & 7} at byte {at}");
            }
        }
    }

    private static ulong Varint(byte[] b, ref int at)
    {
        ulong value = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte x = b[at++];
            value |= (ulong)(x & 0x7F) << shift;
            if (x < 0x80) return value;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        _listener.Close();
        try { await _loop; } catch (Exception e) when (e is HttpListenerException or ObjectDisposedException) { }
    }
}
