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
/// Frame: 4-byte big-endian length, 4-byte id, 1 op byte, body.
/// </summary>
public sealed class RawPipelinedArm : IArm
{
    private LoopbackAcceptor? _acceptor;
    private Client? _client;

    public string Name => "raw-pipelined";

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
                    var body = input.AsSpan(offset + 4, length);
                    var reply = output.AsSpan(written);
                    body[..5].CopyTo(reply[4..]); // id and op
                    int replyLength;
                    if (body[4] == RawArm.GreetOp)
                    {
                        RawArm.s_hello.CopyTo(reply[9..]);
                        body[5..].CopyTo(reply[(9 + RawArm.s_hello.Length)..]);
                        replyLength = length + RawArm.s_hello.Length;
                    }
                    else
                    {
                        body[5..].CopyTo(reply[9..]);
                        replyLength = length;
                    }

                    BinaryPrimitives.WriteInt32BigEndian(reply, replyLength);
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
            var call = Send(RawArm.GreetOp, name, static (span, n) => Encoding.UTF8.GetBytes(n, span), Encoding.UTF8.GetMaxByteCount(name.Length));
            var length = await new ValueTask<int>(call, call.Version);
            var result = Encoding.UTF8.GetString(call.Reply, 0, length);
            Return(call);
            return result;
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public async ValueTask<Payload> EchoAsync(Payload payload)
        {
            var bytes = MessagePackSerializer.Serialize(payload);
            var call = Send(RawArm.EchoOp, bytes, static (span, b) => { b.CopyTo(span); return b.Length; }, bytes.Length);
            var length = await new ValueTask<int>(call, call.Version);
            var result = MessagePackSerializer.Deserialize<Payload>(call.Reply.AsMemory(0, length));
            Return(call);
            return result;
        }

        /// <summary>Queues a request; the sender writes it at once unless someone (a sender, or the read loop) will.</summary>
        private PendingCall Send<T>(byte op, T state, Func<Span<byte>, T, int> writeBody, int maxBody)
        {
            PendingCall call;
            lock (_gate)
            {
                call = _pool.Count > 0 ? _pool.Pop() : new PendingCall();
                call.Reset();
                var id = ++_nextId;
                _pending[id] = call;
                if (_queued.Length - _queuedLength < 9 + maxBody)
                    Array.Resize(ref _queued, Math.Max(_queued.Length * 2, _queuedLength + 9 + maxBody));
                var frame = _queued.AsSpan(_queuedLength);
                BinaryPrimitives.WriteInt32BigEndian(frame[4..], id);
                frame[8] = op;
                var body = writeBody(frame[9..], state);
                BinaryPrimitives.WriteInt32BigEndian(frame, 5 + body);
                _queuedLength += 9 + body;
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
                        var id = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(offset + 4));
                        PendingCall call;
                        lock (_gate)
                            _pending.Remove(id, out call!);
                        call.Complete(buffer.AsSpan(offset + 9, length - 5)); // runs the caller's continuation here
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
