using System.Net;
using System.Net.Sockets;
using System.Text;
using RamPay.Core;
using RamPay.Protocol;

namespace RamPay.Server.Tests;

/// <summary>A frame the server sent, copied out of the receive buffer.</summary>
public sealed record ReceivedFrame(FrameType Type, ulong RequestId, byte[] Body)
{
    public long WelcomeClientId()
    {
        Assert.True(Type == FrameType.Welcome, $"expected Welcome, got {Describe()}");
        Assert.True(FrameCodec.TryReadWelcome(Body, out long clientId, out _, out var error), $"malformed Welcome: {error}");
        return clientId;
    }

    public WireResult[] Results()
    {
        Assert.True(Type == FrameType.ResultBatch, $"expected ResultBatch, got {Describe()}");
        var into = new WireResult[ProtocolLimits.Default.MaxCommandsPerBatch];
        Assert.True(FrameCodec.TryReadResultBatch(Body, ProtocolLimits.Default, into, out int count, out var error), $"malformed ResultBatch: {error}");
        return into[..count];
    }

    public (ProtocolErrorCode Code, bool Closes, int CommandIndex, string Message) Error()
    {
        Assert.True(Type == FrameType.Error, $"expected Error, got {Describe()}");
        Assert.True(FrameCodec.TryReadError(Body, out var e, out var error), $"malformed Error: {error}");
        return (e.Code, e.ClosesConnection, e.CommandIndex, e.Message);
    }

    public string Describe()
    {
        if (Type == FrameType.Error && FrameCodec.TryReadError(Body, out var e, out _))
            return $"Error({ProtocolErrorCodes.Name(e.Code)}, closes={e.ClosesConnection}, index={e.CommandIndex}, '{e.Message}') request {RequestId}";
        return $"{Type} request {RequestId}, {Body.Length} body bytes";
    }
}

/// <summary>
/// A raw TCP connection to the server that speaks docs/protocol.md through RamPay.Protocol's codec: frames are
/// written with <see cref="FrameCodec"/> and cut from the stream with <see cref="FrameReader"/>.
/// </summary>
public sealed class WireConnection : IAsyncDisposable
{
    public static readonly TimeSpan ReceiveTimeout = TimeSpan.FromSeconds(30);
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[ProtocolLimits.Default.MaxFrameBytes];
    private int _filled;

    private WireConnection(Socket socket) => _socket = socket;

