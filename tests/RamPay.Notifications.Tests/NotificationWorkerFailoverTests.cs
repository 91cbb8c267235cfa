using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using MimeKit;
using Npgsql;
using RamPay.Kafka.Tests;
using RamPay.Server.Tests;

namespace RamPay.Notifications.Tests;

/// <summary>
/// Two <c>rampay-worker notifications</c> processes on the PostgreSQL outbox they share with the server (a schema of the
/// test's own), mailing through the work tree's real exim4. Worker A is SIGKILLed in the middle of an SMTP conversation
/// while it holds claims on the messages still due; worker B takes them over once A's lease has run out. Every payment's
/// email reaches the mail server exactly once: none lost, none sent twice.
/// </summary>
/// <remarks>
/// Exactly once holds here because of where A is cut: A's SMTP traffic goes through <see cref="PausableProxy"/>, which
/// stops passing A's bytes to exim before the kill, so no transaction of A can complete at exim after the pause, and the
/// test waits until the transactions exim had already accepted are recorded as sent. A kill between exim's "250" for a
/// message and the outbox write of that outcome would send that message twice (at least once, docs/notifications.md).
/// </remarks>
[Trait("Category", "Integration")]
public sealed partial class NotificationWorkerFailoverTests
{
    private const int Payments = 40;
    // A's attempt hung on the paused proxy must neither time out nor see its claims lapse before the kill, which comes
    // once B has joined the group (a rebalance: seconds on a loaded machine); B then waits out the lease.
    private const int TimeoutMs = 25_000;
    private const int LeaseMs = 30_000;

