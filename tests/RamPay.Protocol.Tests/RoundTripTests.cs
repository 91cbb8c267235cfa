using FsCheck;
using FsCheck.Fluent;
using RamPay.Protocol;

namespace RamPay.Protocol.Tests;

public class RoundTripTests
{
    private static readonly ProtocolLimits Limits = ProtocolLimits.Default;

    [Fact]
    public void Command_batches_of_random_commands_round_trip()
    {
        var into = new WireCommand[Limits.MaxCommandsPerBatch];
        Prop.ForAll(Arb.From(Gens.Batch(Gens.Command, 40)), Gens.Long.ToArbitrary(), (commands, requestId) =>
        {
            ReceivedFrame frame = Frames.ReadOne(Frames.CommandBatch((ulong)requestId, commands));
            bool ok = FrameCodec.TryReadCommandBatch(frame.Body, Limits, into, out int count, out ProtocolError error);
            return ok && error.IsNone && frame.Type == FrameType.CommandBatch && frame.RequestId == (ulong)requestId
                && into.AsSpan(0, count).SequenceEqual(commands);
        }).Check(Gens.Config(200, seed: 0xBA7C4));
    }

    [Fact]
    public void Result_batches_of_random_results_round_trip()
    {
        var into = new WireResult[Limits.MaxCommandsPerBatch];
        Prop.ForAll(Arb.From(Gens.Batch(Gens.Result, 40)), Gens.Long.ToArbitrary(), (results, requestId) =>
        {
            ReceivedFrame frame = Frames.ReadOne(Frames.ResultBatch((ulong)requestId, results));
            bool ok = FrameCodec.TryReadResultBatch(frame.Body, Limits, into, out int count, out _);
            return ok && frame.Type == FrameType.ResultBatch && frame.RequestId == (ulong)requestId
                && into.AsSpan(0, count).SequenceEqual(results);
        }).Check(Gens.Config(200, seed: 0x2E5017));
    }

    [Fact]
    public void A_full_batch_at_the_limit_round_trips()
    {
        var commands = new WireCommand[Limits.MaxCommandsPerBatch];
        for (int i = 0; i < commands.Length; i++) commands[i] = Frames.Transfer(i + 1, i + 2, i + 3, "k" + i);
        ReceivedFrame frame = Frames.ReadOne(Frames.CommandBatch(1, commands));
        var into = new WireCommand[Limits.MaxCommandsPerBatch];
        Assert.True(FrameCodec.TryReadCommandBatch(frame.Body, Limits, into, out int count, out _));
        Assert.Equal(commands, into[..count]);
    }

    [Theory]
    [InlineData("t", "")]
    [InlineData("eyJhbGciOiJIUzI1NiJ9.e30.sig", "load-gen #1 — ünïcode")]
    public void Hello_round_trips(string token, string name)
    {
        ReceivedFrame frame = Frames.ReadOne(Frames.Hello(77, token, name));
        Assert.Equal((FrameType.Hello, 77UL), (frame.Type, frame.RequestId));
        Assert.True(FrameCodec.TryReadHello(frame.Body, out ReadOnlySpan<byte> t, out ReadOnlySpan<byte> n, out _));
        Assert.Equal(token, System.Text.Encoding.UTF8.GetString(t));
        Assert.Equal(name, System.Text.Encoding.UTF8.GetString(n));
    }

    [Fact]
    public void Hello_at_the_largest_token_and_name_round_trips()
    {
        string token = new('a', FrameCodec.MaxAuthTokenBytes), name = new('b', FrameCodec.MaxClientNameBytes);
        ReceivedFrame frame = Frames.ReadOne(Frames.Hello(1, token, name));
        Assert.True(FrameCodec.TryReadHello(frame.Body, out ReadOnlySpan<byte> t, out ReadOnlySpan<byte> n, out _));
        Assert.Equal((token.Length, name.Length), (t.Length, n.Length));
        Assert.Throws<ArgumentException>(() => Frames.Hello(1, token + "a", ""));
        Assert.Throws<ArgumentException>(() => Frames.Hello(1, "", ""));
        Assert.Throws<ArgumentException>(() => Frames.Hello(1, "t", name + "b"));
    }

