using System.Net;
using System.Net.Sockets;
using MessagePack;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Server;
using P2PLocal.Rpc.Testing;
using static P2PLocal.Rpc.UnitTests.NodeFacade.FacadeNodes;

namespace P2PLocal.Rpc.UnitTests.NodeFacade;

/// <summary>What Node.cs decides about creating, starting and shutting down a node, and what it reports about itself.</summary>
[Collection(NodeFacadeGroup.Name)]
public sealed class NodeFacadeLifecycleTests
{
    [Fact]
    public void Create_refuses_null_options_and_checks_the_options_it_is_given()
    {
        Assert.Equal("options", Assert.Throws<ArgumentNullException>(() => Node.Create(null!)).ParamName);
        var bad = new NodeOptions(Options("a")) { Name = "a|b" };
        Assert.Equal("Name", Assert.Throws<ArgumentException>(() => Node.Create(bad)).ParamName);
        var badPort = new NodeOptions(Options("a")) { ServicePort = 70000 };
        Assert.Equal("ServicePort", Assert.Throws<ArgumentOutOfRangeException>(() => Node.Create(badPort)).ParamName);
        // The static start checks before it binds anything, and throws at once (not from the task).
        Assert.Throws<ArgumentException>(() => { _ = Node.StartAsync(bad); });
    }

    [Fact]
    public async Task A_created_node_has_no_endpoint_and_refuses_calls_until_it_starts()
    {
        await using var node = Node.Create(Options("early"));

        Assert.Contains("has not started", Assert.Throws<InvalidOperationException>(() => node.ServiceEndPoint).Message, StringComparison.Ordinal);
        var call = await Assert.ThrowsAsync<InvalidOperationException>(() => node.RequestAsync("bob", "f"));
        Assert.Equal("Node 'early' has not started: call StartAsync before calling peers.", call.Message);
        var listing = await Assert.ThrowsAsync<InvalidOperationException>(() => node.GetMethodsAsync("bob"));
        Assert.Equal(call.Message, listing.Message);
        var someone = new PeerInfo("bob", "itecnet", new IPEndPoint(IPAddress.Loopback, 1), "0123456789abcdef");
        Assert.Equal(call.Message, (await Assert.ThrowsAsync<InvalidOperationException>(() => CallOnAsync(node, someone, "f"))).Message);

        await node.StartAsync();

        Assert.Equal(IPAddress.Loopback, node.ServiceEndPoint.Address);
        Assert.NotEqual(0, node.ServiceEndPoint.Port);
        var unknown = await Assert.ThrowsAsync<PeerNotFoundException>(() => node.RequestAsync("bob", "f"));
        Assert.Equal("bob", unknown.PeerName);
    }

