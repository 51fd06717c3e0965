using System.Buffers;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;
using static P2PLocal.Rpc.UnitTests.Transport.FramedTestConnection;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// What <see cref="FramedConnection.TrySend(Framing.FrameBuffer)"/> does with a frame once it is written, refused or lost
/// (issue 17, run T's survivors): its buffer goes back to the pool, its bytes stop counting (waking a waiter for room),
/// a write that fails closes the connection with its error, and the stream passes to the write loop for frames queued
/// meanwhile or for a close after flush.
/// </summary>
public class FramedConnectionSendRetirementTests
{
    // The shared pool hands the array returned last on this thread to the next rent of its size: a buffer that was not
    // given back shows up as a different array (as in FrameTests).
    private static void AssertGivenBack(byte[] array)
    {
        var next = ArrayPool<byte>.Shared.Rent(array.Length);
        Assert.Same(array, next);
        ArrayPool<byte>.Shared.Return(next);
    }

    private static byte[] ArrayOf(ReadOnlyMemory<byte> memory)
    {
        Assert.True(MemoryMarshal.TryGetArray(memory, out var segment));
        return segment.Array!;
    }

    /// <summary>
    /// The library's end of an in-memory connection whose writes the test decides: each completes at once through one
    /// reusable <see cref="IValueTaskSource"/> (counting the results taken), or throws before it returns.
    /// </summary>
    private sealed class ScriptedWrites(PipeEndStream inner) : WrappedStream(inner), IValueTaskSource
    {
        private ManualResetValueTaskSourceCore<bool> _core;

        public int Writes { get; private set; }

        /// <summary>How many writes had their result taken (a <see cref="ValueTask"/> is consumed exactly once).</summary>
        public int ResultsTaken { get; private set; }

        public Exception? ThrowAtOnce { get; set; }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (ThrowAtOnce is { } error)
                throw error;
            Writes++;
            _core.Reset();
            _core.SetResult(true);
            return new ValueTask(this, _core.Version);
        }

        void IValueTaskSource.GetResult(short token)
        {
            _core.GetResult(token);
            ResultsTaken++;
        }

        ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

        void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    private static (FramedTestConnection Connection, ScriptedWrites Stream) OverScriptedWrites()
    {
        var wire = new InMemoryConnection();
        var stream = new ScriptedWrites(wire.Client);
        var connection = new FramedTestConnection(wire.ClientSocket, stream);
        connection.Start();
        return (connection, stream);
    }

