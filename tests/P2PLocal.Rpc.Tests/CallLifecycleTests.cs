using System.Net;
using System.Net.Sockets;
using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.Tests;

/// <summary>
/// What a call does besides succeeding: time out, be cancelled, lose its connection; and that pooled per-call state
/// never leaks from one call into the next.
/// </summary>
public class CallLifecycleTests
{
    private static Dictionary<string, object?> Kwargs(object? value) => new() { ["value"] = value };

    private static async Task<(Node Alice, Node Bob)> PairAsync(TimeSpan? requestTimeout = null)
    {
        var port = TestNetwork.FreeUdpPort();
        var bob = await TestNetwork.StartAsync("bob", port);
        var alice = await Node.StartAsync(new NodeOptions
        {
            Name = "alice",
            DiscoveryPort = port,
            Scope = DiscoveryScope.Loopback,
            RequestTimeout = requestTimeout ?? TimeSpan.FromSeconds(30),
            ShutdownGracePeriod = TimeSpan.FromSeconds(2),
        });

        await alice.Peers.WaitForAsync("bob").Within();
        return (alice, bob);
    }

    [Fact]
    public async Task Timeout_fails_the_call_and_cancels_the_handler_on_the_peer()
    {
        var (alice, bob) = await PairAsync(TimeSpan.FromSeconds(1));
        await using var _ = alice;
        await using var __ = bob;
        var handlerCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bob.Register("hang", async (kwargs, ct) =>
        {
            using var registration = ct.Register(() => handlerCancelled.TrySetResult());
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        });
        bob.Register("echo", kwargs => kwargs["value"]);

        await Patience.AssertRequestTimeoutAsync(alice.RequestAsync("bob", "hang"), "hang", TimeSpan.FromSeconds(1));
        await handlerCancelled.Task.Within();
        // The connection and its pooled calls still serve.
        Assert.Equal(7L, await alice.RequestAsync("bob", "echo", Kwargs(7)).Within());
    }

    [Fact]
    public async Task Cancelling_the_caller_token_cancels_the_handler_on_the_peer()
    {
        var (alice, bob) = await PairAsync();
        await using var _ = alice;
        await using var __ = bob;
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handlerCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bob.Register("hang", async (kwargs, ct) =>
        {
            using var registration = ct.Register(() => handlerCancelled.TrySetResult());
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        });
        bob.Register("echo", kwargs => kwargs["value"]);

        using var cts = new CancellationTokenSource();
        var call = alice.RequestAsync("bob", "hang", null, cts.Token);
        await started.Task.Within();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.Within());
        await handlerCancelled.Task.Within();
        Assert.Equal("after", await alice.RequestAsync("bob", "echo", Kwargs("after")).Within());
    }

    [Fact]
    public async Task A_token_cancelled_before_the_call_throws_at_once()
    {
        var (alice, bob) = await PairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.Register("echo", kwargs => kwargs["value"]);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => alice.RequestAsync("bob", "echo", Kwargs(1), new CancellationToken(true)).Within());
        Assert.Equal(2L, await alice.RequestAsync("bob", "echo", Kwargs(2)).Within());
    }

    [Fact]
    public async Task Concurrent_calls_each_get_their_own_reply()
    {
        var (alice, bob) = await PairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.Register("echo", async (kwargs, ct) =>
        {
            // Finish out of order so replies overtake each other.
            await Task.Yield();
            return kwargs["value"];
        });

        for (var round = 0; round < 5; round++)
        {
            var calls = Enumerable.Range(0, 200).Select(i => alice.RequestAsync("bob", "echo", Kwargs(i))).ToArray();
            var results = await Task.WhenAll(calls).Within();
            Assert.Equal(Enumerable.Range(0, 200).Select(i => (object?)(long)i), results);
        }
    }

    [Fact]
    public async Task Calls_that_time_out_and_calls_that_succeed_interleave_on_one_connection()
    {
        var (alice, bob) = await PairAsync(TimeSpan.FromSeconds(2));
        await using var _ = alice;
        await using var __ = bob;
        bob.Register("hang", async (kwargs, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        });
        bob.Register("echo", kwargs => kwargs["value"]);

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var hanging = Enumerable.Range(0, 20).Select(_ => alice.RequestAsync("bob", "hang")).ToArray();
        for (var i = 0; i < 200; i++)
            Assert.Equal((long)i, await alice.RequestAsync("bob", "echo", Kwargs(i)).Within());
        foreach (var call in hanging)
            await Patience.AssertRequestTimeoutAsync(call, "hang", TimeSpan.FromSeconds(2), started);
        for (var i = 0; i < 200; i++)
            Assert.Equal((long)i, await alice.RequestAsync("bob", "echo", Kwargs(i)).Within());
    }

    [Fact]
    public async Task Losing_the_connection_fails_every_pending_call()
    {
        // A fake peer that answers the hello, takes three requests, then drops the connection without replying.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var requestsSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fakePeer = Task.Run(async () =>
        {
            using var wire = new WireSocket(await listener.AcceptAsync());
            await wire.ReadAsync(); // hello
            await wire.SendAsync((ref MessagePackWriter w) => Messages.WriteHello(ref w, new Hello(1, "bob", "b0b", 1 << 20)));
            for (var i = 0; i < 3; i++)
                await wire.ReadAsync();
            requestsSeen.TrySetResult();
            wire.Socket.Shutdown(SocketShutdown.Both);
        });

        var options = MessagePackSerializerOptions.Standard;
        var connection = await ClientConnection.ConnectAsync((IPEndPoint)listener.LocalEndPoint!, "bob", null,
            new Hello(1, "alice", "a11ce", 1 << 20), options, TimeSpan.FromSeconds(5), CancellationToken.None).Within();
        try
        {
            KwargsWriter<int> write = static (ref MessagePackWriter w, int _, MessagePackSerializerOptions __) => w.WriteMapHeader(0);
            ResultReader<object?> read = KwargsCodec.ReadValue;
            var calls = Enumerable.Range(0, 3)
                .Select(i => connection.InvokeAsync("f", i, write, read, TimeSpan.FromSeconds(30), CancellationToken.None).AsTask())
                .ToArray();
            await requestsSeen.Task.Within();
            foreach (var call in calls)
                await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
            await Assert.ThrowsAsync<PeerConnectionException>(() =>
                connection.InvokeAsync("f", 0, write, read, TimeSpan.FromSeconds(30), CancellationToken.None).AsTask().Within());
        }
        finally
        {
            await connection.DisposeAsync();
            await fakePeer.Within();
        }
    }
}
