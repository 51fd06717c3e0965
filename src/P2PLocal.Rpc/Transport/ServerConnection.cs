using System.Net.Sockets;
using MessagePack;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Transport;

/// <summary>What a server connection needs from its node.</summary>
internal interface IRequestHost
{
    Hello LocalHello { get; }
    MessagePackSerializerOptions SerializerOptions { get; }
    int MaxConcurrentRequests { get; }
    ILogger Logger { get; }

    /// <summary>Finds the dispatcher serving a function, or null.</summary>
    IServiceDispatcher? FindFunction(string function);
}

/// <summary>
/// The serving side of one incoming connection: expects a hello first, then runs each request on the thread pool
/// with its own cancellation token, and answers with a result or an error frame. A frame it cannot parse closes the
/// connection; nothing a peer sends can fault the node.
/// </summary>
/// <remarks>
/// Per request the connection allocates only a <see cref="CancellationTokenSource"/> (handlers may keep its token,
/// so it is not reused); the work items are pooled, and function names are read through a small cache.
/// </remarks>
internal sealed class ServerConnection : FramedConnection
{
    private const int MaxPooledWork = 256;
    private const int FunctionNameCacheSize = 8;
    private readonly IRequestHost _host;
    private readonly object _runningGate = new();
    private readonly Dictionary<uint, RequestWork> _running = [];
    private readonly Stack<RequestWork> _workPool = new();
    private readonly (byte[] Utf8, string Name)[] _functionNames = new (byte[], string)[FunctionNameCacheSize];
    private int _nextFunctionName;
    private volatile bool _shuttingDown;
    private volatile bool _draining;
    private int _runningCount;
    private TaskCompletionSource? _drained;

    public ServerConnection(Socket socket, IRequestHost host, int maxFrameSize)
        : base(socket, maxFrameSize)
    {
        _host = host;
        StartLoops();
    }

    /// <summary>The caller's hello, once it arrived.</summary>
    public Hello? Peer { get; private set; }

    public int RunningCount => Volatile.Read(ref _runningCount);

    /// <summary>When the connection was accepted (<see cref="Environment.TickCount64"/>).</summary>
    public long OpenedTicks { get; } = Environment.TickCount64;

    /// <summary>Only this request is running: write its reply at once (see <see cref="FramedConnection.SendInline"/>).</summary>
    protected override bool SendInline => RunningCount <= 1;

