using System.Net.Security;
using System.Net.Sockets;
using MessagePack;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.Server;

/// <summary>What a server connection needs from its node.</summary>
internal interface IRequestHost
{
    Hello LocalHello { get; }
    MessagePackSerializerOptions SerializerOptions { get; }
    int MaxConcurrentRequests { get; }
    ILogger Logger { get; }

    /// <summary>The node-wide cap on what running requests hold.</summary>
    WorkInFlight WorkInFlight { get; }

    /// <summary>The node's options (buffer limits and timeouts).</summary>
    NodeOptions Options { get; }

    /// <summary>Finds the dispatcher serving a function, or null.</summary>
    IServiceDispatcher? FindFunction(string function);

    /// <summary>The node's TLS side in secure mode (issue 10); null for an open node.</summary>
    Security.TlsChannel? Tls => null;
    /// <summary>The functions served, for XML-RPC introspection (<c>system.listMethods</c>).</summary>
    IReadOnlyList<FunctionDescriptor> Functions { get; }

    /// <summary>The node's events (issue 14); null where events are not served.</summary>
    IEventSink? Events => null;
}

/// <summary>
/// The serving side of one incoming connection: expects a hello first, then runs each request on the thread pool
/// with its own cancellation token, and answers with a result or an error frame. A frame it cannot parse closes the
/// connection; nothing a peer sends can fault the node.
/// </summary>
/// <remarks>
/// Per request the connection allocates only a <see cref="CancellationTokenSource"/> (handlers may keep its token,
/// so it is not reused); the work items are pooled, and short function names are read through a small cache.
/// A request holds its concurrency slot until its reply is written, not merely queued, and its frame's bytes count
/// against the connection's buffer limit while it runs (see <see cref="FramedConnection"/>), so a caller that does
/// not read its replies is throttled, then closed (issue 8).
/// </remarks>
internal sealed partial class ServerConnection : FramedConnection
{
    private const int MaxPooledWork = 256;
    private const int FunctionNameCacheSize = 8;

    /// <summary>Longer names are not cached: a cache entry lives as long as the connection (issue 8).</summary>
    private const int MaxCachedFunctionNameBytes = 128;
    private readonly IRequestHost _host;
    private readonly object _runningGate = new();
    private readonly Dictionary<uint, RequestWork> _running = [];
    private readonly Stack<RequestWork> _workPool = new();
    private readonly (byte[] Utf8, string Name)[] _functionNames = new (byte[], string)[FunctionNameCacheSize];
    private int _nextFunctionName;
    private readonly (IServiceDispatcher? Dispatcher, string? Function, bool Inline)[] _inlineFunctions = new (IServiceDispatcher?, string?, bool)[FunctionNameCacheSize];
    private int _nextInlineFunction;
    private volatile bool _shuttingDown;
    private volatile bool _draining;
    private volatile bool _inputEnded;
    private volatile bool _refused;
    private int _runningCount;
    private int _repliesInTransit; // replies of running requests queued or being written (see Accept's busy check)
    private TaskCompletionSource? _drained;
    private readonly System.Net.IPEndPoint? _remoteEndPoint;
    private CallContext _context = null!;

    public ServerConnection(Socket socket, IRequestHost host, int maxFrameSize)
        : base(socket, OpenStream(socket, host), maxFrameSize, host.Options.MaxBufferedBytesPerConnection, host.Options.TimeProvider)
    {
        _host = host;
        _remoteEndPoint = socket.RemoteEndPoint as System.Net.IPEndPoint;
        OpenedTicks = LastFrameTicks;
        LastUsefulTicks = OpenedTicks;
        StartLoops();
    }

    private static Stream OpenStream(Socket socket, IRequestHost host)
    {
        var stream = new NetworkStream(socket, ownsSocket: true);
        return host.Tls is null ? stream : new SslStream(stream, leaveInnerStreamOpen: false);
    }

    /// <summary>
    /// The caller's verified id (its certificate key's <see cref="NodeIdentity.Id"/>) once the TLS handshake is done;
    /// null on an open node. Handlers get it as CallContext.PeerId.
    /// </summary>
    public string? PeerId { get; private set; }

