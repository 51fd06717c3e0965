using System.Net;
using System.Runtime.CompilerServices;
using System.Net.Sockets;
using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Transport;

/// <summary>
/// The calling side of one connection to a peer: multiplexes any number of requests, each with its own id, and
/// completes them in whatever order replies arrive. Cancellation and timeouts are forwarded to the peer.
/// </summary>
/// <remarks>
/// Thread-safe: any number of callers may invoke at once. Each call waits on a pooled <see cref="PendingCall"/>;
/// replies, timeouts and a lost connection complete it under <see cref="_pendingGate"/>, so a call is never
/// completed after its caller has returned it to the pool. Timeouts run on one timer per connection
/// (ClientConnection.Deadlines.cs).
/// </remarks>
internal sealed partial class ClientConnection : FramedConnection
{
    private const int MaxPooledCalls = 1024;
    /// <summary>
    /// The longest timeout a wait on the clock takes at once on every runtime this library targets (int.MaxValue ms, about
    /// 24.8 days: <c>Task.WaitAsync</c>'s bound on .NET 8); see <see cref="Waitable"/>. The deadline timer has its own, longer
    /// bound (<c>s_longestTimerWait</c>).
    /// </summary>
    private static readonly TimeSpan s_longestWait = TimeSpan.FromMilliseconds(int.MaxValue);
    private readonly object _pendingGate = new();
    private readonly Dictionary<uint, Waiting> _pending = [];
    private readonly Stack<PendingCall> _pool = new();
    private readonly TaskCompletionSource<Hello> _hello = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly MessagePackSerializerOptions _options;
    private readonly string _peerName;
    private int _nextId;
    private SemaphoreSlim? _sendAdmission;
    private int _maxSendFrameSize;

    private ClientConnection(Socket socket, Stream stream, string peerName, int maxFrameSize, MessagePackSerializerOptions options, long maxBufferedBytes, TimeProvider clock)
        : base(socket, stream, maxFrameSize, maxBufferedBytes, clock)
    {
        LastUsedTicks = Clock.GetTimestamp();
        _peerName = peerName;
        _options = options;
        _maxSendFrameSize = maxFrameSize;
    }

    public int PendingCount
    {
        get
        {
            lock (_pendingGate)
                return _pending.Count + StreamCount; // a stream is pending until it ends
        }
    }

    /// <summary>Calls kept for reuse; a test hook (each call goes back once it ends, none after the close).</summary>
    internal int PooledCalls
    {
        get
        {
            lock (_pendingGate)
                return _pool.Count;
        }
    }

    /// <summary>The socket under the stream; a test hook (the connection must close it).</summary>
    internal Socket DialedSocket => Socket;

    /// <summary>When a call was last made (a timestamp of <see cref="FramedConnection.Clock"/>).</summary>
    public long LastUsedTicks { get; private set; }

    /// <summary>The peer's hello.</summary>
    public Hello PeerHello { get; private set; }

    /// <summary>The peer's verified id in secure mode (issue 10); null over an open connection.</summary>
    public string? PeerId { get; private set; }

    /// <summary>
    /// Connects, exchanges hellos, and checks that the peer is the instance expected (when one is given).
    /// </summary>
    /// <exception cref="PeerConnectionException">The peer cannot be reached, does not answer, is another instance, or refused the hello.</exception>
    /// <exception cref="PeerBusyException">The peer is full: it refused the connection and said so.</exception>
    public static Task<ClientConnection> ConnectAsync(IPEndPoint endPoint, string peerName, string? expectedInstance,
        Hello localHello, MessagePackSerializerOptions options, TimeSpan timeout, CancellationToken cancellationToken) =>
        ConnectAsync(endPoint, peerName, expectedInstance, localHello, options, timeout, NodeOptions.DefaultMaxBufferedBytesPerConnection, cancellationToken);

    /// <inheritdoc cref="ConnectAsync(IPEndPoint, string, string?, Hello, MessagePackSerializerOptions, TimeSpan, CancellationToken)"/>
    /// <remarks>Above <c>maxBufferedBytes</c> of requests waiting to be sent, new calls wait (the peer is not reading).</remarks>
    public static Task<ClientConnection> ConnectAsync(IPEndPoint endPoint, string peerName, string? expectedInstance,
        Hello localHello, MessagePackSerializerOptions options, TimeSpan timeout, long maxBufferedBytes, CancellationToken cancellationToken) =>
        ConnectAsync(endPoint, peerName, expectedInstance, localHello, options, timeout, maxBufferedBytes, null, null, cancellationToken);

