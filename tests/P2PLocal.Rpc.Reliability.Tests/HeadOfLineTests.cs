using System.Collections.Concurrent;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// Issue 16: running cheap functions on the read loop, and resuming callers there, must not let one slow handler
/// or one blocked caller hold up the other calls of its connection. The tests observe the order in which things
/// happen, never how long they take; each wait has only the generous safety net.
/// </summary>
public class HeadOfLineTests
{
    private static async Task<(Node Alice, Node Bob)> PairAsync(bool inlineCompletions = false)
    {
        var port = Testing.LoopbackPorts.FreeUdpPort();
        var bob = await Node.StartAsync(Options("bob", port, inlineCompletions: false));
        var alice = await Node.StartAsync(Options("alice", port, inlineCompletions));
        await alice.Peers.WaitForAsync("bob").Within();
        return (alice, bob);
    }

    private static NodeOptions Options(string name, int port, bool inlineCompletions) => new()
    {
        Name = name,
        DiscoveryPort = port,
        Scope = DiscoveryScope.Loopback,
        ShutdownGracePeriod = TimeSpan.FromSeconds(1),
        InlineCompletions = inlineCompletions,
    };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_blocking_handler_does_not_hold_up_the_other_calls_of_its_connection(bool inlineCompletions)
    {
        var (alice, bob) = await PairAsync(inlineCompletions);
        await using var _ = alice;
        await using var __ = bob;
        var blocker = new Blocker();
        bob.Register(blocker);
        // block, quick, quickInline: only the last opted in.
        Assert.Equal([false, false, true], bob.Functions.Where(f => f.Contract is not null).OrderBy(f => f.Name, StringComparer.Ordinal).Select(f => f.RunsInline));
        var proxy = alice.Peers.Get<IBlocker>("bob");
        var completed = new ConcurrentQueue<string>();

        var block = Track("block", proxy.BlockAsync().AsTask());
        try
        {
            // Only once the blocking handler holds its thread: every quick call goes down the same connection behind it.
            await Task.Run(() => blocker.Started.Wait(Testing.Patience.Limit)).Within();
            var quick = Enumerable.Range(0, Blocker.QuickCalls)
                .Select(i => Track($"quick {i}", i % 2 == 0 ? proxy.QuickInlineAsync(i).AsTask() : proxy.QuickAsync(i).AsTask()))
                .ToArray();

            await Task.WhenAll(quick).Within();
            Assert.False(block.IsCompleted);
        }
        finally
        {
            blocker.Release.Set();
        }

        Assert.True(await block.Within());
        Assert.Equal([.. Enumerable.Repeat("quick", Blocker.QuickCalls), "block"], completed.Select(c => c.Split(' ')[0]));

        async Task<T> Track<T>(string name, Task<T> call)
        {
            var result = await call;
            completed.Enqueue(name);
            return result;
        }
    }

    [Fact]
    public async Task A_caller_that_blocks_after_its_reply_does_not_hold_up_other_replies_by_default()
    {
        var (alice, bob) = await PairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.Register(new Blocker());
        var proxy = alice.Peers.Get<IBlocker>("bob");
        // Once its reply is in, the caller makes a second call and blocks its thread until that one is answered: resumed
        // on the read loop, it would hold the loop that must read the second reply.
        var caller = Task.Run(async () =>
        {
            await proxy.QuickAsync(1);
            var second = proxy.QuickAsync(2).AsTask();
            return second.Wait(Testing.Patience.Limit);
        });

        Assert.True(await caller.Within(), "the second reply was not read while the caller blocked after its first");
    }
}

/// <summary>
/// <c>block</c> (left at the default, so on the thread pool) blocks its thread until the test releases it;
/// <c>quickInline</c> opted in to the read loop, <c>quick</c> did not.
/// </summary>
[P2PService]
public partial class Blocker
{
    public const int QuickCalls = 20;

    public ManualResetEventSlim Started { get; } = new();

    public ManualResetEventSlim Release { get; } = new();

    /// <summary>True when released within the safety net.</summary>
    /// <remarks>Blocks before it returns its task, as a synchronous handler would.</remarks>
    [P2PFunction(Name = "block")]
    public ValueTask<bool> BlockAsync()
    {
        Started.Set();
        return new(Release.Wait(2 * Testing.Patience.Limit));
    }

    [P2PFunction(Name = "quickInline", Inline = true)]
    public ValueTask<int> QuickInlineAsync(int i) => new(i);

    [P2PFunction(Name = "quick")]
    public ValueTask<int> QuickAsync(int i) => new(i);
}
