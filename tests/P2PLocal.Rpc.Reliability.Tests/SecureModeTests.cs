using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Security;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// Secure mode (issue 10), each "property that must hold" as a test: untrusted nodes cannot list, be listed, call,
/// read or take over a name; replayed beacons revive nothing; open and secure nodes ignore each other and fail at
/// once across; different keys do not see each other.
/// </summary>
public class SecureModeTests(ITestOutputHelper output)
{
    private static readonly string s_key = NodeSecurity.CreateNetworkKey();

    private static NodeOptions Secure(string name, int port, NodeSecurity? security = null) =>
        WithSecurity(Net.Options(name, port), security ?? NodeSecurity.SharedKey(s_key));

    /// <summary>The options with the security given (the limits tests set are kept).</summary>
    internal static NodeOptions WithSecurity(NodeOptions o, NodeSecurity security) => new()
    {
        Name = o.Name,
        DiscoveryPort = o.DiscoveryPort,
        Scope = o.Scope,
        AdvertiseInterval = o.AdvertiseInterval,
        ShutdownGracePeriod = o.ShutdownGracePeriod,
        HandshakeTimeout = o.HandshakeTimeout,
        MaxIncomingConnections = o.MaxIncomingConnections,
        Security = security,
    };

    private static async Task<Node> EchoAsync(NodeOptions options)
    {
        var node = await Node.StartAsync(options);
        node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        return node;
    }

    private static Dictionary<string, object?> Value(object? value) => new() { ["value"] = value };

    [Fact]
    public async Task SharedKey_nodes_see_and_call_each_other_and_know_each_others_verified_id()
    {
        var port = Net.FreeUdpPort();
        await using var alice = await EchoAsync(Secure("alice", port));
        await using var bob = await EchoAsync(Secure("bob", port));

        var seen = await bob.Peers.WaitForAsync("alice").Within();
        Assert.NotNull(alice.PeerId);
        Assert.Equal(alice.PeerId, seen.PeerId);
        Assert.Equal("hi", await bob.RequestAsync("alice", "echo", Value("hi")).Within());
        Assert.Equal("back", await alice.RequestAsync("bob", "echo", Value("back")).Within());
        Assert.Equal(bob.PeerId, (await alice.Peers.WaitForAsync("bob").Within()).PeerId);
    }

    [Fact]
    public async Task A_handler_learns_the_verified_id_of_its_caller_and_null_from_an_open_caller()
    {
        var port = Net.FreeUdpPort();
        await using var alice = await Node.StartAsync(Secure("alice", port));
        alice.Register("whois", (kwargs, caller, ct) => new ValueTask<object?>(caller.PeerId));
        await using var bob = await Node.StartAsync(Secure("bob", port));
        await bob.Peers.WaitForAsync("alice").Within();
        Assert.NotNull(bob.PeerId);
        Assert.Equal(bob.PeerId, await bob.RequestAsync("alice", "whois").Within());

        var openPort = Net.FreeUdpPort();
        await using var carol = await Node.StartAsync(Net.Options("carol", openPort));
        carol.Register("whois", (kwargs, caller, ct) => new ValueTask<object?>(caller.PeerId ?? "none"));
        await using var dave = await Node.StartAsync(Net.Options("dave", openPort));
        await dave.Peers.WaitForAsync("carol").Within();
        Assert.Equal("none", await dave.RequestAsync("carol", "whois").Within());
    }

