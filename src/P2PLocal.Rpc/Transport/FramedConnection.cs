using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using MessagePack;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Framing;

namespace P2PLocal.Rpc.Transport;

/// <summary>
/// One TCP connection carrying length-prefixed frames: a read loop that hands each whole frame to
/// <see cref="OnFrame"/>, and a send path that writes a frame straight from the sending thread when nothing else
/// is being written, and otherwise queues it for a write loop that sends everything queued in one batch, so
/// concurrent callers share one system call under load and a lone call takes no thread hop.
/// </summary>
/// <remarks>
/// <see cref="TrySend"/> and <see cref="Close"/> are thread-safe; <see cref="OnFrame"/> runs on the read loop only.
/// Whoever holds <see cref="_writing"/> (a sender writing inline, or the write loop) is the only writer of the
/// stream; frames queued meanwhile go to the write loop, so they keep their order.
/// </remarks>
internal abstract class FramedConnection
{
    /// <summary>Frames up to this size are copied into one batch buffer; larger ones are written on their own.</summary>
    private const int BatchSize = 16 * 1024;
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly object _sendGate = new();
    private Queue<FrameBuffer> _queued = new();
    private Queue<FrameBuffer> _draining = new();
    private readonly WriteSignal _writeSignal = new();
    private bool _writing;
    private bool _sendCompleted;
    private readonly TaskCompletionSource<Exception?> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _loops = Task.CompletedTask;
    private int _closing;

