using System.Net;
using RamPay.Protocol;

namespace RamPay.Client;

/// <summary>
/// An HTTP answer outside 2xx, with the API's error shape (<c>{"error": {"code", "message"}}</c>) unpacked. When the
/// body is not that shape (a proxy's error page, an empty 502), <see cref="Code"/> is <c>http_&lt;status&gt;</c>.
/// </summary>
public sealed class RamPayApiException : Exception
{
    public RamPayApiException(HttpStatusCode statusCode, string code, string message, bool replayed = false, TimeSpan? retryAfter = null)
        : base($"{(int)statusCode} {code}: {message}")
    {
        StatusCode = statusCode;
        Code = code;
        ApiMessage = message;
        Replayed = replayed;
        RetryAfter = retryAfter;
    }

    public HttpStatusCode StatusCode { get; }
    /// <summary>The API's snake_case error code, e.g. <c>insufficient_funds</c>.</summary>
    public string Code { get; }
    /// <summary>The API's message, for people.</summary>
    public string ApiMessage { get; }
    /// <summary>
    /// The server answered with <c>Idempotent-Replayed: true</c>: this is the stored outcome of an earlier request with
    /// the same key (a business rejection is remembered like a success).
    /// </summary>
    public bool Replayed { get; }
    /// <summary>From <c>Retry-After</c>, sent with 429 <c>rate_limited</c>.</summary>
    public TimeSpan? RetryAfter { get; }
}

/// <summary>
/// A frame was refused: the server sent an Error frame for it, or the client found the server's bytes malformed.
/// The refused frame was not applied (docs/protocol.md, lifecycle rule 3), so retrying it with the same idempotency
/// keys is safe; <see cref="IsRetryable"/> says when retrying can also be expected to succeed.
/// </summary>
public sealed class RamPayProtocolException : Exception
{
    public RamPayProtocolException(ProtocolErrorCode code, string message, int commandIndex = ProtocolError.NoCommandIndex,
        bool closesConnection = true, ulong requestId = 0, bool sentByServer = true)
        : base($"{ProtocolErrorCodes.Name(code)}: {message}")
    {
        Code = code;
        ServerMessage = message;
        CommandIndex = commandIndex;
        ClosesConnection = closesConnection;
        RequestId = requestId;
        SentByServer = sentByServer;
    }

    public ProtocolErrorCode Code { get; }
    public string CodeName => ProtocolErrorCodes.Name(Code);
    public string ServerMessage { get; }
    /// <summary>The first bad command of a refused batch, or -1.</summary>
    public int CommandIndex { get; }
    /// <summary>The connection is closed after this error.</summary>
    public bool ClosesConnection { get; }
    /// <summary>The request id of the refused frame; 0 when the error is about the stream itself.</summary>
    public ulong RequestId { get; }
    /// <summary>False when the client itself found the server's frames invalid (a protocol violation).</summary>
    public bool SentByServer { get; }
    /// <summary>Back-pressure or a rate limit: the batch was not applied and the connection stays up, so the same frame may be sent again later.</summary>
    public bool IsRetryable => Code is ProtocolErrorCode.ServerBusy or ProtocolErrorCode.RateLimited;
}

/// <summary>
/// The connection ended (closed by either side, lost, or the client disposed) while a request was queued or in flight.
/// Whether an in-flight batch was applied is unknown: resend it on a new connection with the same idempotency keys,
/// and the server returns the first results with the replayed flag set.
/// </summary>
public sealed class RamPayConnectionException : IOException
{
    public RamPayConnectionException(string message, Exception? innerException = null) : base(message, innerException) { }
}
