using System.Net;
using System.Net.Sockets;

namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>
/// A TCP listener on 127.0.0.1 (ephemeral port) that hands every accepted connection, with Nagle off, to its arm,
/// and connects callers to it. Disposing it stops accepting and closes every socket it accepted or connected.
/// </summary>
public sealed class LoopbackAcceptor : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly List<Socket> _sockets = [];

    public LoopbackAcceptor(int backlog, Action<Socket> onAccepted)
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(backlog);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _ = Task.Run(() => AcceptLoopAsync(onAccepted));
    }

    public int Port { get; }

    /// <summary>A new caller connection to this listener (Nagle off), closed with the acceptor.</summary>
    public async Task<Socket> ConnectAsync()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Track(socket);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, Port));
        return socket;
    }

    private async Task AcceptLoopAsync(Action<Socket> onAccepted)
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }

            socket.NoDelay = true;
            Track(socket);
            onAccepted(socket);
        }
    }

    private void Track(Socket socket)
    {
        lock (_sockets)
            _sockets.Add(socket);
    }

    public void Dispose()
    {
        _listener.Dispose();
        lock (_sockets)
        {
            foreach (var socket in _sockets)
                socket.Dispose();
        }
    }
}
