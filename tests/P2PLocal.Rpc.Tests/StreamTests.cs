using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using MessagePack;

namespace P2PLocal.Rpc.Tests;

/// <summary>
/// Streamed results (issue 14): order, flow control, cancellation both ways, errors and lost connections mid-stream,
/// older peers, and what a stranger can make a node hold.
/// </summary>
public class StreamTests
{
    private const int Window = 8;

    private static Task<Node> StartAsync(string name, int port, int window = Window, TimeSpan? requestTimeout = null, int? maxConcurrent = null) =>
        Node.StartAsync(new NodeOptions
        {
            Name = name,
            DiscoveryPort = port,
            Scope = DiscoveryScope.Loopback,
            ShutdownGracePeriod = TimeSpan.FromMilliseconds(500),
            StreamWindow = window,
            RequestTimeout = requestTimeout ?? TimeSpan.FromSeconds(30),
            MaxConcurrentRequestsPerConnection = maxConcurrent ?? 1024,
        });

    private static async Task<(Node Alice, Node Bob)> PairAsync(int window = Window, TimeSpan? requestTimeout = null, int? maxConcurrent = null)
    {
        var port = TestNetwork.FreeUdpPort();
        var bob = await StartAsync("bob", port, window, maxConcurrent: maxConcurrent);
        var alice = await StartAsync("alice", port, window, requestTimeout);
        await alice.Peers.WaitForAsync("bob").Within();
        return (alice, bob);
    }

    private static async IAsyncEnumerable<object?> Count(long n, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        for (var i = 0L; i < n; i++)
        {
            await Task.Yield();
            cancellationToken.ThrowIfCancellationRequested();
            yield return i;
        }
    }

    private static Dictionary<string, object?> N(long n) => new() { ["n"] = n };

