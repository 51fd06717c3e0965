using System.Net;
using System.Net.Sockets;

namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>
/// A TCP listener on 127.0.0.1 (ephemeral port) that hands every accepted connection, with Nagle off, to its arm.
/// Disposing it stops accepting; the arm owns and closes the connections it was handed.
/// </summary>
public sealed class LoopbackAcceptor : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

    public LoopbackAcceptor(int backlog, Action<Socket> onAccepted)
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(backlog);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _ = Task.Run(() => AcceptLoopAsync(onAccepted));
    }

    public int Port { get; }

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
            onAccepted(socket);
        }
    }

    public void Dispose() => _listener.Dispose();
}
