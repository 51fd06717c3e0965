using System.Buffers;
using System.Runtime.CompilerServices;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Tasks.Sources;
using MessagePack;

namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>
/// The throughput ceiling: one connection, request ids, no thread hop anywhere. The server answers every frame of
/// one read in one send. The client matches replies by id and resumes each caller on its read loop (no hop); the
/// requests those callers queue meanwhile go out in one send once the read's replies are all completed, and a
/// caller outside the read loop sends at once unless a send is under way (then its frame joins the next one).
/// Frame: 4-byte big-endian length, 4-byte id, 1 op byte, body (<see cref="RawFormat"/>).
/// </summary>
public sealed class RawPipelinedArm : PipelinedArm<RawFormat>
{
    public override string Name => "raw-pipelined";
}

/// <summary>
/// The same ceiling speaking the library's wire format (PROTOCOL.md, "Messages"; <see cref="MessagePackFormat"/>):
/// what the best implementation of that format could do with the same loops, one connection and no hop. Its ratio to
/// <c>raw-pipelined</c> is the most any typed call can reach on this machine, since a typed call encodes and decodes
/// at least this much.
/// </summary>
public sealed class FormatPipelinedArm : PipelinedArm<MessagePackFormat>
{
    public override string Name => "format-pipelined";
}

