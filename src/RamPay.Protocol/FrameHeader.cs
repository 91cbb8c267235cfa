using System.Buffers.Binary;

namespace RamPay.Protocol;

/// <summary>What reading a header or a frame from a receive buffer found.</summary>
public enum FrameStatus : byte
{
    /// <summary>The buffer ends before the header or the body does: receive more and try again.</summary>
    NeedMoreData = 0,
    Ok = 1,
    /// <summary>The bytes are not a valid frame; the error says why. After a header error the stream is lost.</summary>
    Invalid = 2,
}

/// <summary>
/// The fixed 16-byte frame header, little-endian:
/// <code>
/// 0 magic 0x52 0x50 ("RP") | 2 version u8 | 3 frame type u8 | 4 body length u32 | 8 request id u64
/// </code>
/// </summary>
public readonly struct FrameHeader
{
    public const int Size = 16;
    public const byte Magic0 = 0x52; // 'R'
    public const byte Magic1 = 0x50; // 'P'
    public const byte CurrentVersion = 1;

    public FrameHeader(FrameType type, int bodyLengthBytes, ulong requestId)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bodyLengthBytes);
        Version = CurrentVersion;
        Type = type;
        BodyLengthBytes = bodyLengthBytes;
        RequestId = requestId;
    }

    public byte Version { get; }
    public FrameType Type { get; }
    /// <summary>Bytes after the header. Once read, within the limits the header was checked against.</summary>
    public int BodyLengthBytes { get; }
    /// <summary>Chosen by the client, echoed in the reply, so a client can pipeline frames and match replies.</summary>
    public ulong RequestId { get; }
    public int FrameLengthBytes => Size + BodyLengthBytes;

    public void Write(Span<byte> dest)
    {
        if (dest.Length < Size) throw new ArgumentException("destination shorter than a frame header", nameof(dest));
        dest[0] = Magic0;
        dest[1] = Magic1;
        dest[2] = Version;
        dest[3] = (byte)Type;
        BinaryPrimitives.WriteUInt32LittleEndian(dest[4..], (uint)BodyLengthBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(dest[8..], RequestId);
    }

    /// <summary>
    /// Reads the header at the start of <paramref name="src"/> and checks it against <paramref name="limits"/>: magic,
    /// version, type, and the body length both against <see cref="ProtocolLimits.MaxBodyBytes"/> and against the
    /// largest body of that type. Everything here is decided before a single body byte is needed.
    /// </summary>
    public static FrameStatus TryRead(ReadOnlySpan<byte> src, ProtocolLimits limits, out FrameHeader header, out ProtocolError error)
    {
        header = default;
        error = default;
        // The identifying bytes are checked as soon as each arrives: a peer speaking something else (an HTTP request,
        // a TLS ClientHello) is turned away at once instead of waiting for 16 bytes that may never come.
        if (src.Length >= 1 && src[0] != Magic0 || src.Length >= 2 && src[1] != Magic1)
            return Invalid(ProtocolErrorCode.BadMagic, "the frame does not start with the magic bytes 0x52 0x50", out error);
        if (src.Length >= 3 && src[2] != CurrentVersion)
            return Invalid(ProtocolErrorCode.UnsupportedVersion, "this peer speaks protocol version 1 only", out error);
        if (src.Length >= 4 && !FrameTypes.IsKnown((FrameType)src[3]))
            return Invalid(ProtocolErrorCode.UnknownFrameType, "the frame type is not one of protocol version 1", out error);
        if (src.Length < Size) return FrameStatus.NeedMoreData;

        var type = (FrameType)src[3];
        uint bodyLengthBytes = BinaryPrimitives.ReadUInt32LittleEndian(src[4..]);
        if (bodyLengthBytes > (uint)limits.MaxBodyBytes)
            return Invalid(ProtocolErrorCode.FrameTooLarge, "the body length is above max_body_bytes", out error);
        if (bodyLengthBytes > (uint)limits.MaxBodyBytesOf(type))
        {
            return type is FrameType.CommandBatch or FrameType.ResultBatch
                ? Invalid(ProtocolErrorCode.TooManyCommands, "the body length announces more than max_commands_per_batch", out error)
                : Invalid(ProtocolErrorCode.FrameTooLarge, "the body length is above the largest body of this frame type", out error);
        }
        header = new FrameHeader(type, (int)bodyLengthBytes, BinaryPrimitives.ReadUInt64LittleEndian(src[8..]));
        return FrameStatus.Ok;
    }

    private static FrameStatus Invalid(ProtocolErrorCode code, string reason, out ProtocolError error)
    {
        error = new ProtocolError(code, reason);
        return FrameStatus.Invalid;
    }

    public override string ToString() => $"{Type} v{Version} body={BodyLengthBytes}B request={RequestId}";
}
