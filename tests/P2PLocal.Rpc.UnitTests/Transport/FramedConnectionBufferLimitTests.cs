using MessagePack;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;
using static P2PLocal.Rpc.UnitTests.Transport.FramedTestConnection;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// The buffer limit of <see cref="FramedConnection"/> at its edges (issue 17, run T's survivors): over means strictly
/// above it, the stall clock starts when the bytes pass the limit (sent or held) and restarts only once they are back
/// under it, every waiter for room is woken, and closing wakes them even while held bytes keep the connection over.
/// </summary>
/// <remarks>
/// The bytes to send are kept unsent by a peer that reads nothing: a frame written inline stays in the pipe, and frames
/// sent after it queue behind it. Times are read on a <see cref="FakeTimeProvider"/>.
/// </remarks>
public class FramedConnectionBufferLimitTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    /// <summary>A connection to a peer that reads nothing, with one frame of about 2 KiB written and stuck in the pipe.</summary>
    private static (FramedTestConnection Connection, FakeTimeProvider Clock, int Stuck) Stuck(Func<int, long> limit, int heldFirst = 0)
    {
        var clock = new FakeTimeProvider();
        var frame = Frame(1, padding: 2000);
        var stuck = frame.Length;
        var connection = new FramedTestConnection(new InMemoryConnection(toPeer: NotReading), limit(stuck), clock);
        connection.Start();
        connection.Hold(heldFirst);
        Assert.True(connection.TrySend(frame));
        Assert.Equal(stuck, connection.QueuedSendBytes);
        return (connection, clock, stuck);
    }

    /// <summary>A started connection over a quiet in-memory wire, with a buffer limit of 1000 bytes.</summary>
    private static FramedTestConnection StartedWithLimit1000()
    {
        var connection = new FramedTestConnection(new InMemoryConnection(), maxBufferedBytes: 1000);
        connection.Start();
        return connection;
    }

    /// <summary>The connection is over the limit from now: not stalled yet, stalled once the timeout has passed.</summary>
    private static void StallsOnlyAfterTheTimeout(FramedTestConnection connection, FakeTimeProvider clock)
    {
        Assert.False(connection.IsStalled(Timeout));
        clock.Advance(Timeout + TimeSpan.FromSeconds(1));
        Assert.True(connection.IsStalled(Timeout));
    }

    [Fact]
    public async Task A_connection_is_stalled_only_once_more_than_the_timeout_has_passed()
    {
        var (connection, clock, _) = Stuck(limit: stuck => stuck - 1);
        clock.Advance(Timeout);
        Assert.False(connection.IsStalled(Timeout));
        clock.Advance(TimeSpan.FromTicks(1));
        Assert.True(connection.IsStalled(Timeout));
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_stall_that_starts_while_the_clock_reads_zero_is_still_seen()
    {
        // The stall's start is kept as a timestamp, with 0 meaning "not over the limit": a clock at 0 must not hide it.
        var clock = new ClockFromZero();
        var frame = Frame(1, padding: 2000);
        var connection = new FramedTestConnection(new InMemoryConnection(toPeer: NotReading), frame.Length - 1, clock);
        connection.Start();
        Assert.True(connection.TrySend(frame));
        Assert.Equal(0, clock.GetTimestamp());

        clock.Now = clock.TimestampFrequency * 10; // 10 s later
        Assert.True(connection.IsStalled(Timeout));
        Assert.True(connection.CloseIfStalled(Timeout));
        await connection.DisposeAsync();
    }

    /// <summary>A clock whose timestamps start at 0 and move only when told.</summary>
    private sealed class ClockFromZero : TimeProvider
    {
        public long Now { get; set; }

        public override long GetTimestamp() => Now;
    }

    [Fact]
    public async Task Received_bytes_held_start_the_stall_clock_when_they_pass_the_limit_not_when_they_reach_it()
    {
        var (connection, clock, stuck) = Stuck(limit: stuck => stuck + 1000);
        connection.Hold(1000); // exactly at the limit: not over it
        Assert.Equal(stuck + 1000, connection.BufferedBytes);
        clock.Advance(TimeSpan.FromSeconds(10));

        connection.Hold(1); // over it from now on
        StallsOnlyAfterTheTimeout(connection, clock);
        connection.Release(1001);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Bytes_queued_to_send_start_the_stall_clock_when_they_pass_the_limit_not_when_they_reach_it()
    {
        // 1000 received bytes held first, then the stuck frame: exactly at the limit, not over it.
        var (connection, clock, stuck) = Stuck(limit: stuck => stuck + 1000, heldFirst: 1000);
        Assert.Equal(stuck + 1000, connection.BufferedBytes);
        clock.Advance(TimeSpan.FromSeconds(10));

        var next = Frame(2);
        var length = next.Length;
        Assert.True(connection.TrySend(next)); // queued behind the stuck frame: over the limit from now on
        Assert.Equal(stuck + length, connection.QueuedSendBytes);
        StallsOnlyAfterTheTimeout(connection, clock);
        connection.Release(1000);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_stall_clock_runs_through_releases_that_leave_the_connection_over_and_restarts_once_it_was_under()
    {
        var (connection, clock, stuck) = Stuck(limit: stuck => stuck + 500);
        connection.Hold(1000); // over the limit: the clock starts
        clock.Advance(TimeSpan.FromSeconds(10));
        connection.Release(100); // still over
        Assert.True(connection.IsStalled(Timeout));

        connection.Release(900); // under: the clock stops
        Assert.Equal(stuck, connection.BufferedBytes);
        Assert.False(connection.IsStalled(Timeout));
        clock.Advance(TimeSpan.FromSeconds(10));
        connection.Hold(1000); // over again: the clock starts again, from now
        StallsOnlyAfterTheTimeout(connection, clock);
        connection.Release(1000);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task At_exactly_the_limit_nothing_waits_for_room_and_the_read_loop_keeps_reading()
    {
        var wire = new InMemoryConnection();
        var connection = new FramedTestConnection(wire, maxBufferedBytes: 3000) { HoldFrames = true };
        connection.Start();
        var frame = WireFrames.Frame(new byte[1500]);
        await wire.Peer.WriteAsync((byte[])[.. frame, .. frame]);
        await connection.NextAsync();
        await connection.NextAsync();

        Assert.Equal(3000, connection.BufferedBytes);
        Assert.True(connection.WaitForRoom().IsCompletedSuccessfully);
        await wire.Peer.WriteAsync(frame);
        await connection.NextAsync();
        Assert.Equal(4500, connection.BufferedBytes);
        connection.Release(4500);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Every_waiter_for_room_is_woken_when_the_bytes_fall_back_under_the_limit()
    {
        var connection = StartedWithLimit1000();
        connection.Hold(1500);
        var first = connection.WaitForRoom();
        var second = connection.WaitForRoom();
        Assert.False(first.IsCompleted);
        Assert.False(second.IsCompleted);

        connection.Release(1000); // 500 left: under the limit
        Assert.True(first.IsCompletedSuccessfully);
        Assert.True(second.IsCompletedSuccessfully);
        connection.Release(500);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Waiting_for_room_ends_at_once_under_the_limit_and_on_a_closed_connection()
    {
        var connection = StartedWithLimit1000();
        connection.Hold(1000);
        Assert.True(connection.WaitForRoom().IsCompletedSuccessfully);

        connection.Hold(1);
        Assert.False(connection.WaitForRoom().IsCompleted);
        connection.Close();
        Assert.True(connection.WaitForRoom().IsCompletedSuccessfully);
        connection.Release(1001);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Closing_wakes_a_waiter_for_room_while_held_bytes_keep_the_connection_over_the_limit()
    {
        var connection = StartedWithLimit1000();
        connection.Hold(1500); // a handler still serving a large request
        var waiting = connection.WaitForRoom();
        Assert.False(waiting.IsCompleted);

        connection.Close();
        Assert.True(waiting.IsCompletedSuccessfully);
        Assert.Equal(1500, connection.BufferedBytes);
        await connection.DisposeAsync();
        connection.Release(1500);
    }

    [Fact]
    public async Task A_read_loop_paused_by_held_frames_ends_when_the_connection_closes()
    {
        var wire = new InMemoryConnection();
        var connection = new FramedTestConnection(wire, maxBufferedBytes: 1000) { HoldFrames = true };
        connection.Start();
        await wire.Peer.WriteAsync(WireFrames.Frame(new byte[1500]));
        await connection.NextAsync(); // held: over the limit, so the read loop waits for room

        connection.Close();
        await connection.DisposeAsync().Within(); // both loops ended, though the frame is still held
        Assert.Equal(1500, connection.BufferedBytes);
        connection.Release(1500);
    }

    [Fact]
    public async Task A_call_waiting_for_room_fails_at_once_when_the_connection_closes_while_unread_stream_items_keep_it_over()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync(new FakeTimeProvider(), maxBufferedBytes: 4096);
        var stream = await connection.OpenStreamAsync("numbers", 1, ScriptedPeer.WriteX, 8, ScriptedPeer.Forever, CancellationToken.None).AsTask().Within();
        var request = await peer.ReadAsync(MessageKind.StreamRequest);
        for (var i = 0; i < 3; i++)
        {
            await peer.SendAsync((ref MessagePackWriter writer) =>
            {
                StreamMessages.WriteItemHeader(ref writer, request.Id);
                writer.Write(new string('i', 1500));
            });
        }

        await Patience.Until(() => connection.BufferedBytes > 4096); // three items of about 1.5 KiB, not read yet
        var waiting = connection.InvokeAsync("late", 1, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        Assert.False(waiting.IsCompleted);

        connection.Close(); // as the pool or a shutdown does: not on the fake clock, the caller must not wait for it
        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => waiting.Within());
        Assert.Equal($"The connection to peer 'bob' at {connection.RemoteEndPoint} was lost before the reply came.", error.Message);
        stream.Dispose();
        Assert.Equal(0, connection.BufferedBytes);
        await connection.DisposeAsync();
    }
}
