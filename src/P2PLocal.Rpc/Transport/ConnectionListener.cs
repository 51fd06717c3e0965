using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Diagnostics;

namespace P2PLocal.Rpc.Transport;

/// <summary>Accepts incoming TCP connections and owns the <see cref="ServerConnection"/>s made from them.</summary>
internal sealed class ConnectionListener
{
    private readonly Socket _socket;
    private readonly IRequestHost _host;
    private readonly int _maxFrameSize;
    private readonly int _maxConnections;
    private readonly ConcurrentDictionary<ServerConnection, byte> _connections = new();
    private Task _acceptLoop = Task.CompletedTask;

    public ConnectionListener(IPEndPoint bindTo, IRequestHost host, int maxFrameSize, int maxConnections)
    {
        _host = host;
        _maxFrameSize = maxFrameSize;
        _maxConnections = maxConnections;
        _socket = new Socket(bindTo.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _socket.Bind(bindTo);
            _socket.Listen(512);
        }
        catch
        {
            _socket.Dispose();
            throw;
        }

        EndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    public IPEndPoint EndPoint { get; }

    public ICollection<ServerConnection> Connections => _connections.Keys;

    public void Start() => _acceptLoop = Task.Run(AcceptLoopAsync);

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket accepted;
            try
            {
                accepted = await _socket.AcceptAsync().ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.OperationAborted or SocketError.Interrupted or SocketError.Shutdown)
            {
                return;
            }
            catch (SocketException e)
            {
                // Out of descriptors and the like: keep serving the connections we have.
                _host.Logger.AcceptFailed(e);
                await Task.Delay(50).ConfigureAwait(false);
                continue;
            }

            if (_connections.Count >= _maxConnections && !EvictOneWithoutHello())
            {
                _host.Logger.ConnectionRefused(accepted.RemoteEndPoint, _maxConnections);
                RpcMetrics.ConnectionRejected();
                accepted.Dispose();
                continue;
            }

            try
            {
                var connection = new ServerConnection(accepted, _host, _maxFrameSize);
                _connections[connection] = 0;
                _host.Logger.ConnectionOpened("inbound", connection.RemoteEndPoint);
                _ = connection.Closed.ContinueWith(closed => { _connections.TryRemove(connection, out var _); _host.Logger.ConnectionClosed("inbound", connection.RemoteEndPoint, closed.Result); }, CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
            catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
            {
                accepted.Dispose();
            }
        }
    }

    /// <summary>
    /// Makes room when every slot is taken by closing the oldest connection that has not said hello yet: callers
    /// that trickle bytes (slowloris) must not lock honest callers out until the handshake timeout reaps them.
    /// </summary>
    private bool EvictOneWithoutHello()
    {
        ServerConnection? oldest = null;
        foreach (var connection in _connections.Keys)
        {
            if (connection.Peer is null && !connection.IsClosed && (oldest is null || connection.OpenedTicks < oldest.OpenedTicks))
                oldest = connection;
        }

        if (oldest is null)
            return false;
        _host.Logger.ConnectionEvicted(oldest.RemoteEndPoint, _maxConnections);
        oldest.Close(new TimeoutException("Evicted: no hello while the connection limit was reached."));
        _connections.TryRemove(oldest, out _);
        return true;
    }

    /// <summary>Closes connections that never said hello in time, or that sat idle too long.</summary>
    public void Reap(TimeSpan handshakeTimeout, TimeSpan idleTimeout)
    {
        var now = Environment.TickCount64;
        foreach (var connection in _connections.Keys)
        {
            var quiet = TimeSpan.FromMilliseconds(now - connection.LastFrameTicks);
            if (connection.Peer is null && quiet > handshakeTimeout)
                connection.Close(new TimeoutException("No hello in time."));
            else if (connection.RunningCount == 0 && quiet > idleTimeout)
                connection.Close(new TimeoutException("Idle."));
        }
    }

    /// <summary>Stops accepting, then drains every connection.</summary>
    public async Task DisposeAsync(TimeSpan grace)
    {
        _socket.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        await Task.WhenAll(_connections.Keys.Select(c => c.DrainAsync(grace))).ConfigureAwait(false);
    }
}
