using System.Buffers.Binary;
using RamPay.Protocol;

namespace RamPay.Protocol.Tests;

/// <summary>
/// Freezes the wire format. The expected bytes are worked out by hand from docs/protocol.md, field by field: if one
/// of these fails, the format changed, and that is a new protocol version, not an edit of the test.
/// </summary>
public class GoldenLayoutTests
{
    [Fact]
    public void Sizes_are_frozen()
    {
        Assert.Equal(16, FrameHeader.Size);
        Assert.Equal(64, WireCommand.Size);
        Assert.Equal(16, WireResult.Size);
        Assert.Equal(24, FrameCodec.WelcomeBodyBytes);
        Assert.Equal(8, FrameCodec.BatchPrefixBytes);
        Assert.Equal(8, FrameCodec.HelloPrefixBytes);
        Assert.Equal(12, FrameCodec.ErrorPrefixBytes);
        Assert.Equal(16 + 8 + 8_192 * 64, FrameCodec.SizeOfCommandBatch(8_192));
        Assert.Equal(16 + 8 + 8_192 * 16, FrameCodec.SizeOfResultBatch(8_192));
    }

    [Fact]
    public void Enum_values_are_frozen()
    {
        Assert.Equal([1, 2, 3, 4, 5, 6, 7], Enum.GetValues<FrameType>().Select(t => (int)t));
        Assert.Equal(
            ["0 none", "1 bad_magic", "2 unsupported_version", "3 unknown_frame_type", "4 frame_too_large", "5 too_many_commands",
             "6 malformed_body", "7 not_authenticated", "8 authentication_failed", "9 already_authenticated", "10 unexpected_frame_type",
             "11 server_busy", "12 shutting_down", "13 internal_error", "14 rate_limited"],
            Enum.GetValues<ProtocolErrorCode>().Select(c => $"{(int)c} {ProtocolErrorCodes.Name(c)}"));
    }

    [Fact]
    public void Header_layout()
    {
        var bytes = new byte[FrameHeader.Size];
        new FrameHeader(FrameType.CommandBatch, 72, 0x0102030405060708).Write(bytes);
        //                       magic ver type  body length   request id
        Assert.Equal(Hex.Parse("5250 01 03   48000000      0807060504030201"), bytes);
        Assert.Equal(FrameStatus.Ok, FrameHeader.TryRead(bytes, ProtocolLimits.Default, out FrameHeader read, out _));
        Assert.Equal((FrameType.CommandBatch, 72, 0x0102030405060708UL, (byte)1), (read.Type, read.BodyLengthBytes, read.RequestId, read.Version));
    }

    [Fact]
    public void Wire_command_layout()
    {
        var command = new WireCommand
        {
            Type = CommandType.Authorize, Currency = Currency.USD, Key = new IdempotencyKey(0x1122334455667788, 0x99AABBCCDDEEFF00),
            FromAccount = 1, ToAccount = 2, PaymentId = 0, Amount = 12_345, HoldTimeoutMs = 30_000,
        };
        var bytes = new byte[WireCommand.Size];
        WireCommand.Write(command, bytes);
        // USD = (20*26*26 + 18*26 + 3) + 1 = 13,992 = 0x36A8; 12,345 = 0x3039; 30,000 = 0x7530.
        Assert.Equal(Hex.Parse(
            "04 00 A836 00000000" +   // type authorize, reserved, currency, reserved
            "8877665544332211" +      // key hi
            "00FFEEDDCCBBAA99" +      // key lo
            "0100000000000000" +      // from account
            "0200000000000000" +      // to account
            "0000000000000000" +      // payment id
            "3930000000000000" +      // amount
            "3075000000000000"),      // hold timeout ms
            bytes);
        Assert.True(WireCommand.TryRead(bytes, out WireCommand read, out _));
        Assert.Equal(command, read);
    }

    [Fact]
    public void Wire_result_layout()
    {
        var bytes = new byte[WireResult.Size];
        WireResult.Write(new WireResult(ResultCode.InsufficientFunds, Replayed: true, Id: 42), bytes);
        //                      code flags reserved      id
        Assert.Equal(Hex.Parse("0D   01    0000 00000000 2A00000000000000"), bytes);
    }

    [Fact]
    public void Hello_layout()
    {
        byte[] frame = Frames.Hello(1, "tok", "cli");
        Assert.Equal(Hex.Parse(
            "5250 01 01 0E000000 0100000000000000" + // header: Hello, body 8 + 3 + 3 = 14 bytes, request 1
            "0300 0300 00000000" +                   // token length, name length, reserved
            "746F6B 636C69"),                        // "tok", "cli"
            frame);
    }

    [Fact]
    public void Welcome_ping_and_error_layouts()
    {
        Assert.Equal(Hex.Parse(
            "5250 01 02 18000000 0900000000000000" + // header: Welcome, body 24, request 9
            "0500000000000000" +                     // client id 5
            "00001000 00200000" +                    // max body 1 MiB, max commands 8,192
            "0000000000000000"),                     // reserved
            Frames.Welcome(9, 5, ProtocolLimits.Default));
        Assert.Equal(Hex.Parse("5250 01 06 00000000 0300000000000000"), Frames.Ping(3));
        Assert.Equal(Hex.Parse("5250 01 07 00000000 0300000000000000"), Frames.Pong(3));
        Assert.Equal(Hex.Parse(
            "5250 01 05 0E000000 0400000000000000" + // header: Error, body 12 + 2, request 4
            "0600 00 00 02000000 0200 0000" +        // malformed_body, not closing, command 2, message length 2
            "6869"),                                 // "hi"
            Frames.Error(4, ProtocolErrorCode.MalformedBody, closes: false, index: 2, "hi"));
    }

    /// <summary>The worked example of docs/protocol.md, byte for byte.</summary>
    [Fact]
    public void Worked_example_from_the_docs()
    {
        var key = IdempotencyKey.FromString("order-42");
        byte[] keyBytes = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(keyBytes, key.Hi);
        BinaryPrimitives.WriteUInt64LittleEndian(keyBytes.AsSpan(8), key.Lo);
        Assert.Equal(System.Security.Cryptography.SHA256.HashData("order-42"u8)[..16], keyBytes);
        Assert.Equal(DocKey, Hex.Of(keyBytes));

        byte[] batch = Frames.CommandBatch(7, Frames.Transfer(1001, 1002, 2_500, "order-42"));
        Assert.Equal(Hex.Parse(
            "5250 01 03 48000000 0700000000000000" +
            "01000000 00000000" +
            "03 00 A836 00000000" + DocKey +
            "E903000000000000 EA03000000000000 0000000000000000 C409000000000000 0000000000000000"),
            batch);

        byte[] result = Frames.ResultBatch(7, new WireResult(ResultCode.Ok, false, 1));
        Assert.Equal(Hex.Parse(
            "5250 01 04 18000000 0700000000000000" +
            "01000000 00000000" +
            "00 00 0000 00000000 0100000000000000"),
            result);
    }

    /// <summary>The first 16 bytes of SHA-256("order-42"), as printed in the docs.</summary>
    private const string DocKey = "3BF8B157C4238EEFE5AE4A66ECA81C6B";
}
