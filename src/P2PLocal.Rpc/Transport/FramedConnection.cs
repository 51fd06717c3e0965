using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Channels;
using MessagePack;
using P2PLocal.Rpc.Framing;

namespace P2PLocal.Rpc.Transport;

/// <summary>
/// One TCP connection carrying length-prefixed frames: a read loop that hands each whole frame to
/// <see cref="OnFrame"/>, and a write loop that drains a queue of ready frames and flushes once the queue is
/// empty, so concurrent callers share one system call under load.
/// </summary>
/// <remarks><see cref="TrySend"/> and <see cref="Close"/> are thread-safe; <see cref="OnFrame"/> runs on the read loop only.</remarks>
internal abstract class FramedConnection
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly Channel<FrameBuffer> _outgoing = Channel.CreateUnbounded<FrameBuffer>(
        new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = false });
    private readonly TaskCompletionSource<Exception?> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _loops = Task.CompletedTask;
    private int _closing;

    protected FramedConnection(Socket socket, int maxReceiveFrameSize)
    {
        _socket = socket;
        _socket.NoDelay = true;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4096));
        _output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 16 * 1024));
        MaxReceiveFrameSize = maxReceiveFrameSize;
        RemoteEndPoint = socket.RemoteEndPoint?.ToString() ?? "?";
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

    /// <summary>Queues a frame; the connection disposes it once written. Returns false (and disposes it) when closed.</summary>
    public bool TrySend(FrameBuffer frame)
    {
        if (!IsClosed && _outgoing.Writer.TryWrite(frame))
            return true;
        frame.Dispose();
        return false;
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
        var reader = _outgoing.Reader;
        try
        {
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                while (reader.TryRead(out var frame))
                {
                    using (frame)
                        _output.Write(frame.Frame.Span);
                }

                var flush = await _output.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted)
                    break;
            }
        }
        catch (Exception e)
        {
            error = e;
        }

        while (reader.TryRead(out var left))
            left.Dispose();
        Close(error);
    }

    /// <summary>Closes the connection now: queued frames not yet written are dropped. Idempotent.</summary>
    public void Close(Exception? reason = null)
    {
        if (Interlocked.Exchange(ref _closing, 1) != 0)
            return;
        _outgoing.Writer.TryComplete();
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
        _outgoing.Writer.TryComplete();
        await Task.WhenAny(_loops, Task.Delay(timeout)).ConfigureAwait(false);
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
        await _output.CompleteAsync().ConfigureAwait(false);
    }
}