    [Fact]
    public void Welcome_round_trips_the_client_id_and_the_limits()
    {
        var limits = new ProtocolLimits(maxBodyBytes: 200_000, maxCommandsPerBatch: 1_000);
        ReceivedFrame frame = Frames.ReadOne(Frames.Welcome(3, long.MaxValue, limits));
        Assert.Equal((FrameType.Welcome, 3UL), (frame.Type, frame.RequestId));
        Assert.True(FrameCodec.TryReadWelcome(frame.Body, out long clientId, out ProtocolLimits? read, out _));
        Assert.Equal((long.MaxValue, 200_000, 1_000), (clientId, read.MaxBodyBytes, read.MaxCommandsPerBatch));
    }

    [Fact]
    public void Error_round_trips_and_cuts_long_messages_on_a_character_boundary()
    {
        ReceivedFrame frame = Frames.ReadOne(Frames.Error(5, ProtocolErrorCode.ServerBusy, closes: false, index: -1, "try again"));
        Assert.True(FrameCodec.TryReadError(frame.Body, out ErrorBody body, out _));
        Assert.Equal((ProtocolErrorCode.ServerBusy, false, -1, "try again"), (body.Code, body.ClosesConnection, body.CommandIndex, body.Message));

        // 1,023 ASCII bytes then a 3-byte character: the cut keeps 1,023 bytes rather than splitting the character.
        string longMessage = new string('x', 1_023) + "€" + new string('y', 5_000);
        frame = Frames.ReadOne(Frames.Error(6, ProtocolErrorCode.ShuttingDown, closes: true, index: -1, longMessage));
        Assert.True(FrameCodec.TryReadError(frame.Body, out body, out _));
        Assert.Equal((ProtocolErrorCode.ShuttingDown, true, new string('x', 1_023)), (body.Code, body.ClosesConnection, body.Message));
    }

    [Fact]
    public void Error_from_a_reader_carries_its_code_index_and_close_policy()
    {
        var error = new ProtocolError(ProtocolErrorCode.MalformedBody, "reserved bytes of a command must be zero", 3);
        var buffer = new byte[FrameCodec.MaxSizeOfError];
        int n = FrameCodec.WriteError(buffer, 11, error);
        ReceivedFrame frame = Frames.ReadOne(buffer[..n]);
        Assert.True(FrameCodec.TryReadError(frame.Body, out ErrorBody body, out _));
        Assert.Equal((ProtocolErrorCode.MalformedBody, false, 3, error.Reason), (body.Code, body.ClosesConnection, body.CommandIndex, body.Message));
        Assert.Equal("malformed_body: command 3: reserved bytes of a command must be zero", error.ToString());
    }

    [Fact]
    public void Ping_and_pong_round_trip_with_empty_bodies()
    {
        ReceivedFrame ping = Frames.ReadOne(Frames.Ping(ulong.MaxValue));
        ReceivedFrame pong = Frames.ReadOne(Frames.Pong(ulong.MaxValue));
        Assert.Equal((FrameType.Ping, ulong.MaxValue, 0), (ping.Type, ping.RequestId, ping.Body.Length));
        Assert.Equal((FrameType.Pong, ulong.MaxValue, 0), (pong.Type, pong.RequestId, pong.Body.Length));
    }

    [Fact]
    public void Writers_refuse_a_destination_that_is_too_short()
    {
        WireCommand[] one = [Frames.Transfer(1, 2, 3, "k")];
        Assert.Throws<ArgumentException>(() => FrameCodec.WriteCommandBatch(new byte[FrameCodec.SizeOfCommandBatch(1) - 1], 1, one));
        Assert.Throws<ArgumentException>(() => FrameCodec.WriteCommandBatch(new byte[100], 1, []));
        Assert.Throws<ArgumentException>(() => FrameCodec.WritePing(new byte[FrameHeader.Size - 1], 1));
        Assert.Throws<ArgumentException>(() => FrameCodec.WriteError(new byte[FrameCodec.MaxSizeOfError - 1], 1, ProtocolErrorCode.BadMagic, true, -1, ""));
        Assert.Throws<ArgumentException>(() => FrameCodec.WriteError(new byte[FrameCodec.MaxSizeOfError], 1, ProtocolErrorCode.None, true, -1, ""));
    }
}
