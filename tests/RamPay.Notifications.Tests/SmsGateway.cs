using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace RamPay.Notifications.Tests;

/// <summary>
/// A local HTTP receiver standing in for Twilio's Messages endpoint: records every request's form (To, From, Body) and
/// Authorization header, and answers a scripted status per request (then 201, as Twilio does).
/// </summary>
public sealed class SmsGateway : IDisposable
{
    public sealed record Sms(string To, string From, string Body, string? Authorization);

    private readonly HttpListener _listener = new();
    private readonly ConcurrentQueue<int> _script = new();
    public ConcurrentQueue<Sms> Received { get; } = new();
    public int Port { get; }
    public string Url => $"http://127.0.0.1:{Port}/2010-04-01/Accounts/ACtest/Messages.json";
    public const string AccountSid = "ACtest", AuthToken = "test-auth-token", From = "+15550009999";

    public SmsGateway()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        Port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _ = Task.Run(Loop);
    }

    public string[] Settings() =>
        [$"Notifications:Sms:Url={Url}", $"Notifications:Sms:AccountSid={AccountSid}", $"Notifications:Sms:AuthToken={AuthToken}", $"Notifications:Sms:From={From}"];

    public void Script(params int[] statuses)
    {
        foreach (var s in statuses) _script.Enqueue(s);
    }

    public List<Sms> To(string phone) => [.. Received.Where(s => s.To == phone)];

    private async Task Loop()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try { ctx = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            using var reader = new StreamReader(ctx.Request.InputStream, Encoding.UTF8);
            var form = Parse(await reader.ReadToEndAsync());
            Received.Enqueue(new Sms(form.GetValueOrDefault("To", ""), form.GetValueOrDefault("From", ""), form.GetValueOrDefault("Body", ""), ctx.Request.Headers["Authorization"]));
            ctx.Response.StatusCode = _script.TryDequeue(out int s) ? s : 201;
            ctx.Response.Close();
        }
    }

    public static Dictionary<string, string> Parse(string body) =>
        body.Split('&', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2))
            .ToDictionary(p => Uri.UnescapeDataString(p[0].Replace('+', ' ')), p => p.Length > 1 ? Uri.UnescapeDataString(p[1].Replace('+', ' ')) : "");

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
    }
}
