using System.Net;
using System.Net.Sockets;
using RamPay.Server.Hosting;
using RamPay.Server.Http;

namespace RamPay.Server.Tcp;

/// <summary>
/// The binary protocol's listener (docs/protocol.md): accepts connections up to the configured maximum and runs a
/// <see cref="TcpConnection"/> for each. Stopping closes the listener, stops reading every connection, lets each
/// answer what it already submitted, then closes them. A hosted service: it listens once the engine is ready for
/// commands (StartedAsync, after the bootstrap and the sinks) and stops in StopAsync, after HTTP and before the engine
/// drains (<c>RamPay:Tcp:Port</c> -1: no listener).
/// </summary>
public sealed class TcpIngress(Platform platform, ILogger<TcpIngress> logger) : LifecycleService
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<TcpConnection, Task> _connections = new();
    private readonly CancellationTokenSource _stopping = new();
    private Socket? _listener;
    private Task? _acceptLoop;

    public EndPoint? LocalEndPoint => _listener?.LocalEndPoint;
    public int ConnectionCount => _connections.Count;

    public override Task StartedAsync(CancellationToken cancellationToken)
    {
        var o = platform.Options.Tcp;
        if (o.Port < 0) return Task.CompletedTask;
        Start(new IPEndPoint(IPAddress.Parse(o.Host), o.Port));
        logger.LogInformation("tcp listening on {TcpEndPoint}", LocalEndPoint);
        return Task.CompletedTask;
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_listener is null) return;
        await StopListeningAsync();
        logger.LogInformation("tcp stopped: every frame read was answered");
    }

    public void Start(IPEndPoint endpoint)
    {
        var listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(endpoint);
        listener.Listen(512);
        _listener = listener;
        _acceptLoop = Task.Run(AcceptLoop);
    }

    private async Task AcceptLoop()
    {
        var listener = _listener!;
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException e)
            {
                logger.LogWarning(e, "accept failed");
                continue;
            }
            socket.NoDelay = true;
            if (_connections.Count >= platform.Options.Tcp.MaxConnections)
            {
                await TcpConnection.RefuseAsync(socket, "the server has its configured maximum of connections");
                continue;
            }
            var connection = new TcpConnection(socket, platform, logger, _stopping.Token);
            _connections[connection] = Task.Run(async () =>
            {
                try
                {
                    await connection.RunAsync();
                }
                finally
                {
                    _connections.TryRemove(connection, out _);
                }
            });
        }
    }

    /// <summary>Stops accepting and reading; waits (bounded) for every connection to answer what it submitted.</summary>
    public async Task StopListeningAsync()
    {
        await _stopping.CancelAsync();
        _listener?.Dispose();
        if (_acceptLoop is not null) await _acceptLoop;
        await Task.WhenAll(_connections.Values).WaitAsync(TimeSpan.FromSeconds(30)).ContinueWith(_ => { }, TaskScheduler.Default);
    }
}
