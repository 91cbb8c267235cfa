using System.Net.Sockets;
using System.Threading.Channels;
using RamPay.Core;
using RamPay.Protocol;
using RamPay.Server.Auth;
using RamPay.Server.Hosting;
using RamPay.Server.Http;
using RamPay.Server.Ingress;
using RamPay.Server.Observability;

namespace RamPay.Server.Tcp;

/// <summary>
/// One client connection of the binary protocol. A reader decodes frames, submits each batch to the engine at once
/// and queues a reply slot; a writer answers the slots strictly in arrival order, each batch once it is durable. The
/// queue is bounded, so a client that pipelines faster than the journal commits stops being read (TCP pushes back).
/// The rules a command meets between the frame and the ring (ownership, a deposit's source and maximum, the value
/// checks, back-pressure) are the ingress gateway's, shared with HTTP (Ingress/IngressGateway.cs).
/// </summary>
internal sealed class TcpConnection
{
    private readonly Socket _socket;
    private readonly Platform _platform;
    private readonly IngressGateway _gateway;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private readonly CancellationTokenSource _closed = new();
    private readonly ProtocolLimits _limits;
    private readonly Channel<Reply> _replies;
    private readonly WireCommand[] _wire;
    private readonly Command[] _commands;
    private byte[] _receive;
    private int _filled;
    private Caller? _caller;
    private string _rateKey = "";

    public TcpConnection(Socket socket, Platform platform, ILogger logger, CancellationToken stopping)
    {
        _socket = socket;
        _platform = platform;
        _gateway = platform.Gateway;
        _logger = logger;
        _stopping = stopping;
        _limits = platform.Options.TcpLimits();
        _replies = Channel.CreateBounded<Reply>(new BoundedChannelOptions(platform.Options.Tcp.MaxInFlightBatches)
        {
            SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait,
        });
        _wire = new WireCommand[_limits.MaxCommandsPerBatch];
        _commands = new Command[_limits.MaxCommandsPerBatch];
        // Until the Hello is accepted a peer can make us hold no more than one Hello.
        _receive = new byte[FrameHeader.Size + FrameCodec.MaxHelloBodyBytes];
    }

    /// <summary>What the writer sends for one received frame, in order.</summary>
    private sealed class Reply
    {
        public ulong RequestId;
        public FrameType Type;
        public PendingCommands? Pending;
        public int Count;
        /// <summary>Codes of commands refused at ingress (not submitted), or null when every command was submitted.</summary>
        public ResultCode[]? Refused;
        public long ClientId;
        public ProtocolErrorCode Error;
        public bool Close;
        public int CommandIndex = ProtocolError.NoCommandIndex;
        public string Message = "";

        public static Reply Failure(ulong requestId, ProtocolErrorCode code, string message, int commandIndex = ProtocolError.NoCommandIndex, bool? close = null) => new()
        {
            RequestId = requestId, Type = FrameType.Error, Error = code, Message = message, CommandIndex = commandIndex,
            Close = close ?? ProtocolErrorCodes.ClosesConnection(code),
        };
    }

