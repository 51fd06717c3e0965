using MessagePack;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// The stream and event paths of a client connection (ClientConnection.Streams.cs, ClientConnection.Events.cs) against
/// a scripted peer: the window and its credit, the end (a result or an error), a lost connection, giving up, and the
/// peer's subscriptions and events sent to it.
/// </summary>
public class StreamAndEventTests
{
    private static ValueTask<ClientConnection.ReceivingStream> Open(ClientConnection connection, string function, int window, CancellationToken cancellationToken = default) =>
        connection.OpenStreamAsync(function, 1, ScriptedPeer.WriteX, window, ScriptedPeer.Forever, cancellationToken);

    /// <summary>A connection to a scripted peer with one stream of "numbers" open on it, and the request the peer read.</summary>
    private static async Task<(ClientConnection Connection, ScriptedPeer Peer, ClientConnection.ReceivingStream Stream, SentMessage Request)> StreamingAsync(int window,
        TimeProvider? clock = null)
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync(clock);
        var stream = await Open(connection, "numbers", window).AsTask().Within();
        return (connection, peer, stream, await peer.ReadAsync(MessageKind.StreamRequest));
    }

    private static async Task<int?> Next(ClientConnection.ReceivingStream stream, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var frame = await stream.NextAsync(timeout ?? ScriptedPeer.Forever, cancellationToken).AsTask().Within();
        return frame is { } item ? stream.Read(item, ScriptedPeer.ReadInt) : null;
    }

    [Fact]
    public async Task A_stream_request_carries_its_window_and_items_come_in_order_then_the_end()
    {
        var (connection, peer, stream, request) = await StreamingAsync(4);
        using var _ = stream;
        Assert.Equal("numbers", request.Function);
        Assert.Equal(5, request.Count);
        Assert.Equal(4u, request.Number);
        Assert.Equal(1, connection.PendingCount); // a stream is pending until it ends
        Assert.Equal("numbers", stream.Function);

        for (var i = 1; i <= 3; i++)
            await peer.SendItemAsync(request.Id, i * 11);
        await peer.EndStreamAsync(request.Id);

        Assert.Equal(11, await Next(stream));
        Assert.Equal(22, await Next(stream));
        Assert.Equal(33, await Next(stream));
        Assert.Null(await Next(stream));
        Assert.Equal(0, connection.PendingCount);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_consumer_grants_credit_for_each_half_window_read()
    {
        var (connection, peer, stream, request) = await StreamingAsync(4);
        using var _ = stream;
        for (var i = 0; i < 4; i++)
            await peer.SendItemAsync(request.Id, i);
        await Patience.Until(() => stream.Waiting == 4); // all here: no read waits, so no credit goes out before its batch

        Assert.Equal(0, await Next(stream));
        Assert.Equal(1, await Next(stream));
        var credit = await peer.ReadAsync(MessageKind.StreamCredit);
        Assert.Equal(request.Id, credit.Id);
        Assert.Equal(2u, credit.Number);

        // With the credit, two more items are allowed beyond the first window: six in all.
        await peer.SendItemAsync(request.Id, 4);
        await peer.SendItemAsync(request.Id, 5);
        Assert.Equal(2, await Next(stream));
        Assert.Equal(3, await Next(stream));
        Assert.Equal(2u, (await peer.ReadAsync(MessageKind.StreamCredit)).Number);
        Assert.Equal(4, await Next(stream));
        Assert.Equal(5, await Next(stream));
        Assert.False(connection.IsClosed);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_window_of_one_is_credited_after_every_item()
    {
        var (connection, peer, stream, request) = await StreamingAsync(1);
        using var _ = stream;
        await peer.SendItemAsync(request.Id, 1);
        Assert.Equal(1, await Next(stream));
        Assert.Equal(1u, (await peer.ReadAsync(MessageKind.StreamCredit)).Number);
        await peer.SendItemAsync(request.Id, 2);
        Assert.Equal(2, await Next(stream));
        Assert.Equal(1u, (await peer.ReadAsync(MessageKind.StreamCredit)).Number);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task More_items_than_the_window_close_the_connection_with_the_reason()
    {
        var (connection, peer, stream, request) = await StreamingAsync(2);
        using var _ = stream;
        for (var i = 0; i < 3; i++)
            await peer.SendItemAsync(request.Id, i);

        var reason = Assert.IsType<InvalidDataException>(await connection.Closed.Within());
        Assert.Equal($"Peer sent more items of 'numbers' (stream {request.Id}) than the window it was granted (2 at most).", reason.Message);

        // The items it had are read first, then the loss.
        Assert.Equal(0, await Next(stream));
        Assert.Equal(1, await Next(stream));
        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => Next(stream));
        Assert.Same(reason, error.InnerException);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_stream_that_ends_in_an_error_throws_it_after_its_items()
    {
        var (connection, peer, stream, request) = await StreamingAsync(8);
        using var _ = stream;
        await peer.SendItemAsync(request.Id, 1);
        await peer.FailAsync(request.Id, ErrorCode.HandlerFailed, "System.IO.IOException", "disk gone");

        Assert.Equal(1, await Next(stream));
        var error = await Assert.ThrowsAsync<RemoteException>(() => Next(stream));
        Assert.Equal("'bob'.numbers failed: System.IO.IOException: disk gone", error.Message);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task An_item_that_cannot_be_read_is_named()
    {
        var (connection, peer, stream, request) = await StreamingAsync(8);
        using var _ = stream;
        await peer.SendAsync((ref MessagePackWriter writer) =>
        {
            StreamMessages.WriteItemHeader(ref writer, request.Id);
            writer.Write("text");
        });

        var error = await Assert.ThrowsAsync<P2PException>(() => Next(stream));
        Assert.StartsWith("Peer 'bob' sent an item of 'numbers' that cannot be read: ", error.Message, StringComparison.Ordinal);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_lost_connection_ends_every_stream_with_PeerConnectionException()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        using var first = await Open(connection, "a", 8).AsTask().Within();
        using var second = await Open(connection, "b", 8).AsTask().Within();
        await peer.ReadAsync(MessageKind.StreamRequest);
        await peer.ReadAsync(MessageKind.StreamRequest);
        peer.Close();

        foreach (var stream in new[] { first, second })
        {
            var error = await Assert.ThrowsAsync<PeerConnectionException>(() => Next(stream));
            Assert.Equal("The connection to peer 'bob' at ? was lost before the reply came.", error.Message);
        }

        Assert.Equal(0, connection.PendingCount);
        await Assert.ThrowsAsync<PeerConnectionException>(() => Open(connection, "c", 8).AsTask().Within());
        Assert.Equal(0, connection.PendingCount); // the stream that could not be sent is not kept
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Disposing_a_running_stream_cancels_it_at_the_peer_and_drops_its_items()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var stream = await Open(connection, "numbers", 8).AsTask().Within();
        var request = await peer.ReadAsync(MessageKind.StreamRequest);
        await peer.SendItemAsync(request.Id, 1);
        await peer.SendItemAsync(request.Id, 2);
        await Patience.Until(() => stream.Waiting == 2);
        Assert.True(connection.BufferedBytes > 0); // unread items count against the buffer limit

        stream.Dispose();
        stream.Dispose();
        var cancel = await peer.ReadAsync(MessageKind.Cancel);
        Assert.Equal(request.Id, cancel.Id);
        Assert.Equal(0, connection.BufferedBytes);
        Assert.Equal(0, connection.PendingCount);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Next(stream));

        // Items and the end that were on their way are dropped; the connection carries on.
        await peer.SendItemAsync(request.Id, 3);
        await peer.EndStreamAsync(request.Id);
        var call = connection.InvokeAsync("f", 1, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        var next = await peer.ReadAsync(MessageKind.Request);
        await peer.ReplyAsync(next.Id, 5);
        Assert.Equal(5, await call.Within());
        Assert.False(connection.IsClosed);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Disposing_an_ended_stream_sends_no_cancel()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var stream = await Open(connection, "numbers", 8).AsTask().Within();
        var request = await peer.ReadAsync(MessageKind.StreamRequest);
        await peer.EndStreamAsync(request.Id);
        Assert.Null(await Next(stream));
        stream.Dispose();

        // The next thing the peer reads is the next request, not a cancel.
        var call = connection.InvokeAsync("f", 1, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        Assert.Equal(MessageKind.Request, (await peer.ReadAsync()).Kind);
        connection.Close();
        await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task No_item_within_the_timeout_cancels_the_stream_at_the_peer()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var stream = await Open(connection, "numbers", 8).AsTask().Within();
        var request = await peer.ReadAsync(MessageKind.StreamRequest);

        var error = await Assert.ThrowsAsync<TimeoutException>(() => Next(stream, TimeSpan.FromMilliseconds(100)));
        Assert.Equal("Peer 'bob' sent no item of 'numbers' within 100 ms (NodeOptions.RequestTimeout); the stream was cancelled there.", error.Message);
        Assert.Equal(request.Id, (await peer.ReadAsync(MessageKind.Cancel)).Id);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Credit_held_back_goes_out_before_the_reader_waits_for_the_next_item()
    {
        // A peer may run a smaller window than ours: the two items read of a batch of four could be what it waits for.
        var (connection, peer, stream, request) = await StreamingAsync(8);
        using var _ = stream;
        await peer.SendItemAsync(request.Id, 1);
        await peer.SendItemAsync(request.Id, 2);
        Assert.Equal(1, await Next(stream));
        Assert.Equal(2, await Next(stream));

        var next = Next(stream); // nothing waiting: the reader waits, after granting what it read
        var granted = 0u;
        while (granted < 2)
        {
            var credit = await peer.ReadAsync(MessageKind.StreamCredit);
            Assert.Equal(request.Id, credit.Id);
            granted += credit.Number;
        }

        Assert.Equal(2u, granted);
        await peer.SendItemAsync(request.Id, 3);
        Assert.Equal(3, await next);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task No_item_within_the_timeout_is_timed_on_the_connections_clock()
    {
        var clock = new FakeTimeProvider();
        var (connection, peer, stream, request) = await StreamingAsync(8, clock);
        var next = stream.NextAsync(TimeSpan.FromHours(1), CancellationToken.None).AsTask(); // waiting when this returns

        clock.Advance(TimeSpan.FromHours(1));

        var error = await Assert.ThrowsAsync<TimeoutException>(() => next.Within());
        Assert.Equal("Peer 'bob' sent no item of 'numbers' within 3600000 ms (NodeOptions.RequestTimeout); the stream was cancelled there.", error.Message);
        Assert.Equal(request.Id, (await peer.ReadAsync(MessageKind.Cancel)).Id);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_reader_whose_timeout_is_longer_than_a_timer_can_wait_still_gets_its_item()
    {
        var (connection, peer, stream, request) = await StreamingAsync(8);
        using var _ = stream;
        var next = Next(stream, TimeSpan.FromDays(60)); // above the 49.7 days a timer takes at once

        await peer.SendItemAsync(request.Id, 7);

        Assert.Equal(7, await next);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_cancelled_reader_stops_even_with_items_waiting()
    {
        var (connection, peer, stream, request) = await StreamingAsync(8);
        using var _ = stream;
        await peer.SendItemAsync(request.Id, 1);
        await Patience.Until(() => stream.Waiting == 1);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Next(stream, cancellationToken: cts.Token));
        Assert.Equal(1, await Next(stream));
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_peer_without_streams_is_refused_before_anything_is_sent()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync(hello: ScriptedPeer.OldHello("bob-1"));
        Assert.False(connection.PeerHello.AcceptsStreams);
        var error = await Assert.ThrowsAsync<NotSupportedException>(() => Open(connection, "numbers", 8).AsTask());
        Assert.StartsWith("Peer 'bob' does not take stream requests: its hello does not offer the 'stream' feature", error.Message, StringComparison.Ordinal);
        Assert.Contains("so 'numbers' was not sent", error.Message, StringComparison.Ordinal);

        var call = connection.InvokeAsync("f", 1, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        Assert.Equal(MessageKind.Request, (await peer.ReadAsync()).Kind);
        connection.Close();
        await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_cancelled_token_opens_no_stream()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Open(connection, "numbers", 8, cts.Token).AsTask());
        Assert.Equal(0, connection.PendingCount);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_peers_subscriptions_replace_each_other_and_are_bounded()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync(callerHello: ScriptedPeer.CallerHello with { MaxPeerTopics = 2 });
        Assert.Equal(2, connection.MaxPeerTopics);
        Assert.False(connection.PeerTopicsKnown);
        Assert.False(connection.PeerSubscribes("a"));

        await peer.SendAsync((ref MessagePackWriter writer) => EventMessages.WriteSubscriptions(ref writer, ["a", "b", "c"]));
        Assert.True(await connection.WaitForPeerTopicsAsync(Patience.Limit, CancellationToken.None));
        Assert.True(connection.PeerTopicsKnown);
        Assert.True(connection.PeerSubscribes("a"));
        Assert.True(connection.PeerSubscribes("b"));
        Assert.False(connection.PeerSubscribes("c")); // past MaxPeerTopics

        await peer.SendAsync((ref MessagePackWriter writer) => EventMessages.WriteSubscriptions(ref writer, ["c"]));
        await Patience.Until(() => connection.PeerSubscribes("c"));
        Assert.False(connection.PeerSubscribes("a"));
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Waiting_for_subscriptions_that_never_come_returns_false()
    {
        var (connection, _) = await ScriptedPeer.ConnectAsync();
        Assert.False(await connection.WaitForPeerTopicsAsync(TimeSpan.FromMilliseconds(50), CancellationToken.None).Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Waiting_for_subscriptions_is_timed_on_the_connections_clock()
    {
        var clock = new FakeTimeProvider();
        var (connection, _) = await ScriptedPeer.ConnectAsync(clock);
        var waiting = connection.WaitForPeerTopicsAsync(TimeSpan.FromHours(1), CancellationToken.None);

        clock.Advance(TimeSpan.FromHours(1));

        Assert.False(await waiting.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task An_event_goes_out_as_one_frame_after_its_sending_callback()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var message = Bytes.Pack((ref MessagePackWriter writer) => EventMessages.WriteEvent(ref writer, "temp", Bytes.Pack((ref MessagePackWriter w) => w.Write(21))));
        var counted = 0;

        Assert.True(await connection.SendEventAsync(message, () => counted++, CancellationToken.None).AsTask().Within());
        Assert.Equal(1, counted);
        var sent = await peer.ReadAsync(MessageKind.Event);
        Assert.Equal(message, sent.Payload.ToArray());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task An_event_above_the_peers_frame_limit_or_on_a_closed_connection_is_not_handed_over()
    {
        var (connection, _) = await ScriptedPeer.ConnectAsync(hello: ScriptedPeer.HelloOf("bob-1", maxFrameSize: 1024));
        var counted = 0;
        Assert.Null(await connection.SendEventAsync(new byte[1025], () => counted++, CancellationToken.None).AsTask().Within());
        Assert.NotNull(await connection.SendEventAsync(new byte[1024], () => counted++, CancellationToken.None).AsTask().Within());
        Assert.Equal(1, counted);

        connection.Close();
        Assert.Null(await connection.SendEventAsync(new byte[8], () => counted++, CancellationToken.None).AsTask().Within());
        Assert.Equal(1, counted);
        await connection.DisposeAsync();
    }
}