    [Fact]
    public async Task A_SIGKILLed_workers_claimed_emails_are_sent_once_by_the_other_after_the_lease()
    {
        // 1. The shared outbox in a schema of its own; a server whose own consumer is off and which has no SMTP (only the
        //    workers send); a broker; worker A mailing through a proxy the test can pause, slowed so it is caught mid-way.
        var exim = Exim.Shared();
        using var schema = new OutboxSchema();
        string topic = "rampay.notify.failover";
        await using var broker = await PrivateKafkaBroker.StartAsync($"{topic}:2");
        await using var server = await ServerProcess.StartAsync($"Kafka:BootstrapServers={broker.Bootstrap}", $"Kafka:Topic={topic}", "Fraud:Enabled=false",
            "Notifications:InServerConsumer=false", $"Notifications:SharedStore={schema.ConnectionString}", $"Notifications:SharedStoreSchema={schema.Name}");
        var api = new Api(server);
        string admin = await api.AdminTokenAsync();
        async Task<string> Token(string name) => (await api.PostAsync("/v1/admin/service_tokens", admin, new { name }, key: "")).Expect(HttpStatusCode.OK).Str("access_token");
        using var proxy = new PausableProxy(exim.Host, exim.Port) { DelayPerChunk = TimeSpan.FromMilliseconds(40) };
        string[] args = ["notifications", "--kafka", broker.Bootstrap, "--group", "notifiers", "--topic", topic, "--server", server.HttpBaseAddress.ToString()];
        Dictionary<string, string> Env(int smtpPort, string token) => new()
        {
            ["RAMPAY_SERVICE_TOKEN"] = token,
            ["RAMPAY_NOTIFICATIONS__SHAREDSTORE"] = schema.ConnectionString, ["RAMPAY_NOTIFICATIONS__SHAREDSTORESCHEMA"] = schema.Name,
            ["RAMPAY_NOTIFICATIONS__SMTP__HOST"] = exim.Host, ["RAMPAY_NOTIFICATIONS__SMTP__PORT"] = smtpPort.ToString(CultureInfo.InvariantCulture),
            ["RAMPAY_NOTIFICATIONS__SMTP__FROM"] = "RamPay <noreply@rampay.test>", ["RAMPAY_NOTIFICATIONS__SMTP__SECURITY"] = "none",
            ["RAMPAY_NOTIFICATIONS__SMTP__CONNECTIONS"] = "1",
            ["RAMPAY_NOTIFICATIONS__TIMEOUTMS"] = TimeoutMs.ToString(CultureInfo.InvariantCulture), ["RAMPAY_NOTIFICATIONS__LEASEMS"] = LeaseMs.ToString(CultureInfo.InvariantCulture),
            ["RAMPAY_NOTIFICATIONS__RETRYBASEMS"] = "300",
        };
        using var a = new WorkerProcess(args, Env(proxy.Port, await Token("worker-a")));
        WorkerProcess? b = null;
        string Outputs() => $"proxy: {proxy.Describe()}\nworker a:\n{a.Tail()}\nworker b:\n{b?.Tail()}\nserver:\n{server.Describe()}";
        try
        {
            if (!await WorkerProcess.AllJoinedAsync(TimeSpan.FromSeconds(90), a)) Assert.Fail($"worker a never joined its group. {Outputs()}");

            // 2. Payments: bob's "money received" emails are queued in the shared outbox and A sends them one at a time.
            var (alice, bob) = await api.PairAsync(1_000_000);
            var ids = new List<long>();
            for (int i = 0; i < Payments; i++) ids.Add((await api.PayAsync(alice, bob.WalletId, 100 + i)).Long("id"));
            int Received(long id) => exim.To(bob.Email).Count(m => PaymentOf(m) == id);
            await WaitUntil(() => ids.Count(id => Received(id) > 0) >= 3, "worker a's first emails", Outputs);

            // 3. Pause A's SMTP traffic: A stays mid-conversation on one message, holding claims on the others due. Worker B
            //    (straight to exim) joins the group; the outcomes exim already accepted from A get recorded meanwhile.
            proxy.Paused = true;
            b = new WorkerProcess(args, Env(exim.Port, await Token("worker-b")));
            if (!await WorkerProcess.AllJoinedAsync(TimeSpan.FromSeconds(90), b)) Assert.Fail($"worker b never joined its group. {Outputs()}");
            await WaitUntil(() => proxy.HeldBytes > 0, "worker a writing to the paused SMTP connection", Outputs);
            await Task.Delay(1_500);
            int sentBeforeKill = ids.Count(id => Received(id) > 0);
            Assert.True(sentBeforeKill < Payments, $"all {sentBeforeKill} emails went out before the kill: the test proves nothing");

            // 4. SIGKILL worker A mid-dispatch: no drain; its claims outlive it until their lease runs out (B, idle, holds none).
            a.Kill();
            long claimed = schema.ClaimedPending();
            Assert.True(claimed > 0, $"no pending message is claimed right after the kill (worker a held claims). {Outputs()}");

            // 5. B takes A's partitions (session timeout) and, once the lease has passed, A's claimed messages: every
            //    payment's email arrives.
            await WaitUntil(() => ids.All(id => Received(id) > 0), "every payment's email after the kill", Outputs, seconds: 120);

            // 6. Exactly once: after a settling pause no email of bob's is there twice (the payments' and the deposit's),
            //    the outbox counts as many sent as exim holds, and nothing is left pending.
            await Task.Delay(2_000);
            var mails = exim.To(bob.Email);
            var twice = mails.GroupBy(PaymentOf).Where(g => g.Count() != 1).Select(g => $"payment {g.Key} x{g.Count()}").ToList();
            Assert.True(twice.Count == 0, $"emails received more than once: {string.Join(", ", twice)}");
            Assert.All(ids, id => Assert.Equal(1, Received(id)));
            Assert.Equal(mails.Count, schema.SentTo(bob.Email));
            await WaitUntil(() => schema.Pending() == 0, "nothing left pending in the outbox", Outputs);
        }
        finally
        {
            b?.Dispose();
        }
    }

    private static long PaymentOf(MimeMessage m) => PaymentIdIn().Match(m.TextBody ?? "") is { Success: true } match
        ? long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : -1;

    [GeneratedRegex(@"payment (\d+)")]
    private static partial Regex PaymentIdIn();