/// <summary>The loops of the pipelined ceilings; <typeparamref name="TFormat"/> writes and reads the frame bodies.</summary>
public abstract class PipelinedArm<TFormat> : IArm
    where TFormat : struct, IPipelinedFormat
{
    private LoopbackAcceptor? _acceptor;
    private Client? _client;

    public abstract string Name { get; }

    public int ServerPort { get; private set; }

    public Task StartAsync()
    {
        _acceptor = new LoopbackAcceptor(16, socket => _ = Task.Run(() => ServeAsync(socket)));
        ServerPort = _acceptor.Port;
        return Task.CompletedTask;
    }

    private static async Task ServeAsync(Socket socket)
    {
        var input = new byte[256 * 1024];
        var output = new byte[256 * 1024];
        var filled = 0;
        try
        {
            while (true)
            {
                var read = await socket.ReceiveAsync(input.AsMemory(filled), SocketFlags.None);
                if (read == 0)
                    return;
                filled += read;
                var offset = 0;
                var written = 0;
                while (filled - offset >= 4)
                {
                    var length = BinaryPrimitives.ReadInt32BigEndian(input.AsSpan(offset));
                    if (filled - offset - 4 < length)
                        break;
                    var replyLength = TFormat.Answer(input.AsMemory(offset + 4, length), output.AsMemory(written + 4));
                    BinaryPrimitives.WriteInt32BigEndian(output.AsSpan(written), replyLength);
                    written += 4 + replyLength;
                    offset += 4 + length;
                    if (output.Length - written < 64 * 1024)
                    {
                        await socket.SendAsync(output.AsMemory(0, written), SocketFlags.None);
                        written = 0;
                    }
                }

                if (written > 0)
                    await socket.SendAsync(output.AsMemory(0, written), SocketFlags.None);
                input.AsSpan(offset, filled - offset).CopyTo(input);
                filled -= offset;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    public async Task<ICaller> CreateCallerAsync()
    {
        if (_client is null)
        {
            _client = new Client(await _acceptor!.ConnectAsync());
        }

        return _client;
    }

    public ValueTask DisposeAsync()
    {
        _acceptor?.Dispose();
        GC.SuppressFinalize(this);
        return default;
    }

    private sealed class Client : ICaller
    {
        private readonly Socket _socket;
        private readonly object _gate = new();
        private readonly Dictionary<int, PendingCall> _pending = [];
        private readonly Stack<PendingCall> _pool = new();
        private byte[] _queued = new byte[64 * 1024];
        private byte[] _spare = new byte[64 * 1024];
        private int _queuedLength;
        private bool _writing; // someone is sending: what is queued meanwhile goes with its next send
        private bool _completing; // the read loop is completing a read's replies: it sends what they queue, once
        private int _nextId;

        public Client(Socket socket)
        {
            _socket = socket;
            _ = Task.Run(ReadLoopAsync);
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public async ValueTask<string> GreetAsync(string name)
        {
            var call = Send(name, static (span, id, n) => TFormat.WriteGreet(span, id, n), TFormat.MaxGreetBody(name));
            var length = await new ValueTask<int>(call, call.Version);
            var result = TFormat.ReadGreeting(call.Reply.AsMemory(0, length));
            Return(call);
            return result;
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public async ValueTask<Payload> EchoAsync(Payload payload)
        {
            var bytes = MessagePackSerializer.Serialize(payload);
            var call = Send(bytes, static (span, id, b) => TFormat.WriteEcho(span, id, b), TFormat.MaxEchoBody(bytes));
            var length = await new ValueTask<int>(call, call.Version);
            var result = MessagePackSerializer.Deserialize<Payload>(call.Reply.AsMemory(0, length));
            Return(call);
            return result;
        }

        /// <summary>Queues a request; the sender writes it at once unless someone (a sender, or the read loop) will.</summary>
        private PendingCall Send<T>(T state, Func<Memory<byte>, int, T, int> writeBody, int maxBody)
        {
            PendingCall call;
            lock (_gate)
            {
                call = _pool.Count > 0 ? _pool.Pop() : new PendingCall();
                call.Reset();
                var id = ++_nextId;
                _pending[id] = call;
                if (_queued.Length - _queuedLength < 4 + maxBody)
                    Array.Resize(ref _queued, Math.Max(_queued.Length * 2, _queuedLength + 4 + maxBody));
                var body = writeBody(_queued.AsMemory(_queuedLength + 4), id, state);
                BinaryPrimitives.WriteInt32BigEndian(_queued.AsSpan(_queuedLength), body);
                _queuedLength += 4 + body;
                if (_writing || _completing)
                    return call;
                _writing = true;
            }

            SendQueued();
            return call;
        }

        /// <summary>Sends everything queued, one system call per batch, until nothing is; the caller holds <see cref="_writing"/>.</summary>
        private void SendQueued()
        {
            try
            {
                while (true)
                {
                    byte[] batch;
                    int length;
                    lock (_gate)
                    {
                        if (_queuedLength == 0)
                        {
                            _writing = false;
                            return;
                        }

                        (batch, _queued, _spare) = (_queued, _spare, _queued);
                        length = _queuedLength;
                        _queuedLength = 0;
                    }

                    for (var sent = 0; sent < length;)
                        sent += _socket.Send(batch.AsSpan(sent, length - sent), SocketFlags.None);
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        }

        private void Return(PendingCall call)
        {
            lock (_gate)
                _pool.Push(call);
        }

        private async Task ReadLoopAsync()
        {
            var buffer = new byte[256 * 1024];
            var filled = 0;
            try
            {
                while (true)
                {
                    var read = await _socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None);
                    if (read == 0)
                        return;
                    filled += read;
                    var offset = 0;
                    lock (_gate)
                        _completing = true;
                    while (filled - offset >= 4)
                    {
                        var length = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(offset));
                        if (filled - offset - 4 < length)
                            break;
                        var id = TFormat.ReadReplyId(buffer.AsMemory(offset + 4, length), out var value);
                        PendingCall call;
                        lock (_gate)
                            _pending.Remove(id, out call!);
                        call.Complete(buffer.AsSpan(offset + 4 + value, length - value)); // runs the caller's continuation here
                        offset += 4 + length;
                    }

                    // The callers resumed above queued their next requests: one send for all of them.
                    bool send;
                    lock (_gate)
                    {
                        _completing = false;
                        send = !_writing && _queuedLength > 0;
                        _writing |= send;
                    }

                    if (send)
                        SendQueued();
                    buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
                    filled -= offset;
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>
    /// A reusable awaitable for one outstanding call; the reply body is copied into its own buffer, and the caller
    /// resumes on the read loop, at once (no thread hop: the ceiling a library cannot safely reach, since a caller
    /// that blocks there stalls every other reply).
    /// </summary>
    private sealed class PendingCall : IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = false };

        public byte[] Reply { get; private set; } = new byte[2048];

        public short Version => _core.Version;

        public void Reset() => _core.Reset();

        public void Complete(ReadOnlySpan<byte> reply)
        {
            if (Reply.Length < reply.Length)
                Reply = new byte[reply.Length];
            reply.CopyTo(Reply);
            _core.SetResult(reply.Length);
        }

        public int GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}

/// <summary>How a pipelined ceiling writes and reads its frame bodies (the 4-byte length prefix is the loops').</summary>
public interface IPipelinedFormat
{
    /// <summary>The most bytes <see cref="WriteGreet"/> writes for <paramref name="name"/>.</summary>
    static abstract int MaxGreetBody(string name);

    /// <summary>Writes the body of request <paramref name="id"/> greeting <paramref name="name"/>; returns its length.</summary>
    static abstract int WriteGreet(Memory<byte> body, int id, string name);

    /// <summary>The most bytes <see cref="WriteEcho"/> writes for <paramref name="payload"/>.</summary>
    static abstract int MaxEchoBody(byte[] payload);

    /// <summary>Writes the body of request <paramref name="id"/> echoing <paramref name="payload"/> (MessagePack); returns its length.</summary>
    static abstract int WriteEcho(Memory<byte> body, int id, byte[] payload);

    /// <summary>Server: writes the reply body to one request body; returns its length.</summary>
    static abstract int Answer(ReadOnlyMemory<byte> request, Memory<byte> reply);

    /// <summary>Client: the request id a reply body answers, and where its value starts.</summary>
    static abstract int ReadReplyId(ReadOnlyMemory<byte> reply, out int valueOffset);

    /// <summary>Client: the greeting in a reply's value.</summary>
    static abstract string ReadGreeting(ReadOnlyMemory<byte> value);
}

/// <summary>
/// The raw ceiling's bodies: 4-byte big-endian id, 1 op byte (<see cref="RawArm.GreetOp"/> or <see cref="RawArm.EchoOp"/>),
/// the name's UTF-8 or the payload's bytes; a reply is the same header, then "Hello, " + name or the payload as it came.
/// </summary>
public readonly struct RawFormat : IPipelinedFormat
{
    public static int MaxGreetBody(string name) => 5 + Encoding.UTF8.GetMaxByteCount(name.Length);

    public static int WriteGreet(Memory<byte> body, int id, string name)
    {
        var span = body.Span;
        BinaryPrimitives.WriteInt32BigEndian(span, id);
        span[4] = RawArm.GreetOp;
        return 5 + Encoding.UTF8.GetBytes(name, span[5..]);
    }

    public static int MaxEchoBody(byte[] payload) => 5 + payload.Length;

    public static int WriteEcho(Memory<byte> body, int id, byte[] payload)
    {
        var span = body.Span;
        BinaryPrimitives.WriteInt32BigEndian(span, id);
        span[4] = RawArm.EchoOp;
        payload.CopyTo(span[5..]);
        return 5 + payload.Length;
    }

    public static int Answer(ReadOnlyMemory<byte> request, Memory<byte> reply)
    {
        var body = request.Span;
        var output = reply.Span;
        body[..5].CopyTo(output); // id and op
        if (body[4] != RawArm.GreetOp)
        {
            body[5..].CopyTo(output[5..]);
            return body.Length;
        }

        RawArm.s_hello.CopyTo(output[5..]);
        body[5..].CopyTo(output[(5 + RawArm.s_hello.Length)..]);
        return body.Length + RawArm.s_hello.Length;
    }

    public static int ReadReplyId(ReadOnlyMemory<byte> reply, out int valueOffset)
    {
        valueOffset = 5;
        return BinaryPrimitives.ReadInt32BigEndian(reply.Span);
    }

    public static string ReadGreeting(ReadOnlyMemory<byte> value) => Encoding.UTF8.GetString(value.Span);
}

/// <summary>
/// The library's bodies (PROTOCOL.md): request <c>[0, id, "Greet", {"name": name}]</c> or
/// <c>[0, id, "Echo", {"payload": payload}]</c>, result <c>[1, id, value]</c>, written with <see cref="MessagePackWriter"/> and
/// read with <see cref="MessagePackReader"/> as a typed implementation must: the function and key compared as UTF-8
/// bytes, the name read into a string for the handler, its greeting built and written as a string, and read back into a
/// string by the caller. No lookup tables, limits or checks beyond these: a ceiling, not a design.
/// </summary>
public readonly struct MessagePackFormat : IPipelinedFormat
{
    private static readonly byte[] s_greet = Encoding.UTF8.GetBytes("Greet");
    private static readonly byte[] s_echo = Encoding.UTF8.GetBytes("Echo");
    private static readonly byte[] s_name = Encoding.UTF8.GetBytes("name");
    private static readonly byte[] s_payload = Encoding.UTF8.GetBytes("payload");

    // [0, id, function, {key: value}]: array, kind, uint32 id, the function and key as strings, the map header.
    private const int RequestOverhead = 1 + 1 + 5 + 2 + 8 + 1 + 2 + 8;

    public static int MaxGreetBody(string name) => RequestOverhead + 5 + Encoding.UTF8.GetMaxByteCount(name.Length);

    public static int WriteGreet(Memory<byte> body, int id, string name) => WriteRequest(body, id, s_greet, s_name, name, null);

    public static int MaxEchoBody(byte[] payload) => RequestOverhead + payload.Length;

    public static int WriteEcho(Memory<byte> body, int id, byte[] payload) => WriteRequest(body, id, s_echo, s_payload, null, payload);

    /// <summary>Writes <c>[0, id, function, {key: value}]</c>, the value a string or, when <paramref name="raw"/> is given, those bytes.</summary>
    private static int WriteRequest(Memory<byte> body, int id, byte[] function, byte[] key, string? text, byte[]? raw)
    {
        var target = MemoryWriter.Over(body);
        var writer = new MessagePackWriter(target);
        writer.WriteArrayHeader(4);
        writer.Write((byte)0);
        writer.Write((uint)id);
        writer.WriteString(function);
        writer.WriteMapHeader(1);
        writer.WriteString(key);
        if (raw is null)
            writer.Write(text);
        else
            writer.WriteRaw(raw);
        writer.Flush();
        return target.Written;
    }

    public static int Answer(ReadOnlyMemory<byte> request, Memory<byte> reply)
    {
        var reader = new MessagePackReader(request);
        if (reader.ReadArrayHeader() != 4 || reader.ReadByte() != 0)
            throw new InvalidDataException("not a request");
        var id = reader.ReadUInt32();
        if (!reader.TryReadStringSpan(out var function) || reader.ReadMapHeader() != 1 || !reader.TryReadStringSpan(out var key))
            throw new InvalidDataException("not a request of this arm");
        var target = MemoryWriter.Over(reply);
        var writer = new MessagePackWriter(target);
        writer.WriteArrayHeader(3);
        writer.Write((byte)1);
        writer.Write(id);
        if (function.SequenceEqual(s_greet) && key.SequenceEqual(s_name))
            writer.Write("Hello, " + reader.ReadString());
        else if (function.SequenceEqual(s_echo) && key.SequenceEqual(s_payload))
            writer.WriteRaw(reader.ReadRaw());
        else
            throw new InvalidDataException("unknown function or kwarg");
        writer.Flush();
        return target.Written;
    }

    public static int ReadReplyId(ReadOnlyMemory<byte> reply, out int valueOffset)
    {
        var reader = new MessagePackReader(reply);
        if (reader.ReadArrayHeader() != 3 || reader.ReadByte() != 1)
            throw new InvalidDataException("not a result");
        var id = (int)reader.ReadUInt32();
        valueOffset = (int)reader.Consumed;
        return id;
    }

    public static string ReadGreeting(ReadOnlyMemory<byte> value)
    {
        var reader = new MessagePackReader(value);
        return reader.ReadString() ?? throw new InvalidDataException("a nil greeting");
    }

    /// <summary>A buffer writer over the rest of a loop's buffer (the loops size their buffers to fit); one per thread, reused.</summary>
    private sealed class MemoryWriter : IBufferWriter<byte>
    {
        [ThreadStatic]
        private static MemoryWriter? t_writer;
        private Memory<byte> _target;

        public int Written { get; private set; }

        public static MemoryWriter Over(Memory<byte> target)
        {
            var writer = t_writer ??= new MemoryWriter();
            writer._target = target;
            writer.Written = 0;
            return writer;
        }

        public void Advance(int count) => Written += count;

        public Memory<byte> GetMemory(int sizeHint = 0) => _target[Written..];

        public Span<byte> GetSpan(int sizeHint = 0) => _target.Span[Written..];
    }
}
