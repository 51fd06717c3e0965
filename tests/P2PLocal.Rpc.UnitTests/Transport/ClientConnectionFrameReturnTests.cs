using System.Buffers;
using System.Diagnostics.Metrics;
using System.Text;
using MessagePack;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// Whether an array holding a marker is back in <see cref="ArrayPool{T}.Shared"/>. The shared pool keeps the array a
/// thread returned last, per size, for that thread, so renting on the thread that returned it gives it back. On the
/// read loop the check runs from a <see cref="MeterListener"/>: the connection counts a frame received (or its close)
/// on the read loop, after the frames before it in the same read were handled there. There only the size of the
/// frame's own array is looked at: the read buffers (4 KiB pipe segments, the reader's 16 KiB) hold the frame's bytes too.
/// </summary>
internal sealed class PoolProbe : IDisposable
{
    private static readonly int[] s_sizes = [256, 512, 1024, 2048, 4096, 8192, 16384];
    private readonly MeterListener _listener = new();
    private readonly byte[] _marker;
    private readonly int _size;
    private readonly bool _scribble;
    private int _triggered;
    private int _found;

    /// <param name="marker">The bytes the array holds.</param>
    /// <param name="size">The length asked of the pool for the array (a received frame's payload length).</param>
    /// <param name="instrument">The instrument of <see cref="NodeTelemetry.MeterName"/> whose measurement runs the check.</param>
    /// <param name="value">The measurement that runs it.</param>
    /// <param name="scribble">Overwrite an array found, as the next user of a returned array would.</param>
    public PoolProbe(byte[] marker, int size, string instrument, long value, bool scribble = false)
    {
        _marker = marker;
        _size = size;
        _scribble = scribble;
        _listener.InstrumentPublished = (i, listener) =>
        {
            if (i.Meter.Name == NodeTelemetry.MeterName && i.Name == instrument)
                listener.EnableMeasurementEvents(i);
        };
        _listener.SetMeasurementEventCallback<long>((_, measured, _, _) =>
        {
            if (measured != value)
                return;
            if (Holds(_marker, _size, _scribble))
                Volatile.Write(ref _found, 1);
            Volatile.Write(ref _triggered, 1);
        });
        _listener.Start();
    }

    /// <summary>A probe for the array of a received frame of <paramref name="frame"/>'s length, checked when a frame of <paramref name="triggerBytes"/> bytes (prefix included) is received.</summary>
    public static PoolProbe OnReceived(byte[] marker, byte[] frame, int triggerBytes, bool scribble = false) =>
        new(marker, frame.Length - 4, "p2plocal.network.io", triggerBytes, scribble);

    /// <summary>Whether the check ran and found the array.</summary>
    public bool Found => Volatile.Read(ref _found) == 1;

    /// <summary>Whether the check ran.</summary>
    public bool Triggered => Volatile.Read(ref _triggered) == 1;

    /// <summary>Whether an array holding <paramref name="marker"/> is what this thread rents next for any size up to 16 KiB.</summary>
    public static bool HoldsAnySize(byte[] marker) => s_sizes.Any(size => Holds(marker, size, scribble: false));

    /// <summary>Whether an array holding <paramref name="marker"/> is what this thread rents next for <paramref name="size"/> bytes.</summary>
    public static bool Holds(byte[] marker, int size, bool scribble)
    {
        var array = ArrayPool<byte>.Shared.Rent(size);
        var found = array.AsSpan().IndexOf(marker) >= 0;
        if (found && scribble)
            array.AsSpan().Clear();
        ArrayPool<byte>.Shared.Return(array);
        return found;
    }

    public void Dispose() => _listener.Dispose();
}

