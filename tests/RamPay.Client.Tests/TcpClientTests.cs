namespace RamPay.Client.Tests;

public sealed class TcpClientTests
{
    private static WireCommand Transfer(long amount, long from = 5, long to = 6, string key = "k") => new()
    {
        Type = CommandType.Transfer,
        Currency = Currency.USD,
        Key = IdempotencyKey.FromString(key + amount),
        FromAccount = from,
        ToAccount = to,
        Amount = amount,
    };

    internal static WireCommand[] Batch(int firstAmount, int count) =>
        Enumerable.Range(firstAmount, count).Select(a => Transfer(a)).ToArray();

    [Fact]
    public async Task Connect_sends_the_token_and_name_and_exposes_the_welcome()
    {
        await using FakeSession session = await FakeSession.StartAsync(clientId: 42, new ProtocolLimits(maxBodyBytes: 8_192, maxCommandsPerBatch: 100));
        (RamPayTcpClient client, FakeConnection connection) = session;
        Assert.Equal("token", connection.HelloToken);
        Assert.Equal("tests", connection.HelloClientName);
        Assert.NotEqual(0UL, connection.HelloRequestId);
        Assert.Equal(42, client.ClientId);
        Assert.Equal(8_192, client.ServerLimits.MaxBodyBytes);
        Assert.Equal(100, client.ServerLimits.MaxCommandsPerBatch);
        Assert.True(client.IsConnected);
    }

    [Fact]
    public async Task A_refused_token_fails_connect_with_authentication_failed()
    {
        await using var server = new FakeServer();
        Task<RamPayTcpClient> connecting = RamPayTcpClient.ConnectAsync("127.0.0.1", server.Port, "bad-token");
        await using FakeConnection connection = await server.AcceptAsync();
        ReceivedFrame hello = await connection.ReadFrameAsync();
        await connection.SendErrorAsync(hello.RequestId, ProtocolErrorCode.AuthenticationFailed, closes: true, "the token was refused");
        connection.Drop();

        var e = await Assert.ThrowsAsync<RamPayProtocolException>(() => connecting.WaitAsync(TestTimeouts.Step));
        Assert.Equal(ProtocolErrorCode.AuthenticationFailed, e.Code);
        Assert.Equal("the token was refused", e.ServerMessage);
        Assert.False(e.IsRetryable);
    }

    [Fact]
    public async Task Pipelined_batches_are_all_sent_before_any_reply_and_each_caller_gets_its_own_results()
    {
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        // 40 batches of 1..40 commands, none awaited: the amounts tell the batches apart.
        var batches = Enumerable.Range(1, 40).Select(i => Batch(i * 1_000, i)).ToArray();
        var sends = batches.Select(b => client.SendBatchAsync(b).AsTask()).ToArray();

        // The server reads all 40 before it answers any: a client that waited for each reply would stall here.
        var frames = new List<ReceivedFrame>();
        for (int i = 0; i < batches.Length; i++) frames.Add(await connection.ReadCommandBatchAsync());
        Assert.All(sends, s => Assert.False(s.IsCompleted));

        // Request ids increase in wire order, and each frame is one caller's batch, whole.
        for (int i = 1; i < frames.Count; i++) Assert.True(frames[i].RequestId > frames[i - 1].RequestId);
        var sentAmounts = frames.Select(f => f.Commands().Select(c => c.Amount).ToArray()).OrderBy(a => a[0]).ToArray();
        Assert.Equal(batches.Select(b => b.Select(c => c.Amount).ToArray()), sentAmounts);
        Assert.All(frames, f => Assert.Equal(f.Commands().Length, f.Commands()[0].Amount / 1_000));

        foreach (ReceivedFrame frame in frames) await connection.AnswerWithAmountsAsync(frame);

        for (int i = 0; i < batches.Length; i++)
        {
            WireResult[] results = await sends[i].WaitAsync(TestTimeouts.Step);
            Assert.Equal(batches[i].Select(c => c.Amount), results.Select(r => r.Id));
            Assert.All(results, r => Assert.Equal(ResultCode.Ok, r.Code));
        }
    }

