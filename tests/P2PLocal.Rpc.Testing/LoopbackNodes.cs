namespace P2PLocal.Rpc.Testing;

/// <summary>The options of a test node: loopback discovery scope (never the LAN) on the test's own discovery port.</summary>
public static class LoopbackNodes
{
    /// <summary>Loopback options for <paramref name="name"/>; change one with <c>new NodeOptions(options) { ... }</c>.</summary>
    public static NodeOptions Options(string name, int discoveryPort, TimeSpan? interval = null) => new()
    {
        Name = name,
        DiscoveryPort = discoveryPort,
        Scope = DiscoveryScope.Loopback,
        AdvertiseInterval = interval ?? TimeSpan.FromSeconds(3),
        ShutdownGracePeriod = TimeSpan.FromSeconds(2),
    };
}
