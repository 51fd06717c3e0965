using System.Net;
using System.Net.Sockets;
using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// <c>ClientConnection.ConnectAsync</c> with a dialer, against a scripted peer: the hellos, the instance check, refusals before the hello, and every failure named.
/// </summary>
public class HandshakeTests
{
    private static Task<ClientConnection> Connect(ScriptedPeer peer, string? expectedInstance = "bob-1", TimeSpan? timeout = null,
        CancellationToken cancellationToken = default) =>
        ClientConnection.ConnectAsync(peer.Dial, ScriptedPeer.EndPoint, "bob", expectedInstance, ScriptedPeer.CallerHello, ScriptedPeer.Options,
            timeout ?? TimeSpan.FromSeconds(20), NodeOptions.DefaultMaxBufferedBytesPerConnection, null, null, TimeProvider.System, cancellationToken);

    [Fact]
    public async Task The_caller_sends_its_hello_first_with_every_field()
    {
        var peer = new ScriptedPeer();
        var connecting = Connect(peer);
        var hello = await peer.ReadAsync(MessageKind.Hello);
        var reader = new MessagePackReader(hello.Payload);
        var kind = Messages.ReadKind(ref reader, out var count);
        Assert.Equal(MessageKind.Hello, kind);
        var read = Messages.ReadHello(ref reader, count);
        Assert.Equal(ScriptedPeer.CallerHello with { AcceptsExtras = true, AcceptsStreams = true, AcceptsEvents = true }, read);

        await peer.SendAsync(ScriptedPeer.HelloOf("bob-1"));
        var connection = await connecting.Within();
        Assert.False(connection.IsClosed);
        Assert.Equal(1, peer.Dials);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_dialed_stream_is_disposed_when_no_connection_can_be_made_over_it()
    {
        // The dialer hands over a socket that is already closed, so the connection cannot be built on it.
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Dispose();
        var stream = new DisposalCountingStream();
        PeerDialer dial = (_, _) => new((socket, stream));

        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => ClientConnection.ConnectAsync(dial, ScriptedPeer.EndPoint, "bob", "bob-1",
            ScriptedPeer.CallerHello, ScriptedPeer.Options, TimeSpan.FromSeconds(20), NodeOptions.DefaultMaxBufferedBytesPerConnection, null, null,
            TimeProvider.System, CancellationToken.None).Within());
        Assert.IsType<ObjectDisposedException>(error.InnerException);
        Assert.Equal(1, stream.Disposals);
    }

    /// <summary>A stream that counts how often it was disposed.</summary>
    private sealed class DisposalCountingStream : MemoryStream
    {
        public int Disposals { get; private set; }

        protected override void Dispose(bool disposing)
        {
            Disposals++;
            base.Dispose(disposing);
        }
    }

    [Fact]
    public async Task Another_instance_at_the_endpoint_is_refused_as_a_restart()
    {
        var peer = new ScriptedPeer();
        var connecting = Connect(peer);
        await peer.ReadAsync(MessageKind.Hello);
        await peer.SendAsync(ScriptedPeer.HelloOf("bob-2"));

        var error = await Assert.ThrowsAsync<PeerRestartedException>(() => connecting.Within());
        Assert.Equal("Peer 'bob' at 127.0.0.1:45123 is now another instance (bob-2, expected bob-1): it restarted.", error.Message);
        Assert.Equal("bob", error.PeerName);
        Assert.True(await peer.ReadsEndAsync()); // the connection it opened is closed
    }

    [Fact]
    public async Task Any_instance_is_taken_when_none_is_expected()
    {
        foreach (var expected in new[] { null, "" })
        {
            var peer = new ScriptedPeer();
            var connecting = Connect(peer, expected);
            await peer.ReadAsync(MessageKind.Hello);
            await peer.SendAsync(ScriptedPeer.HelloOf("bob-9"));
            var connection = await connecting.Within();
            Assert.Equal("bob-9", connection.PeerHello.InstanceId);
            await connection.DisposeAsync();
        }
    }

    [Theory]
    [InlineData((int)ErrorCode.Busy, Messages.NodeFullType, typeof(PeerBusyException), "Peer 'bob' at ? refused the connection: node full")]
    [InlineData((int)ErrorCode.BadRequest, Messages.AuthenticationRequiredType, typeof(PeerAuthenticationException), "Peer 'bob' at ? refused this open node: node full")]
    [InlineData((int)ErrorCode.BadRequest, Messages.BadHelloType, typeof(PeerConnectionException), "Peer 'bob' at ? refused the connection: BadHello: node full")]
    public async Task A_refusal_before_the_hello_becomes_the_exception_of_its_code(int code, string type, Type expected, string message)
    {
        var peer = new ScriptedPeer();
        var connecting = Connect(peer);
        await peer.ReadAsync(MessageKind.Hello);
        await peer.SendAsync((ref MessagePackWriter writer) => Messages.WriteRefusal(ref writer, (ErrorCode)code, type, "node full"));
        peer.Close();

        var error = await Assert.ThrowsAnyAsync<P2PException>(() => connecting.Within());
        Assert.IsType(expected, error);
        Assert.Equal(message, error.Message);
        Assert.Equal("bob", error.PeerName);
    }