    [Fact]
    public async Task Items_arrive_in_order_then_the_stream_ends()
    {
        var (alice, bob) = await PairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.RegisterStream("count", (kwargs, ct) => Count((long)kwargs["n"]!, ct));

        var items = await alice.RequestStreamAsync("bob", "count", N(100)).ToListAsync().AsTask().Within();
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (object?)(long)i), items);
        var typed = await alice.RequestStreamAsync<int>("bob", "count", N(3)).ToListAsync().AsTask().Within();
        Assert.Equal([0, 1, 2], typed);
        Assert.Empty(await alice.RequestStreamAsync("bob", "count", N(0)).ToListAsync().AsTask().Within());

        var described = Assert.Single(await alice.GetFunctionsAsync("bob").Within(), f => f.Name == "count");
        Assert.True(described.IsStream);
        Assert.Equal("stream<object>", described.ReturnType);
    }

    [Fact]
    public async Task The_producer_never_runs_more_than_the_window_ahead_of_the_reader()
    {
        var (alice, bob) = await PairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.Register("ping", _ => "pong");
        long yielded = 0, read = 0, maxLead = 0;
        const int Total = 10 * Window;
        bob.RegisterStream("count", (kwargs, ct) => Produce(ct));

        async IAsyncEnumerable<object?> Produce([EnumeratorCancellation] CancellationToken ct)
        {
            for (var i = 0; i < Total; i++)
            {
                var lead = Interlocked.Increment(ref yielded) - Volatile.Read(ref read);
                InterlockedMax(ref maxLead, lead);
                yield return i;
                await Task.Yield();
            }
        }

        await foreach (var item in alice.RequestStreamAsync("bob", "count"))
        {
            var r = Interlocked.Increment(ref read);
            Assert.Equal(r - 1, (long)item!);
            if (r % (2 * Window) == 0 && r < Total - Window)
            {
                // The reader stops: the producer fills the window, then must stop too. Round trips to the same node
                // give it every chance to run further before the position is checked (observed, not timed).
                await Patience.Until(() => Volatile.Read(ref yielded) >= r + Window);
                for (var i = 0; i < 3; i++)
                    Assert.Equal("pong", await alice.RequestAsync("bob", "ping").Within());
                Assert.InRange(Volatile.Read(ref yielded) - r, Window, Window + 1);
            }
        }

        Assert.Equal(Total, read);
        Assert.InRange(Interlocked.Read(ref maxLead), Window, Window + 2);
    }

    private static void InterlockedMax(ref long target, long value)
    {
        for (var seen = Volatile.Read(ref target); value > seen; seen = Volatile.Read(ref target))
        {
            if (Interlocked.CompareExchange(ref target, value, seen) == seen)
                return;
        }
    }

    [Fact]
    public async Task A_caller_whose_window_is_far_larger_than_the_producers_gets_every_item()
    {
        // The producer runs the smaller window (8); a caller holding its credit back for half of its own (64 / 2) would
        // leave it waiting after 8 items until RequestTimeout (found by the Python client's interop tests).
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await StartAsync("bob", port, window: 8);
        await using var alice = await StartAsync("alice", port, window: 64, requestTimeout: TimeSpan.FromSeconds(10));
        await alice.Peers.WaitForAsync("bob").Within();
        bob.RegisterStream("count", (kwargs, ct) => Count((long)kwargs["n"]!, ct));

        var items = await alice.RequestStreamAsync("bob", "count", N(200)).ToListAsync().AsTask().Within();
        Assert.Equal(Enumerable.Range(0, 200).Select(i => (object?)(long)i), items);
    }

    [Fact]
    public async Task Leaving_the_loop_or_cancelling_the_reader_stops_the_producer()
    {
        var (alice, bob) = await PairAsync();
        await using var _ = alice;
        await using var __ = bob;
        var stopped = new[] { NewSignal(), NewSignal() };
        var calls = 0;
        bob.RegisterStream("forever", (kwargs, ct) => Forever(stopped[Interlocked.Increment(ref calls) - 1], ct));

        await foreach (var item in alice.RequestStreamAsync("bob", "forever"))
        {
            if ((long)item! == 5)
                break;
        }

        await stopped[0].Task.Within();

        using var cts = new CancellationTokenSource();
        var seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var item in alice.RequestStreamAsync("bob", "forever").WithCancellation(cts.Token))
            {
                if (++seen == 3)
                    cts.Cancel();
            }
        }).Within();
        Assert.Equal(3, seen);
        await stopped[1].Task.Within();
        Assert.Equal("still served", await RegisterAndCallAsync(alice, bob));
    }

    private static async Task<string> RegisterAndCallAsync(Node alice, Node bob)
    {
        bob.Register("still", _ => "still served");
        return await alice.RequestAsync<string>("bob", "still").Within();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static async IAsyncEnumerable<object?> Forever(TaskCompletionSource stopped, [EnumeratorCancellation] CancellationToken ct)
    {
        using var registration = ct.Register(() => stopped.TrySetResult());
        for (var i = 0L; ; i++)
        {
            yield return i;
            await Task.Yield();
        }
    }

    [Fact]
    public async Task A_producer_cancelled_on_its_side_ends_the_stream_for_the_reader()
    {
        var port = TestNetwork.FreeUdpPort();
        var bob = await StartAsync("bob", port);
        await using var alice = await StartAsync("alice", port);
        await alice.Peers.WaitForAsync("bob").Within();
        var twoSent = NewSignal();
        bob.RegisterStream("slow", (kwargs, ct) => TwoThenWait(twoSent, ct));

        await using var reader = alice.RequestStreamAsync("bob", "slow").GetAsyncEnumerator();
        Assert.True(await reader.MoveNextAsync().AsTask().Within());
        Assert.True(await reader.MoveNextAsync().AsTask().Within());
        var next = reader.MoveNextAsync().AsTask();
        await bob.DisposeAsync(); // shutdown cancels the producer after its grace period
        var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.Within());
        Assert.Contains("slow", error.Message, StringComparison.Ordinal);
    }

    private static async IAsyncEnumerable<object?> TwoThenWait(TaskCompletionSource sent, [EnumeratorCancellation] CancellationToken ct)
    {
        yield return 1L;
        yield return 2L;
        sent.TrySetResult();
        await Task.Delay(Timeout.Infinite, ct);
    }

    [Fact]
    public async Task An_error_in_the_producer_arrives_after_the_items_already_sent()
    {
        var (alice, bob) = await PairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.RegisterStream("fails", (kwargs, ct) => ThreeThenThrow());

        var items = new List<object?>();
        var error = await Assert.ThrowsAsync<RemoteException>(async () =>
        {
            await foreach (var item in alice.RequestStreamAsync("bob", "fails"))
                items.Add(item);
        }).Within();
        Assert.Equal([0L, 1L, 2L], items);
        Assert.Equal("System.InvalidOperationException", error.RemoteType);
        Assert.Equal("boom after three", error.RemoteMessage);
    }

    private static async IAsyncEnumerable<object?> ThreeThenThrow()
    {
        for (var i = 0L; i < 3; i++)
            yield return i;
        await Task.Yield();
        throw new InvalidOperationException("boom after three");
    }

    [Fact]
    public async Task Waiting_longer_than_the_request_timeout_for_an_item_fails_and_stops_the_producer()
    {
        var (alice, bob) = await PairAsync(requestTimeout: TimeSpan.FromMilliseconds(500));
        await using var _ = alice;
        await using var __ = bob;
        var stopped = NewSignal();
        bob.RegisterStream("stalls", (kwargs, ct) => OneThenStall(stopped, ct));

        await using var reader = alice.RequestStreamAsync("bob", "stalls").GetAsyncEnumerator();
        Assert.True(await reader.MoveNextAsync().AsTask().Within());
        var error = await Assert.ThrowsAsync<TimeoutException>(() => reader.MoveNextAsync().AsTask().Within());
        Assert.Contains("'stalls'", error.Message, StringComparison.Ordinal);
        await stopped.Task.Within();
    }

    private static async IAsyncEnumerable<object?> OneThenStall(TaskCompletionSource stopped, [EnumeratorCancellation] CancellationToken ct)
    {
        using var registration = ct.Register(() => stopped.TrySetResult());
        yield return 1L;
        await Task.Delay(Timeout.Infinite, ct);
    }

    [Fact]
    public async Task Calls_of_the_wrong_shape_are_refused_with_a_clear_error()
    {
        var (alice, bob) = await PairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.Register("one", _ => 1);
        bob.RegisterStream("many", (kwargs, ct) => Count(2, ct));

        var notStream = await Assert.ThrowsAsync<MethodNotFoundException>(() => alice.RequestStreamAsync("bob", "one").ToListAsync().AsTask().Within());
        Assert.Contains("RequestAsync", notStream.Message, StringComparison.Ordinal);
        var notOne = await Assert.ThrowsAsync<MethodNotFoundException>(() => alice.RequestAsync("bob", "many").Within());
        Assert.Contains("RequestStreamAsync", notOne.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<MethodNotFoundException>(() => alice.RequestStreamAsync("bob", "none").ToListAsync().AsTask().Within());
    }

    [Fact]
    public async Task A_stream_holds_its_request_slot_until_it_ends()
    {
        var (alice, bob) = await PairAsync(maxConcurrent: 2);
        await using var _ = alice;
        await using var __ = bob;
        bob.RegisterStream("forever", (kwargs, ct) => Forever(NewSignal(), ct));
        bob.Register("one", _ => 1);

        var first = alice.RequestStreamAsync("bob", "forever").GetAsyncEnumerator();
        var second = alice.RequestStreamAsync("bob", "forever").GetAsyncEnumerator();
        Assert.True(await first.MoveNextAsync().AsTask().Within());
        Assert.True(await second.MoveNextAsync().AsTask().Within());
        await Assert.ThrowsAsync<PeerBusyException>(() => alice.RequestAsync("bob", "one").Within());

        await first.DisposeAsync();
        await second.DisposeAsync();
        // The slots free once bob has read the cancels and written their replies.
        await Patience.Until(() => alice.RequestAsync("bob", "one").ContinueWith(t => t.IsCompletedSuccessfully).GetAwaiter().GetResult());
    }

    [Fact]
    public async Task Three_nodes_stream_to_each_other_at_once_and_a_cancel_crosses_two_hops()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await StartAsync("alice", port);
        await using var bob = await StartAsync("bob", port);
        await using var carol = await StartAsync("carol", port);
        await alice.Peers.WaitForAsync("bob").Within();
        await alice.Peers.WaitForAsync("carol").Within();
        await bob.Peers.WaitForAsync("carol").Within();
        bob.RegisterStream("count", (kwargs, ct) => Count((long)kwargs["n"]!, ct));
        carol.RegisterStream("count", (kwargs, ct) => Count((long)kwargs["n"]!, ct));
        var carolStopped = NewSignal();
        carol.RegisterStream("forever", (kwargs, ct) => Forever(carolStopped, ct));
        // Bob relays carol's stream: alice -> bob -> carol.
        bob.RegisterStream("relay", (kwargs, ct) => bob.RequestStreamAsync("carol", "forever", cancellationToken: ct));

        await using var fromBob = alice.RequestStreamAsync("bob", "count", N(300)).GetAsyncEnumerator();
        await using var fromCarol = alice.RequestStreamAsync("carol", "count", N(300)).GetAsyncEnumerator();
        for (var i = 0L; i < 300; i++)
        {
            Assert.True(await fromBob.MoveNextAsync().AsTask().Within());
            Assert.True(await fromCarol.MoveNextAsync().AsTask().Within());
            Assert.Equal(i, fromBob.Current);
            Assert.Equal(i, fromCarol.Current);
        }

        Assert.False(await fromBob.MoveNextAsync().AsTask().Within());
        Assert.False(await fromCarol.MoveNextAsync().AsTask().Within());

        var relayed = 0L;
        await foreach (var item in alice.RequestStreamAsync("bob", "relay"))
        {
            Assert.Equal(relayed, item);
            if (++relayed == 50)
                break;
        }

        await carolStopped.Task.Within();
    }

    [Fact]
    public async Task A_dropped_connection_ends_the_stream_with_PeerConnectionException_after_the_items_received()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await StartAsync("alice", port);
        await using var peer = new ScriptedPeer(offersStreams: true, async wire =>
        {
            var request = await wire.ReadAsync();
            var (kind, id) = WireSocket.Head(request);
            Assert.Equal(7, kind);
            for (var i = 0; i < 2; i++)
                await wire.SendAsync((ref MessagePackWriter w) => { w.WriteArrayHeader(3); w.Write(5); w.Write(id); w.Write(i); });
            wire.Socket.Shutdown(SocketShutdown.Both);
        });
        peer.Announce(port);
        await alice.Peers.WaitForAsync("scripted").Within();

        var items = new List<object?>();
        var error = await Assert.ThrowsAsync<PeerConnectionException>(async () =>
        {
            await foreach (var item in alice.RequestStreamAsync("scripted", "f"))
                items.Add(item);
        }).Within();
        Assert.Equal([0L, 1L], items);
        Assert.Contains("scripted", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_peer_that_sends_more_items_than_granted_loses_the_connection()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await StartAsync("alice", port, window: 4);
        await using var peer = new ScriptedPeer(offersStreams: true, async wire =>
        {
            var (_, id) = WireSocket.Head(await wire.ReadAsync());
            for (var i = 0; i < 100; i++)
                await wire.SendAsync((ref MessagePackWriter w) => { w.WriteArrayHeader(3); w.Write(5); w.Write(id); w.Write(i); });
            await wire.TryReadAsync(); // until alice closes
        });
        peer.Announce(port);
        await alice.Peers.WaitForAsync("scripted").Within();

        await using var reader = alice.RequestStreamAsync("scripted", "f").GetAsyncEnumerator();
        Assert.True(await reader.MoveNextAsync().AsTask().Within()); // reads one, then waits: the window is full, and more come
        await Assert.ThrowsAsync<PeerConnectionException>(async () =>
        {
            while (await reader.MoveNextAsync())
            {
            }
        }).Within();
    }

    [Fact]
    public async Task An_older_peer_is_never_sent_a_stream_request_and_the_caller_is_told_why_at_once()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await StartAsync("alice", port);
        var nextKind = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var peer = new ScriptedPeer(offersStreams: false, async wire =>
        {
            var request = await wire.ReadAsync();
            var (kind, id) = WireSocket.Head(request);
            nextKind.TrySetResult(kind);
            await wire.SendAsync((ref MessagePackWriter w) => { w.WriteArrayHeader(3); w.Write(1); w.Write(id); w.Write("ok"); });
            await wire.TryReadAsync();
        });
        peer.Announce(port);
        await alice.Peers.WaitForAsync("scripted").Within();

        var error = await Assert.ThrowsAsync<NotSupportedException>(() => alice.RequestStreamAsync("scripted", "f").ToListAsync().AsTask().Within());
        Assert.Contains("'stream' feature", error.Message, StringComparison.Ordinal);
        Assert.Contains("scripted", error.Message, StringComparison.Ordinal);
        Assert.Equal("ok", await alice.RequestAsync<string>("scripted", "g").Within()); // the connection still serves
        Assert.Equal(0, await nextKind.Task.Within()); // the first frame after the hello was that plain request
    }

    [Fact]
    public async Task A_node_says_it_takes_streams_and_closes_on_a_message_kind_it_does_not_know()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await StartAsync("bob", port);
        using var wire = await WireSocket.ConnectAsync(bob.ServiceEndPoint);
        var hello = new MessagePackReader(await wire.HelloAsync());
        var count = hello.ReadArrayHeader();
        for (var i = 0; i < 6; i++)
            hello.Skip();
        var features = new List<string?>();
        for (var n = hello.ReadArrayHeader(); n > 0; n--)
            features.Add(hello.ReadString());
        Assert.Equal(7, count);
        Assert.Contains("stream", features);

        await wire.SendAsync((ref MessagePackWriter w) => { w.WriteArrayHeader(2); w.Write(99); w.Write(1u); });
        Assert.Null(await wire.TryReadAsync().Within()); // closed, not left waiting
    }

    [Fact]
    public async Task A_stranger_cannot_make_a_stream_run_ahead_by_asking_for_a_huge_window_or_granting_credit_for_unsent_items()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await StartAsync("bob", port);
        long yielded = 0;
        var go = NewSignal();
        bob.RegisterStream("forever", (kwargs, ct) => Counted(ct));

        async IAsyncEnumerable<object?> Counted([EnumeratorCancellation] CancellationToken ct)
        {
            await go.Task.WaitAsync(ct);
            for (var i = 0L; ; i++)
            {
                Interlocked.Increment(ref yielded);
                yield return i;
                await Task.Yield();
            }
        }

        using var wire = await WireSocket.ConnectAsync(bob.ServiceEndPoint);
        await wire.HelloAsync();
        await wire.SendAsync((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(5);
            w.Write(7); w.Write(1u); w.Write("forever"); w.WriteMapHeader(0); w.Write(uint.MaxValue);
        });
        for (var i = 0; i < 3; i++)
            await wire.SendAsync((ref MessagePackWriter w) => { w.WriteArrayHeader(3); w.Write(6); w.Write(1u); w.Write(uint.MaxValue); });
        await RoundTripAsync(2); // bob has read the credits, all before any item was sent
        go.TrySetResult();
        await Patience.Until(() => Interlocked.Read(ref yielded) >= Window);
        var items = await RoundTripAsync(3);

        Assert.InRange(items, 0, Window);
        Assert.Equal(Window, Interlocked.Read(ref yielded)); // the producer waits for credit before it makes the next item

        // Frames are read in order, so once the reply to a plain request is in, bob has read everything sent before it.
        async Task<int> RoundTripAsync(uint id)
        {
            await wire.SendAsync((ref MessagePackWriter w) => { w.WriteArrayHeader(4); w.Write(0); w.Write(id); w.Write("$methods"); w.WriteMapHeader(0); });
            var seen = 0;
            while (true)
            {
                var (kind, replyTo) = WireSocket.Head(await wire.ReadAsync().Within());
                if (replyTo == id)
                    return seen;
                Assert.Equal(5, kind);
                seen++;
            }
        }
    }

    /// <summary>A peer speaking the wire format by hand: a hello with or without the stream feature, then a script.</summary>
    private sealed class ScriptedPeer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly Task _serving;
        private WireSocket? _wire;

        public ScriptedPeer(bool offersStreams, Func<WireSocket, Task> script)
        {
            _listener.Start();
            _serving = ServeAsync(offersStreams, script);
        }

        public void Announce(int discoveryPort)
        {
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { EnableBroadcast = true };
            var port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            udp.SendTo(Encoding.UTF8.GetBytes($"itecnet|scripted|127.0.0.1:{port}|p2p1|scripted-1|hello|3000|1"),
                new IPEndPoint(IPAddress.Parse("127.255.255.255"), discoveryPort));
        }

        private async Task ServeAsync(bool offersStreams, Func<WireSocket, Task> script)
        {
            using var wire = _wire = new WireSocket(await _listener.AcceptSocketAsync());
            await wire.ReadAsync(); // the caller's hello
            await wire.SendAsync((ref MessagePackWriter w) =>
            {
                w.WriteArrayHeader(7);
                w.Write(4); w.Write(1); w.Write("scripted"); w.Write("scripted-1"); w.Write(1 << 20); w.Write(0L);
                w.WriteArrayHeader(offersStreams ? 2 : 1);
                w.Write("extras");
                if (offersStreams)
                    w.Write("stream");
            });
            await script(wire);
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            _wire?.Dispose(); // ends a script that waits for the caller to close
            try
            {
                await _serving.Within();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or EndOfStreamException)
            {
            }
        }
    }
}
