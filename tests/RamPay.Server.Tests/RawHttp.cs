using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RamPay.Server.Tests;

/// <summary>One answer read off the socket: status, the header block and the (de-chunked) body.</summary>
public sealed record RawResponse(int Status, string Headers, byte[] Body)
{
    public string Text => Encoding.UTF8.GetString(Body);

    public JsonNode? Json
    {
        get
        {
            try { return Body.Length == 0 ? null : JsonNode.Parse(Body); }
            catch (JsonException) { return null; }
        }
    }

    public string? ErrorCode => Json is JsonObject o && o["error"] is JsonObject e && e["code"] is JsonValue v && v.TryGetValue(out string? s) ? s : null;

    public string? ErrorMessage => Json is JsonObject o && o["error"] is JsonObject e && e["message"] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
}

/// <summary>
/// HTTP/1.1 over a raw socket, one connection per request: the request line, headers and body are sent byte for byte,
/// which HttpClient does not allow (it refuses non-ASCII header values and %-escapes a non-ASCII path).
/// </summary>
public static class RawHttp
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    /// <summary>A request; <paramref name="target"/> and the header values are raw bytes (Latin-1 chars map to one byte each).</summary>
    public static byte[] Build(string method, byte[] target, IEnumerable<(string Name, byte[] Value)> headers, byte[]? body)
    {
        var request = new List<byte>();
        request.AddRange(Encoding.ASCII.GetBytes(method + " "));
        request.AddRange(target);
        request.AddRange(Encoding.ASCII.GetBytes(" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"));
        foreach (var (name, value) in headers)
        {
            request.AddRange(Encoding.ASCII.GetBytes(name + ": "));
            request.AddRange(value);
            request.AddRange("\r\n"u8.ToArray());
        }
        if (body is not null)
            request.AddRange(Encoding.ASCII.GetBytes($"Content-Type: application/json\r\nContent-Length: {body.Length.ToString(CultureInfo.InvariantCulture)}\r\n"));
        else if (method != "GET")
            request.AddRange("Content-Length: 0\r\n"u8.ToArray());
        request.AddRange("\r\n"u8.ToArray());
        if (body is not null) request.AddRange(body);
        return [.. request];
    }

    public static async Task<RawResponse> SendAsync(Uri server, byte[] request)
    {
        using var cancel = new CancellationTokenSource(Timeout);
        using var client = new TcpClient();
        await client.ConnectAsync(server.Host, server.Port, cancel.Token);
        var stream = client.GetStream();
        await stream.WriteAsync(request, cancel.Token);
        using var received = new MemoryStream();
        // The server closes the connection after its answer (Connection: close); Kestrel may also close early, after
        // refusing a request before reading its body, which can reset the connection once the answer is out.
        try
        {
            await stream.CopyToAsync(received, cancel.Token);
        }
        catch (IOException) when (received.Length > 0)
        {
        }
        return Parse(received.ToArray());
    }

    private static RawResponse Parse(byte[] response)
    {
        int end = response.AsSpan().IndexOf("\r\n\r\n"u8);
        if (end < 0) throw new Xunit.Sdk.XunitException($"not an HTTP answer: '{Encoding.Latin1.GetString(response)}'");
        string head = Encoding.Latin1.GetString(response, 0, end);
        string statusLine = head.Split("\r\n")[0];
        int status = int.Parse(statusLine.Split(' ')[1], CultureInfo.InvariantCulture);
        var body = response.AsSpan(end + 4);
        bool chunked = head.Split("\r\n").Any(h => h.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase) && h.Contains("chunked", StringComparison.OrdinalIgnoreCase));
        return new RawResponse(status, head, chunked ? Dechunk(body) : body.ToArray());
    }

    private static byte[] Dechunk(ReadOnlySpan<byte> body)
    {
        var result = new List<byte>();
        while (true)
        {
            int line = body.IndexOf("\r\n"u8);
            if (line < 0) throw new Xunit.Sdk.XunitException("a chunked body cut short");
            int size = int.Parse(Encoding.ASCII.GetString(body[..line]).Split(';')[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (size == 0) return [.. result];
            result.AddRange(body.Slice(line + 2, size).ToArray());
            body = body[(line + 2 + size + 2)..];
        }
    }
}