    [Fact]
    public async Task A_hello_this_side_cannot_accept_is_named()
    {
        var peer = new ScriptedPeer();
        var connecting = Connect(peer);
        await peer.ReadAsync(MessageKind.Hello);
        await peer.SendAsync((ref MessagePackWriter writer) =>
            Messages.WriteHello(ref writer, new Hello(Messages.ProtocolVersion + 1, "bob", "bob-1", 64 * 1024)));

        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => connecting.Within());
        Assert.Equal($"Peer 'bob' at ? sent a hello this node cannot accept: Protocol version {Messages.ProtocolVersion + 1} is not supported; this node speaks version {Messages.ProtocolVersion}.", error.Message);
        Assert.Equal("bob", error.PeerName);
    }

    [Fact]
    public async Task A_frame_above_16_KiB_before_the_hello_closes_the_connection()
    {
        var peer = new ScriptedPeer();
        var connecting = Connect(peer);
        await peer.ReadAsync(MessageKind.Hello);
        await peer.SendRawAsync([0, 0, 0x40, 0x01]); // 16385 bytes announced

        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => connecting.Within());
        Assert.Equal("The connection to peer 'bob' at ? was lost before the reply came.", error.Message);
        Assert.Equal($"Frame length 16385 is above the limit of {Messages.MaxHelloFrameSize} bytes.", Assert.IsType<InvalidDataException>(error.InnerException).Message);
    }

    [Fact]
    public async Task A_peer_that_closes_before_its_hello_fails_the_connect()
    {
        var peer = new ScriptedPeer();
        var connecting = Connect(peer);
        await peer.ReadAsync(MessageKind.Hello);
        peer.Close();

        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => connecting.Within());
        Assert.Equal("The connection to peer 'bob' at ? was lost before the reply came.", error.Message);
    }

    [Fact]
    public async Task A_peer_that_never_says_hello_fails_the_connect_after_the_connect_timeout()
    {
        var peer = new ScriptedPeer();
        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => Connect(peer, timeout: TimeSpan.FromMilliseconds(200)).Within());
        Assert.Equal("Cannot connect to peer 'bob' at 127.0.0.1:45123: no answer within 200 ms", error.Message);
        Assert.Equal("bob", error.PeerName);
        Assert.IsAssignableFrom<OperationCanceledException>(error.InnerException);
        Assert.True(await peer.ReadsEndAfterHelloAsync());
    }

    [Fact]
    public async Task The_callers_token_cancels_the_connect_with_OperationCanceledException()
    {
        var peer = new ScriptedPeer();
        using var cts = new CancellationTokenSource();
        var connecting = Connect(peer, cancellationToken: cts.Token);
        await peer.ReadAsync(MessageKind.Hello);
        await cts.CancelAsync();

        var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => connecting.Within());
        Assert.IsNotType<PeerConnectionException>(error);
        Assert.True(await peer.ReadsEndAsync());
    }

    [Fact]
    public async Task A_dial_that_fails_is_named_with_its_cause()
    {
        var refused = new SocketException((int)SocketError.ConnectionRefused);
        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => ClientConnection.ConnectAsync(
            (_, _) => throw refused, ScriptedPeer.EndPoint, "bob", "bob-1", ScriptedPeer.CallerHello, ScriptedPeer.Options, TimeSpan.FromSeconds(20),
            NodeOptions.DefaultMaxBufferedBytesPerConnection, null, null, TimeProvider.System, CancellationToken.None).Within());
        Assert.Equal($"Cannot connect to peer 'bob' at 127.0.0.1:45123: {refused.Message}", error.Message);
        Assert.Same(refused, error.InnerException);
    }

    [Fact]
    public async Task The_default_overloads_connect_over_TCP_to_the_endpoint()
    {
        // Loopback only: a listener of the test's own, which answers the hello.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var serving = Task.Run(async () =>
        {
            using var accepted = await listener.AcceptAsync();
            await using var stream = new NetworkStream(accepted, ownsSocket: false);
            await WireFrames.ReadFrameAsync(stream);
            await WireFrames.WriteFrameAsync(stream, ScriptedPeer.HelloOf("bob-1"));
            return await stream.ReadAsync(new byte[1]); // 0: the caller closed
        });

        var connection = await ClientConnection.ConnectAsync((IPEndPoint)listener.LocalEndPoint!, "bob", "bob-1", ScriptedPeer.CallerHello,
            ScriptedPeer.Options, TimeSpan.FromSeconds(20), CancellationToken.None).Within();
        Assert.Equal(listener.LocalEndPoint!.ToString(), connection.RemoteEndPoint);
        Assert.Equal(IPAddress.Loopback, connection.RemoteAddress);
        await connection.DisposeAsync();
        Assert.Equal(0, await serving.Within());
        Assert.Throws<ObjectDisposedException>(() => connection.DialedSocket.Available); // closed, not only shut down
    }

    [Fact]
    public async Task A_dialed_socket_the_connection_cannot_take_is_closed_and_the_cause_named()
    {
        // A UDP socket takes no TCP options: the connection cannot be made over it.
        var peer = new ScriptedPeer();
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => ClientConnection.ConnectAsync(
            (_, _) => new((udp, peer.Connection.Client)), ScriptedPeer.EndPoint, "bob", "bob-1", ScriptedPeer.CallerHello, ScriptedPeer.Options,
            TimeSpan.FromSeconds(20), NodeOptions.DefaultMaxBufferedBytesPerConnection, null, null, TimeProvider.System, CancellationToken.None).Within());
        var cause = Assert.IsType<SocketException>(error.InnerException);
        Assert.Equal($"Cannot connect to peer 'bob' at 127.0.0.1:45123: {cause.Message}", error.Message);
        Assert.Throws<ObjectDisposedException>(() => udp.Available);
    }
}
