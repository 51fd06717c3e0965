using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;

namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>
/// The price of compatibility (issue 13): alice calls bob's dynamic functions over XML-RPC, as she would call a Python
/// p2p-local node. Bob serves with <see cref="NodeOptions.LegacyInterop"/>; a Python-style beacon
/// (<c>protocol|name|ip:port</c>) announces him as the legacy peer <c>bob-xmlrpc</c>, so every call is one HTTP/1.0
/// connection carrying an XML methodCall, as with the Python p2p-local.
/// </summary>
public sealed class LegacyArm : IArm
{
    private readonly CancellationTokenSource _stop = new();
    private Node _alice = null!;
    private Node _bob = null!;
    private Task _beacons = Task.CompletedTask;

    public string Name => "legacy";

    public int ServerPort => _bob.ServiceEndPoint.Port;

    public async Task StartAsync()
    {
        var port = LoopbackNodes.FreeUdpPort();
        _bob = await Node.StartAsync(Legacy(LoopbackNodes.Options("bob", port)));
        DynamicArm.RegisterFunctions(_bob);
        _alice = await Node.StartAsync(Legacy(LoopbackNodes.Options("alice", port)));
        _beacons = AnnounceAsync(Encoding.UTF8.GetBytes($"itecnet|bob-xmlrpc|127.0.0.1:{ServerPort}"), port);
        await _alice.Peers.WaitForAsync("bob-xmlrpc").WaitAsync(TimeSpan.FromSeconds(20));
    }

    private static NodeOptions Legacy(NodeOptions options) => new()
    {
        Name = options.Name,
        DiscoveryPort = options.DiscoveryPort,
        Scope = options.Scope,
        ShutdownGracePeriod = options.ShutdownGracePeriod,
        LegacyInterop = true,
    };

    /// <summary>The Python beacon, every second, to 127.255.255.255 (loopback only).</summary>
    private async Task AnnounceAsync(byte[] beacon, int discoveryPort)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { EnableBroadcast = true };
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
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

    public Task<ICaller> CreateCallerAsync() => Task.FromResult<ICaller>(new Caller(_alice));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _beacons;
        _stop.Dispose();
        if (_alice is not null)
            await _alice.DisposeAsync();
        if (_bob is not null)
            await _bob.DisposeAsync();
    }

    private sealed class Caller(Node alice) : ICaller
    {
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public async ValueTask<string> GreetAsync(string name) =>
            (string)(await alice.RequestAsync("bob-xmlrpc", "Greet", new Dictionary<string, object?> { ["name"] = name }))!;

        /// <summary>XML-RPC carries no 64-bit integer, so the payload's millisecond timestamp travels in seconds (it fits int32).</summary>
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public async ValueTask<Payload> EchoAsync(Payload payload)
        {
            var sent = new Payload { Id = payload.Id, Title = payload.Title, Description = payload.Description, Values = payload.Values, Tags = payload.Tags, Timestamp = payload.Timestamp / 1000 };
            var echoed = await alice.RequestAsync<Payload>("bob-xmlrpc", "Echo", new Dictionary<string, object?> { ["payload"] = sent });
            echoed.Timestamp *= 1000;
            return echoed;
        }
    }
}
