using MessagePack;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;
using static P2PLocal.Rpc.UnitTests.Transport.FramedTestConnection;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// <see cref="FramedConnection"/> itself, through a minimal subclass (<see cref="FramedTestConnection"/>) over an
/// in-memory connection: frames in order and whole whatever the reads, request slots freed exactly once on every path, the hello-size limit until
/// <c>AcceptFullFrames</c>, received bytes held against the buffer limit pausing the read loop, and closing.
/// </summary>
public class FramedConnectionTests
{
    [Fact]
    public async Task A_connection_turns_off_Nagle_on_its_socket_so_a_lone_frame_is_not_held_back()
    {
        var wire = new InMemoryConnection();
        Assert.False(wire.ClientSocket.NoDelay);
        var connection = new FramedTestConnection(wire);
        Assert.True(wire.ClientSocket.NoDelay);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Frames_from_one_sender_arrive_in_order_whether_written_inline_or_queued()
    {
        var wire = new InMemoryConnection();
        var connection = new FramedTestConnection(wire);
        connection.Start();
        for (var i = 0; i < 300; i++)
        {
            connection.Inline = i % 3 != 0;
            Assert.True(connection.TrySend(Frame(i, padding: i % 7 == 0 ? 20_000 : i)));
        }

        for (var i = 0; i < 300; i++)
            Assert.Equal(i, NumberOf(await WireFrames.ReadFrameAsync(wire.Peer).Within()));
        await Patience.Until(() => connection.QueuedSendBytes == 0);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_frame_split_across_reads_arrives_once_and_whole()
    {
        var wire = new InMemoryConnection();
        var connection = new FramedTestConnection(wire);
        connection.Start();
        var bytes = WireFrames.Frame((ref MessagePackWriter writer) => writer.Write(new string('s', 3000)));
        var two = WireFrames.Frame((ref MessagePackWriter writer) => writer.Write(2));

        await wire.Peer.WriteAsync(bytes.AsMemory(0, 2)); // half the prefix
        await wire.Peer.WriteAsync(bytes.AsMemory(2, 1000));
        await wire.Peer.WriteAsync((byte[])[.. bytes.AsSpan(1002), .. two.AsSpan(0, 3)]);
        await wire.Peer.WriteAsync(two.AsMemory(3));

        Assert.Equal(bytes.AsSpan(4).ToArray(), await connection.NextAsync());
        Assert.Equal(two.AsSpan(4).ToArray(), await connection.NextAsync());
        Assert.False(connection.IsClosed);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Until_the_hello_is_in_only_frames_up_to_16_KiB_are_read()
    {
        var wire = new InMemoryConnection();
        var small = new FramedTestConnection(wire);
        small.Start(fullFrames: false);
        await wire.Peer.WriteAsync(WireFrames.Frame(new byte[Messages.MaxHelloFrameSize]));
        Assert.Equal(Messages.MaxHelloFrameSize, (await small.NextAsync()).Length);
        await wire.Peer.WriteAsync(WireFrames.Frame(new byte[Messages.MaxHelloFrameSize + 1]));
        Assert.Equal($"Frame length {Messages.MaxHelloFrameSize + 1} is above the limit of {Messages.MaxHelloFrameSize} bytes.",
            Assert.IsType<InvalidDataException>(await small.Closed.Within()).Message);
        await small.DisposeAsync();

        var fullWire = new InMemoryConnection();
        var full = new FramedTestConnection(fullWire);
        full.Start(fullFrames: true);
        await fullWire.Peer.WriteAsync(WireFrames.Frame(new byte[Messages.MaxHelloFrameSize + 1]));
        Assert.Equal(Messages.MaxHelloFrameSize + 1, (await full.NextAsync()).Length);
        await full.DisposeAsync();
    }

    [Fact]
    public async Task Every_request_slot_is_freed_once_whether_written_inline_queued_batched_or_large()
    {
        var wire = new InMemoryConnection();
        var connection = new FramedTestConnection(wire);
        connection.Start();
        connection.TrySend(Frame(0, holdsSlot: true)); // inline
        connection.Inline = false;
        connection.TrySend(Frame(1, holdsSlot: true)); // queued, batched
        connection.TrySend(Frame(2, holdsSlot: true));
        connection.TrySend(Frame(3, padding: 20_000, holdsSlot: true)); // above one batch: written alone
        connection.TrySend(Frame(4)); // holds none

        for (var i = 0; i < 5; i++)
            Assert.Equal(i, NumberOf(await WireFrames.ReadFrameAsync(wire.Peer).Within()));
        await Patience.Until(() => connection.QueuedSendBytes == 0 && connection.SlotsFreed == 4);
        await connection.DisposeAsync();
        Assert.Equal(4, connection.SlotsFreed);
    }

    [Fact]
    public async Task Request_slots_of_frames_dropped_by_a_close_or_refused_after_it_are_freed_once()
    {
        var wire = new InMemoryConnection(toPeer: NotReading);
        var connection = new FramedTestConnection(wire);
        connection.Start();
        connection.TrySend(Frame(0, padding: 2000, holdsSlot: true)); // inline, stuck in the pipe
        connection.Inline = false;
        for (var i = 1; i <= 3; i++)
            connection.TrySend(Frame(i, padding: 2000, holdsSlot: true));
        Assert.Equal(0, connection.SlotsFreed);

        connection.Close();
        await Patience.Until(() => connection.SlotsFreed == 4 && connection.QueuedSendBytes == 0);
        Assert.False(connection.TrySend(Frame(5, holdsSlot: true)));
        Assert.Equal(5, connection.SlotsFreed);
        await connection.DisposeAsync();
        Assert.Equal(5, connection.SlotsFreed);
        Assert.Equal(1, connection.Closes);
    }

    [Fact]
    public async Task A_control_message_that_fails_to_build_frees_its_slot_and_throws()
    {
        var wire = new InMemoryConnection();
        var connection = new FramedTestConnection(wire);
        connection.Start();
        Assert.Throws<InvalidOperationException>(() => connection.SendFailing(holdsRequestSlot: true));
        Assert.Equal(1, connection.SlotsFreed);
        Assert.Throws<InvalidOperationException>(() => connection.SendFailing(holdsRequestSlot: false));
        Assert.Equal(1, connection.SlotsFreed);
        Assert.Throws<FrameTooLargeException>(() => connection.SendText(new string('x', 100), 50, holdsRequestSlot: true));
        Assert.Equal(2, connection.SlotsFreed);
        Assert.Throws<FrameTooLargeException>(() => connection.SendText(new string('x', 100), 50, holdsRequestSlot: false));
        Assert.Equal(2, connection.SlotsFreed);

        Assert.True(connection.SendText("seven", int.MaxValue, holdsRequestSlot: true));
        Assert.Equal("seven", MessagePackSerializer.Deserialize<string>(await WireFrames.ReadFrameAsync(wire.Peer).Within()));
        await Patience.Until(() => connection.SlotsFreed == 3);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Received_frames_held_past_the_limit_pause_the_read_loop_until_released()
    {
        var clock = new FakeTimeProvider();
        var wire = new InMemoryConnection();
        var connection = new FramedTestConnection(wire, maxBufferedBytes: 4096, clock) { HoldFrames = true };
        connection.Start();
        var frame = WireFrames.Frame(new byte[1500]);
        await wire.Peer.WriteAsync((byte[])[.. frame, .. frame, .. frame, .. frame, .. frame]); // one read: five frames

        await connection.NextAsync();
        await connection.NextAsync();
        await connection.NextAsync(); // 4500 bytes held: over the limit, the read loop stops after this frame
        Assert.Equal(4500, connection.BufferedBytes);
        Assert.False(connection.Received.Reader.TryRead(out _));

        // Held received bytes alone (nothing waiting to be sent) never make the connection stalled.
        clock.Advance(TimeSpan.FromHours(1));
        Assert.False(connection.IsStalled(TimeSpan.FromSeconds(1)));

        connection.Release(3000); // back at 1500: reading resumes, and the last two frames come
        await connection.NextAsync();
        await connection.NextAsync();
        await Patience.Until(() => connection.BufferedBytes == 4500);
        connection.Release(4500);
        Assert.Equal(0, connection.BufferedBytes);
        Assert.False(connection.IsClosed);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task LastFrameTicks_moves_with_each_whole_frame_on_the_connection_clock()
    {
        var clock = new FakeTimeProvider();
        var wire = new InMemoryConnection();
        var connection = new FramedTestConnection(wire, clock: clock);
        Assert.Equal(clock.GetTimestamp(), connection.LastFrameTicks);
        Assert.Same(clock, connection.Clock);
        connection.Start();

        clock.Advance(TimeSpan.FromSeconds(10));
        var moved = clock.GetTimestamp();
        await wire.Peer.WriteAsync(WireFrames.Frame([1]));
        await connection.NextAsync();
        Assert.Equal(moved, connection.LastFrameTicks);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_failed_write_of_the_write_loop_closes_the_connection_with_its_error_and_frees_every_slot_once()
    {
        var wire = new InMemoryConnection(toPeer: NotReading);
        var connection = new FramedTestConnection(wire);
        connection.Start();
        connection.TrySend(Frame(0, padding: 2000, holdsSlot: true)); // inline, stuck in the pipe until the peer reads
        connection.Inline = false;
        connection.TrySend(Frame(1, holdsSlot: true)); // queued: fits the write loop's batch
        connection.TrySend(Frame(2, padding: 20_000, holdsSlot: true)); // queued: above a batch, so the batch is written first
        var broken = new IOException("Connection reset while sending");
        wire.Client.FailWrites(broken);

        // The peer reads frame 0, so the write loop takes over: its first write (the batch before frame 2) fails.
        Assert.Equal(0, NumberOf(await WireFrames.ReadFrameAsync(wire.Peer).Within()));
        Assert.Same(broken, await connection.Closed.Within());
        await Patience.Until(() => connection.SlotsFreed == 3 && connection.QueuedSendBytes == 0);
        await connection.DisposeAsync();
        Assert.Equal(3, connection.SlotsFreed);
    }

    [Fact]
    public async Task The_peers_end_of_stream_closes_the_connection_once_with_no_reason()
    {
        var wire = new InMemoryConnection();
        var connection = new FramedTestConnection(wire);
        connection.Start();
        wire.Peer.Dispose();
        Assert.Null(await connection.Closed.Within());
        Assert.True(connection.IsClosed);
        Assert.False(connection.TrySend(Frame(1)));
        await connection.DisposeAsync();
        await connection.DisposeAsync();
        Assert.Equal(1, connection.Closes);
        Assert.True(wire.Client.IsDisposed);
    }
}