    /// <summary>
    /// Secure mode: a caller that starts with anything but a TLS handshake record (an open node's hello) gets a clear
    /// plaintext refusal; otherwise the TLS handshake runs, and the caller's certificate is checked, before any frame
    /// is read. <see cref="NodeOptions.HandshakeTimeout"/> and the connection table apply, since <see cref="Peer"/>
    /// stays null until the hello.
    /// </summary>
    protected override async ValueTask BeforeReadingAsync()
    {
        if (Stream is not SslStream ssl)
            return;
        var first = new byte[1];
        if (await Socket.ReceiveAsync(first, SocketFlags.Peek).ConfigureAwait(false) == 0)
            throw new IOException("The caller closed before its TLS handshake.");
        if (first[0] != Security.TlsChannel.HandshakeRecord)
        {
            _refused = true;
            RefusePlaintext();
            // Read what the caller sent (its hello) before closing, or the close becomes a reset that discards the refusal.
            var sink = new byte[1024];
            using var linger = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                for (var drained = 0; drained < 64 * 1024;)
                {
                    var read = await Socket.ReceiveAsync(sink, SocketFlags.None, linger.Token).ConfigureAwait(false);
                    if (read == 0)
                        break;
                    drained += read;
                }
            }
            catch (OperationCanceledException)
            {
            }

            throw new PeerAuthenticationException($"A caller at {RemoteEndPoint} sent plaintext to this secure node (an open node, or garbage); refused.");
        }