    protected FramedConnection(Socket socket, int maxReceiveFrameSize)
    {
        _socket = socket;
        _socket.NoDelay = true;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4096));
        MaxReceiveFrameSize = maxReceiveFrameSize;
        RemoteEndPoint = socket.RemoteEndPoint?.ToString() ?? "?";
        RpcMetrics.ConnectionOpened(this);
    }

    /// <summary>The largest frame this side accepts.</summary>
    protected int MaxReceiveFrameSize { get; }

    public string RemoteEndPoint { get; }

    /// <summary>Completes when the connection is closed, with the reason (null for an orderly close).</summary>
    public Task<Exception?> Closed => _closed.Task;

    public bool IsClosed => Volatile.Read(ref _closing) != 0;

    /// <summary>When the last whole frame arrived (<see cref="Environment.TickCount64"/>), for idle reaping.</summary>
    public long LastFrameTicks { get; private set; } = Environment.TickCount64;

    protected void StartLoops() => _loops = Task.WhenAll(Task.Run(ReadLoopAsync), Task.Run(WriteLoopAsync));

    /// <summary>
    /// Sends a frame: written at once from this thread when the connection is not writing, queued for the write loop
    /// otherwise. The connection disposes the frame once written. Returns false (and disposes it) when closed.
    /// </summary>
    public bool TrySend(FrameBuffer frame)
    {
        RpcMetrics.BytesSent(frame.Frame.Length);
        bool inline = false, wake = false;
        lock (_sendGate)
        {
            if (IsClosed || _sendCompleted)
            {
                frame.Dispose();
                return false;
            }

            if (_writing || !SendInline)
            {
                _queued.Enqueue(frame);
                if (!_writing)
                {
                    _writing = true;
                    wake = true;
                }
            }
            else
            {
                _writing = true; // the queue is empty whenever nobody is writing
                inline = true;
            }
        }

        if (!inline)
        {
            if (wake)
                _writeSignal.Set();
            return true;
        }

        ValueTask write;
        try
        {
            write = _stream.WriteAsync(frame.Frame);
        }
        catch (Exception e)
        {
            frame.Dispose();
            Close(e);
            return true; // accepted, then lost with the connection, as a queued frame would be
        }

        if (write.IsCompletedSuccessfully)
        {
            write.GetAwaiter().GetResult(); // consumes the ValueTask, so a pooled source behind it is released
            frame.Dispose();
            ReleaseWriting();
        }
        else
        {
            _ = FinishInlineWriteAsync(write, frame);
        }

        return true;
    }

    private async Task FinishInlineWriteAsync(ValueTask write, FrameBuffer frame)
    {
        try
        {
            await write.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Close(e);
            return;
        }
        finally
        {
            frame.Dispose();
        }

        ReleaseWriting();
    }

    /// <summary>After an inline write: give up the stream, or hand it (still held) to the write loop when frames
    /// queued meanwhile or a close-after-flush is waiting.</summary>
    private void ReleaseWriting()
    {
        lock (_sendGate)
        {
            if (_queued.Count == 0 && !_sendCompleted)
            {
                _writing = false;
                return;
            }
        }

        _writeSignal.Set();
    }

    /// <summary>Builds and queues a small control message.</summary>
    protected bool TrySend<TState>(TState state, WriteMessage<TState> write, int maxFrameSize)
    {
        var frame = new FrameBuffer(64);
        try
        {
            var writer = new MessagePackWriter(frame);
            write(ref writer, state);
            writer.Flush();
            frame.Complete(maxFrameSize);
        }
        catch
        {
            frame.Dispose();
            throw;
        }

        return TrySend(frame);
    }

    protected delegate void WriteMessage<TState>(ref MessagePackWriter writer, TState state);

    /// <summary>
    /// Whether a frame may be written from the sending thread when nothing else is being written: true when this is
    /// the only call in progress, so the write loop's thread hop buys no batching; false under load, where letting
    /// frames gather behind the loop's wake-up sends many in one system call.
    /// </summary>
    protected virtual bool SendInline => false;

    /// <summary>Handles one frame; the callee owns <paramref name="frame"/> and disposes it. Throwing closes the connection.</summary>
    protected abstract void OnFrame(ReceivedFrame frame);

    /// <summary>Runs once, after the connection closed.</summary>
    protected abstract void OnClosed(Exception? reason);

    private async Task ReadLoopAsync()
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                try
                {
                    while (FrameDecoder.TryReadFrame(ref buffer, MaxReceiveFrameSize, out var frame))
                    {
                        LastFrameTicks = Environment.TickCount64;
                        RpcMetrics.BytesReceived(frame.Length + FrameBuffer.PrefixLength);
                        OnFrame(frame);
                    }
                }
                finally
                {
                    _input.AdvanceTo(buffer.Start, buffer.End);
                }

                if (result.IsCompleted || result.IsCanceled)
                    break;
            }
        }
        catch (Exception e)
        {
            error = e;
        }

        Close(error);
    }

    private async Task WriteLoopAsync()
    {
        Exception? error = null;
        var batch = ArrayPool<byte>.Shared.Rent(BatchSize);
        try
        {
            while (await _writeSignal.WaitAsync().ConfigureAwait(false) && !IsClosed)
            {
                // Woken by ReleaseWriting: this loop holds _writing until the queue is empty.
                while (true)
                {
                    Queue<FrameBuffer> frames;
                    lock (_sendGate)
                    {
                        if (_queued.Count == 0)
                        {
                            _writing = false;
                            break;
                        }

                        frames = _queued;
                        (_queued, _draining) = (_draining, _queued);
                    }

                    var filled = 0;
                    while (frames.TryDequeue(out var frame))
                    {
                        using (frame)
                        {
                            var bytes = frame.Frame;
                            if (filled + bytes.Length > batch.Length && filled > 0)
                            {
                                await _stream.WriteAsync(batch.AsMemory(0, filled)).ConfigureAwait(false);
                                filled = 0;
                            }

                            if (bytes.Length > batch.Length)
                            {
                                await _stream.WriteAsync(bytes).ConfigureAwait(false);
                                continue;
                            }

                            bytes.Span.CopyTo(batch.AsSpan(filled));
                            filled += bytes.Length;
                        }
                    }

                    if (filled > 0)
                        await _stream.WriteAsync(batch.AsMemory(0, filled)).ConfigureAwait(false);
                }

                if (Volatile.Read(ref _sendCompleted))
                    break; // CloseAfterFlushAsync: everything queued is written
            }
        }
        catch (Exception e)
        {
            error = e;
        }

        ArrayPool<byte>.Shared.Return(batch);
        lock (_sendGate)
        {
            DisposeQueued(_queued);
            DisposeQueued(_draining);
        }

        Close(error);
    }

    private static void DisposeQueued(Queue<FrameBuffer> frames)
    {
        while (frames.TryDequeue(out var frame))
            frame.Dispose();
    }

    /// <summary>Wakes the write loop; one waiter, resumed on the thread pool. A wake-up with no waiter is kept for the next wait.</summary>
    private sealed class WriteSignal : IValueTaskSource<bool>, IThreadPoolWorkItem
    {
        private readonly object _gate = new();
        // Completed from Execute on a pool thread taken from the global queue, not the waker's local one (where
        // RunContinuationsAsynchronously would put it, behind whatever the waking thread does next).
        private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = false };
        private bool _result;
        private bool _waiting;
        private bool _pending;
        private bool _stopped;

        /// <summary>Completes with true when woken, false once stopped.</summary>
        public ValueTask<bool> WaitAsync()
        {
            lock (_gate)
            {
                if (_pending || _stopped)
                {
                    _pending = false;
                    return new ValueTask<bool>(!_stopped);
                }

                _waiting = true;
                return new ValueTask<bool>(this, _core.Version);
            }
        }

        public void Set() => Wake(stop: false);

        /// <summary>Wakes the loop for the last time.</summary>
        public void Stop() => Wake(stop: true);

        private void Wake(bool stop)
        {
            bool running;
            lock (_gate)
            {
                _stopped |= stop;
                if (!_waiting)
                {
                    _pending = true;
                    return;
                }

                _waiting = false;
                running = !_stopped;
            }

            _result = running;
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }

        void IThreadPoolWorkItem.Execute() => _core.SetResult(_result);

        public bool GetResult(short token)
        {
            var running = _core.GetResult(token);
            _core.Reset(); // before the loop can wait again, so a wake-up never meets a completed source
            return running;
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    /// <summary>Closes the connection now: queued frames not yet written are dropped. Idempotent.</summary>
    public void Close(Exception? reason = null)
    {
        if (Interlocked.Exchange(ref _closing, 1) != 0)
            return;
        RpcMetrics.ConnectionClosed(this);
        lock (_sendGate)
            DisposeQueued(_queued);
        _writeSignal.Stop();
        try
        {
            // Shutdown wakes a read loop blocked in the kernel; Dispose alone does not on every platform.
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        _input.CancelPendingRead();
        _stream.Dispose();
        try
        {
            OnClosed(reason);
        }
        finally
        {
            _closed.TrySetResult(reason);
        }
    }

    /// <summary>Closes after the frames already queued are written (for goodbyes and final errors).</summary>
    public async Task CloseAfterFlushAsync(TimeSpan timeout)
    {
        bool wake;
        lock (_sendGate)
        {
            _sendCompleted = true;
            // Nobody writing: the write loop takes the stream, writes what is queued, and closes. Otherwise the
            // current writer hands over to it (inline) or sees _sendCompleted when its queue is empty (the loop).
            wake = !_writing;
            _writing = true;
        }

        if (wake)
            _writeSignal.Set();
        try
        {
            await _closed.Task.WaitAsync(timeout).ConfigureAwait(false); // no Task.Delay: its timer would outlive the close
        }
        catch (TimeoutException)
        {
        }

        Close();
    }

    /// <summary>Closes and waits for both loops to end.</summary>
    public async Task DisposeAsync()
    {
        Close();
        try
        {
            await _loops.ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            // The loops report their errors through Closed.
        }

        await _input.CompleteAsync().ConfigureAwait(false);
    }
}