    /// <inheritdoc cref="ConnectAsync(IPEndPoint, string, string?, Hello, MessagePackSerializerOptions, TimeSpan, CancellationToken)"/>
    /// <remarks>
    /// With <paramref name="tls"/> (secure mode, issue 10) the TLS handshake runs first, inside <paramref name="timeout"/>, and the
    /// peer must be trusted and, when <paramref name="expectedPeerId"/> is given, be that id; else
    /// <see cref="PeerAuthenticationException"/>.
    /// </remarks>
    public static Task<ClientConnection> ConnectAsync(IPEndPoint endPoint, string peerName, string? expectedInstance,
        Hello localHello, MessagePackSerializerOptions options, TimeSpan timeout, long maxBufferedBytes,
        Security.TlsChannel? tls, string? expectedPeerId, CancellationToken cancellationToken) =>
        ConnectAsync(endPoint, peerName, expectedInstance, localHello, options, timeout, maxBufferedBytes, tls, expectedPeerId, TimeProvider.System, cancellationToken);

    /// <inheritdoc cref="ConnectAsync(IPEndPoint, string, string?, Hello, MessagePackSerializerOptions, TimeSpan, long, Security.TlsChannel?, string?, CancellationToken)"/>
    /// <remarks>Request timeouts and idle times run on <paramref name="clock"/> (the node's <see cref="NodeOptions.TimeProvider"/>).</remarks>
    public static Task<ClientConnection> ConnectAsync(IPEndPoint endPoint, string peerName, string? expectedInstance,
        Hello localHello, MessagePackSerializerOptions options, TimeSpan timeout, long maxBufferedBytes,
        Security.TlsChannel? tls, string? expectedPeerId, TimeProvider clock, CancellationToken cancellationToken) =>
        ConnectAsync(null, endPoint, peerName, expectedInstance, localHello, options, timeout, maxBufferedBytes, tls, expectedPeerId, clock, cancellationToken);

