using System.Net;
using RamPay.Client;
using RamPay.Contracts;
using User = RamPay.Contracts.User;
using RamPay.Core;
using RamPay.Protocol;
using RamPay.Server.Tests;

namespace RamPay.Redis.Tests;

/// <summary>The real server with <c>RamPay:Redis:Connection</c> set: two processes on one journal, a stolen lease, shared limits.</summary>
[Trait("Category", "Integration")]
public class ServerWithRedisTests
{
    private static string[] RedisSettings(string prefix, params string[] more) =>
    [
        "Redis:Connection=" + TestRedis.Address, "Redis:KeyPrefix=" + prefix,
        "Redis:LeaseTtlMs=4000", "Redis:LeaseSafetyMarginMs=1000", "Fsync=false", .. more,
    ];

    private static async Task<(RamPayHttpClient Client, User User)> NewUserAsync(Uri server)
    {
        var http = new RamPayHttpClient(server);
        string email = $"u{Guid.NewGuid():N}@example.com";
        var user = await http.RegisterAsync(email, "correct horse battery", "Test User");
        await http.LoginAsync(email, "correct horse battery");
        return (http, user);
    }

    [Fact]
    public async Task A_second_server_on_the_same_data_waits_for_the_lease_then_takes_over_with_all_data()
    {
        await using var scope = new RedisScope();
        await using var first = await ServerProcess.StartAsync(RedisSettings(scope.Prefix));
        Assert.Contains("fencing token", first.Output, StringComparison.Ordinal);
        var (ada, user) = await NewUserAsync(first.HttpBaseAddress);
        long balance;
        using (ada)
        {
            await ada.DepositAsync(user.WalletAccountId, 12_345, "USD");
            balance = (await ada.GetAccountAsync(user.WalletAccountId)).Posted;
        }
        Assert.Equal(12_345, balance);

        await using var second = ServerProcess.OnDirectory(first.DataDirectory, null, RedisSettings(scope.Prefix));
        var ready = second.LaunchAsync();
        // It starts (HTTP listens) but must not open the journal while the first holds the lease.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!second.Output.Contains("waiting for the writer lease", StringComparison.Ordinal))
        {
            Assert.False(ready.IsCompleted, "the second server became ready while the first held the writer lease:\n" + second.Output);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "the second server never said it waits:\n" + second.Output);
            await Task.Delay(50);
        }
        await Task.Delay(2_000); // a few renewals of the first's lease later, it still waits
        Assert.False(ready.IsCompleted, "the second server became ready while the first held the writer lease:\n" + second.Output);
        Assert.True(second.IsRunning, second.Describe());
        Assert.Single(second.Output.Split('\n'), l => l.Contains("waiting for the writer lease", StringComparison.Ordinal));

        Assert.Equal(0, await first.StopAsync());
        await ready; // fails with the output if it is not ready within a minute
        Assert.Matches(@"fencing token \d+", second.Output);

