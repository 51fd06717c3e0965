using System.IO.Pipelines;
using System.Text.RegularExpressions;
using MessagePack;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// The send path and the buffer bound of <see cref="FramedConnection"/>, through a client connection: a peer that
/// does not read (a pipe that pauses its writer) makes frames queue, new calls wait for room and fail on the clock,
/// the connection counts as stalled; frames written from the read loop go out in one write; replies resume callers on
/// the read loop only with <see cref="ClientConnection.InlineCompletions"/>.
/// </summary>
public class SendPathTests
{
    /// <summary>A peer that reads nothing: the pipe toward it takes 1 KiB before its writer waits.</summary>
    private static PipeOptions NotReading => new(pauseWriterThreshold: 1024, resumeWriterThreshold: 512, useSynchronizationContext: false);

    private const long BufferLimit = 4096;

    /// <summary>Kwargs <c>{s: 'p' x size}</c>: a request of about <c>size</c> bytes.</summary>
    private static readonly KwargsWriter<int> s_writePadding = static (ref MessagePackWriter writer, int size, MessagePackSerializerOptions _) =>
    {
        writer.WriteMapHeader(1);
        writer.Write("s");
        writer.Write(new string('p', size));
    };

    private static Task<int> CallPadded(ClientConnection connection, string function, int size, TimeSpan? timeout = null) =>
        connection.InvokeAsync(function, size, s_writePadding, ScriptedPeer.ReadInt, timeout ?? ScriptedPeer.Forever, CancellationToken.None).AsTask();

    /// <summary>
    /// Three requests of 1500 bytes to a peer that reads nothing: the first written (and stuck in the pipe), two queued,
    /// about 4550 bytes in all, above the 4096 limit; a fourth would wait for room.
    /// </summary>
    private static async Task<(ClientConnection Connection, ScriptedPeer Peer, FakeTimeProvider Clock, Task<int>[] Calls)> FillAsync()
    {
        var clock = new FakeTimeProvider();
        var (connection, peer) = await ScriptedPeer.ConnectAsync(clock, BufferLimit, NotReading);
        var calls = Enumerable.Range(0, 3).Select(_ => CallPadded(connection, "fill", 1500)).ToArray();
        await Patience.Until(() => connection.QueuedSendBytes > BufferLimit);
        return (connection, peer, clock, calls);
    }

    [Fact]
    public async Task A_call_past_the_buffer_limit_waits_for_room_and_fails_on_the_clock_with_the_reason()
    {
        var (connection, peer, clock, calls) = await FillAsync();
        var waiting = CallPadded(connection, "late", 10, TimeSpan.FromSeconds(5));
        clock.Advance(TimeSpan.FromSeconds(4));
        Assert.False(waiting.IsCompleted);
        clock.Advance(TimeSpan.FromSeconds(2));

        var error = await Assert.ThrowsAsync<TimeoutException>(() => waiting.Within());
        Assert.Matches(new Regex(@"^Peer 'bob' did not read the requests already sent to it \(\d+ bytes waiting\), so 'late' was not sent within 5000 ms\.$"), error.Message);
        Assert.False(connection.IsClosed);
        Assert.True(connection.QueuedSendBytes > BufferLimit);
        Assert.Equal(3, connection.PendingCount); // the late call was never registered

        connection.Close();
        foreach (var call in calls)
            await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        await Patience.Until(() => connection.QueuedSendBytes == 0); // dropped frames are not counted any more
        await connection.DisposeAsync();
        GC.KeepAlive(peer);
    }

