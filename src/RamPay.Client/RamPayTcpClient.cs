using System.Buffers;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using RamPay.Protocol;

namespace RamPay.Client;

/// <summary>
/// One authenticated connection speaking the binary protocol of docs/protocol.md.
/// <para>
/// Pipelined: any number of threads may call <see cref="SendBatchAsync(ReadOnlyMemory{WireCommand}, Memory{WireResult}, CancellationToken)"/>
/// and <see cref="PingAsync"/> at once. One writer loop takes queued requests in order, gives each the next request
/// id, encodes as many as are waiting into one pooled buffer and writes them with one socket write. It appends each
/// to an in-flight FIFO before its bytes can leave, so the FIFO's order is the wire's order. One reader loop cuts
/// replies out of a pooled receive buffer; the server answers every frame exactly once and in order, so each reply
/// belongs to the FIFO's head, and the reader checks that its request id says so.
/// </para>
/// <para>
/// Failure: an Error frame for a request fails that request with <see cref="RamPayProtocolException"/> (not applied;
/// <see cref="RamPayProtocolException.IsRetryable"/> for <c>server_busy</c> and <c>rate_limited</c>). When the connection ends for any reason,
/// every queued and in-flight request fails with <see cref="RamPayConnectionException"/> (outcome unknown: resend
/// with the same idempotency keys on a new connection), and so does every later call.
/// </para>
/// <para>
/// Memory: request objects are pooled and awaited as <see cref="ValueTask"/>s, frames are encoded straight into the
/// writer's buffer and results decoded straight out of the reader's, so a batch sent through the overload that takes
/// a result buffer allocates nothing per command (nor, in the steady state, per batch).
/// </para>
/// </summary>
public sealed class RamPayTcpClient : IAsyncDisposable
{
    /// <summary>The Hello's request id. Ids start above 0 because the server reports stream-level errors with id 0.</summary>
    private const ulong HelloRequestId = 1;
    /// <summary>Enough for the handshake's answer: a Welcome or the largest Error.</summary>
    private const int HandshakeReceiveBytes = FrameHeader.Size + FrameCodec.MaxErrorBodyBytes;
    /// <summary>Below this a write buffer would hold few small frames; the pool hands out at least this anyway.</summary>
    private const int MinWriteBufferBytes = 64 * 1024;
    private const int MaxPooledRequests = 1024;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly Channel<PendingRequest> _sendQueue = Channel.CreateUnbounded<PendingRequest>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = false, AllowSynchronousContinuations = false });
    private readonly ConcurrentQueue<PendingRequest> _inFlight = new();
    private readonly Stack<PendingRequest> _pool = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _writeLoop;
    private readonly Task _readLoop;
    private readonly int _receiveCapacity;
    private Exception? _closeReason;
    /// <summary>Touched by the writer loop only (after the handshake).</summary>
    private ulong _lastRequestId = HelloRequestId;

    private RamPayTcpClient(Socket socket, NetworkStream stream, long clientId, ProtocolLimits serverLimits, ReadOnlySpan<byte> alreadyReceived)
    {
        _socket = socket;
        _stream = stream;
        ClientId = clientId;
        ServerLimits = serverLimits;
        // The largest frame the server may send after the Welcome: a full ResultBatch or the largest Error.
        _receiveCapacity = FrameHeader.Size + Math.Max(serverLimits.MaxBodyBytesOf(FrameType.ResultBatch), FrameCodec.MaxErrorBodyBytes);
        byte[] receiveBuffer = ArrayPool<byte>.Shared.Rent(_receiveCapacity);
        // Bytes that arrived behind the Welcome (none, from a well-behaved server) belong to the reader.
        alreadyReceived.CopyTo(receiveBuffer);
        int alreadyReceivedBytes = alreadyReceived.Length;
        // The loops live as long as the connection, not as the caller's flow: do not hand them its AsyncLocals.
        using (ExecutionContext.SuppressFlow())
        {
            _writeLoop = Task.Run(WriteLoopAsync);
            _readLoop = Task.Run(() => ReadLoopAsync(receiveBuffer, alreadyReceivedBytes));
        }
    }

    /// <summary>The Welcome's client id: the user id, and the scope of this connection's idempotency keys.</summary>
    public long ClientId { get; }

    /// <summary>The server's limits from the Welcome: at most <see cref="ProtocolLimits.MaxCommandsPerBatch"/> commands per batch.</summary>
    public ProtocolLimits ServerLimits { get; }

    /// <summary>False once the connection has ended; every call then fails at once.</summary>
    public bool IsConnected => Volatile.Read(ref _closeReason) is null;

    /// <summary>Why the connection ended, or null while it is up.</summary>
    public Exception? CloseReason => Volatile.Read(ref _closeReason);

    /// <summary>Completes when the connection has ended (never faults).</summary>
    public Task Closed => _closed.Task;

    /// <summary>
    /// Connects, sends Hello with <paramref name="accessToken"/> (the JWT that <c>POST /v1/auth/token</c> returns) and
    /// waits for Welcome. A refused token throws <see cref="RamPayProtocolException"/> with
    /// <see cref="ProtocolErrorCode.AuthenticationFailed"/>.
    /// </summary>
    public static async Task<RamPayTcpClient> ConnectAsync(string host, int port, string accessToken, string? clientName = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentException.ThrowIfNullOrEmpty(accessToken);
        byte[] token = Encoding.UTF8.GetBytes(accessToken);
        byte[] name = clientName is null ? [] : Encoding.UTF8.GetBytes(clientName);
        if (token.Length > FrameCodec.MaxAuthTokenBytes) throw new ArgumentException($"the token is longer than {FrameCodec.MaxAuthTokenBytes} bytes", nameof(accessToken));
        if (name.Length > FrameCodec.MaxClientNameBytes) throw new ArgumentException($"the client name is longer than {FrameCodec.MaxClientNameBytes} bytes", nameof(clientName));

        // Dual-mode: "localhost" may resolve to ::1 or 127.0.0.1, and ConnectAsync tries each address.
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        NetworkStream? stream = null;
        try
        {
            await socket.ConnectAsync(host, port, ct).ConfigureAwait(false);
            stream = new NetworkStream(socket, ownsSocket: true);
            byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(HandshakeReceiveBytes, FrameCodec.SizeOfHello(token.Length, name.Length)));
            try
            {
                int helloBytes = FrameCodec.WriteHello(buffer, HelloRequestId, token, name);
                await stream.WriteAsync(buffer.AsMemory(0, helloBytes), ct).ConfigureAwait(false);
                int filled = 0;
                while (true)
                {
                    int n = await stream.ReadAsync(buffer.AsMemory(filled, HandshakeReceiveBytes - filled), ct).ConfigureAwait(false);
                    if (n == 0) throw new RamPayConnectionException("the server closed the connection before it answered the Hello");
                    filled += n;
                    if (TryReadWelcome(buffer.AsSpan(0, filled), out long clientId, out ProtocolLimits? limits, out int consumed))
                        return new RamPayTcpClient(socket, stream, clientId, limits, buffer.AsSpan(consumed, filled - consumed));
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        catch
        {
            if (stream is not null) await stream.DisposeAsync().ConfigureAwait(false);
            else socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends one CommandBatch and completes with its results, in command order, once the server has made the batch
    /// durable. Allocates the result array; see the overload that takes one for the allocation-free path.
    /// </summary>
    public ValueTask<WireResult[]> SendBatchAsync(ReadOnlyMemory<WireCommand> commands, CancellationToken ct = default)
    {
        // Not an async method itself, so that a bad batch throws here, as it does from the other overload.
        var results = new WireResult[commands.Length];
        ValueTask sent = SendBatchAsync(commands, results, ct);
        return Completed(sent, results);

        static async ValueTask<WireResult[]> Completed(ValueTask sent, WireResult[] results)
        {
            await sent.ConfigureAwait(false);
            return results;
        }
    }

    /// <summary>
    /// Sends one CommandBatch of 1..<see cref="ServerLimits"/>.MaxCommandsPerBatch commands and writes its results to
    /// <paramref name="results"/>[0..commands.Length). Both buffers must stay untouched until the returned task
    /// completes, which must be awaited exactly once.
    /// <para>
    /// Cancellation takes effect only while the batch still waits in the queue: once written, the server will apply
    /// it and answer, and the only way to stop waiting is to dispose the client.
    /// </para>
    /// </summary>
    /// <exception cref="RamPayProtocolException">The server refused the frame (not applied).</exception>
    /// <exception cref="RamPayConnectionException">The connection ended first (outcome unknown).</exception>
    public ValueTask SendBatchAsync(ReadOnlyMemory<WireCommand> commands, Memory<WireResult> results, CancellationToken ct = default)
    {
        ReadOnlySpan<WireCommand> span = commands.Span;
        if (span.IsEmpty || span.Length > ServerLimits.MaxCommandsPerBatch)
            throw new ArgumentException($"a batch holds 1..{ServerLimits.MaxCommandsPerBatch} commands (the server's limit); got {span.Length}", nameof(commands));
        if (results.Length < span.Length) throw new ArgumentException("the result buffer is shorter than the batch", nameof(results));
        // Checked here so that a caller's mistake fails this call, not the writer loop and with it the connection.
        for (int i = 0; i < span.Length; i++)
        {
            if (!WireCommand.IsAllowedType(span[i].Type))
                throw new ArgumentException($"command {i}: type {span[i].Type} may not be sent on the wire", nameof(commands));
        }
        return new ValueTask(Enqueue(FrameType.CommandBatch, commands, results, ct, out short version), version);
    }

    /// <summary>Sends a Ping and completes with the round-trip time when the Pong arrives (behind every earlier request).</summary>
    public async ValueTask<TimeSpan> PingAsync(CancellationToken ct = default)
    {
        PendingRequest request = Enqueue(FrameType.Ping, default, default, ct, out short version);
        long elapsedTicks = await new ValueTask<long>(request, version).ConfigureAwait(false);
        return TimeSpan.FromSeconds(elapsedTicks / (double)System.Diagnostics.Stopwatch.Frequency);
    }

    /// <summary>Closes the connection; queued and in-flight requests fail with <see cref="RamPayConnectionException"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        Close(new ObjectDisposedException(nameof(RamPayTcpClient), "the client was disposed"));
        // The loops return their pooled buffers as they exit; wait so nothing outlives the dispose.
        await Task.WhenAll(_writeLoop, _readLoop).ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
    }

    // ---- handshake ----

    /// <summary>False: need more bytes. Throws for an Error frame or anything that is not the Hello's Welcome.</summary>
    private static bool TryReadWelcome(ReadOnlySpan<byte> received, out long clientId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ProtocolLimits? limits, out int consumed)
    {
        clientId = 0;
        limits = null;
        consumed = 0;
        // Default limits are enough to check the header of a Welcome or an Error, the only frames expected here.
        var reader = new FrameReader(received, ProtocolLimits.Default);
        if (!reader.TryRead(out Frame frame))
        {
            if (reader.Status == FrameStatus.Invalid) throw Violation(reader.Error.Code, "handshake: " + reader.Error.Reason);
            if (reader.RequiredBytes > HandshakeReceiveBytes) throw Violation(ProtocolErrorCode.FrameTooLarge, "handshake: the answer to Hello is larger than a Welcome or an Error");
            return false;
        }
        if (frame.Type == FrameType.Error)
        {
            if (!FrameCodec.TryReadError(frame.Body, out ErrorBody error, out ProtocolError bad)) throw Violation(bad.Code, "handshake: " + bad.Reason);
            throw new RamPayProtocolException(error.Code, error.Message, error.CommandIndex, closesConnection: true, frame.RequestId);
        }
        if (frame.Type != FrameType.Welcome) throw Violation(ProtocolErrorCode.UnexpectedFrameType, $"handshake: expected Welcome, got {frame.Type}");
        if (frame.RequestId != HelloRequestId) throw Violation(ProtocolErrorCode.MalformedBody, "handshake: the Welcome does not carry the Hello's request id");
        if (!FrameCodec.TryReadWelcome(frame.Body, out clientId, out limits, out ProtocolError welcomeError))
            throw Violation(welcomeError.Code, "handshake: " + welcomeError.Reason);
        consumed = reader.ConsumedBytes;
        return true;
    }

    private static RamPayProtocolException Violation(ProtocolErrorCode code, string message, ulong requestId = 0) =>
        new(code, "the server broke the protocol: " + message, ProtocolError.NoCommandIndex, closesConnection: true, requestId, sentByServer: false);

    // ---- requests ----

    private PendingRequest Enqueue(FrameType kind, ReadOnlyMemory<WireCommand> commands, Memory<WireResult> results, CancellationToken ct, out short version)
    {
        PendingRequest request = RentRequest();
        version = request.Prepare(kind, commands, results, ct);
        if (Volatile.Read(ref _closeReason) is { } reason) request.Fail(ConnectionEnded(reason));
        else if (!_sendQueue.Writer.TryWrite(request)) request.Fail(ConnectionEnded(Volatile.Read(ref _closeReason)));
        return request;
    }

    private PendingRequest RentRequest()
    {
        lock (_pool)
        {
            if (_pool.TryPop(out PendingRequest? request)) return request;
        }
        return new PendingRequest(this);
    }

    private void ReturnRequest(PendingRequest request)
    {
        lock (_pool)
        {
            if (_pool.Count < MaxPooledRequests) _pool.Push(request);
        }
    }

    private static RamPayConnectionException ConnectionEnded(Exception? reason) => reason switch
    {
        RamPayConnectionException c => new RamPayConnectionException(c.Message, c.InnerException),
        null => new RamPayConnectionException("the connection is closed"),
        _ => new RamPayConnectionException("the connection ended: " + reason.Message, reason),
    };

    // ---- writer ----

    private async Task WriteLoopAsync()
    {
        int bufferBytes = Math.Max(MinWriteBufferBytes, FrameCodec.SizeOfCommandBatch(ServerLimits.MaxCommandsPerBatch));
        byte[] buffer = ArrayPool<byte>.Shared.Rent(bufferBytes);
        ChannelReader<PendingRequest> queue = _sendQueue.Reader;
        // Taken from the queue but not yet in the FIFO: if a write fails now, only this variable still reaches it.
        PendingRequest? unsent = null;
        try
        {
            while (await queue.WaitToReadAsync().ConfigureAwait(false))
            {
                int filled = 0;
                // Everything queued meanwhile goes out in one write: under load many small frames share a syscall.
                while (queue.TryRead(out PendingRequest? request))
                {
                    if (Volatile.Read(ref _closeReason) is { } reason)
                    {
                        request.Fail(ConnectionEnded(reason));
                        continue;
                    }
                    unsent = request;
                    int frameBytes = request.Kind == FrameType.Ping ? FrameCodec.SizeOfPing : FrameCodec.SizeOfCommandBatch(request.Commands.Length);
                    if (filled + frameBytes > buffer.Length)
                    {
                        await _stream.WriteAsync(buffer.AsMemory(0, filled)).ConfigureAwait(false);
                        filled = 0;
                    }
                    unsent = null;
                    // Lost to a cancellation while it waited: it never reaches the wire.
                    if (!request.TryMarkSent()) continue;
                    ulong requestId = ++_lastRequestId;
                    request.RequestId = requestId;
                    request.SentTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
                    filled += request.Kind == FrameType.Ping
                        ? FrameCodec.WritePing(buffer.AsSpan(filled), requestId)
                        : FrameCodec.WriteCommandBatch(buffer.AsSpan(filled), requestId, request.Commands.Span);
                    // In the FIFO before its bytes leave, so its reply always finds it. From here the writer no longer
                    // touches the request: the reader may complete and recycle it at any time.
                    _inFlight.Enqueue(request);
                    // Close() drains the FIFO after publishing its reason: whichever of us comes second sees the other.
                    if (Volatile.Read(ref _closeReason) is not null) DrainInFlight();
                }
                if (filled > 0) await _stream.WriteAsync(buffer.AsMemory(0, filled)).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            Close(e is RamPayConnectionException ? e : new RamPayConnectionException("sending failed: " + e.Message, e));
        }
        finally
        {
            unsent?.Fail(ConnectionEnded(Volatile.Read(ref _closeReason)));
            // Close() completed the queue, so nothing more can arrive; fail what is still waiting.
            while (queue.TryRead(out PendingRequest? request)) request.Fail(ConnectionEnded(Volatile.Read(ref _closeReason)));
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // ---- reader ----

    private async Task ReadLoopAsync(byte[] buffer, int filled)
    {
        WireResult[] results = ArrayPool<WireResult>.Shared.Rent(ServerLimits.MaxCommandsPerBatch);
        Exception? reason = null;
        try
        {
            while (reason is null)
            {
                // Bytes may already be waiting (received behind the Welcome): handle them before reading more.
                int consumed = HandleReplies(buffer.AsSpan(0, filled), results, out reason);
                if (reason is not null) break;
                if (consumed > 0)
                {
                    buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                    filled -= consumed;
                }
                int n = await _stream.ReadAsync(buffer.AsMemory(filled)).ConfigureAwait(false);
                if (n == 0)
                {
                    reason = new RamPayConnectionException("the server closed the connection");
                    break;
                }
                filled += n;
            }
        }
        catch (Exception e)
        {
            reason = new RamPayConnectionException("receiving failed: " + e.Message, e);
        }
        finally
        {
            Close(reason ?? new RamPayConnectionException("the connection ended"));
            ArrayPool<WireResult>.Shared.Return(results);
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Completes the requests answered by the frames in <paramref name="received"/>; returns the bytes used.</summary>
    private int HandleReplies(ReadOnlySpan<byte> received, WireResult[] results, out Exception? closeReason)
    {
        closeReason = null;
        var reader = new FrameReader(received, ServerLimits);
        while (reader.TryRead(out Frame frame))
        {
            closeReason = HandleReply(frame, results);
            if (closeReason is not null) return reader.ConsumedBytes;
        }
        if (reader.Status == FrameStatus.Invalid) closeReason = Violation(reader.Error.Code, reader.Error.Reason);
        // The receive buffer holds the largest legal reply, so a frame that needs more is not a reply; waiting for it
        // would fill the buffer and stall.
        else if (reader.RequiredBytes > _receiveCapacity) closeReason = Violation(ProtocolErrorCode.FrameTooLarge, "a frame larger than any reply");
        return reader.ConsumedBytes;
    }

    /// <summary>Handles one frame; returns why the connection must close, or null to go on.</summary>
    private Exception? HandleReply(Frame frame, WireResult[] results)
    {
        if (frame.Type == FrameType.Error)
        {
            if (!FrameCodec.TryReadError(frame.Body, out ErrorBody body, out ProtocolError bad)) return Violation(bad.Code, "Error frame: " + bad.Reason, frame.RequestId);
            var error = new RamPayProtocolException(body.Code, body.Message, body.CommandIndex, body.ClosesConnection, frame.RequestId);
            // Id 0: about the stream itself, not one request. Otherwise it answers the FIFO's head like any reply.
            if (frame.RequestId != 0)
            {
                if (!_inFlight.TryPeek(out PendingRequest? head) || head.RequestId != frame.RequestId)
                    return body.ClosesConnection ? error : Violation(ProtocolErrorCode.MalformedBody, $"an Error for request {frame.RequestId}, which is not the oldest in flight", frame.RequestId);
                _inFlight.TryDequeue(out _);
                head.Fail(error, recyclable: true);
            }
            // The close flag is authoritative, even for codes this client does not know.
            return body.ClosesConnection ? error : null;
        }

        if (frame.Type is not (FrameType.ResultBatch or FrameType.Pong))
            return Violation(ProtocolErrorCode.UnexpectedFrameType, $"a client never receives {frame.Type}", frame.RequestId);
        if (!_inFlight.TryDequeue(out PendingRequest? request))
            return Violation(ProtocolErrorCode.UnexpectedFrameType, $"a {frame.Type} for request {frame.RequestId} with nothing in flight", frame.RequestId);
        Exception? violation = CompleteReply(request, frame, results);
        if (violation is not null) request.Fail(ConnectionEnded(violation));
        return violation;
    }

    private Exception? CompleteReply(PendingRequest request, Frame frame, WireResult[] results)
    {
        if (frame.RequestId != request.RequestId)
            return Violation(ProtocolErrorCode.MalformedBody, $"a reply for request {frame.RequestId} while request {request.RequestId} is the oldest in flight", frame.RequestId);
        if (frame.Type == FrameType.Pong)
        {
            if (request.Kind != FrameType.Ping) return Violation(ProtocolErrorCode.UnexpectedFrameType, "a Pong answering a CommandBatch", frame.RequestId);
            request.Succeed(System.Diagnostics.Stopwatch.GetTimestamp() - request.SentTimestamp);
            return null;
        }
        if (request.Kind != FrameType.CommandBatch) return Violation(ProtocolErrorCode.UnexpectedFrameType, "a ResultBatch answering a Ping", frame.RequestId);
        if (!FrameCodec.TryReadResultBatch(frame.Body, ServerLimits, results, out int count, out ProtocolError bad))
            return Violation(bad.Code, "ResultBatch: " + bad.Reason, frame.RequestId);
        if (count != request.Commands.Length)
            return Violation(ProtocolErrorCode.MalformedBody, $"{count} results for a batch of {request.Commands.Length} commands", frame.RequestId);
        results.AsSpan(0, count).CopyTo(request.Results.Span);
        request.Succeed(count);
        return null;
    }

    // ---- closing ----

    private void Close(Exception reason)
    {
        if (Interlocked.CompareExchange(ref _closeReason, reason, null) is not null) return;
        _sendQueue.Writer.TryComplete();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already gone: nothing left to shut down.
        }
        // Disposing the socket wakes both loops out of their pending receive and send.
        _socket.Dispose();
        DrainInFlight();
        _closed.TrySetResult();
    }

    private void DrainInFlight()
    {
        Exception? reason = Volatile.Read(ref _closeReason);
        while (_inFlight.TryDequeue(out PendingRequest? request)) request.Fail(ConnectionEnded(reason));
    }

    /// <summary>
    /// One queued or in-flight frame, awaited by its caller as a ValueTask and reused afterwards. States move
    /// Queued → Sent → Done, or Queued → Done (cancelled, or the connection ended); every transition is a CAS, so
    /// whoever completes a request does so exactly once.
    /// <para>
    /// Reuse is the hazard: a recycled object must not still be referenced by the writer (in the send queue, or being
    /// encoded). Only a reply from the server proves the writer is done with it, so only requests completed by their
    /// reply are recycled; those completed any other way are left to the GC (rare paths, so no cost that matters).
    /// </para>
    /// </summary>
    private sealed class PendingRequest(RamPayTcpClient owner) : System.Threading.Tasks.Sources.IValueTaskSource, System.Threading.Tasks.Sources.IValueTaskSource<long>
    {
        private const int Queued = 0, Sent = 1, Done = 2;
        // Continuations run on the thread pool: the reader loop must never run caller code (which might block on
        // another reply that only the reader can deliver).
        private System.Threading.Tasks.Sources.ManualResetValueTaskSourceCore<long> _core = new() { RunContinuationsAsynchronously = true };
        private int _state;
        private bool _recyclable;
        private CancellationToken _cancellationToken;
        private CancellationTokenRegistration _cancellation;

        public FrameType Kind { get; private set; }
        public ReadOnlyMemory<WireCommand> Commands { get; private set; }
        public Memory<WireResult> Results { get; private set; }
        public ulong RequestId { get; set; }
        public long SentTimestamp { get; set; }

        public short Prepare(FrameType kind, ReadOnlyMemory<WireCommand> commands, Memory<WireResult> results, CancellationToken ct)
        {
            Kind = kind;
            Commands = commands;
            Results = results;
            RequestId = 0;
            _recyclable = false;
            _state = Queued;
            _cancellationToken = ct;
            short version = _core.Version;
            if (ct.CanBeCanceled) _cancellation = ct.UnsafeRegister(static s => ((PendingRequest)s!).Cancel(), this);
            return version;
        }

        public bool TryMarkSent() => Interlocked.CompareExchange(ref _state, Sent, Queued) == Queued;

        private void Cancel()
        {
            if (Interlocked.CompareExchange(ref _state, Done, Queued) != Queued) return;
            _core.SetException(new OperationCanceledException("cancelled before the frame was sent", _cancellationToken));
        }

        /// <summary>The reader, on the request's reply.</summary>
        public void Succeed(long value)
        {
            if (Interlocked.CompareExchange(ref _state, Done, Sent) != Sent) return;
            // Dispose waits for a callback running right now: it must be over before the object can be reused.
            _cancellation.Dispose();
            _recyclable = true;
            _core.SetResult(value);
        }

        public void Fail(Exception error, bool recyclable = false)
        {
            int state;
            do
            {
                state = Volatile.Read(ref _state);
                if (state == Done) return;
            }
            while (Interlocked.CompareExchange(ref _state, Done, state) != state);
            _cancellation.Dispose();
            _recyclable = recyclable;
            _core.SetException(error);
        }

        public System.Threading.Tasks.Sources.ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, System.Threading.Tasks.Sources.ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);

        long System.Threading.Tasks.Sources.IValueTaskSource<long>.GetResult(short token) => GetResultAndRecycle(token);

        void System.Threading.Tasks.Sources.IValueTaskSource.GetResult(short token) => GetResultAndRecycle(token);

        private long GetResultAndRecycle(short token)
        {
            // A second await of the same ValueTask must fail without recycling an object that may be in use again.
            if (token != _core.Version) throw new InvalidOperationException("a RamPayTcpClient request was awaited twice");
            try
            {
                return _core.GetResult(token);
            }
            finally
            {
                if (_recyclable)
                {
                    _recyclable = false;
                    Commands = default;
                    Results = default;
                    _cancellation = default;
                    _cancellationToken = default;
                    _core.Reset();
                    owner.ReturnRequest(this);
                }
            }
        }
    }
}
