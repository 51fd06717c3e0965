using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Discovery;
using P2PLocal.Rpc.Security;
using P2PLocal.Rpc.Testing;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>
/// The discovery service of a created (not started) node, fed datagrams through <see cref="DiscoveryService.Handle"/>
/// and sending its beacons to a loopback socket of the test: which beacons it takes, drops or answers. Loopback only.
/// </summary>
public sealed class DiscoveryServiceTests : IAsyncDisposable
{
    private static readonly IPEndPoint s_loopbackSource = new(IPAddress.Loopback, 40000);
    private readonly Socket _inbox = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly List<IAsyncDisposable> _owned = [];

    public DiscoveryServiceTests() => _inbox.Bind(new IPEndPoint(IPAddress.Loopback, 0));

    private IPEndPoint Inbox => (IPEndPoint)_inbox.LocalEndPoint!;

    private async Task<(Node Node, DiscoveryService Service)> CreateAsync(DiscoveryScope scope = DiscoveryScope.Loopback, TimeProvider? time = null,
        IReadOnlyList<IPEndPoint>? seeds = null, BeaconSeal? seal = null)
    {
        var node = Node.Create(new NodeOptions
        {
            Name = "me",
            Scope = scope,
            DiscoveryPort = LoopbackPorts.FreeUdpPort(),
            AdvertiseInterval = TimeSpan.FromSeconds(2),
            TimeProvider = time ?? TimeProvider.System,
            Seeds = seeds ?? [],
        });
        var service = new DiscoveryService(node.Options, node.Peers, () => 5000, [new BeaconTarget(Inbox, IPAddress.Loopback)],
            "me-instance", DateTimeOffset.FromUnixTimeMilliseconds(1_000), NullLogger.Instance, seal);
        _owned.Add(service);
        _owned.Add(node);
        await Task.CompletedTask;
        return (node, service);
    }

    private static byte[] BeaconText(string text) => Encoding.UTF8.GetBytes(text);

    private static byte[] Alive(string name, string endPoint, string instance = "other", string kind = "alive", string protocol = "itecnet") =>
        BeaconText($"{protocol}|{name}|{endPoint}|p2p1|{instance}|{kind}|2000|1000");

