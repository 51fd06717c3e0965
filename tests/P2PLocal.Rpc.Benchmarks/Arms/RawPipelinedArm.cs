using System.Runtime.CompilerServices;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Tasks.Sources;
using MessagePack;

namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>
/// The throughput ceiling: one connection, request ids, writes batched while more are queued (callers append to a
/// buffer; one writer loop, woken when the buffer goes from empty to not, sends all of it in one call), replies
/// matched by id and completed on the thread pool's global queue (as a library must, so a caller's continuation
/// cannot stall the reader).
/// Frame: 4-byte big-endian length, 4-byte id, 1 op byte, body; the server answers every frame of one read in one send.
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
        private readonly Signal _queuedSignal = new();
        private bool _writerWoken;
        private int _nextId;

        public Client(Socket socket)
        {
            _socket = socket;
            _ = Task.Run(ReadLoopAsync);
            _ = Task.Run(WriteLoopAsync);
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

        private PendingCall Send<T>(byte op, T state, Func<Span<byte>, T, int> writeBody, int maxBody)
        {
            PendingCall call;
            bool wake;
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
                wake = !_writerWoken;
                _writerWoken = true;
            }

            if (wake)
                _queuedSignal.Set();
            return call;
        }

        private async Task WriteLoopAsync()
        {
            try
            {
                while (true)
                {
                    await _queuedSignal.WaitAsync();
                    while (true)
                    {
                        byte[] batch;
                        int length;
                        lock (_gate)
                        {
                            if (_queuedLength == 0)
                            {
                                _writerWoken = false;
                                break;
                            }

                            (batch, _queued, _spare) = (_queued, _spare, _queued);
                            length = _queuedLength;
                            _queuedLength = 0;
                        }

                        await _socket.SendAsync(batch.AsMemory(0, length), SocketFlags.None);
                    }
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
                    while (filled - offset >= 4)
                    {
                        var length = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(offset));
                        if (filled - offset - 4 < length)
                            break;
                        var id = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(offset + 4));
                        PendingCall call;
                        lock (_gate)
                            _pending.Remove(id, out call!);
                        call.Complete(buffer.AsSpan(offset + 9, length - 5));
                        offset += 4 + length;
                    }

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
    /// A reusable wake-up for one waiter; the waiter resumes on a pool thread taken from the global queue (queued
    /// with preferLocal: false, so it does not wait behind the waking thread's own work as a local item would).
    /// </summary>
    private sealed class Signal : IValueTaskSource, IThreadPoolWorkItem
    {
        private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = false };

        public ValueTask WaitAsync() => new(this, _core.Version);

        public void Set() => ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);

        void IThreadPoolWorkItem.Execute() => _core.SetResult(true);

        public void GetResult(short token)
        {
            _core.GetResult(token);
            _core.Reset();
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    /// <summary>
    /// A reusable awaitable for one outstanding call; the reply body is copied into its own buffer, and the caller
    /// resumes on a pool thread from the global queue, never on the read loop.
    /// </summary>
    private sealed class PendingCall : IValueTaskSource<int>, IThreadPoolWorkItem
    {
        private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = false };
        private int _length;

        public byte[] Reply { get; private set; } = new byte[2048];

        public short Version => _core.Version;

        public void Reset() => _core.Reset();

        public void Complete(ReadOnlySpan<byte> reply)
        {
            if (Reply.Length < reply.Length)
                Reply = new byte[reply.Length];
            reply.CopyTo(Reply);
            _length = reply.Length;
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }

        void IThreadPoolWorkItem.Execute() => _core.SetResult(_length);

        public int GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