    private static async Task WaitUntil(Func<bool> done, string what, Func<string> context, int seconds = 90)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!done())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for {what}. {context()}");
            await Task.Delay(100);
        }
    }

    /// <summary>The shared outbox's schema on the test PostgreSQL (<c>RAMPAY_TEST_POSTGRES</c>), dropped at the end.</summary>
    private sealed class OutboxSchema : IDisposable
    {
        public string ConnectionString { get; } = Environment.GetEnvironmentVariable("RAMPAY_TEST_POSTGRES") is { Length: > 0 } s ? s
            : "Host=127.0.0.1;Port=5432;Username=rampay;Password=rampay;Database=rampay_test";
        public string Name { get; } = "nf_" + Guid.NewGuid().ToString("N")[..16];

        public long ClaimedPending() => Scalar($"SELECT count(*) FROM {Name}.notification_messages WHERE status = 'pending' AND claimed_until_ms > (extract(epoch from clock_timestamp()) * 1000)::bigint");
        public long Pending() => Scalar($"SELECT count(*) FROM {Name}.notification_messages WHERE status = 'pending'");
        public long SentTo(string email) => Scalar($"SELECT count(*) FROM {Name}.notification_messages WHERE status = 'sent' AND channel = 'email' AND destination = '{email.Replace("'", "''", StringComparison.Ordinal)}'");

        private long Scalar(string sql)
        {
            using var c = new NpgsqlConnection(ConnectionString);
            c.Open();
            using var cmd = new NpgsqlCommand(sql, c);
            return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
        }

        public void Dispose()
        {
            using var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ConnectionString) { Pooling = false }.ConnectionString);
            c.Open();
            using var cmd = new NpgsqlCommand($"DROP SCHEMA IF EXISTS {Name} CASCADE", c);
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>
    /// A TCP proxy to the mail server that can stop passing the client's bytes on (<see cref="Paused"/>): a transaction
    /// cut there never completes at the server, which drops it when the connection closes. The server's bytes always
    /// pass. Held bytes are never sent later.
    /// </summary>
    private sealed class PausableProxy : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly string _host;
        private readonly int _port;
        private readonly List<TcpClient> _connections = [];
        private long _held, _forwarded;

        public PausableProxy(string host, int port)
        {
            _host = host;
            _port = port;
            _listener.Start();
            _ = Task.Run(AcceptAsync);
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
        public volatile bool Paused;
        public TimeSpan DelayPerChunk { get; init; }
        public long HeldBytes => Interlocked.Read(ref _held);
        public string Describe() => $"{Interlocked.Read(ref _forwarded)} bytes forwarded, {HeldBytes} held, paused {Paused}";

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client, upstream = new();
                try
                {
                    client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    await upstream.ConnectAsync(_host, _port, _stop.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    upstream.Dispose();
                    if (_stop.IsCancellationRequested) return;
                    continue;
                }
                lock (_connections) _connections.AddRange([client, upstream]);
                _ = PumpAsync(client.GetStream(), upstream.GetStream(), fromClient: true);
                _ = PumpAsync(upstream.GetStream(), client.GetStream(), fromClient: false);
            }
        }

        private async Task PumpAsync(NetworkStream from, NetworkStream to, bool fromClient)
        {
            var buffer = new byte[16 * 1024];
            try
            {
                while (true)
                {
                    int n = await from.ReadAsync(buffer, _stop.Token);
                    if (n == 0) break;
                    if (fromClient)
                    {
                        if (Paused)
                        {
                            Interlocked.Add(ref _held, n);
                            continue; // held for ever: the transaction never completes at the server
                        }
                        if (DelayPerChunk > TimeSpan.Zero) await Task.Delay(DelayPerChunk, _stop.Token);
                        if (Paused) { Interlocked.Add(ref _held, n); continue; }
                        Interlocked.Add(ref _forwarded, n);
                    }
                    await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
            {
            }
            // A closed side closes the other: the server sees the client's disconnect and drops an unfinished transaction.
            try { to.Socket.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            lock (_connections) foreach (var c in _connections) c.Dispose();
            _stop.Dispose();
        }
    }
}
