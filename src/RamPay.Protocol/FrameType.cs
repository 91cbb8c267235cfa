namespace RamPay.Protocol;

/// <summary>
/// The kind of a frame: byte 3 of the header. Values are frozen and only ever appended to; 0 is never valid, so a
/// zeroed buffer can never parse as a frame. See docs/protocol.md for who sends what.
/// </summary>
public enum FrameType : byte
{
    /// <summary>Client → server, first frame of a connection: the auth token and an optional client name.</summary>
    Hello = 1,
    /// <summary>Server → client: the Hello was accepted; carries the client id and the server's limits.</summary>
    Welcome = 2,
    /// <summary>Client → server: fixed-size payment commands, applied all or (if the frame is refused) none.</summary>
    CommandBatch = 3,
    /// <summary>Server → client: one result per command of the batch with the same request id, in order.</summary>
    ResultBatch = 4,
    /// <summary>Either direction: an error code, whether the sender closes the connection, and a message.</summary>
    Error = 5,
    /// <summary>Client → server keep-alive, empty body.</summary>
    Ping = 6,
    /// <summary>Server → client answer to a Ping, same request id, empty body.</summary>
    Pong = 7,
}

public static class FrameTypes
{
    /// <summary>True for the types this version of the protocol defines.</summary>
    public static bool IsKnown(FrameType type) => type is >= FrameType.Hello and <= FrameType.Pong;
}
