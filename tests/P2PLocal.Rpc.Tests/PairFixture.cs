namespace P2PLocal.Rpc.Tests;

/// <summary>Two started nodes, "alice" calling "bob", on a discovery port of their own.</summary>
public sealed class NodePair : IAsyncDisposable
{
    private NodePair(Node alice, Node bob)
    {
        Alice = alice;
        Bob = bob;
    }

    public Node Alice { get; }

    public Node Bob { get; }

    public static async Task<NodePair> StartAsync(Func<NodeOptions, NodeOptions>? bobOptions = null, Func<NodeOptions, NodeOptions>? aliceOptions = null)
    {
        var port = TestNetwork.FreeUdpPort();
        var bob = await Node.StartAsync((bobOptions ?? (o => o))(TestNetwork.Options("bob", port)));
        var alice = await Node.StartAsync((aliceOptions ?? (o => o))(TestNetwork.Options("alice", port)));
        await alice.Peers.WaitForAsync("bob").Within();
        return new NodePair(alice, bob);
    }

    public async ValueTask DisposeAsync()
    {
        await Alice.DisposeAsync();
        await Bob.DisposeAsync();
    }
}

/// <summary>Copies options with changes (NodeOptions is init-only).</summary>
public static class NodeOptionsExtensions
{
    public static NodeOptions With(this NodeOptions o, int? maxFrameSize = null, TimeSpan? requestTimeout = null, int? maxConcurrent = null,
        TimeSpan? grace = null) => new()
    {
        Name = o.Name,
        Protocol = o.Protocol,
        DiscoveryPort = o.DiscoveryPort,
        Scope = o.Scope,
        AdvertiseInterval = o.AdvertiseInterval,
        MaxFrameSize = maxFrameSize ?? o.MaxFrameSize,
        RequestTimeout = requestTimeout ?? o.RequestTimeout,
        MaxConcurrentRequestsPerConnection = maxConcurrent ?? o.MaxConcurrentRequestsPerConnection,
        ShutdownGracePeriod = grace ?? o.ShutdownGracePeriod,
    };
}
