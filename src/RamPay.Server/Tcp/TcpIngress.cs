using System.Net;
using System.Net.Sockets;
using RamPay.Server.Http;

namespace RamPay.Server.Tcp;

/// <summary>
/// The binary protocol's listener (docs/protocol.md): accepts connections up to the configured maximum and runs a
/// <see cref="TcpConnection"/> for each. Stopping closes the listener, stops reading every connection, lets each
/// answer what it already submitted, then closes them.
/// </summary>
public sealed class TcpIngress(Platform platform, ILogger logger)
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<TcpConnection, Task> _connections = new();
    private readonly CancellationTokenSource _stopping = new();
    private Socket? _listener;
    private Task? _acceptLoop;

    public EndPoint? LocalEndPoint => _listener?.LocalEndPoint;
    public int ConnectionCount => _connections.Count;

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
    public async Task StopAsync()
    {
        await _stopping.CancelAsync();
        _listener?.Dispose();
        if (_acceptLoop is not null) await _acceptLoop;
        await Task.WhenAll(_connections.Values).WaitAsync(TimeSpan.FromSeconds(30)).ContinueWith(_ => { }, TaskScheduler.Default);
    }
}
