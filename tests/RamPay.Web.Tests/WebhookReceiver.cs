using System.Net;
using System.Net.Sockets;

namespace RamPay.Web.Tests;

/// <summary>
/// A webhook receiver for the end-to-end tests: HttpListener on a free 127.0.0.1 port, answering 200, counting and
/// keeping the bodies. It also stands in for the SMS gateway (Twilio's Messages request is a form post: To, From, Body).
/// </summary>
public sealed class WebhookReceiver : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _bodies = new();
    private int _count;

    /// <summary>Every body received so far, in order.</summary>
    public IReadOnlyList<string> Bodies => [.. _bodies];

    public WebhookReceiver()
    {
        Port = FreePort();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _ = Task.Run(LoopAsync);
    }

    public int Port { get; }
    public string Url => $"http://127.0.0.1:{Port}/hook";
    /// <summary>Requests received so far.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>A port that was free a moment ago: for the receiver, or (not listened on) as an address that refuses connections.</summary>
    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try { ctx = await _listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            using (var reader = new StreamReader(ctx.Request.InputStream)) _bodies.Enqueue(await reader.ReadToEndAsync());
            Interlocked.Increment(ref _count);
            ctx.Response.StatusCode = 200;
            ctx.Response.Close();
        }
    }

    public void Dispose() => _listener.Close();
}
