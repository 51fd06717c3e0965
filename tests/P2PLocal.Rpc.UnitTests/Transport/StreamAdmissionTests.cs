using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// Stream requests and events while the connection is over <see cref="NodeOptions.MaxBufferedBytesPerConnection"/>
/// (here: a received item nobody has read yet): they wait for room, one admission at a time, and go out once the
/// item is read (ClientConnection.Streams.cs OpenStreamAsync, ClientConnection.Events.cs SendEventAsync).
/// </summary>
public class StreamAdmissionTests
{
    /// <summary>Far below one <see cref="SendBigItemAsync"/> item, far above any request or event these tests send.</summary>
    private const long Limit = 512;

    private static readonly KwargsWriter<int> s_failingKwargs = static (ref MessagePackWriter _, int _, MessagePackSerializerOptions _) =>
        throw new InvalidOperationException("kwargs cannot be written");

    private static ValueTask<ClientConnection.ReceivingStream> Open(ClientConnection connection, string function, CancellationToken cancellationToken = default) =>
        connection.OpenStreamAsync(function, 1, ScriptedPeer.WriteX, 8, ScriptedPeer.Forever, cancellationToken);

    /// <summary>A connection with a stream "held" open, and the id of that stream's request.</summary>
    private static async Task<(ClientConnection Connection, ScriptedPeer Peer, ClientConnection.ReceivingStream Held, uint Id)> ConnectAsync()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync(maxBufferedBytes: Limit);
        var held = await Open(connection, "held").AsTask().Within();
        var request = await peer.ReadAsync(MessageKind.StreamRequest);
        return (connection, peer, held, request.Id);
    }

    /// <summary>The peer sends an item of 1 KiB on stream <paramref name="id"/>; held unread, it puts the connection over the limit.</summary>
    private static async Task SendBigItemAsync(ClientConnection connection, ScriptedPeer peer, ClientConnection.ReceivingStream held, uint id)
    {
        var before = held.Waiting;
        await peer.SendAsync((ref MessagePackWriter writer) =>
        {
            StreamMessages.WriteItemHeader(ref writer, id);
            writer.Write(new byte[1024]);
        });
        await Patience.Until(() => held.Waiting == before + 1);
        Assert.True(connection.BufferedBytes > Limit);
    }

    /// <summary>Reads (and drops) the held item: the bytes it held are released, which makes room.</summary>
    private static async Task ReadHeldItemAsync(ClientConnection.ReceivingStream held)
    {
        var frame = await held.NextAsync(ScriptedPeer.Forever, CancellationToken.None).AsTask().Within();
        Assert.NotNull(frame);
        frame.Value.Dispose();
    }

    /// <summary>
    /// Puts the connection over the limit, opens a stream of <paramref name="function"/> (it waits: nothing is sent),
    /// then makes room; the request goes out.
    /// </summary>
    private static async Task<ClientConnection.ReceivingStream> OpenOnceThereIsRoomAsync(ClientConnection connection, ScriptedPeer peer,
        ClientConnection.ReceivingStream held, uint id, string function)
    {
        await SendBigItemAsync(connection, peer, held, id);
        var opening = Open(connection, function).AsTask();
        Assert.False(opening.IsCompleted);

        await ReadHeldItemAsync(held);
        var stream = await opening.Within();
        Assert.Equal(function, (await peer.ReadAsync(MessageKind.StreamRequest)).Function);
        return stream;
    }

    [Fact]
    public async Task A_stream_request_waits_for_room_and_each_one_let_through_frees_the_admission_for_the_next()
    {
        var (connection, peer, held, id) = await ConnectAsync();
        using var _ = held;
        var opened = new List<ClientConnection.ReceivingStream>();
        foreach (var function in new[] { "second", "third" })
            opened.Add(await OpenOnceThereIsRoomAsync(connection, peer, held, id, function));

        Assert.Equal(3, connection.PendingCount);
        opened.ForEach(stream => stream.Dispose());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_stream_request_that_cannot_be_built_after_its_wait_frees_the_admission()
    {
        var (connection, peer, held, id) = await ConnectAsync();
        using var _ = held;
        await SendBigItemAsync(connection, peer, held, id);
        var failing = connection.OpenStreamAsync("bad", 1, s_failingKwargs, 8, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        Assert.False(failing.IsCompleted);
        await ReadHeldItemAsync(held);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => failing.Within());
        Assert.Equal("kwargs cannot be written", error.Message);
        Assert.Equal(1, connection.PendingCount);

        // The next request that waits is let through once there is room again.
        using var next = await OpenOnceThereIsRoomAsync(connection, peer, held, id, "next");
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task An_event_waits_for_room_before_its_sending_callback_and_goes_out_once_there_is_room()
    {
        var (connection, peer, held, id) = await ConnectAsync();
        using var _ = held;
        await SendBigItemAsync(connection, peer, held, id);
        var message = Bytes.Pack((ref MessagePackWriter writer) => EventMessages.WriteEvent(ref writer, "temp", Bytes.Pack((ref MessagePackWriter w) => w.Write(21))));
        var counted = 0;

        var sending = connection.SendEventAsync(message, () => counted++, CancellationToken.None).AsTask();
        Assert.False(sending.IsCompleted);
        Assert.Equal(0, counted);

        await ReadHeldItemAsync(held);
        Assert.True(await sending.Within());
        Assert.Equal(1, counted);
        Assert.Equal(message, (await peer.ReadAsync(MessageKind.Event)).Payload.ToArray());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_token_stops_an_event_waiting_for_room_and_nothing_is_sent()
    {
        var (connection, peer, held, id) = await ConnectAsync();
        using var _ = held;
        await SendBigItemAsync(connection, peer, held, id);
        using var cts = new CancellationTokenSource();
        var counted = 0;

        var sending = connection.SendEventAsync(new byte[] { 0x91, 0x09 }, () => counted++, cts.Token).AsTask();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending.Within());
        Assert.Equal(0, counted);

        // Once there is room, the next thing the peer reads is the next request, not the event.
        await ReadHeldItemAsync(held);
        var call = connection.InvokeAsync("f", 1, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);
        await peer.ReplyAsync(request.Id, 7);
        Assert.Equal(7, await call.Within());
        await connection.DisposeAsync();
    }
}
