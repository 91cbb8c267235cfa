namespace RamPay.Protocol;

/// <summary>
/// A fixed-size record carried in a batch frame. Static abstract members let the one generic batch reader and
/// writer in <see cref="FrameCodec"/> serve commands and results without boxing or duplicated code.
/// </summary>
internal interface IWireRecord<TSelf> where TSelf : struct, IWireRecord<TSelf>
{
    static abstract int RecordBytes { get; }
    static abstract void Write(in TSelf value, Span<byte> dest);
    /// <param name="reason">A string literal saying what is wrong when this returns false.</param>
    static abstract bool TryRead(ReadOnlySpan<byte> src, out TSelf value, out string reason);
}