    [Fact]
    public async Task The_wire_carries_each_command_field_for_field()
    {
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        var command = new WireCommand
        {
            Type = CommandType.Authorize, Currency = Currency.EUR, Key = IdempotencyKey.FromString("order-42"),
            FromAccount = 1_001, ToAccount = 1_002, PaymentId = 0, Amount = 2_500, HoldTimeoutMs = 60_000,
        };
        ValueTask<WireResult[]> send = client.SendBatchAsync(new[] { command });
        ReceivedFrame frame = await connection.ReadCommandBatchAsync();
        Assert.Equal(command, Assert.Single(frame.Commands()));
        await connection.SendResultsAsync(frame.RequestId, [new WireResult(ResultCode.InsufficientFunds, Replayed: true, 0)]);
        Assert.Equal(new WireResult(ResultCode.InsufficientFunds, true, 0), Assert.Single(await send.AsTask().WaitAsync(TestTimeouts.Step)));
    }

    [Fact]
    public async Task A_server_busy_error_fails_only_its_batch_retryably_and_the_connection_stays_up()
    {
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        Task<WireResult[]> first = client.SendBatchAsync(Batch(1, 2)).AsTask();
        ReceivedFrame f1 = await connection.ReadCommandBatchAsync();
        Task<WireResult[]> second = client.SendBatchAsync(Batch(10, 3)).AsTask();
        ReceivedFrame f2 = await connection.ReadCommandBatchAsync();
        Task<WireResult[]> third = client.SendBatchAsync(Batch(20, 1)).AsTask();
        ReceivedFrame f3 = await connection.ReadCommandBatchAsync();

        await connection.AnswerWithAmountsAsync(f1);
        await connection.SendErrorAsync(f2.RequestId, ProtocolErrorCode.ServerBusy, closes: false, "busy");
        await connection.AnswerWithAmountsAsync(f3);

        Assert.Equal([1L, 2L], (await first.WaitAsync(TestTimeouts.Step)).Select(r => r.Id));
        var busy = await Assert.ThrowsAsync<RamPayProtocolException>(() => second.WaitAsync(TestTimeouts.Step));
        Assert.Equal(ProtocolErrorCode.ServerBusy, busy.Code);
        Assert.True(busy.IsRetryable);
        Assert.Equal(f2.RequestId, busy.RequestId);
        Assert.Equal([20L], (await third.WaitAsync(TestTimeouts.Step)).Select(r => r.Id));

        // Retrying the refused batch on the same connection works.
        Assert.True(client.IsConnected);
        Task<WireResult[]> retry = client.SendBatchAsync(Batch(10, 3)).AsTask();
        await connection.AnswerWithAmountsAsync(await connection.ReadCommandBatchAsync());
        Assert.Equal([10L, 11L, 12L], (await retry.WaitAsync(TestTimeouts.Step)).Select(r => r.Id));
    }

    [Fact]
    public async Task A_closing_error_fails_its_batch_with_the_error_and_every_other_pending_batch_with_connection_loss()
    {
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        var sends = Enumerable.Range(0, 3).Select(i => client.SendBatchAsync(Batch(i * 10 + 1, 1)).AsTask()).ToArray();
        ReceivedFrame f1 = await connection.ReadCommandBatchAsync();
        await connection.ReadCommandBatchAsync();
        await connection.ReadCommandBatchAsync();
        await connection.SendErrorAsync(f1.RequestId, ProtocolErrorCode.ShuttingDown, closes: true, "stopping");

        var refused = await Assert.ThrowsAsync<RamPayProtocolException>(() => sends[0].WaitAsync(TestTimeouts.Step));
        Assert.Equal(ProtocolErrorCode.ShuttingDown, refused.Code);
        await Assert.ThrowsAsync<RamPayConnectionException>(() => sends[1].WaitAsync(TestTimeouts.Step));
        await Assert.ThrowsAsync<RamPayConnectionException>(() => sends[2].WaitAsync(TestTimeouts.Step));
        Assert.False(client.IsConnected);
        await Assert.ThrowsAsync<RamPayConnectionException>(() => client.SendBatchAsync(Batch(1, 1)).AsTask());
    }

