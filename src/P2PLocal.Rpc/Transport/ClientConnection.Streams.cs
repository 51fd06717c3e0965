using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Transport;

/// <summary>The calling side of streamed results (issue 14; PROTOCOL.md, "Streamed results").</summary>
internal sealed partial class ClientConnection
{
    /// <summary>The end of a stream carries nil, which nobody reads.</summary>
    private static readonly ResultReader<bool> s_ignoreEnd = static (ref MessagePackReader _, MessagePackSerializerOptions __) => true;

    /// <summary>The streams of this connection that have not ended, by id; under <see cref="_pendingGate"/>.</summary>
    private Dictionary<uint, ReceivingStream>? _streams;

    /// <summary>Streams not yet ended; call under <see cref="_pendingGate"/>.</summary>
    private int StreamCount => _streams?.Count ?? 0;

    /// <summary>
    /// Sends a stream request for <paramref name="function"/>, granting the peer <paramref name="window"/> items, and
    /// returns the stream its items arrive on. Fails at once, sending nothing, when the peer's hello does not offer streams.
    /// </summary>
    /// <exception cref="NotSupportedException">The peer does not take stream requests (an older version).</exception>
    /// <exception cref="PeerConnectionException">The connection closed.</exception>
    /// <exception cref="TimeoutException">The peer did not read what was sent to it, so the request could not be sent in time.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public async ValueTask<ReceivingStream> OpenStreamAsync<TState>(string function, TState state, KwargsWriter<TState> writeKwargs, int window,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!PeerHello.AcceptsStreams)
        {
            throw new NotSupportedException(
                $"Peer '{_peerName}' does not take stream requests: its hello does not offer the '{StreamMessages.Feature}' feature (it runs an older " +
                $"P2PLocal.Rpc, or another implementation without streams), so '{function}' was not sent. Upgrade that node, or call a function that returns one result.");
        }

        cancellationToken.ThrowIfCancellationRequested();
        LastUsedTicks = Clock.GetTimestamp();
        var admission = IsOverBufferLimit ? await WaitToSendAsync(function, timeout, cancellationToken).ConfigureAwait(false) : null;
        var id = (uint)Interlocked.Increment(ref _nextId);
        var frame = BuildRequest(id, function, state, writeKwargs, admission, window);

        var stream = new ReceivingStream(this, id, function, window);
        lock (_pendingGate)
            (_streams ??= [])[id] = stream;
        var sent = TrySend(frame);
        admission?.Release();
        if (!sent)
        {
            lock (_pendingGate)
                _streams.Remove(id);
            throw ConnectionLost(null);
        }

