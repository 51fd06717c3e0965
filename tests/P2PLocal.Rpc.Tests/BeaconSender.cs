using System.Net;
using System.Net.Sockets;
using System.Text;

namespace P2PLocal.Rpc.Tests;

/// <summary>Sends hand-made beacons to a loopback discovery port, as a foreign or legacy node would.</summary>
public sealed class BeaconSender : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { EnableBroadcast = true };
    private readonly IPEndPoint _target;

    public BeaconSender(int discoveryPort) => _target = new IPEndPoint(IPAddress.Parse("127.255.255.255"), discoveryPort);

    public void Send(string text) => Send(Encoding.UTF8.GetBytes(text));

    public void Send(byte[] datagram) => _socket.SendTo(datagram, _target);

    /// <summary>A full beacon of this library's format.</summary>
    public void SendBeacon(string name, int servicePort, string instance, string kind = "alive", int intervalMs = 3000, long startedMs = 1, string protocol = "itecnet") =>
        Send($"{protocol}|{name}|127.0.0.1:{servicePort}|p2p1|{instance}|{kind}|{intervalMs}|{startedMs}");

    public void Dispose() => _socket.Dispose();
}
