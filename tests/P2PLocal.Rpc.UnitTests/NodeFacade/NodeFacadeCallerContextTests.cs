using P2PLocal.Rpc.Testing;
using static P2PLocal.Rpc.UnitTests.NodeFacade.FacadeNodes;

namespace P2PLocal.Rpc.UnitTests.NodeFacade;

/// <summary>
/// The blocking forms called from a thread with a <see cref="SynchronizationContext"/>: the library posts nothing back
/// to it, so a UI thread that blocks in <c>Request</c> or <c>Shutdown</c> cannot deadlock.
/// </summary>
[Collection(NodeFacadeGroup.Name)]
public sealed class NodeFacadeCallerContextTests
{
    [Fact]
    public async Task Calls_and_listings_post_nothing_to_the_callers_context()
    {
        await using var pair = await PairAsync();
        pair.Bob.Register("f", async (kwargs, token) =>
        {
            await Task.Yield(); // the reply comes later than the call: every await on the way is pending
            return kwargs["v"];
        });

        var (result, posted) = await CallerContext.RunAsync(() =>
        (
            pair.Alice.Request("bob", "f", Kwargs(("v", 1))),
            pair.Alice.GetMethods("bob"),
            pair.Alice.RequestAsync<long>("bob", "f", Kwargs(("v", 2))).GetAwaiter().GetResult()
        )).Within();

        Assert.Equal((1L, 2L), (result.Item1, result.Item3));
        Assert.Equal(["f"], result.Item2);
        Assert.True(posted.Count == 0, "posted to the caller's context from:\n" + string.Join("\n---\n", posted));
    }

    [Fact]
    public async Task A_call_to_a_peer_instance_and_a_liveness_check_post_nothing_to_the_callers_context()
    {
        await using var pair = await PairAsync();
        pair.Bob.Register("f", _ => "x");
        var bob = pair.Alice.Peers.Resolve("bob");

        // The second call finds the connection open, so its send is awaited on the caller's thread.
        var (result, posted) = await CallerContext.RunAsync(() =>
            (CallOnAsync(pair.Alice, bob, "f").GetAwaiter().GetResult(), pair.Bob.IsAliveAsync(pair.Alice.SelfInfo).GetAwaiter().GetResult(),
                CallOnAsync(pair.Alice, bob, "f").GetAwaiter().GetResult())).Within();

        Assert.Equal("x", result.Item1);
        Assert.Equal("x", result.Item3);
        Assert.True(result.Item2);
        Assert.True(posted.Count == 0, "posted to the caller's context from:\n" + string.Join("\n---\n", posted));
    }

    [Fact]
    public async Task A_stream_read_by_blocking_posts_nothing_to_the_callers_context()
    {
        await using var pair = await PairAsync();
        pair.Bob.RegisterStream("count", (_, token) => Count(3, token));

        var (items, posted) = await CallerContext.RunAsync(() => pair.Alice.RequestStreamAsync<int>("bob", "count").ToBlockingEnumerable().ToList()).Within();

        Assert.Equal([0, 1, 2], items);
        Assert.True(posted.Count == 0, "posted to the caller's context from:\n" + string.Join("\n---\n", posted));

        static async IAsyncEnumerable<object?> Count(int count, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken token = default)
        {
            for (var i = 0; i < count; i++)
            {
                await Task.Yield();
                token.ThrowIfCancellationRequested();
                yield return (long)i;
            }
        }
    }

    [Fact]
    public async Task A_legacy_call_and_a_legacy_liveness_check_post_nothing_to_the_callers_context()
    {
        await using var node = await Node.StartAsync(new NodeOptions(Options("caller")) { LegacyInterop = true });
        await using var python = new FakeXmlRpcPeer(body => body.Contains("system.listMethods", StringComparison.Ordinal)
            ? FakeXmlRpcPeer.Result(new object?[] { "f" })
            : FakeXmlRpcPeer.Value("<int>7</int>"));
        var py = IntroduceLegacy(node, "py", python.Port);

        var (result, posted) = await CallerContext.RunAsync(() =>
            (node.Request("py", "f"), node.GetMethods("py").Count, node.IsAliveAsync(py).GetAwaiter().GetResult())).Within();

        Assert.Equal((7L, 1), (result.Item1, result.Item2));
        Assert.True(result.Item3);
        Assert.True(posted.Count == 0, "posted to the caller's context from:\n" + string.Join("\n---\n", posted));
    }

    [Fact]
    public async Task Shutting_down_posts_nothing_to_the_callers_context()
    {
        await using var pair = await PairAsync();
        pair.Bob.Register("f", _ => 1);
        await pair.Alice.RequestAsync("bob", "f").Within(); // an outgoing connection for shutdown to close

        var (_, posted) = await CallerContext.RunAsync(() =>
        {
            pair.Alice.Shutdown();
            pair.Bob.Dispose();
            return true;
        }).Within();

        Assert.True(pair.Alice.IsDisposed && pair.Bob.IsDisposed);
        Assert.True(posted.Count == 0, "posted to the caller's context from:\n" + string.Join("\n---\n", posted));
    }

    [Fact]
    public async Task Starting_with_a_name_check_posts_nothing_to_the_callers_context()
    {
        var options = new NodeOptions(Options("blocking")) { NameCheckWindow = TimeSpan.FromMilliseconds(50) };

        var (node, posted) = await CallerContext.RunAsync(() => Node.StartAsync(options).GetAwaiter().GetResult()).Within();
        await using var _ = node;

        // Neither the facade's awaits (start, name check) nor discovery's loops (the advertise loop once began with a
        // Task.Yield(), which posted here) post to the caller's context.
        Assert.True(posted.Count == 0, "posted to the caller's context from:\n" + string.Join("\n---\n", posted));
        Assert.NotEqual(0, node.ServiceEndPoint.Port);
    }

    [Fact]
    public async Task A_start_cancelled_during_its_name_check_posts_nothing_to_the_callers_context()
    {
        var logs = new CapturedLogs();
        var options = new NodeOptions(Options("cancelling")) { NameCheckWindow = TimeSpan.FromMinutes(10), LoggerFactory = logs };
        using var stop = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)); // whenever it fires, the 10-minute check is running

        var (error, posted) = await CallerContext.RunAsync(() => Record.Exception(() => Node.StartAsync(options, stop.Token).GetAwaiter().GetResult())).Within();

        Assert.IsAssignableFrom<OperationCanceledException>(error);
        Assert.True(logs.Has("NodeStopped"), "the node whose start was cancelled was shut down");
        Assert.True(posted.Count == 0, "posted to the caller's context from:\n" + string.Join("\n---\n", posted));
    }
}