    [Fact]
    public async Task Streams_and_events_run_over_the_secure_connection_and_carry_the_verified_peer_id()
    {
        var port = Net.FreeUdpPort();
        await using var alice = await Node.StartAsync(Secure("alice", port));
        var events = new TaskCompletionSource<(int Value, string? Sender)>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = alice.Subscribe<int>("ticks", (value, sender) => events.TrySetResult((value, sender.PeerId)));
        await using var bob = await Node.StartAsync(Secure("bob", port));
        bob.RegisterStream("count", (kwargs, caller, ct) => CountFor(caller.PeerId, 100, ct));
        await alice.Peers.WaitForAsync("bob").Within();
        await bob.Peers.WaitForAsync("alice").Within();

        var items = await alice.RequestStreamAsync("bob", "count").ToListAsync().AsTask().Within();
        Assert.Equal(101, items.Count);
        Assert.Equal(alice.PeerId, items[0]); // the producer saw the caller's verified id
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (object?)(long)i), items.Skip(1));

        await bob.PublishAsync("ticks", 42);
        var received = await events.Task.Within();
        Assert.Equal(42, received.Value);
        Assert.Equal(bob.PeerId, received.Sender);
    }

    private static async IAsyncEnumerable<object?> CountFor(string? callerId, int count, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        yield return callerId;
        for (var i = 0; i < count; i++)
        {
            await Task.Yield();
            cancellationToken.ThrowIfCancellationRequested();
            yield return i;
        }
    }

    [Fact]
    public async Task Pinned_nodes_call_each_other_and_a_node_not_pinned_is_neither_listed_nor_answered()
    {
        var port = Net.FreeUdpPort();
        var aliceId = NodeIdentity.Create();
        var bobId = NodeIdentity.Create();
        var malloryId = NodeIdentity.Create();
        await using var mallory = await EchoAsync(Secure("mallory", port, NodeSecurity.Pinned(malloryId, [aliceId.Id, bobId.Id])));
        await using var alice = await EchoAsync(Secure("alice", port, NodeSecurity.Pinned(aliceId, [bobId.Id])));
        await using var bob = await EchoAsync(Secure("bob", port, NodeSecurity.Pinned(bobId, [aliceId.Id.ToLowerInvariant().Replace("-", " ")])));

        Assert.Equal(aliceId.Id, (await bob.Peers.WaitForAsync("alice").Within()).PeerId);
        Assert.Equal(7L, await bob.RequestAsync("alice", "echo", Value(7)).Within());
        // A witness pinned by alice, started after mallory: once alice sees it, mallory's beacons were read and dropped.
        await using var witness = await Node.StartAsync(Secure("witness", port, NodeSecurity.Pinned(bobId, [aliceId.Id])));
        await alice.Peers.WaitForAsync("witness").Within();
        Assert.False(alice.Peers.TryGet("mallory", out _));

        // Mallory pins alice, so it can list her, but alice does not trust mallory: no call gets through.
        await mallory.Peers.WaitForAsync("alice").Within();
        var clock = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<PeerAuthenticationException>(() => mallory.RequestAsync("alice", "echo", Value("x"))).Within();
        output.WriteLine($"{clock.ElapsedMilliseconds} ms: {e.Message}");
        Assert.Contains("does not trust this node", e.Message);
        Assert.Equal("alice", e.PeerName);
    }

    [Fact]
    public async Task Open_nodes_and_secure_groups_with_other_keys_do_not_see_each_other()
    {
        var port = Net.FreeUdpPort();
        await using var open = await EchoAsync(Net.Options("open", port));
        var otherKey = NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey());
        await using var other = await EchoAsync(Secure("other", port, otherKey));
        await using var alice = await EchoAsync(Secure("alice", port));
        await using var bob = await EchoAsync(Secure("bob", port));
        // Witnesses started last: beacons on one socket arrive in order, so once each is seen, all earlier ones were read.
        await using var openWitness = await Node.StartAsync(Net.Options("open-witness", port));
        await using var secureWitness = await Node.StartAsync(Secure("secure-witness", port));
        await using var otherWitness = await Node.StartAsync(Secure("other-witness", port, otherKey));
        await open.Peers.WaitForAsync("open-witness").Within();
        await alice.Peers.WaitForAsync("secure-witness").Within();
        await bob.Peers.WaitForAsync("secure-witness").Within();
        await other.Peers.WaitForAsync("other-witness").Within();
        await open.Peers.WaitForAsync("open-witness").Within();

        Assert.Equal(["open-witness"], open.Peers.Select(p => p.Name).Order());
        Assert.Equal(["bob", "secure-witness"], alice.Peers.Select(p => p.Name).Order());
        Assert.Equal(["other-witness"], other.Peers.Select(p => p.Name));
        Assert.DoesNotContain(bob.Peers, p => p.Name is "other" or "open");
    }

    [Fact]
    public async Task Calling_across_open_and_secure_fails_at_once_with_PeerAuthenticationException()
    {
        var port = Net.FreeUdpPort();
        await using var open = await EchoAsync(Net.Options("open", port));
        await using var alice = await EchoAsync(Secure("alice", port));
        using var sender = new BeaconSenderSocket(port);

        // An open beacon naming the secure node's endpoint: the open node lists it, and its call is refused in plaintext.
        sender.Send($"itecnet|fake-alice|127.0.0.1:{alice.ServiceEndPoint.Port}|p2p1|fakeinstance01|alive|1000|1");
        await open.Peers.WaitForAsync("fake-alice").Within();
        var clock = Stopwatch.StartNew();
        var refused = await Assert.ThrowsAsync<PeerAuthenticationException>(() => open.RequestAsync("fake-alice", "echo", Value(1))).Within();
        output.WriteLine($"open -> secure: {clock.ElapsedMilliseconds} ms: {refused.Message}");
        Assert.Contains("secure mode", refused.Message);

        // A secure caller at an open node: the TLS handshake fails at once.
        clock.Restart();
        var noTls = await Assert.ThrowsAsync<PeerAuthenticationException>(() => ConnectAsync(alice, open.ServiceEndPoint, null)).Within();
        output.WriteLine($"secure -> open: {clock.ElapsedMilliseconds} ms: {noTls.Message}");
        Assert.Contains("open mode", noTls.Message);

        // Both nodes still serve their own.
        await using var bob = await EchoAsync(Secure("bob", port));
        await bob.Peers.WaitForAsync("alice").Within();
        Assert.Equal(2L, await bob.RequestAsync("alice", "echo", Value(2)).Within());
    }

    [Fact]
    public async Task A_node_with_another_key_cannot_call_and_is_not_answered_and_a_wrong_id_at_an_endpoint_is_refused()
    {
        var port = Net.FreeUdpPort();
        await using var alice = await EchoAsync(Secure("alice", port));
        await using var bob = await EchoAsync(Secure("bob", port));
        await using var other = await EchoAsync(Secure("other", port, NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey())));

        // Other calls alice: neither certificate holds a proof the other side accepts; the handshake fails before any frame.
        var rejected = await Assert.ThrowsAsync<PeerAuthenticationException>(() => ConnectAsync(other, alice.ServiceEndPoint, null)).Within();
        Assert.Contains("network key", rejected.Message);
        // Alice calls other: other's certificate holds no proof of alice's key.
        var untrusted = await Assert.ThrowsAsync<PeerAuthenticationException>(() => ConnectAsync(alice, other.ServiceEndPoint, null)).Within();
        Assert.Contains("network key", untrusted.Message);
        // Bob's endpoint, but the id discovered under a name is alice's: a trusted node answering in her place is refused.
        var wrongId = await Assert.ThrowsAsync<PeerAuthenticationException>(() => ConnectAsync(alice, bob.ServiceEndPoint, alice.PeerId)).Within();
        Assert.Contains("not " + alice.PeerId, wrongId.Message);
        output.WriteLine(rejected.Message + "\n" + untrusted.Message + "\n" + wrongId.Message);
    }

    [Fact]
    public async Task A_secure_node_that_refuses_a_connection_as_full_is_reported_busy_not_untrusted()
    {
        var port = Net.FreeUdpPort();
        var options = Secure("alice", port);
        await using var alice = await EchoAsync(new NodeOptions
        {
            Name = options.Name,
            DiscoveryPort = port,
            Scope = DiscoveryScope.Loopback,
            Security = options.Security,
            MaxConnectionsPerAddress = 1,
            LimitLoopbackPerAddress = true,
        });
        await using var bob = await EchoAsync(Secure("bob", port));
        var first = await ClientConnection.ConnectAsync(alice.ServiceEndPoint, "alice", null, bob.LocalHello, bob.SerializerOptions,
            TimeSpan.FromSeconds(5), NodeOptions.DefaultMaxBufferedBytesPerConnection, bob.Tls, alice.PeerId, CancellationToken.None).Within();
        try
        {
            // The refusal is plaintext (sent before TLS): the caller reads it from the failed handshake's bytes.
            var busy = await Assert.ThrowsAsync<PeerBusyException>(() => ConnectAsync(bob, alice.ServiceEndPoint, alice.PeerId)).Within();
            Assert.Contains("MaxConnectionsPerAddress=1", busy.Message);
        }
        finally
        {
            await first.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_capture_of_a_secure_call_shows_none_of_its_plaintext_while_an_open_one_does()
    {
        var port = Net.FreeUdpPort();
        const string secret = "the-launch-code-is-0000";
        await using var alice = await EchoAsync(Secure("alice", port));
        await using var bob = await EchoAsync(Secure("bob", port));
        await using var openAlice = await EchoAsync(Net.Options("open-alice", port));
        await using var openBob = await EchoAsync(Net.Options("open-bob", port));

        var secureWire = await CaptureCallAsync(bob, alice, secret);
        var openWire = await CaptureCallAsync(openBob, openAlice, secret);
        output.WriteLine($"captured {secureWire.Length} bytes secure, {openWire.Length} open");

        Assert.Contains(secret, Encoding.UTF8.GetString(openWire)); // the capture works
        Assert.Equal(TlsChannel.HandshakeRecord, secureWire[0]);
        foreach (var plain in new[] { secret, "echo", "alice", "bob", alice.InstanceId, bob.InstanceId })
            Assert.Equal(-1, secureWire.AsSpan().IndexOf(Encoding.UTF8.GetBytes(plain)));
    }

    [Fact]
    public async Task A_node_without_the_key_cannot_take_over_a_secure_nodes_name()
    {
        var port = Net.FreeUdpPort();
        await using var alice = await EchoAsync(Secure("alice", port));
        await using var bob = await EchoAsync(Secure("bob", port));
        var before = await bob.Peers.WaitForAsync("alice").Within();
        using var sender = new BeaconSenderSocket(port);
        var forger = new BeaconSeal(NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey()), NodeIdentity.Create());
        var sealedWrong = forger.Seal(Encoding.UTF8.GetBytes($"itecnet|alice|127.0.0.1:1|p2p1|{alice.InstanceId}|alive|1000|1"), DateTimeOffset.UtcNow);
        var forgeriesBefore = Interlocked.Read(ref bob.Seal!.Forgeries);
        for (var i = 0; i < 3; i++)
        {
            sender.Send(sealedWrong);
            sender.Send($"itecnet|alice|127.0.0.1:2|p2p1|impostor{i}|alive|1000|1"); // open claims
            sender.Send($"itecnet|alice|127.0.0.1:3|p2p1|{alice.InstanceId}|bye|1000|1");
        }

        await Until(() => Interlocked.Read(ref bob.Seal.Forgeries) >= forgeriesBefore + 3);
        Assert.True(bob.Peers.TryGet("alice", out var after));
        Assert.Equal(before.EndPoint, after!.EndPoint);
        Assert.Equal(alice.PeerId, after.PeerId);
        Assert.Equal("still", await bob.RequestAsync("alice", "echo", Value("still")).Within());
    }

    [Fact]
    public async Task A_replayed_beacon_never_revives_a_node_that_left_nor_moves_a_name()
    {
        var port = Net.FreeUdpPort();
        using var recorder = new BeaconRecorder(port);
        await using var bob = await EchoAsync(Secure("bob", port));
        var alice = await EchoAsync(Secure("alice", port));
        var recorded = await recorder.WaitForAsync("|alice|").Within();
        await bob.Peers.WaitForAsync("alice").Within();

        // A replay with one byte of the endpoint changed is a forgery; the name stays where it is.
        var moved = (byte[])recorded.Clone();
        var text = Encoding.ASCII.GetString(moved);
        var portText = alice.ServiceEndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        moved[text.IndexOf(":" + portText, StringComparison.Ordinal) + 1] ^= 0x01;
        using var sender = new BeaconSenderSocket(port);
        var forgeries = Interlocked.Read(ref bob.Seal!.Forgeries);
        sender.Send(moved);
        await Until(() => Interlocked.Read(ref bob.Seal.Forgeries) > forgeries);

        var left = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bob.Peers.Left += (_, p) => { if (p.Name == "alice") left.TrySetResult(); };
        await alice.DisposeAsync();
        await left.Task.Within();

        var replays = Interlocked.Read(ref bob.Seal.Replays);
        sender.Send(recorded);
        await Until(() => Interlocked.Read(ref bob.Seal.Replays) > replays);
        Assert.False(bob.Peers.TryGet("alice", out _));
    }

    [Fact]
    public async Task Secure_beacons_stay_under_512_bytes_and_old_parsers_read_their_first_three_fields()
    {
        var port = Net.FreeUdpPort();
        using var recorder = new BeaconRecorder(port);
        var longName = new string('n', 60);
        await using var pinned = await Node.StartAsync(Secure(longName, port, NodeSecurity.Pinned(NodeIdentity.Create(), [])));
        var beacon = await recorder.WaitForAsync("|" + longName + "|").Within();
        output.WriteLine($"pinned beacon with a 60-character name: {beacon.Length} bytes");
        Assert.True(beacon.Length <= 512);
        var fields = Encoding.UTF8.GetString(beacon).Split('|');
        Assert.Equal(["itecnet", longName, $"127.0.0.1:{pinned.ServiceEndPoint.Port}"], fields[..3]);
        Assert.Throws<ArgumentException>(() => Node.StartAsync(Secure(new string('n', 300), port, NodeSecurity.Pinned(NodeIdentity.Create(), []))).GetAwaiter().GetResult());
    }

    private static async Task Until(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Net.Patience)
                throw new PatienceExceededException(Net.Patience);
            await Task.Delay(10);
        }
    }

    /// <summary>Connects from <paramref name="from"/> to an endpoint with its TLS side, as a call would.</summary>
    private static async Task ConnectAsync(Node from, IPEndPoint endPoint, string? expectedPeerId)
    {
        var connection = await ClientConnection.ConnectAsync(endPoint, "target", null, from.LocalHello, from.SerializerOptions,
            TimeSpan.FromSeconds(5), NodeOptions.DefaultMaxBufferedBytesPerConnection, from.Tls, expectedPeerId, CancellationToken.None);
        await connection.DisposeAsync();
    }

    /// <summary>One echo call from <paramref name="caller"/> to <paramref name="target"/> through a loopback TCP relay that records every byte both ways.</summary>
    private static async Task<byte[]> CaptureCallAsync(Node caller, Node target, string payload)
    {
        using var relay = new TcpListener(IPAddress.Loopback, 0);
        relay.Start();
        var wire = new MemoryStream();
        var relaying = Task.Run(async () =>
        {
            using var inbound = await relay.AcceptTcpClientAsync();
            using var outbound = new TcpClient();
            await outbound.ConnectAsync(target.ServiceEndPoint);
            async Task Pump(NetworkStream from, NetworkStream to)
            {
                var buffer = new byte[4096];
                int read;
                try
                {
                    while ((read = await from.ReadAsync(buffer)) > 0)
                    {
                        lock (wire)
                            wire.Write(buffer, 0, read);
                        await to.WriteAsync(buffer.AsMemory(0, read));
                    }
                }
                catch (IOException)
                {
                }

                to.Socket.Shutdown(SocketShutdown.Send);
            }

            await Task.WhenAll(Pump(inbound.GetStream(), outbound.GetStream()), Pump(outbound.GetStream(), inbound.GetStream()));
        });

        var connection = await ClientConnection.ConnectAsync((IPEndPoint)relay.LocalEndpoint, target.Name, target.InstanceId, caller.LocalHello,
            caller.SerializerOptions, TimeSpan.FromSeconds(5), NodeOptions.DefaultMaxBufferedBytesPerConnection, caller.Tls, target.PeerId, CancellationToken.None).Within();
        var result = await connection.InvokeAsync<IReadOnlyDictionary<string, object?>?, object?>("echo", Value(payload),
            KwargsCodec.WriteKwargs, KwargsCodec.ReadValue, TimeSpan.FromSeconds(10), CancellationToken.None).AsTask().Within();
        Assert.Equal(payload, result);
        await connection.DisposeAsync();
        await relaying.Within();
        lock (wire)
            return wire.ToArray();
    }
}