        PeerId = await _host.Tls!.AuthenticateAsServerAsync(ssl, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Tells an open caller, in plaintext (PROTOCOL.md: an error with id 0 before any hello), that this node is secure.</summary>
    private void RefusePlaintext()
    {
        using var frame = new FrameBuffer(160);
        var writer = new MessagePackWriter(frame);
        Messages.WriteRefusal(ref writer, ErrorCode.BadRequest, Messages.AuthenticationRequiredType,
            $"Node '{_host.LocalHello.Name}' runs in secure mode and takes TLS connections from trusted nodes only; give this node the same NodeSecurity.");
        writer.Flush();
        frame.Complete(int.MaxValue);
        try
        {
            Socket.Send(frame.Frame.Span, SocketFlags.None);
            Socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
        }
    }

    /// <summary>The caller's hello, once it arrived.</summary>
    public Hello? Peer { get; private set; }

    public int RunningCount => Volatile.Read(ref _runningCount);

    /// <summary>When the connection was accepted (a timestamp of <see cref="FramedConnection.Clock"/>).</summary>
    public long OpenedTicks { get; }

    /// <summary>
    /// When the caller last did something useful (a timestamp of <see cref="FramedConnection.Clock"/>): its hello, or a request for a
    /// function this node serves. Cancels and refused requests do not count, so tiny frames cannot keep a slot
    /// "active" (issue 8); eviction and idle reaping go by this.
    /// </summary>
    public long LastUsefulTicks { get; private set; }

    /// <summary>Only this request is running: write its reply at once (see <see cref="FramedConnection.SendInline"/>).</summary>
    protected override bool SendInline => RunningCount <= 1 && !IsStreaming; // items batch in the write loop (ServerConnection.Streams.cs)

    protected override void OnFrame(ReceivedFrame frame)
    {
        var handedOff = false;
        try
        {
            var reader = new MessagePackReader(frame.Payload);
            var kind = Messages.ReadKind(ref reader, out var count);
            if (Peer is null)
            {
                if (_refused)
                    return; // a refusal is being flushed; whatever follows is dropped
                if (kind != MessageKind.Hello)
                    throw new InvalidDataException("The first frame on a connection must be a hello.");
                Hello hello;
                try
                {
                    hello = Messages.ReadHello(ref reader, count);
                }
                catch (BadHelloException e)
                {
                    RefuseHello(e.Message);
                    return;
                }

                Peer = hello;
                _context = new CallContext(hello.Name, hello.InstanceId, _remoteEndPoint, PeerId); // PeerId: verified by the TLS handshake, before any frame
                LastUsefulTicks = LastFrameTicks;
                AcceptFullFrames();
                TrySend(_host.LocalHello, static (ref MessagePackWriter w, Hello h) => Messages.WriteHello(ref w, h), int.MaxValue);
                if (hello.AcceptsEvents)
                    _host.Events?.Attach(this); // sends this node's topics, after the hello (ServerConnection.Events.cs)
                return;
            }

            switch (kind)
            {
                case MessageKind.Request:
                case MessageKind.StreamRequest: // ServerConnection.Streams.cs
                    var streamed = kind == MessageKind.StreamRequest;
                    var id = streamed ? StreamMessages.ReadRequestId(ref reader, count) : Messages.ReadRequestId(ref reader, count);
                    var function = ReadFunctionName(ref reader);
                    var kwargsStart = (int)reader.Consumed;
                    // Before any work is queued: the kwargs value is whole, within the decode budget, and UTF-8 (issue 8).
                    var problem = MessagePackValues.Scan(ref reader, UntrustedInputSecurity.MaxElementsOf(_host.SerializerOptions), out var elements);
                    if (problem is not null)
                    {
                        SendError(id, ErrorCode.InvalidKwargs, nameof(InvalidKwargsException), $"The kwargs of '{function}' are refused: {problem}.");
                        return;
                    }

                    var kwargsEnd = (int)reader.Consumed;
                    var window = streamed ? StreamMessages.ReadWindow(ref reader) : 0;
                    var extrasStart = (int)reader.Consumed; // a stream request's window comes between the kwargs and the extras
                    Messages.SkipRequestExtras(ref reader, streamed ? count - 1 : count);
                    if (reader.Consumed != frame.Length)
                        throw new InvalidDataException("Bytes follow the request's kwargs.");
                    handedOff = Accept(id, function, frame, kwargsStart, kwargsEnd, extrasStart, elements, window);
                    return;
                case MessageKind.StreamCredit:
                    OnCredit(ref reader, count, frame.Length);
                    return;
                case MessageKind.Cancel:
                    var cancelId = Messages.ReadCancelId(ref reader, count);
                    if (reader.Consumed != frame.Length)
                        throw new InvalidDataException("Bytes follow the cancel.");
                    CancellationTokenSource? cts = null;
                    lock (_runningGate)
                    {
                        if (_running.TryGetValue(cancelId, out var running))
                            cts = running.Cancellation;
                    }

                    // Outside the lock: cancelling runs the handler's callbacks.
                    if (cts is not null)
                        TryCancel(cts);
                    return;
                case MessageKind.Event:
                    OnEvent(ref reader, count, frame); // ServerConnection.Events.cs
                    return;
                default:
                    throw new InvalidDataException($"A client does not send {kind} messages.");
            }
        }
        finally
        {
            if (!handedOff)
                frame.Dispose();
        }
    }

    /// <summary>Queues a request; returns true when the work item took ownership of the frame.</summary>
    /// <remarks>A <paramref name="window"/> above 0 makes it a stream request (ServerConnection.Streams.cs).</remarks>
    private bool Accept(uint id, string function, ReceivedFrame frame, int kwargsStart, int kwargsEnd, int extrasStart, int elements, uint window = 0)
    {
        if (_draining)
        {
            RpcMetrics.RequestRefused("shutting_down");
            SendError(id, ErrorCode.ShuttingDown, "ShuttingDown", "The node is shutting down.");
            return false;
        }

        var dispatcher = _host.FindFunction(function);
        if (dispatcher is null)
        {
            RpcMetrics.RequestRefused("method_not_found");
            SendError(id, ErrorCode.MethodNotFound, "MethodNotFound", $"Node '{_host.LocalHello.Name}' has no function '{function}'.");
            return false;
        }

        if (window > 0 && !StreamsOf(dispatcher, function))
        {
            SendError(id, ErrorCode.MethodNotFound, "MethodNotFound", $"Node '{_host.LocalHello.Name}' has a function '{function}', but it returns one result, not a stream: call it with RequestAsync.");
            return false;
        }

        // A request whose reply is already on its way holds its slot (and its bytes, under MaxBufferedBytesPerConnection)
        // until the reply is written, but no longer counts against the concurrency limit: the caller may read that reply
        // and send its next request before this side has seen its write complete, and must not be told busy for it.
        if (Interlocked.Increment(ref _runningCount) - Volatile.Read(ref _repliesInTransit) > _host.MaxConcurrentRequests)
        {
            Finish();
            RpcMetrics.RequestRefused("busy");
            SendError(id, ErrorCode.Busy, "Busy", $"Node '{_host.LocalHello.Name}' already runs {_host.MaxConcurrentRequests} requests from this connection.");
            return false;
        }

        if (!_host.WorkInFlight.TryTake(elements, frame.Length))
        {
            Finish();
            SendError(id, ErrorCode.Busy, "Busy", $"Node '{_host.LocalHello.Name}' is at its cap on work in flight across all running requests (NodeOptions.MaxKwargsElementsInFlight {_host.WorkInFlight.MaxElements} kwargs values, MaxRequestBytesInFlight {_host.WorkInFlight.MaxBytes} bytes); try again later.");
            return false;
        }

        var inline = RunsInline(dispatcher, function);
        var cts = new CancellationTokenSource();
        RequestWork? work;
        lock (_runningGate)
        {
            if (_running.ContainsKey(id))
            {
                cts.Dispose();
                _host.WorkInFlight.Give(elements, frame.Length);
                Finish();
                throw new InvalidDataException($"Request id {id} is already running.");
            }

            if (!_workPool.TryPop(out work))
                work = new RequestWork(this);
            dispatcher = ObservedDispatcher.Wrap(dispatcher, frame.Payload[extrasStart..], Peer?.Name ?? "");
            work.Start(id, function, frame, kwargsStart, kwargsEnd, elements, dispatcher, cts);
            work.Stream = window > 0 ? StartStream(id, window) : null;
            _running.Add(id, work);
        }

        LastUsefulTicks = LastFrameTicks;
        HoldReceived(frame.Length);
        // A close that began before the request was registered did not see it: it starts cancelled, as it would have
        // with a token linked to the connection's shutdown.
        if (_shuttingDown)
            TryCancel(cts);
        // An inline function (P2PFunctionAttribute.Inline, issue 16) runs here, its reply gathered with the others
        // of this read; every other one runs on the pool, so a handler that blocks never holds up its neighbours.
        if (inline)
            work.Execute();
        else
            ThreadPool.UnsafeQueueUserWorkItem(work, preferLocal: false);
        return true;
    }

    /// <summary>Whether <paramref name="function"/> of <paramref name="dispatcher"/> opted in to run on the read loop.</summary>
    /// <remarks>Read loop only. Cached by reference: the function name cache hands out the same string for a repeated name.</remarks>
    private bool RunsInline(IServiceDispatcher dispatcher, string function)
    {
        foreach (var (cachedDispatcher, cachedFunction, inline) in _inlineFunctions)
        {
            if (ReferenceEquals(cachedDispatcher, dispatcher) && ReferenceEquals(cachedFunction, function))
                return inline;
        }

        var runsInline = false;
        foreach (var descriptor in dispatcher.Functions)
        {
            if (descriptor.Name == function)
            {
                runsInline = descriptor.RunsInline && !descriptor.IsStream; // a producer runs on, so never on the read loop
                break;
            }
        }

        _inlineFunctions[_nextInlineFunction++ % FunctionNameCacheSize] = (dispatcher, function, runsInline);
        return runsInline;
    }

    /// <summary>Reads a function name, reusing the string when the same name came before on this connection.</summary>
    /// <remarks>Read loop only. A peer that sends many different names just cycles the small cache.</remarks>
    private string ReadFunctionName(ref MessagePackReader reader)
    {
        if (reader.IsNil || !reader.TryReadStringSpan(out var utf8))
            return reader.ReadString() ?? "";
        foreach (var (cachedUtf8, name) in _functionNames)
        {
            if (cachedUtf8 is not null && utf8.SequenceEqual(cachedUtf8))
                return name;
        }

        var read = System.Text.Encoding.UTF8.GetString(utf8);
        if (utf8.Length <= MaxCachedFunctionNameBytes)
            _functionNames[_nextFunctionName++ % FunctionNameCacheSize] = (utf8.ToArray(), read);
        return read;
    }

    /// <summary>
    /// Forgets a request's id before its reply is sent: a caller may reuse the id as soon as the reply arrives, and must
    /// not find the connection closed as if it sent a duplicate (PROTOCOL.md, request ids). Removes by (id, work), so a
    /// newer request that reused the id is never forgotten in its place.
    /// </summary>
    private void Forget(uint id, RequestWork work)
    {
        lock (_runningGate)
            ForgetLocked(id, work);
    }

    private void ForgetLocked(uint id, RequestWork work)
    {
        if (_running.TryGetValue(id, out var running) && ReferenceEquals(running, work))
            _running.Remove(id);
    }

    /// <summary>A running request's reply is about to be queued: forget its id and count the reply as in transit until written.</summary>
    private void BeginReply(uint id, RequestWork work)
    {
        Forget(id, work);
        Interlocked.Increment(ref _repliesInTransit);
    }

    /// <summary>Pools a finished request's work item (its id was forgotten before its reply). Its slot is freed when its reply is written (<see cref="OnRequestSlotsFreed"/>).</summary>
    private void Complete(RequestWork work, uint id, int requestBytes)
    {
        lock (_runningGate)
        {
            ForgetLocked(id, work); // a path that sent no reply
            if (_workPool.Count < MaxPooledWork)
                _workPool.Push(work);
        }

        ReleaseReceived(requestBytes);
    }

    /// <summary>Replies were written or dropped: their requests' slots are free.</summary>
    protected override void OnRequestSlotsFreed(int count)
    {
        Interlocked.Add(ref _repliesInTransit, -count);
        Finish(count);
    }

    /// <summary>Fires the token of every running request (shutdown, or nobody left to read the replies).</summary>
    private void CancelRunning()
    {
        _shuttingDown = true;
        List<CancellationTokenSource> running;
        lock (_runningGate)
        {
            running = new List<CancellationTokenSource>(_running.Count);
            foreach (var (_, work) in _running)
                running.Add(work.Cancellation);
        }

        foreach (var cts in running)
            TryCancel(cts);
    }

    /// <summary>One request on the thread pool; pooled per connection, one request at a time.</summary>
    private sealed class RequestWork(ServerConnection owner) : IThreadPoolWorkItem
    {
        private uint _id;
        private string _function = "";
        private ReceivedFrame _frame;
        private int _kwargsStart;
        private int _kwargsEnd;
        private int _elements;
        private IServiceDispatcher _dispatcher = null!;

        public CancellationTokenSource Cancellation { get; private set; } = null!;

        /// <summary>Where a stream request's items go (null for a plain request); set by the read loop before the work is queued.</summary>
        public ItemSink? Stream { get; set; }

        public void Start(uint id, string function, ReceivedFrame frame, int kwargsStart, int kwargsEnd, int elements, IServiceDispatcher dispatcher, CancellationTokenSource cancellation)
        {
            _kwargsEnd = kwargsEnd;
            _id = id;
            _function = function;
            _frame = frame;
            _kwargsStart = kwargsStart;
            _elements = elements;
            _dispatcher = dispatcher;
            Cancellation = cancellation;
        }

        public void Execute() => _ = RunAsync();

        /// <remarks>A handler that completes synchronously costs no task here; an async one costs its state machine.</remarks>
        private async Task RunAsync()
        {
            // Copy the fields: once Complete pools this item, the read loop may start it again.
            var (id, function, frame, kwargsStart, kwargsEnd, elements, dispatcher, cts, stream) = (_id, _function, _frame, _kwargsStart, _kwargsEnd, _elements, _dispatcher, Cancellation, Stream);
            var response = new FrameBuffer(256);
            try
            {
                WriteResultHeader(response, id);
                var call = new FunctionCall(function, frame.Payload[kwargsStart..kwargsEnd], response, owner._host.SerializerOptions, owner._context, cts.Token, stream);
                await dispatcher.InvokeAsync(call).ConfigureAwait(false);
                response.Complete(owner.MaxSendFrameSize);
                response.HoldsRequestSlot = true;
                owner.BeginReply(id, this);
                owner.TrySend(response);
                response = null;
            }
            catch (Exception e)
            {
                var (code, type, message) = WireErrors.FromException(e, function, cts.Token);
                if (code == ErrorCode.FrameTooLarge)
                    RpcMetrics.RequestRefused("too_large");
                else if (code == ErrorCode.HandlerFailed)
                    owner._host.Logger.RequestFailed(function, owner.Peer?.Name, e);
                owner.BeginReply(id, this);
                owner.SendError(id, code, type, message, holdsSlot: true);
            }
            finally
            {
                response?.Dispose();
                owner._host.WorkInFlight.Give(elements, frame.Length);
                frame.Dispose();
                _frame = default;
                _dispatcher = null!;
                Stream = null;
                if (stream is not null)
                    owner.EndStream();
                cts.Dispose();
                owner.Complete(this, id, frame.Length);
            }
        }

        private static void WriteResultHeader(FrameBuffer response, uint id)
        {
            var writer = new MessagePackWriter(response);
            Messages.WriteResultHeader(ref writer, id);
            writer.Flush();
        }
    }

    /// <summary>The caller's frame limit bounds what we send it.</summary>
    private int MaxSendFrameSize => Math.Min(MaxReceiveFrameSize, Peer?.MaxFrameSize is > 0 and var max ? max : MaxReceiveFrameSize);

    /// <summary>Sends an error cut to fit the caller's frame limit, so the caller gets it and keeps its connection (issue 8, item 10).</summary>
    /// <remarks>With <c>holdsSlot</c>, the reply of a running request: it keeps the request's slot until written.</remarks>
    private void SendError(uint id, ErrorCode code, string type, string message, bool holdsSlot = false)
    {
        var max = Math.Max(MaxSendFrameSize, Messages.ErrorFrameOverhead); // an absurdly small limit still gets a bare error
        TrySend((id, code, type, message, max), static (ref MessagePackWriter w, (uint Id, ErrorCode Code, string Type, string Message, int Max) e) =>
            Messages.WriteError(ref w, e.Id, e.Code, e.Type, e.Message, e.Max), max, holdsSlot);
    }

    private void Finish(int count = 1)
    {
        if (Interlocked.Add(ref _runningCount, -count) != 0)
            return;
        if (_draining)
            _drained?.TrySetResult();
        if (_inputEnded)
            _ = CloseAfterFlushAsync(_host.Options.StalledConnectionTimeout); // half-closed: the last reply is written
    }

    /// <summary>
    /// A caller that half-closes after its requests still gets its replies: the connection closes once the last one is
    /// written (at once when nothing runs).
    /// </summary>
    protected override void OnInputCompleted()
    {
        if (_refused)
            return; // the refusal's flush closes it
        _inputEnded = true;
        Interlocked.MemoryBarrier(); // Dekker with Finish: one of the two sees the other and closes
        if (Peer is null || RunningCount == 0)
            _ = CloseAfterFlushAsync(_host.Options.StalledConnectionTimeout);
    }

    /// <summary>Answers an unacceptable hello with a BadHello error (PROTOCOL.md), then closes once it is written.</summary>
    private void RefuseHello(string reason)
    {
        _refused = true;
        _host.Logger.HelloRefused(RemoteEndPoint, reason);
        TrySend(reason, static (ref MessagePackWriter w, string r) => Messages.WriteRefusal(ref w, ErrorCode.BadRequest, Messages.BadHelloType, r), int.MaxValue);
        _ = CloseAfterFlushAsync(TimeSpan.FromSeconds(1));
    }

    private static void TryCancel(CancellationTokenSource cts)
    {
        try
        {
            cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The request finished while the cancel was on its way.
        }
    }

    /// <summary>
    /// Stops taking requests, lets running ones finish for up to <paramref name="grace"/>, cancels the rest,
    /// then closes once their replies are written.
    /// </summary>
    public async Task DrainAsync(TimeSpan grace)
    {
        _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _draining = true;
        if (RunningCount > 0 && !await CompletesWithinAsync(_drained.Task, grace).ConfigureAwait(false))
        {
            CancelRunning();
            await CompletesWithinAsync(_drained.Task, TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        }

        await CloseAfterFlushAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        await DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Waits for a task that never faults, up to a timeout; unlike WhenAny with Task.Delay, no timer outlives it.</summary>
    internal static async Task<bool> CompletesWithinAsync(Task task, TimeSpan timeout)
    {
        try
        {
            await task.WaitAsync(timeout).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    protected override void OnClosed(Exception? reason)
    {
        if (reason is not null and not IOException and not SocketException and not OperationCanceledException)
            _host.Logger.HostileInputRejected(RemoteEndPoint, reason);
        // Nobody is left to read the replies: stop the handlers.
        CancelRunning();
        _host.Events?.Detach(this);
    }
}