    [Fact]
    public async Task A_dropped_connection_fails_every_pending_batch_and_every_later_call()
    {
        // The session still disposes the dropped connection and the closed client: both tolerate it.
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        var sends = Enumerable.Range(0, 10).Select(i => client.SendBatchAsync(Batch(i + 1, 5)).AsTask()).ToArray();
        // Answer two, then vanish (a reset, as from a crashed host) with eight in flight. The answers are awaited
        // first because a reset makes the client's kernel discard what it received but nobody read yet.
        await connection.AnswerWithAmountsAsync(await connection.ReadCommandBatchAsync());
        await connection.AnswerWithAmountsAsync(await connection.ReadCommandBatchAsync());
        for (int i = 2; i < sends.Length; i++) await connection.ReadCommandBatchAsync();
        Assert.Equal([1L, 2L, 3L, 4L, 5L], (await sends[0].WaitAsync(TestTimeouts.Step)).Select(r => r.Id));
        Assert.Equal([2L, 3L, 4L, 5L, 6L], (await sends[1].WaitAsync(TestTimeouts.Step)).Select(r => r.Id));
        Assert.True(client.IsConnected);
        connection.Drop();

        for (int i = 2; i < sends.Length; i++) await Assert.ThrowsAsync<RamPayConnectionException>(() => sends[i].WaitAsync(TestTimeouts.Step));
        await client.Closed.WaitAsync(TestTimeouts.Step);
        Assert.IsType<RamPayConnectionException>(client.CloseReason);
        await Assert.ThrowsAsync<RamPayConnectionException>(() => client.SendBatchAsync(Batch(1, 1)).AsTask());
        await Assert.ThrowsAsync<RamPayConnectionException>(() => client.PingAsync().AsTask());
    }

    [Fact]
    public async Task A_reply_for_the_wrong_request_is_a_violation_that_closes_the_connection()
    {
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        Task<WireResult[]> first = client.SendBatchAsync(Batch(1, 1)).AsTask();
        Task<WireResult[]> second = client.SendBatchAsync(Batch(2, 1)).AsTask();
        await connection.ReadCommandBatchAsync();
        ReceivedFrame f2 = await connection.ReadCommandBatchAsync();
        // Answering the second first breaks "replies in request order".
        await connection.AnswerWithAmountsAsync(f2);

        var e = await Assert.ThrowsAsync<RamPayConnectionException>(() => first.WaitAsync(TestTimeouts.Step));
        var violation = Assert.IsType<RamPayProtocolException>(e.InnerException);
        Assert.False(violation.SentByServer);
        await Assert.ThrowsAsync<RamPayConnectionException>(() => second.WaitAsync(TestTimeouts.Step));
        Assert.False(client.IsConnected);
    }

    [Fact]
    public async Task A_result_count_that_differs_from_the_batch_is_a_violation()
    {
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        Task<WireResult[]> send = client.SendBatchAsync(Batch(1, 3)).AsTask();
        ReceivedFrame frame = await connection.ReadCommandBatchAsync();
        await connection.SendResultsAsync(frame.RequestId, [new WireResult(ResultCode.Ok, false, 1)]);
        await Assert.ThrowsAsync<RamPayConnectionException>(() => send.WaitAsync(TestTimeouts.Step));
        Assert.False(client.IsConnected);
    }

    [Fact]
    public async Task Ping_completes_with_the_pong_behind_earlier_batches()
    {
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        Task<WireResult[]> batch = client.SendBatchAsync(Batch(1, 1)).AsTask();
        Task<TimeSpan> ping = client.PingAsync().AsTask();
        ReceivedFrame f1 = await connection.ReadCommandBatchAsync();
        ReceivedFrame p = await connection.ReadFrameAsync();
        Assert.Equal(FrameType.Ping, p.Type);
        Assert.False(ping.IsCompleted);
        await connection.AnswerWithAmountsAsync(f1);
        await connection.SendPongAsync(p.RequestId);
        await batch.WaitAsync(TestTimeouts.Step);
        Assert.True(await ping.WaitAsync(TestTimeouts.Step) > TimeSpan.Zero);
    }

