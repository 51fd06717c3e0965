using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>One message the library sent, as the scripted peer read it.</summary>
internal sealed record SentMessage(MessageKind Kind, int Count, uint Id, string? Function, ReadOnlyMemory<byte> Payload)
{
    /// <summary>A request's single kwarg <c>x</c> (requests built with <see cref="ScriptedPeer.WriteX"/>).</summary>
    public int X
    {
        get
        {
            var reader = new MessagePackReader(Payload);
            reader.ReadArrayHeader();
            reader.Skip(); // kind
            reader.Skip(); // id
            reader.Skip(); // function
            Assert.Equal(1, reader.ReadMapHeader());
            Assert.Equal("x", reader.ReadString());
            return reader.ReadInt32();
        }
    }

    /// <summary>A stream request's window, or a credit's item count: the element after the kwargs (or after the id).</summary>
    public uint Number
    {
        get
        {
            var reader = new MessagePackReader(Payload);
            reader.ReadArrayHeader();
            reader.Skip();
            reader.Skip();
            if (Kind == MessageKind.StreamRequest)
            {
                reader.Skip();
                reader.Skip();
            }

            return reader.ReadUInt32();
        }
    }
}

/// <summary>
/// The far end of an in-memory connection (<see cref="InMemoryConnection"/>), driven by the test: it reads the frames
/// the library sends and answers by hand, so transport behaviour is checked without sockets or a serving node.
/// </summary>
internal sealed class ScriptedPeer
{
    /// <summary>Named in messages only: nothing is ever sent to it.</summary>
    public static readonly IPEndPoint EndPoint = new(IPAddress.Loopback, 45123);

    public static readonly MessagePackSerializerOptions Options = MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    /// <summary>The caller's hello: 64 KiB frames.</summary>
    public static readonly Hello CallerHello = new(Messages.ProtocolVersion, "alice", "alice-1", 64 * 1024, 120_000);

    /// <summary>Writes the kwargs <c>{x: value}</c>.</summary>
    public static readonly KwargsWriter<int> WriteX = static (ref MessagePackWriter writer, int x, MessagePackSerializerOptions _) =>
    {
        writer.WriteMapHeader(1);
        writer.Write("x");
        writer.Write(x);
    };

    /// <summary>Writes the kwargs <c>{s: 'p' x size}</c>: a request of about <c>size</c> bytes.</summary>
    public static readonly KwargsWriter<int> WritePadding = static (ref MessagePackWriter writer, int size, MessagePackSerializerOptions _) =>
    {
        writer.WriteMapHeader(1);
        writer.Write("s");
        writer.Write(new string('p', size));
    };

    /// <summary>The pipe toward a peer that reads nothing: it takes 1 KiB before its writer waits.</summary>
    public static PipeOptions NotReading => new(pauseWriterThreshold: 1024, resumeWriterThreshold: 512, useSynchronizationContext: false);

    /// <summary>Reads an int result.</summary>
    public static readonly ResultReader<int> ReadInt = static (ref MessagePackReader reader, MessagePackSerializerOptions _) => reader.ReadInt32();

    /// <summary>Far beyond the test's patience: only a fake clock, or the behaviour under test, ends a call.</summary>
    public static readonly TimeSpan Forever = TimeSpan.FromMinutes(10);

    public ScriptedPeer(PipeOptions? toPeer = null) => Connection = new InMemoryConnection(toPeer);

    public InMemoryConnection Connection { get; }

    /// <summary>The test's end of the connection.</summary>
    public PipeEndStream Stream => Connection.Peer;

    /// <summary>How many times <see cref="Dial"/> ran.</summary>
    public int Dials { get; private set; }

    /// <summary>A <see cref="PeerDialer"/> that hands the library this peer's connection.</summary>
    public ValueTask<(Socket Socket, Stream Stream)> Dial(IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        Dials++;
        return new((Connection.ClientSocket, Connection.Client));
    }

    /// <summary>A hello of <paramref name="instanceId"/> as this library writes it (all features).</summary>
    public static WriteMessage HelloOf(string instanceId, int maxFrameSize = 64 * 1024, long idleTimeoutMs = 0) =>
        (ref MessagePackWriter writer) => Messages.WriteHello(ref writer, new Hello(Messages.ProtocolVersion, "bob", instanceId, maxFrameSize, idleTimeoutMs));

