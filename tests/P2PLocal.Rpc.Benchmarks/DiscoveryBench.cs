using System.Diagnostics;
using P2PLocal.Rpc.Benchmarks.Arms;

namespace P2PLocal.Rpc.Benchmarks;

public sealed class DiscoveryResult
{
    public List<double> SeenMs { get; } = [];
    public List<double> GoodbyeMs { get; } = [];
    public List<double> FirstCallMs { get; } = [];
    public string FirstCallKind { get; set; } = "dynamic";
}

/// <summary>
/// Discovery figures over fresh nodes on a fresh discovery port per run: when a second node starts, how long until
/// the first sees it; how long a goodbye takes to remove a peer; how long from starting a node to its first call.
/// </summary>
public static class DiscoveryBench
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(20);

    public static async Task<DiscoveryResult> RunAsync(Settings settings, Func<Node, Task<string>>? firstCall, string firstCallKind)
    {
        var result = new DiscoveryResult { FirstCallKind = firstCallKind };
        firstCall ??= async node => (string)(await node.RequestAsync("bob", "Greet", new Dictionary<string, object?> { ["name"] = "bench" }))!;
        for (var run = 0; run < Settings.DiscoveryRuns; run++)
        {
            var port = LoopbackNodes.FreeUdpPort();
            var alice = await Node.StartAsync(LoopbackNodes.Options("alice", port));
            try
            {
                // New peer seen: from bob's StartAsync to alice's WaitForAsync completing.
                var started = Stopwatch.GetTimestamp();
                var bob = await Node.StartAsync(LoopbackNodes.Options("bob", port));
                await alice.Peers.WaitForAsync("bob").WaitAsync(s_patience);
                result.SeenMs.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                RegisterGreet(bob);

                // Start to first call: a third node starts and calls bob (discovery, connect, hello, call).
                started = Stopwatch.GetTimestamp();
                await using (var carol = await Node.StartAsync(LoopbackNodes.Options("carol", port)))
                {
                    await carol.Peers.WaitForAsync("bob").WaitAsync(s_patience);
                    if (await firstCall(carol).WaitAsync(s_patience) != "Hello, bench")
                        throw new InvalidOperationException("The first call answered wrongly.");
                    result.FirstCallMs.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                }

                // Goodbye: from bob's DisposeAsync starting to alice's Left event for bob.
                var left = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                alice.Peers.Left += (_, peer) =>
                {
                    if (peer.Name == "bob")
                        left.TrySetResult();
                };
                started = Stopwatch.GetTimestamp();
                var disposing = bob.DisposeAsync().AsTask();
                await left.Task.WaitAsync(s_patience);
                result.GoodbyeMs.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                await disposing;
            }
            finally
            {
                await alice.DisposeAsync();
            }
        }

        return result;
    }

    /// <summary>Bob serves Greet the way the typed arm's service does, when there is one; dynamically otherwise.</summary>
    public static Action<Node> RegisterGreet { get; set; } = bob => bob.Register("Greet", kwargs => "Hello, " + (string?)kwargs["name"]);
}
