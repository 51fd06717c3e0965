using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using MessagePack;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Protocol;

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
/// <para>
/// Memory a peer can make us hold is bounded (issue 8): the bytes of frames waiting to be sent plus those of received
/// frames still being served (<see cref="HoldReceived"/>) are counted, and while they exceed the limit the read loop
/// stops reading, so a peer that never reads its replies stops being read itself (TCP backpressure, as Kestrel's
/// pause threshold). <see cref="IsStalled"/> tells the reaper when that lasted too long. Until the hello
/// (<see cref="AcceptFullFrames"/>) only frames up to <see cref="Messages.MaxHelloFrameSize"/> are read.
/// </para>
/// </remarks>
internal abstract class FramedConnection
{
    /// <summary>Frames up to this size are copied into one batch buffer; larger ones are written on their own.</summary>
    private const int BatchSize = 16 * 1024;
    private readonly Socket _socket;
    private readonly Stream _stream;
    private readonly PipeReader _input;
    private readonly object _sendGate = new();
    private Queue<FrameBuffer> _queued = new();
    private Queue<FrameBuffer> _draining = new();
    private readonly WriteSignal _writeSignal = new();
    private bool _writing;
    private bool _gathering; // the read loop is handling a read's frames: it sends what they queue, once (FlushGathered)
    private bool _sendCompleted;
    private readonly TaskCompletionSource<Exception?> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _loops = Task.CompletedTask;
    private int _closing;
    private readonly long _maxBufferedBytes;
    private long _queuedSendBytes;
    private long _heldReceivedBytes;
    private long _overLimitSince;
    private readonly object _roomGate = new();
    private TaskCompletionSource? _room;
    private int _receiveLimit;

