using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Testing;
using static P2PLocal.Rpc.UnitTests.NodeFacade.FacadeNodes;

namespace P2PLocal.Rpc.UnitTests.NodeFacade;

/// <summary>Calls through the facade: routing by peer name, the checks made before a call goes out, the typed and blocking forms.</summary>
[Collection(NodeFacadeGroup.Name)]
public sealed class NodeFacadeCallTests
{
    [Fact]
    public async Task Calls_go_to_the_peer_named_and_return_plain_values()
    {
        await using var pair = await PairAsync();
        await using var carol = await StartAsync("carol");
        Introduce(pair.Alice, carol);
        pair.Bob.Register("who", _ => "bob");
        carol.Register("who", _ => "carol");
        pair.Bob.Register("add", kwargs => (long)kwargs["a"]! + (long)kwargs["b"]!);

        Assert.Equal("bob", await pair.Alice.RequestAsync("bob", "who").Within());
        Assert.Equal("carol", await pair.Alice.RequestAsync("carol", "who").Within());
        Assert.Equal(5L, await pair.Alice.RequestAsync("bob", "add", Kwargs(("a", 2), ("b", 3))).Within());
        Assert.Equal(5, await pair.Alice.RequestAsync<int>("bob", "add", Kwargs(("a", 2), ("b", 3))).Within());
        Assert.Equal("bob", await pair.Alice.RequestAsync<string>("bob", "who").Within());
    }

    [Fact]
    public async Task The_blocking_forms_work_like_the_python_request_and_getmethods()
    {
        await using var pair = await PairAsync();
        pair.Bob.Register("zeta", _ => 1).Register("alpha", kwargs => kwargs["x"]);

        var (result, methods) = await Task.Run(() => (pair.Alice.Request("bob", "alpha", Kwargs(("x", "y"))), pair.Alice.GetMethods("bob"))).Within();

        Assert.Equal("y", result);
        Assert.Equal(["alpha", "zeta"], methods);
        Assert.Throws<PeerNotFoundException>(() => pair.Alice.Request("nobody", "alpha"));
        Assert.Throws<PeerNotFoundException>(() => pair.Alice.GetMethods("nobody"));
    }

    [Fact]
    public async Task Listing_a_peer_gives_names_in_order_and_descriptors_with_their_types()
    {
        await using var pair = await PairAsync();
        pair.Bob.Register(new FixedAnswers("x", "b", "a")).Register("c", _ => null);

        Assert.Equal(["a", "b", "c"], await pair.Alice.GetMethodsAsync("bob").Within());
        var functions = await pair.Alice.GetFunctionsAsync("bob").Within();
        Assert.Equal(["a", "b", "c"], functions.Select(f => f.Name));
        Assert.Equal(["string", "string", "object"], functions.Select(f => f.ReturnType));
    }