/// <summary>Sends raw datagrams to the loopback broadcast address of a discovery port.</summary>
internal sealed class BeaconSenderSocket(int port) : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { EnableBroadcast = true };
    private readonly IPEndPoint _target = new(IPAddress.Parse("127.255.255.255"), port);

    public void Send(string text) => Send(Encoding.UTF8.GetBytes(text));

    public void Send(byte[] datagram) => _socket.SendTo(datagram, _target);

    public void Dispose() => _socket.Dispose();
}

/// <summary>Listens on a discovery port beside the nodes (address reuse) and keeps the datagrams it hears, as a capture would.</summary>
internal sealed class BeaconRecorder : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);

    public BeaconRecorder(int port)
    {
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _socket.Bind(new IPEndPoint(IPAddress.Any, port));
    }

    /// <summary>The first datagram from now on whose text contains <paramref name="marker"/>.</summary>
    public async Task<byte[]> WaitForAsync(string marker)
    {
        var buffer = new byte[2048];
        while (true)
        {
            var read = await _socket.ReceiveAsync(buffer, SocketFlags.None);
            if (Encoding.UTF8.GetString(buffer, 0, read).Contains(marker, StringComparison.Ordinal))
                return buffer[..read];
        }
    }

    public void Dispose() => _socket.Dispose();
}