    /// <summary>The next beacon sent to the test's socket, or null when none comes within <paramref name="wait"/>.</summary>
    private async Task<Beacon?> NextBeaconAsync(TimeSpan wait)
    {
        var buffer = new byte[2048];
        using var cts = new CancellationTokenSource(wait);
        try
        {
            var received = await _inbox.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            Assert.True(Beacon.TryParse(buffer.AsSpan(0, received), out var beacon));
            return beacon;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    private async Task<Beacon> ExpectBeaconAsync() =>
        await NextBeaconAsync(Patience.Limit) ?? throw new PatienceExceededException(Patience.Limit, "no beacon arrived.");

    /// <summary>A hello from node n<paramref name="n"/> (its service on port 6000 + n).</summary>
    private static void Hello(DiscoveryService service, int n) =>
        service.Handle(Alive("n" + n, "127.0.0.1:" + (6000 + n), instance: "n" + n, kind: "hello"), s_loopbackSource);

    /// <summary>A service on a fake clock that has just answered a first hello (from n1) at once.</summary>
    private async Task<(FakeTimeProvider Time, DiscoveryService Service)> AnsweredFirstHelloAsync()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000));
        var (_, service) = await CreateAsync(time: time);
        Hello(service, 1);
        Assert.Equal(BeaconKind.Alive, (await ExpectBeaconAsync()).Kind);
        return (time, service);
    }

    [Fact]
    public async Task A_beacon_of_a_peer_on_loopback_is_taken_in()
    {
        var (node, service) = await CreateAsync();
        service.Handle(Alive("bob", "127.0.0.1:6000"), s_loopbackSource);

        Assert.True(node.Peers.TryGet("bob", out var bob));
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 6000), bob.EndPoint);
        Assert.Equal("other", bob.InstanceId);
        Assert.Equal(0, service.Dropped);
    }

    [Fact]
    public async Task In_loopback_scope_a_datagram_from_another_host_is_dropped_unread()
    {
        var (node, service) = await CreateAsync();
        service.Handle(Alive("bob", "127.0.0.1:6000"), new IPEndPoint(IPAddress.Parse("10.0.0.9"), 40000));
        Assert.Equal(1, service.Dropped);
        Assert.Equal(0, node.Peers.Count);
    }

    [Fact]
    public async Task In_loopback_scope_a_beacon_naming_another_host_is_dropped()
    {
        var (node, service) = await CreateAsync();
        service.Handle(Alive("bob", "10.0.0.9:6000"), s_loopbackSource);
        Assert.Equal(1, service.Dropped);
        Assert.Equal(0, node.Peers.Count);
    }

    [Fact]
    public async Task Garbage_and_other_protocols_are_dropped_and_our_own_beacons_ignored()
    {
        var (node, service) = await CreateAsync();
        service.Handle(BeaconText("not a beacon"), s_loopbackSource);
        Assert.Equal(1, service.Dropped);
        service.Handle(Alive("bob", "127.0.0.1:6000", protocol: "other"), s_loopbackSource);
        Assert.Equal(2, service.Dropped);
        service.Handle(Alive("me", "127.0.0.1:5000", instance: "me-instance"), s_loopbackSource);
        Assert.Equal(2, service.Dropped); // our own echo is not an attack, just ignored
        Assert.Equal(0, node.Peers.Count);
    }

    [Fact]
    public async Task An_open_node_drops_sealed_beacons()
    {
        var (node, service) = await CreateAsync();
        // A sealed beacon carries mode, id, freshness and tag after the plain fields (see BeaconSeal).
        var sealedText = Encoding.UTF8.GetString(Alive("bob", "127.0.0.1:6000")) + "|k1|id|12345|" + new string('A', 43);
        Assert.True(Security.BeaconSeal.IsSealed(BeaconText(sealedText)));
        service.Handle(BeaconText(sealedText), s_loopbackSource);
        Assert.Equal(1, service.Dropped);
        Assert.Equal(0, node.Peers.Count);
    }

    [Fact]
    public async Task In_lan_scope_a_loopback_address_from_another_host_means_that_host()
    {
        var (node, service) = await CreateAsync(DiscoveryScope.Lan);
        service.Handle(Alive("bob", "127.0.1.1:6000"), new IPEndPoint(IPAddress.Parse("10.0.0.9"), 40000));
        Assert.True(node.Peers.TryGet("bob", out var bob));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.0.0.9"), 6000), bob.EndPoint);
        Assert.Equal(0, service.Dropped);
    }

    [Fact]
    public async Task A_hello_is_answered_at_once_and_a_burst_of_hellos_once_more_after_the_spacing()
    {
        var (_, service) = await CreateAsync();
        Hello(service, 1);
        var answer = await ExpectBeaconAsync();
        Assert.Equal((BeaconKind.Alive, "me", "me-instance", new IPEndPoint(IPAddress.Loopback, 5000)), (answer.Kind, answer.Name, answer.InstanceId, answer.EndPoint));
        Assert.Equal(TimeSpan.FromSeconds(2), answer.Interval);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_000), answer.StartedAt);

        // 20 more hellos back to back: answered once now or at the end of the 20 ms window, and then at most once per
        // window, never once per hello (the bound is loose for a loaded machine, where the loop may span windows).
        for (var i = 2; i < 22; i++)
            Hello(service, i);
        Assert.Equal(BeaconKind.Alive, (await ExpectBeaconAsync()).Kind);
        var answers = 1;
        while (await NextBeaconAsync(TimeSpan.FromMilliseconds(300)) is not null)
            answers++;
        Assert.InRange(answers, 1, 10);
    }

    [Fact]
    public async Task The_answer_spacing_follows_the_node_clock()
    {
        var (time, service) = await AnsweredFirstHelloAsync();

        // Inside the 20 ms spacing of the node's clock, which stands still: the answer waits however long real time runs.
        Hello(service, 2);
        Assert.Null(await NextBeaconAsync(TimeSpan.FromMilliseconds(300)));
        time.Advance(TimeSpan.FromMilliseconds(20));
        Assert.Equal(BeaconKind.Alive, (await ExpectBeaconAsync()).Kind);

        // A full spacing later on the node's clock, a hello is answered at once again.
        time.Advance(TimeSpan.FromMilliseconds(20));
        Hello(service, 3);
        Assert.Equal(BeaconKind.Alive, (await ExpectBeaconAsync()).Kind);
        Assert.Null(await NextBeaconAsync(TimeSpan.FromMilliseconds(100)));
    }

    [Fact]
    public async Task A_lone_hello_is_answered_once_not_again_when_the_spacing_ends()
    {
        var (time, service) = await AnsweredFirstHelloAsync();
        time.Advance(TimeSpan.FromMilliseconds(20));
        time.Advance(TimeSpan.FromMilliseconds(20));
        Assert.Null(await NextBeaconAsync(TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task A_delayed_answer_restarts_the_spacing_and_lets_a_later_hello_be_answered_in_its_turn()
    {
        var (time, service) = await AnsweredFirstHelloAsync(); // at once, at 0 ms
        Hello(service, 2);
        time.Advance(TimeSpan.FromMilliseconds(20));
        Assert.Equal(BeaconKind.Alive, (await ExpectBeaconAsync()).Kind); // the delayed answer, at 20 ms

        // 10 ms after the delayed answer (30 ms after the first): still inside the spacing it started, so not at once...
        time.Advance(TimeSpan.FromMilliseconds(10));
        Hello(service, 3);
        Assert.Null(await NextBeaconAsync(TimeSpan.FromMilliseconds(300)));
        // ...but answered one spacing after it came: the delayed answer made room for another one to be scheduled.
        time.Advance(TimeSpan.FromMilliseconds(20));
        Assert.Equal(BeaconKind.Alive, (await ExpectBeaconAsync()).Kind);
    }

    [Fact]
    public async Task An_answer_still_waiting_for_the_spacing_is_dropped_when_the_service_stops()
    {
        var (time, service) = await AnsweredFirstHelloAsync();
        Hello(service, 2); // waits for the spacing

        await service.DisposeAsync();
        Assert.Equal(BeaconKind.Bye, (await ExpectBeaconAsync()).Kind);
        time.Advance(TimeSpan.FromMilliseconds(20));
        Assert.Null(await NextBeaconAsync(TimeSpan.FromMilliseconds(300))); // no alive beacon after the goodbye
    }

    [Fact]
    public async Task An_alive_beacon_is_not_answered()
    {
        var (_, service) = await CreateAsync();
        service.Handle(Alive("bob", "127.0.0.1:6000"), s_loopbackSource);
        Assert.Null(await NextBeaconAsync(TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Start_says_hello_the_clock_brings_alive_beacons_and_dispose_says_goodbye_once()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000));
        var (node, service) = await CreateAsync(time: time);
        service.Handle(Alive("bob", "127.0.0.1:6000"), s_loopbackSource);
        Assert.Equal(1, node.Peers.Count);

        service.Start();
        Assert.Equal(BeaconKind.Hello, (await ExpectBeaconAsync()).Kind);
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(BeaconKind.Alive, (await ExpectBeaconAsync()).Kind);
        // bob has been silent for several of its intervals: the tick expires it.
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(BeaconKind.Alive, (await ExpectBeaconAsync()).Kind);
        Assert.True(await WaitUntilAsync(() => node.Peers.Count == 0), "the advertise tick expires silent peers");

        await service.DisposeAsync();
        // The 20 s jump may have queued more ticks' beacons before the goodbye.
        var last = await ExpectBeaconAsync();
        for (var ticks = 0; last.Kind == BeaconKind.Alive && ticks < 20; ticks++)
            last = await ExpectBeaconAsync();
        Assert.Equal(BeaconKind.Bye, last.Kind);
        await service.DisposeAsync();
        Assert.Null(await NextBeaconAsync(TimeSpan.FromMilliseconds(200)));
    }

    private static async Task<bool> WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience.Limit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                return false;
            await Task.Delay(10);
        }

        return true;
    }

    [Fact]
    public async Task The_receive_loop_takes_in_beacons_sent_to_the_discovery_port()
    {
        var (node, service) = await CreateAsync();
        service.Start();
        await ExpectBeaconAsync(); // the hello
        using var sender = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        sender.SendTo(Alive("carol", "127.0.0.1:6100"), new IPEndPoint(IPAddress.Loopback, node.Options.DiscoveryPort));
        sender.SendTo(BeaconText("garbage"), new IPEndPoint(IPAddress.Loopback, node.Options.DiscoveryPort));
        await node.Peers.WaitForAsync("carol").Within();
        Assert.True(await WaitUntilAsync(() => service.Dropped == 1));
    }

    [Fact]
    public async Task Seeds_get_every_beacon_with_the_loopback_address_in_loopback_scope()
    {
        using var seed = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        seed.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var (_, service) = await CreateAsync(seeds: [(IPEndPoint)seed.LocalEndPoint!]);
        service.Send(BeaconKind.Alive);

        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 5000), (await ExpectBeaconAsync()).EndPoint);
        var buffer = new byte[2048];
        var received = await seed.ReceiveAsync(buffer, SocketFlags.None).Within();
        Assert.True(Beacon.TryParse(buffer.AsSpan(0, received), out var atSeed));
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 5000), atSeed!.EndPoint);
    }

    [Fact]
    public async Task A_name_too_long_for_a_beacon_is_refused_before_any_socket_is_bound()
    {
        var node = Node.Create(new NodeOptions { Name = new string('n', 1100), Scope = DiscoveryScope.Loopback, DiscoveryPort = LoopbackPorts.FreeUdpPort() });
        _owned.Add(node);
        var error = Assert.Throws<ArgumentException>(() => new DiscoveryService(node.Options, node.Peers, () => 5000, [], "i", DateTimeOffset.UnixEpoch, NullLogger.Instance));
        Assert.Equal("name", error.ParamName);
        await Task.CompletedTask;
    }

    /// <summary>The next datagram sent to the test's socket, as bytes.</summary>
    private async Task<byte[]> ExpectDatagramAsync()
    {
        var buffer = new byte[2048];
        var received = await _inbox.ReceiveAsync(buffer, SocketFlags.None).Within();
        return buffer[..received];
    }

    [Fact]
    public async Task Discovery_metrics_count_beacons_sent_received_and_rejected_by_kind_and_reason()
    {
        var (node, service) = await CreateAsync();
        var seen = new List<(string Instrument, string Tag)>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == NodeTelemetry.MeterName && instrument.Name.StartsWith("p2plocal.beacons.", StringComparison.Ordinal))
                    l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            Assert.Equal(1, value);
            lock (seen)
                seen.Add((instrument.Name["p2plocal.beacons.".Length..], (string)tags[0].Value!));
        });
        listener.Start();

        service.Handle(Alive("bob", "127.0.0.1:6000"), new IPEndPoint(IPAddress.Parse("10.0.0.9"), 40000));
        service.Handle(BeaconText("not a beacon"), s_loopbackSource);
        service.Handle(Alive("carol", "127.0.0.1:6000", protocol: "other"), s_loopbackSource);
        service.Handle(Alive("me", "127.0.0.1:5000", instance: "me-instance"), s_loopbackSource); // our own: not counted
        service.Handle(Alive("bob", "127.0.0.1:6000"), s_loopbackSource);
        service.Handle(BeaconText("itecnet|old|127.0.0.1:6002"), s_loopbackSource);
        Hello(service, 1);
        Assert.Equal(BeaconKind.Alive, (await ExpectBeaconAsync()).Kind);
        service.Send(BeaconKind.Bye);
        Assert.Equal(BeaconKind.Bye, (await ExpectBeaconAsync()).Kind);
        listener.Dispose();

        lock (seen)
        {
            Assert.Equal(
                [("rejected", "not_loopback"), ("rejected", "invalid"), ("rejected", "invalid"), ("received", "alive"), ("received", "legacy"),
                 ("received", "hello"), ("sent", "alive"), ("sent", "bye")],
                seen);
        }

        Assert.True(node.Peers.TryGet("old", out _));
    }

    [Fact]
    public async Task A_name_beaconed_on_another_protocol_is_named_when_a_wait_for_it_times_out()
    {
        var (node, service) = await CreateAsync();
        var before = await Assert.ThrowsAsync<PeerNotFoundException>(() => node.Peers.WaitForAsync("carol", TimeSpan.Zero));
        service.Handle(Alive("carol", "127.0.0.1:6000", protocol: "otherproto"), s_loopbackSource);
        var after = await Assert.ThrowsAsync<PeerNotFoundException>(() => node.Peers.WaitForAsync("carol", TimeSpan.Zero));

        Assert.DoesNotContain("otherproto", before.Message, StringComparison.Ordinal);
        Assert.Contains("otherproto", after.Message, StringComparison.Ordinal);
    }

    private static BeaconSeal SealOf(string networkKey, NodeIdentity identity) => new(NodeSecurity.SharedKey(networkKey), identity);

    [Fact]
    public async Task A_secure_node_takes_only_beacons_sealed_for_its_group_and_seals_its_own()
    {
        var key = NodeSecurity.CreateNetworkKey();
        var me = NodeIdentity.Create();
        var bob = NodeIdentity.Create();
        var (node, service) = await CreateAsync(seal: SealOf(key, me));
        var bobSeal = SealOf(key, bob);
        var strangerSeal = SealOf(NodeSecurity.CreateNetworkKey(), NodeIdentity.Create());

        service.Handle(Alive("open", "127.0.0.1:6001", instance: "open"), s_loopbackSource);
        Assert.Equal(1, service.Dropped);
        service.Handle(BeaconText("itecnet|old|127.0.0.1:6002"), s_loopbackSource);
        Assert.Equal(2, service.Dropped);
        service.Handle(strangerSeal.Seal(Alive("eve", "127.0.0.1:6003", instance: "eve"), DateTimeOffset.UtcNow), s_loopbackSource);
        Assert.Equal(3, service.Dropped);
        Assert.Equal(0, node.Peers.Count);

        service.Handle(bobSeal.Seal(Alive("bob", "127.0.0.1:6000", instance: "bob-1", kind: "hello"), DateTimeOffset.UtcNow), s_loopbackSource);
        Assert.Equal(3, service.Dropped);
        Assert.True(node.Peers.TryGet("bob", out var peer));
        Assert.Equal(("bob-1", bob.Id), (peer.InstanceId, peer.PeerId));

        // The hello is answered with a sealed beacon that bob's group opens as coming from this node.
        var answer = await ExpectDatagramAsync();
        Assert.True(BeaconSeal.IsSealed(answer));
        Assert.Equal(me.Id, bobSeal.TryOpen(answer, "me-instance", DateTimeOffset.UtcNow));
        Assert.Null(strangerSeal.TryOpen(answer, "me-instance", DateTimeOffset.UtcNow));
    }

    [Fact]
    public async Task A_secure_node_refuses_a_name_whose_sealed_beacon_would_pass_the_limit_by_the_bytes_over()
    {
        var seal = SealOf(NodeSecurity.CreateNetworkKey(), NodeIdentity.Create());
        var longest = 0;
        ArgumentException? error = null;
        for (var length = 300; error is null && length < 600; length++)
        {
            var node = Node.Create(new NodeOptions { Name = new string('n', length), Scope = DiscoveryScope.Loopback, DiscoveryPort = LoopbackPorts.FreeUdpPort() });
            _owned.Add(node);
            try
            {
                await new DiscoveryService(node.Options, node.Peers, () => 5000, [], "i", DateTimeOffset.UnixEpoch, NullLogger.Instance, seal).DisposeAsync();
                longest = length;
            }
            catch (ArgumentException e)
            {
                error = e;
            }
        }

        // The longest name that fits is one byte short of the one refused, and the refusal says so.
        Assert.NotNull(error);
        Assert.InRange(longest, 301, 598);
        Assert.Equal("options", error.ParamName);
        Assert.StartsWith($"The name '{new string('n', longest + 1)}' makes this node's secure beacon {BeaconSeal.MaxSealedLength + 1} bytes, above the {BeaconSeal.MaxSealedLength}-byte limit of secure beacons. " +
            "Shorten the name (or the protocol) by 1 bytes.", error.Message, StringComparison.Ordinal);
        // The boundary is absolute, not only relative: a real beacon of the longest accepted name, sealed now (a
        // 13-digit freshness), fits, within a byte or two of the limit (the check allows for the widest freshness).
        var defaults = new NodeOptions { Name = "n" };
        var plain = new Beacon(defaults.Protocol, new string('n', longest), new IPEndPoint(IPAddress.Broadcast, IPEndPoint.MaxPort), BeaconKind.Alive,
            "i", defaults.AdvertiseInterval, DateTimeOffset.UnixEpoch).ToBytes();
        Assert.InRange(seal.Seal(plain, DateTimeOffset.UtcNow).Length, BeaconSeal.MaxSealedLength - 2, BeaconSeal.MaxSealedLength);
        // An open node takes that name: only the seal makes it too long.
        var open = Node.Create(new NodeOptions { Name = new string('n', longest + 1), Scope = DiscoveryScope.Loopback, DiscoveryPort = LoopbackPorts.FreeUdpPort() });
        _owned.Add(open);
        await new DiscoveryService(open.Options, open.Peers, () => 5000, [], "i", DateTimeOffset.UnixEpoch, NullLogger.Instance).DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var owned in _owned)
            await owned.DisposeAsync();
        _inbox.Dispose();
    }
}
