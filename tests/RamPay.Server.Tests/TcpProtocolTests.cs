using System.Text;
using RamPay.Core;
using RamPay.Protocol;

namespace RamPay.Server.Tests;

/// <summary>The binary protocol of docs/protocol.md against the real server, through RamPay.Protocol's codec over a raw socket.</summary>
public class TcpProtocolTests(InProcessServerFixture fixture) : IClassFixture<InProcessServerFixture>
{
    private readonly Api _api = fixture.Api;

    private Task<WireConnection> ConnectAsync() => WireConnection.ConnectAsync(fixture.Server.TcpEndPoint);

    private async Task<(WireConnection Connection, TestUser User)> OpenAsync(long deposit = 0)
    {
        var user = await _api.SignUpAsync(deposit: deposit);
        var (connection, _) = await WireConnection.OpenAsync(fixture.Server.TcpEndPoint, user.Token);
        return (connection, user);
    }

    private static void AssertError(ReceivedFrame frame, ProtocolErrorCode code, bool closes, ulong requestId, int commandIndex = ProtocolError.NoCommandIndex)
    {
        var e = frame.Error();
        Assert.True(e.Code == code && e.Closes == closes && frame.RequestId == requestId && e.CommandIndex == commandIndex,
            $"expected Error({ProtocolErrorCodes.Name(code)}, closes={closes}, index={commandIndex}) for request {requestId}, got {frame.Describe()}");
    }

    [Fact]
    public async Task Hello_with_a_valid_token_is_welcomed_with_the_user_id_and_the_servers_limits()
    {
        var user = await _api.SignUpAsync();
        await using var connection = await ConnectAsync();
        await connection.SendHelloAsync(user.Token, requestId: 42);
        var welcome = await connection.ReceiveAsync();
        Assert.Equal(42UL, welcome.RequestId);
        Assert.Equal(user.UserId, welcome.WelcomeClientId());
        Assert.True(FrameCodec.TryReadWelcome(welcome.Body, out _, out var limits, out _));
        Assert.True(limits.MaxCommandsPerBatch >= 1 && limits.MaxBodyBytes >= FrameCodec.BatchPrefixBytes + WireCommand.Size * limits.MaxCommandsPerBatch, limits.ToString());
    }

    [Theory]
    [InlineData("not-a-token")]
    [InlineData("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwicm9sZSI6ImFkbWluIn0.c2lnbmF0dXJl")]
    public async Task Hello_with_a_bad_token_is_authentication_failed_and_closed(string token)
    {
        await using var connection = await ConnectAsync();
        await connection.SendHelloAsync(token, requestId: 5);
        await connection.ExpectClosingErrorAsync(ProtocolErrorCode.AuthenticationFailed, requestId: 5);
    }

    [Fact]
    public async Task A_malformed_Hello_is_malformed_body_and_closes_the_connection()
    {
        var user = await _api.SignUpAsync();
        byte[] token = Encoding.UTF8.GetBytes(user.Token);
        var frame = new byte[FrameCodec.SizeOfHello(token.Length, 0)];
        FrameCodec.WriteHello(frame, 8, token, []);
        frame[FrameHeader.Size + 4] = 1; // a reserved byte of the Hello body
        await using var connection = await ConnectAsync();
        await connection.SendAsync(frame);
        await connection.ExpectClosingErrorAsync(ProtocolErrorCode.MalformedBody, requestId: 8);
    }

    [Theory]
    [InlineData(FrameType.Welcome)]
    [InlineData(FrameType.ResultBatch)]
    [InlineData(FrameType.Pong)]
    public async Task A_frame_only_the_server_sends_is_unexpected_frame_type_and_closed(FrameType type)
    {
        var (connection, _) = await OpenAsync();
        await using var _ = connection;
        var frame = new byte[FrameCodec.SizeOfWelcome + FrameCodec.SizeOfResultBatch(1)];
        int length = type switch
        {
            FrameType.Welcome => FrameCodec.WriteWelcome(frame, 40, 1, ProtocolLimits.Default),
            FrameType.ResultBatch => FrameCodec.WriteResultBatch(frame, 40, [new WireResult(ResultCode.Ok, false, 1)]),
            _ => FrameCodec.WritePong(frame, 40),
        };
        await connection.SendAsync(frame.AsMemory(0, length));
        await connection.ExpectClosingErrorAsync(ProtocolErrorCode.UnexpectedFrameType, requestId: 40);
    }

