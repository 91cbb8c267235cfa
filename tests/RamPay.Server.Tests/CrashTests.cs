using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using RamPay.Core;
using RamPay.Protocol;
using Xunit.Abstractions;

namespace RamPay.Server.Tests;

/// <summary>The crash tests start, kill and restart servers of their own and load the machine: they run alone.</summary>
[CollectionDefinition(nameof(CrashCollection), DisableParallelization = true)]
public sealed class CrashCollection;

/// <summary>
/// The server is killed with SIGKILL in the middle of TCP load, or stopped with SIGTERM, and restarted on the same
/// data directory: nothing acknowledged is lost, and nothing is applied twice.
/// </summary>
[Collection(nameof(CrashCollection))]
public sealed class CrashTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const long InitialDeposit = ServerFixture.MaxDeposit;
    private const int Users = 3;
    private const int BatchSize = 25;
    private const int Window = 4;
    private const int StopAfterAcknowledged = 15_000;

    private ServerProcess _server = null!;
    private Api _api = null!;

    public async Task InitializeAsync()
    {
        _server = await ServerProcess.StartAsync(ServerFixture.TestSettings);
        _api = new Api(_server);
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    /// <summary>One user's stream of transfers to the next user's wallet: every batch sent, and the results of those acknowledged.</summary>
    private sealed class LoadStream(TestUser user, long payee)
    {
        public TestUser User { get; } = user;
        public long Payee { get; } = payee;
        public List<WireCommand[]> Sent { get; } = [];
        public Dictionary<int, WireResult[]> Acknowledged { get; } = [];
        /// <summary>The Error frames the server sent on this connection.</summary>
        public List<ProtocolErrorCode> Errors { get; } = [];
        /// <summary>How the connection ended: closed by the server at a frame boundary, or the exception it ended with.</summary>
        public string Ended { get; set; } = "still open";

        public WireCommand[] NextBatch(string run)
        {
            int b = Sent.Count;
            var batch = Enumerable.Range(0, BatchSize)
                .Select(i => Wire.Transfer($"{run}-{User.UserId}-{b}-{i}", User.WalletId, Payee, 1 + (b * 31 + i) % 9))
                .ToArray();
            Sent.Add(batch);
            return batch;
        }
    }

    /// <summary>
    /// Keeps <see cref="Window"/> batches in flight on one connection until the server goes away. Each batch is
    /// recorded as sent before a byte of it leaves, and as acknowledged only when its ResultBatch has arrived whole.
    /// </summary>
    private async Task RunLoadAsync(LoadStream stream, string run, Action<int> acknowledged)
    {
        var (connection, _) = await WireConnection.OpenAsync(_server.TcpEndPoint, stream.User.Token);
        await using var _ = connection;
        // Once a send fails (the server stopped reading and closed), stop sending but read on: its last answers
        // and its goodbye may still be waiting in the receive buffer.
        bool sending = true;
        async Task SendNextAsync()
        {
            if (!sending) return;
            try
            {
                await connection.SendBatchAsync((ulong)stream.Sent.Count, stream.NextBatch(run));
            }
            catch (SocketException)
            {
                sending = false;
            }
        }
        try
        {
            for (int i = 0; i < Window; i++) await SendNextAsync();
            while (await connection.TryReceiveAsync() is { } reply)
            {
                if (reply.Type == FrameType.Error)
                {
                    stream.Errors.Add(reply.Error().Code);
                    continue;
                }
                var results = reply.Results();
                lock (stream) stream.Acknowledged.Add((int)reply.RequestId, results);
                acknowledged(results.Length);
                await SendNextAsync();
            }
            stream.Ended = "closed by the server";
        }
        // The server went away under us: that is the point.
        catch (Exception e) when (e is SocketException or IOException)
        {
            stream.Ended = $"{e.GetType().Name}: {e.Message}";
        }
    }

    /// <summary>What a load run ended with: the streams, and for each re-sent unacknowledged command whether it had been applied.</summary>
    private sealed record LoadOutcome(List<LoadStream> Streams, int UnacknowledgedApplied, int UnacknowledgedNotApplied);

    /// <summary>
    /// Three users with funded wallets each pay the next over TCP, with keys the test knows, until
    /// <see cref="StopAfterAcknowledged"/> commands are acknowledged; then <paramref name="stop"/> ends the server
    /// while batches are in flight, and it is restarted on the same data directory. Checks that every acknowledged
    /// payment exists with its amount and accounts, that the balances at the restart are exactly what the acknowledged
    /// payments plus the applied unacknowledged ones imply, and, after re-sending every batch with the same keys, that
    /// each command was applied exactly once.
    /// </summary>
    private async Task<LoadOutcome> LoadStopRestartAndVerifyAsync(Func<Task> stop, string how)
    {
        var users = new List<TestUser>();
        for (int i = 0; i < Users; i++) users.Add(await _api.SignUpAsync(deposit: InitialDeposit));
        var streams = users.Select((u, i) => new LoadStream(u, users[(i + 1) % Users].WalletId)).ToList();
        string run = Api.NewKey();

        int acknowledgedCommands = 0;
        var enough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnAcknowledged(int n)
        {
            if (Interlocked.Add(ref acknowledgedCommands, n) >= StopAfterAcknowledged) enough.TrySetResult();
        }
        var load = streams.Select(s => Task.Run(() => RunLoadAsync(s, run, OnAcknowledged))).ToArray();
        var first = await Task.WhenAny(enough.Task, Task.WhenAll(load), Task.Delay(TimeSpan.FromSeconds(90)));
        Assert.True(first == enough.Task,
            $"only {Volatile.Read(ref acknowledgedCommands)} commands were acknowledged when the load stopped or the deadline passed. {_server.Describe()}");
        await stop();
        await Task.WhenAll(load);

        int sent = streams.Sum(s => s.Sent.Count), acked = streams.Sum(s => s.Acknowledged.Count);
        Assert.True(sent > acked, $"all {sent} batches were acknowledged before the {how}: nothing was in flight, so nothing was tested mid-load");
        foreach (var s in streams)
        {
            foreach (var (b, results) in s.Acknowledged)
            {
                for (int i = 0; i < results.Length; i++)
                    Assert.True(results[i] is { Code: ResultCode.Ok, Replayed: false } && results[i].Id > 0, $"batch {b} command {i} before the {how}: {Wire.Describe(results[i])}");
            }
        }

        // Restart on the same data directory.
        await _server.RestartAsync();
        _api.ForgetAdminToken();
        var tokens = new Dictionary<long, string>();
        foreach (var u in users) tokens[u.UserId] = await _api.LoginAsync(u.Email, u.Password);
        var balancesAfterRestart = new Dictionary<long, AccountState>();
        foreach (var u in users) balancesAfterRestart[u.WalletId] = await _api.StateAsync(u.WalletId);

        // Every acknowledged payment exists, with its amount and accounts, under the id it was acknowledged with.
        var payments = new Dictionary<long, JsonNode>();
        foreach (var u in users)
        {
            foreach (var p in await _api.HistoryAsync(u.WalletId, tokens[u.UserId]))
                payments[p.Long("id")] = p;
        }
        foreach (var s in streams)
        {
            foreach (var (b, results) in s.Acknowledged)
            {
                for (int i = 0; i < results.Length; i++)
                {
                    var c = s.Sent[b][i];
                    Assert.True(payments.TryGetValue(results[i].Id, out var p), $"acknowledged payment {results[i].Id} (user {s.User.UserId} batch {b} command {i}) is gone after the {how}");
                    Assert.True(p!.Str("kind") == "transfer" && p.Str("status") == "posted" && p.Long("amount") == c.Amount
                        && p.Long("from_account") == c.FromAccount && p.Long("to_account") == c.ToAccount,
                        $"acknowledged payment {results[i].Id} should be a posted transfer of {c.Amount} from {c.FromAccount} to {c.ToAccount}: {p.ToJsonString()}");
                }
            }
        }

        // Re-send every batch with the same keys: acknowledged ones replay with their ids; unacknowledged ones either
        // replay (they were applied before the stop) or apply now. Nothing fails.
        var appliedBeforeStop = users.ToDictionary(u => u.WalletId, _ => 0L); // wallet -> net effect of what was applied before the stop
        var appliedInTotal = users.ToDictionary(u => u.WalletId, _ => 0L);
        int replayedUnacknowledged = 0, newlyApplied = 0;
        foreach (var s in streams)
        {
            var (connection, _) = await WireConnection.OpenAsync(_server.TcpEndPoint, tokens[s.User.UserId]);
            await using var _ = connection;
            for (int b = 0; b < s.Sent.Count; b++)
            {
                var results = await connection.RoundTripAsync((ulong)b, s.Sent[b]);
                s.Acknowledged.TryGetValue(b, out var before);
                for (int i = 0; i < results.Length; i++)
                {
                    var r = results[i];
                    var c = s.Sent[b][i];
                    Assert.True(r.Code == ResultCode.Ok && r.Id > 0, $"re-sent batch {b} command {i} of user {s.User.UserId}: {Wire.Describe(r)}");
                    if (before is not null)
                        Assert.True(r.Replayed && r.Id == before[i].Id, $"acknowledged batch {b} command {i} should replay payment {before[i].Id}, got {Wire.Describe(r)}");
                    else if (r.Replayed) replayedUnacknowledged++;
                    else newlyApplied++;
                    appliedInTotal[c.FromAccount] -= c.Amount;
                    appliedInTotal[c.ToAccount] += c.Amount;
                    if (r.Replayed)
                    {
                        appliedBeforeStop[c.FromAccount] -= c.Amount;
                        appliedBeforeStop[c.ToAccount] += c.Amount;
                    }
                }
            }
        }

        // The balances at the restart were exactly what the acknowledged payments, plus the unacknowledged ones that
        // had been applied, imply; after the re-send they are exactly the full sums.
        foreach (var u in users)
        {
            var after = await _api.StateAsync(u.WalletId);
            long atRestart = balancesAfterRestart[u.WalletId].Posted;
            Assert.True(atRestart == InitialDeposit + appliedBeforeStop[u.WalletId],
                $"wallet {u.WalletId} after the restart holds {atRestart}, but the payments applied before the {how} imply {InitialDeposit + appliedBeforeStop[u.WalletId]}");
            Assert.True(after.Posted == InitialDeposit + appliedInTotal[u.WalletId] && after.Pending == 0,
                $"wallet {u.WalletId} after re-sending everything: {after}, expected posted {InitialDeposit + appliedInTotal[u.WalletId]}");
        }
        Assert.True(replayedUnacknowledged + newlyApplied > 0, "there were no unacknowledged commands to re-send");
        output.WriteLine($"{how}: {acked} of {sent} batches of {BatchSize} acknowledged; of the unacknowledged commands " +
            $"{replayedUnacknowledged} had been applied (replayed on re-send) and {newlyApplied} had not (applied once on re-send)");
        return new LoadOutcome(streams, replayedUnacknowledged, newlyApplied);
    }

    [Fact]
    public async Task After_SIGKILL_mid_load_every_acknowledged_payment_survives_and_resending_the_rest_applies_each_once()
    {
        var outcome = await LoadStopRestartAndVerifyAsync(_server.KillAsync, "SIGKILL");
        Assert.All(outcome.Streams, s => Assert.True(s.Errors.Count == 0, $"error frames during the load: {string.Join(", ", s.Errors)}"));
    }

    [Fact]
    public async Task After_SIGTERM_mid_load_every_frame_read_is_answered_then_shutting_down_and_nothing_unanswered_was_applied()
    {
        int exitCode = 0;
        var outcome = await LoadStopRestartAndVerifyAsync(async () => exitCode = await _server.StopAsync(), "SIGTERM");
        Assert.True(exitCode == 0, $"exit code {exitCode} after SIGTERM. {_server.Describe()}");
        // Each connection got its answers, then one shutting_down, then the close.
        foreach (var s in outcome.Streams)
            Assert.True(s.Errors.SequenceEqual([ProtocolErrorCode.ShuttingDown]), $"user {s.User.UserId}'s connection ({s.Ended}) ended with errors [{string.Join(", ", s.Errors)}], expected [ShuttingDown]");
        // A graceful stop answers every frame it read, so a frame without an answer was never applied.
        Assert.True(outcome.UnacknowledgedApplied == 0, $"{outcome.UnacknowledgedApplied} commands were applied by the stopping server but never answered");
    }

    [Fact]
    public async Task A_graceful_stop_and_restart_keeps_users_accounts_payments_and_idempotency_keys()
    {
        var alice = await _api.SignUpAsync(deposit: 50_000);
        var bob = await _api.SignUpAsync(currency: "USD");
        string payKey = Api.NewKey();
        long paid = (await _api.PayAsync(alice, bob.WalletId, 5_000, key: payKey)).Long("id");
        long hold = (await _api.PayAsync(alice, bob.WalletId, 3_000, capture: false)).Long("id");
        long captured = (await _api.PayAsync(alice, bob.WalletId, 4_000, capture: false)).Long("id");
        (await _api.PostAsync($"/v1/payments/{captured}/capture", bob.Token, new { amount = 2_500 })).Expect(HttpStatusCode.OK);
        long refund = (await _api.PostAsync($"/v1/payments/{paid}/refunds", bob.Token, new { amount = 1_000 })).Expect(HttpStatusCode.Created).Long("id");
        var (connection, _) = await WireConnection.OpenAsync(_server.TcpEndPoint, alice.Token);
        string wireKey = Api.NewKey();
        var wire = await connection.RoundTripAsync(1, Wire.Transfer(wireKey, alice.WalletId, bob.WalletId, 700));
        Assert.Equal(ResultCode.Ok, wire[0].Code);
        (await _api.PostAsync($"/v1/admin/accounts/{bob.WalletId}/freeze", await _api.AdminTokenAsync(), null)).Expect(HttpStatusCode.OK);

        var ids = new[] { paid, hold, captured, refund, wire[0].Id };
        var before = await ReadEverythingAsync(alice, bob, ids);

        // SIGTERM: the server stops on its own, with exit code 0, and closes open connections.
        int exitCode = await _server.StopAsync();
        Assert.True(exitCode == 0, $"the server exited with {exitCode} after SIGTERM. Output:\n{_server.Output}");
        await using (connection) await connection.ExpectClosingErrorAsync(ProtocolErrorCode.ShuttingDown, requestId: 0);

        await _server.RestartAsync();
        _api.ForgetAdminToken();
        alice = alice with { Token = await _api.LoginAsync(alice.Email, alice.Password) };
        bob = bob with { Token = await _api.LoginAsync(bob.Email, bob.Password) };
        var after = await ReadEverythingAsync(alice, bob, ids);
        Assert.Equal(before.Count, after.Count);
        for (int i = 0; i < before.Count; i++)
            Assert.True(JsonNode.DeepEquals(before[i], after[i]), $"changed by the restart:\nbefore {before[i].ToJsonString()}\nafter  {after[i].ToJsonString()}");

        // Keys survive too: over HTTP and over TCP the first results come back as replays.
        (await _api.PostAsync($"/v1/admin/accounts/{bob.WalletId}/unfreeze", await _api.AdminTokenAsync(), null)).Expect(HttpStatusCode.OK);
        var replay = await _api.PostAsync("/v1/payments", alice.Token, new { from_account = alice.WalletId, to_account = bob.WalletId, amount = 5_000, currency = "USD", capture = true }, payKey);
        Assert.Equal(paid, replay.Expect(HttpStatusCode.Created).Long("id"));
        Assert.Equal("true", replay.Header("Idempotent-Replayed"));
        var (again, _) = await WireConnection.OpenAsync(_server.TcpEndPoint, alice.Token);
        await using (again)
        {
            var replayed = await again.RoundTripAsync(1, Wire.Transfer(wireKey, alice.WalletId, bob.WalletId, 700));
            Assert.Equal(wire[0] with { Replayed = true }, replayed[0]);
        }
        // The open hold is still open and can be captured.
        (await _api.PostAsync($"/v1/payments/{hold}/capture", bob.Token, new { })).Expect(HttpStatusCode.OK);
    }

    private async Task<List<JsonNode>> ReadEverythingAsync(TestUser alice, TestUser bob, long[] paymentIds)
    {
        var all = new List<JsonNode>
        {
            (await _api.GetAsync("/v1/users/me", alice.Token)).Expect(HttpStatusCode.OK),
            (await _api.GetAsync("/v1/users/me", bob.Token)).Expect(HttpStatusCode.OK),
            await _api.AccountAsync(alice.WalletId),
            await _api.AccountAsync(bob.WalletId),
        };
        foreach (long id in paymentIds) all.Add(await _api.PaymentAsync(id));
        all.AddRange(await _api.HistoryAsync(alice.WalletId, alice.Token));
        return all;
    }
}
