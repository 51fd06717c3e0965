using System.Net;
using System.Net.Sockets;
using System.Text;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>A peer played by the test: it beacons a name on loopback and answers hellos, and nothing else.</summary>
public sealed class FakePeer : IDisposable
{
    private readonly Socket _listener;
    private readonly string _instance = Guid.NewGuid().ToString("N")[..16];

    private FakePeer(Socket listener) => _listener = listener;

    public static Task<FakePeer> StartAsync(string name, int discoveryPort)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var fake = new FakePeer(listener);
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { EnableBroadcast = true };
        udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var beacon = $"itecnet|{name}|{listener.LocalEndPoint}|p2p1|{fake._instance}|hello|60000|{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}";
        udp.SendTo(Encoding.UTF8.GetBytes(beacon), new IPEndPoint(IPAddress.Parse("127.255.255.255"), discoveryPort));
        return Task.FromResult(fake);
    }

    public async Task<RawPeer> AcceptWithHelloAsync()
    {
        var peer = RawPeer.Accepted(await _listener.AcceptAsync().Within());
        Assert.NotNull(await peer.ReadFrameAsync());
        await peer.SendFrameAsync(Net.Pack(b => b.Array(5).Number(4).Number(1).Str("fake").Str(_instance).Number(4 * 1024 * 1024)));
        return peer;
    }

    public void Dispose() => _listener.Dispose();
}
