using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;

namespace P2PLocal.Rpc.Tests;

public class DiscoveryTests
{
    [Fact]
    public async Task Started_nodes_see_each_other_without_waiting_for_an_interval()
    {
        var port = TestNetwork.FreeUdpPort();
        // An hour-long interval: only the hello/answer exchange can make them meet.
        var hour = TimeSpan.FromHours(1);
        await using var bob = await TestNetwork.StartAsync("bob", port, hour);
        await using var alice = await TestNetwork.StartAsync("alice", port, hour);

        var seenByAlice = await alice.Peers.WaitForAsync("bob").Within();
        var seenByBob = await bob.Peers.WaitForAsync("alice").Within();

        Assert.Equal(bob.ServiceEndPoint, seenByAlice.EndPoint);
        Assert.Equal(bob.InstanceId, seenByAlice.InstanceId);
        Assert.Equal(alice.ServiceEndPoint, seenByBob.EndPoint);
        Assert.False(seenByAlice.IsLegacy);
    }

    [Fact]
    public async Task Goodbye_removes_peer_before_next_beacon()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port, TimeSpan.FromHours(1));
        var bob = await TestNetwork.StartAsync("bob", port, TimeSpan.FromHours(1));
        await alice.Peers.WaitForAsync("bob").Within();
        var left = new TaskCompletionSource<PeerInfo>();
        alice.Peers.Left += (_, peer) => left.TrySetResult(peer);

        await bob.DisposeAsync();

        Assert.Equal("bob", (await left.Task.Within()).Name);
        Assert.False(alice.Peers.TryGet("bob", out _));
        await Assert.ThrowsAsync<PeerNotFoundException>(() => alice.RequestAsync("bob", "anything"));
    }

    [Fact]
    public async Task Silent_peer_expires_after_about_three_missed_intervals()
    {
        var port = TestNetwork.FreeUdpPort();
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        await using var alice = await Node.StartAsync(new NodeOptions
        {
            Name = "alice",
            DiscoveryPort = port,
            Scope = DiscoveryScope.Loopback,
            AdvertiseInterval = TimeSpan.FromSeconds(1),
            TimeProvider = clock,
        });
        using var ghost = new BeaconSender(port);
        ghost.SendBeacon("ghost", 9, "ghost-instance", intervalMs: 1000);
        await alice.Peers.WaitForAsync("ghost").Within();
        var left = new TaskCompletionSource<PeerInfo>();
        alice.Peers.Left += (_, peer) => left.TrySetResult(peer);

        clock.Advance(TimeSpan.FromSeconds(3)); // three intervals: still within 3.5
        Assert.True(alice.Peers.TryGet("ghost", out _));
        clock.Advance(TimeSpan.FromSeconds(1)); // four: expired at this tick

        Assert.Equal("ghost", (await left.Task.Within()).Name);
        Assert.False(alice.Peers.TryGet("ghost", out _));
    }

    [Fact]
    public async Task Restarted_peer_on_a_new_port_replaces_the_dead_instance()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port, TimeSpan.FromHours(1));
        // The old bob: an instance whose port no longer serves (it died without a goodbye).
        var deadPort = FreeTcpPort();
        using var oldBob = new BeaconSender(port);
        oldBob.SendBeacon("bob", deadPort, "old-bob-instance");
        var old = await alice.Peers.WaitForAsync("bob").Within();
        Assert.Equal(deadPort, old.EndPoint.Port);
        var joined = new TaskCompletionSource<PeerInfo>();
        alice.Peers.Joined += (_, peer) => { if (peer.Name == "bob") joined.TrySetResult(peer); };

        await using var bob = await TestNetwork.StartAsync("bob", port, TimeSpan.FromHours(1));
        bob.Register("ping", _ => "pong");

        var replaced = await joined.Task.Within();
        Assert.Equal(bob.InstanceId, replaced.InstanceId);
        Assert.True(alice.Peers.TryGet("bob", out var current));
        Assert.Equal(bob.ServiceEndPoint, current.EndPoint);
        Assert.Equal("pong", await alice.RequestAsync("bob", "ping").Within());
    }

    [Fact]
    public async Task Nodes_of_another_protocol_are_invisible()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port);
        await using var stranger = await Node.StartAsync(new NodeOptions
        {
            Name = "stranger",
            DiscoveryPort = port,
            Scope = DiscoveryScope.Loopback,
            Protocol = "othernet",
        });
        await using var bob = await TestNetwork.StartAsync("bob", port);

        // The stranger's hello reached alice's socket before bob's (both went out on loopback in that order),
        // so once alice has seen bob she has read and dropped the stranger's beacon.
        await alice.Peers.WaitForAsync("bob").Within();

        Assert.False(alice.Peers.TryGet("stranger", out _));
        Assert.DoesNotContain(alice.Peers, p => p.Name == "stranger");
    }

    [Fact]
    public async Task Two_live_nodes_with_one_name_are_a_conflict_never_mixed()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port);
        var conflicts = new List<NameConflict>();
        var conflictSeen = new TaskCompletionSource<NameConflict>();
        alice.Peers.NameConflict += (_, c) => { lock (conflicts) conflicts.Add(c); conflictSeen.TrySetResult(c); };
        await using var first = await TestNetwork.StartAsync("bob", port);
        first.Register("who", _ => "first");
        await alice.Peers.WaitForAsync("bob").Within();
        var selfConflict = new TaskCompletionSource<NameConflict>();
        first.Peers.NameConflict += (_, c) => selfConflict.TrySetResult(c);

        // Starting under a live node's name fails by default (see NodeStartTests); this test is about running that way.
        await using var second = await Node.StartAsync(new NodeOptions
        {
            Name = "bob", DiscoveryPort = port, Scope = DiscoveryScope.Loopback, AllowDuplicateName = true,
        });
        second.Register("who", _ => "second");

        var conflict = await conflictSeen.Task.Within();
        Assert.Equal("bob", conflict.Name);
        Assert.Equal(first.InstanceId, conflict.Existing.InstanceId);
        Assert.Equal(second.InstanceId, conflict.Contender.InstanceId);
        Assert.False(alice.Peers.TryGet("bob", out _));
        var refused = await Assert.ThrowsAsync<NameConflictException>(() => alice.RequestAsync("bob", "who"));
        Assert.Contains(first.ServiceEndPoint.ToString(), refused.Message);
        Assert.Contains(second.ServiceEndPoint.ToString(), refused.Message);

        // The older bob learns of it too; the newer bob refuses to act under a name that is not its own.
        Assert.True((await selfConflict.Task.Within()).InvolvesThisNode);
        await second.Peers.WaitForAsync("alice").Within();
        // The newer bob believes the older one's claim on its name only once a connection to it says its instance.
        var secondConflict = new TaskCompletionSource<NameConflict>(TaskCreationOptions.RunContinuationsAsynchronously);
        second.Peers.NameConflict += (_, c) => secondConflict.TrySetResult(c);
        if (!second.Peers.Any(p => p.Name == "bob"))
            Assert.True((await secondConflict.Task.Within()).InvolvesThisNode);
        await Assert.ThrowsAsync<NameConflictException>(() => second.RequestAsync("alice", "anything"));
    }

    [Fact]
    public async Task Python_p2p_local_beacon_is_listed_as_a_legacy_peer()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port);
        using var python = new BeaconSender(port);

        python.Send("itecnet|pybob|127.0.0.1:8000");
        python.Send("otherproto|pyeve|127.0.0.1:8001");
        var peer = await alice.Peers.WaitForAsync("pybob").Within();

        Assert.True(peer.IsLegacy);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 8000), peer.EndPoint);
        var error = await Assert.ThrowsAsync<P2PException>(() => alice.RequestAsync("pybob", "anything"));
        Assert.Contains("XML-RPC", error.Message);
        Assert.False(alice.Peers.TryGet("pyeve", out _));
    }

    [Fact]
    public async Task Garbage_datagrams_are_dropped_and_discovery_keeps_working()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port);
        using var noise = new BeaconSender(port);
        noise.Send([0xff, 0xfe, 0x00, 0x7c]);
        noise.Send("itecnet|only-two");
        noise.Send("itecnet||127.0.0.1:5");
        noise.Send("itecnet|bad-endpoint|nowhere");
        noise.Send(new byte[4000]);

        await using var bob = await TestNetwork.StartAsync("bob", port);
        await alice.Peers.WaitForAsync("bob").Within();

        Assert.Equal(["bob"], alice.Peers.Select(p => p.Name));
    }

    [Fact]
    public async Task WaitForAsync_honours_cancellation()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port);
        using var cancel = new CancellationTokenSource();
        var waiting = alice.Peers.WaitForAsync("nobody", cancel.Token);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
    }

    [Fact]
    public async Task Many_nodes_share_one_host_and_discovery_port()
    {
        var port = TestNetwork.FreeUdpPort();
        var nodes = new List<Node>();
        try
        {
            for (var i = 0; i < 8; i++)
                nodes.Add(await TestNetwork.StartAsync($"n{i}", port));
            foreach (var node in nodes)
                foreach (var other in nodes.Where(o => o != node))
                    await node.Peers.WaitForAsync(other.Name).Within();
            Assert.All(nodes, n => Assert.Equal(7, n.Peers.Count));
            Assert.Equal(8, nodes.Select(n => n.ServiceEndPoint.Port).Distinct().Count());
        }
        finally
        {
            foreach (var node in nodes)
                await node.DisposeAsync();
        }
    }

    [Fact]
    public async Task Seeds_find_peers_that_broadcast_cannot_reach()
    {
        // Different discovery ports: no broadcast of one reaches the other, only the unicast copies to the seeds.
        var alicePort = TestNetwork.FreeUdpPort();
        var bobPort = TestNetwork.FreeUdpPort();
        NodeOptions Seeded(string name, int own, int seed) => new()
        {
            Name = name,
            DiscoveryPort = own,
            Scope = DiscoveryScope.Loopback,
            Seeds = [new IPEndPoint(IPAddress.Loopback, seed)],
        };
        await using var bob = await Node.StartAsync(Seeded("bob", bobPort, alicePort));
        bob.Register("ping", _ => "pong");
        await using var alice = await Node.StartAsync(Seeded("alice", alicePort, bobPort));

        await alice.Peers.WaitForAsync("bob").Within();
        await bob.Peers.WaitForAsync("alice").Within();
        Assert.Equal("pong", await alice.RequestAsync("bob", "ping").Within());
    }

    [Fact]
    public async Task A_burst_of_hellos_gets_an_answer_after_the_spacing_window_too()
    {
        var port = TestNetwork.FreeUdpPort();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(new IPEndPoint(IPAddress.Any, port));
        await using var alice = await TestNetwork.StartAsync("alice", port, TimeSpan.FromHours(1));
        using var newcomers = new BeaconSender(port);

        // Two hellos back to back: the first is answered at once, the second inside the spacing window.
        newcomers.SendBeacon("n1", 9, "newcomer-1", kind: "hello");
        newcomers.SendBeacon("n2", 9, "newcomer-2", kind: "hello");

        // With an hour-long interval only hello answers can be alive beacons. A missing second answer leaves the receive
        // waiting, and Within() fails the test with PatienceExceededException.
        var buffer = new byte[2048];
        for (var answers = 0; answers < 2;)
        {
            var received = await listener.ReceiveAsync(buffer, SocketFlags.None).Within();
            var text = System.Text.Encoding.UTF8.GetString(buffer, 0, received);
            if (text.Contains($"|{alice.InstanceId}|alive|", StringComparison.Ordinal))
                answers++;
        }
    }

    private static int FreeTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
