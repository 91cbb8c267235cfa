using RamPay.Protocol;

namespace RamPay.Protocol.Tests;

public class FrameReaderTests
{
    private static readonly ProtocolLimits Limits = ProtocolLimits.Default;

    /// <summary>Several frames of every type back to back, as a pipelining client and a server would send them.</summary>
    private static (byte[] Stream, ReceivedFrame[] Expected) SeveralFrames()
    {
        byte[][] frames =
        [
            Frames.Hello(1, "token", "client"),
            Frames.Welcome(1, 42, Limits),
            Frames.CommandBatch(2, Frames.Transfer(1, 2, 300, "a"), Frames.Transfer(3, 4, 500, "b")),
            Frames.Ping(3),
            Frames.CommandBatch(4, Frames.Transfer(5, 6, 700, "c")),
            Frames.ResultBatch(2, new WireResult(ResultCode.Ok, false, 9), new WireResult(ResultCode.InsufficientFunds, false, 0)),
            Frames.Pong(3),
            Frames.Error(4, ProtocolErrorCode.ServerBusy, false, -1, "busy"),
        ];
        return (frames.SelectMany(f => f).ToArray(), frames.Select(f => Frames.ReadOne(f)).ToArray());
    }

    private static void AssertSame(ReceivedFrame[] expected, List<ReceivedFrame> actual)
    {
        Assert.Equal(expected.Length, actual.Count);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal((expected[i].Type, expected[i].RequestId), (actual[i].Type, actual[i].RequestId));
            Assert.Equal(expected[i].Body, actual[i].Body);
        }
    }

    [Fact]
    public void One_byte_at_a_time_yields_the_same_frames()
    {
        var (stream, expected) = SeveralFrames();
        var (frames, end) = StreamHarness.Feed(stream, Enumerable.Repeat(1, stream.Length), Limits);
        AssertSame(expected, frames);
        Assert.Equal((FrameStatus.NeedMoreData, 0), (end.Status, end.LeftoverBytes));
    }

    [Fact]
    public void Random_chunk_sizes_yield_the_same_frames()
    {
        var (stream, expected) = SeveralFrames();
        for (int seed = 1; seed <= 200; seed++)
        {
            var random = new Random(seed);
            int[] chunks = Enumerable.Range(0, stream.Length).Select(_ => random.Next(1, 100)).ToArray();
            var (frames, end) = StreamHarness.Feed(stream, chunks, Limits);
            AssertSame(expected, frames);
            Assert.Equal(0, end.LeftoverBytes);
        }
    }

    [Fact]
    public void Every_split_point_gives_need_more_data_then_the_same_frames()
    {
        var (stream, expected) = SeveralFrames();
        for (int split = 0; split <= stream.Length; split++)
        {
            var (frames, end) = StreamHarness.Feed(stream, [split, stream.Length], Limits);
            AssertSame(expected, frames);
            Assert.Equal(FrameStatus.NeedMoreData, end.Status);
        }
    }

    [Fact]
    public void Every_prefix_of_one_frame_is_need_more_data_with_the_right_byte_count()
    {
        byte[] frame = Frames.CommandBatch(9, Frames.Transfer(1, 2, 3, "k"));
        for (int length = 0; length < frame.Length; length++)
        {
            var reader = new FrameReader(frame.AsSpan(0, length), Limits);
            Assert.False(reader.TryRead(out _));
            Assert.Equal(FrameStatus.NeedMoreData, reader.Status);
            int required = length < FrameHeader.Size ? FrameHeader.Size : frame.Length;
            Assert.Equal((required, required - length, 0), (reader.RequiredBytes, reader.MissingBytes, reader.ConsumedBytes));
        }
    }

    [Fact]
    public void Frames_are_views_into_the_buffer_not_copies()
    {
        byte[] frame = Frames.CommandBatch(9, Frames.Transfer(1, 2, 3, "k"));
        var reader = new FrameReader(frame, Limits);
        Assert.True(reader.TryRead(out Frame read));
        Assert.True(System.Runtime.CompilerServices.Unsafe.AreSame(
            ref System.Runtime.InteropServices.MemoryMarshal.GetReference(read.Body), ref frame[FrameHeader.Size]));
    }

    [Fact]
    public void A_framing_error_after_good_frames_keeps_them_and_stops_for_good()
    {
        byte[] good = Frames.Ping(1);
        byte[] stream = [.. good, .. good, 0x47, 0x45, 0x54, 0x20, .. good]; // "GET " between pings
        var reader = new FrameReader(stream, Limits);
        Assert.True(reader.TryRead(out _));
        Assert.True(reader.TryRead(out _));
        Assert.False(reader.TryRead(out _));
        Assert.Equal((FrameStatus.Invalid, ProtocolErrorCode.BadMagic, 2 * good.Length), (reader.Status, reader.Error.Code, reader.ConsumedBytes));
        Assert.False(reader.TryRead(out _)); // final: the ping after the garbage is never read
        Assert.Equal(FrameStatus.Invalid, reader.Status);
    }
}
