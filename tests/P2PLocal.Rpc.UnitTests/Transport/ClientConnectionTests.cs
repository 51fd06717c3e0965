using System.Diagnostics;
using MessagePack;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// The calling side of a connection over an in-memory stream with a scripted peer: replies matched by id in any
/// order, the request timeout on the connection's clock, the caller's token, a peer that closes or resets, frame
/// limits and malformed frames. Every wait is bounded by the harness's patience, which throws its own exception type.
/// </summary>
public class ClientConnectionTests
{
    private static ValueTask<int> Call(ClientConnection connection, string function, int x, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        connection.InvokeAsync(function, x, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, timeout ?? ScriptedPeer.Forever, cancellationToken);

    [Fact]
    public async Task Replies_complete_their_own_calls_whatever_order_they_arrive_in()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var calls = new[] { Call(connection, "f", 1).AsTask(), Call(connection, "f", 2).AsTask(), Call(connection, "f", 3).AsTask() };
        var requests = new List<SentMessage>();
        for (var i = 0; i < 3; i++)
            requests.Add(await peer.ReadAsync(MessageKind.Request));

        Assert.Equal(3, requests.Select(r => r.Id).Distinct().Count());
        Assert.All(requests, r => Assert.Equal("f", r.Function));
        Assert.Equal(3, connection.PendingCount);
        foreach (var request in Enumerable.Reverse(requests))
            await peer.ReplyAsync(request.Id, request.X * 10);

        Assert.Equal(new[] { 10, 20, 30 }, await Task.WhenAll(calls).Within());
        Assert.Equal(0, connection.PendingCount);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Request_ids_count_up_from_one_and_a_request_has_four_elements()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var first = Call(connection, "f", 7).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);
        Assert.Equal(1u, request.Id);
        Assert.Equal(4, request.Count);
        Assert.Equal(7, request.X);
        await peer.ReplyAsync(1, 70);
        Assert.Equal(70, await first.Within());

