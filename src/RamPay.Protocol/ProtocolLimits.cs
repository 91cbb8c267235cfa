namespace RamPay.Protocol;

/// <summary>
/// The sizes a peer accepts. The server sends its limits in Welcome; a frame whose header announces more is refused
/// from the header alone, before any of its body is read or buffered.
/// </summary>
public sealed class ProtocolLimits
{
    public const int DefaultMaxBodyBytes = 1 << 20;
    public const int DefaultMaxCommandsPerBatch = 8_192;
    /// <summary>No configuration may ask a peer for a receive buffer larger than this (64 MiB).</summary>
    public const int HardMaxBodyBytes = 64 << 20;
    /// <summary>The largest batch whose body fits <see cref="HardMaxBodyBytes"/>.</summary>
    public const int HardMaxCommandsPerBatch = (HardMaxBodyBytes - FrameCodec.BatchPrefixBytes) / WireCommand.Size;

    public static ProtocolLimits Default { get; } = new();

    /// <param name="maxBodyBytes">Largest body of any frame: at least a full batch and the largest Hello, at most <see cref="HardMaxBodyBytes"/>.</param>
    /// <param name="maxCommandsPerBatch">Most commands in one CommandBatch (and results in one ResultBatch), at least 1.</param>
    public ProtocolLimits(int maxBodyBytes = DefaultMaxBodyBytes, int maxCommandsPerBatch = DefaultMaxCommandsPerBatch)
    {
        if (!AreValid(maxBodyBytes, maxCommandsPerBatch))
            throw new ArgumentOutOfRangeException(nameof(maxBodyBytes),
                $"need 1 <= maxCommandsPerBatch <= {HardMaxCommandsPerBatch} and max(a full batch, the largest Hello) <= maxBodyBytes <= {HardMaxBodyBytes}; " +
                $"got maxBodyBytes={maxBodyBytes}, maxCommandsPerBatch={maxCommandsPerBatch}");
        MaxBodyBytes = maxBodyBytes;
        MaxCommandsPerBatch = maxCommandsPerBatch;
    }

    public int MaxBodyBytes { get; }
    public int MaxCommandsPerBatch { get; }
    /// <summary>The receive buffer a peer needs to hold any one frame whole.</summary>
    public int MaxFrameBytes => FrameHeader.Size + MaxBodyBytes;

    /// <summary>
    /// Whether these values make a usable configuration: every frame type can carry its largest legal body, so a
    /// limit can never make a valid Hello or a full batch unsendable.
    /// </summary>
    public static bool AreValid(long maxBodyBytes, long maxCommandsPerBatch) =>
        maxCommandsPerBatch >= 1 && maxCommandsPerBatch <= HardMaxCommandsPerBatch
        && maxBodyBytes <= HardMaxBodyBytes
        && maxBodyBytes >= FrameCodec.SizeOfBatchBody(WireCommand.Size, (int)maxCommandsPerBatch)
        && maxBodyBytes >= FrameCodec.MaxHelloBodyBytes
        && maxBodyBytes >= FrameCodec.MaxErrorBodyBytes;

    /// <summary>
    /// The largest body a frame of this type may announce. Checked on the header so that, for example, an
    /// unauthenticated peer cannot make the server buffer a megabyte by calling it a Hello.
    /// </summary>
    public int MaxBodyBytesOf(FrameType type) => type switch
    {
        FrameType.Hello => FrameCodec.MaxHelloBodyBytes,
        FrameType.Welcome => FrameCodec.WelcomeBodyBytes,
        FrameType.CommandBatch => FrameCodec.SizeOfBatchBody(WireCommand.Size, MaxCommandsPerBatch),
        FrameType.ResultBatch => FrameCodec.SizeOfBatchBody(WireResult.Size, MaxCommandsPerBatch),
        FrameType.Error => FrameCodec.MaxErrorBodyBytes,
        _ => 0, // Ping, Pong: empty bodies
    };

    public override string ToString() => $"max_body_bytes={MaxBodyBytes} max_commands_per_batch={MaxCommandsPerBatch}";
}