        // Everything the first acknowledged is there, and the new writer writes.
        using var again = new RamPayHttpClient(second.HttpBaseAddress);
        await again.LoginAsync(user.Email, "correct horse battery");
        Assert.Equal(12_345, (await again.GetAccountAsync(user.WalletAccountId)).Posted);
        await again.DepositAsync(user.WalletAccountId, 5, "USD");
        Assert.Equal(12_350, (await again.GetAccountAsync(user.WalletAccountId)).Posted);
        Assert.Equal(0, await second.StopAsync());
    }

    [Fact]
    public async Task A_server_whose_lease_is_stolen_exits_with_70_rather_than_write()
    {
        await using var scope = new RedisScope();
        await using var server = await ServerProcess.StartAsync(RedisSettings(scope.Prefix, "Redis:LeaseName=stolen"));
        var redis = await TestRedis.SharedAsync();
        string key = scope.Prefix + "writer-lease:stolen";
        Assert.True(await redis.GetDatabase().KeyExistsAsync(key), "the server holds no lease under " + key);

        string snapshots = Path.Combine(server.DataDirectory, "snapshots");
        string[] SnapshotFiles() => Directory.Exists(snapshots) ? Directory.GetFiles(snapshots).Order().ToArray() : [];
        var snapshotsBefore = SnapshotFiles();
        await redis.GetDatabase().StringSetAsync(key, "another process token 1000000", TimeSpan.FromMinutes(1));
        int code = await server.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(code == 70, $"exit code {code}. {server.Describe()}");
        Assert.Contains("lost the writer lease", server.Output, StringComparison.Ordinal);
        // A fatal fault writes nothing more: no drain, no final snapshot (a clean stop would have written one).
        Assert.Equal(snapshotsBefore, SnapshotFiles());
        Assert.DoesNotContain("engine stopped", server.Output, StringComparison.Ordinal);
        Assert.Equal("another process token 1000000", (string?)await redis.GetDatabase().StringGetAsync(key));
    }

    [Fact]
    public async Task A_newer_fencing_token_in_the_data_directory_refuses_the_start()
    {
        await using var scope = new RedisScope();
        await using var server = await ServerProcess.StartAsync(RedisSettings(scope.Prefix));
        Assert.Equal(0, await server.StopAsync());
        string file = FencingTokenFile.PathIn(server.DataDirectory);
        FencingTokenFile.Write(file, FencingTokenFile.Read(file) + 1_000);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(server.RestartAsync);
        Assert.Contains("exited with code 1", e.Message, StringComparison.Ordinal);
        Assert.Contains("a newer writer has written this data directory", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_servers_share_one_http_limit_per_user()
    {
        await using var scope = new RedisScope();
        // Two ingress nodes (each on its own data here) that share Redis and the token signing key: a token that
        // server a issued is valid on b, and the limit's key is the token's user id on both.
        string[] settings = RedisSettings(scope.Prefix, "RateLimit:RequestsPerSecond=1", "RateLimit:Burst=6",
            "Jwt:SigningKey=0123456789abcdef0123456789abcdef-shared");
        await using var a = await ServerProcess.StartAsync(settings);
        await using var b = await ServerProcess.StartAsync(settings);
        string email = $"u{Guid.NewGuid():N}@example.com";
        using var onA = new RamPayHttpClient(a.HttpBaseAddress);
        await onA.RegisterAsync(email, "correct horse battery", "Shared");
        await onA.LoginAsync(email, "correct horse battery");
        using var onB = new RamPayHttpClient(b.HttpBaseAddress) { AccessToken = onA.AccessToken };

        int allowed = 0, limited = 0;
        for (int i = 0; i < 10; i++)
        {
            var client = i % 2 == 0 ? onA : onB;
            try
            {
                await client.GetMeAsync();
                allowed++;
            }
            catch (RamPayApiException e) when (e.StatusCode == HttpStatusCode.TooManyRequests)
            {
                limited++;
            }
            catch (RamPayApiException)
            {
                allowed++; // b's ledger does not hold a's user: answered after the limit let the request through
            }
        }
        // One bucket of 6 for both servers (plus at most one token refilled during the loop).
        Assert.InRange(allowed, 6, 7);
        Assert.Equal(10 - allowed, limited);
    }

    [Fact]
    public async Task Tcp_frames_over_the_commands_per_second_are_refused_with_rate_limited_and_the_connection_stays()
    {
        await using var scope = new RedisScope();
        await using var server = await ServerProcess.StartAsync(RedisSettings(scope.Prefix,
            "RateLimit:TcpCommandsPerSecond=1", "RateLimit:TcpBurst=10", "Tcp:MaxCommandsPerBatch=10"));
        var (http, user) = await NewUserAsync(server.HttpBaseAddress);
        using (http)
        {
            await using var tcp = await RamPayTcpClient.ConnectAsync(server.TcpEndPoint.Address.ToString(), server.TcpEndPoint.Port, http.AccessToken!);
            WireCommand Deposit(int i) => new()
            {
                Type = CommandType.Deposit, Currency = Currency.USD, Key = IdempotencyKey.FromString($"tcp-rl-{i}"),
                FromAccount = 0, ToAccount = user.WalletAccountId, Amount = 1,
            };
            var first = await tcp.SendBatchAsync(Enumerable.Range(0, 7).Select(Deposit).ToArray());
            Assert.All(first, r => Assert.Equal(ResultCode.Ok, r.Code));
            // 3 tokens left: a frame of 4 is refused whole, and applies nothing.
            var e = await Assert.ThrowsAsync<RamPayProtocolException>(async () => await tcp.SendBatchAsync(Enumerable.Range(7, 4).Select(Deposit).ToArray()));
            Assert.Equal(ProtocolErrorCode.RateLimited, e.Code);
            Assert.True(e.IsRetryable);
            Assert.False(e.ClosesConnection);
            Assert.Contains("send it again after", e.ServerMessage, StringComparison.Ordinal);
            // The connection stays: a frame within what is left passes.
            var third = await tcp.SendBatchAsync(Enumerable.Range(20, 3).Select(Deposit).ToArray());
            Assert.All(third, r => Assert.Equal(ResultCode.Ok, r.Code));
            Assert.Equal(10, (await http.GetAccountAsync(user.WalletAccountId)).Posted);
        }
    }
}
