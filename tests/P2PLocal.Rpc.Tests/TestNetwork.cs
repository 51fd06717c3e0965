using System.Net;
using System.Net.Sockets;

namespace P2PLocal.Rpc.Tests;

/// <summary>Loopback-scope nodes on a discovery port no other test uses.</summary>
public static class TestNetwork
{
    /// <summary>Generous safety net for waits on events (the one <c>Within()</c> uses); tests finish long before it.</summary>
    public static readonly TimeSpan Patience = P2PLocal.Rpc.Testing.Patience.Limit;

    /// <summary>A UDP port that is free now: the OS picks it, so parallel tests and processes do not collide.</summary>
    public static int FreeUdpPort() => P2PLocal.Rpc.Testing.LoopbackPorts.FreeUdpPort();

    public static NodeOptions Options(string name, int discoveryPort, TimeSpan? interval = null) =>
        P2PLocal.Rpc.Testing.LoopbackNodes.Options(name, discoveryPort, interval);

    public static Task<Node> StartAsync(string name, int discoveryPort, TimeSpan? interval = null) =>
        Node.StartAsync(Options(name, discoveryPort, interval));

}