/// <summary>
/// Every pooled frame buffer a client connection takes is given back once (ClientConnection.cs): requests that fail
/// while being built, and each received frame it handles itself (the hello, a refusal, subscriptions, a reply nobody
/// waits for, a frame that closes the connection), while the end of a stream stays with the stream until it is read.
/// </summary>
public class ClientConnectionFrameReturnTests
{
    /// <summary>A unique text of <paramref name="length"/> characters, and its first 32 bytes to look for.</summary>
    private static (string Text, byte[] Marker) MarkerText(int length)
    {
        var id = Guid.NewGuid().ToString("N");
        return (id + new string('m', length - id.Length), Encoding.ASCII.GetBytes(id));
    }

    /// <summary>
    /// A reply to id 999, which no call waits for: the frame after the one checked, whose count runs the probe (88 bytes:
    /// frames checked are of another pool size, else its own array would be the one taken back).
    /// </summary>
    private static readonly byte[] s_trigger = WireFrames.Frame((ref MessagePackWriter writer) =>
    {
        Messages.WriteResultHeader(ref writer, 999);
        writer.Write(new string('t', 77));
    });

    /// <summary>Sends <paramref name="frame"/> and the trigger in one write, and waits until the read loop gave the frame's array back.</summary>
    private static async Task SendAndSeeItGivenBackAsync(ScriptedPeer peer, byte[] frame, byte[] marker)
    {
        using var probe = PoolProbe.OnReceived(marker, frame, s_trigger.Length);
        await peer.SendRawAsync([.. frame, .. s_trigger]);
        await Patience.Until(() => probe.Found);
    }

    [Fact]
    public async Task A_request_above_the_frame_limit_gives_its_buffer_back_before_it_fails()
    {
        var (connection, _) = await ScriptedPeer.ConnectAsync(hello: ScriptedPeer.HelloOf("bob-1", maxFrameSize: 1024));
        var (text, marker) = MarkerText(1100);
        var failing = connection.InvokeAsync("big", text, static (ref MessagePackWriter writer, string t, MessagePackSerializerOptions _) => writer.Write(t),
            ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None);
        Assert.True(PoolProbe.HoldsAnySize(marker)); // built and refused on this thread: nothing of it was sent
        var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => failing.AsTask());
        Assert.EndsWith("the frame limit is 1024 bytes.", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, connection.PendingCount);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_request_whose_kwargs_cannot_be_written_fails_with_their_error_and_gives_its_buffer_back()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var (text, marker) = MarkerText(600);
        var broken = new InvalidOperationException("kwargs cannot be written");
        var failing = connection.InvokeAsync("broken", (text, broken), static (ref MessagePackWriter writer, (string Text, InvalidOperationException Error) state, MessagePackSerializerOptions _) =>
        {
            writer.Write(state.Text);
            writer.Flush();
            throw state.Error;
        }, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None);
        Assert.True(PoolProbe.HoldsAnySize(marker));
        Assert.Same(broken, await Assert.ThrowsAsync<InvalidOperationException>(() => failing.AsTask()));
        Assert.Equal(0, connection.PendingCount);