    [Fact]
    public async Task A_call_waiting_for_room_is_sent_once_the_peer_reads()
    {
        var (connection, peer, _, calls) = await FillAsync();
        var waiting = CallPadded(connection, "late", 10);
        var late = CallPadded(connection, "later", 10);
        Assert.False(waiting.IsCompleted);

        var requests = new List<SentMessage>();
        while (requests.Count < 5)
            requests.Add(await peer.ReadAsync(MessageKind.Request));
        Assert.Equal(3, requests.Count(r => r.Function == "fill"));
        Assert.Contains(requests, r => r.Function == "late");
        Assert.Contains(requests, r => r.Function == "later");
        foreach (var request in requests)
            await peer.ReplyAsync(request.Id, (int)request.Id);

        Assert.All(await Task.WhenAll(calls.Append(waiting).Append(late)).Within(), result => Assert.True(result > 0));
        await Patience.Until(() => connection.BufferedBytes == 0); // each write is counted off once the pipe took it
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_callers_token_ends_a_wait_for_room_and_lets_the_next_caller_in()
    {
        var (connection, _, clock, calls) = await FillAsync();
        using var cts = new CancellationTokenSource();
        var waiting = connection.InvokeAsync("late", 1, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, ScriptedPeer.Forever, cts.Token).AsTask();
        await cts.CancelAsync();
        var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.Within());
        Assert.Equal(cts.Token, error.CancellationToken);

        // The admission gate was given back: the next waiter waits for room itself, and times out on the clock.
        var next = CallPadded(connection, "next", 10, TimeSpan.FromMinutes(5));
        clock.Advance(TimeSpan.FromMinutes(6));
        Assert.Contains("so 'next' was not sent within 300000 ms.", (await Assert.ThrowsAsync<TimeoutException>(() => next.Within())).Message, StringComparison.Ordinal);

        connection.Close();
        foreach (var call in calls)
            await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Waiting_callers_are_admitted_one_at_a_time_and_each_times_out_on_its_own()
    {
        var (connection, _, clock, _) = await FillAsync();
        var first = CallPadded(connection, "first", 10, TimeSpan.FromSeconds(5));
        var second = CallPadded(connection, "second", 10, TimeSpan.FromSeconds(5));
        clock.Advance(TimeSpan.FromSeconds(6));

        Assert.Contains("so 'first' was not sent within 5000 ms.", (await Assert.ThrowsAsync<TimeoutException>(() => first.Within())).Message, StringComparison.Ordinal);
        Assert.Contains("so 'second' was not sent within 5000 ms.", (await Assert.ThrowsAsync<TimeoutException>(() => second.Within())).Message, StringComparison.Ordinal);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_connection_over_its_limit_with_bytes_unsent_is_stalled_after_the_timeout_and_closed_with_the_reason()
    {
        var (connection, _, clock, calls) = await FillAsync();
        Assert.False(connection.IsStalled(TimeSpan.FromSeconds(1)));
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.True(connection.IsStalled(TimeSpan.FromSeconds(1)));
        Assert.False(connection.IsStalled(TimeSpan.FromSeconds(3)));
        Assert.False(connection.CloseIfStalled(TimeSpan.FromSeconds(3)));
        Assert.False(connection.IsClosed);

        Assert.True(connection.CloseIfStalled(TimeSpan.FromSeconds(1)));
        var reason = Assert.IsType<IOException>(await connection.Closed.Within());
        Assert.Matches(new Regex(@"^Closed: \d+ bytes stayed buffered for more than 1 s \(MaxBufferedBytesPerConnection\) while the peer read nothing of what was sent to it\.$"), reason.Message);
        foreach (var call in calls)
            Assert.Same(reason, (await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within())).InnerException);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_connection_under_its_limit_is_never_stalled()
    {
        var clock = new FakeTimeProvider();
        var (connection, peer) = await ScriptedPeer.ConnectAsync(clock, BufferLimit, NotReading);
        var call = CallPadded(connection, "one", 1500); // written, and waiting in the pipe: under the limit
        await Patience.Until(() => connection.QueuedSendBytes > 0);
        clock.Advance(TimeSpan.FromMinutes(5));
        Assert.False(connection.IsStalled(TimeSpan.FromSeconds(1)));
        connection.Close();
        await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        await connection.DisposeAsync();
        GC.KeepAlive(peer);
    }

    [Fact]
    public async Task Close_after_flush_writes_what_is_queued_then_closes()
    {
        var (connection, peer, _, calls) = await FillAsync();
        var closing = connection.CloseAfterFlushAsync(Patience.Limit);
        Assert.False(connection.IsClosed);
        var after = CallPadded(connection, "after", 10); // waits for room, then finds the connection closing

        for (var i = 0; i < calls.Length; i++)
            Assert.Equal("fill", (await peer.ReadAsync(MessageKind.Request)).Function);
        Assert.True(await peer.ReadsEndAsync()); // nothing more was sent
        await Assert.ThrowsAsync<PeerConnectionException>(() => after.Within());
        await closing.Within();
        Assert.True(connection.IsClosed);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Close_after_flush_with_nothing_queued_closes_at_once()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        await connection.CloseAfterFlushAsync(Patience.Limit).Within();
        Assert.True(connection.IsClosed);
        Assert.Null(await connection.Closed.Within());
        Assert.True(await peer.ReadsEndAsync());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Close_after_flush_gives_up_after_its_timeout_when_the_peer_reads_nothing()
    {
        var (connection, _, _, calls) = await FillAsync();
        await connection.CloseAfterFlushAsync(TimeSpan.FromMilliseconds(100)).Within();
        Assert.True(connection.IsClosed);
        foreach (var call in calls)
            await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Frames_of_every_size_sent_at_once_all_arrive_whole()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        int[] sizes = [10, 20_000, 30, 5000, 17_000, 1, 12_000, 40_000, 3];
        var calls = sizes.Select(size => CallPadded(connection, $"s{size}", size)).ToArray();

        var seen = new Dictionary<string, int>();
        for (var i = 0; i < sizes.Length; i++)
        {
            var request = await peer.ReadAsync(MessageKind.Request);
            var reader = new MessagePackReader(request.Payload);
            reader.ReadArrayHeader();
            reader.Skip();
            reader.Skip();
            reader.Skip();
            reader.ReadMapHeader();
            reader.Skip();
            var padding = reader.ReadString()!;
            Assert.True(padding.All(c => c == 'p'));
            seen[request.Function!] = padding.Length;
            await peer.ReplyAsync(request.Id, padding.Length);
        }

        Assert.Equal(sizes.ToDictionary(s => $"s{s}", s => s), seen);
        Assert.Equal(sizes, await Task.WhenAll(calls).Within());
        await Patience.Until(() => connection.QueuedSendBytes == 0);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Requests_sent_while_the_read_loop_handles_a_read_go_out_in_one_write()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        connection.InlineCompletions = true; // callers resume on the read loop, so what they send is gathered
        var started = new List<Task<int>>();
        ResultReader<int> startAnother = (ref MessagePackReader reader, MessagePackSerializerOptions _) =>
        {
            var value = reader.ReadInt32();
            started.Add(CallPadded(connection, $"then{value}", 100));
            return value;
        };
        var a = connection.InvokeAsync("a", 1, ScriptedPeer.WriteX, startAnother, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        var b = connection.InvokeAsync("b", 2, ScriptedPeer.WriteX, startAnother, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        var ra = await peer.ReadAsync(MessageKind.Request);
        var rb = await peer.ReadAsync(MessageKind.Request);

        var writesBefore = peer.Connection.Client.Writes;
        await peer.SendRawAsync([.. Reply(ra.Id, 1), .. Reply(rb.Id, 2)]); // one read on the caller's side
        Assert.Equal(new[] { 1, 2 }, await Task.WhenAll(a, b).Within());
        var then = new[] { await peer.ReadAsync(MessageKind.Request), await peer.ReadAsync(MessageKind.Request) };
        Assert.Equal(new[] { "then1", "then2" }, then.Select(r => r.Function));
        Assert.Equal(writesBefore + 1, peer.Connection.Client.Writes);

        foreach (var request in then)
            await peer.ReplyAsync(request.Id, 0);
        Assert.Equal(new[] { 0, 0 }, await Task.WhenAll(started).Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_request_above_one_batch_sent_from_the_read_loop_goes_out_whole_on_its_own()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        connection.InlineCompletions = true;
        var started = new List<Task<int>>();
        ResultReader<int> startTwo = (ref MessagePackReader reader, MessagePackSerializerOptions _) =>
        {
            started.Add(CallPadded(connection, "big", 20_000));
            started.Add(CallPadded(connection, "small", 10));
            return reader.ReadInt32();
        };
        var a = connection.InvokeAsync("a", 1, ScriptedPeer.WriteX, startTwo, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        var ra = await peer.ReadAsync(MessageKind.Request);
        await peer.ReplyAsync(ra.Id, 1);
        Assert.Equal(1, await a.Within());

        var big = await peer.ReadAsync(MessageKind.Request);
        var small = await peer.ReadAsync(MessageKind.Request);
        Assert.Equal(("big", "small"), (big.Function, small.Function));
        Assert.True(big.Payload.Length > 20_000);
        await peer.ReplyAsync(big.Id, 7);
        await peer.ReplyAsync(small.Id, 8);
        Assert.Equal(new[] { 7, 8 }, await Task.WhenAll(started).Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Without_inline_completions_callers_resume_off_the_read_loop()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        Assert.False(connection.InlineCompletions);
        Task<int>? b = null;
        // A's result is read on the thread that resumes A. Off the read loop, B's reply (right behind A's in the same
        // read) is delivered while A's reader waits for it; on the read loop it never would be.
        ResultReader<int> waitForB = (ref MessagePackReader reader, MessagePackSerializerOptions _) =>
            SpinWait.SpinUntil(() => b!.IsCompleted, TimeSpan.FromSeconds(10)) ? reader.ReadInt32() : -1;
        var a = connection.InvokeAsync("a", 1, ScriptedPeer.WriteX, waitForB, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        b = CallPadded(connection, "b", 1);
        var ra = await peer.ReadAsync(MessageKind.Request);
        var rb = await peer.ReadAsync(MessageKind.Request);
        await peer.SendRawAsync([.. Reply(ra.Id, 1), .. Reply(rb.Id, 2)]);

        Assert.Equal(1, await a.Within());
        Assert.Equal(2, await b.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task With_inline_completions_a_caller_resumes_on_the_read_loop_before_the_next_frame()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        connection.InlineCompletions = true;
        Task<int>? b = null;
        bool? bDoneWhenAResumed = null;
        ResultReader<int> noteB = (ref MessagePackReader reader, MessagePackSerializerOptions _) =>
        {
            bDoneWhenAResumed = b!.IsCompleted;
            return reader.ReadInt32();
        };
        var a = connection.InvokeAsync("a", 1, ScriptedPeer.WriteX, noteB, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        b = CallPadded(connection, "b", 1);
        var ra = await peer.ReadAsync(MessageKind.Request);
        var rb = await peer.ReadAsync(MessageKind.Request);
        await peer.SendRawAsync([.. Reply(ra.Id, 1), .. Reply(rb.Id, 2)]);

        Assert.Equal(1, await a.Within());
        Assert.Equal(2, await b.Within());
        Assert.False(bDoneWhenAResumed);
        await connection.DisposeAsync();
    }

    private static byte[] Reply(uint id, int value) => WireFrames.Frame((ref MessagePackWriter writer) =>
    {
        Messages.WriteResultHeader(ref writer, id);
        writer.Write(value);
    });
}
