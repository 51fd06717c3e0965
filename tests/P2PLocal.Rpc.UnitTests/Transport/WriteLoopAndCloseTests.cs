using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// The second half of <see cref="FramedConnection"/> (issue 17, run T's survivors from the read loop's pause on): the
/// read loop's flush of what its frames queued, the write loop's batches, the write loop's wake-up signal, the release
/// of bytes and request slots on every path, <c>Close</c> and <c>DisposeAsync</c>. The frames are raw bytes of an
/// exact size (the connection never parses what it sends), over an in-memory connection whose stream counts writes
/// and notices two writes at once (the connection promises one writer at a time).
/// </summary>
public class WriteLoopAndCloseTests
{
    private const int Batch = 16 * 1024; // FramedConnection.BatchSize, what ArrayPool<byte>.Shared rents for it

    /// <summary>A peer that reads nothing: the pipe toward it takes 1 KiB before its writer waits.</summary>
    private static PipeOptions NotReading => new(pauseWriterThreshold: 1024, resumeWriterThreshold: 512, useSynchronizationContext: false);

    /// <summary>The library's end of an in-memory connection, counting its writes and any two at once.</summary>
    private sealed class GuardedStream(PipeEndStream inner) : WrappedStream(inner)
    {
        private int _writing;
        private int _writes;
        private int _overlaps;

        public int Writes => Volatile.Read(ref _writes);

        /// <summary>Writes started while another was still in progress.</summary>
        public int Overlaps => Volatile.Read(ref _overlaps);

        /// <summary>When set, every write throws it at once, before returning a task (as a disposed socket does).</summary>
        public Exception? ThrowAtOnce { get; set; }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (ThrowAtOnce is { } error)
                throw error;
            Interlocked.Increment(ref _writes);
            if (Interlocked.Exchange(ref _writing, 1) != 0)
                Interlocked.Increment(ref _overlaps);
            return WriteCoreAsync(buffer, cancellationToken);
        }