    [Fact]
    public async Task A_cancelled_batch_never_reaches_the_wire()
    {
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.SendBatchAsync(Batch(1, 1), new CancellationToken(canceled: true)).AsTask());
        Task<WireResult[]> next = client.SendBatchAsync(Batch(99, 1)).AsTask();
        ReceivedFrame frame = await connection.ReadCommandBatchAsync();
        Assert.Equal(99, Assert.Single(frame.Commands()).Amount);
        await connection.AnswerWithAmountsAsync(frame);
        Assert.Equal(99, Assert.Single(await next.WaitAsync(TestTimeouts.Step)).Id);
    }

    [Fact]
    public async Task A_batch_above_the_servers_limit_or_with_a_non_payment_type_is_refused_before_sending()
    {
        await using FakeSession session = await FakeSession.StartAsync(limits: new ProtocolLimits(8_192, maxCommandsPerBatch: 16));
        (RamPayTcpClient client, FakeConnection connection) = session;
        Assert.Throws<ArgumentException>(() => { _ = client.SendBatchAsync(Batch(1, 17)); });
        Assert.Throws<ArgumentException>(() => { _ = client.SendBatchAsync(ReadOnlyMemory<WireCommand>.Empty); });
        var freeze = Transfer(1) with { Type = CommandType.Freeze };
        Assert.Throws<ArgumentException>(() => { _ = client.SendBatchAsync(new[] { freeze }); });
        // None of those reached the wire, and the connection still works.
        Task<WireResult[]> ok = client.SendBatchAsync(Batch(5, 16)).AsTask();
        ReceivedFrame frame = await connection.ReadCommandBatchAsync();
        Assert.Equal(16, frame.Commands().Length);
        await connection.AnswerWithAmountsAsync(frame);
        Assert.Equal(16, (await ok.WaitAsync(TestTimeouts.Step)).Length);
    }

    [Fact]
    public async Task Dispose_fails_what_is_in_flight()
    {
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        Task<WireResult[]> send = client.SendBatchAsync(Batch(1, 1)).AsTask();
        await connection.ReadCommandBatchAsync();
        await client.DisposeAsync();
        var e = await Assert.ThrowsAsync<RamPayConnectionException>(() => send.WaitAsync(TestTimeouts.Step));
        Assert.IsType<ObjectDisposedException>(e.InnerException);
    }

    [Fact]
    public async Task Many_concurrent_callers_on_one_connection_each_get_their_own_results()
    {
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        Task echo = connection.EchoAmountsAsync();
        // Eight callers, each reusing its own buffers across 300 sends: exercises request recycling under contention.
        var callers = Enumerable.Range(0, 8).Select(caller => Task.Run(async () =>
        {
            var commands = new WireCommand[1 + caller * 3];
            var results = new WireResult[commands.Length];
            for (int round = 0; round < 300; round++)
            {
                long baseAmount = (caller + 1) * 1_000_000L + round * 100L;
                for (int i = 0; i < commands.Length; i++) commands[i] = Transfer(baseAmount + i);
                await client.SendBatchAsync(commands, results);
                for (int i = 0; i < commands.Length; i++) Assert.Equal(baseAmount + i, results[i].Id);
            }
        })).ToArray();
        await Task.WhenAll(callers).WaitAsync(TestTimeouts.Step * 3);
    }
}

/// <summary>
/// Allocation is measured process-wide (continuations run on pool threads), so nothing else may run meanwhile:
/// this collection runs alone, after the parallel ones.
/// </summary>
[CollectionDefinition(nameof(AllocationTests), DisableParallelization = true)]
public sealed class AllocationTestsCollection;

[Collection(nameof(AllocationTests))]
public sealed class AllocationTests
{
    [Fact]
    public async Task The_buffer_overload_allocates_nothing_per_command()
    {
        await using FakeSession session = await FakeSession.StartAsync();
        (RamPayTcpClient client, FakeConnection connection) = session;
        Task echo = connection.EchoAmountsAsync();
        const int BatchSize = 500;
        var commands = TcpClientTests.Batch(1, BatchSize);
        var results = new WireResult[BatchSize];
        for (int i = 0; i < 200; i++) await client.SendBatchAsync(commands, results); // warm up JIT, pools, socket state

        const int Rounds = 500;
        long before = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < Rounds; i++) await client.SendBatchAsync(commands, results);
        long perBatch = (GC.GetTotalAllocatedBytes(precise: true) - before) / Rounds;

        // Process-wide, so the fake server and the socket machinery count too. One small object per command
        // (24 bytes at the least) would be 12,000 bytes a batch; what is left is the per-await machinery.
        Assert.True(perBatch < 2_000, $"{perBatch} bytes allocated per batch of {BatchSize}");
        Assert.Equal(BatchSize, results[^1].Id);
    }
}
