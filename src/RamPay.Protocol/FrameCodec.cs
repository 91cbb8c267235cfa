using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text.Unicode;

namespace RamPay.Protocol;

/// <summary>The body of an Error frame, viewed in place.</summary>
public readonly ref struct ErrorBody
{
    public ErrorBody(ProtocolErrorCode code, bool closesConnection, int commandIndex, ReadOnlySpan<byte> messageUtf8)
    {
        Code = code;
        ClosesConnection = closesConnection;
        CommandIndex = commandIndex;
        MessageUtf8 = messageUtf8;
    }

    public ProtocolErrorCode Code { get; }
    /// <summary>The sender closes the connection after this frame.</summary>
    public bool ClosesConnection { get; }
    /// <summary>The offending command of a batch, or <see cref="ProtocolError.NoCommandIndex"/>.</summary>
    public int CommandIndex { get; }
    public ReadOnlySpan<byte> MessageUtf8 { get; }
    public string Message => System.Text.Encoding.UTF8.GetString(MessageUtf8);
}

/// <summary>
/// Writes whole frames (header + body) into caller buffers and reads frame bodies, for protocol version 1
/// (docs/protocol.md). Writers return the bytes written; each has a SizeOf helper to size the buffer. Readers
/// validate the whole body before they report success, so a server never acts on part of a frame. The batch paths
/// allocate nothing.
/// </summary>
public static class FrameCodec
{
    /// <summary>CommandBatch and ResultBatch bodies: count u32, reserved u32, then the records.</summary>
    public const int BatchPrefixBytes = 8;
    /// <summary>Hello body: token length u16, client name length u16, reserved u32, then token, then name.</summary>
    public const int HelloPrefixBytes = 8;
    public const int MaxAuthTokenBytes = 4_096;
    public const int MaxClientNameBytes = 256;
    public const int MaxHelloBodyBytes = HelloPrefixBytes + MaxAuthTokenBytes + MaxClientNameBytes;
    /// <summary>Welcome body: client id i64, max body bytes u32, max commands per batch u32, reserved u64.</summary>
    public const int WelcomeBodyBytes = 24;
    /// <summary>Error body: code u16, flags u8, reserved u8, command index i32, message length u16, reserved u16, then the message.</summary>
    public const int ErrorPrefixBytes = 12;
    public const int MaxErrorMessageBytes = 1_024;
    public const int MaxErrorBodyBytes = ErrorPrefixBytes + MaxErrorMessageBytes;
    public const byte ErrorClosesConnectionFlag = 0x01;

    public const int SizeOfWelcome = FrameHeader.Size + WelcomeBodyBytes;
    /// <summary>Enough for any Error frame: the writer cuts messages to <see cref="MaxErrorMessageBytes"/>.</summary>
    public const int MaxSizeOfError = FrameHeader.Size + MaxErrorBodyBytes;
    public const int SizeOfPing = FrameHeader.Size;
    public const int SizeOfPong = FrameHeader.Size;

    public static int SizeOfHello(int authTokenBytes, int clientNameBytes) => FrameHeader.Size + HelloPrefixBytes + authTokenBytes + clientNameBytes;
    public static int SizeOfCommandBatch(int count) => FrameHeader.Size + SizeOfBatchBody(WireCommand.Size, count);
    public static int SizeOfResultBatch(int count) => FrameHeader.Size + SizeOfBatchBody(WireResult.Size, count);

    internal static int SizeOfBatchBody(int recordBytes, int count) => checked(BatchPrefixBytes + recordBytes * count);

    // ---- Hello ----

