using System.Net;
using System.Net.Sockets;
using System.Text;

namespace RamPay.Client.Tests;

/// <summary>
/// A loopback listener whose connections speak the codec under the test's direct control: each test decides which
/// frames the "server" reads and what it answers, so ordering, errors and drops happen exactly when the test says.
/// </summary>
internal sealed class FakeServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);

    public FakeServer() => _listener.Start();

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public async Task<FakeConnection> AcceptAsync() => new(await _listener.AcceptSocketAsync().WaitAsync(TestTimeouts.Step));

    public ValueTask DisposeAsync()
    {
        _listener.Stop();
        return ValueTask.CompletedTask;
    }
}

/// <summary>A listener, a client connected to it with a Welcome, and the server's end: what most tests start from, disposed together.</summary>
internal sealed class FakeSession : IAsyncDisposable
{
    private readonly FakeServer _listener;

    private FakeSession(FakeServer listener, RamPayTcpClient client, FakeConnection connection)
    {
        _listener = listener;
        Client = client;
        Connection = connection;
    }

    public RamPayTcpClient Client { get; }
    public FakeConnection Connection { get; }

    public static async Task<FakeSession> StartAsync(long clientId = 7, ProtocolLimits? limits = null)
    {
        var listener = new FakeServer();
        Task<RamPayTcpClient> connecting = RamPayTcpClient.ConnectAsync("127.0.0.1", listener.Port, "token", "tests");
        FakeConnection connection = await listener.AcceptAsync();
        await connection.AcceptHelloAsync(clientId, limits ?? ProtocolLimits.Default);
        return new FakeSession(listener, await connecting.WaitAsync(TestTimeouts.Step), connection);
    }

    public void Deconstruct(out RamPayTcpClient client, out FakeConnection connection) => (client, connection) = (Client, Connection);

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Connection.DisposeAsync();
        await _listener.DisposeAsync();
    }
}

internal static class TestTimeouts
{
    /// <summary>Long enough for a loaded CI machine; a test that waits this long has failed anyway.</summary>
    public static readonly TimeSpan Step = TimeSpan.FromSeconds(20);
}

internal sealed record ReceivedFrame(FrameHeader Header, byte[] Body)
{
    public FrameType Type => Header.Type;
    public ulong RequestId => Header.RequestId;

    public WireCommand[] Commands()
    {
        var into = new WireCommand[ProtocolLimits.Default.MaxCommandsPerBatch];
        Assert.True(FrameCodec.TryReadCommandBatch(Body, ProtocolLimits.Default, into, out int count, out ProtocolError error), error.ToString());
        return into[..count];
    }
}