    public static async Task RefuseAsync(Socket socket, string message)
    {
        try
        {
            var buffer = new byte[FrameCodec.MaxSizeOfError];
            int n = FrameCodec.WriteError(buffer, 0, ProtocolErrorCode.ServerBusy, closesConnection: true, ProtocolError.NoCommandIndex, message);
            await socket.SendAsync(buffer.AsMemory(0, n));
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        finally
        {
            socket.Dispose();
        }
    }

    public async Task RunAsync()
    {
        var writer = Task.Run(WriteLoop);
        try
        {
            await ReadLoop();
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The peer went away, or the server is stopping: answer what was submitted, then close.
        }
        catch (Exception e)
        {
            _logger.LogError(e, "tcp connection failed while reading");
            _replies.Writer.TryWrite(Reply.Failure(0, ProtocolErrorCode.InternalError, "the server failed reading this connection"));
        }
        finally
        {
            _replies.Writer.TryComplete();
        }
        await writer;
        _socket.Dispose();
    }

    private async Task ReadLoop()
    {
        using var token = CancellationTokenSource.CreateLinkedTokenSource(_stopping, _closed.Token);
        while (true)
        {
            // Back-pressure from the sinks: stop reading, so the client's sends block in TCP itself.
            await _gateway.WaitWhileBackPressuredAsync(token.Token);
            int received = await _socket.ReceiveAsync(_receive.AsMemory(_filled), SocketFlags.None, token.Token);
            if (received == 0) return;
            _filled += received;
            int consumed = 0;
            while (true)
            {
                var reply = TakeFrame(ref consumed, out bool needMore);
                if (needMore) break;
                if (reply is null) continue;
                // A decoded batch: the rate limit may need a Redis round trip, so it is awaited here (the decoded
                // commands wait in _wire; nothing else touches it meanwhile), then the batch is submitted.
                if (reply.Type == FrameType.CommandBatch)
                    reply = _platform.TcpLimiter.Enabled ? await LimitThenSubmit(reply) : Submit(reply);
                // Not cancelled by the stop: once a batch is submitted its reply must reach the writer, which drains the
                // queue before it says shutting_down. (With the queue full at SIGTERM, cancelling this wait left a batch
                // applied and never answered: CrashTests' SIGTERM test caught it.) Only a closed peer ends the wait.
                await _replies.Writer.WriteAsync(reply, _closed.Token);
                if (reply.Close) return;
            }
            // Keep the unread start of the next frame at the front of the buffer.
            if (consumed > 0)
            {
                Buffer.BlockCopy(_receive, consumed, _receive, 0, _filled - consumed);
                _filled -= consumed;
            }
            if (_caller is not null && _receive.Length < _limits.MaxFrameBytes)
            {
                var larger = new byte[_limits.MaxFrameBytes];
                Buffer.BlockCopy(_receive, 0, larger, 0, _filled);
                _receive = larger;
            }
        }
    }

    /// <summary>
    /// Handles the next frame in the buffer: returns its reply (or null for none), or sets <paramref name="needMore"/>
    /// when the buffer ends inside it. Checks the header before the body has arrived, so an unauthenticated peer is
    /// refused after 16 bytes rather than after however many it announces.
    /// </summary>
    private Reply? TakeFrame(ref int consumed, out bool needMore)
    {
        needMore = false;
        var rest = _receive.AsSpan(consumed, _filled - consumed);
        var status = FrameHeader.TryRead(rest, _limits, out var header, out var headerError);
        if (status == FrameStatus.Invalid)
        {
            RamPayTelemetry.TcpFrameReceived(0); // "invalid": its type is unknown or its header is refused
            return Reply.Failure(0, headerError.Code, headerError.Reason, close: true);
        }
        if (status == FrameStatus.NeedMoreData)
        {
            needMore = true;
            return null;
        }
        if (_caller is null && header.Type != FrameType.Hello)
            return Reply.Failure(header.RequestId, ProtocolErrorCode.NotAuthenticated, "the first frame must be a Hello", close: true);
        if (rest.Length < header.FrameLengthBytes)
        {
            needMore = true;
            return null;
        }
        var body = rest.Slice(FrameHeader.Size, header.BodyLengthBytes);
        consumed += header.FrameLengthBytes;
        RamPayTelemetry.TcpFrameReceived(header.Type);
        return header.Type switch
        {
            FrameType.Hello => Hello(header.RequestId, body),
            FrameType.CommandBatch => DecodeBatch(header.RequestId, body),
            FrameType.Ping => new Reply { RequestId = header.RequestId, Type = FrameType.Pong },
            _ => Reply.Failure(header.RequestId, ProtocolErrorCode.UnexpectedFrameType, $"a server never receives {header.Type} frames", close: true),
        };
    }

    private Reply Hello(ulong requestId, ReadOnlySpan<byte> body)
    {
        if (_caller is not null) return Reply.Failure(requestId, ProtocolErrorCode.AlreadyAuthenticated, "this connection is already authenticated");
        if (!FrameCodec.TryReadHello(body, out var token, out _, out var error))
            return Reply.Failure(requestId, error.Code, error.Reason, close: true);
        Span<char> chars = stackalloc char[FrameCodec.MaxAuthTokenBytes];
        int n = System.Text.Encoding.UTF8.GetChars(token, chars);
        // The same handler, parameters and checks (revocation included) as the bearer scheme over HTTP (TokenService.Validate).
        if (!_platform.Tokens.TryValidate(new string(chars[..n]), out var verified))
            return Reply.Failure(requestId, ProtocolErrorCode.AuthenticationFailed, "the token is invalid, expired or revoked: POST /v1/auth/token gives a new one", close: true);
        var caller = verified!.Caller;
        _caller = caller;
        _rateKey = "u:" + caller.UserId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return new Reply { RequestId = requestId, Type = FrameType.Welcome, ClientId = caller.UserId };
    }

    /// <summary>Decodes a batch into <see cref="_wire"/>: an Error reply, or a CommandBatch marker that the read loop submits.</summary>
    private Reply DecodeBatch(ulong requestId, ReadOnlySpan<byte> body)
    {
        if (!FrameCodec.TryReadCommandBatch(body, _limits, _wire, out int count, out var error))
            return Reply.Failure(requestId, error.Code, error.Reason, error.CommandIndex);
        RamPayTelemetry.TcpCommandsReceived(count);
        return new Reply { RequestId = requestId, Type = FrameType.CommandBatch, Count = count };
    }

    /// <summary>
    /// Takes the frame's command count from the user's TCP bucket (shared through Redis when configured); a frame
    /// over the limit is refused whole with <c>rate_limited</c> (nothing applied) and the connection stays.
    /// </summary>
    private async ValueTask<Reply> LimitThenSubmit(Reply decoded)
    {
        var limiter = _platform.TcpLimiter;
        var decision = await limiter.AcquireAsync(_rateKey, decoded.Count);
        if (decision.Allowed) return Submit(decoded);
        long retryMs = Math.Max(1, (long)Math.Ceiling(decision.RetryAfter.TotalMilliseconds));
        return Reply.Failure(decoded.RequestId, ProtocolErrorCode.RateLimited,
            $"over the rate limit of {limiter.RatePerSecond} commands a second (bursts of {limiter.Burst}): none of this frame's {decoded.Count} commands was applied; send it again after {retryMs} ms");
    }

    /// <summary>Submits the batch decoded into <see cref="_wire"/>, refusing at ingress (the gateway's rules) what the ledger must not see.</summary>
    private Reply Submit(Reply decoded)
    {
        ulong requestId = decoded.RequestId;
        int count = decoded.Count;
        var caller = _caller!.Value;
        ResultCode[]? refused = null;
        int submitted = 0;
        for (int i = 0; i < count; i++)
        {
            var command = WireCommand.ToCommand(_wire[i], caller.UserId);
            var refusal = _gateway.Prepare(ref command, caller);
            if (refusal.IsRefused)
            {
                refused ??= new ResultCode[count];
                refused[i] = refusal.Code;
                continue;
            }
            _commands[submitted++] = command;
        }
        // The decoded marker becomes the reply: one allocation per frame, as before the rate limit.
        var reply = decoded;
        reply.Type = FrameType.ResultBatch;
        reply.Refused = refused;
        if (submitted == 0) return reply;
        try
        {
            reply.Pending = _gateway.Submit(_commands.AsSpan(0, submitted));
        }
        catch (EngineUnavailableException e)
        {
            return Reply.Failure(requestId, ProtocolErrorCode.ShuttingDown, e.Message, close: true);
        }
        return reply;
    }

    private async Task WriteLoop()
    {
        var send = new byte[Math.Max(FrameCodec.SizeOfResultBatch(_limits.MaxCommandsPerBatch), FrameCodec.MaxSizeOfError)];
        var results = new WireResult[_limits.MaxCommandsPerBatch];
        try
        {
            await foreach (var reply in _replies.Reader.ReadAllAsync())
            {
                int length = await Encode(reply, send, results);
                await _socket.SendAsync(send.AsMemory(0, length));
                RamPayTelemetry.TcpFrameSent((FrameType)send[3]); // the header's type byte: what was written, error included
                if (reply.Close) break;
            }
            if (_stopping.IsCancellationRequested)
            {
                int n = FrameCodec.WriteError(send, 0, ProtocolErrorCode.ShuttingDown, closesConnection: true, ProtocolError.NoCommandIndex, "the server is stopping; every earlier frame was answered");
                await _socket.SendAsync(send.AsMemory(0, n));
            }
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The peer is gone: what it submitted still completes in the engine; no one is left to tell.
        }
        finally
        {
            await _closed.CancelAsync();
        }
    }

    private async ValueTask<int> Encode(Reply reply, byte[] send, WireResult[] results)
    {
        switch (reply.Type)
        {
            case FrameType.Welcome:
                return FrameCodec.WriteWelcome(send, reply.RequestId, reply.ClientId, _limits);
            case FrameType.Pong:
                return FrameCodec.WritePong(send, reply.RequestId);
            case FrameType.ResultBatch:
                if (reply.Pending is { } pending)
                {
                    try
                    {
                        await _gateway.WaitAsync(pending);
                    }
                    catch (EngineUnavailableException e)
                    {
                        reply.Close = true;
                        return FrameCodec.WriteError(send, reply.RequestId, ProtocolErrorCode.InternalError, closesConnection: true, ProtocolError.NoCommandIndex,
                            "the batch's outcome is unknown (" + e.Message + "); retry it with the same keys once the server is back");
                    }
                }
                for (int i = 0, j = 0; i < reply.Count; i++)
                {
                    var refused = reply.Refused?[i] ?? ResultCode.Ok;
                    results[i] = refused != ResultCode.Ok ? new WireResult(refused, false, 0) : WireResult.From(reply.Pending!.Results[j++]);
                }
                return FrameCodec.WriteResultBatch(send, reply.RequestId, results.AsSpan(0, reply.Count));
            default:
                return FrameCodec.WriteError(send, reply.RequestId, reply.Error, reply.Close, reply.CommandIndex, reply.Message);
        }
    }
}
