using System.Diagnostics;

namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>The typed arm in secure mode (SharedKey): TLS 1.3 under the same frames (issue 10).</summary>
public sealed class SecureTypedArm : TypedArm
{
    public override string Name => "secure-typed";

    protected override NodeSecurity Security => SecureArms.Security;
}

/// <summary>The dynamic arm in secure mode (SharedKey).</summary>
public sealed class SecureDynamicArm : DynamicArm
{
    public override string Name => "secure-dynamic";

    protected override NodeSecurity Security => SecureArms.Security;
}

/// <summary>The secure arms' shared key, and the first-call (connection set-up) measurement.</summary>
public static class SecureArms
{
    public static readonly NodeSecurity Security = NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey());

    /// <summary>
    /// The first call on a new connection, handshake included: a fresh caller node (already seeing bob) makes one call,
    /// <paramref name="count"/> times; returns the sorted times in ms. Discovery is not timed.
    /// </summary>
    public static async Task<double[]> FirstCallMsAsync(NodeSecurity security, int count)
    {
        var port = LoopbackNodes.FreeUdpPort();
        await using var bob = await Node.StartAsync(LoopbackNodes.Options("bob", port, security));
        DynamicArm.RegisterFunctions(bob);
        var times = new double[count];
        for (var i = 0; i < count; i++)
        {
            await using var alice = await Node.StartAsync(LoopbackNodes.Options("alice" + i, port, security));
            await alice.Peers.WaitForAsync("bob").WaitAsync(TimeSpan.FromSeconds(20));
            var clock = Stopwatch.StartNew();
            await alice.RequestAsync("bob", "Greet", new Dictionary<string, object?> { ["name"] = "first" });
            times[i] = clock.Elapsed.TotalMilliseconds;
        }

        Array.Sort(times);
        return times;
    }
}