    [Fact]
    public async Task A_frame_written_inline_gives_its_buffer_back_to_the_pool_before_TrySend_returns()
    {
        var connection = new FramedTestConnection(new InMemoryConnection());
        connection.Start();
        var frame = Frame(1);
        var array = ArrayOf(frame.Frame);
        Assert.True(connection.TrySend(frame));
        AssertGivenBack(array);
        Assert.Equal(0, connection.QueuedSendBytes);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_frame_refused_by_a_closed_connection_gives_its_buffer_back_to_the_pool()
    {
        var connection = new FramedTestConnection(new InMemoryConnection());
        connection.Start();
        connection.Close();
        var frame = Frame(1, holdsSlot: true);
        var array = ArrayOf(frame.Frame);
        Assert.False(connection.TrySend(frame));
        AssertGivenBack(array);
        Assert.Equal(1, connection.SlotsFreed);
        Assert.Equal(0, connection.QueuedSendBytes);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_control_message_that_fails_to_build_gives_its_buffer_back_to_the_pool()
    {
        var connection = new FramedTestConnection(new InMemoryConnection());
        connection.Start();
        var array = ArrayPool<byte>.Shared.Rent(64); // the size a control message starts with: its frame rents this one
        ArrayPool<byte>.Shared.Return(array);
        Assert.Throws<InvalidOperationException>(() => connection.SendFailing(holdsRequestSlot: false));
        AssertGivenBack(array);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task An_inline_write_that_throws_at_once_is_accepted_then_lost_with_the_connection_closed_by_its_error()
    {
        var (connection, stream) = OverScriptedWrites();
        var broken = new IOException("Connection reset while sending");
        stream.ThrowAtOnce = broken;

        Assert.True(connection.TrySend(Frame(1, holdsSlot: true))); // accepted, then lost with the connection, as a queued frame would be
        Assert.Same(broken, await connection.Closed.Within());
        Assert.Equal(1, connection.SlotsFreed);
        Assert.Equal(0, connection.QueuedSendBytes);
        Assert.False(connection.TrySend(Frame(2)));
        await connection.DisposeAsync();
        Assert.Equal(1, connection.SlotsFreed);
    }

    [Fact]
    public async Task An_inline_write_that_completes_at_once_has_its_result_taken_once()
    {
        var (connection, stream) = OverScriptedWrites();
        Assert.True(connection.TrySend(Frame(1)));
        Assert.True(connection.TrySend(Frame(2)));
        Assert.Equal(2, stream.Writes);
        Assert.Equal(2, stream.ResultsTaken); // so a pooled source behind a completed write is released
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task An_inline_write_that_fails_later_closes_the_connection_with_its_error_and_frees_its_slot()
    {
        var wire = new InMemoryConnection(toPeer: NotReading);
        var connection = new FramedTestConnection(wire);
        connection.Start();
        Assert.True(connection.TrySend(Frame(1, padding: 2000, holdsSlot: true))); // inline, stuck in the pipe

        wire.Peer.StopReading(); // the pending write fails
        var error = Assert.IsType<IOException>(await connection.Closed.Within());
        Assert.Equal("The other end is closed: nothing more is read.", error.Message);
        await Patience.Until(() => connection.SlotsFreed == 1 && connection.QueuedSendBytes == 0);
        await connection.DisposeAsync();
        Assert.Equal(1, connection.SlotsFreed);
    }

    [Fact]
    public async Task A_waiter_for_room_is_woken_when_the_inline_write_that_kept_the_connection_over_completes()
    {
        var wire = new InMemoryConnection(toPeer: NotReading);
        var connection = new FramedTestConnection(wire, maxBufferedBytes: 1000);
        connection.Start();
        Assert.True(connection.TrySend(Frame(1, padding: 2000))); // inline, stuck in the pipe: over the limit
        var room = connection.WaitForRoom();
        Assert.False(room.IsCompleted);

        Assert.Equal(1, NumberOf(await WireFrames.ReadFrameAsync(wire.Peer).Within())); // the peer reads: the write completes
        await room.Within();
        Assert.Equal(0, connection.QueuedSendBytes);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Frames_queued_behind_an_inline_write_are_written_once_it_completes()
    {
        var wire = new InMemoryConnection(toPeer: NotReading);
        var connection = new FramedTestConnection(wire);
        connection.Start();
        Assert.True(connection.TrySend(Frame(0, padding: 2000))); // inline, stuck in the pipe
        Assert.True(connection.TrySend(Frame(1))); // queued behind it
        Assert.True(connection.TrySend(Frame(2)));

        for (var i = 0; i < 3; i++)
            Assert.Equal(i, NumberOf(await WireFrames.ReadFrameAsync(wire.Peer).Within()));
        await Patience.Until(() => connection.QueuedSendBytes == 0);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Close_after_flush_during_an_inline_write_closes_once_that_write_completes()
    {
        var wire = new InMemoryConnection(toPeer: NotReading);
        var connection = new FramedTestConnection(wire);
        connection.Start();
        Assert.True(connection.TrySend(Frame(0, padding: 2000))); // inline, stuck in the pipe
        var closing = connection.CloseAfterFlushAsync(ScriptedPeer.Forever); // far beyond the test's patience
        Assert.False(connection.IsClosed);

        Assert.Equal(0, NumberOf(await WireFrames.ReadFrameAsync(wire.Peer).Within()));
        Assert.Null(await connection.Closed.Within());
        await closing.Within();
        Assert.Equal(0, await wire.Peer.ReadAsync(new byte[1]).AsTask().Within()); // nothing more was sent
        await connection.DisposeAsync();
    }
}
