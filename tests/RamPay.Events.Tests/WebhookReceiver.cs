using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace RamPay.Events.Tests;

/// <summary>
/// A real HTTP receiver on 127.0.0.1 (HttpListener) that records every request (raw body and headers) and answers
/// what the test scripts: a status per request, a delay, or nothing at all while it is down (its port closed).
/// </summary>
public sealed class WebhookReceiver : IDisposable
{
    public sealed record Received(string Path, byte[] Body, string? Signature, string? EventId, string? EventType, DateTime At);

    private HttpListener? _listener;
    private readonly ConcurrentQueue<int> _script = new();
    public ConcurrentQueue<Received> Requests { get; } = new();
    public int Port { get; }
    public TimeSpan Delay { get; set; }
    private int _inFlight, _maxInFlight;
    /// <summary>The most requests this receiver was answering at once (the dispatcher's bound per endpoint).</summary>
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);
    public string Url(string path = "/hook") => $"http://127.0.0.1:{Port}{path}";

    public WebhookReceiver()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        Port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Up();
    }

    /// <summary>The next requests get these statuses, in order; then 200.</summary>
    public void Script(params int[] statuses)
    {
        foreach (var s in statuses) _script.Enqueue(s);
    }

    public void Up()
    {
        if (_listener is not null) return;
        var l = new HttpListener();
        l.Prefixes.Add($"http://127.0.0.1:{Port}/");
        l.Start();
        _listener = l;
        _ = Task.Run(() => Loop(l));
    }

    public void Down()
    {
        var l = _listener;
        _listener = null;
        l?.Stop();
        l?.Close();
    }

    private async Task Loop(HttpListener l)
    {
        while (l.IsListening)
        {
            HttpListenerContext ctx;
            try { ctx = await l.GetContextAsync(); }
            catch (Exception) { return; }
            _ = Task.Run(async () =>
            {
                int now = Interlocked.Increment(ref _inFlight);
                for (int seen = _maxInFlight; now > seen && Interlocked.CompareExchange(ref _maxInFlight, now, seen) != seen; seen = _maxInFlight) { }
                using var ms = new MemoryStream();
                await ctx.Request.InputStream.CopyToAsync(ms);
                Requests.Enqueue(new Received(ctx.Request.Url!.AbsolutePath, ms.ToArray(), ctx.Request.Headers["RamPay-Signature"], ctx.Request.Headers["RamPay-Event-Id"], ctx.Request.Headers["RamPay-Event-Type"], DateTime.UtcNow));
                if (Delay > TimeSpan.Zero) await Task.Delay(Delay);
                ctx.Response.StatusCode = _script.TryDequeue(out int s) ? s : 200;
                Interlocked.Decrement(ref _inFlight); // before the answer leaves: the next request cannot overlap this one
                try { ctx.Response.Close(); } catch (Exception) { }
            });
        }
    }

    public void Dispose() => Down();
}
