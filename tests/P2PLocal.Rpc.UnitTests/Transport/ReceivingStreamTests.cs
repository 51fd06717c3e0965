using System.Buffers;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// What one stream holds (ClientConnection.Streams.cs, ReceivingStream): the bytes of items not yet read, the window
/// the peer is held to after each credit, and a stream that ended or was given up taking nothing more. The read loop
/// only reaches a stream it still has registered; the tests that call <c>OnItem</c>/<c>OnEnd</c> directly stand for an
/// item or an end that was on its way when the consumer gave up or the end came.
/// </summary>
public class ReceivingStreamTests
{
    private static async Task<(ClientConnection Connection, ScriptedPeer Peer, ClientConnection.ReceivingStream Stream, uint Id)> StreamingAsync(int window)
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var stream = await connection.OpenStreamAsync("numbers", 1, ScriptedPeer.WriteX, window, ScriptedPeer.Forever, CancellationToken.None).AsTask().Within();
        return (connection, peer, stream, (await peer.ReadAsync(MessageKind.StreamRequest)).Id);
    }

    private static async Task<int> NextAsync(ClientConnection.ReceivingStream stream)
    {
        var frame = await stream.NextAsync(ScriptedPeer.Forever, CancellationToken.None).AsTask().Within();
        Assert.NotNull(frame);
        return stream.Read(frame.Value, ScriptedPeer.ReadInt);
    }

    /// <summary>A received frame in a pooled array, as the read loop makes them.</summary>
    private static ReceivedFrame Frame(int length) => new(ArrayPool<byte>.Shared.Rent(length), length);

    [Fact]
    public async Task Items_stop_counting_against_the_buffer_limit_as_they_are_read()
    {
        var (connection, peer, stream, id) = await StreamingAsync(8);
        using var _ = stream;
        await peer.SendItemAsync(id, 1);
        await peer.SendItemAsync(id, 2);
        await Patience.Until(() => stream.Waiting == 2);
        Assert.Equal(8, connection.BufferedBytes); // two items of 4 bytes: [kind, id, value]

        Assert.Equal(1, await NextAsync(stream));
        Assert.Equal(4, connection.BufferedBytes);
        Assert.Equal(2, await NextAsync(stream));
        Assert.Equal(0, connection.BufferedBytes);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task After_a_credit_the_peer_is_still_held_to_the_window()
    {
        var (connection, peer, stream, id) = await StreamingAsync(2);
        using var _ = stream;
        await peer.SendItemAsync(id, 0);
        await peer.SendItemAsync(id, 1);
        await Patience.Until(() => stream.Waiting == 2);
        Assert.Equal(0, await NextAsync(stream));
        Assert.Equal(1u, (await peer.ReadAsync(MessageKind.StreamCredit)).Number);

        // One item read, one credited: the peer may send one more, not two.
        await peer.SendItemAsync(id, 2);
        await peer.SendItemAsync(id, 3);
        var reason = Assert.IsType<InvalidDataException>(await connection.Closed.Within());
        Assert.Equal($"Peer sent more items of 'numbers' (stream {id}) than the window it was granted (2 at most).", reason.Message);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task After_its_end_a_stream_drops_a_late_item_and_keeps_its_first_end()
    {
        var (connection, _, stream, _) = await StreamingAsync(8);
        using var _ = stream;
        var first = new PeerConnectionException("first end");
        stream.OnEnd(default, first);
        stream.OnEnd(default, new PeerConnectionException("second end"));
        stream.OnItem(Frame(4));
        Assert.Equal(0, stream.Waiting);
        Assert.Equal(0, connection.BufferedBytes);

        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => stream.NextAsync(ScriptedPeer.Forever, CancellationToken.None).AsTask().Within());
        Assert.Same(first, error);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_stream_given_up_drops_an_item_that_was_on_its_way()
    {
        var (connection, peer, stream, id) = await StreamingAsync(8);
        stream.Dispose();
        Assert.Equal(id, (await peer.ReadAsync(MessageKind.Cancel)).Id);

        stream.OnItem(Frame(4));
        Assert.Equal(0, stream.Waiting);
        Assert.Equal(0, connection.BufferedBytes);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Disposing_a_stream_wakes_a_reader_waiting_on_it()
    {
        var (connection, peer, stream, id) = await StreamingAsync(8);
        var reading = stream.NextAsync(ScriptedPeer.Forever, CancellationToken.None).AsTask();
        Assert.False(reading.IsCompleted);

        stream.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => reading.Within());
        Assert.Equal(id, (await peer.ReadAsync(MessageKind.Cancel)).Id);
        await connection.DisposeAsync();
    }
}