    [Fact]
    public async Task A_frame_before_Hello_is_not_authenticated_and_closed()
    {
        var user = await _api.SignUpAsync(deposit: 1_000);
        var other = await _api.SignUpAsync();
        var before = await _api.StateAsync(user.WalletId);
        await using (var connection = await ConnectAsync())
        {
            await connection.SendBatchAsync(9, Wire.Transfer(Api.NewKey(), user.WalletId, other.WalletId, 100));
            await connection.ExpectClosingErrorAsync(ProtocolErrorCode.NotAuthenticated, requestId: 9);
        }
        await using (var connection = await ConnectAsync())
        {
            await connection.SendPingAsync(3);
            await connection.ExpectClosingErrorAsync(ProtocolErrorCode.NotAuthenticated, requestId: 3);
        }
        Assert.Equal(before, await _api.StateAsync(user.WalletId));
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")]
    [InlineData("\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003")] // the start of a TLS ClientHello
    [InlineData("garbage bytes that are not a frame")]
    public async Task Bytes_that_are_not_a_frame_are_bad_magic_with_request_id_0_and_closed(string bytes)
    {
        await using var connection = await ConnectAsync();
        await connection.SendAsync(Encoding.Latin1.GetBytes(bytes));
        await connection.ExpectClosingErrorAsync(ProtocolErrorCode.BadMagic, requestId: 0);
    }

    [Fact]
    public async Task Bad_magic_after_Welcome_closes_the_connection_too()
    {
        var (connection, _) = await OpenAsync();
        await using var _ = connection;
        await connection.SendAsync("GET / HTTP/1.1\r\n\r\n"u8.ToArray());
        await connection.ExpectClosingErrorAsync(ProtocolErrorCode.BadMagic, requestId: 0);
    }

    [Theory]
    [InlineData(2, FrameType.Hello, ProtocolErrorCode.UnsupportedVersion)]
    [InlineData(1, (FrameType)9, ProtocolErrorCode.UnknownFrameType)]
    public async Task A_bad_version_or_frame_type_is_refused_and_closed(byte version, FrameType type, ProtocolErrorCode code)
    {
        await using var connection = await ConnectAsync();
        await connection.SendAsync(new byte[] { FrameHeader.Magic0, FrameHeader.Magic1, version, (byte)type });
        await connection.ExpectClosingErrorAsync(code, requestId: 0);
    }

    [Fact]
    public async Task An_oversized_body_length_is_frame_too_large_from_the_header_alone()
    {
        // A Hello may not announce more than its largest body: refused before a single body byte arrives.
        await using (var connection = await ConnectAsync())
        {
            await connection.SendAsync(Header(FrameType.Hello, FrameCodec.MaxHelloBodyBytes + 1, requestId: 4));
            await connection.ExpectClosingErrorAsync(ProtocolErrorCode.FrameTooLarge, requestId: 0);
        }
        // After Welcome, a batch announcing more than max_body_bytes.
        var (authenticated, _) = await OpenAsync();
        await using (authenticated)
        {
            await authenticated.SendAsync(Header(FrameType.CommandBatch, int.MaxValue, requestId: 5));
            await authenticated.ExpectClosingErrorAsync(ProtocolErrorCode.FrameTooLarge, requestId: 0);
        }
    }

    [Fact]
    public async Task A_batch_length_above_max_commands_is_too_many_commands()
    {
        var (connection, _) = await OpenAsync();
        await using var _ = connection;
        int oneTooMany = FrameCodec.BatchPrefixBytes + WireCommand.Size * (ProtocolLimits.Default.MaxCommandsPerBatch + 1);
        await connection.SendAsync(Header(FrameType.CommandBatch, oneTooMany, requestId: 6));
        await connection.ExpectClosingErrorAsync(ProtocolErrorCode.TooManyCommands, requestId: 0);
    }

    [Fact]
    public async Task A_malformed_batch_is_refused_whole_and_the_connection_stays_usable()
    {
        var (connection, alice) = await OpenAsync(deposit: 10_000);
        await using var _ = connection;
        var bob = await _api.SignUpAsync();
        var before = (await _api.StateAsync(alice.WalletId), await _api.StateAsync(bob.WalletId));

        string k = Api.NewKey();
        var commands = Enumerable.Range(0, 5).Select(i => Wire.Transfer($"{k}-{i}", alice.WalletId, bob.WalletId, 100 + i)).ToArray();
        byte[] frame = WireConnection.CommandBatchFrame(11, commands);
        frame[FrameHeader.Size + FrameCodec.BatchPrefixBytes + 2 * WireCommand.Size + 1] = 0x7F; // command 3's reserved byte
        await connection.SendAsync(frame);
        AssertError(await connection.ReceiveAsync(), ProtocolErrorCode.MalformedBody, closes: false, requestId: 11, commandIndex: 2);
        Assert.Equal(before, (await _api.StateAsync(alice.WalletId), await _api.StateAsync(bob.WalletId)));

        // Still usable: Ping answers, and the same five commands, well formed, are new (none was applied before).
        await connection.SendPingAsync(12);
        var pong = await connection.ReceiveAsync();
        Assert.True(pong.Type == FrameType.Pong && pong.RequestId == 12, pong.Describe());
        var results = await connection.RoundTripAsync(13, commands);
        Assert.All(results, r => Assert.True(r is { Code: ResultCode.Ok, Replayed: false }, Wire.Describe(r)));
        Assert.Equal(before.Item1.Posted - 510, (await _api.StateAsync(alice.WalletId)).Posted);
    }

    [Fact]
    public async Task A_command_type_not_allowed_on_the_wire_is_malformed_body()
    {
        var (connection, alice) = await OpenAsync(deposit: 1_000);
        await using var _ = connection;
        var before = await _api.StateAsync(alice.WalletId);
        byte[] frame = WireConnection.CommandBatchFrame(21, Wire.Deposit(Api.NewKey(), alice.WalletId, 100), Wire.Deposit(Api.NewKey(), alice.WalletId, 100));
        frame[FrameHeader.Size + FrameCodec.BatchPrefixBytes + WireCommand.Size] = (byte)CommandType.Freeze;
        await connection.SendAsync(frame);
        AssertError(await connection.ReceiveAsync(), ProtocolErrorCode.MalformedBody, closes: false, requestId: 21, commandIndex: 1);
        Assert.Equal(before, await _api.StateAsync(alice.WalletId));
    }

    [Fact]
    public async Task A_second_Hello_is_already_authenticated_and_the_connection_keeps_its_identity()
    {
        var (connection, alice) = await OpenAsync(deposit: 1_000);
        await using var _ = connection;
        var bob = await _api.SignUpAsync();
        await connection.SendHelloAsync(bob.Token, requestId: 30);
        AssertError(await connection.ReceiveAsync(), ProtocolErrorCode.AlreadyAuthenticated, closes: false, requestId: 30);
        // Still Alice: she may pay from her wallet, not from Bob's.
        var results = await connection.RoundTripAsync(31,
            Wire.Transfer(Api.NewKey(), alice.WalletId, bob.WalletId, 100), Wire.Transfer(Api.NewKey(), bob.WalletId, alice.WalletId, 50));
        Assert.True(results[0].Code == ResultCode.Ok && results[1].Code == ResultCode.NotAccountOwner, $"{Wire.Describe(results[0])}; {Wire.Describe(results[1])}");
    }

    [Fact]
    public async Task Pipelined_frames_are_answered_in_order_with_their_request_ids()
    {
        var (connection, alice) = await OpenAsync(deposit: 100_000);
        await using var _ = connection;
        var bob = await _api.SignUpAsync();
        string k = Api.NewKey();
        // Five batches and two pings sent back to back, without waiting for any reply.
        var sent = new List<(ulong RequestId, int Commands)>();
        for (ulong r = 100; r < 105; r++)
        {
            int n = (int)(r - 99) * 3;
            var batch = Enumerable.Range(0, n).Select(i => Wire.Transfer($"{k}-{r}-{i}", alice.WalletId, bob.WalletId, 1)).ToArray();
            await connection.SendBatchAsync(r, batch);
            sent.Add((r, n));
            if (r % 2 == 0)
            {
                await connection.SendPingAsync(r + 1000);
                sent.Add((r + 1000, 0));
            }
        }
        long lastId = 0;
        foreach (var (requestId, commands) in sent)
        {
            var reply = await connection.ReceiveAsync();
            Assert.True(reply.RequestId == requestId, $"expected the reply to request {requestId} next, got {reply.Describe()}");
            if (commands == 0)
            {
                Assert.Equal(FrameType.Pong, reply.Type);
                continue;
            }
            var results = reply.Results();
            Assert.Equal(commands, results.Length);
            foreach (var r in results)
            {
                Assert.True(r.Code == ResultCode.Ok && r.Id > lastId, $"results should be ok with increasing payment ids: {Wire.Describe(r)} after {lastId}");
                lastId = r.Id;
            }
        }
        Assert.Equal(45, (await _api.StateAsync(bob.WalletId)).Posted);
    }

    [Fact]
    public async Task Ping_is_answered_with_Pong_and_the_same_request_id()
    {
        var (connection, _) = await OpenAsync();
        await using var _ = connection;
        foreach (ulong id in new[] { 0UL, 1UL, ulong.MaxValue })
        {
            await connection.SendPingAsync(id);
            var pong = await connection.ReceiveAsync();
            Assert.True(pong.Type == FrameType.Pong && pong.RequestId == id && pong.Body.Length == 0, pong.Describe());
        }
    }

    [Fact]
    public async Task Replayed_keys_come_back_with_the_replayed_flag_and_the_first_ids()
    {
        var (connection, alice) = await OpenAsync(deposit: 10_000);
        await using var _ = connection;
        var bob = await _api.SignUpAsync();
        string k = Api.NewKey();
        var commands = new[]
        {
            Wire.Transfer(k + "-t", alice.WalletId, bob.WalletId, 1_000),
            Wire.Authorize(k + "-a", alice.WalletId, bob.WalletId, 2_000, holdTimeoutMs: 60_000),
            Wire.Deposit(k + "-d", alice.WalletId, 500),
            Wire.Transfer(k + "-f", alice.WalletId, bob.WalletId, 1_000_000), // insufficient funds: remembered too
        };
        var first = await connection.RoundTripAsync(1, commands);
        Assert.True(first[0].Code == ResultCode.Ok && first[1].Code == ResultCode.Ok && first[2].Code == ResultCode.Ok && first[3].Code == ResultCode.InsufficientFunds,
            string.Join("; ", first.Select(Wire.Describe)));
        Assert.All(first, r => Assert.False(r.Replayed));
        var afterFirst = await _api.StateAsync(alice.WalletId);

        var second = await connection.RoundTripAsync(2, commands);
        for (int i = 0; i < commands.Length; i++)
            Assert.True(second[i] == first[i] with { Replayed = true }, $"command {i}: first {Wire.Describe(first[i])}, again {Wire.Describe(second[i])}");
        Assert.Equal(afterFirst, await _api.StateAsync(alice.WalletId));

        // The same key with another amount is a conflict, not a payment.
        var conflict = await connection.RoundTripAsync(3, commands[0] with { Amount = 1_001 });
        Assert.True(conflict[0] is { Code: ResultCode.ExistsWithDifferentAmount, Id: 0 }, Wire.Describe(conflict[0]));

        // A replay on another connection of the same user is a replay too.
        var (other, _) = await WireConnection.OpenAsync(fixture.Server.TcpEndPoint, alice.Token);
        await using (other)
        {
            var third = await other.RoundTripAsync(1, commands[0]);
            Assert.Equal(first[0] with { Replayed = true }, third[0]);
        }
        Assert.Equal(afterFirst, await _api.StateAsync(alice.WalletId));
    }

    [Fact]
    public async Task Values_are_judged_per_command_with_the_ledgers_result_codes()
    {
        var (connection, alice) = await OpenAsync(deposit: 10_000);
        await using var _ = connection;
        var bob = await _api.SignUpAsync();
        var eve = await _api.SignUpAsync(currency: "EUR");
        string k = Api.NewKey();
        var commands = new[]
        {
            Wire.Transfer(k + "-0", alice.WalletId, bob.WalletId, -5),
            Wire.Transfer(k + "-1", alice.WalletId, bob.WalletId, 100) with { Currency = default },
            Wire.Transfer(k + "-2", alice.WalletId, bob.WalletId, 100) with { Key = default },
            Wire.Transfer(k + "-3", alice.WalletId, alice.WalletId, 100),
            Wire.Authorize(k + "-4", alice.WalletId, bob.WalletId, 100, holdTimeoutMs: -1),
            Wire.Transfer(k + "-5", alice.WalletId, eve.WalletId, 100),
            Wire.Transfer(k + "-6", alice.WalletId, 9_000_000, 100),
            Wire.Deposit(k + "-7", alice.WalletId, ServerFixture.MaxDeposit + 1),
            Wire.Deposit(k + "-8", alice.WalletId, 100, from: bob.WalletId),
            Wire.Capture(k + "-9", 9_000_000),
            Wire.Transfer(k + "-10", alice.WalletId, bob.WalletId, 100),
        };
        var expected = new[]
        {
            ResultCode.InvalidAmount, ResultCode.InvalidCurrency, ResultCode.IdempotencyKeyRequired, ResultCode.SameAccount,
            ResultCode.InvalidHoldTimeout, ResultCode.CurrencyMismatch, ResultCode.AccountNotFound, ResultCode.DepositLimitExceeded,
            ResultCode.NotAFundingAccount, ResultCode.PaymentNotFound, ResultCode.Ok,
        };
        var results = await connection.RoundTripAsync(1, commands);
        var got = results.Select(r => r.Code).ToArray();
        Assert.True(expected.SequenceEqual(got),
            $"expected {string.Join(", ", expected.Select(ResultCodes.Name))}; got {string.Join(", ", got.Select(ResultCodes.Name))}");
        Assert.Equal(10_000 - 100, (await _api.StateAsync(alice.WalletId)).Posted);
        Assert.Equal(100, (await _api.StateAsync(bob.WalletId)).Posted);
    }

    [Fact]
    public async Task A_deposit_refused_at_ingress_is_not_remembered_so_its_key_can_be_used_again()
    {
        var (connection, alice) = await OpenAsync();
        await using var _ = connection;
        string key = Api.NewKey();
        var tooMuch = await connection.RoundTripAsync(1, Wire.Deposit(key, alice.WalletId, ServerFixture.MaxDeposit + 1));
        Assert.True(tooMuch[0] is { Code: ResultCode.DepositLimitExceeded, Id: 0 }, Wire.Describe(tooMuch[0]));
        var unknownCurrency = await connection.RoundTripAsync(2, Wire.Deposit(Api.NewKey(), alice.WalletId, 100, currency: "GBP"));
        Assert.True(unknownCurrency[0].Code == ResultCode.InvalidCurrency, Wire.Describe(unknownCurrency[0]));
        var ok = await connection.RoundTripAsync(3, Wire.Deposit(key, alice.WalletId, 500));
        Assert.True(ok[0] is { Code: ResultCode.Ok, Replayed: false } && ok[0].Id > 0, Wire.Describe(ok[0]));
        Assert.Equal(500, (await _api.StateAsync(alice.WalletId)).Posted);
    }

    private static byte[] Header(FrameType type, int bodyLength, ulong requestId)
    {
        var bytes = new byte[FrameHeader.Size];
        new FrameHeader(type, bodyLength, requestId).Write(bytes);
        return bytes;
    }
}
