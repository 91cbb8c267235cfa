namespace RamPay.Protocol;

/// <summary>One complete frame: its header and a view of its body inside the caller's receive buffer (no copy).</summary>
public readonly ref struct Frame
{
    public Frame(FrameHeader header, ReadOnlySpan<byte> body)
    {
        if (body.Length != header.BodyLengthBytes) throw new ArgumentException("body length differs from the header's", nameof(body));
        Header = header;
        Body = body;
    }

    public FrameHeader Header { get; }
    public ReadOnlySpan<byte> Body { get; }
    public FrameType Type => Header.Type;
    public ulong RequestId => Header.RequestId;
}

/// <summary>
/// Cuts the complete frames out of a receive buffer that may end inside a frame, without copying. A server loop:
/// <code>
/// filled += socket.Receive(buffer.AsSpan(filled));          // buffer.Length >= limits.MaxFrameBytes
/// var reader = new FrameReader(buffer.AsSpan(0, filled), limits);
/// while (reader.TryRead(out Frame frame)) Handle(frame);     // each frame consumes >= 16 bytes: bounded
/// if (reader.Status == FrameStatus.Invalid) { send Error(reader.Error); close; }
/// filled = compact(buffer, reader.ConsumedBytes, filled);    // keep the partial frame, receive >= reader.MissingBytes
/// </code>
/// </summary>
public ref struct FrameReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private readonly ProtocolLimits _limits;

    public FrameReader(ReadOnlySpan<byte> buffer, ProtocolLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        _buffer = buffer;
        _limits = limits;
        RequiredBytes = FrameHeader.Size;
    }

    /// <summary>Bytes at the start of the buffer taken by the frames returned so far.</summary>
    public int ConsumedBytes { get; private set; }
    /// <summary>What the last <see cref="TryRead"/> found. <see cref="FrameStatus.Invalid"/> is final.</summary>
    public FrameStatus Status { get; private set; }
    /// <summary>The framing error when <see cref="Status"/> is <see cref="FrameStatus.Invalid"/>.</summary>
    public ProtocolError Error { get; private set; }
    /// <summary>
    /// After <see cref="FrameStatus.NeedMoreData"/>: the size of the next frame counted from <see cref="ConsumedBytes"/>
    /// as far as it is known (the header's 16 bytes until the header has arrived, then header + body).
    /// </summary>
    public int RequiredBytes { get; private set; }
    /// <summary>After <see cref="FrameStatus.NeedMoreData"/>: how many more bytes must be received at least.</summary>
    public readonly int MissingBytes => Math.Max(0, RequiredBytes - (_buffer.Length - ConsumedBytes));

    /// <summary>Returns the next complete frame, or false when the buffer ends inside one or holds a framing error.</summary>
    public bool TryRead(out Frame frame)
    {
        frame = default;
        // A framing error leaves the next frame's start unknown: nothing after it can be trusted.
        if (Status == FrameStatus.Invalid) return false;
        ReadOnlySpan<byte> rest = _buffer[ConsumedBytes..];
        Status = FrameHeader.TryRead(rest, _limits, out FrameHeader header, out ProtocolError error);
        Error = error;
        if (Status != FrameStatus.Ok)
        {
            RequiredBytes = FrameHeader.Size;
            return false;
        }
        if (rest.Length < header.FrameLengthBytes)
        {
            Status = FrameStatus.NeedMoreData;
            RequiredBytes = header.FrameLengthBytes;
            return false;
        }
        frame = new Frame(header, rest.Slice(FrameHeader.Size, header.BodyLengthBytes));
        ConsumedBytes += header.FrameLengthBytes;
        return true;
    }
}