        var second = Call(connection, "g", 8).AsTask();
        Assert.Equal(2u, (await peer.ReadAsync(MessageKind.Request)).Id);
        await peer.ReplyAsync(2, 80);
        Assert.Equal(80, await second.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_lone_call_is_written_from_the_callers_thread()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var writes = peer.Connection.Client.Writes;
        var call = Call(connection, "f", 1).AsTask(); // nothing else in flight: written before InvokeAsync returns
        Assert.Equal(writes + 1, peer.Connection.Client.Writes);
        await peer.ReplyAsync((await peer.ReadAsync(MessageKind.Request)).Id, 1);
        Assert.Equal(1, await call.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_call_made_inside_a_W3C_activity_carries_its_trace_context_to_a_peer_that_accepts_extras()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var (old, oldPeer) = await ScriptedPeer.ConnectAsync(hello: ScriptedPeer.OldHello("bob-1"));
        using var activity = new Activity("test").SetIdFormat(ActivityIdFormat.W3C).Start();
        var call = Call(connection, "f", 1).AsTask();
        var stream = connection.OpenStreamAsync("s", 1, ScriptedPeer.WriteX, 4, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        var toOld = Call(old, "f", 1).AsTask();
        activity.Stop();

        var request = await peer.ReadAsync(MessageKind.Request);
        Assert.Equal(5, request.Count);
        Assert.Equal(activity.Id, TraceParentOf(request, skip: 4));
        var streamRequest = await peer.ReadAsync(MessageKind.StreamRequest);
        Assert.Equal(6, streamRequest.Count);
        Assert.Equal(4u, streamRequest.Number);
        Assert.Equal(activity.Id, TraceParentOf(streamRequest, skip: 5));
        Assert.Equal(4, (await oldPeer.ReadAsync(MessageKind.Request)).Count); // the old peer gets no extras

        await connection.DisposeAsync();
        await old.DisposeAsync();
        await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        await Assert.ThrowsAsync<PeerConnectionException>(() => toOld.Within());
        (await stream.Within()).Dispose();
    }

    /// <summary>The <c>traceparent</c> of a request's extras map, the element after the first <paramref name="skip"/>.</summary>
    private static string? TraceParentOf(SentMessage request, int skip)
    {
        var reader = new MessagePackReader(request.Payload);
        reader.ReadArrayHeader();
        for (var i = 0; i < skip; i++)
            reader.Skip();
        var entries = reader.ReadMapHeader();
        for (var i = 0; i < entries; i++)
        {
            if (reader.ReadString() == "traceparent")
                return reader.ReadString();
            reader.Skip();
        }

        return null;
    }

    [Fact]
    public async Task A_reply_for_no_pending_call_is_dropped_and_the_connection_stays_open()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        await peer.ReplyAsync(999, 1);
        var call = Call(connection, "f", 5).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);
        await peer.ReplyAsync(request.Id, 50);
        Assert.Equal(50, await call.Within());
        Assert.False(connection.IsClosed);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task An_error_reply_becomes_the_exception_of_its_code()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var failing = Call(connection, "f", 1).AsTask();
        var missing = Call(connection, "nope", 2).AsTask();
        var first = await peer.ReadAsync(MessageKind.Request);
        var second = await peer.ReadAsync(MessageKind.Request);
        var (f, nope) = first.Function == "f" ? (first, second) : (second, first);
        await peer.FailAsync(f.Id, ErrorCode.HandlerFailed, "System.InvalidOperationException", "boom");
        await peer.FailAsync(nope.Id, ErrorCode.MethodNotFound, "MethodNotFound", "no function 'nope'");

        var remote = await Assert.ThrowsAsync<RemoteException>(() => failing.Within());
        Assert.Equal("'bob'.f failed: System.InvalidOperationException: boom", remote.Message);
        var notFound = await Assert.ThrowsAsync<MethodNotFoundException>(() => missing.Within());
        Assert.Equal("nope", notFound.Function);
        Assert.False(connection.IsClosed);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_reply_that_cannot_be_read_fails_its_call_with_P2PException_naming_the_function()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var call = Call(connection, "f", 1).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);
        await peer.SendAsync((ref MessagePackWriter writer) =>
        {
            Messages.WriteResultHeader(ref writer, request.Id);
            writer.Write("not an int");
        });

        var error = await Assert.ThrowsAsync<P2PException>(() => call.Within());
        Assert.StartsWith("Peer 'bob' sent a reply to 'f' that cannot be read: ", error.Message, StringComparison.Ordinal);
        Assert.IsType<MessagePackSerializationException>(error.InnerException);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_request_timeout_runs_on_the_connection_clock_and_cancels_the_request_at_the_peer()
    {
        var clock = new FakeTimeProvider();
        var (connection, peer) = await ScriptedPeer.ConnectAsync(clock);
        var call = Call(connection, "slow", 1, TimeSpan.FromSeconds(5)).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);

        clock.Advance(TimeSpan.FromMilliseconds(4900));
        Assert.False(call.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(200));
        var error = await Assert.ThrowsAsync<TimeoutException>(() => call.Within());
        Assert.Equal("Peer 'bob' did not answer 'slow' within 5000 ms; the request was cancelled there.", error.Message);

        var cancel = await peer.ReadAsync(MessageKind.Cancel);
        Assert.Equal(request.Id, cancel.Id);
        Assert.Equal(2, cancel.Count);
        Assert.Equal(0, connection.PendingCount);

        // The late reply finds no taker; the next call is answered as usual.
        await peer.ReplyAsync(request.Id, 1);
        var next = Call(connection, "f", 2).AsTask();
        var nextRequest = await peer.ReadAsync(MessageKind.Request);
        await peer.ReplyAsync(nextRequest.Id, 20);
        Assert.Equal(20, await next.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_callers_token_cancels_the_call_and_the_peer_is_told()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        using var cts = new CancellationTokenSource();
        var call = Call(connection, "f", 1, cancellationToken: cts.Token).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);
        await cts.CancelAsync();