    [Fact]
    public async Task Typed_results_and_listings_are_held_to_the_callers_decode_budget()
    {
        await using var pair = await PairAsync(alice: o => new NodeOptions(o) { MaxKwargsElements = 8 });
        pair.Bob.Register("many", _ => Enumerable.Range(0, 20).Select(i => (object?)(long)i).ToArray());
        for (var i = 0; i < 10; i++)
            pair.Bob.Register($"f{i}", _ => null);

        var typed = await Assert.ThrowsAsync<P2PException>(() => pair.Alice.RequestAsync<long[]>("bob", "many").Within());
        var listing = await Assert.ThrowsAsync<P2PException>(() => pair.Alice.GetFunctionsAsync("bob").Within());

        Assert.Contains("The value is refused", typed.Message, StringComparison.Ordinal);
        Assert.Contains("The value is refused", listing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_call_is_checked_before_it_goes_out()
    {
        await using var node = await StartAsync("self");

        // Checked before anything is sent; whether the error comes from the call or from its task is not promised.
        await Assert.ThrowsAsync<ArgumentNullException>(() => node.RequestAsync(null!, "f"));
        Assert.Equal("target", (await Assert.ThrowsAsync<ArgumentException>(() => node.RequestAsync("", "f"))).ParamName);
        await Assert.ThrowsAsync<ArgumentNullException>(() => node.RequestAsync("bob", null!));
        Assert.Equal("function", (await Assert.ThrowsAsync<ArgumentException>(() => node.RequestAsync<int>("bob", ""))).ParamName);
        await Assert.ThrowsAsync<ArgumentException>(() => node.GetFunctionsAsync(""));
        await Assert.ThrowsAsync<ArgumentException>(() => node.GetMethodsAsync(""));

        var own = await Assert.ThrowsAsync<PeerNotFoundException>(() => node.RequestAsync("self", "f"));
        Assert.Equal("self", own.PeerName);
        Assert.Equal("'self' is this node's own name: a node does not call itself over the network. Call the service object directly, or call another node.", own.Message);
        var unknown = await Assert.ThrowsAsync<PeerNotFoundException>(() => node.RequestAsync("Self", "f"));
        Assert.Equal("Self", unknown.PeerName);
        Assert.Contains("node 'self'", unknown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_function_the_peer_does_not_serve_fails_as_not_found_and_an_unregistered_one_too()
    {
        await using var pair = await PairAsync();
        pair.Bob.Register("f", _ => 1);
        Assert.Equal(1L, await pair.Alice.RequestAsync("bob", "f").Within());

        Assert.True(pair.Bob.Unregister("f"));

        var error = await Assert.ThrowsAsync<MethodNotFoundException>(() => pair.Alice.RequestAsync("bob", "f").Within());
        Assert.Equal("f", error.Function);
        Assert.Equal("bob", error.PeerName);
    }

    [Fact]
    public async Task Calls_to_one_peer_share_its_open_connection_and_open_another_once_it_closed()
    {
        await using var pair = await PairAsync();
        pair.Bob.Register("f", _ => 1);

        await pair.Alice.RequestAsync("bob", "f").Within();
        var first = Assert.Single(pair.Alice.Pool.Connections);
        await pair.Alice.RequestAsync("bob", "f").Within();
        Assert.Same(first, Assert.Single(pair.Alice.Pool.Connections));

        first.Close();
        await Patience.Until(() => first.IsClosed);
        Assert.Equal(1L, await pair.Alice.RequestAsync("bob", "f").Within());
        Assert.NotSame(first, Assert.Single(pair.Alice.Pool.Connections, c => !c.IsClosed));
    }

    [Fact]
    public async Task A_connection_is_dropped_only_when_the_peer_moved_elsewhere()
    {
        await using var pair = await PairAsync();
        pair.Bob.Register("f", _ => 1);
        await pair.Alice.RequestAsync("bob", "f").Within();
        var connection = Assert.Single(pair.Alice.Pool.Connections);

        pair.Alice.DropConnection(pair.Bob.InstanceId, pair.Bob.ServiceEndPoint);
        Assert.False(connection.IsClosed);

        pair.Alice.DropConnection(pair.Bob.InstanceId, new IPEndPoint(IPAddress.Loopback, 1));
        await Patience.Until(() => connection.IsClosed);
    }

    [Fact]
    public async Task A_node_that_shares_its_name_with_an_older_live_node_sends_no_requests()
    {
        var clock = new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
        await using var older = await Node.StartAsync(new NodeOptions(Options("dup")) { TimeProvider = new FakeTimeProvider(clock), AllowDuplicateName = true });
        await using var newer = await Node.StartAsync(new NodeOptions(Options("dup")) { TimeProvider = new FakeTimeProvider(clock.AddSeconds(1)), AllowDuplicateName = true });

        await ClaimEachOtherAsync(older, newer);

        var error = await Assert.ThrowsAsync<NameConflictException>(() => newer.RequestAsync("x", "f"));
        Assert.Equal("dup", error.PeerName);
        Assert.Equal($"Node 'dup' shares its name with an older live node at {older.ServiceEndPoint}; rename one of them. This node sends no requests until the name is its own.", error.Message);
        var peer = new PeerInfo("x", "itecnet", new IPEndPoint(IPAddress.Loopback, 1), "0123456789abcdef");
        await Assert.ThrowsAsync<NameConflictException>(() => CallOnAsync(newer, peer, "f"));
        // The older node keeps the name: its calls go on (to a peer it does not know here).
        await Assert.ThrowsAsync<PeerNotFoundException>(() => older.RequestAsync("x", "f"));
    }

    [Fact]
    public async Task Of_two_nodes_of_one_name_started_at_the_same_moment_the_lower_instance_keeps_it()
    {
        var clock = new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
        await using var one = await Node.StartAsync(new NodeOptions(Options("twin")) { TimeProvider = new FakeTimeProvider(clock), AllowDuplicateName = true });
        await using var two = await Node.StartAsync(new NodeOptions(Options("twin")) { TimeProvider = new FakeTimeProvider(clock), AllowDuplicateName = true });
        await ClaimEachOtherAsync(one, two);
        var (keeper, yielder) = string.CompareOrdinal(one.InstanceId, two.InstanceId) < 0 ? (one, two) : (two, one);

        await Assert.ThrowsAsync<NameConflictException>(() => yielder.RequestAsync("x", "f"));
        await Assert.ThrowsAsync<PeerNotFoundException>(() => keeper.RequestAsync("x", "f"));
    }

    /// <summary>Hands each node the other's beacon and waits until each has checked the other's claim on its name.</summary>
    private static async Task ClaimEachOtherAsync(Node first, Node second)
    {
        foreach (var (node, other) in new[] { (first, second), (second, first) })
        {
            FacadeNodes.Observe(node, $"itecnet|{other.Name}|127.0.0.1:{other.ServiceEndPoint.Port}|p2p1|{other.InstanceId}|alive|3000|{other.SelfInfo.StartedAt.ToUnixTimeMilliseconds()}");
        }

        await Patience.Until(() => first.Peers.ClaimsOn(first.Name).Length == 1 && second.Peers.ClaimsOn(second.Name).Length == 1);
    }

    [Fact]
    public async Task A_call_to_a_peer_instance_goes_to_that_instance_and_says_when_it_was_not_sent()
    {
        await using var pair = await PairAsync();
        pair.Bob.Register("f", kwargs => kwargs["v"]);
        var bob = pair.Alice.Peers.Resolve("bob");

        Assert.Equal("x", await CallOnAsync(pair.Alice, bob, "f", Kwargs(("v", "x"))).Within());

        var restarted = bob with { InstanceId = "ffffffffffffffff" };
        var left = await Assert.ThrowsAsync<PeerNotFoundException>(() => CallOnAsync(pair.Alice, restarted, "f"));
        Assert.Equal("bob", left.PeerName);
        Assert.Equal("Peer 'bob' (instance ffffffffffffffff) left before 'f' was sent to it.", left.Message);
        var stranger = bob with { Name = "stranger" };
        await Assert.ThrowsAsync<PeerNotFoundException>(() => CallOnAsync(pair.Alice, stranger, "f"));
    }

    [Fact]
    public async Task A_call_to_a_peer_instance_that_cannot_be_reached_is_unreachable_not_lost()
    {
        await using var node = await StartAsync("caller");
        var deadPort = LoopbackPorts.FreeTcpPort();
        FacadeNodes.Observe(node, $"itecnet|ghost|127.0.0.1:{deadPort}|p2p1|0123456789abcdef|alive|3000|1");
        var ghost = node.Peers.Resolve("ghost");

        var error = await Assert.ThrowsAsync<PeerUnreachableException>(() => CallOnAsync(node, ghost, "f").Within());

        var cause = Assert.IsAssignableFrom<PeerConnectionException>(error.InnerException);
        Assert.Equal($"Peer 'ghost' could not be reached, so 'f' was not sent to it: {cause.Message}", error.Message);
        Assert.False(await node.IsAliveAsync(ghost));
    }

    [Fact]
    public async Task A_peer_instance_that_refuses_this_node_is_unreachable()
    {
        await using var pair = await PairAsync(
            alice: o => new NodeOptions(o) { Security = NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey()) },
            bob: o => new NodeOptions(o) { Security = NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey()) });
        var bob = pair.Alice.Peers.Resolve("bob");

        var error = await Assert.ThrowsAsync<PeerUnreachableException>(() => CallOnAsync(pair.Alice, bob, "f").Within());

        Assert.IsType<PeerAuthenticationException>(error.InnerException);
        Assert.False(await pair.Alice.IsAliveAsync(bob));
    }

    [Fact]
    public async Task A_live_peer_is_alive_and_so_is_one_too_busy_to_take_another_connection()
    {
        await using var pair = await PairAsync(bob: o => new NodeOptions(o) { MaxIncomingConnections = 1 });
        await using var carol = await StartAsync("carol");
        Introduce(carol, pair.Bob);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        pair.Bob.Register("hold", async (_, _) =>
        {
            entered.TrySetResult();
            await release.Task;
            return null;
        });
        Assert.True(await carol.IsAliveAsync(carol.Peers.Resolve("bob")).Within());
        var holding = carol.RequestAsync("bob", "hold");
        await entered.Task.Within();

        // Bob's only slot runs a request: he refuses Alice's connection as busy, which proves he is there.
        var busy = await Assert.ThrowsAsync<PeerBusyException>(() => pair.Alice.RequestAsync("bob", "hold").Within());
        Assert.Contains("refused the connection", busy.Message, StringComparison.Ordinal);
        Assert.True(await pair.Alice.IsAliveAsync(pair.Alice.Peers.Resolve("bob")).Within());
        // A call to the instance that the peer refuses as busy stays busy (not "unreachable"): the caller may retry it.
        await Assert.ThrowsAsync<PeerBusyException>(() => CallOnAsync(pair.Alice, pair.Alice.Peers.Resolve("bob"), "hold").Within());
        release.TrySetResult();
        await holding.Within();
    }

    [Fact]
    public async Task A_legacy_peer_is_alive_while_something_listens_at_its_endpoint()
    {
        await using var node = await StartAsync("prober");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var live = IntroduceLegacy(node, "py", ((IPEndPoint)listener.LocalEndpoint).Port);
        var dead = IntroduceLegacy(node, "gone", LoopbackPorts.FreeTcpPort());

        Assert.True(await node.IsAliveAsync(live).Within());
        Assert.False(await node.IsAliveAsync(dead).Within());
    }
}