internal sealed class FakeConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[ProtocolLimits.Default.MaxFrameBytes];
    private int _filled;

    public FakeConnection(Socket socket) => _socket = socket;

    public string? HelloToken { get; private set; }
    public string? HelloClientName { get; private set; }
    public ulong HelloRequestId { get; private set; }

    public async Task AcceptHelloAsync(long clientId, ProtocolLimits limits)
    {
        ReceivedFrame hello = await ReadFrameAsync();
        Assert.Equal(FrameType.Hello, hello.Type);
        Assert.True(FrameCodec.TryReadHello(hello.Body, out ReadOnlySpan<byte> token, out ReadOnlySpan<byte> name, out ProtocolError error), error.ToString());
        HelloToken = Encoding.UTF8.GetString(token);
        HelloClientName = Encoding.UTF8.GetString(name);
        HelloRequestId = hello.RequestId;
        byte[] welcome = new byte[FrameCodec.SizeOfWelcome];
        FrameCodec.WriteWelcome(welcome, hello.RequestId, clientId, limits);
        await SendAsync(welcome);
    }

    /// <summary>The next whole frame the client sent (a copy, so the test may keep it).</summary>
    public async Task<ReceivedFrame> ReadFrameAsync()
    {
        while (true)
        {
            if (TryTakeFrame(out ReceivedFrame? frame)) return frame;
            int n = await _socket.ReceiveAsync(_buffer.AsMemory(_filled)).AsTask().WaitAsync(TestTimeouts.Step);
            if (n == 0) throw new IOException("the client closed the connection");
            _filled += n;
        }
    }

    private bool TryTakeFrame([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ReceivedFrame? received)
    {
        received = null;
        var reader = new FrameReader(_buffer.AsSpan(0, _filled), ProtocolLimits.Default);
        if (!reader.TryRead(out Frame frame))
        {
            Assert.NotEqual(FrameStatus.Invalid, reader.Status);
            return false;
        }
        received = new ReceivedFrame(frame.Header, frame.Body.ToArray());
        int consumed = reader.ConsumedBytes;
        _buffer.AsSpan(consumed, _filled - consumed).CopyTo(_buffer);
        _filled -= consumed;
        return true;
    }

    public async Task<ReceivedFrame> ReadCommandBatchAsync()
    {
        ReceivedFrame frame = await ReadFrameAsync();
        Assert.Equal(FrameType.CommandBatch, frame.Type);
        return frame;
    }

    public Task SendResultsAsync(ulong requestId, ReadOnlySpan<WireResult> results)
    {
        byte[] frame = new byte[FrameCodec.SizeOfResultBatch(results.Length)];
        FrameCodec.WriteResultBatch(frame, requestId, results);
        return SendAsync(frame);
    }

    /// <summary>Answers a batch with one ok result per command whose id is the command's amount: each caller can check it got its own.</summary>
    public Task AnswerWithAmountsAsync(ReceivedFrame batch) =>
        SendResultsAsync(batch.RequestId, batch.Commands().Select(c => new WireResult(ResultCode.Ok, false, c.Amount)).ToArray());

    public Task SendErrorAsync(ulong requestId, ProtocolErrorCode code, bool closes, string message = "test error", int commandIndex = -1)
    {
        byte[] frame = new byte[FrameCodec.MaxSizeOfError];
        int n = FrameCodec.WriteError(frame, requestId, code, closes, commandIndex, message);
        return SendAsync(frame.AsMemory(0, n));
    }

    public Task SendPongAsync(ulong requestId)
    {
        byte[] frame = new byte[FrameCodec.SizeOfPong];
        FrameCodec.WritePong(frame, requestId);
        return SendAsync(frame);
    }

    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            int n = await _socket.SendAsync(bytes);
            bytes = bytes[n..];
        }
    }

    /// <summary>
    /// Answers every CommandBatch like <see cref="AnswerWithAmountsAsync"/> until the client goes away, reusing its
    /// buffers so that an allocation measurement sees the client's allocations, not this loop's.
    /// </summary>
    public async Task EchoAmountsAsync()
    {
        var commands = new WireCommand[ProtocolLimits.Default.MaxCommandsPerBatch];
        var results = new WireResult[ProtocolLimits.Default.MaxCommandsPerBatch];
        byte[] output = new byte[ProtocolLimits.Default.MaxFrameBytes];
        while (true)
        {
            int outputBytes = AnswerBufferedBatches(commands, results, output);
            if (outputBytes > 0) await SendAsync(output.AsMemory(0, outputBytes));
            int n;
            try
            {
                n = await _socket.ReceiveAsync(_buffer.AsMemory(_filled));
            }
            catch (SocketException)
            {
                return;
            }
            if (n == 0) return;
            _filled += n;
        }
    }

    private int AnswerBufferedBatches(WireCommand[] commands, WireResult[] results, byte[] output)
    {
        var reader = new FrameReader(_buffer.AsSpan(0, _filled), ProtocolLimits.Default);
        int outputBytes = 0;
        while (outputBytes + FrameCodec.SizeOfResultBatch(ProtocolLimits.Default.MaxCommandsPerBatch) <= output.Length && reader.TryRead(out Frame frame))
        {
            Assert.Equal(FrameType.CommandBatch, frame.Type);
            Assert.True(FrameCodec.TryReadCommandBatch(frame.Body, ProtocolLimits.Default, commands, out int count, out _));
            for (int i = 0; i < count; i++) results[i] = new WireResult(ResultCode.Ok, false, commands[i].Amount);
            outputBytes += FrameCodec.WriteResultBatch(output.AsSpan(outputBytes), frame.RequestId, results.AsSpan(0, count));
        }
        int consumed = reader.ConsumedBytes;
        _buffer.AsSpan(consumed, _filled - consumed).CopyTo(_buffer);
        _filled -= consumed;
        return outputBytes;
    }

    /// <summary>Drops the connection without a word, as a crashed server or a cut cable would.</summary>
    public void Drop()
    {
        _socket.Close(0);
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
