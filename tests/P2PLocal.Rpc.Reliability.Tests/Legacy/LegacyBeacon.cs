using System.Net;
using System.Net.Sockets;
using System.Text;

namespace P2PLocal.Rpc.Reliability.Tests.Legacy;

/// <summary>Announces a node the way the Python p2p-local does (<c>protocol|name|ip:port</c>) until disposed, on loopback.</summary>
public sealed class LegacyBeacon : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    private LegacyBeacon(byte[] beacon, int discoveryPort) => _loop = SendAsync(beacon, discoveryPort);

    public static LegacyBeacon Start(string name, int servicePort, int discoveryPort, string protocol = "itecnet", string ip = "127.0.0.1") =>
        new(Encoding.UTF8.GetBytes($"{protocol}|{name}|{ip}:{servicePort}"), discoveryPort);

    private async Task SendAsync(byte[] beacon, int discoveryPort)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { EnableBroadcast = true };
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
        try
        {
            do
                await socket.SendToAsync(beacon, new IPEndPoint(IPAddress.Parse("127.255.255.255"), discoveryPort));
            while (await timer.WaitForNextTickAsync(_stop.Token));
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