        var next = connection.InvokeAsync("next", 1, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request); // nothing of the broken request went out
        Assert.Equal("next", request.Function);
        await peer.ReplyAsync(request.Id, 2);
        Assert.Equal(2, await next.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_peers_hello_goes_back_to_the_pool_once_read()
    {
        var (name, marker) = MarkerText(1000);
        var hello = WireFrames.Frame((ref MessagePackWriter writer) => Messages.WriteHello(ref writer, new Hello(Messages.ProtocolVersion, name, "bob-1", 64 * 1024)));
        var peer = new ScriptedPeer();
        var connecting = ClientConnection.ConnectAsync(peer.Dial, ScriptedPeer.EndPoint, "bob", "bob-1", ScriptedPeer.CallerHello, ScriptedPeer.Options,
            TimeSpan.FromSeconds(20), NodeOptions.DefaultMaxBufferedBytesPerConnection, null, null, TimeProvider.System, CancellationToken.None);
        await peer.ReadAsync(MessageKind.Hello);
        await SendAndSeeItGivenBackAsync(peer, hello, marker);

        var connection = await connecting.Within();
        Assert.Equal(name, connection.PeerHello.Name);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_refusal_before_the_hello_goes_back_to_the_pool_once_read()
    {
        var (reason, marker) = MarkerText(1000);
        var refusal = WireFrames.Frame((ref MessagePackWriter writer) => Messages.WriteRefusal(ref writer, ErrorCode.Busy, Messages.NodeFullType, reason));
        var peer = new ScriptedPeer();
        var connecting = ClientConnection.ConnectAsync(peer.Dial, ScriptedPeer.EndPoint, "bob", "bob-1", ScriptedPeer.CallerHello, ScriptedPeer.Options,
            TimeSpan.FromSeconds(20), NodeOptions.DefaultMaxBufferedBytesPerConnection, null, null, TimeProvider.System, CancellationToken.None);
        await peer.ReadAsync(MessageKind.Hello);
        await SendAndSeeItGivenBackAsync(peer, refusal, marker);

        var error = await Assert.ThrowsAsync<PeerBusyException>(() => connecting.Within());
        Assert.Equal($"Peer 'bob' at ? refused the connection: {reason}", error.Message);
    }

    [Fact]
    public async Task The_peers_subscriptions_go_back_to_the_pool_once_read()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var (topic, marker) = MarkerText(300); // a frame of another size than the trigger's, whose array the trigger would take
        await SendAndSeeItGivenBackAsync(peer, WireFrames.Frame((ref MessagePackWriter writer) => EventMessages.WriteSubscriptions(ref writer, [topic])), marker);
        Assert.False(connection.IsClosed);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_reply_nobody_waits_for_goes_back_to_the_pool()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var (text, marker) = MarkerText(1000);
        var orphan = WireFrames.Frame((ref MessagePackWriter writer) =>
        {
            Messages.WriteResultHeader(ref writer, 12345);
            writer.Write(text);
        });
        await SendAndSeeItGivenBackAsync(peer, orphan, marker);
        Assert.False(connection.IsClosed);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_frame_that_closes_the_connection_goes_back_to_the_pool()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var (text, marker) = MarkerText(1000);
        var request = WireFrames.Frame((ref MessagePackWriter writer) =>
        {
            Messages.WriteRequestHeader(ref writer, 1, "f");
            writer.WriteMapHeader(1);
            writer.Write("s");
            writer.Write(text);
        });
        // The read loop closes the connection at once: the close, counted on the read loop, runs the check.
        using var probe = new PoolProbe(marker, request.Length - 4, "p2plocal.active_connections", -1);
        await peer.SendRawAsync(request);

        var reason = Assert.IsType<InvalidDataException>(await connection.Closed.Within());
        Assert.Equal("A server does not send Request messages.", reason.Message);
        await Patience.Until(() => probe.Found);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_end_of_a_stream_stays_with_the_stream_until_it_is_read()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var stream = await connection.OpenStreamAsync("numbers", 1, ScriptedPeer.WriteX, 8, ScriptedPeer.Forever, CancellationToken.None).AsTask().Within();
        var request = await peer.ReadAsync(MessageKind.StreamRequest);
        var (reason, marker) = MarkerText(1000);
        var end = WireFrames.Frame((ref MessagePackWriter writer) => Messages.WriteError(ref writer, request.Id, ErrorCode.HandlerFailed, "System.IO.IOException", reason));
        // Were the end given back to the pool while the stream holds it, the next user of the array would overwrite it.
        using var probe = PoolProbe.OnReceived(marker, end, s_trigger.Length, scribble: true);
        await peer.SendRawAsync([.. end, .. s_trigger]);

        await Patience.Until(() => probe.Triggered);
        Assert.False(probe.Found);
        var error = await Assert.ThrowsAsync<RemoteException>(() => stream.NextAsync(ScriptedPeer.Forever, CancellationToken.None).AsTask().Within());
        Assert.Equal($"'bob'.numbers failed: System.IO.IOException: {reason}", error.Message);
        stream.Dispose();
        Assert.Equal(0, connection.PendingCount);
        await connection.DisposeAsync();
    }
}
