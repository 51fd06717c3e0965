using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MessagePack;

namespace P2PLocal.Rpc.Cli.Doctor;

/// <summary>The hello a peer answered with (PROTOCOL.md, kind 4).</summary>
internal sealed record PeerHello(int Version, string Name, string InstanceId, int MaxFrameSize, TimeSpan Elapsed);

/// <summary>
/// Connects to a peer's endpoint and exchanges hellos by hand, straight from PROTOCOL.md, so <c>doctor</c> can tell a
/// closed port from a peer that accepts but does not answer, and can read the instance id the endpoint serves.
/// </summary>
internal static class HelloProbe
{
    /// <summary>A hello is a few dozen bytes; a longer first frame is not a hello.</summary>
    private const int MaxHelloFrame = 64 * 1024;

    /// <summary>Opens a TCP connection; throws <see cref="SocketException"/> or <see cref="TimeoutException"/>.</summary>
    public static async Task<(Socket Socket, TimeSpan Elapsed)> ConnectAsync(IPEndPoint endPoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        var clock = Stopwatch.StartNew();
        try
        {
            await socket.ConnectAsync(endPoint, limit.Token).ConfigureAwait(false);
            return (socket, clock.Elapsed);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new TimeoutException($"no answer to the TCP connect in {timeout.TotalSeconds:0.#} s");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends a hello as <paramref name="name"/> and reads the peer's.</summary>
    /// <exception cref="TimeoutException">No complete hello within <paramref name="timeout"/>.</exception>
    /// <exception cref="InvalidDataException">The peer answered something that is not a hello, or closed the connection.</exception>
    /// <exception cref="SocketException">The connection failed.</exception>
    public static async Task<PeerHello> ExchangeAsync(Socket socket, string name, string instanceId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        var clock = Stopwatch.StartNew();
        try
        {
            await socket.SendAsync(HelloFrame(name, instanceId), SocketFlags.None, limit.Token).ConfigureAwait(false);
            var header = new byte[4];
            await ReadExactlyAsync(socket, header, limit.Token).ConfigureAwait(false);
            var length = BinaryPrimitives.ReadUInt32BigEndian(header);
            if (length is 0 or > MaxHelloFrame)
                throw new InvalidDataException($"the first frame is {length} bytes long; a hello is a few dozen (is this a P2PLocal.Rpc node?)");
            var payload = new byte[length];
            await ReadExactlyAsync(socket, payload, limit.Token).ConfigureAwait(false);
            return ReadHello(payload) with { Elapsed = clock.Elapsed };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no hello came back in {timeout.TotalSeconds:0.#} s");
        }
    }

    private static byte[] HelloFrame(string name, string instanceId)
    {
        var body = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(body);
        writer.WriteArrayHeader(6);
        writer.Write(4); // hello
        writer.Write(1); // protocol version
        writer.Write(name);
        writer.Write(instanceId);
        writer.Write(NodeOptions.DefaultMaxFrameSize);
        writer.Write(0L); // idle timeout: not said
        writer.Flush();
        var frame = new byte[4 + body.WrittenCount];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)body.WrittenCount);
        body.WrittenSpan.CopyTo(frame.AsSpan(4));
        return frame;
    }

    private static PeerHello ReadHello(byte[] payload)
    {
        try
        {
            var reader = new MessagePackReader(payload);
            var count = reader.ReadArrayHeader();
            if (count < 5)
                throw new InvalidDataException($"the first frame is an array of {count} elements; a hello has at least 5");
            var kind = reader.ReadInt32();
            if (kind != 4)
                throw new InvalidDataException($"the first frame is message kind {kind}, not a hello (4)");
            return new PeerHello(reader.ReadInt32(), reader.ReadString() ?? "", reader.ReadString() ?? "", reader.ReadInt32(), TimeSpan.Zero);
        }
        catch (MessagePackSerializationException e)
        {
            throw new InvalidDataException($"the first frame is not a MessagePack hello: {e.Message}", e);
        }
    }

    private static async Task ReadExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
                throw new InvalidDataException("the peer closed the connection without a hello");
            buffer = buffer[read..];
        }
    }
}
