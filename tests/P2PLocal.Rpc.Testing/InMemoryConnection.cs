using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;

namespace P2PLocal.Rpc.Testing;

/// <summary>
/// A connection in memory: two streams joined by two pipes, so what one end writes the other reads, with no socket
/// traffic at all. <see cref="Client"/> is the library's end, <see cref="Peer"/> the test's scripted end.
/// </summary>
/// <remarks>
/// Pipe options bound what a side may write before the other reads (<see cref="PipeOptions.PauseWriterThreshold"/>):
/// a small threshold toward the peer is a peer that does not read.
/// </remarks>
public sealed class InMemoryConnection
{
    /// <param name="toPeer">The pipe the client writes into (null: the pipe defaults).</param>
    /// <param name="toClient">The pipe the peer writes into (null: the pipe defaults).</param>
    public InMemoryConnection(PipeOptions? toPeer = null, PipeOptions? toClient = null)
    {
        var up = new Pipe(toPeer ?? PipeOptions.Default);
        var down = new Pipe(toClient ?? PipeOptions.Default);
        // A connection of the library wants a socket to shut down on close: an unconnected one, which carries nothing.
        ClientSocket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        Client = new PipeEndStream(down.Reader, up.Writer, ClientSocket);
        Peer = new PipeEndStream(up.Reader, down.Writer, owned: null);
    }

    /// <summary>An unconnected TCP socket the <see cref="Client"/> stream owns (disposed with it).</summary>
    public Socket ClientSocket { get; }

    /// <summary>The library's end.</summary>
    public PipeEndStream Client { get; }

    /// <summary>The test's end.</summary>
    public PipeEndStream Peer { get; }
}

/// <summary>
/// One end of an <see cref="InMemoryConnection"/>. Disposing it is a close: the other end reads the end of the stream
/// (0 bytes) and its writes fail with <see cref="IOException"/>; a read or write in progress here ends.
/// </summary>
/// <remarks>One reader and one writer at a time, as on a socket.</remarks>
public sealed class PipeEndStream : Stream
{
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly IDisposable? _owned;
    private readonly object _gate = new();
    private bool _reading;
    private bool _disposed;
    private int _writes;
    private Exception? _writeError;

    internal PipeEndStream(PipeReader input, PipeWriter output, IDisposable? owned)
    {
        _input = input;
        _output = output;
        _owned = owned;
    }

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>Whether this end was closed.</summary>
    public bool IsDisposed
    {
        get
        {
            lock (_gate)
                return _disposed;
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _reading = true;
        }

        try
        {
            while (true)
            {
                var result = await _input.ReadAsync(cancellationToken);
                var data = result.Buffer;
                if (!data.IsEmpty || result.IsCompleted)
                {
                    // An empty buffer is a zero-byte read: it returns 0 once data is there, consuming nothing.
                    var count = (int)Math.Min(data.Length, buffer.Length);
                    data.Slice(0, count).CopyTo(buffer.Span);
                    _input.AdvanceTo(data.GetPosition(count));
                    return count;
                }

                _input.AdvanceTo(data.Start);
                lock (_gate)
                    ObjectDisposedException.ThrowIf(_disposed, this);
            }
        }
        finally
        {
            lock (_gate)
            {
                _reading = false;
                if (_disposed)
                    _input.Complete();
            }
        }
    }

    /// <summary>How many writes were made to this end (a batch of frames written at once is one).</summary>
    public int Writes => Volatile.Read(ref _writes);

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _writes);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_writeError is { } error)
                throw error;
        }

        var result = await _output.WriteAsync(buffer, cancellationToken);
        if (result.IsCanceled)
            throw new ObjectDisposedException(nameof(PipeEndStream), "The stream was closed during the write.");
        if (result.IsCompleted)
            throw new IOException("The other end is closed: nothing more is read.");
    }

    /// <summary>
    /// Stops reading (a peer that shut its receiving side): the other end's writes fail with <see cref="IOException"/>
    /// from now on, while this end can still write. Call it while no read is in progress here.
    /// </summary>
    public void StopReading()
    {
        lock (_gate)
        {
            if (_reading)
                throw new InvalidOperationException("A read is in progress on this end.");
            _input.Complete();
        }
    }

    /// <summary>From now on every write to this end fails with <paramref name="error"/> (a connection reset while sending).</summary>
    public void FailWrites(Exception error)
    {
        lock (_gate)
            _writeError = error;
    }

    /// <summary>Ends the connection with an error: the other end's reads throw <paramref name="error"/> (a reset).</summary>
    public void Reset(Exception error)
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            _output.CancelPendingFlush();
            _output.Complete(error);
            if (_reading)
                _input.CancelPendingRead();
            else
                _input.Complete();
        }

        _owned?.Dispose();
    }

    /// <summary>Runs at the start of every Dispose, before this end closes (a test holds a close half-way with it).</summary>
    public Action? Disposing { get; set; }

    protected override void Dispose(bool disposing)
    {
        Disposing?.Invoke();
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            _output.CancelPendingFlush(); // a write waiting for room ends
            _output.Complete();
            if (_reading)
                _input.CancelPendingRead();
            else
                _input.Complete();
        }

        _owned?.Dispose();
        base.Dispose(disposing);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();
    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
