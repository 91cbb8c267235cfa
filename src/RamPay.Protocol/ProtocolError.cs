using System.Globalization;

namespace RamPay.Protocol;

/// <summary>
/// Why a frame was refused: a u16 in the Error frame. Values are frozen and only ever appended to (a reader accepts
/// codes it does not know and relies on the frame's "closing" flag); 0 is never sent.
/// </summary>
public enum ProtocolErrorCode : ushort
{
    None = 0,
    // Framing: found in the header. The stream cannot be resynchronised, so the connection is closed.
    BadMagic = 1,
    UnsupportedVersion = 2,
    UnknownFrameType = 3,
    FrameTooLarge = 4,
    TooManyCommands = 5,
    // Body: the frame was complete and well framed, but its body is not valid. That frame is refused whole.
    MalformedBody = 6,
    // Session state.
    NotAuthenticated = 7,
    AuthenticationFailed = 8,
    AlreadyAuthenticated = 9,
    UnexpectedFrameType = 10,
    // Server condition.
    ServerBusy = 11,
    ShuttingDown = 12,
    InternalError = 13,
    // Appended: the sender is over its rate limit; that frame is refused whole and the connection stays.
    RateLimited = 14,
}

public static class ProtocolErrorCodes
{
    /// <summary>The snake_case name used in docs and logs, e.g. <c>frame_too_large</c>.</summary>
    public static string Name(ProtocolErrorCode code) => code switch
    {
        ProtocolErrorCode.None => "none",
        ProtocolErrorCode.BadMagic => "bad_magic",
        ProtocolErrorCode.UnsupportedVersion => "unsupported_version",
        ProtocolErrorCode.UnknownFrameType => "unknown_frame_type",
        ProtocolErrorCode.FrameTooLarge => "frame_too_large",
        ProtocolErrorCode.TooManyCommands => "too_many_commands",
        ProtocolErrorCode.MalformedBody => "malformed_body",
        ProtocolErrorCode.NotAuthenticated => "not_authenticated",
        ProtocolErrorCode.AuthenticationFailed => "authentication_failed",
        ProtocolErrorCode.AlreadyAuthenticated => "already_authenticated",
        ProtocolErrorCode.UnexpectedFrameType => "unexpected_frame_type",
        ProtocolErrorCode.ServerBusy => "server_busy",
        ProtocolErrorCode.ShuttingDown => "shutting_down",
        ProtocolErrorCode.InternalError => "internal_error",
        ProtocolErrorCode.RateLimited => "rate_limited",
        _ => "unknown_" + ((ushort)code).ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>
    /// Whether the server closes the connection after sending this error (the policy docs/protocol.md states; the
    /// Error frame's own flag is what a reader trusts). Header errors close because the next frame's start is
    /// unknown; session errors close because the peer is not following the lifecycle. Body errors, back-pressure
    /// and a repeated Hello refuse one frame and keep the connection.
    /// </summary>
    public static bool ClosesConnection(ProtocolErrorCode code) => code switch
    {
        ProtocolErrorCode.MalformedBody or ProtocolErrorCode.AlreadyAuthenticated or ProtocolErrorCode.ServerBusy or ProtocolErrorCode.RateLimited => false,
        _ => true,
    };
}

/// <summary>
/// What a reader found wrong. <see cref="Reason"/> is always a string literal, so reporting an error allocates
/// nothing; <see cref="CommandIndex"/> names the offending command of a batch (or <see cref="NoCommandIndex"/>).
/// </summary>
public readonly struct ProtocolError
{
    public const int NoCommandIndex = -1;

    private readonly string? _reason;

    public ProtocolError(ProtocolErrorCode code, string reason, int commandIndex = NoCommandIndex)
    {
        Code = code;
        _reason = reason;
        CommandIndex = commandIndex;
    }

    public ProtocolErrorCode Code { get; }
    public string Reason => _reason ?? "";
    public int CommandIndex { get; }
    public bool IsNone => Code == ProtocolErrorCode.None;
    public bool ClosesConnection => ProtocolErrorCodes.ClosesConnection(Code);

    public override string ToString() => CommandIndex == NoCommandIndex
        ? $"{ProtocolErrorCodes.Name(Code)}: {Reason}"
        : $"{ProtocolErrorCodes.Name(Code)}: command {CommandIndex.ToString(CultureInfo.InvariantCulture)}: {Reason}";
}
