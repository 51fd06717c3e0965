using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Server;

/// <summary>The serving side of streamed results (issue 14; PROTOCOL.md, "Streamed results").</summary>
internal sealed partial class ServerConnection
{
    private int _streams;

    /// <summary>
    /// True while a stream runs on this connection: its items then go through the write loop, which sends all that
    /// queued while it wrote in one system call, instead of one write per item from the producer's thread.
    /// </summary>
    private bool IsStreaming => Volatile.Read(ref _streams) > 0;

    private ItemSink StartStream(uint id, uint window)
    {
        Interlocked.Increment(ref _streams);
        return new ItemSink(this, id, window);
    }

    private void EndStream() => Interlocked.Decrement(ref _streams);

    /// <summary>Whether <paramref name="function"/> of <paramref name="dispatcher"/> returns a stream (looked up for stream requests only).</summary>
    private static bool StreamsOf(IServiceDispatcher dispatcher, string function)
    {
        foreach (var descriptor in dispatcher.Functions)
        {
            if (descriptor.Name == function)
                return descriptor.IsStream;
        }

        return false;
    }

    /// <summary>A credit from the caller: its stream may send that many more items. A credit for an id not streaming is ignored.</summary>
    private void OnCredit(ref MessagePackReader reader, int count, int frameLength)
    {
        var (id, items) = StreamMessages.ReadCredit(ref reader, count);
        if (reader.Consumed != frameLength)
            throw new InvalidDataException("Bytes follow the stream credit.");
        ItemSink? sink;
        lock (_runningGate)
            sink = _running.TryGetValue(id, out var work) ? work.Stream : null;
        sink?.Grant(items);
    }

    /// <summary>Waits until an item may be queued without going over <see cref="NodeOptions.MaxBufferedBytesPerConnection"/> (or the connection closed).</summary>
    internal ValueTask WaitForItemRoomAsync(CancellationToken cancellationToken) =>
        IsOverBufferLimit ? new ValueTask(WaitForRoomAsync().WaitAsync(cancellationToken)) : default;

    /// <summary>The most items one stream may have sent and not yet read by the caller: <see cref="NodeOptions.StreamWindow"/>.</summary>
    internal int MaxStreamWindow => _host.Options.StreamWindow;

    /// <summary>The largest item frame the caller accepts.</summary>
    internal int MaxItemFrameSize => MaxSendFrameSize;
}

/// <summary>
/// Where the items of one stream request go: each takes one unit of credit, and the producer waits (before it makes
/// the next item) while there is none, so it never runs more than the window ahead of the caller's reading. Credit above
/// unsent items is dropped, so a caller cannot make the node queue more than a window of items per stream; the
/// connection's byte limit holds too (an item waits for room).
/// </summary>
/// <remarks>
/// One producer calls <see cref="WaitForCreditAsync"/>, <see cref="BeginItem"/> and <see cref="Send"/> in turn; the read loop
/// calls <see cref="Grant"/>. Thread-safe for that use.
/// </remarks>
internal sealed class ItemSink : IStreamSink
{
    private readonly ServerConnection _connection;
    private readonly uint _id;
    private readonly SemaphoreSlim _credit;
    private readonly int _window;

    public ItemSink(ServerConnection connection, uint id, uint requestedWindow)
    {
        _connection = connection;
        _id = id;
        // The caller's window, capped by this node's own: it never queues more than that per stream.
        _window = (int)Math.Min(requestedWindow, (uint)connection.MaxStreamWindow);
        _credit = new SemaphoreSlim(_window, _window);
    }

    /// <summary>The window this stream runs with: the caller's, at most the node's <see cref="NodeOptions.StreamWindow"/>.</summary>
    public int Window => _window;

    /// <summary>Items made one after another without a wait between them go out together, up to this many or bytes.</summary>
    private const int MaxBatchItems = 32, MaxBatchBytes = 16 * 1024;
    private readonly List<FrameBuffer> _batch = [];
    private int _batchBytes;
    private int _sent;      // items made (the producer writes, the read loop reads)
    private int _acknowledged; // items the caller said it read (read loop only)

    /// <summary>
    /// The caller read <paramref name="items"/> more items. Credit for items not yet sent (or already credited) is a lie
    /// and is dropped, so the producer is never more than the window ahead of what the caller says it read.
    /// </summary>
    /// <remarks>Read loop only.</remarks>
    public void Grant(uint items)
    {
        var unacknowledged = Volatile.Read(ref _sent) - _acknowledged;
        var granted = (int)Math.Min(items, (uint)Math.Max(0, unacknowledged));
        if (granted == 0)
            return;
        _acknowledged += granted;
        _credit.Release(granted); // credit + unacknowledged items stay at the window, so it never overflows
    }

    /// <summary>Waits for one unit of credit and for room in the connection's send buffer.</summary>
    /// <exception cref="OperationCanceledException">The request's token fired (a cancel, or the connection closed).</exception>
    public ValueTask WaitForCreditAsync(CancellationToken cancellationToken)
    {
        var credit = _credit.WaitAsync(cancellationToken);
        if (credit.IsCompletedSuccessfully)
            return _connection.WaitForItemRoomAsync(cancellationToken);
        return AwaitCreditAsync(credit, cancellationToken);
    }

    private async ValueTask AwaitCreditAsync(Task credit, CancellationToken cancellationToken)
    {
        await credit.ConfigureAwait(false);
        await _connection.WaitForItemRoomAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A frame with the item header written: write exactly one value, the item, then <see cref="Send"/> it.</summary>
    public FrameBuffer BeginItem()
    {
        var frame = new FrameBuffer(64);
        var writer = new MessagePackWriter(frame);
        StreamMessages.WriteItemHeader(ref writer, _id);
        writer.Flush();
        return frame;
    }

    /// <summary>Queues an item frame made by <see cref="BeginItem"/> (the sink owns it from here); sent at the next <see cref="Flush"/>, or now when a batch is full.</summary>
    /// <exception cref="FrameTooLargeException">The item is above the caller's frame limit; the frame is disposed.</exception>
    public void Send(FrameBuffer frame)
    {
        try
        {
            frame.Complete(_connection.MaxItemFrameSize);
        }
        catch
        {
            frame.Dispose();
            throw;
        }

        Interlocked.Increment(ref _sent);
        _batch.Add(frame);
        _batchBytes += frame.Length;
        if (_batch.Count >= MaxBatchItems || _batchBytes >= MaxBatchBytes)
            Flush();
    }

    /// <summary>
    /// Hands the items made since the last flush to the connection together, so the write loop sends them in one
    /// system call; the producer flushes before it waits for anything (credit, or its next item).
    /// </summary>
    public void Flush()
    {
        foreach (var frame in _batch)
            _connection.TrySend(frame); // false: closed, and the request's token fires with the close
        _batch.Clear();
        _batchBytes = 0;
    }
}
