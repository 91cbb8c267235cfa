using FsCheck;
using FsCheck.Fluent;
using Microsoft.FSharp.Core;
using RamPay.Protocol;

namespace RamPay.Protocol.Tests;

internal static class Hex
{
    /// <summary>Parses hex with any spaces, so golden layouts can be written field by field.</summary>
    public static byte[] Parse(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));
    public static string Of(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes);
}

/// <summary>A frame as the stream harness saw it, copied out of the receive buffer.</summary>
internal sealed record ReceivedFrame(FrameType Type, ulong RequestId, byte[] Body);

/// <summary>
/// The receive loop a server will run, reduced to its framing: a fixed buffer of one maximal frame, filled by
/// chunks of the given sizes, frames cut out in place, the partial tail moved to the front.
/// </summary>
internal static class StreamHarness
{
    public static (List<ReceivedFrame> Frames, FrameReaderEnd End) Feed(byte[] stream, IEnumerable<int> chunkBytes, ProtocolLimits limits)
    {
        var frames = new List<ReceivedFrame>();
        var buffer = new byte[limits.MaxFrameBytes];
        int filled = 0, sent = 0;
        using IEnumerator<int> chunks = chunkBytes.GetEnumerator();
        while (sent < stream.Length)
        {
            int chunk = chunks.MoveNext() ? Math.Max(1, chunks.Current) : stream.Length - sent;
            chunk = Math.Min(Math.Min(chunk, stream.Length - sent), buffer.Length - filled);
            Assert.True(chunk > 0, "the buffer is full although it holds less than one maximal frame");
            stream.AsSpan(sent, chunk).CopyTo(buffer.AsSpan(filled));
            sent += chunk;
            filled += chunk;

            var reader = new FrameReader(buffer.AsSpan(0, filled), limits);
            while (reader.TryRead(out Frame frame))
                frames.Add(new ReceivedFrame(frame.Type, frame.RequestId, frame.Body.ToArray()));
            if (reader.Status == FrameStatus.Invalid) return (frames, new FrameReaderEnd(FrameStatus.Invalid, reader.Error, filled - reader.ConsumedBytes));
            Assert.Equal(FrameStatus.NeedMoreData, reader.Status);
            Assert.True(reader.MissingBytes > 0, "NeedMoreData must ask for at least one byte");
            buffer.AsSpan(reader.ConsumedBytes, filled - reader.ConsumedBytes).CopyTo(buffer);
            filled -= reader.ConsumedBytes;
        }
        return (frames, new FrameReaderEnd(FrameStatus.NeedMoreData, default, filled));
    }
}

internal sealed record FrameReaderEnd(FrameStatus Status, ProtocolError Error, int LeftoverBytes);

internal static class Gens
{
    public static readonly CommandType[] WireTypes =
        [CommandType.Deposit, CommandType.Transfer, CommandType.Authorize, CommandType.Capture, CommandType.Void, CommandType.Refund];

    /// <summary>Edge values often, the whole long range otherwise.</summary>
    public static readonly Gen<long> Long =
        Gen.OneOf(
            Gen.Elements(0L, 1L, -1L, long.MaxValue, long.MinValue),
            from hi in Gen.Choose(int.MinValue, int.MaxValue)
            from lo in Gen.Choose(int.MinValue, int.MaxValue)
            select ((long)hi << 32) | (uint)lo);

    public static readonly Gen<WireCommand> Command =
        from type in Gen.Elements(WireTypes)
        from currency in Gen.Choose(0, ushort.MaxValue)
        from keyHi in Long
        from keyLo in Long
        from fromAccount in Long
        from toAccount in Long
        from payment in Long
        from amount in Long
        from hold in Long
        select new WireCommand
        {
            Type = type, Currency = new Currency((ushort)currency), Key = new IdempotencyKey((ulong)keyHi, (ulong)keyLo),
            FromAccount = fromAccount, ToAccount = toAccount, PaymentId = payment, Amount = amount, HoldTimeoutMs = hold,
        };

    public static readonly Gen<WireResult> Result =
        from code in Gen.Choose(0, 255)
        from replayed in Gen.Elements(false, true)
        from id in Long
        select new WireResult((ResultCode)code, replayed, id);