    /// <summary>A hello without the features element (an older peer: no streams, no extras, no events).</summary>
    public static WriteMessage OldHello(string instanceId) => (ref MessagePackWriter writer) =>
    {
        writer.WriteArrayHeader(5);
        writer.Write((int)MessageKind.Hello);
        writer.Write(Messages.ProtocolVersion);
        writer.Write("bob");
        writer.Write(instanceId);
        writer.Write(64 * 1024);
    };

    /// <summary>
    /// Connects a <see cref="ClientConnection"/> to a new scripted peer that answers the hello with <paramref name="hello"/>
    /// (a hello of "bob-1" by default).
    /// </summary>
    public static async Task<(ClientConnection Connection, ScriptedPeer Peer)> ConnectAsync(TimeProvider? clock = null,
        long maxBufferedBytes = NodeOptions.DefaultMaxBufferedBytesPerConnection, PipeOptions? toPeer = null, WriteMessage? hello = null,
        Hello? callerHello = null)
    {
        var peer = new ScriptedPeer(toPeer);
        var connecting = ClientConnection.ConnectAsync(peer.Dial, EndPoint, "bob", "bob-1", callerHello ?? CallerHello, Options, TimeSpan.FromSeconds(20),
            maxBufferedBytes, null, null, clock ?? TimeProvider.System, CancellationToken.None);
        var first = await peer.ReadAsync();
        Assert.Equal(MessageKind.Hello, first.Kind);
        await peer.SendAsync(hello ?? HelloOf("bob-1"));
        return (await connecting.Within(), peer);
    }

    /// <summary>Reads the next message the library sent.</summary>
    public async Task<SentMessage> ReadAsync()
    {
        var payload = await WireFrames.ReadFrameAsync(Stream).Within();
        var reader = new MessagePackReader(payload);
        var count = reader.ReadArrayHeader();
        var kind = (MessageKind)reader.ReadInt32();
        uint id = 0;
        string? function = null;
        if (kind is MessageKind.Request or MessageKind.StreamRequest or MessageKind.Cancel or MessageKind.StreamCredit)
            id = reader.ReadUInt32();
        if (kind is MessageKind.Request or MessageKind.StreamRequest)
            function = reader.ReadString();
        return new SentMessage(kind, count, id, function, payload);
    }

    /// <summary>Reads the next message and checks its kind.</summary>
    public async Task<SentMessage> ReadAsync(MessageKind kind)
    {
        var message = await ReadAsync();
        Assert.Equal(kind, message.Kind);
        return message;
    }

    /// <summary>Whether the library closed its side: the next read finds the end of the stream, with no frame before it.</summary>
    public async Task<bool> ReadsEndAsync()
    {
        var buffer = new byte[1];
        return await Stream.ReadAsync(buffer).AsTask().Within() == 0;
    }

    /// <summary>Whether the library closed its side after its hello (which the test did not read).</summary>
    public async Task<bool> ReadsEndAfterHelloAsync()
    {
        await ReadAsync(MessageKind.Hello);
        return await ReadsEndAsync();
    }

    public Task SendAsync(WriteMessage write) => WireFrames.WriteFrameAsync(Stream, write).Within();

    /// <summary>Sends raw bytes (a frame of the test's own making).</summary>
    public Task SendRawAsync(byte[] bytes) => Stream.WriteAsync(bytes).AsTask().Within();

    /// <summary>Answers request <paramref name="id"/> with the int <paramref name="value"/>.</summary>
    public Task ReplyAsync(uint id, int value) => SendAsync((ref MessagePackWriter writer) =>
    {
        Messages.WriteResultHeader(ref writer, id);
        writer.Write(value);
    });

    /// <summary>Answers request <paramref name="id"/> with an error.</summary>
    public Task FailAsync(uint id, ErrorCode code, string type, string message) =>
        SendAsync((ref MessagePackWriter writer) => Messages.WriteError(ref writer, id, code, type, message));

    /// <summary>Sends item <paramref name="value"/> of stream <paramref name="id"/>.</summary>
    public Task SendItemAsync(uint id, int value) => SendAsync((ref MessagePackWriter writer) =>
    {
        StreamMessages.WriteItemHeader(ref writer, id);
        writer.Write(value);
    });

    /// <summary>Ends stream <paramref name="id"/> with its nil result.</summary>
    public Task EndStreamAsync(uint id) => SendAsync((ref MessagePackWriter writer) =>
    {
        Messages.WriteResultHeader(ref writer, id);
        writer.WriteNil();
    });

    /// <summary>Closes the peer's side (the library reads the end of the stream).</summary>
    public void Close() => Stream.Dispose();
}