    [Fact]
    public async Task The_configured_service_port_is_the_one_served_on()
    {
        var port = LoopbackPorts.FreeTcpPort();

        await using var node = await Node.StartAsync(new NodeOptions(Options("fixed")) { ServicePort = port });

        Assert.Equal(new IPEndPoint(IPAddress.Loopback, port), node.ServiceEndPoint);
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port).Within();
    }

    [Fact]
    public async Task A_second_start_fails_naming_the_node_and_a_start_after_shutdown_fails_as_disposed()
    {
        var node = await StartAsync("twice");
        var again = Assert.Throws<InvalidOperationException>(() => { _ = node.StartAsync(); });
        Assert.Equal("Node 'twice' was started already.", again.Message);

        await node.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => { _ = node.StartAsync(); });

        var never = Node.Create(Options("never"));
        never.Dispose();
        Assert.Throws<ObjectDisposedException>(() => { _ = never.StartAsync(CancellationToken.None); });
    }

    [Fact]
    public async Task A_cancelled_token_stops_start_before_the_node_serves_and_a_later_start_works()
    {
        await using var node = Node.Create(Options("cancelled"));
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        Assert.Throws<OperationCanceledException>(() => { _ = node.StartAsync(cancelled.Token); });
        Assert.Throws<InvalidOperationException>(() => node.ServiceEndPoint);

        await node.StartAsync();
        Assert.NotEqual(0, node.ServiceEndPoint.Port);
    }

    [Fact]
    public async Task Start_waits_for_the_name_check_window_and_its_token_ends_the_wait()
    {
        await using var node = Node.Create(new NodeOptions(Options("waiting")) { NameCheckWindow = TimeSpan.FromMinutes(10) });
        using var stop = new CancellationTokenSource();

        var starting = node.StartAsync(stop.Token);

        Assert.False(starting.IsCompleted); // it waits for answers to its hello
        Assert.NotEqual(0, node.ServiceEndPoint.Port); // but serves already
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => starting.Within());
    }

    [Fact]
    public async Task AllowDuplicateName_skips_the_name_check_wait()
    {
        await using var node = Node.Create(new NodeOptions(Options("dup")) { NameCheckWindow = TimeSpan.FromMinutes(10), AllowDuplicateName = true });

        var starting = node.StartAsync();

        Assert.True(starting.IsCompletedSuccessfully);
        await starting;
    }

    [Fact]
    public async Task The_static_start_disposes_the_node_when_binding_fails()
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        var logs = new CapturedLogs();
        var options = new NodeOptions(Options("bindfail")) { ServicePort = ((IPEndPoint)holder.LocalEndpoint).Port, LoggerFactory = logs };

        await Assert.ThrowsAsync<SocketException>(() => Node.StartAsync(options));

        Assert.True(logs.Has("NodeStopped"), "the node that could not start was shut down");
    }

    [Fact]
    public async Task The_static_start_disposes_the_node_when_its_name_check_is_cancelled()
    {
        var logs = new CapturedLogs();
        var options = new NodeOptions(Options("checkcancel")) { NameCheckWindow = TimeSpan.FromMinutes(10), LoggerFactory = logs };
        using var stop = new CancellationTokenSource();

        var starting = Node.StartAsync(options, stop.Token);
        Assert.False(starting.IsCompleted);
        await stop.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => starting.Within());
        Assert.True(logs.Has("NodeStopped"), "the node whose start was cancelled was shut down");
    }

    [Fact]
    public async Task Starting_under_the_name_of_a_live_node_fails_with_a_conflict_that_names_it()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var holder = await Node.StartAsync(Options("taken", port));
        var logs = new CapturedLogs();
        // Ten times the default window: the live node's answer must arrive inside it on a loaded machine.
        var options = new NodeOptions(Options("taken", port)) { NameCheckWindow = TimeSpan.FromSeconds(1), LoggerFactory = logs };

        var error = await Assert.ThrowsAsync<NameConflictException>(() => Node.StartAsync(options).Within());

        Assert.Equal("taken", error.PeerName);
        Assert.Equal(
            $"Node 'taken' cannot start: a live node at {holder.ServiceEndPoint} (instance {holder.InstanceId}) already uses that name " +
            $"on protocol 'itecnet', discovery port {port}. Choose another name, stop the other node, " +
            "or set NodeOptions.AllowDuplicateName to start anyway (the older node keeps the name).", error.Message);
        Assert.True(logs.Has("NodeStopped"));
    }

    [Fact]
    public async Task Shutdown_is_idempotent_in_all_its_forms_and_logs_once()
    {
        var logs = new CapturedLogs();
        var node = await Node.StartAsync(new NodeOptions(Options("stopper")) { LoggerFactory = logs });

        await node.DisposeAsync();
        await node.DisposeAsync();
        node.Shutdown();
        node.Dispose();

        Assert.Single(logs.Entries, e => e.EventName == "NodeStopped");
        Assert.Equal("Node stopper shut down", logs.Entries.Single(e => e.EventName == "NodeStopped").Message);
    }

    [Fact]
    public async Task Shutdown_and_Dispose_shut_the_node_down_like_DisposeAsync()
    {
        var shut = await StartAsync("shut");
        var disposed = await StartAsync("disposed");

        shut.Shutdown();
        disposed.Dispose();

        foreach (var node in new[] { shut, disposed })
        {
            Assert.True(node.IsDisposed);
            await Assert.ThrowsAsync<ObjectDisposedException>(() => node.RequestAsync("x", "f"));
            await Assert.ThrowsAsync<ObjectDisposedException>(() => node.PublishAsync("t", 1));
            Assert.Throws<ObjectDisposedException>(() => node.Subscribe<int>("t", _ => { }));
        }
    }

    [Fact]
    public async Task After_shutdown_calls_fail_as_disposed_before_their_arguments_are_looked_at_peer_by_peer()
    {
        await using var pair = await PairAsync();
        var bob = pair.Alice.Peers.Resolve("bob");
        await pair.Alice.DisposeAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => pair.Alice.RequestAsync("bob", "f"));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => pair.Alice.GetFunctionsAsync("bob"));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => CallOnAsync(pair.Alice, bob, "f"));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => pair.Alice.GetEventConnectionAsync(bob, default));
        Assert.False(await pair.Alice.IsAliveAsync(bob));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () =>
        {
            await foreach (var _ in pair.Alice.RequestStreamAsync("bob", "f"))
            {
            }
        });
    }

    [Fact]
    public async Task Shutdown_closes_the_listener_releases_waiters_and_forgets_the_peers()
    {
        await using var node = await StartAsync("closing");
        var endPoint = node.ServiceEndPoint;
        var waiting = node.Peers.WaitForAsync("nobody");
        FacadeNodes.Observe(node, "itecnet|someone|127.0.0.1:1|p2p1|0123456789abcdef|alive|3000|1");
        Assert.Single(node.Peers);

        await node.DisposeAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting.Within());
        Assert.Empty(node.Peers);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await Assert.ThrowsAsync<SocketException>(() => client.ConnectAsync(endPoint).Within());
    }

    [Fact]
    public async Task A_node_that_leaves_says_goodbye_so_a_peer_drops_it_at_once()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var alice = await Node.StartAsync(Options("alice", port));
        await using var bob = await Node.StartAsync(Options("bob", port));
        await alice.Peers.WaitForAsync("bob").Within(); // found through the hello (real discovery, loopback)
        var left = new TaskCompletionSource<PeerInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        alice.Peers.Left += (_, peer) => left.TrySetResult(peer);

        await bob.DisposeAsync();

        Assert.Equal(bob.InstanceId, (await left.Task.Within()).InstanceId);
    }

    [Fact]
    public async Task A_node_reports_its_name_options_instance_and_clock()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero));
        var options = new NodeOptions(Options("me")) { TimeProvider = time, AdvertiseInterval = TimeSpan.FromSeconds(7) };
        await using var node = await Node.StartAsync(options);
        await using var other = await StartAsync("other");

        Assert.Equal("me", node.Name);
        Assert.Same(options, node.Options);
        Assert.Matches("^[0-9a-f]{16}$", node.InstanceId);
        Assert.NotEqual(node.InstanceId, other.InstanceId);
        Assert.Null(node.PeerId);
        time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(time.GetUtcNow(), node.Now);
        var self = node.SelfInfo;
        Assert.Equal(("me", "itecnet", node.ServiceEndPoint, node.InstanceId), (self.Name, self.Protocol, self.EndPoint, self.InstanceId));
        Assert.Equal(new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero), self.StartedAt);
        Assert.Equal(time.GetUtcNow(), self.LastSeen);
        Assert.Equal(TimeSpan.FromSeconds(7), self.AdvertiseInterval);
    }

    [Fact]
    public async Task The_hello_says_who_the_node_is_and_what_it_accepts()
    {
        await using var node = Node.Create(new NodeOptions(Options("hello"))
        {
            MaxFrameSize = 123_456,
            IdleConnectionTimeout = TimeSpan.FromSeconds(42),
            Events = new EventOptions { MaxTopicsPerPeer = 17 },
            MaxConcurrentRequestsPerConnection = 9,
        });

        var hello = node.LocalHello;
        Assert.Equal((Messages.ProtocolVersion, "hello", node.InstanceId, 123_456, 42_000L), (hello.Version, hello.Name, hello.InstanceId, hello.MaxFrameSize, hello.IdleTimeoutMs));
        Assert.Equal(17, hello.MaxPeerTopics);
        IRequestHost host = node;
        Assert.Equal(hello, host.LocalHello);
        Assert.Equal(9, host.MaxConcurrentRequests);
        Assert.Null(host.Tls);
        Assert.NotNull(host.Logger);
        Assert.NotNull(host.WorkInFlight);
        Assert.NotNull(host.Events);
    }

    [Fact]
    public async Task The_serializer_options_read_untrusted_data_within_the_kwargs_budget_and_never_compress()
    {
        var configured = MessagePackSerializerOptions.Standard.WithCompression(MessagePackCompression.Lz4BlockArray);
        await using var node = Node.Create(new NodeOptions(Options("ser")) { SerializerOptions = configured, MaxKwargsElements = 77 });

        Assert.Equal(MessagePackCompression.None, node.SerializerOptions.Compression);
        var security = Assert.IsType<UntrustedInputSecurity>(node.SerializerOptions.Security);
        Assert.Equal(77, security.MaxKwargsElements);
        Assert.True(security.HashCollisionResistant);
    }

    [Fact]
    public async Task Generated_formatters_come_before_the_standard_resolver_and_after_a_custom_one()
    {
        ServiceRegistry.AddResolver(new OneFormatterResolver("generated"));
        await using var standard = Node.Create(Options("std"));
        await using var custom = Node.Create(new NodeOptions(Options("custom"))
        {
            SerializerOptions = MessagePackSerializerOptions.Standard.WithResolver(
                MessagePack.Resolvers.CompositeResolver.Create(new OneFormatterResolver("custom"), MessagePack.Resolvers.StandardResolver.Instance)),
        });

        Assert.Equal("generated", ((TaggedFormatter)standard.SerializerOptions.Resolver.GetFormatter<ResolverProbe>()!).Tag);
        // A type the standard resolver serves too: the generated formatter still wins.
        Assert.IsType<AttributedFormatter>(standard.SerializerOptions.Resolver.GetFormatter<AttributedProbe>());
        Assert.Equal("custom", ((TaggedFormatter)custom.SerializerOptions.Resolver.GetFormatter<ResolverProbe>()!).Tag);
        // The standard resolver still serves everything else, behind the generated formatters.
        Assert.NotNull(standard.SerializerOptions.Resolver.GetFormatter<int>());
        Assert.NotNull(custom.SerializerOptions.Resolver.GetFormatter<int>());
    }

    [Fact]
    public async Task A_secure_node_has_the_id_of_its_identity_and_says_so_when_it_starts()
    {
        var identity = NodeIdentity.Create();
        var logs = new CapturedLogs();
        await using var node = await Node.StartAsync(new NodeOptions(Options("secure"))
        {
            Security = NodeSecurity.Pinned(identity, []),
            LoggerFactory = logs,
        });

        Assert.Equal(identity.Id, node.PeerId);
        Assert.NotNull(node.Tls);
        Assert.NotNull(node.Seal);
        Assert.NotNull(((IRequestHost)node).Tls);
        Assert.Contains(logs.Entries, e => e.Message == $"Node secure is secure (Pinned), id {identity.Id}");
        await using var shared = Node.Create(new NodeOptions(Options("shared")) { Security = NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey()) });
        Assert.NotNull(shared.PeerId);
        await using var open = Node.Create(Options("open"));
        Assert.Null(open.Tls);
        Assert.Null(open.Seal);
    }

    [Fact]
    public async Task Starting_logs_where_the_node_serves()
    {
        var logs = new CapturedLogs();
        var port = LoopbackPorts.FreeUdpPort();
        await using var node = await Node.StartAsync(new NodeOptions(Options("logged", port)) { LoggerFactory = logs });

        var started = Assert.Single(logs.Entries, e => e.EventName == "NodeStarted");
        Assert.Equal($"Node logged serves on {node.ServiceEndPoint} (Loopback, discovery port {port})", started.Message);
        Assert.Equal("P2PLocal.Rpc.Node.logged", started.Category);
        Assert.DoesNotContain(logs.Entries, e => e.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task The_node_reaps_its_idle_outgoing_connections_on_its_own_clock()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        // Alice's idle timeout is short and on the fake clock; Bob's is the 2-minute default on real time, so only
        // Alice's reaper can close the connection here.
        await using var pair = await PairAsync(alice: o => new NodeOptions(o) { TimeProvider = time, IdleConnectionTimeout = TimeSpan.FromSeconds(1) });
        pair.Bob.Register("f", _ => 1);
        Assert.Equal(1L, await pair.Alice.RequestAsync("bob", "f").Within());
        var connection = Assert.Single(pair.Alice.Pool.Connections);

        await AdvanceUntilAsync(time, () => connection.IsClosed);
    }

    [Fact]
    public async Task The_node_reaps_an_incoming_connection_that_never_says_hello_on_its_own_clock()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var node = await Node.StartAsync(new NodeOptions(Options("reaper")) { TimeProvider = time, HandshakeTimeout = TimeSpan.FromSeconds(1) });
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await silent.ConnectAsync(node.ServiceEndPoint).Within();
        var closed = ReceiveEndAsync(silent);

        await AdvanceUntilAsync(time, () => closed.IsCompleted);
        await closed;
    }

    /// <summary>Completes when the peer closes or resets the connection.</summary>
    private static async Task ReceiveEndAsync(Socket socket)
    {
        var buffer = new byte[1024];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None) > 0)
            {
            }
        }
        catch (SocketException)
        {
            // A reset is an end too.
        }
    }

    /// <summary>Moves the fake clock a reaper period at a time (up to 10 s of it) until <paramref name="done"/> holds.</summary>
    private static async Task AdvanceUntilAsync(FakeTimeProvider time, Func<bool> done)
    {
        for (var i = 0; i < 40 && !done(); i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(250));
            await Task.Delay(5);
        }

        await Patience.Until(done); // only the fake clock moves the reapers: real time alone never gets here
    }

    [Fact]
    public async Task Shutdown_lets_a_running_request_finish_and_closes_the_outgoing_connections()
    {
        await using var pair = await PairAsync();
        await using var carol = await StartAsync("carol");
        Introduce(pair.Bob, carol);
        carol.Register("ping", _ => 1);
        Assert.Equal(1L, await pair.Bob.RequestAsync("carol", "ping").Within());
        var outgoing = Assert.Single(pair.Bob.Pool.Connections);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        pair.Bob.Register("slow", async (_, _) =>
        {
            entered.TrySetResult();
            await release.Task;
            return "done";
        });
        var call = pair.Alice.RequestAsync("bob", "slow");
        await entered.Task.Within();

        var stopping = pair.Bob.DisposeAsync().AsTask();
        await Patience.Until(() => pair.Bob.IsDisposed);
        await Task.WhenAny(stopping, Task.Delay(200));
        Assert.False(stopping.IsCompleted, "shutdown waits for the running request (up to ShutdownGracePeriod)");
        release.TrySetResult();

        Assert.Equal("done", await call.Within());
        await stopping.Within();
        Assert.True(outgoing.IsClosed);
    }

    private sealed class ResolverProbe;

    private sealed class TaggedFormatter(string tag) : MessagePack.Formatters.IMessagePackFormatter<ResolverProbe>
    {
        public string Tag => tag;

        public void Serialize(ref MessagePackWriter writer, ResolverProbe value, MessagePackSerializerOptions options) => writer.Write(tag);

        public ResolverProbe Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options)
        {
            reader.Skip();
            return new ResolverProbe();
        }
    }

    [MessagePackObject]
    public sealed class AttributedProbe
    {
        [Key(0)]
        public int Value { get; set; }
    }

    private sealed class AttributedFormatter : MessagePack.Formatters.IMessagePackFormatter<AttributedProbe>
    {
        public void Serialize(ref MessagePackWriter writer, AttributedProbe value, MessagePackSerializerOptions options) => writer.Write(value.Value);

        public AttributedProbe Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options) => new() { Value = reader.ReadInt32() };
    }

    private sealed class OneFormatterResolver(string tag) : IFormatterResolver
    {
        private readonly TaggedFormatter _formatter = new(tag);
        private readonly AttributedFormatter _attributed = new();

        public MessagePack.Formatters.IMessagePackFormatter<T>? GetFormatter<T>() =>
            typeof(T) == typeof(ResolverProbe) ? (MessagePack.Formatters.IMessagePackFormatter<T>)(object)_formatter
            : typeof(T) == typeof(AttributedProbe) && tag == "generated" ? (MessagePack.Formatters.IMessagePackFormatter<T>)(object)_attributed
            : null;
    }
}