    public static Gen<T[]> Batch<T>(Gen<T> item, int maxCount) => Gen.Choose(1, maxCount).SelectMany(n => Gen.ArrayOf(item, n));

    public static readonly Gen<byte[]> Bytes = Gen.Choose(0, 300).SelectMany(n => Gen.ArrayOf(Gen.Choose(0, 255).Select(b => (byte)b), n));

    /// <summary>Fixed seed: the same cases run every time.</summary>
    public static Config Config(int maxTest, ulong seed) =>
        FsCheck.Config.QuickThrowOnFailure
            .WithMaxTest(maxTest)
            .WithQuietOnSuccess(true)
            .WithReplay(FSharpOption<Replay>.Some(new Replay(new Rnd(seed, 0x9E3779B97F4A7C15UL), FSharpOption<int>.None)));
}

internal static class Frames
{
    public static WireCommand Transfer(long from, long to, long amount, string key) => new()
    {
        Type = CommandType.Transfer, Currency = Currency.USD, Key = IdempotencyKey.FromString(key),
        FromAccount = from, ToAccount = to, Amount = amount,
    };

    public static byte[] CommandBatch(ulong requestId, params WireCommand[] commands)
    {
        var frame = new byte[FrameCodec.SizeOfCommandBatch(commands.Length)];
        Assert.Equal(frame.Length, FrameCodec.WriteCommandBatch(frame, requestId, commands));
        return frame;
    }

    public static byte[] ResultBatch(ulong requestId, params WireResult[] results)
    {
        var frame = new byte[FrameCodec.SizeOfResultBatch(results.Length)];
        Assert.Equal(frame.Length, FrameCodec.WriteResultBatch(frame, requestId, results));
        return frame;
    }

    public static byte[] Hello(ulong requestId, string token, string name)
    {
        byte[] t = System.Text.Encoding.UTF8.GetBytes(token), n = System.Text.Encoding.UTF8.GetBytes(name);
        var frame = new byte[FrameCodec.SizeOfHello(t.Length, n.Length)];
        Assert.Equal(frame.Length, FrameCodec.WriteHello(frame, requestId, t, n));
        return frame;
    }

    public static byte[] Error(ulong requestId, ProtocolErrorCode code, bool closes, int index, string message)
    {
        var buffer = new byte[FrameCodec.MaxSizeOfError];
        int n = FrameCodec.WriteError(buffer, requestId, code, closes, index, message);
        return buffer[..n];
    }

    public static byte[] Welcome(ulong requestId, long clientId, ProtocolLimits limits)
    {
        var frame = new byte[FrameCodec.SizeOfWelcome];
        Assert.Equal(frame.Length, FrameCodec.WriteWelcome(frame, requestId, clientId, limits));
        return frame;
    }

    public static byte[] Ping(ulong requestId)
    {
        var frame = new byte[FrameCodec.SizeOfPing];
        Assert.Equal(frame.Length, FrameCodec.WritePing(frame, requestId));
        return frame;
    }

    public static byte[] Pong(ulong requestId)
    {
        var frame = new byte[FrameCodec.SizeOfPong];
        Assert.Equal(frame.Length, FrameCodec.WritePong(frame, requestId));
        return frame;
    }

    /// <summary>Reads exactly one whole frame from <paramref name="bytes"/>, asserting nothing is left over.</summary>
    public static ReceivedFrame ReadOne(byte[] bytes, ProtocolLimits? limits = null)
    {
        var reader = new FrameReader(bytes, limits ?? ProtocolLimits.Default);
        Assert.True(reader.TryRead(out Frame frame), $"status {reader.Status}: {reader.Error}");
        Assert.Equal(bytes.Length, reader.ConsumedBytes);
        return new ReceivedFrame(frame.Type, frame.RequestId, frame.Body.ToArray());
    }

    public static FrameStatus ReadHeader(byte[] bytes, out ProtocolError error, ProtocolLimits? limits = null) =>
        FrameHeader.TryRead(bytes, limits ?? ProtocolLimits.Default, out _, out error);
}