    public static async Task<WireConnection> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endPoint);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new WireConnection(socket);
    }

    /// <summary>Connects and says Hello with the token; asserts the Welcome and returns the connection and its client id.</summary>
    public static async Task<(WireConnection Connection, long ClientId)> OpenAsync(IPEndPoint endPoint, string token)
    {
        var connection = await ConnectAsync(endPoint);
        await connection.SendHelloAsync(token, requestId: 1);
        var reply = await connection.ReceiveAsync();
        Assert.True(reply.RequestId == 1, $"the Welcome should echo the Hello's request id 1: {reply.Describe()}");
        return (connection, reply.WelcomeClientId());
    }

    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            int sent = await _socket.SendAsync(bytes);
            bytes = bytes[sent..];
        }
    }

    public Task SendHelloAsync(string token, ulong requestId, string clientName = "e2e-tests")
    {
        byte[] t = Encoding.UTF8.GetBytes(token), n = Encoding.UTF8.GetBytes(clientName);
        var frame = new byte[FrameCodec.SizeOfHello(t.Length, n.Length)];
        FrameCodec.WriteHello(frame, requestId, t, n);
        return SendAsync(frame);
    }

    public static byte[] CommandBatchFrame(ulong requestId, params WireCommand[] commands)
    {
        var frame = new byte[FrameCodec.SizeOfCommandBatch(commands.Length)];
        FrameCodec.WriteCommandBatch(frame, requestId, commands);
        return frame;
    }

    public Task SendBatchAsync(ulong requestId, params WireCommand[] commands) => SendAsync(CommandBatchFrame(requestId, commands));

    public Task SendPingAsync(ulong requestId)
    {
        var frame = new byte[FrameCodec.SizeOfPing];
        FrameCodec.WritePing(frame, requestId);
        return SendAsync(frame);
    }

    /// <summary>Sends a batch and reads its ResultBatch (asserting the request id and one result per command).</summary>
    public async Task<WireResult[]> RoundTripAsync(ulong requestId, params WireCommand[] commands)
    {
        await SendBatchAsync(requestId, commands);
        var reply = await ReceiveAsync();
        Assert.True(reply.RequestId == requestId, $"expected the reply to request {requestId}, got {reply.Describe()}");
        var results = reply.Results();
        Assert.Equal(commands.Length, results.Length);
        return results;
    }

    /// <summary>The next frame; fails when the server closes first or nothing comes within the timeout.</summary>
    public async Task<ReceivedFrame> ReceiveAsync() =>
        await TryReceiveAsync() ?? throw new Xunit.Sdk.XunitException("the server closed the connection instead of sending a frame");

    /// <summary>The next frame, or null when the server closed the connection (FIN or reset) at a frame boundary.</summary>
    public async Task<ReceivedFrame?> TryReceiveAsync()
    {
        using var timeout = new CancellationTokenSource(ReceiveTimeout);
        while (true)
        {
            if (TryTakeFrame() is { } frame) return frame;
            int n;
            try
            {
                n = await _socket.ReceiveAsync(_buffer.AsMemory(_filled), SocketFlags.None, timeout.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"no frame from the server within {ReceiveTimeout.TotalSeconds} s ({_filled} bytes of a partial frame buffered)");
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
            {
                n = 0;
            }
            if (n == 0)
            {
                if (_filled == 0) return null;
                throw new IOException($"the server closed the connection in the middle of a frame ({_filled} bytes buffered)");
            }
            _filled += n;
        }
    }

    /// <summary>Asserts that the server closes the connection next, without sending anything more.</summary>
    public async Task ExpectClosedAsync()
    {
        var frame = await TryReceiveAsync();
        Assert.True(frame is null, $"expected the server to close the connection, but it sent {frame?.Describe()}");
    }

    /// <summary>Asserts that the next frame is an Error with this code, the close flag and this request id, and that the server then closes.</summary>
    public async Task ExpectClosingErrorAsync(ProtocolErrorCode code, ulong requestId)
    {
        var frame = await ReceiveAsync();
        var e = frame.Error();
        Assert.True(e.Code == code && e.Closes && frame.RequestId == requestId,
            $"expected Error({ProtocolErrorCodes.Name(code)}, closes) for request {requestId}, got {frame.Describe()}");
        await ExpectClosedAsync();
    }

    private ReceivedFrame? TryTakeFrame()
    {
        var reader = new FrameReader(_buffer.AsSpan(0, _filled), ProtocolLimits.Default);
        if (!reader.TryRead(out Frame frame))
        {
            if (reader.Status == FrameStatus.Invalid)
                throw new Xunit.Sdk.XunitException($"the server sent an invalid frame: {reader.Error}");
            return null;
        }
        var received = new ReceivedFrame(frame.Type, frame.RequestId, frame.Body.ToArray());
        int consumed = reader.ConsumedBytes;
        _buffer.AsSpan(consumed, _filled - consumed).CopyTo(_buffer);
        _filled -= consumed;
        return received;
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>Wire commands for tests; currency USD unless told, keys from strings as a client would hash them.</summary>
public static class Wire
{
    public static WireCommand Transfer(string key, long from, long to, long amount, string currency = "USD") =>
        Move(CommandType.Transfer, key, from, to, amount, currency);

    public static WireCommand Authorize(string key, long from, long to, long amount, long holdTimeoutMs = 0, string currency = "USD") =>
        Move(CommandType.Authorize, key, from, to, amount, currency) with { HoldTimeoutMs = holdTimeoutMs };

    /// <summary>A deposit from the platform's funding account of the currency (from account 0).</summary>
    public static WireCommand Deposit(string key, long to, long amount, string currency = "USD", long from = 0) =>
        Move(CommandType.Deposit, key, from, to, amount, currency);

    public static WireCommand Capture(string key, long paymentId, long amount = 0) => OnPayment(CommandType.Capture, key, paymentId, amount);
    public static WireCommand Void(string key, long paymentId) => OnPayment(CommandType.Void, key, paymentId, 0);
    public static WireCommand Refund(string key, long paymentId, long amount) => OnPayment(CommandType.Refund, key, paymentId, amount);

    private static WireCommand Move(CommandType type, string key, long from, long to, long amount, string currency) => new()
    {
        Type = type, Key = IdempotencyKey.FromString(key), Currency = Currency.Parse(currency), FromAccount = from, ToAccount = to, Amount = amount,
    };

    private static WireCommand OnPayment(CommandType type, string key, long paymentId, long amount) => new()
    {
        Type = type, Key = IdempotencyKey.FromString(key), PaymentId = paymentId, Amount = amount,
    };

    public static string Describe(WireResult r) => $"{ResultCodes.Name(r.Code)} id={r.Id}{(r.Replayed ? " replayed" : "")}";
}