        if (IsClosed)
            FailPending(null); // the close raced the registration
        return stream;
    }

    /// <summary>An item arrived (read loop): queue it on its stream, or drop it when the stream was given up.</summary>
    /// <exception cref="InvalidDataException">The peer sent more items than it was granted: the connection closes.</exception>
    private void OnStreamItem(uint id, ReceivedFrame frame)
    {
        ReceivingStream? stream;
        lock (_pendingGate)
            stream = _streams?.GetValueOrDefault(id);
        if (stream is null)
        {
            frame.Dispose(); // cancelled here; items already on their way are dropped
            return;
        }

        stream.OnItem(frame);
    }

    /// <summary>A reply for an id that is no call: the end of a stream (its result or error), queued after its items.</summary>
    private bool TryEndStream(uint id, ReceivedFrame frame)
    {
        ReceivingStream? stream;
        lock (_pendingGate)
        {
            if (_streams is null || !_streams.Remove(id, out stream))
                return false;
        }

        stream.OnEnd(frame, null);
        return true;
    }

    /// <summary>The connection closed: every stream ends after the items it already has, with <see cref="PeerConnectionException"/>. Under <see cref="_pendingGate"/>.</summary>
    private void FailStreams(Exception? reason)
    {
        if (_streams is null)
            return;
        foreach (var (_, stream) in _streams)
            stream.OnEnd(default, ConnectionLost(reason));
        _streams.Clear();
    }

    /// <summary>The consumer gave up on a stream before its end: forget it and tell the peer to stop.</summary>
    private void AbandonStream(uint id)
    {
        bool running;
        lock (_pendingGate)
            running = _streams is not null && _streams.Remove(id);
        if (running)
            TrySend(id, static (ref MessagePackWriter w, uint i) => Messages.WriteCancel(ref w, i), int.MaxValue);
    }

    /// <summary>
    /// The items of one stream as they arrive: at most the window of them wait here (each counted against
    /// <see cref="NodeOptions.MaxBufferedBytesPerConnection"/> until read), then the end. The consumer grants more
    /// credit each time it has read half a window.
    /// </summary>
    /// <remarks>The read loop calls <see cref="OnItem"/> and <see cref="OnEnd"/>; one consumer at a time calls the rest.</remarks>
    internal sealed class ReceivingStream(ClientConnection owner, uint id, string function, int window) : IDisposable
    {
        private readonly object _gate = new();
        private readonly Queue<ReceivedFrame> _items = new();
        private readonly int _creditBatch = Math.Max(1, window / 2);
        private int _allowance = window; // items the peer may still send before more credit
        private int _readSinceCredit;
        private long _read; // items read in all: grants fall on every half window read, whatever went out before a wait
        private ReceivedFrame _end;
        private Exception? _lost;
        private bool _ended;
        private bool _disposed;
        private TaskCompletionSource? _arrived;

        public string Function => function;

        /// <summary>Items received and not yet read.</summary>
        public int Waiting
        {
            get
            {
                lock (_gate)
                    return _items.Count;
            }
        }

        public void OnItem(ReceivedFrame frame)
        {
            TaskCompletionSource? arrived;
            lock (_gate)
            {
                if (_disposed || _ended)
                {
                    frame.Dispose();
                    return;
                }

                if (_allowance == 0)
                {
                    frame.Dispose();
                    throw new InvalidDataException($"Peer sent more items of '{function}' (stream {id}) than the window it was granted ({_creditBatch * 2} at most).");
                }

                _allowance--;
                _items.Enqueue(frame);
                owner.HoldReceived(frame.Length);
                (arrived, _arrived) = (_arrived, null);
            }

            arrived?.TrySetResult();
        }

        /// <summary>The stream's reply frame (<paramref name="lost"/> null), or the connection's loss.</summary>
        public void OnEnd(ReceivedFrame end, Exception? lost)
        {
            TaskCompletionSource? arrived;
            lock (_gate)
            {
                if (_disposed || _ended)
                {
                    end.Dispose();
                    return;
                }

                (_ended, _end, _lost) = (true, end, lost);
                (arrived, _arrived) = (_arrived, null);
            }

            arrived?.TrySetResult();
        }

        /// <summary>
        /// The next item's frame (the caller disposes it), or null at the end. Waits at most <paramref name="timeout"/> for it.
        /// </summary>
        /// <exception cref="RemoteException">The producer failed after the items already read.</exception>
        /// <exception cref="PeerConnectionException">The connection dropped.</exception>
        /// <exception cref="TimeoutException">No item or end within <paramref name="timeout"/>; the stream is cancelled on the peer.</exception>
        /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired; the stream is cancelled on the peer.</exception>
        public async ValueTask<ReceivedFrame?> NextAsync(TimeSpan timeout, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested(); // even with items waiting: a cancelled reader stops now
            while (true)
            {
                Task arrived;
                lock (_gate)
                {
                    ObjectDisposedException.ThrowIf(_disposed, this);
                    if (_items.TryDequeue(out var item))
                        return Take(item);
                    if (_ended)
                        return End();
                    // The peer may run a smaller window than ours (it takes the smaller of the two, and we cannot see
                    // which): credit held back for a batch could be what it waits for, so it goes out before we wait.
                    SendCredit();
                    arrived = (_arrived ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
                }

                try
                {
                    await arrived.WaitAsync(Waitable(timeout), owner.Clock, cancellationToken).ConfigureAwait(false); // the node's clock, as for requests
                }
                catch (TimeoutException)
                {
                    Dispose();
                    throw new TimeoutException($"Peer '{owner._peerName}' sent no item of '{function}' within {timeout.TotalMilliseconds:0} ms (NodeOptions.RequestTimeout); the stream was cancelled there.");
                }
            }
        }

        /// <summary>
        /// Hands out a received item (under <see cref="_gate"/>), granting the peer what was read at each half window read,
        /// so a reader that pauses there leaves the producer a whole window ahead.
        /// </summary>
        private ReceivedFrame Take(ReceivedFrame item)
        {
            owner.ReleaseReceived(item.Length);
            _readSinceCredit++;
            if (++_read % _creditBatch == 0)
                SendCredit();
            return item;
        }

        /// <summary>Grants the peer the items read since the last grant, if any (under <see cref="_gate"/>).</summary>
        private void SendCredit()
        {
            if (_readSinceCredit == 0)
                return;
            var credit = _readSinceCredit;
            _readSinceCredit = 0;
            _allowance += credit;
            owner.TrySend((id, credit), static (ref MessagePackWriter w, (uint Id, int Items) c) => StreamMessages.WriteCredit(ref w, c.Id, c.Items), int.MaxValue);
        }

        /// <summary>Reads the end: nothing more (a result), or the error it carries.</summary>
        private ReceivedFrame? End()
        {
            if (_lost is not null)
                throw _lost;
            var end = _end;
            _end = default;
            using (end)
                owner.ReadReply(end, function, s_ignoreEnd);
            return null;
        }

        /// <summary>Reads an item from its frame (and disposes the frame).</summary>
        /// <exception cref="P2PException">The item cannot be read as <typeparamref name="TItem"/>.</exception>
        public TItem Read<TItem>(ReceivedFrame frame, ResultReader<TItem> readItem)
        {
            using (frame)
            {
                try
                {
                    var reader = new MessagePackReader(frame.Payload);
                    reader.ReadArrayHeader();
                    reader.ReadInt32();
                    reader.ReadUInt32();
                    return readItem(ref reader, owner._options);
                }
                catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException or ArgumentException or OverflowException or InsufficientExecutionStackException)
                {
                    throw new P2PException($"Peer '{owner._peerName}' sent an item of '{function}' that cannot be read: {e.Message}", e);
                }
            }
        }

        /// <summary>Ends the stream here: a stream still running is cancelled on the peer, and items not read are dropped.</summary>
        public void Dispose()
        {
            lock (_gate)
            {
                if (_disposed)
                    return;
                _disposed = true;
                while (_items.TryDequeue(out var item))
                {
                    owner.ReleaseReceived(item.Length);
                    item.Dispose();
                }

                _end.Dispose();
                _end = default;
                _arrived?.TrySetResult();
            }

            owner.AbandonStream(id);
        }
    }
}
