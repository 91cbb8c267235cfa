using System.Buffers.Binary;
using RamPay.Protocol;

namespace RamPay.Protocol.Tests;

public class RejectionTests
{
    private static readonly ProtocolLimits Limits = ProtocolLimits.Default;

    private static byte[] HeaderOnly(FrameType type, uint bodyLengthBytes)
    {
        var header = new byte[FrameHeader.Size];
        new FrameHeader(type, 0, 1).Write(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), bodyLengthBytes);
        return header;
    }

    private static ProtocolErrorCode HeaderError(byte[] bytes, ProtocolLimits? limits = null)
    {
        Assert.Equal(FrameStatus.Invalid, Frames.ReadHeader(bytes, out ProtocolError error, limits));
        Assert.True(error.ClosesConnection, $"{error} is a framing error and must close the connection");
        return error.Code;
    }

    [Fact]
    public void Bad_magic_unknown_version_and_unknown_type_are_refused_from_the_first_bytes()
    {
        Assert.Equal(ProtocolErrorCode.BadMagic, HeaderError([0x47]));               // "G" of an HTTP request, one byte suffices
        Assert.Equal(ProtocolErrorCode.BadMagic, HeaderError([0x52, 0x51]));
        Assert.Equal(ProtocolErrorCode.BadMagic, HeaderError([0x16, 0x03, 0x01]));    // a TLS ClientHello
        Assert.Equal(ProtocolErrorCode.UnsupportedVersion, HeaderError([0x52, 0x50, 0x02]));
        Assert.Equal(ProtocolErrorCode.UnsupportedVersion, HeaderError([0x52, 0x50, 0x00]));
        foreach (byte type in new byte[] { 0, 8, 9, 0x7F, 0xFF })
            Assert.Equal(ProtocolErrorCode.UnknownFrameType, HeaderError([0x52, 0x50, 0x01, type]));
        Assert.Equal(FrameStatus.NeedMoreData, Frames.ReadHeader([0x52, 0x50, 0x01, 0x03], out _));
    }

    [Fact]
    public void Oversized_bodies_are_refused_from_the_header_alone()
    {
        Assert.Equal(ProtocolErrorCode.FrameTooLarge, HeaderError(HeaderOnly(FrameType.CommandBatch, (uint)Limits.MaxBodyBytes + 1)));
        Assert.Equal(ProtocolErrorCode.FrameTooLarge, HeaderError(HeaderOnly(FrameType.CommandBatch, uint.MaxValue)));
        Assert.Equal(ProtocolErrorCode.FrameTooLarge, HeaderError(HeaderOnly(FrameType.Hello, FrameCodec.MaxHelloBodyBytes + 1)));
        Assert.Equal(ProtocolErrorCode.FrameTooLarge, HeaderError(HeaderOnly(FrameType.Error, FrameCodec.MaxErrorBodyBytes + 1)));
        Assert.Equal(ProtocolErrorCode.FrameTooLarge, HeaderError(HeaderOnly(FrameType.Welcome, FrameCodec.WelcomeBodyBytes + 1)));
        Assert.Equal(ProtocolErrorCode.FrameTooLarge, HeaderError(HeaderOnly(FrameType.Ping, 1)));
        Assert.Equal(ProtocolErrorCode.FrameTooLarge, HeaderError(HeaderOnly(FrameType.Pong, 1)));
        // At the limits the header is fine (and the reader then waits for the body).
        Assert.Equal(FrameStatus.Ok, Frames.ReadHeader(HeaderOnly(FrameType.Hello, FrameCodec.MaxHelloBodyBytes), out _));
        Assert.Equal(FrameStatus.Ok, Frames.ReadHeader(HeaderOnly(FrameType.CommandBatch, (uint)FrameCodec.SizeOfCommandBatch(8_192) - FrameHeader.Size), out _));
    }

    [Fact]
    public void Too_many_commands_are_refused_from_the_header_alone()
    {
        uint oneTooMany = (uint)(FrameCodec.SizeOfCommandBatch(Limits.MaxCommandsPerBatch + 1) - FrameHeader.Size);
        Assert.True(oneTooMany <= Limits.MaxBodyBytes, "the test must exercise the count limit, not the body limit");
        Assert.Equal(ProtocolErrorCode.TooManyCommands, HeaderError(HeaderOnly(FrameType.CommandBatch, oneTooMany)));
        Assert.Equal(ProtocolErrorCode.TooManyCommands, HeaderError(HeaderOnly(FrameType.ResultBatch, (uint)(FrameCodec.SizeOfResultBatch(Limits.MaxCommandsPerBatch + 1) - FrameHeader.Size))));

        var small = new ProtocolLimits(maxCommandsPerBatch: 10);
        byte[] eleven = Frames.CommandBatch(1, Enumerable.Range(0, 11).Select(i => Frames.Transfer(1, 2, 3, "k" + i)).ToArray());
        Assert.Equal(ProtocolErrorCode.TooManyCommands, HeaderError(eleven, small));
        // The body reader checks the count too, for a body that did not come through a header check.
        Assert.False(FrameCodec.TryReadCommandBatch(eleven.AsSpan(FrameHeader.Size), small, new WireCommand[10], out _, out ProtocolError error));
        Assert.Equal(ProtocolErrorCode.TooManyCommands, error.Code);
    }

    [Fact]
    public void A_truncated_body_is_never_a_frame()
    {
        byte[] frame = Frames.CommandBatch(1, Frames.Transfer(1, 2, 3, "k"), Frames.Transfer(1, 2, 4, "l"));
        var reader = new FrameReader(frame.AsSpan(0, frame.Length - 1), Limits);
        Assert.False(reader.TryRead(out _));
        Assert.Equal((FrameStatus.NeedMoreData, 1), (reader.Status, reader.MissingBytes));
        // A header that claims fewer bytes than the batch holds cuts the body short: the body reader refuses it whole.
        byte[] lying = (byte[])frame.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(lying.AsSpan(4), (uint)(frame.Length - FrameHeader.Size - WireCommand.Size));
        ReceivedFrame read = Frames.ReadOne(lying[..^WireCommand.Size]);
        AssertBatchRefused(read.Body, ProtocolErrorCode.MalformedBody, ProtocolError.NoCommandIndex);
    }

    private static void AssertBatchRefused(ReadOnlySpan<byte> body, ProtocolErrorCode code, int commandIndex)
    {
        Assert.False(FrameCodec.TryReadCommandBatch(body, Limits, new WireCommand[Limits.MaxCommandsPerBatch], out int count, out ProtocolError error));
        Assert.Equal((code, commandIndex, 0), (error.Code, error.CommandIndex, count));
        Assert.False(error.ClosesConnection, "a refused body keeps the connection");
    }

    [Fact]
    public void Batch_bodies_with_a_wrong_count_length_or_reserved_field_are_refused()
    {
        byte[] body = Frames.CommandBatch(1, Frames.Transfer(1, 2, 3, "k"), Frames.Transfer(1, 2, 4, "l"))[FrameHeader.Size..];
        AssertBatchRefused(body[..7], ProtocolErrorCode.MalformedBody, -1);
        AssertBatchRefused(body[..^1], ProtocolErrorCode.MalformedBody, -1);
        AssertBatchRefused([.. body, 0], ProtocolErrorCode.MalformedBody, -1);
        foreach (uint count in new uint[] { 0, 1, 3 })
        {
            byte[] wrongCount = (byte[])body.Clone();
            BinaryPrimitives.WriteUInt32LittleEndian(wrongCount, count);
            AssertBatchRefused(wrongCount, ProtocolErrorCode.MalformedBody, -1);
        }
        byte[] reserved = (byte[])body.Clone();
        reserved[7] = 1;
        AssertBatchRefused(reserved, ProtocolErrorCode.MalformedBody, -1);
    }

    [Theory]
    [InlineData((byte)CommandType.None)]
    [InlineData((byte)CommandType.OpenAccount)]
    [InlineData((byte)CommandType.Freeze)]
    [InlineData((byte)CommandType.Unfreeze)]
    [InlineData((byte)CommandType.Tick)]
    [InlineData((byte)11)]
    [InlineData((byte)255)]
    public void One_command_of_a_type_not_allowed_on_the_wire_refuses_the_whole_batch(byte type)
    {
        WireCommand[] commands = Enumerable.Range(0, 5).Select(i => Frames.Transfer(1, 2, 3 + i, "k" + i)).ToArray();
        byte[] body = Frames.CommandBatch(1, commands)[FrameHeader.Size..];
        body[FrameCodec.BatchPrefixBytes + 3 * WireCommand.Size] = type;
        AssertBatchRefused(body, ProtocolErrorCode.MalformedBody, 3);
        Assert.False(WireCommand.IsAllowedType((CommandType)type));
        Assert.Throws<ArgumentException>(() => Frames.CommandBatch(1, commands[0] with { Type = (CommandType)type }));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(7)]
    public void One_command_with_a_non_zero_reserved_byte_refuses_the_whole_batch(int offsetInCommand)
    {
        WireCommand[] commands = Enumerable.Range(0, 3).Select(i => Frames.Transfer(1, 2, 3 + i, "k" + i)).ToArray();
        byte[] body = Frames.CommandBatch(1, commands)[FrameHeader.Size..];
        body[FrameCodec.BatchPrefixBytes + 2 * WireCommand.Size + offsetInCommand] = 0x80;
        AssertBatchRefused(body, ProtocolErrorCode.MalformedBody, 2);
    }

    [Fact]
    public void Values_the_ledger_judges_pass_the_codec()
    {
        // Negative amount, no currency, no key, same account: per-command ledger results, not a refused frame.
        var odd = new WireCommand { Type = CommandType.Transfer, Amount = -5, FromAccount = 1, ToAccount = 1, HoldTimeoutMs = -1 };
        byte[] body = Frames.CommandBatch(1, odd)[FrameHeader.Size..];
        var into = new WireCommand[Limits.MaxCommandsPerBatch];
        Assert.True(FrameCodec.TryReadCommandBatch(body, Limits, into, out int count, out _));
        Assert.Equal(odd, into[count - 1]);
    }

    [Fact]
    public void Result_batches_with_unknown_flags_or_reserved_bytes_are_refused_but_unknown_codes_are_not()
    {
        byte[] body = Frames.ResultBatch(1, new WireResult(ResultCode.Ok, false, 1), new WireResult((ResultCode)200, true, 2))[FrameHeader.Size..];
        var into = new WireResult[Limits.MaxCommandsPerBatch];
        Assert.True(FrameCodec.TryReadResultBatch(body, Limits, into, out _, out _));
        Assert.Equal((ResultCode)200, into[1].Code);
        foreach (int offset in new[] { 1, 2, 4, 7 })
        {
            byte[] bad = (byte[])body.Clone();
            bad[FrameCodec.BatchPrefixBytes + WireResult.Size + offset] |= 0x02;
            Assert.False(FrameCodec.TryReadResultBatch(bad, Limits, into, out int count, out ProtocolError error));
            Assert.Equal((ProtocolErrorCode.MalformedBody, 1, 0), (error.Code, error.CommandIndex, count));
        }
    }

    private delegate bool BodyReader(byte[] body, out ProtocolError error);

    private static bool ReadHello(byte[] body, out ProtocolError error) => FrameCodec.TryReadHello(body, out _, out _, out error);
    private static bool ReadWelcome(byte[] body, out ProtocolError error) => FrameCodec.TryReadWelcome(body, out _, out _, out error);
    private static bool ReadError(byte[] body, out ProtocolError error) => FrameCodec.TryReadError(body, out _, out error);

    private static byte[] Patched(byte[] body, int offset, params byte[] bytes)
    {
        byte[] copy = (byte[])body.Clone();
        bytes.CopyTo(copy, offset);
        return copy;
    }

    private static void AssertRefused(BodyReader read, byte[] body)
    {
        Assert.False(read(body, out ProtocolError error));
        Assert.Equal(ProtocolErrorCode.MalformedBody, error.Code);
    }

    [Fact]
    public void Malformed_hello_bodies_are_refused()
    {
        byte[] hello = Frames.Hello(1, "tok", "cli")[FrameHeader.Size..];
        Assert.True(ReadHello(hello, out _));
        AssertRefused(ReadHello, hello[..^1]);
        AssertRefused(ReadHello, [.. hello, 0x41]);
        AssertRefused(ReadHello, hello[..4]);
        AssertRefused(ReadHello, Patched(hello, 0, 0, 0));    // empty token
        AssertRefused(ReadHello, Patched(hello, 4, 1));       // reserved
        AssertRefused(ReadHello, Patched(hello, 8, 0xFF));    // token not UTF-8
        AssertRefused(ReadHello, Patched(hello, 11, 0xC3));   // name not UTF-8
    }

    [Fact]
    public void Malformed_welcome_bodies_are_refused()
    {
        byte[] welcome = Frames.Welcome(1, 5, Limits)[FrameHeader.Size..];
        Assert.True(ReadWelcome(welcome, out _));
        AssertRefused(ReadWelcome, welcome[..^1]);
        AssertRefused(ReadWelcome, Patched(welcome, 0, 0));              // client id 0
        AssertRefused(ReadWelcome, Patched(welcome, 7, 0x80));           // negative client id
        AssertRefused(ReadWelcome, Patched(welcome, 12, 0, 0, 0, 0));    // zero commands per batch
        AssertRefused(ReadWelcome, Patched(welcome, 8, 0, 0, 0, 0));     // body limit below a full batch
        AssertRefused(ReadWelcome, Patched(welcome, 8, 0, 0, 0, 0x7F));  // body limit above the hard maximum
        AssertRefused(ReadWelcome, Patched(welcome, 20, 1));             // reserved
    }

    [Fact]
    public void Malformed_error_bodies_are_refused()
    {
        byte[] error = Frames.Error(1, ProtocolErrorCode.ServerBusy, false, -1, "hi")[FrameHeader.Size..];
        Assert.True(ReadError(error, out _));
        AssertRefused(ReadError, error[..^1]);
        AssertRefused(ReadError, error[..11]);
        AssertRefused(ReadError, Patched(error, 0, 0, 0));       // code none
        AssertRefused(ReadError, Patched(error, 2, 2));          // unknown flag
        AssertRefused(ReadError, Patched(error, 3, 1));          // reserved
        AssertRefused(ReadError, Patched(error, 4, 0xFE));       // command index -2
        AssertRefused(ReadError, Patched(error, 10, 1));         // reserved
        AssertRefused(ReadError, Patched(error, 12, 0xC3));      // a truncated UTF-8 sequence
        // An error code this version does not know is accepted: codes are appended within a version.
        Assert.True(ReadError(Patched(error, 0, 0xE8, 0x03), out _));
    }
}
