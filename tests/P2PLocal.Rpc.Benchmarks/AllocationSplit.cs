using System.Diagnostics;
using P2PLocal.Rpc.Benchmarks.Arms;

namespace P2PLocal.Rpc.Benchmarks;

/// <summary>
/// Splits a P2PLocal.Rpc call's allocations into client and server side: bob runs in a child process (this program
/// with <c>--serve-bob PORT</c>) and reports its own <see cref="GC.GetTotalAllocatedBytes(bool)"/> through a function,
/// so this process's delta is the client's alone and the child's delta is the server's.
/// </summary>
public static class AllocationSplit
{
    private const string AllocatedFunction = "AllocatedBytes";

    /// <summary>The child's node serving the typed service (bob serves the dynamic functions of the same names).</summary>
    public const string TypedBob = "typed-bob";

    /// <summary>The child side: serve bob and typed-bob until standard input closes.</summary>
    public static async Task ServeBobAsync(int discoveryPort)
    {
        await using var bob = await Node.StartAsync(LoopbackNodes.Options("bob", discoveryPort));
        DynamicArm.RegisterFunctions(bob);
        bob.Register(AllocatedFunction, _ => GC.GetTotalAllocatedBytes(true));
        await using var typedBob = await Node.StartAsync(LoopbackNodes.Options(TypedBob, discoveryPort));
        TypedArms.Register(typedBob);
        Console.WriteLine("ready");
        await Console.In.ReadToEndAsync();
    }

    /// <summary>Client and server bytes allocated per call for each caller kind given.</summary>
    public static async Task<Dictionary<string, (double Client, double Server)>> MeasureAsync(Settings settings,
        IReadOnlyDictionary<string, Func<Node, Func<ValueTask>>> callers)
    {
        var port = LoopbackNodes.FreeUdpPort();
        var start = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        // Under `dotnet Program.dll` the entry assembly is the first argument; under the apphost it is not needed.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
            start.ArgumentList.Add(typeof(AllocationSplit).Assembly.Location);
        start.ArgumentList.Add("--serve-bob");
        start.ArgumentList.Add(port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var child = Process.Start(start)!;
        var results = new Dictionary<string, (double, double)>();
        try
        {
            if (await child.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)) != "ready")
                throw new InvalidOperationException("The bob process did not start.");
            await using var alice = await Node.StartAsync(LoopbackNodes.Options("alice", port));
            await alice.Peers.WaitForAsync("bob").WaitAsync(TimeSpan.FromSeconds(20));
            await alice.Peers.WaitForAsync(TypedBob).WaitAsync(TimeSpan.FromSeconds(20));
            var calls = settings.SequentialCalls;
            foreach (var (name, makeCall) in callers)
            {
                var call = makeCall(alice);
                for (var i = 0; i < settings.WarmupCalls; i++)
                    await call();
                var serverBefore = await ServerAllocatedAsync(alice);
                GC.Collect();
                var clientBefore = GC.GetTotalAllocatedBytes(true);
                for (var i = 0; i < calls; i++)
                    await call();
                var client = GC.GetTotalAllocatedBytes(true) - clientBefore;
                var server = await ServerAllocatedAsync(alice) - serverBefore;
                results[name] = (client / (double)calls, server / (double)calls);
            }
        }
        finally
        {
            child.StandardInput.Close();
            if (!child.WaitForExit(10_000))
                child.Kill();
        }

        return results;
    }

    private static async Task<long> ServerAllocatedAsync(Node alice) =>
        (long)(await alice.RequestAsync("bob", AllocatedFunction))!;
}
