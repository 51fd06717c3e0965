using System.Net;
using System.Net.Sockets;

namespace P2PLocal.Rpc.Testing;

/// <summary>Ports for loopback-scope tests.</summary>
public static class LoopbackPorts
{
    /// <summary>A UDP port that is free now: the OS picks it, so parallel tests and processes do not collide.</summary>
    public static int FreeUdpPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>
    /// A loopback TCP port that is free now (the OS picks it, then it is released): a port to serve on, or, left
    /// unused, one where nothing listens and a connect is refused.
    /// </summary>
    public static int FreeTcpPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
