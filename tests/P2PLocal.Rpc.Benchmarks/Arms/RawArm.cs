using System.Runtime.CompilerServices;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MessagePack;

namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>
/// The latency floor: a hand-written length-prefixed TCP echo, one connection per caller, one request on it at a
/// time. Frame: 4-byte big-endian length, 1 op byte (0 greet, 1 echo), body. Greet replies "Hello, " + body;
/// echo replies the body as it came (the payload is serialized on the client only).
/// </summary>
public sealed class RawArm : IArm
{
    internal const byte GreetOp = 0;
    internal const byte EchoOp = 1;
    internal static readonly byte[] s_hello = Encoding.UTF8.GetBytes("Hello, ");

    private LoopbackAcceptor? _acceptor;

    public string Name => "raw";

    public int ServerPort { get; private set; }

    public Task StartAsync()
    {
        _acceptor = new LoopbackAcceptor(1024, socket => _ = Task.Run(() => ServeAsync(socket)));
        ServerPort = _acceptor.Port;
        return Task.CompletedTask;
    }

    private static async Task ServeAsync(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                if (!await ReceiveExactlyAsync(socket, buffer.AsMemory(0, 4)))
                    return;
                var length = BinaryPrimitives.ReadInt32BigEndian(buffer);
                if (!await ReceiveExactlyAsync(socket, buffer.AsMemory(4, length)))
                    return;
                int replyLength;
                if (buffer[4] == GreetOp)
                {
                    // Shift the name right to make room for "Hello, ", then write the prefix and op.
                    buffer.AsSpan(5, length - 1).CopyTo(buffer.AsSpan(5 + s_hello.Length));
                    s_hello.CopyTo(buffer, 5);
                    replyLength = length + s_hello.Length;
                }
                else
                {
                    replyLength = length;
                }

                BinaryPrimitives.WriteInt32BigEndian(buffer, replyLength);
                await socket.SendAsync(buffer.AsMemory(0, 4 + replyLength), SocketFlags.None);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]

    internal static async ValueTask<bool> ReceiveExactlyAsync(Socket socket, Memory<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (read == 0)
                return false;
            buffer = buffer[read..];
        }

        return true;
    }

    public async Task<ICaller> CreateCallerAsync()
    {
        return new Caller(await _acceptor!.ConnectAsync());
    }

    public ValueTask DisposeAsync()
    {
        _acceptor?.Dispose();
        return default;
    }

    private sealed class Caller(Socket socket) : ICaller
    {
        private readonly byte[] _buffer = new byte[64 * 1024];

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]

        public async ValueTask<string> GreetAsync(string name)
        {
            var length = 1 + Encoding.UTF8.GetBytes(name, 0, name.Length, _buffer, 5);
            var reply = await RoundTripAsync(GreetOp, length);
            return Encoding.UTF8.GetString(_buffer, 5, reply - 1);
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]

        public async ValueTask<Payload> EchoAsync(Payload payload)
        {
            var writer = new FixedBufferWriter(_buffer, 5);
            MessagePackSerializer.Serialize(writer, payload);
            var reply = await RoundTripAsync(EchoOp, 1 + writer.Written);
            return MessagePackSerializer.Deserialize<Payload>(_buffer.AsMemory(5, reply - 1));
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]

        private async ValueTask<int> RoundTripAsync(byte op, int length)
        {
            _buffer[4] = op;
            BinaryPrimitives.WriteInt32BigEndian(_buffer, length);
            await socket.SendAsync(_buffer.AsMemory(0, 4 + length), SocketFlags.None);
            if (!await ReceiveExactlyAsync(socket, _buffer.AsMemory(0, 4)))
                throw new IOException("closed");
            var reply = BinaryPrimitives.ReadInt32BigEndian(_buffer);
            if (!await ReceiveExactlyAsync(socket, _buffer.AsMemory(4, reply)))
                throw new IOException("closed");
            return reply;
        }
    }
}

/// <summary>An <see cref="System.Buffers.IBufferWriter{T}"/> over a fixed array, for serializing without copies.</summary>
internal sealed class FixedBufferWriter(byte[] buffer, int start) : System.Buffers.IBufferWriter<byte>
{
    private readonly int _start = start;
    private int _position = start;

    public int Written => _position - _start;

    public void Advance(int count) => _position += count;

    public Memory<byte> GetMemory(int sizeHint = 0) => buffer.AsMemory(_position);

    public Span<byte> GetSpan(int sizeHint = 0) => buffer.AsSpan(_position);
}