        private async ValueTask WriteCoreAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
        {
            try
            {
                await Inner.WriteAsync(buffer, cancellationToken);
            }
            finally
            {
                Volatile.Write(ref _writing, 0);
            }
        }
    }

    /// <summary>A minimal connection: records frames and freed slots, and lets the test act on the read loop.</summary>
    private sealed class Probe : FramedConnection
    {
        private int _inputEnds;
        private int _framesSeen;

        private Probe(InMemoryConnection wire, GuardedStream stream, long maxBufferedBytes, TimeProvider? clock)
            : base(wire.ClientSocket, stream, 64 * 1024, maxBufferedBytes, clock)
        {
            Wire = wire;
            Guarded = stream;
        }

        public static Probe Over(PipeOptions? toPeer = null, long maxBufferedBytes = 1 << 20, TimeProvider? clock = null)
        {
            var wire = new InMemoryConnection(toPeer);
            return new Probe(wire, new GuardedStream(wire.Client), maxBufferedBytes, clock);
        }

        public InMemoryConnection Wire { get; }

        public GuardedStream Guarded { get; }

        public PipeEndStream Peer => Wire.Peer;

        public bool Inline { get; set; } = true;

        /// <summary>Received frames are held against the buffer limit until <see cref="Release"/>.</summary>
        public bool HoldFrames { get; set; }

        /// <summary>Runs on the read loop for each frame, with its number from 1 (replies sent here are gathered).</summary>
        public Action<Probe, int>? OnEachFrame { get; set; }

        /// <summary>When set, the read loop waits on it inside each frame.</summary>
        public SemaphoreSlim? Gate { get; set; }

        /// <summary>The end of the peer's stream is noted but does not close (as a server that still owes replies).</summary>
        public bool StayOpenAtEnd { get; set; }

        /// <summary>When set, <c>OnClosed</c> throws it (a subclass failing while the connection closes).</summary>
        public Exception? ThrowOnClosed { get; set; }

        public Channel Received { get; } = new();

        public TaskCompletionSource FrameEntered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource InputEnded { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Each <c>OnRequestSlotsFreed</c> count, in order.</summary>
        public ConcurrentQueue<int> SlotReports { get; } = new();

        public int SlotsFreed => SlotReports.Sum();

        public int InputEnds => Volatile.Read(ref _inputEnds);

        public void Start()
        {
            AcceptFullFrames();
            StartLoops();
        }

        public Task Room() => WaitForRoomAsync();

        public void Release(int bytes) => ReleaseReceived(bytes);

        protected override bool SendInline => Inline;

        protected override void OnFrame(ReceivedFrame frame)
        {
            using (frame)
            {
                FrameEntered.TrySetResult();
                Gate?.Wait();
                if (HoldFrames)
                    HoldReceived(frame.Length);
                Received.Add(frame.Payload.ToArray());
                OnEachFrame?.Invoke(this, Interlocked.Increment(ref _framesSeen));
            }
        }

        protected override void OnInputCompleted()
        {
            if (!StayOpenAtEnd)
            {
                base.OnInputCompleted();
                return;
            }

            Interlocked.Increment(ref _inputEnds);
            InputEnded.TrySetResult();
        }

        protected override void OnClosed(Exception? reason)
        {
            if (ThrowOnClosed is { } error)
                throw error;
        }

        protected override void OnRequestSlotsFreed(int count) => SlotReports.Enqueue(count);
    }

    /// <summary>Frames the read loop handed on, in order.</summary>
    private sealed class Channel
    {
        private readonly System.Threading.Channels.Channel<byte[]> _frames = System.Threading.Channels.Channel.CreateUnbounded<byte[]>();
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public void Add(byte[] payload)
        {
            Interlocked.Increment(ref _count);
            _frames.Writer.TryWrite(payload);
        }

        public async Task<byte[]> NextAsync() => await _frames.Reader.ReadAsync().AsTask().Within();
    }

    /// <summary>A frame of exactly <paramref name="length"/> bytes (prefix included), its payload all <paramref name="tag"/>.</summary>
    private static FrameBuffer Raw(byte tag, int length, bool holdsSlot = false)
    {
        var frame = new FrameBuffer(length) { HoldsRequestSlot = holdsSlot };
        var payload = length - FrameBuffer.PrefixLength;
        frame.GetSpan(payload)[..payload].Fill(tag);
        frame.Advance(payload);
        frame.Complete(int.MaxValue);
        Assert.Equal(length, frame.Length);
        return frame;
    }

    /// <summary>Reads the next frame at the peer and checks its tag and whole length.</summary>
    private static async Task ExpectAsync(Probe connection, byte tag, int length)
    {
        var payload = await WireFrames.ReadFrameAsync(connection.Peer).Within();
        Assert.Equal((tag, length), (payload.Span[0], payload.Length + FrameBuffer.PrefixLength));
        Assert.True(payload.Span.IndexOfAnyExcept(tag) < 0);
    }

    private static Task SendFromPeerAsync(Probe connection, byte tag, int payload = 10) =>
        connection.Peer.WriteAsync(WireFrames.Frame(Enumerable.Repeat(tag, payload).ToArray())).AsTask().Within();

    /// <summary>The peer's frame goes in and is handed on (so the read loop finished the read before it).</summary>
    private static async Task SendAndSeeAsync(Probe connection, byte tag)
    {
        await SendFromPeerAsync(connection, tag);
        Assert.Equal(tag, (await connection.Received.NextAsync())[0]);
    }

    // --- The read loop: a pause, the end of the peer's stream ---

    [Fact]
    public async Task A_read_loop_paused_by_held_frames_hands_on_nothing_more_once_closed_meanwhile()
    {
        var connection = Probe.Over(maxBufferedBytes: 4096);
        connection.HoldFrames = true;
        connection.Start();
        var frame = WireFrames.Frame(new byte[1500]);
        await connection.Peer.WriteAsync((byte[])[.. frame, .. frame, .. frame, .. frame, .. frame]); // one read: five frames
        for (var i = 0; i < 3; i++)
            await connection.Received.NextAsync(); // 4500 bytes held: paused with two whole frames left
        Assert.Equal(4500, connection.BufferedBytes);

        connection.Close();
        connection.Release(3000); // room again: the read loop wakes, sees the close and stops
        await connection.DisposeAsync();
        Assert.Equal(3, connection.Received.Count);
    }

    [Fact]
    public async Task The_end_of_the_peers_stream_reaches_a_connection_that_stays_open_once()
    {
        var connection = Probe.Over();
        connection.StayOpenAtEnd = true;
        connection.Start();
        connection.Peer.Dispose();
        await connection.InputEnded.Task.Within();
        Assert.False(connection.IsClosed);

        await connection.DisposeAsync();
        Assert.Equal(1, connection.InputEnds);
    }

    [Fact]
    public async Task DisposeAsync_waits_for_a_frame_still_being_handled()
    {
        var gate = new SemaphoreSlim(0);
        var connection = Probe.Over();
        connection.Gate = gate;
        connection.Start();
        await SendFromPeerAsync(connection, 1);
        await connection.FrameEntered.Task.Within();

        var disposing = connection.DisposeAsync();
        Assert.True(connection.IsClosed);
        Assert.False(disposing.IsCompleted); // the read loop is inside OnFrame, so it has not ended
        gate.Release();
        await disposing.Within();
        Assert.Equal(1, connection.Received.Count);
    }

    [Theory]
    [InlineData(typeof(IOException))]
    [InlineData(typeof(SocketException))]
    [InlineData(typeof(ObjectDisposedException))]
    [InlineData(typeof(InvalidOperationException))]
    public async Task DisposeAsync_leaves_a_loops_transport_error_to_Closed(Type errorType)
    {
        var error = errorType == typeof(ObjectDisposedException) ? new ObjectDisposedException("stream") : (Exception)Activator.CreateInstance(errorType)!;
        var connection = Probe.Over();
        connection.ThrowOnClosed = error;
        connection.Start();
        var reset = new IOException("Connection reset by the peer");
        connection.Peer.Reset(reset); // the read loop fails, closes, and OnClosed throws on it

        Assert.Same(reset, await connection.Closed.Within());
        await connection.DisposeAsync().Within();
    }

    [Fact]
    public async Task DisposeAsync_throws_a_loops_error_that_is_not_about_the_transport()
    {
        var connection = Probe.Over();
        connection.ThrowOnClosed = new ArgumentException("a bug in OnClosed");
        connection.Start();
        connection.Peer.Reset(new IOException("Connection reset by the peer"));
        await connection.Closed.Within();

        Assert.Equal("a bug in OnClosed", (await Assert.ThrowsAsync<ArgumentException>(() => connection.DisposeAsync().Within())).Message);
    }

    // --- The read loop's flush of the frames its reads queued (FlushGathered) ---

    [Fact]
    public async Task Replies_gathered_from_one_read_go_out_in_one_write_and_release_their_bytes_and_slots()
    {
        var connection = Probe.Over();
        connection.OnEachFrame = (c, n) =>
        {
            if (n != 1)
                return;
            c.TrySend(Raw(0xA1, 50, holdsSlot: true));
            c.TrySend(Raw(0xA2, 60));
        };
        connection.Start();
        await SendAndSeeAsync(connection, 1);
        await SendAndSeeAsync(connection, 2); // its read began after the first read's flush ended

        Assert.Equal(1, connection.Guarded.Writes);
        Assert.Equal(0, connection.QueuedSendBytes);
        Assert.Equal([1], connection.SlotReports);
        Assert.True(connection.TrySend(Raw(0xA3, 70))); // the stream was given up: written inline at once
        Assert.Equal(2, connection.Guarded.Writes);
        await ExpectAsync(connection, 0xA1, 50);
        await ExpectAsync(connection, 0xA2, 60);
        await ExpectAsync(connection, 0xA3, 70);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Gathered_replies_that_fill_the_batch_exactly_go_out_in_one_write()
    {
        var connection = Probe.Over();
        connection.OnEachFrame = (c, n) =>
        {
            if (n != 1)
                return;
            c.TrySend(Raw(0xB1, 100));
            c.TrySend(Raw(0xB2, Batch - 100));
        };
        connection.Start();
        await SendFromPeerAsync(connection, 1);
        await ExpectAsync(connection, 0xB1, 100);
        await ExpectAsync(connection, 0xB2, Batch - 100);
        await Patience.Until(() => connection.QueuedSendBytes == 0);

        Assert.Equal(1, connection.Guarded.Writes);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Replies_queued_while_another_write_is_in_flight_are_left_to_that_writer()
    {
        var connection = Probe.Over(NotReading);
        connection.OnEachFrame = (c, n) => c.TrySend(Raw((byte)(0xC0 + n), 40));
        connection.Start();
        connection.TrySend(Raw(0xC0, 2000)); // inline, stuck in the pipe: the stream is held
        await SendAndSeeAsync(connection, 1);
        await SendAndSeeAsync(connection, 2);

        await ExpectAsync(connection, 0xC0, 2000);
        await ExpectAsync(connection, 0xC1, 40);
        await ExpectAsync(connection, 0xC2, 40);
        await Patience.Until(() => connection.QueuedSendBytes == 0);
        Assert.Equal(0, connection.Guarded.Overlaps);
        Assert.Equal(2, connection.Guarded.Writes); // the stuck frame, then the write loop's batch of both replies
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_gathered_write_that_waits_for_the_peer_keeps_the_stream_and_leaves_the_read_loop_reading()
    {
        var connection = Probe.Over(NotReading);
        connection.OnEachFrame = (c, n) =>
        {
            if (n == 1)
                c.TrySend(Raw(0xD1, 2000, holdsSlot: true)); // flushed from the read loop, stuck in the pipe
        };
        connection.Start();
        await SendAndSeeAsync(connection, 1);
        await SendAndSeeAsync(connection, 2); // read while the reply waits: the read loop did not wait on the peer

        Assert.True(connection.TrySend(Raw(0xD2, 30))); // the stream is still held: queued, not written beside it
        Assert.Equal(2030, connection.QueuedSendBytes);
        Assert.Empty(connection.SlotReports);
        await ExpectAsync(connection, 0xD1, 2000);
        await ExpectAsync(connection, 0xD2, 30);
        await Patience.Until(() => connection.QueuedSendBytes == 0 && connection.SlotsFreed == 1);

        Assert.Equal(0, connection.Guarded.Overlaps);
        Assert.Equal([1], connection.SlotReports);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_gathered_write_that_throws_at_once_closes_with_its_error_and_releases_its_frames()
    {
        var broken = new IOException("The socket is gone");
        var connection = Probe.Over();
        connection.OnEachFrame = (c, _) =>
        {
            c.Guarded.ThrowAtOnce = broken;
            c.TrySend(Raw(0xE1, 80, holdsSlot: true));
        };
        connection.Start();
        await SendFromPeerAsync(connection, 1);

        Assert.Same(broken, await connection.Closed.Within());
        Assert.Equal(0, connection.QueuedSendBytes);
        Assert.Equal([1], connection.SlotReports);
        await connection.DisposeAsync();
    }

    // --- The write loop's batches ---

    /// <summary>Holds the stream with an inline frame stuck in a pipe the peer does not read, then queues <paramref name="frames"/> behind it.</summary>
    private static Probe QueuedBehindStuckWrite(params FrameBuffer[] frames)
    {
        var connection = Probe.Over(NotReading);
        connection.Start();
        connection.TrySend(Raw(0xF0, 2000, holdsSlot: true));
        connection.Inline = false;
        foreach (var frame in frames)
            Assert.True(connection.TrySend(frame));
        return connection;
    }

    [Fact]
    public async Task Small_frames_queued_behind_a_busy_writer_go_out_in_one_write_and_free_no_slot_they_do_not_hold()
    {
        var connection = QueuedBehindStuckWrite(Raw(1, 100), Raw(2, 200), Raw(3, 300));
        await ExpectAsync(connection, 0xF0, 2000);
        await ExpectAsync(connection, 1, 100);
        await ExpectAsync(connection, 2, 200);
        await ExpectAsync(connection, 3, 300);
        await Patience.Until(() => connection.QueuedSendBytes == 0);

        Assert.Equal(2, connection.Guarded.Writes);
        Assert.Equal([1], connection.SlotReports); // the stuck frame's; the batch held none, so no report of 0
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Queued_frames_that_fill_the_batch_exactly_go_out_in_one_write()
    {
        var connection = QueuedBehindStuckWrite(Raw(1, 100), Raw(2, Batch - 100));
        await ExpectAsync(connection, 0xF0, 2000);
        await ExpectAsync(connection, 1, 100);
        await ExpectAsync(connection, 2, Batch - 100);
        await Patience.Until(() => connection.QueuedSendBytes == 0);

        Assert.Equal(2, connection.Guarded.Writes);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_queued_frame_larger_than_a_batch_is_written_alone_with_no_empty_write()
    {
        var connection = QueuedBehindStuckWrite(Raw(1, 20_000));
        await ExpectAsync(connection, 0xF0, 2000);
        await ExpectAsync(connection, 1, 20_000);
        await Patience.Until(() => connection.QueuedSendBytes == 0);

        Assert.Equal(2, connection.Guarded.Writes);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_batch_written_before_a_frame_that_does_not_fit_releases_its_bytes_at_once()
    {
        var connection = QueuedBehindStuckWrite(Raw(1, 10_000, holdsSlot: true), Raw(2, 10_000, holdsSlot: true));
        await ExpectAsync(connection, 0xF0, 2000);
        await ExpectAsync(connection, 1, 10_000);

        // The second batch (frame 2 alone) waits for the peer; the first is written and no longer counted.
        await Patience.Until(() => connection.QueuedSendBytes == 10_000);
        Assert.Equal([1, 1], connection.SlotReports);
        await ExpectAsync(connection, 2, 10_000);
        await Patience.Until(() => connection.QueuedSendBytes == 0);
        Assert.Equal([1, 1, 1], connection.SlotReports);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_failed_write_loop_frees_the_slots_of_frames_it_had_not_reached()
    {
        var connection = QueuedBehindStuckWrite(Raw(1, 100, holdsSlot: true), Raw(2, 20_000, holdsSlot: true), Raw(3, 100, holdsSlot: true));
        var broken = new IOException("Connection reset while sending");
        connection.Wire.Client.FailWrites(broken);

        // The peer reads the stuck frame; the write loop's first write (the batch before frame 2) fails.
        await ExpectAsync(connection, 0xF0, 2000);
        Assert.Same(broken, await connection.Closed.Within());
        await Patience.Until(() => connection.SlotsFreed == 4 && connection.QueuedSendBytes == 0);
        await connection.DisposeAsync();
        Assert.Equal(4, connection.SlotsFreed);
    }

    [Fact]
    public async Task A_waiter_for_room_wakes_when_the_write_loops_batch_brings_the_bytes_under_the_limit()
    {
        var clock = new FakeTimeProvider();
        var connection = Probe.Over(NotReading, maxBufferedBytes: 4096, clock);
        connection.Start();
        connection.TrySend(Raw(0xF0, 1100)); // inline, stuck
        connection.Inline = false;
        connection.TrySend(Raw(1, 3000));
        connection.TrySend(Raw(2, 3000));
        var room = connection.Room();

        await ExpectAsync(connection, 0xF0, 1100);
        Assert.False(room.IsCompleted); // 6000 bytes still queued: over the limit
        await ExpectAsync(connection, 1, 3000);
        await ExpectAsync(connection, 2, 3000);
        await room.Within();

        clock.Advance(TimeSpan.FromHours(1));
        Assert.Equal(0, connection.BufferedBytes);
        Assert.False(connection.IsStalled(TimeSpan.FromSeconds(1)));
        await connection.DisposeAsync();
    }

    // --- The write loop's wake-up signal, Close, CloseAfterFlushAsync ---

    [Fact]
    public async Task Frames_queued_before_the_loops_start_are_dropped_by_a_close_at_once()
    {
        var connection = Probe.Over();
        connection.Inline = false;
        Assert.True(connection.TrySend(Raw(1, 500, holdsSlot: true))); // queued; the write loop's wake-up is kept for later
        Assert.Equal(500, connection.QueuedSendBytes);

        connection.Close(); // stops the loop that never waited: a second wake-up without a waiter
        Assert.Equal(0, connection.QueuedSendBytes);
        Assert.Equal([1], connection.SlotReports);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_wake_up_kept_for_the_write_loop_is_used_once()
    {
        var connection = Probe.Over(NotReading);
        connection.Inline = false;
        connection.TrySend(Raw(1, 100)); // before the loop waits: the wake-up is kept
        connection.Start();
        await ExpectAsync(connection, 1, 100);
        await Patience.Until(() => connection.QueuedSendBytes == 0);

        connection.Inline = true;
        connection.TrySend(Raw(2, 2000)); // inline, stuck: the stream is held
        connection.TrySend(Raw(3, 100)); // queued behind it (a loop woken again for nothing would have let it beside)
        await ExpectAsync(connection, 2, 2000);
        await ExpectAsync(connection, 3, 100);
        await Patience.Until(() => connection.QueuedSendBytes == 0);

        Assert.Equal(0, connection.Guarded.Overlaps);
        Assert.Equal(3, connection.Guarded.Writes);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Close_after_flush_behind_a_stuck_write_keeps_the_stream_with_its_writer()
    {
        var connection = QueuedBehindStuckWrite(Raw(1, 100));
        var closing = connection.CloseAfterFlushAsync(TimeSpan.FromMinutes(1));
        await SendAndSeeAsync(connection, 9); // the read loop's flush finds frame 1 queued: not its to write

        await ExpectAsync(connection, 0xF0, 2000);
        await ExpectAsync(connection, 1, 100);
        await closing.Within();
        Assert.Null(await connection.Closed.Within());
        Assert.Equal(0, connection.Guarded.Overlaps);
        Assert.Equal(2, connection.Guarded.Writes);
        await connection.DisposeAsync();
    }
}