    /// <param name="authTokenUtf8">1..4096 bytes of UTF-8.</param>
    /// <param name="clientNameUtf8">0..256 bytes of UTF-8 (empty: no name).</param>
    public static int WriteHello(Span<byte> dest, ulong requestId, ReadOnlySpan<byte> authTokenUtf8, ReadOnlySpan<byte> clientNameUtf8)
    {
        if (authTokenUtf8.Length is 0 or > MaxAuthTokenBytes || !Utf8.IsValid(authTokenUtf8))
            throw new ArgumentException($"the auth token must be 1..{MaxAuthTokenBytes} bytes of UTF-8", nameof(authTokenUtf8));
        if (clientNameUtf8.Length > MaxClientNameBytes || !Utf8.IsValid(clientNameUtf8))
            throw new ArgumentException($"the client name must be 0..{MaxClientNameBytes} bytes of UTF-8", nameof(clientNameUtf8));
        Span<byte> body = Begin(dest, FrameType.Hello, requestId, HelloPrefixBytes + authTokenUtf8.Length + clientNameUtf8.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(body, (ushort)authTokenUtf8.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(body[2..], (ushort)clientNameUtf8.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], 0);
        authTokenUtf8.CopyTo(body[HelloPrefixBytes..]);
        clientNameUtf8.CopyTo(body[(HelloPrefixBytes + authTokenUtf8.Length)..]);
        return FrameHeader.Size + body.Length;
    }

    /// <summary>The token and name are views into <paramref name="body"/>, already checked to be valid UTF-8.</summary>
    public static bool TryReadHello(ReadOnlySpan<byte> body, out ReadOnlySpan<byte> authTokenUtf8, out ReadOnlySpan<byte> clientNameUtf8, out ProtocolError error)
    {
        authTokenUtf8 = default;
        clientNameUtf8 = default;
        if (body.Length < HelloPrefixBytes) return Malformed("a Hello body is at least 8 bytes", out error);
        int tokenBytes = BinaryPrimitives.ReadUInt16LittleEndian(body);
        int nameBytes = BinaryPrimitives.ReadUInt16LittleEndian(body[2..]);
        if (BinaryPrimitives.ReadUInt32LittleEndian(body[4..]) != 0) return Malformed("reserved bytes of Hello must be zero", out error);
        if (tokenBytes is 0 or > MaxAuthTokenBytes) return Malformed("the auth token must be 1..4096 bytes", out error);
        if (nameBytes > MaxClientNameBytes) return Malformed("the client name must be at most 256 bytes", out error);
        if (body.Length != HelloPrefixBytes + tokenBytes + nameBytes) return Malformed("the Hello body length disagrees with its token and name lengths", out error);
        ReadOnlySpan<byte> token = body.Slice(HelloPrefixBytes, tokenBytes);
        ReadOnlySpan<byte> name = body.Slice(HelloPrefixBytes + tokenBytes, nameBytes);
        if (!Utf8.IsValid(token) || !Utf8.IsValid(name)) return Malformed("the auth token and client name must be UTF-8", out error);
        authTokenUtf8 = token;
        clientNameUtf8 = name;
        error = default;
        return true;
    }

    // ---- Welcome ----

    public static int WriteWelcome(Span<byte> dest, ulong requestId, long clientId, ProtocolLimits serverLimits)
    {
        ArgumentNullException.ThrowIfNull(serverLimits);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(clientId);
        Span<byte> body = Begin(dest, FrameType.Welcome, requestId, WelcomeBodyBytes);
        BinaryPrimitives.WriteInt64LittleEndian(body, clientId);
        BinaryPrimitives.WriteUInt32LittleEndian(body[8..], (uint)serverLimits.MaxBodyBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(body[12..], (uint)serverLimits.MaxCommandsPerBatch);
        BinaryPrimitives.WriteUInt64LittleEndian(body[16..], 0);
        return SizeOfWelcome;
    }

    /// <summary>Reads the client id and the server's limits, which the client then reads ResultBatch frames with.</summary>
    public static bool TryReadWelcome(ReadOnlySpan<byte> body, out long clientId, [NotNullWhen(true)] out ProtocolLimits? serverLimits, out ProtocolError error)
    {
        clientId = 0;
        serverLimits = null;
        if (body.Length != WelcomeBodyBytes) return Malformed("a Welcome body is 24 bytes", out error);
        if (BinaryPrimitives.ReadUInt64LittleEndian(body[16..]) != 0) return Malformed("reserved bytes of Welcome must be zero", out error);
        long id = BinaryPrimitives.ReadInt64LittleEndian(body);
        uint maxBodyBytes = BinaryPrimitives.ReadUInt32LittleEndian(body[8..]);
        uint maxCommands = BinaryPrimitives.ReadUInt32LittleEndian(body[12..]);
        if (id <= 0) return Malformed("the client id must be positive", out error);
        if (!ProtocolLimits.AreValid(maxBodyBytes, maxCommands)) return Malformed("the server's limits are not a valid configuration", out error);
        clientId = id;
        serverLimits = new ProtocolLimits((int)maxBodyBytes, (int)maxCommands);
        error = default;
        return true;
    }

    // ---- CommandBatch / ResultBatch ----

    /// <summary>Writes a CommandBatch of 1 or more commands; throws on a type not allowed on the wire.</summary>
    public static int WriteCommandBatch(Span<byte> dest, ulong requestId, ReadOnlySpan<WireCommand> commands) =>
        WriteBatch(dest, FrameType.CommandBatch, requestId, commands);

    public static int WriteResultBatch(Span<byte> dest, ulong requestId, ReadOnlySpan<WireResult> results) =>
        WriteBatch(dest, FrameType.ResultBatch, requestId, results);

    /// <summary>
    /// Decodes and validates a whole CommandBatch body into <paramref name="into"/> (which must hold
    /// <see cref="ProtocolLimits.MaxCommandsPerBatch"/> commands). On false, nothing in <paramref name="into"/> may be used:
    /// the batch is refused whole and the error names the first bad command.
    /// </summary>
    public static bool TryReadCommandBatch(ReadOnlySpan<byte> body, ProtocolLimits limits, Span<WireCommand> into, out int count, out ProtocolError error) =>
        TryReadBatch(body, limits, into, out count, out error);

    /// <summary>Same contract as <see cref="TryReadCommandBatch"/>, for the server's results.</summary>
    public static bool TryReadResultBatch(ReadOnlySpan<byte> body, ProtocolLimits limits, Span<WireResult> into, out int count, out ProtocolError error) =>
        TryReadBatch(body, limits, into, out count, out error);

    private static int WriteBatch<T>(Span<byte> dest, FrameType type, ulong requestId, ReadOnlySpan<T> records) where T : struct, IWireRecord<T>
    {
        if (records.IsEmpty) throw new ArgumentException("a batch holds at least one record", nameof(records));
        Span<byte> body = Begin(dest, type, requestId, SizeOfBatchBody(T.RecordBytes, records.Length));
        BinaryPrimitives.WriteUInt32LittleEndian(body, (uint)records.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], 0);
        Span<byte> slot = body[BatchPrefixBytes..];
        for (int i = 0; i < records.Length; i++)
        {
            T.Write(in records[i], slot);
            slot = slot[T.RecordBytes..];
        }
        return FrameHeader.Size + body.Length;
    }

    private static bool TryReadBatch<T>(ReadOnlySpan<byte> body, ProtocolLimits limits, Span<T> into, out int count, out ProtocolError error) where T : struct, IWireRecord<T>
    {
        ArgumentNullException.ThrowIfNull(limits);
        // Checked against the limit, not against this batch's count, so an undersized buffer fails on the first
        // batch in tests rather than on the first large batch in production.
        if (into.Length < limits.MaxCommandsPerBatch) throw new ArgumentException("the destination must hold max_commands_per_batch records", nameof(into));
        count = 0;
        if (body.Length < BatchPrefixBytes) return Malformed("a batch body is at least 8 bytes", out error);
        uint announced = BinaryPrimitives.ReadUInt32LittleEndian(body);
        if (BinaryPrimitives.ReadUInt32LittleEndian(body[4..]) != 0) return Malformed("reserved bytes of a batch must be zero", out error);
        if (announced == 0) return Malformed("a batch holds at least one record", out error);
        if (announced > (uint)limits.MaxCommandsPerBatch)
        {
            error = new ProtocolError(ProtocolErrorCode.TooManyCommands, "the batch count is above max_commands_per_batch");
            return false;
        }
        int n = (int)announced;
        if (body.Length != SizeOfBatchBody(T.RecordBytes, n)) return Malformed("the batch body length disagrees with its count", out error);

        ReadOnlySpan<byte> records = body[BatchPrefixBytes..];
        for (int i = 0; i < n; i++)
        {
            if (!T.TryRead(records.Slice(i * T.RecordBytes, T.RecordBytes), out into[i], out string reason))
            {
                error = new ProtocolError(ProtocolErrorCode.MalformedBody, reason, i);
                return false;
            }
        }
        count = n;
        error = default;
        return true;
    }

    // ---- Error ----

    /// <summary>
    /// Writes an Error frame. The message is cut at a character boundary to at most <see cref="MaxErrorMessageBytes"/>
    /// bytes of UTF-8 (an error report must never fail for being too long); <paramref name="dest"/> must hold
    /// <see cref="MaxSizeOfError"/> bytes.
    /// </summary>
    public static int WriteError(Span<byte> dest, ulong requestId, ProtocolErrorCode code, bool closesConnection, int commandIndex, ReadOnlySpan<char> message)
    {
        if (code == ProtocolErrorCode.None) throw new ArgumentException("an Error frame needs an error code", nameof(code));
        ArgumentOutOfRangeException.ThrowIfLessThan(commandIndex, ProtocolError.NoCommandIndex);
        // One fixed requirement instead of an exact size: the message's encoded length is only known after the cut.
        if (dest.Length < MaxSizeOfError) throw new ArgumentException("destination shorter than MaxSizeOfError", nameof(dest));
        Span<byte> messageDest = dest.Slice(FrameHeader.Size + ErrorPrefixBytes, MaxErrorMessageBytes);
        // DestinationTooSmall is the intended cut: the bytes written always end on a whole character.
        Utf8.FromUtf16(message, messageDest, out _, out int messageBytes, replaceInvalidSequences: true, isFinalBlock: true);

        Span<byte> body = Begin(dest, FrameType.Error, requestId, ErrorPrefixBytes + messageBytes);
        BinaryPrimitives.WriteUInt16LittleEndian(body, (ushort)code);
        body[2] = closesConnection ? ErrorClosesConnectionFlag : (byte)0;
        body[3] = 0;
        BinaryPrimitives.WriteInt32LittleEndian(body[4..], commandIndex);
        BinaryPrimitives.WriteUInt16LittleEndian(body[8..], (ushort)messageBytes);
        BinaryPrimitives.WriteUInt16LittleEndian(body[10..], 0);
        return FrameHeader.Size + body.Length;
    }

    /// <summary>Writes what a reader reported, with the default close policy of its code and its reason as the message.</summary>
    public static int WriteError(Span<byte> dest, ulong requestId, in ProtocolError error) =>
        WriteError(dest, requestId, error.Code, error.ClosesConnection, error.CommandIndex, error.Reason);

    public static bool TryReadError(ReadOnlySpan<byte> body, out ErrorBody errorBody, out ProtocolError error)
    {
        errorBody = default;
        if (body.Length < ErrorPrefixBytes) return Malformed("an Error body is at least 12 bytes", out error);
        var code = (ProtocolErrorCode)BinaryPrimitives.ReadUInt16LittleEndian(body);
        byte flags = body[2];
        int commandIndex = BinaryPrimitives.ReadInt32LittleEndian(body[4..]);
        int messageBytes = BinaryPrimitives.ReadUInt16LittleEndian(body[8..]);
        if (code == ProtocolErrorCode.None) return Malformed("an Error frame needs an error code", out error);
        if ((flags & ~ErrorClosesConnectionFlag) != 0 || body[3] != 0 || BinaryPrimitives.ReadUInt16LittleEndian(body[10..]) != 0)
            return Malformed("unknown Error flags or non-zero reserved bytes", out error);
        if (commandIndex < ProtocolError.NoCommandIndex) return Malformed("the command index must be -1 or a batch position", out error);
        if (messageBytes > MaxErrorMessageBytes || body.Length != ErrorPrefixBytes + messageBytes)
            return Malformed("the Error body length disagrees with its message length", out error);
        ReadOnlySpan<byte> message = body.Slice(ErrorPrefixBytes, messageBytes);
        if (!Utf8.IsValid(message)) return Malformed("the error message must be UTF-8", out error);
        errorBody = new ErrorBody(code, (flags & ErrorClosesConnectionFlag) != 0, commandIndex, message);
        error = default;
        return true;
    }

    // ---- Ping / Pong ----

    public static int WritePing(Span<byte> dest, ulong requestId) => FrameHeader.Size + Begin(dest, FrameType.Ping, requestId, 0).Length;
    public static int WritePong(Span<byte> dest, ulong requestId) => FrameHeader.Size + Begin(dest, FrameType.Pong, requestId, 0).Length;

    // ---- shared ----

    /// <summary>Writes the header and returns the body's span, after checking the whole frame fits.</summary>
    private static Span<byte> Begin(Span<byte> dest, FrameType type, ulong requestId, int bodyLengthBytes)
    {
        if (dest.Length < FrameHeader.Size + bodyLengthBytes)
            throw new ArgumentException($"destination holds {dest.Length} bytes, the {type} frame needs {FrameHeader.Size + bodyLengthBytes}", nameof(dest));
        new FrameHeader(type, bodyLengthBytes, requestId).Write(dest);
        return dest.Slice(FrameHeader.Size, bodyLengthBytes);
    }

    private static bool Malformed(string reason, out ProtocolError error)
    {
        error = new ProtocolError(ProtocolErrorCode.MalformedBody, reason);
        return false;
    }
}