        var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.Within());
        Assert.Equal(cts.Token, error.CancellationToken);
        var cancel = await peer.ReadAsync(MessageKind.Cancel);
        Assert.Equal(request.Id, cancel.Id);
        Assert.Equal(0, connection.PendingCount);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_token_cancelled_before_the_call_sends_nothing()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Call(connection, "never", 1, cancellationToken: cts.Token).AsTask());

        var next = Call(connection, "next", 2).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);
        Assert.Equal("next", request.Function);
        await peer.ReplyAsync(request.Id, 3);
        Assert.Equal(3, await next.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Every_pending_call_fails_with_PeerConnectionException_when_the_peer_closes()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var calls = Enumerable.Range(0, 5).Select(i => Call(connection, "f", i).AsTask()).ToArray();
        for (var i = 0; i < calls.Length; i++)
            await peer.ReadAsync(MessageKind.Request);

        peer.Close();
        foreach (var call in calls)
        {
            var error = await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
            Assert.Equal("The connection to peer 'bob' at ? was lost before the reply came.", error.Message);
            Assert.Equal("bob", error.PeerName);
        }

        Assert.Null(await connection.Closed.Within()); // an orderly close
        Assert.True(connection.IsClosed);
        Assert.Equal(0, connection.PendingCount);

        // A call on the closed connection fails at once; nothing waits.
        var late = await Assert.ThrowsAsync<PeerConnectionException>(() => Call(connection, "f", 9).AsTask().Within());
        Assert.Equal("The connection to peer 'bob' at ? was lost before the reply came.", late.Message);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_reset_fails_pending_calls_with_the_reset_as_their_cause()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var call = Call(connection, "f", 1).AsTask();
        await peer.ReadAsync(MessageKind.Request);

        var reset = new IOException("Connection reset by peer");
        peer.Stream.Reset(reset);
        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        Assert.Same(reset, error.InnerException);
        Assert.Same(reset, await connection.Closed.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_write_that_fails_closes_the_connection_with_its_error_and_fails_the_call()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        peer.Stream.StopReading();
        var call = Call(connection, "f", 1).AsTask();

        var reason = Assert.IsType<IOException>(await connection.Closed.Within());
        Assert.Equal("The other end is closed: nothing more is read.", reason.Message);
        Assert.Same(reason, (await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within())).InnerException);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Closing_the_connection_here_fails_pending_calls_and_closes_the_stream()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var call = Call(connection, "f", 1).AsTask();
        await peer.ReadAsync(MessageKind.Request);

        var reason = new InvalidOperationException("shutting down");
        connection.Close(reason);
        connection.Close(new IOException("a second close changes nothing"));
        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        Assert.Same(reason, error.InnerException);
        Assert.Same(reason, await connection.Closed.Within());
        Assert.True(await peer.ReadsEndAsync());
        await connection.DisposeAsync();
        Assert.True(peer.Connection.Client.IsDisposed);
    }

    [Fact]
    public async Task A_frame_above_the_frame_limit_closes_the_connection()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var call = Call(connection, "f", 1).AsTask();
        await peer.ReadAsync(MessageKind.Request);

        await peer.SendRawAsync([0, 1, 0, 1]); // 65537 bytes announced; the caller's limit is 64 KiB
        var reason = Assert.IsType<InvalidDataException>(await connection.Closed.Within());
        Assert.Equal("Frame length 65537 is above the limit of 65536 bytes.", reason.Message);
        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        Assert.Same(reason, error.InnerException);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_frame_at_the_frame_limit_is_read_once_the_hello_is_in()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var call = connection.InvokeAsync("big", 1, ScriptedPeer.WriteX,
            static (ref MessagePackReader reader, MessagePackSerializerOptions _) => reader.ReadString()!.Length, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);

        // 64 KiB exactly (array, kind, id, a str16 header: 6 bytes): well above the 16 KiB read before the hello, at
        // the limit announced in the caller's hello.
        var text = new string('a', (64 * 1024) - 6);
        await peer.SendAsync((ref MessagePackWriter writer) =>
        {
            Messages.WriteResultHeader(ref writer, request.Id);
            writer.Write(text);
        });
        Assert.Equal(text.Length, await call.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_frame_of_length_zero_closes_the_connection()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        await peer.SendRawAsync([0, 0, 0, 0]);
        var reason = Assert.IsType<InvalidDataException>(await connection.Closed.Within());
        Assert.Equal("Frame length 0 is not positive.", reason.Message);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_message_only_a_caller_sends_closes_the_connection()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        await peer.SendAsync((ref MessagePackWriter writer) =>
        {
            Messages.WriteRequestHeader(ref writer, 1, "f");
            writer.WriteMapHeader(0);
        });
        var reason = Assert.IsType<InvalidDataException>(await connection.Closed.Within());
        Assert.Equal("A server does not send Request messages.", reason.Message);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_frame_that_is_not_a_message_closes_the_connection()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        await peer.SendAsync((ref MessagePackWriter writer) => writer.Write("not an array"));
        Assert.IsType<MessagePackSerializationException>(await connection.Closed.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_request_above_the_peers_frame_limit_fails_before_it_is_sent()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync(hello: ScriptedPeer.HelloOf("bob-1", maxFrameSize: 2048));
        var big = new string('b', 3000);
        var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => connection.InvokeAsync("big", big,
            static (ref MessagePackWriter writer, string text, MessagePackSerializerOptions _) =>
            {
                writer.WriteMapHeader(1);
                writer.Write("s");
                writer.Write(text);
            }, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask().Within());
        Assert.StartsWith("The request to 'bob'.big is too large: The message is ", error.Message, StringComparison.Ordinal);
        Assert.EndsWith("bytes; the frame limit is 2048 bytes.", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, connection.PendingCount);

        // Nothing of it went out: the next message the peer reads is the next call.
        var next = Call(connection, "next", 1).AsTask();
        Assert.Equal("next", (await peer.ReadAsync(MessageKind.Request)).Function);
        connection.Close();
        await Assert.ThrowsAsync<PeerConnectionException>(() => next.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_send_limit_is_the_smaller_of_the_two_hellos()
    {
        // The peer accepts 1 MiB, this side 64 KiB: a 70 000-byte request is refused here.
        var (connection, _) = await ScriptedPeer.ConnectAsync(hello: ScriptedPeer.HelloOf("bob-1", maxFrameSize: 1024 * 1024));
        var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => connection.InvokeAsync("big", new string('c', 70_000),
            static (ref MessagePackWriter writer, string text, MessagePackSerializerOptions _) => writer.Write(text),
            ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask().Within());
        Assert.EndsWith("the frame limit is 65536 bytes.", error.Message, StringComparison.Ordinal);
        Assert.Equal(1024 * 1024, connection.PeerHello.MaxFrameSize);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_peers_hello_is_kept()
    {
        var (connection, _) = await ScriptedPeer.ConnectAsync(hello: ScriptedPeer.HelloOf("bob-1", maxFrameSize: 4096, idleTimeoutMs: 7000));
        Assert.Equal("bob", connection.PeerHello.Name);
        Assert.Equal("bob-1", connection.PeerHello.InstanceId);
        Assert.Equal(7000, connection.PeerHello.IdleTimeoutMs);
        Assert.True(connection.PeerHello.AcceptsStreams);
        Assert.Null(connection.PeerId);
        Assert.Equal("?", connection.RemoteEndPoint);
        Assert.Null(connection.RemoteAddress);
        await connection.DisposeAsync();
    }
}
