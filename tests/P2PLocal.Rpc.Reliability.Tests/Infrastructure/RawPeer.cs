using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using MessagePack;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// A hand-driven TCP connection to a node: writes any bytes (well-formed frames or not) and reads replies, so tests
/// can play a hostile or broken caller.
/// </summary>
public sealed class RawPeer : IDisposable
{
    private readonly byte[] _readBuffer = new byte[64 * 1024];
    private int _readStart;
    private int _readEnd;

    private RawPeer(Socket socket) => Socket = socket;

    public Socket Socket { get; }

    public static async Task<RawPeer> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endPoint).WaitAsync(Net.Patience);
        return new RawPeer(socket);
    }

    /// <summary>Wraps the accepting side of a connection (for tests that play a peer's server).</summary>
    public static RawPeer Accepted(Socket socket) => new(socket);

    /// <summary>Connects and exchanges hellos, as a real caller would.</summary>
    public static async Task<RawPeer> ConnectWithHelloAsync(IPEndPoint endPoint, string name = "raw", int maxFrameSize = 4 * 1024 * 1024)
    {
        var peer = await ConnectAsync(endPoint);
        await peer.SendFrameAsync(Hello(name, maxFrameSize));
        var reply = await peer.ReadFrameAsync();
        Assert.NotNull(reply);
        return peer;
    }

    public static byte[] Hello(string name, int maxFrameSize = 4 * 1024 * 1024) =>
        Net.Pack(b => b.Array(5).Number(4).Number(1).Str(name).Str(Guid.NewGuid().ToString("N")[..16]).Number(maxFrameSize));

    /// <summary>A request frame payload: [0, id, function, kwargs] with kwargs given as raw MessagePack.</summary>
    public static byte[] Request(uint id, string function, byte[] kwargs) =>
        Net.Pack(b => b.Array(4).Number(0).Number(id).Str(function).Raw(kwargs));

    public static byte[] Frame(byte[] payload) => WireFrames.Frame(payload);

    public Task SendFrameAsync(byte[] payload) => SendAsync(Frame(payload));

    public async Task SendAsync(byte[] bytes) => await Socket.SendAsync(bytes, SocketFlags.None).WaitAsync(Net.Patience);

    /// <summary>Reads one frame payload; null when the node closed the connection.</summary>
    public async Task<byte[]?> ReadFrameAsync()
    {
        while (true)
        {
            var available = _readEnd - _readStart;
            if (available >= 4)
            {
                var length = BinaryPrimitives.ReadInt32BigEndian(_readBuffer.AsSpan(_readStart));
                if (available >= 4 + length)
                {
                    var payload = _readBuffer.AsSpan(_readStart + 4, length).ToArray();
                    _readStart += 4 + length;
                    return payload;
                }
            }

            if (_readStart > 0)
            {
                _readBuffer.AsSpan(_readStart, available).CopyTo(_readBuffer);
                _readStart = 0;
                _readEnd = available;
            }

            int read;
            try
            {
                read = await Socket.ReceiveAsync(_readBuffer.AsMemory(_readEnd), SocketFlags.None).AsTask().WaitAsync(Net.Patience);
            }
            catch (SocketException)
            {
                return null;
            }

            if (read == 0)
                return null;
            _readEnd += read;
        }
    }

    /// <summary>Completes when the node closes the connection; any frames still arriving are read and dropped.</summary>
    public async Task WaitClosedAsync()
    {
        while (await ReadFrameAsync() is not null)
        {
        }
    }

    /// <summary>The kind (first element) and id of a reply, plus the error code for errors.</summary>
    public static (int Kind, uint Id, int Code) Describe(byte[] payload)
    {
        var reader = new MessagePackReader(payload);
        reader.ReadArrayHeader();
        var kind = reader.ReadInt32();
        var id = reader.ReadUInt32();
        var code = kind == 2 ? reader.ReadInt32() : 0;
        return (kind, id, code);
    }

    /// <summary>Closes with a TCP reset (SO_LINGER 0), as a dropped network path or a crashed host does.</summary>
    public void Reset()
    {
        Socket.LingerState = new LingerOption(true, 0);
        Socket.Close();
    }

    public void Dispose() => Socket.Dispose();
}