    /// <summary>
    /// Frames over <paramref name="stream"/> (a <see cref="NetworkStream"/>, or an <see cref="System.Net.Security.SslStream"/>
    /// over one, issue 10), which owns <paramref name="socket"/>; the socket is kept to shut it down on close.
    /// Frames up to <paramref name="maxReceiveFrameSize"/> are read once the hello is in; above <paramref name="maxBufferedBytes"/>
    /// buffered bytes (queued to send, or received and still being served) reading pauses.
    /// Idle and stall times are read on <paramref name="clock"/> (the node's <see cref="TimeProvider"/>; the system clock when null).
    /// </summary>
    protected FramedConnection(Socket socket, Stream stream, int maxReceiveFrameSize, long maxBufferedBytes, TimeProvider? clock = null)
    {
        Clock = clock ?? TimeProvider.System;
        LastFrameTicks = Clock.GetTimestamp();
        _socket = socket;
        _socket.NoDelay = true;
        _stream = stream;
        // No zero-byte reads: they saved 16 KiB per idle connection end but cost 14% p50 and 18% of calls/s at 8 in flight
        // (6 interleaved full benchmark rounds, docs/benchmarks.md); an idle connection holds this one read buffer.
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4096));
        MaxReceiveFrameSize = maxReceiveFrameSize;
        _maxBufferedBytes = maxBufferedBytes;
        _receiveLimit = Math.Min(maxReceiveFrameSize, Messages.MaxHelloFrameSize);
        RemoteEndPoint = socket.RemoteEndPoint?.ToString() ?? "?";
        RemoteAddress = (socket.RemoteEndPoint as System.Net.IPEndPoint)?.Address;
        RpcMetrics.ConnectionOpened(inbound: this is not ClientConnection);
    }

    /// <summary>The largest frame this side accepts.</summary>
    protected int MaxReceiveFrameSize { get; }

    /// <summary>The clock of every time this connection keeps (its timestamps are <see cref="TimeProvider.GetTimestamp"/> values).</summary>
    public TimeProvider Clock { get; }

    public string RemoteEndPoint { get; }

    /// <summary>The peer's address (null when the socket did not say).</summary>
    public System.Net.IPAddress? RemoteAddress { get; }

    /// <summary>Bytes of frames accepted for sending and not yet written.</summary>
    public long QueuedSendBytes => Volatile.Read(ref _queuedSendBytes);

    /// <summary>Bytes queued to send plus bytes of received frames still being served.</summary>
    public long BufferedBytes => Volatile.Read(ref _queuedSendBytes) + Volatile.Read(ref _heldReceivedBytes);

    /// <summary>Whether <see cref="BufferedBytes"/> is above the limit, so reading is paused.</summary>
    protected bool IsOverBufferLimit => BufferedBytes > _maxBufferedBytes;

    /// <summary>
    /// True when the connection has been over its buffer limit for longer than <paramref name="timeout"/> with bytes
    /// waiting to be sent all along: the peer is not reading. Slow handlers alone (received bytes held, nothing to
    /// send) never make a connection stalled.
    /// </summary>
    public bool IsStalled(TimeSpan timeout)
    {
        var since = Volatile.Read(ref _overLimitSince);
        return since != 0 && QueuedSendBytes > 0 && IsOverBufferLimit && Clock.GetElapsedTime(since) > timeout;
    }

    /// <summary>Closes the connection when it <see cref="IsStalled"/>, with a reason that says so; returns whether it did.</summary>
    public bool CloseIfStalled(TimeSpan timeout)
    {
        if (!IsStalled(timeout))
            return false;
        Close(new IOException($"Closed: {BufferedBytes} bytes stayed buffered for more than {timeout.TotalSeconds:0.#} s (MaxBufferedBytesPerConnection) while the peer read nothing of what was sent to it."));
        return true;
    }

    /// <summary>The hello is in: from now on frames up to <see cref="MaxReceiveFrameSize"/> are read (read loop only).</summary>
    protected void AcceptFullFrames() => _receiveLimit = MaxReceiveFrameSize;

    /// <summary>Counts a received frame that is still being served against the buffer limit, until <see cref="ReleaseReceived"/>.</summary>
    protected void HoldReceived(int bytes)
    {
        if (Interlocked.Add(ref _heldReceivedBytes, bytes) + Volatile.Read(ref _queuedSendBytes) > _maxBufferedBytes)
            MarkOverLimit();
    }

    /// <summary>Stops counting a received frame (see <see cref="HoldReceived"/>); may resume reading.</summary>
    protected void ReleaseReceived(int bytes)
    {
        Interlocked.Add(ref _heldReceivedBytes, -bytes);
        OnBufferReleased();
    }

    private void MarkOverLimit()
    {
        if (Volatile.Read(ref _overLimitSince) != 0)
            return;
        // 0 means "not over the limit": a clock that reads 0 now (a test's, or a custom TimeProvider) is taken one tick later.
        var now = Clock.GetTimestamp();
        Interlocked.CompareExchange(ref _overLimitSince, now == 0 ? 1 : now, 0);
    }

    private void OnBufferReleased()
    {
        // The usual case: never over the limit, nobody waiting. Both checks are plain reads.
        if (Volatile.Read(ref _overLimitSince) == 0 && Volatile.Read(ref _room) is null)
            return;
        if (IsOverBufferLimit)
            return;
        Volatile.Write(ref _overLimitSince, 0);
        WakeRoomWaiters();
    }

    /// <summary>Completes when the buffered bytes are back under the limit, or the connection closed.</summary>
    protected Task WaitForRoomAsync()
    {
        lock (_roomGate)
        {
            var room = _room ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            // Published before the check: a release that lands after it sees the waiter (Dekker with OnBufferReleased).
            Interlocked.MemoryBarrier();
            if (IsOverBufferLimit && !IsClosed)
                return room.Task;
            _room = null;
            room.TrySetResult();
            return Task.CompletedTask;
        }
    }

    private void WakeRoomWaiters()
    {
        TaskCompletionSource? room;
        lock (_roomGate)
        {
            room = _room;
            if (room is null || (IsOverBufferLimit && !IsClosed))
                return;
            _room = null;
        }

        room.TrySetResult();
    }

    /// <summary>Completes when the connection is closed, with the reason (null for an orderly close).</summary>
    public Task<Exception?> Closed => _closed.Task;

    public bool IsClosed => Volatile.Read(ref _closing) != 0;

    /// <summary>When the last whole frame arrived (a timestamp of <see cref="Clock"/>), for idle reaping.</summary>
    public long LastFrameTicks { get; private set; }

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
                if (frame.HoldsRequestSlot)
                    OnRequestSlotsFreed(1);
                frame.Dispose();
                return false;
            }

            if (Interlocked.Add(ref _queuedSendBytes, frame.Length) + Volatile.Read(ref _heldReceivedBytes) > _maxBufferedBytes)
                MarkOverLimit();

            if (_writing || _gathering || !SendInline)
            {
                _queued.Enqueue(frame);
                if (!_writing && !_gathering)
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
            Retire(frame);
            Close(e);
            return true; // accepted, then lost with the connection, as a queued frame would be
        }

        if (write.IsCompletedSuccessfully)
        {
            write.GetAwaiter().GetResult(); // consumes the ValueTask, so a pooled source behind it is released
            Retire(frame);
            ReleaseWriting();
        }
        else
        {
            _ = FinishWriteAsync(write, frame, static (connection, f) => connection.Retire(f));
        }

        return true;
    }

    /// <summary>
    /// A write made from a sending thread (inline, or the read loop's gathered flush) that did not finish at once:
    /// finishes it off that thread, releases what it wrote, then gives up the stream (or hands it to the write loop).
    /// </summary>
    private async Task FinishWriteAsync<TWritten>(ValueTask write, TWritten written, Action<FramedConnection, TWritten> release)
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
            release(this, written);
        }

        ReleaseWriting();
    }

    /// <summary>A frame accepted by <see cref="TrySend(FrameBuffer)"/> is written or dropped: stop counting it, free its slot, return its buffer.</summary>
    private void Retire(FrameBuffer frame)
    {
        var length = frame.Length;
        var holdsSlot = frame.HoldsRequestSlot;
        frame.Dispose();
        Interlocked.Add(ref _queuedSendBytes, -length);
        if (holdsSlot)
            OnRequestSlotsFreed(1);
        OnBufferReleased();
    }

    /// <summary>
    /// Runs when frames marked <see cref="FrameBuffer.HoldsRequestSlot"/> were written or dropped (each exactly once):
    /// their requests' concurrency slots are free.
    /// </summary>
    protected virtual void OnRequestSlotsFreed(int count)
    {
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
    /// <remarks>With <c>holdsRequestSlot</c> (see <see cref="FrameBuffer.HoldsRequestSlot"/>) the frame is retired exactly once, even when building it fails.</remarks>
    protected bool TrySend<TState>(TState state, WriteMessage<TState> write, int maxFrameSize, bool holdsRequestSlot = false)
    {
        var frame = new FrameBuffer(64) { HoldsRequestSlot = holdsRequestSlot };
        try
        {
            var writer = new MessagePackWriter(frame);
            write(ref writer, state);
            writer.Flush();
            frame.Complete(maxFrameSize);
        }
        catch
        {
            if (holdsRequestSlot)
                OnRequestSlotsFreed(1);
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
    protected abstract bool SendInline { get; }

    /// <summary>Handles one frame; the callee owns <paramref name="frame"/> and disposes it. Throwing closes the connection.</summary>
    protected abstract void OnFrame(ReceivedFrame frame);

    /// <summary>Runs once, after the connection closed.</summary>
    protected abstract void OnClosed(Exception? reason);

    private async Task ReadLoopAsync()
    {
        Exception? error = null;
        try
        {
            await BeforeReadingAsync().ConfigureAwait(false);
            while (true)
            {
                var result = await _input.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                var paused = false;
                var stamped = false;
                lock (_sendGate)
                    _gathering = true;
                try
                {
                    while (FrameDecoder.TryReadFrame(ref buffer, _receiveLimit, out var frame))
                    {
                        if (!stamped)
                        {
                            LastFrameTicks = Clock.GetTimestamp(); // once per read: its frames arrived together
                            stamped = true;
                        }

                        RpcMetrics.BytesReceived(frame.Length + FrameBuffer.PrefixLength);
                        OnFrame(frame);
                        if (IsOverBufferLimit)
                        {
                            paused = true;
                            break;
                        }
                    }
                }
                finally
                {
                    FlushGathered();
                    // Paused with whole frames left: mark nothing examined, so the next read returns them at once.
                    if (paused)
                        _input.AdvanceTo(buffer.Start);
                    else
                        _input.AdvanceTo(buffer.Start, buffer.End);
                }

                if (paused)
                {
                    // Backpressure: read nothing more until our replies are written (see IsStalled for the timeout).
                    await WaitForRoomAsync().ConfigureAwait(false);
                    if (IsClosed)
                        break;
                    continue;
                }

                if (result.IsCanceled || IsClosed)
                    break;
                if (result.IsCompleted)
                {
                    OnInputCompleted();
                    return;
                }
            }
        }
        catch (Exception e)
        {
            error = e;
        }

        Close(error);
    }

    /// <summary>
    /// Read loop, after a read's frames: sends the frames queued while they were handled (replies of inline
    /// functions, and any others that came meanwhile) in one write from this thread, with no hop to the write loop
    /// (issue 16). A write that does not complete at once is finished off the read loop, so reading never waits on
    /// the peer reading (both sides doing so could deadlock); frames that do not fit one batch go to the write loop.
    /// </summary>
    private void FlushGathered()
    {
        byte[] batch;
        var filled = 0;
        var batched = new BatchedFrames();
        lock (_sendGate)
        {
            _gathering = false;
            if (_writing || _queued.Count == 0)
                return;
            _writing = true;
            batch = ArrayPool<byte>.Shared.Rent(BatchSize); // rented per flush: an idle connection holds none
            while (_queued.TryPeek(out var frame) && filled + frame.Frame.Length <= batch.Length)
            {
                _queued.Dequeue();
                frame.Frame.Span.CopyTo(batch.AsSpan(filled));
                filled += frame.Frame.Length;
                batched.Bytes += frame.Length;
                batched.Slots += frame.HoldsRequestSlot ? 1 : 0;
                frame.Dispose();
            }
        }

        if (filled == 0)
        {
            ArrayPool<byte>.Shared.Return(batch);
            _writeSignal.Set(); // a large frame first: the write loop writes it on its own
            return;
        }

        ValueTask write;
        try
        {
            write = _stream.WriteAsync(batch.AsMemory(0, filled));
        }
        catch (Exception e)
        {
            ArrayPool<byte>.Shared.Return(batch);
            ReleaseBatched(ref batched);
            Close(e);
            return;
        }

        if (write.IsCompletedSuccessfully)
        {
            write.GetAwaiter().GetResult();
            ArrayPool<byte>.Shared.Return(batch);
            ReleaseBatched(ref batched);
            ReleaseWriting();
        }
        else
        {
            _ = FinishWriteAsync(write, (batch, batched), static (connection, written) =>
            {
                ArrayPool<byte>.Shared.Return(written.batch);
                connection.ReleaseBatched(ref written.batched);
            });
        }
    }

    /// <summary>Runs on the read loop before the first read (a TLS handshake, issue 10); throwing closes the connection.</summary>
    protected virtual ValueTask BeforeReadingAsync() => default;

    /// <summary>The stream frames travel over.</summary>
    protected Stream Stream => _stream;

    /// <summary>The socket under the stream, for work that must bypass it (a plaintext refusal before TLS).</summary>
    protected Socket Socket => _socket;

    /// <summary>The peer finished sending (a half-close, or a close). By default the connection closes at once.</summary>
    protected virtual void OnInputCompleted() => Close();

    private async Task WriteLoopAsync()
    {
        Exception? error = null;
        byte[]? batch = null; // rented while woken, so an idle connection holds none
        // Frames copied into the batch return their buffers at once; their bytes and slots are released once it is written.
        var batched = new BatchedFrames();
        try
        {
            while (await _writeSignal.WaitAsync().ConfigureAwait(false) && !IsClosed)
            {
                // Woken by ReleaseWriting: this loop holds _writing until the queue is empty.
                batch = ArrayPool<byte>.Shared.Rent(BatchSize);
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
                        var bytes = frame.Frame;
                        if (filled + bytes.Length > batch.Length && filled > 0)
                        {
                            try
                            {
                                await _stream.WriteAsync(batch.AsMemory(0, filled)).ConfigureAwait(false);
                            }
                            catch
                            {
                                Retire(frame); // taken off the queue already: dropped with the connection, retired once like the others
                                throw;
                            }

                            ReleaseBatched(ref batched);
                            filled = 0;
                        }

                        if (bytes.Length > batch.Length)
                        {
                            try
                            {
                                await _stream.WriteAsync(bytes).ConfigureAwait(false);
                            }
                            finally
                            {
                                Retire(frame);
                            }

                            continue;
                        }

                        bytes.Span.CopyTo(batch.AsSpan(filled));
                        filled += bytes.Length;
                        batched.Bytes += frame.Length;
                        batched.Slots += frame.HoldsRequestSlot ? 1 : 0;
                        frame.Dispose();
                    }

                    if (filled > 0)
                        await _stream.WriteAsync(batch.AsMemory(0, filled)).ConfigureAwait(false);
                    ReleaseBatched(ref batched);
                }

                ArrayPool<byte>.Shared.Return(batch);
                batch = null;
                if (Volatile.Read(ref _sendCompleted))
                    break; // CloseAfterFlushAsync: everything queued is written
            }
        }
        catch (Exception e)
        {
            error = e;
        }

        if (batch is not null)
            ArrayPool<byte>.Shared.Return(batch);
        ReleaseBatched(ref batched); // a failed write: those frames are dropped
        lock (_sendGate)
        {
            DisposeQueued(_queued);
            DisposeQueued(_draining);
        }

        Close(error);
    }

    private void DisposeQueued(Queue<FrameBuffer> frames)
    {
        while (frames.TryDequeue(out var frame))
            Retire(frame);
    }

    private struct BatchedFrames
    {
        public int Bytes;
        public int Slots;
    }

    private void ReleaseBatched(ref BatchedFrames batched)
    {
        if (batched.Bytes == 0)
            return;
        Interlocked.Add(ref _queuedSendBytes, -batched.Bytes);
        if (batched.Slots > 0)
            OnRequestSlotsFreed(batched.Slots);
        batched = default;
        OnBufferReleased();
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
        RpcMetrics.ConnectionClosed(inbound: this is not ClientConnection);
        lock (_sendGate)
            DisposeQueued(_queued);
        _writeSignal.Stop();
        WakeRoomWaiters(); // received bytes still held may keep it over the limit: nothing else would wake them
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
