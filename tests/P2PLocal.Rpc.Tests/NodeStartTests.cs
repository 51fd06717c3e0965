namespace P2PLocal.Rpc.Tests;

/// <summary>Creating, then starting; the name check at start; waiting for a peer with a deadline; calling oneself.</summary>
public sealed class NodeStartTests
{
    [Fact]
    public async Task Functions_registered_before_start_are_served_when_the_first_peer_sees_the_node()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port);
        var firstSight = new TaskCompletionSource<IReadOnlyList<string>>(TaskCreationOptions.RunContinuationsAsynchronously);
        alice.Peers.Joined += async (_, peer) =>
        {
            try
            {
                firstSight.TrySetResult(await alice.GetMethodsAsync(peer.Name));
            }
            catch (Exception e)
            {
                firstSight.TrySetException(e);
            }
        };

        await using var bob = Node.Create(TestNetwork.Options("bob", port));
        bob.Register("greet", kwargs => "hi");
        await bob.StartAsync();

        Assert.Contains("greet", await firstSight.Task.Within());
    }

    [Fact]
    public async Task Joined_handlers_attached_before_start_see_the_peers_found_during_start()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port);
        await using var bob = Node.Create(TestNetwork.Options("bob", port));
        var joined = new TaskCompletionSource<PeerInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        bob.Peers.Joined += (_, peer) => joined.TrySetResult(peer);

        await bob.StartAsync();

        Assert.Equal("alice", (await joined.Task.Within()).Name);
    }

    [Fact]
    public async Task A_node_that_is_not_started_refuses_calls_and_a_second_start()
    {
        await using var bob = Node.Create(TestNetwork.Options("bob", TestNetwork.FreeUdpPort()));
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => bob.RequestAsync("alice", "f"));
        Assert.Contains("has not started", error.Message, StringComparison.Ordinal);
        await bob.StartAsync();
        await Assert.ThrowsAsync<InvalidOperationException>(bob.StartAsync);
    }

    [Fact]
    public async Task Starting_under_the_name_of_a_live_node_fails_with_NameConflictException_and_the_live_node_keeps_serving()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register("who", _ => "first");
        await using var alice = await TestNetwork.StartAsync("alice", port);
        await alice.Peers.WaitForAsync("bob").Within();

        // Alice may see the refused node for a moment (it said hello before it knew); its checked goodbye removes it.
        var impostorLeft = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        alice.Peers.Left += (_, peer) =>
        {
            if (peer.Name == "bob" && peer.InstanceId != bob.InstanceId)
                impostorLeft.TrySetResult();
        };

        // A window far above the 100 ms default: the first answer of a cold process on a loaded machine can take longer.
        var options = TestNetwork.Options("bob", port);
        var error = await Assert.ThrowsAsync<NameConflictException>(() => Node.StartAsync(new NodeOptions
        {
            Name = options.Name, DiscoveryPort = port, Scope = DiscoveryScope.Loopback, NameCheckWindow = TimeSpan.FromSeconds(2),
        }).Within());

        Assert.Equal("bob", error.PeerName);
        Assert.Contains(bob.ServiceEndPoint.ToString(), error.Message, StringComparison.Ordinal);
        Assert.Contains("AllowDuplicateName", error.Message, StringComparison.Ordinal);
        if (!alice.Peers.TryGet("bob", out _))
            await impostorLeft.Task.Within();
        Assert.Equal("first", await alice.RequestAsync("bob", "who").Within());
    }

    [Fact]
    public async Task AllowDuplicateName_starts_under_a_live_nodes_name_as_before()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        var options = TestNetwork.Options("bob", port);
        await using var second = await Node.StartAsync(new NodeOptions
        {
            Name = options.Name, DiscoveryPort = port, Scope = DiscoveryScope.Loopback, AllowDuplicateName = true,
        }).Within();
        Assert.NotEqual(bob.InstanceId, second.InstanceId);
    }

    [Fact]
    public async Task A_restart_starts_at_once_although_its_dead_instance_still_beacons_its_name()
    {
        var port = TestNetwork.FreeUdpPort();
        using var ghost = new BeaconSender(port);
        var deadPort = TestNetwork.FreeUdpPort(); // nothing listens on TCP there
        using var stop = new CancellationTokenSource();
        // A stale beacon of the crashed instance keeps arriving all through start.
        var haunting = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                ghost.SendBeacon("bob", deadPort, "deadbeefdeadbeef");
                await Task.Delay(5);
            }
        });

        try
        {
            await using var bob = await TestNetwork.StartAsync("bob", port).Within();
            Assert.Equal("bob", bob.Name);
        }
        finally
        {
            await stop.CancelAsync();
            await haunting;
        }
    }

    [Fact]
    public async Task WaitForAsync_with_a_timeout_names_the_peer_protocol_port_and_the_near_misses_seen()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port);
        await using var bob = await TestNetwork.StartAsync("bob", port);
        await alice.Peers.WaitForAsync("bob").Within();
        using var stranger = new BeaconSender(port);
        stranger.SendBeacon("Bob", 1, "0123456789abcdef", protocol: "othernet");

        var error = await Assert.ThrowsAsync<PeerNotFoundException>(() => alice.Peers.WaitForAsync("Bob", TimeSpan.FromMilliseconds(300)));

        Assert.Equal("Bob", error.PeerName);
        Assert.Contains("'Bob'", error.Message, StringComparison.Ordinal);
        Assert.Contains("protocol 'itecnet'", error.Message, StringComparison.Ordinal);
        Assert.Contains($"discovery port {port}", error.Message, StringComparison.Ordinal);
        Assert.Contains("'bob' (another case)", error.Message, StringComparison.Ordinal);
        Assert.Contains("'Bob' on protocol 'othernet'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WaitForAsync_with_a_timeout_completes_when_the_peer_comes()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port);
        var waiting = alice.Peers.WaitForAsync("bob", TestNetwork.Patience);
        await using var bob = await TestNetwork.StartAsync("bob", port);
        Assert.Equal(bob.InstanceId, (await waiting).InstanceId);
    }

    [Fact]
    public async Task Calling_the_nodes_own_name_says_so()
    {
        await using var alice = await TestNetwork.StartAsync("alice", TestNetwork.FreeUdpPort());
        var error = await Assert.ThrowsAsync<PeerNotFoundException>(() => alice.RequestAsync("alice", "anything"));
        Assert.Contains("this node's own name", error.Message, StringComparison.Ordinal);
    }
}
