using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using RamPay.Client;
using RamPay.Contracts;
using RamPay.Core;
using RamPay.Protocol;

namespace RamPay.Load;

/// <summary>
/// TCP load: connection c authenticates as wallet c's user (a connection is one user, and may only pay from that
/// user's wallet) and runs <see cref="LoadOptions.Pipeline"/> senders, each keeping one batch in flight on the shared
/// connection, so up to that many frames are pipelined. Each batch pays from wallet c to random other wallets.
/// </summary>
internal sealed class TcpLoad(LoadOptions options, Wallet[] wallets, RunControl run)
{
    private const int MaxAttempts = 20;
    private readonly Currency _currency = Currency.Parse(options.Currency);
    private readonly ulong _nonceHi = BinaryPrimitives.ReadUInt64LittleEndian(RunNonce(options.RunId)) | 1;
    private readonly ulong _nonceLo = BinaryPrimitives.ReadUInt64LittleEndian(RunNonce(options.RunId).AsSpan(8));

    private static byte[] RunNonce(string runId) => SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("rampay-load " + runId));

    /// <summary>One per sender: connection c's slot s is at c × pipeline + s.</summary>
    public SenderStats[] Stats { get; } = Enumerable.Range(0, options.Connections * options.Pipeline).Select(_ => new SenderStats()).ToArray();

    public async Task RunAsync(CancellationToken ct)
    {
        var connections = new TcpConnectionHolder[options.Connections];
        for (int c = 0; c < connections.Length; c++)
            connections[c] = new TcpConnectionHolder(options.TcpHost, options.TcpPort, wallets[c].Token, $"rampay-load {options.RunId} c{c}");
        try
        {
            // Connect all first: a wrong address or a refused token stops the run before any load.
            foreach (TcpConnectionHolder connection in connections)
            {
                RamPayTcpClient client = await connection.GetAsync(ct);
                if (options.Batch > client.ServerLimits.MaxCommandsPerBatch)
                    throw new LoadException($"--batch {options.Batch} is above the server's max_commands_per_batch {client.ServerLimits.MaxCommandsPerBatch}");
            }
            var senders = new List<Task>();
            double framesPerSecondPerConnection = options.Rate / options.Connections / options.Batch;
            for (int c = 0; c < connections.Length; c++)
            {
                var pacer = new Pacer(run.StartTimestamp, framesPerSecondPerConnection);
                var frameTickets = new StrongBox<long>(); // a connection's frame counter, shared by its senders
                for (int slot = 0; slot < options.Pipeline; slot++)
                {
                    SenderStats s = Stats[c * options.Pipeline + slot];
                    int connection = c, slotIndex = slot;
                    senders.Add(Task.Run(() => SendAsync(connections[connection], connection, slotIndex, pacer, frameTickets, s, ct), ct));
                }
            }
            await Task.WhenAll(senders);
        }
        finally
        {
            foreach (TcpConnectionHolder connection in connections) await connection.DisposeAsync();
        }
    }

    private async Task SendAsync(TcpConnectionHolder connection, int c, int slot, Pacer pacer, StrongBox<long> frameTickets, SenderStats stats, CancellationToken ct)
    {
        var random = new Random(unchecked(options.Seed * 1_000_003 + c * 1_009 + slot));
        var commands = new WireCommand[options.Batch];
        var results = new WireResult[options.Batch];
        var to = new int[options.Batch];
        long fromAccount = wallets[c].AccountId;
        while (!ct.IsCancellationRequested)
        {
            int n = run.Take(options.Batch);
            if (n == 0) break;
            await pacer.WaitTurnAsync(ct);
            long frame = Interlocked.Increment(ref frameTickets.Value);
            for (int i = 0; i < n; i++)
            {
                int payee = random.Next(wallets.Length - 1);
                if (payee >= c) payee++; // any wallet but the payer's
                to[i] = payee;
                commands[i] = new WireCommand
                {
                    Type = CommandType.Transfer,
                    Currency = _currency,
                    Key = KeyOf(c, frame, i),
                    FromAccount = fromAccount,
                    ToAccount = wallets[payee].AccountId,
                    Amount = random.Next(1, options.MaxAmount + 1),
                };
            }
            long sentAt = Stopwatch.GetTimestamp();
            stats.Sending();
            string? failure = await SendWithRetriesAsync(connection, commands.AsMemory(0, n), results, stats, ct);
            long answeredAt = Stopwatch.GetTimestamp();
            if (failure is null) stats.RecordFrame(sentAt, answeredAt, run, commands.AsSpan(0, n), results.AsSpan(0, n), c, to.AsSpan(0, n));
            else if (failure == SenderStats.UnknownOutcome) stats.RecordUnknown(n);
            else stats.RecordRefused(failure, n);
        }
    }

    /// <summary>
    /// Sends a batch until it is answered, resending the same frame (same keys) after server_busy or a lost
    /// connection: a batch that was applied before the connection dropped comes back with the replayed flag, one
    /// that was not is applied now, so every payment is applied once. Returns null when answered, else what stayed
    /// of it: "unknown" if any attempt may have been applied, else the refusal's code.
    /// </summary>
    private static async Task<string?> SendWithRetriesAsync(TcpConnectionHolder connection, ReadOnlyMemory<WireCommand> commands, WireResult[] results, SenderStats stats, CancellationToken ct)
    {
        bool mayHaveBeenApplied = false;
        for (int attempt = 1; ; attempt++)
        {
            Exception failure;
            try
            {
                RamPayTcpClient client = await connection.GetAsync(ct);
                await client.SendBatchAsync(commands, results, ct);
                return null;
            }
            catch (RamPayProtocolException e) when (e.IsRetryable)
            {
                failure = e;
            }
            catch (RamPayConnectionException e)
            {
                mayHaveBeenApplied = true;
                failure = e;
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException && !ct.IsCancellationRequested)
            {
                failure = e; // reconnecting failed: nothing was sent on it
            }
            if (attempt == MaxAttempts || ct.IsCancellationRequested)
            {
                return mayHaveBeenApplied ? SenderStats.UnknownOutcome
                    : failure is RamPayProtocolException p ? p.CodeName : "connection_failed";
            }
            stats.Retrying();
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1_000, 5 << Math.Min(attempt, 8))), ct);
        }
    }

    /// <summary>
    /// A unique, well-spread key per payment at a few nanoseconds each (a SHA-256 per payment, as
    /// IdempotencyKey.FromString does for key strings, cost this 2-core machine a fifth of a core at 500k payments/s,
    /// taken from the server under test). The wire carries 16 opaque bytes: Hi is the run's nonce, Lo is the
    /// SplitMix64 finalizer (a bijection) of a counter unique to the payment within the run, so no two payments of
    /// a run share a key, and the server's table, which hashes Lo, sees them evenly spread. Keys are scoped to the
    /// user anyway, and every run registers new users.
    /// </summary>
    private IdempotencyKey KeyOf(int connection, long frame, int index) => KeyOf(_nonceHi, _nonceLo, options.Batch, connection, frame, index);

    internal static IdempotencyKey KeyOf(ulong nonceHi, ulong nonceLo, int batch, int connection, long frame, int index)
    {
        // Frames are numbered per connection; 16 bits of connection, 48 of payment position.
        ulong counter = ((ulong)connection << 48) | ((ulong)frame * (ulong)batch + (ulong)index) & 0xFFFF_FFFF_FFFF;
        ulong z = counter ^ nonceLo;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return new IdempotencyKey(nonceHi, z ^ (z >> 31)); // Hi is odd, so the key is never the all-zero "no key"
    }
}

/// <summary>
/// One connection's current client, shared by its senders. After a loss the first sender to notice reconnects
/// (with the same token), and the others wait for that one connection rather than each opening their own.
/// </summary>
internal sealed class TcpConnectionHolder(string host, int port, string token, string name) : IAsyncDisposable
{
    private readonly SemaphoreSlim _reconnecting = new(1, 1);
    private RamPayTcpClient? _client;

    public async ValueTask<RamPayTcpClient> GetAsync(CancellationToken ct)
    {
        RamPayTcpClient? client = Volatile.Read(ref _client);
        if (client is { IsConnected: true }) return client;
        await _reconnecting.WaitAsync(ct);
        try
        {
            client = _client;
            if (client is { IsConnected: true }) return client;
            if (client is not null) await client.DisposeAsync();
            client = await RamPayTcpClient.ConnectAsync(host, port, token, name, ct);
            Volatile.Write(ref _client, client);
            return client;
        }
        finally
        {
            _reconnecting.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is { } client) await client.DisposeAsync();
        _reconnecting.Dispose();
    }
}

/// <summary>A run cannot go on (bad option for this server, setup refused): the message says why.</summary>
internal sealed class LoadException(string message) : Exception(message);
