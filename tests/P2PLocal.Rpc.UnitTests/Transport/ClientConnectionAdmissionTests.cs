using MessagePack;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// Admission of calls to a peer that does not read (<c>ClientConnection.WaitToSendAsync</c>): an infinite timeout waits
/// for room without a bound, timeouts beyond what a timer or a semaphore can wait are taken, the admission gate is
/// given back when a request cannot be built, a caller left waiting for the gate fails with the reason, and a caller
/// that gives up while waiting sends nothing.
/// </summary>
public class ClientConnectionAdmissionTests
{
    private const long BufferLimit = 4096;

    private static Task<int> CallPadded(ClientConnection connection, string function, int size, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        connection.InvokeAsync(function, size, ScriptedPeer.WritePadding, ScriptedPeer.ReadInt, timeout ?? ScriptedPeer.Forever, cancellationToken).AsTask();

    /// <summary>
    /// Three requests of 1500 bytes (no timeout, so the test may move the clock) to a peer that reads nothing: about
    /// 4550 bytes buffered, above the 4096 limit.
    /// </summary>
    private static async Task<(ClientConnection Connection, ScriptedPeer Peer, FakeTimeProvider Clock, Task<int>[] Calls)> FillAsync()
    {
        var clock = new FakeTimeProvider();
        var (connection, peer) = await ScriptedPeer.ConnectAsync(clock, BufferLimit, ScriptedPeer.NotReading);
        var calls = Enumerable.Range(0, 3).Select(_ => CallPadded(connection, "fill", 1500, Timeout.InfiniteTimeSpan)).ToArray();
        await Patience.Until(() => connection.QueuedSendBytes > BufferLimit);
        return (connection, peer, clock, calls);
    }

    /// <summary>Reads <paramref name="count"/> requests and answers each with its id.</summary>
    private static async Task<List<SentMessage>> AnswerAsync(ScriptedPeer peer, int count)
    {
        var requests = new List<SentMessage>();
        for (var i = 0; i < count; i++)
        {
            var request = await peer.ReadAsync(MessageKind.Request);
            requests.Add(request);
            await peer.ReplyAsync(request.Id, (int)request.Id);
        }

        return requests;
    }

    [Theory]
    [InlineData(-1)] // infinite
    [InlineData(60)] // above what Task.WaitAsync and a system timer wait at once (2^31 - 1 ms on .NET 8, 2^32 - 2 ms)
    public async Task A_call_with_no_timeout_or_one_longer_than_a_timer_can_wait_waits_for_room_until_the_peer_reads(int days)
    {
        var (connection, peer, clock, calls) = await FillAsync();
        var waiting = CallPadded(connection, "late", 10, days < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromDays(days));
        Assert.False(waiting.IsCompleted);
        clock.Advance(TimeSpan.FromDays(59));
        Assert.False(waiting.IsCompleted);

        var requests = await AnswerAsync(peer, 4);
        Assert.Equal("late", requests[3].Function);
        Assert.Equal((int)requests[3].Id, await waiting.Within());
        await Task.WhenAll(calls).Within();
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_timeout_longer_than_a_timer_can_wait_is_taken_by_a_call_on_the_system_clock()
    {
        // 60 days: above what Task.WaitAsync (2^31 - 1 ms on .NET 8) and a system timer (2^32 - 2 ms) wait at once.
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var call = connection.InvokeAsync("f", 1, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, TimeSpan.FromDays(60), CancellationToken.None).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);
        await peer.ReplyAsync(request.Id, 10);
        Assert.Equal(10, await call.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_request_that_cannot_be_built_after_waiting_for_room_fails_with_its_error_and_gives_the_gate_back()
    {
        var (connection, peer, _, calls) = await FillAsync();
        var broken = new InvalidOperationException("kwargs cannot be written");
        var failing = connection.InvokeAsync("broken", broken, static (ref MessagePackWriter _, InvalidOperationException e, MessagePackSerializerOptions _) => throw e,
            ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        Assert.False(failing.IsCompleted); // waiting for room

        Assert.Equal("fill", (await peer.ReadAsync(MessageKind.Request)).Function); // room: the call is let through, then fails
        Assert.Same(broken, await Assert.ThrowsAsync<InvalidOperationException>(() => failing.Within()));
        Assert.Equal(3, connection.PendingCount);

        // Over the limit again: the next caller takes the gate, waits for room and is sent.
        var more = CallPadded(connection, "more", 1500);
        await Patience.Until(() => connection.QueuedSendBytes > BufferLimit);
        var next = CallPadded(connection, "next", 10);
        var requests = new List<SentMessage>();
        for (var i = 0; i < 4; i++)
            requests.Add(await peer.ReadAsync(MessageKind.Request));
        Assert.Equal(new[] { "fill", "fill", "more", "next" }, requests.Select(r => r.Function));
        connection.Close();
        foreach (var call in calls.Append(more).Append(next))
            await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_caller_left_waiting_for_the_admission_gate_fails_after_its_timeout_with_the_reason()
    {
        var (connection, _, clock, calls) = await FillAsync();
        var first = CallPadded(connection, "first", 10, Timeout.InfiniteTimeSpan); // holds the gate while it waits for room
        // The gate is waited for on the node's clock, like the room: an hour there, none on the system clock.
        var second = CallPadded(connection, "second", 10, TimeSpan.FromHours(1)); // waiting for the gate when this returns
        clock.Advance(TimeSpan.FromHours(1));
        var error = await Assert.ThrowsAsync<TimeoutException>(() => second.Within());
        Assert.Matches(@"^Peer 'bob' did not read the requests already sent to it \(\d+ bytes waiting\), so 'second' was not sent within 3600000 ms\.$", error.Message);
        Assert.False(first.IsCompleted);
        Assert.Equal(3, connection.PendingCount);

        connection.Close();
        foreach (var call in calls.Append(first))
            await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_caller_that_gives_up_while_waiting_for_room_sends_nothing()
    {
        var (connection, peer, _, calls) = await FillAsync();
        using var cts = new CancellationTokenSource();
        var waiting = CallPadded(connection, "late", 10, cancellationToken: cts.Token);
        await cts.CancelAsync();
        Assert.Equal(cts.Token, (await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.Within())).CancellationToken);

        await AnswerAsync(peer, 3);
        await Task.WhenAll(calls).Within();
        var next = CallPadded(connection, "next", 10);
        var request = await peer.ReadAsync(); // neither the request nor a cancel of 'late' came before it
        Assert.Equal(MessageKind.Request, request.Kind);
        Assert.Equal("next", request.Function);
        Assert.Equal(4u, request.Id);
        await peer.ReplyAsync(request.Id, 1);
        Assert.Equal(1, await next.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_caller_that_timed_out_waiting_for_room_gives_the_gate_back()
    {
        var (connection, peer, clock, calls) = await FillAsync();
        var late = CallPadded(connection, "late", 10, TimeSpan.FromHours(1)); // holds the gate while it waits for room
        var next = CallPadded(connection, "next", 10, Timeout.InfiniteTimeSpan); // waits for the gate

        clock.Advance(TimeSpan.FromHours(1));
        await Assert.ThrowsAsync<TimeoutException>(() => late.Within());

        var requests = await AnswerAsync(peer, 4); // the three fills, then 'next', let through once 'late' gave the gate back
        Assert.Equal(new[] { "fill", "fill", "fill", "next" }, requests.Select(r => r.Function));
        Assert.Equal(4, await next.Within());
        await Task.WhenAll(calls).Within();
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_timeout_of_a_call_that_waited_for_room_runs_from_when_it_was_let_through()
    {
        var (connection, peer, clock, calls) = await FillAsync();
        var waited = CallPadded(connection, "waited", 10, TimeSpan.FromMinutes(10));
        clock.Advance(TimeSpan.FromMinutes(6)); // still waiting for room

        await AnswerAsync(peer, 3); // room: 'waited' goes out now, due ten minutes from here
        var request = await peer.ReadAsync(MessageKind.Request);
        Assert.Equal("waited", request.Function);
        clock.Advance(TimeSpan.FromMinutes(5)); // eleven minutes after the call began, five after it went out

        await peer.ReplyAsync(request.Id, 7); // a TimeoutException had the wait counted against it
        Assert.Equal(7, await waited.Within());
        await Task.WhenAll(calls).Within();
        await connection.DisposeAsync();
    }
}
