using System.Net;
using System.Net.Sockets;
using MessagePack;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>Loopback-scope nodes on discovery ports no other test uses, and the waits every test shares.</summary>
public static class Net
{
    /// <summary>Safety net for waits on events; a healthy machine finishes long before it.</summary>
    public static readonly TimeSpan Patience = P2PLocal.Rpc.Testing.Patience.Limit;

    /// <summary>A UDP port that is free now (the OS picks it), so parallel tests and processes do not collide.</summary>
    public static int FreeUdpPort() => P2PLocal.Rpc.Testing.LoopbackPorts.FreeUdpPort();

    /// <summary>Loopback options; every limit not given keeps the library default.</summary>
    public static NodeOptions Options(string name, int discoveryPort, int? maxFrameSize = null, TimeSpan? handshakeTimeout = null,
        TimeSpan? idleTimeout = null, int? maxIncoming = null, int? maxConcurrent = null, int? maxPeers = null,
        TimeSpan? requestTimeout = null, TimeSpan? interval = null, TimeSpan? grace = null, bool legacyInterop = false)
    {
        var defaults = new NodeOptions { Name = name };
        return new NodeOptions
        {
            Name = name,
            DiscoveryPort = discoveryPort,
            Scope = DiscoveryScope.Loopback,
            AdvertiseInterval = interval ?? TimeSpan.FromSeconds(1),
            ShutdownGracePeriod = grace ?? TimeSpan.FromSeconds(2),
            MaxFrameSize = maxFrameSize ?? defaults.MaxFrameSize,
            HandshakeTimeout = handshakeTimeout ?? defaults.HandshakeTimeout,
            IdleConnectionTimeout = idleTimeout ?? defaults.IdleConnectionTimeout,
            MaxIncomingConnections = maxIncoming ?? defaults.MaxIncomingConnections,
            MaxConcurrentRequestsPerConnection = maxConcurrent ?? defaults.MaxConcurrentRequestsPerConnection,
            MaxPeers = maxPeers ?? defaults.MaxPeers,
            RequestTimeout = requestTimeout ?? defaults.RequestTimeout,
            LegacyInterop = legacyInterop,
        };
    }

    public static Task<Node> StartAsync(string name, int discoveryPort) => Node.StartAsync(Options(name, discoveryPort));

    public static Task<Node> StartAsync(NodeOptions options) => Node.StartAsync(options);

    /// <summary>A victim node serving <c>echo</c>, and a well-behaved caller that already sees it.</summary>
    public static async Task<(Node Victim, Node Caller)> VictimAndCallerAsync(NodeOptions victimOptions)
    {
        var victim = await StartAsync(victimOptions);
        victim.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        var caller = await StartAsync(Options("caller-" + Guid.NewGuid().ToString("N")[..6], victimOptions.DiscoveryPort));
        await caller.Peers.WaitForAsync(victim.Name).Within();
        return (victim, caller);
    }

    /// <summary>One echo call from the well-behaved caller: the proof that the node under attack still serves.</summary>
    public static async Task AssertServesAsync(Node caller, string victim)
    {
        var value = "ping-" + Guid.NewGuid().ToString("N")[..8];
        var result = await caller.RequestAsync(victim, "echo", new Dictionary<string, object?> { ["value"] = value }).Within();
        Assert.Equal(value, result);
    }

    public static Dictionary<string, object?> Kw(string key, object? value) => new() { [key] = value };

    /// <summary>MessagePack bytes written by <paramref name="write"/>.</summary>
    public static byte[] Pack(Action<MessagePackWriterBox> write)
    {
        var box = new MessagePackWriterBox();
        write(box);
        return box.ToArray();
    }
}
