using System.Runtime.CompilerServices;
using System.Net;
using System.Net.Sockets;

namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>Two loopback-scope P2PLocal.Rpc nodes, alice calling bob; every caller shares alice's one connection.</summary>
public abstract class P2PArm : IArm
{
    public abstract string Name { get; }

    public int ServerPort => Bob.ServiceEndPoint.Port;

    protected Node Alice { get; private set; } = null!;

    protected Node Bob { get; private set; } = null!;

    public async Task StartAsync()
    {
        var port = LoopbackNodes.FreeUdpPort();
        Bob = await Node.StartAsync(LoopbackNodes.Options("bob", port, Security));
        Register(Bob);
        Alice = await Node.StartAsync(AliceOptions(LoopbackNodes.Options("alice", port, Security)));
        await Alice.Peers.WaitForAsync("bob").WaitAsync(TimeSpan.FromSeconds(20));
    }

    protected abstract void Register(Node bob);

    /// <summary>The caller's options; an arm may change them.</summary>
    protected virtual NodeOptions AliceOptions(NodeOptions options) => options;

    /// <summary>The nodes' security: open, unless a secure arm says otherwise (issue 10).</summary>
    protected virtual NodeSecurity Security => NodeSecurity.Open;

    public abstract Task<ICaller> CreateCallerAsync();

    public async ValueTask DisposeAsync()
    {
        if (Alice is not null)
            await Alice.DisposeAsync();
        if (Bob is not null)
            await Bob.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}

/// <summary><c>RequestAsync("bob", "Greet", kwargs)</c>: kwargs dictionaries in, plain values out.</summary>
public class DynamicArm : P2PArm
{
    public override string Name => "dynamic";

    protected override void Register(Node bob) => RegisterFunctions(bob);

    public static void RegisterFunctions(Node bob)
    {
        bob.Register("Greet", kwargs => "Hello, " + (string?)kwargs["name"]);
        // The payload arrives as plain values (an object?[] for a keyed [MessagePackObject]) and goes back as it came.
        bob.Register("Echo", kwargs => kwargs["payload"]);
    }

    public override Task<ICaller> CreateCallerAsync() => Task.FromResult<ICaller>(new Caller(Alice));

    private sealed class Caller(Node alice) : ICaller
    {
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public async ValueTask<string> GreetAsync(string name) =>
            (string)(await alice.RequestAsync("bob", "Greet", new Dictionary<string, object?> { ["name"] = name }))!;

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]

        public async ValueTask<Payload> EchoAsync(Payload payload) =>
            await alice.RequestAsync<Payload>("bob", "Echo", new Dictionary<string, object?> { ["payload"] = payload });
    }
}

/// <summary>Loopback discovery settings shared by the arms and the discovery measurements.</summary>
public static class LoopbackNodes
{
    public static int FreeUdpPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    public static NodeOptions Options(string name, int discoveryPort, NodeSecurity? security = null) => new()
    {
        Name = name,
        DiscoveryPort = discoveryPort,
        Scope = DiscoveryScope.Loopback,
        ShutdownGracePeriod = TimeSpan.FromSeconds(1),
        // Measures discovery and calls, not the start-up name check (a fixed NodeOptions.NameCheckWindow wait of its own).
        AllowDuplicateName = true,
        Security = security ?? NodeSecurity.Open,
    };
}