    /// <inheritdoc cref="ConnectAsync(IPEndPoint, string, string?, Hello, MessagePackSerializerOptions, TimeSpan, long, Security.TlsChannel?, string?, TimeProvider, CancellationToken)"/>
    /// <remarks><paramref name="dial"/> opens the stream (null: TCP to <paramref name="endPoint"/>); with a dialer, <paramref name="tls"/> must be null.</remarks>
    public static async Task<ClientConnection> ConnectAsync(PeerDialer? dial, IPEndPoint endPoint, string peerName, string? expectedInstance,
        Hello localHello, MessagePackSerializerOptions options, TimeSpan timeout, long maxBufferedBytes,
        Security.TlsChannel? tls, string? expectedPeerId, TimeProvider clock, CancellationToken cancellationToken)
    {
        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutCts.CancelAfter(timeout);
        Socket? socket = null;
        Stream? stream = null;
        ClientConnection? connection = null;
        try
        {
            string? peerId = null;
            if (dial is not null)
            {
                (socket, stream) = await dial(endPoint, timeoutCts.Token).ConfigureAwait(false);
            }
            else
            {
                socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(endPoint, timeoutCts.Token).ConfigureAwait(false);
                if (tls is null)
                    stream = new NetworkStream(socket, ownsSocket: true);
                else
                    (stream, peerId) = await tls.AuthenticateAsClientAsync(socket, peerName, endPoint, expectedPeerId, timeoutCts.Token).ConfigureAwait(false);
            }

            connection = new ClientConnection(socket, stream, peerName, localHello.MaxFrameSize, options, maxBufferedBytes, clock) { PeerId = peerId, MaxPeerTopics = localHello.MaxPeerTopics };
            connection.StartLoops();
            connection.TrySend(localHello, static (ref MessagePackWriter w, Hello h) => Messages.WriteHello(ref w, h), int.MaxValue);
            var hello = await connection._hello.Task.WaitAsync(timeoutCts.Token).ConfigureAwait(false);
            if (!string.IsNullOrEmpty(expectedInstance) && hello.InstanceId != expectedInstance)
                throw new PeerRestartedException($"Peer '{peerName}' at {endPoint} is now another instance ({hello.InstanceId}, expected {expectedInstance}): it restarted.") { PeerName = peerName };
            connection.PeerHello = hello;
            connection._maxSendFrameSize = Math.Min(localHello.MaxFrameSize, hello.MaxFrameSize); // ReadHello refuses one below MinFrameSize
            return connection;
        }
        catch (Exception e)
        {
            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                // Not a connection yet: the stream (which owns the socket on the TCP path) and the socket go here.
                if (stream is not null)
                    await stream.DisposeAsync().ConfigureAwait(false);
                socket?.Dispose();
            }
            if (e is PeerConnectionException or PeerBusyException or PeerAuthenticationException)
                throw;
            cancellationToken.ThrowIfCancellationRequested();
            var why = e is OperationCanceledException ? $"no answer within {timeout.TotalMilliseconds:0} ms" : e.Message;
            throw new PeerConnectionException($"Cannot connect to peer '{peerName}' at {endPoint}: {why}", e) { PeerName = peerName };
        }
    }

    /// <summary>Sends one request and waits for its reply.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TResult> InvokeAsync<TState, TResult>(string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TResult> readResult, TimeSpan timeout, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var now = Clock.GetTimestamp();
        LastUsedTicks = now;
        // The peer is not reading: wait for room, one caller at a time, so waking callers cannot overshoot the limit.
        var admission = IsOverBufferLimit ? await WaitToSendAsync(function, timeout, cancellationToken).ConfigureAwait(false) : null;
        if (admission is not null)
            now = Clock.GetTimestamp(); // the timeout runs from when the request is let through, as before
        var id = (uint)Interlocked.Increment(ref _nextId);
        var frame = BuildRequest(id, function, state, writeKwargs, admission);
        var pending = Register(id, DeadlineAfter(now, timeout));
        pending.Arm(cancellationToken); // the caller's token only: the deadline is the connection's (Deadlines.cs)
        var sent = TrySend(frame);
        admission?.Release();
        if (!sent)
        {
            lock (_pendingGate)
                _pending.Remove(id);
            Return(pending);
            throw ConnectionLost(null);
        }

        // A close after TrySend fails this call too: it was registered before, and Close marks the connection closed
        // (which TrySend checks) before OnClosed fails what is registered.
        ReceivedFrame response;
        try
        {
            response = await pending.Task.ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Abandon(id);
            throw new TimeoutException($"Peer '{_peerName}' did not answer '{function}' within {timeout.TotalMilliseconds:0} ms; the request was cancelled there.");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Abandon(id);
            throw;
        }
        finally
        {
            Return(pending);
        }

        using (response)
            return ReadReply(response, function, readResult);
    }

    /// <summary>
    /// The peer is not reading our requests: wait for the queue to drain rather than grow it (issue 8). Returns the
    /// admission gate, held; the caller releases it once its request is queued.
    /// </summary>
    private async Task<SemaphoreSlim> WaitToSendAsync(string function, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var gate = LazyInitializer.EnsureInitialized(ref _sendAdmission, static () => new SemaphoreSlim(1, 1));
        // One deadline on the node's clock for both waits, the gate's and the room's (a SemaphoreSlim timeout would run on
        // real time); a timeout longer than a timer takes waits without a bound.
        using var giveUp = Waitable(timeout) == Timeout.InfiniteTimeSpan ? null : new CancellationTokenSource(timeout, Clock);
        using var either = giveUp is null ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, giveUp.Token);
        var token = either?.Token ?? cancellationToken;
        try
        {
            await gate.WaitAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw GaveUp();
        }

        try
        {
            while (IsOverBufferLimit && !IsClosed)
                await WaitForRoomAsync().WaitAsync(token).ConfigureAwait(false);
            return gate;
        }
        catch (Exception e)
        {
            gate.Release();
            if (e is OperationCanceledException)
                throw GaveUp();
            throw;
        }

        // The caller's own token (not the linked one) when the caller gave up, else the deadline passed.
        Exception GaveUp()
        {
            cancellationToken.ThrowIfCancellationRequested();
            return NotRead();
        }

        TimeoutException NotRead() =>
            new($"Peer '{_peerName}' did not read the requests already sent to it ({QueuedSendBytes} bytes waiting), so '{function}' was not sent within {timeout.TotalMilliseconds:0} ms.");
    }

    /// <summary>
    /// <paramref name="timeout"/> as a wait on <see cref="FramedConnection.Clock"/> can take it: one longer than a timer
    /// or semaphore waits at once (about 24.8 days) waits without a bound instead of throwing.
    /// </summary>
    private static TimeSpan Waitable(TimeSpan timeout) => timeout > s_longestWait ? Timeout.InfiniteTimeSpan : timeout;

    /// <summary>Takes a pooled call and makes it the waiter for <paramref name="id"/>, due by <paramref name="deadline"/>: one lock.</summary>
    private PendingCall Register(uint id, long deadline)
    {
        lock (_pendingGate)
        {
            if (!_pool.TryPop(out var pending))
                pending = new PendingCall();
            pending.Reset();
            _pending[id] = new Waiting(pending, deadline);
            WatchDeadlineLocked(deadline);
            return pending;
        }
    }

    private void Return(PendingCall pending)
    {
        pending.Disarm();
        lock (_pendingGate)
        {
            if (_pool.Count < MaxPooledCalls && !IsClosed)
                _pool.Push(pending);
        }
    }

    /// <remarks>
    /// With a <paramref name="window"/> above 0, a stream request (ClientConnection.Streams.cs). When building fails, the
    /// <paramref name="admission"/> gate the caller holds (see <see cref="WaitToSendAsync"/>) is released.
    /// </remarks>
    private FrameBuffer BuildRequest<TState>(uint id, string function, TState state, KwargsWriter<TState> writeKwargs, SemaphoreSlim? admission, int window = 0)
    {
        FrameBuffer? frame = null;
        try
        {
            frame = new FrameBuffer();
            var writer = new MessagePackWriter(frame);
            var traced = RequestExtras.TraceContextFor(PeerHello);
            if (window > 0)
                StreamMessages.WriteRequestHeader(ref writer, id, function, withExtras: traced is not null);
            else
                Messages.WriteRequestHeader(ref writer, id, function, withExtras: traced is not null);
            writeKwargs(ref writer, state, _options);
            if (window > 0)
                StreamMessages.WriteWindow(ref writer, window);
            if (traced is not null)
                RequestExtras.Write(ref writer, traced);
            writer.Flush();
            frame.Complete(_maxSendFrameSize);
            return frame;
        }
        catch (Exception e)
        {
            frame?.Dispose();
            admission?.Release();
            if (e is FrameTooLargeException)
                throw new FrameTooLargeException($"The request to '{_peerName}'.{function} is too large: {e.Message}", e);
            throw;
        }
    }

    private TResult ReadReply<TResult>(ReceivedFrame response, string function, ResultReader<TResult> readResult)
    {
        ErrorCode code;
        string type, message;
        try
        {
            var reader = new MessagePackReader(response.Payload);
            var kind = Messages.ReadKind(ref reader, out var count);
            reader.ReadUInt32();
            if (kind == MessageKind.Result)
                return readResult(ref reader, _options);
            (code, type, message) = Messages.ReadError(ref reader, count);
        }
        catch (Exception e) when (MalformedInput.IsMalformed(e))
        {
            // A malformed reply (MessagePackReader throws ArgumentOutOfRangeException for a 32-bit length >= 2^31).
            throw new P2PException($"Peer '{_peerName}' sent a reply to '{function}' that cannot be read: {e.Message}", e);
        }

        throw WireErrors.ToException(code, type, message, _peerName, function);
    }

    /// <summary>Forgets a request the caller gave up on and tells the peer to cancel it.</summary>
    /// <remarks>The call already completed with the timeout or cancellation, so a reply that races in finds no taker and is disposed.</remarks>
    private void Abandon(uint id)
    {
        lock (_pendingGate)
            _pending.Remove(id);

        TrySend(id, static (ref MessagePackWriter w, uint i) => Messages.WriteCancel(ref w, i), int.MaxValue);
    }

    protected override void OnFrame(ReceivedFrame frame)
    {
        var reader = new MessagePackReader(frame.Payload);
        MessageKind kind;
        uint id;
        try
        {
            kind = Messages.ReadKind(ref reader, out var count);
            if (kind == MessageKind.Hello)
            {
                try
                {
                    _hello.TrySetResult(Messages.ReadHello(ref reader, count));
                }
                catch (BadHelloException e)
                {
                    _hello.TrySetException(new PeerConnectionException($"Peer '{_peerName}' at {RemoteEndPoint} sent a hello this node cannot accept: {e.Message}") { PeerName = _peerName });
                    throw;
                }

                AcceptFullFrames();
                frame.Dispose();
                return;
            }

            if (!_hello.Task.IsCompleted && kind == MessageKind.Error)
            {
                // Refused before the hello (PROTOCOL.md): the node is full, or it did not accept our hello.
                reader.ReadUInt32();
                var (code, type, message) = Messages.ReadError(ref reader, count);
                _hello.TrySetException(code == ErrorCode.Busy
                    ? new PeerBusyException($"Peer '{_peerName}' at {RemoteEndPoint} refused the connection: {message}") { PeerName = _peerName }
                    : type == Messages.AuthenticationRequiredType
                    ? new PeerAuthenticationException($"Peer '{_peerName}' at {RemoteEndPoint} refused this open node: {message}") { PeerName = _peerName }
                    : new PeerConnectionException($"Peer '{_peerName}' at {RemoteEndPoint} refused the connection: {type}: {message}") { PeerName = _peerName });
                frame.Dispose();
                return;
            }

            if (kind == MessageKind.Subscriptions)
            {
                OnSubscriptions(ref reader, count); // ClientConnection.Events.cs
                frame.Dispose();
                return;
            }

            if (kind is not (MessageKind.Result or MessageKind.Error or MessageKind.StreamItem))
                throw new InvalidDataException($"A server does not send {kind} messages.");
            id = reader.ReadUInt32();
        }
        catch
        {
            frame.Dispose();
            throw;
        }

        if (kind == MessageKind.StreamItem)
        {
            OnStreamItem(id, frame);
            return;
        }

        PendingCall? taken = null;
        lock (_pendingGate)
        {
            // Claimed under the lock, so a caller that gave up cannot return it to the pool in between; resumed outside it.
            if (_pending.Remove(id, out var waiting) && waiting.Call.TryTakeResult(frame))
                taken = waiting.Call;
        }

        if (taken is not null)
        {
            taken.Deliver(InlineCompletions);
            return;
        }

        if (TryEndStream(id, frame))
            return;
        frame.Dispose(); // the caller already gave up on it
    }

    protected override void OnClosed(Exception? reason)
    {
        // TLS 1.3: the server checks our certificate after our side of the handshake is done, so its refusal is a
        // close before its hello.
        _hello.TrySetException(PeerId is not null && !_hello.Task.IsCompleted
            ? new PeerAuthenticationException($"Peer '{_peerName}' at {RemoteEndPoint} closed the TLS connection before its hello: it does not trust this node " +
                "(another network key, or this node's id is not pinned there). Give both nodes the same NodeSecurity.", reason) { PeerName = _peerName }
            : ConnectionLost(reason));
        FailPending(reason);
    }

    /// <summary>Resume callers on the read loop (<see cref="NodeOptions.InlineCompletions"/>); set before the first call.</summary>
    public bool InlineCompletions { get; set; }

    /// <summary>Only this call is waiting: write it at once (see <see cref="FramedConnection.SendInline"/>).</summary>
    protected override bool SendInline => _pending.Count <= 1; // a hint: a racy read costs at most one hop or one unbatched write

    private void FailPending(Exception? reason)
    {
        lock (_pendingGate)
        {
            foreach (var (_, waiting) in _pending)
                waiting.Call.TrySetException(ConnectionLost(reason));
            _pending.Clear();
            StopDeadlinesLocked();
            FailStreams(reason);
            _pool.Clear();
        }
    }

    private PeerConnectionException ConnectionLost(Exception? reason) =>
        new($"The connection to peer '{_peerName}' at {RemoteEndPoint} was lost before the reply came.", reason) { PeerName = _peerName };
}