    protected override void OnFrame(ReceivedFrame frame)
    {
        var handedOff = false;
        try
        {
            var reader = new MessagePackReader(frame.Payload);
            var kind = Messages.ReadKind(ref reader, out var count);
            if (Peer is null)
            {
                if (kind != MessageKind.Hello)
                    throw new InvalidDataException("The first frame on a connection must be a hello.");
                Peer = Messages.ReadHello(ref reader, count);
                TrySend(_host.LocalHello, static (ref MessagePackWriter w, Hello h) => Messages.WriteHello(ref w, h), int.MaxValue);
                return;
            }

            switch (kind)
            {
                case MessageKind.Request:
                    var id = Messages.ReadRequestId(ref reader, count);
                    var function = ReadFunctionName(ref reader);
                    var kwargsStart = (int)reader.Consumed;
                    KwargsCodec.SkipValue(ref reader); // validates that the kwargs value is whole before any work is queued
                    var kwargsEnd = (int)reader.Consumed;
                    Messages.SkipRequestExtras(ref reader, count);
                    if (reader.Consumed != frame.Length)
                        throw new InvalidDataException("Bytes follow the request's kwargs.");
                    handedOff = Accept(id, function, frame, kwargsStart, kwargsEnd);
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
    private bool Accept(uint id, string function, ReceivedFrame frame, int kwargsStart, int kwargsEnd)
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

        if (Interlocked.Increment(ref _runningCount) > _host.MaxConcurrentRequests)
        {
            Finish();
            RpcMetrics.RequestRefused("busy");
            SendError(id, ErrorCode.Busy, "Busy", $"Node '{_host.LocalHello.Name}' already runs {_host.MaxConcurrentRequests} requests from this connection.");
            return false;
        }

        var cts = new CancellationTokenSource();
        RequestWork? work;
        lock (_runningGate)
        {
            if (_running.ContainsKey(id))
            {
                cts.Dispose();
                Finish();
                throw new InvalidDataException($"Request id {id} is already running.");
            }

            if (!_workPool.TryPop(out work))
                work = new RequestWork(this);
            dispatcher = CallTelemetry.ObserveServer(dispatcher, frame.Payload[kwargsEnd..], Peer?.Name ?? "");
            work.Start(id, function, frame, kwargsStart, kwargsEnd, dispatcher, cts);
            _running.Add(id, work);
        }

        // A close that began before the request was registered did not see it: it starts cancelled, as it would have
        // with a token linked to the connection's shutdown.
        if (_shuttingDown)
            TryCancel(cts);
        ThreadPool.UnsafeQueueUserWorkItem(work, preferLocal: false);
        return true;
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
        _functionNames[_nextFunctionName++ % FunctionNameCacheSize] = (utf8.ToArray(), read);
        return read;
    }

    /// <summary>Forgets a finished request and pools its work item.</summary>
    private void Complete(RequestWork work, uint id)
    {
        lock (_runningGate)
        {
            _running.Remove(id);
            if (_workPool.Count < MaxPooledWork)
                _workPool.Push(work);
        }

        Finish();
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
        private IServiceDispatcher _dispatcher = null!;

        public CancellationTokenSource Cancellation { get; private set; } = null!;

        public void Start(uint id, string function, ReceivedFrame frame, int kwargsStart, int kwargsEnd, IServiceDispatcher dispatcher, CancellationTokenSource cancellation)
        {
            _kwargsEnd = kwargsEnd;
            _id = id;
            _function = function;
            _frame = frame;
            _kwargsStart = kwargsStart;
            _dispatcher = dispatcher;
            Cancellation = cancellation;
        }

        public void Execute() => _ = RunAsync();

        /// <remarks>A handler that completes synchronously costs no task here; an async one costs its state machine.</remarks>
        private async Task RunAsync()
        {
            // Copy the fields: once Complete pools this item, the read loop may start it again.
            var (id, function, frame, kwargsStart, kwargsEnd, dispatcher, cts) = (_id, _function, _frame, _kwargsStart, _kwargsEnd, _dispatcher, Cancellation);
            var response = new FrameBuffer(256);
            try
            {
                WriteResultHeader(response, id);
                var call = new FunctionCall(function, frame.Payload[kwargsStart..kwargsEnd], response, owner._host.SerializerOptions, owner.Peer?.Name ?? "", cts.Token);
                await dispatcher.InvokeAsync(call).ConfigureAwait(false);
                response.Complete(owner.MaxSendFrameSize);
                owner.TrySend(response);
                response = null;
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
                owner.SendError(id, ErrorCode.Canceled, nameof(OperationCanceledException), "The request was cancelled.");
            }
            catch (FrameTooLargeException e)
            {
                RpcMetrics.RequestRefused("too_large");
                owner.SendError(id, ErrorCode.FrameTooLarge, nameof(FrameTooLargeException), $"The result of '{function}' is too large: {e.Message}");
            }
            catch (InvalidKwargsException e)
            {
                owner.SendError(id, ErrorCode.InvalidKwargs, nameof(InvalidKwargsException), e.Message);
            }
            catch (Exception e)
            {
                owner._host.Logger.RequestFailed(function, owner.Peer?.Name, e);
                owner.SendError(id, ErrorCode.HandlerFailed, e.GetType().FullName ?? e.GetType().Name, e.Message);
            }
            finally
            {
                response?.Dispose();
                frame.Dispose();
                _frame = default;
                _dispatcher = null!;
                cts.Dispose();
                owner.Complete(this, id);
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

    private void SendError(uint id, ErrorCode code, string type, string message) =>
        TrySend((id, code, type, message), static (ref MessagePackWriter w, (uint Id, ErrorCode Code, string Type, string Message) e) =>
            Messages.WriteError(ref w, e.Id, e.Code, e.Type, e.Message), int.MaxValue);

    private void Finish()
    {
        if (Interlocked.Decrement(ref _runningCount) == 0 && _draining)
            _drained?.TrySetResult();
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
    private static async Task<bool> CompletesWithinAsync(Task task, TimeSpan timeout)
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
    }
}
