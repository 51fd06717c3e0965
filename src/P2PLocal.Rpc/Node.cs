using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using MessagePack;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Discovery;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Server;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc;

/// <summary>
/// A named peer on the network: it serves its registered functions over TCP, announces itself with UDP beacons,
/// keeps the <see cref="Peers"/> it sees, and calls functions on them by name with kwargs.
/// </summary>
/// <remarks>
/// Thread-safe: functions may be registered and requests made from any thread, at any time after
/// <see cref="StartAsync(NodeOptions, CancellationToken)"/>. Dispose (or <see cref="Shutdown"/>) to send a goodbye and release every socket.
/// </remarks>
public sealed partial class Node : IAsyncDisposable, IDisposable, IRequestHost, IPeerHost
{
    private static readonly KwargsWriter<IReadOnlyDictionary<string, object?>?> s_writeKwargs = KwargsCodec.WriteKwargs;
    private static readonly ResultReader<object?> s_readDynamic = KwargsCodec.ReadValue;
    private static readonly ResultReader<IReadOnlyList<FunctionDescriptor>> s_readDescriptors =
        static (ref MessagePackReader reader, MessagePackSerializerOptions options) =>
        {
            KwargsCodec.EnsureReadable(reader, options);
            return BuiltInFunctions.ReadDescriptors(ref reader);
        };

    private readonly NodeOptions _options;
    private readonly ILogger _logger;
    private readonly string _instanceId = Guid.NewGuid().ToString("N")[..16];
    private readonly DateTimeOffset _startedAt;
    private readonly object _registrationGate = new();
    private readonly ConnectionPool _pool;
    private readonly BuiltInFunctions _builtIns;
    private Dictionary<string, IServiceDispatcher> _functions = new(StringComparer.Ordinal);
    private ConnectionListener? _listener;
    private DiscoveryService? _discovery;
    private ITimer? _reaper;
    private readonly WorkInFlight _workInFlight;
    private int _disposed;
    private int _started;
    private readonly Security.TlsChannel? _tls;
    private readonly Security.BeaconSeal? _seal;

    private Node(NodeOptions options)
    {
        _options = options;
        _logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger($"P2PLocal.Rpc.Node.{options.Name}");
        LogLimiter.Use(_logger, options.TimeProvider);
        _startedAt = options.TimeProvider.GetUtcNow();
        SerializerOptions = WithGeneratedFormatters(options.SerializerOptions)
            .WithSecurity(new UntrustedInputSecurity(options.MaxKwargsElements)) // UntrustedData plus the decode budget
            .WithCompression(MessagePackCompression.None);
        Peers = new PeerDirectory(this, _logger, options.MaxPeers);
        RpcMetrics.TrackPeers(Peers, () => Peers.Count);
        _builtIns = new BuiltInFunctions(() => Functions);
        _workInFlight = new WorkInFlight(options.MaxKwargsElementsInFlight, options.MaxRequestBytesInFlight);
        LocalHello = new Hello(Messages.ProtocolVersion, options.Name, _instanceId, options.MaxFrameSize, (long)options.IdleConnectionTimeout.TotalMilliseconds)
        {
            MaxPeerTopics = options.Events.MaxTopicsPerPeer,
        };
        if (!options.Security.IsOpen)
        {
            var identity = options.Security.Identity ?? NodeIdentity.Create();
            _tls = new Security.TlsChannel(options.Security, identity);
            _seal = new Security.BeaconSeal(options.Security, identity);
        }

        // An endpoint that answers as another instance: that peer restarted, and its old entry is gone.
        _pool = new ConnectionPool(LocalHello, SerializerOptions, options, _tls, _logger, restarted => Peers.Forget(restarted.InstanceId));
    }

    /// <summary>
    /// The formatters generated for contract types come first when the options use the standard resolver, so typed
    /// calls need no run-time code generation (Native AOT); a custom resolver stays first, ahead of them.
    /// </summary>
    private static MessagePackSerializerOptions WithGeneratedFormatters(MessagePackSerializerOptions options) =>
        options.WithResolver(ReferenceEquals(options.Resolver, MessagePack.Resolvers.StandardResolver.Instance)
            ? MessagePack.Resolvers.CompositeResolver.Create(GeneratedFormatterResolver.Instance, MessagePack.Resolvers.StandardResolver.Instance)
            : MessagePack.Resolvers.CompositeResolver.Create(options.Resolver, GeneratedFormatterResolver.Instance));
    /// <summary>This node's verified id in secure mode (its key's <see cref="NodeIdentity.Id"/>), or null for an open node.</summary>
    public string? PeerId => _tls?.Identity.Id;

    internal Security.TlsChannel? Tls => _tls;

    internal Security.BeaconSeal? Seal => _seal;

    /// <summary>This node's name.</summary>
    public string Name => _options.Name;

    /// <summary>A value unique to this run of the node, sent in its beacons.</summary>
    public string InstanceId => _instanceId;

    /// <summary>The options the node was started with.</summary>
    public NodeOptions Options => _options;

    /// <summary>
    /// Where the node serves: 127.0.0.1 and its port in <see cref="DiscoveryScope.Loopback"/>, 0.0.0.0 and its port in
    /// <see cref="DiscoveryScope.Lan"/> (each beacon then carries the address of the interface it leaves by).
    /// </summary>
    public IPEndPoint ServiceEndPoint => _listener?.EndPoint ?? throw new InvalidOperationException("The node has not started.");

    /// <summary>The peers this node sees.</summary>
    public PeerDirectory Peers { get; }

    /// <summary>
    /// The serializer options in force: the configured ones with untrusted-data security (plus the decode budget of
    /// <see cref="NodeOptions.MaxKwargsElements"/>) and no compression.
    /// </summary>
    public MessagePackSerializerOptions SerializerOptions { get; }

    /// <summary>The functions this node serves, as <see cref="GetFunctionsAsync"/> reports them to peers.</summary>
    public IReadOnlyList<FunctionDescriptor> Functions
    {
        get
        {
            var functions = Volatile.Read(ref _functions);
            // A dispatcher lists all its functions; list each under the name only while it still serves that name.
            return [.. functions.Values.Distinct()
                .SelectMany(d => d.Functions.Where(f => functions.TryGetValue(f.Name, out var owner) && owner == d))
                .OrderBy(f => f.Name, StringComparer.Ordinal)];
        }
    }

    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    internal DateTimeOffset Now => _options.TimeProvider.GetUtcNow();

    internal PeerInfo SelfInfo => new(Name, _options.Protocol, ServiceEndPoint, _instanceId)
    {
        StartedAt = _startedAt,
        LastSeen = Now,
        AdvertiseInterval = _options.AdvertiseInterval,
    };

    /// <summary>
    /// Creates a node that does not serve or beacon yet: register its functions and attach <see cref="Peers"/> event
    /// handlers, then call <see cref="StartAsync()"/>, so no peer ever sees the node without its
    /// services and the handlers see every peer found during start.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="ArgumentException">The options are not valid.</exception>
    public static Node Create(NodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return new Node(options);
    }

    /// <summary>
    /// Creates and starts a node: it serves at once, announces itself, and asks who is there, so peers see each other
    /// within milliseconds. To register functions before any peer sees the node, use <see cref="Create"/> and
    /// <see cref="StartAsync()"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The options are not valid.</exception>
    /// <exception cref="SocketException">The service port or the discovery port cannot be bound.</exception>
    /// <exception cref="NameConflictException">A live node holds the name (see <see cref="NodeOptions.AllowDuplicateName"/>).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public static Task<Node> StartAsync(NodeOptions options, CancellationToken cancellationToken = default)
    {
        var node = Create(options);
        Task starting;
        try
        {
            starting = node.StartAsync(cancellationToken);
        }
        catch
        {
            node.Dispose();
            throw;
        }

        return starting.IsCompletedSuccessfully ? Task.FromResult(node) : AwaitStartAsync(node, starting);

        static async Task<Node> AwaitStartAsync(Node node, Task starting)
        {
            try
            {
                await starting.ConfigureAwait(false);
                return node;
            }
            catch
            {
                await node.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    /// <summary>
    /// Starts a node made by <see cref="Create"/>: it binds its ports, serves, sends its hello, and (unless
    /// <see cref="NodeOptions.AllowDuplicateName"/>) waits up to <see cref="NodeOptions.NameCheckWindow"/> for a live
    /// node of the same name. Binding errors are thrown before the returned task is made.
    /// </summary>
    /// <exception cref="InvalidOperationException">The node was started already.</exception>
    /// <exception cref="ObjectDisposedException">The node was shut down.</exception>
    /// <exception cref="SocketException">The service port or the discovery port cannot be bound.</exception>
    /// <exception cref="NameConflictException">
    /// A live node (one that answers as the instance it beacons) holds the name; this node then keeps serving until
    /// it is disposed, which the static <see cref="StartAsync(NodeOptions, CancellationToken)"/> does for you.
    /// </exception>
    /// <exception cref="OperationCanceledException">The cancellation token fired.</exception>
    public Task StartAsync() => StartAsync(CancellationToken.None);

    /// <inheritdoc cref="StartAsync()"/>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        cancellationToken.ThrowIfCancellationRequested();
        if (Interlocked.Exchange(ref _started, 1) != 0)
            throw new InvalidOperationException($"Node '{Name}' was started already.");
        Start();
        return _options.AllowDuplicateName || _options.NameCheckWindow <= TimeSpan.Zero
            ? Task.CompletedTask
            : CheckNameAsync(cancellationToken);
    }

    /// <summary>
    /// Waits for the answers to the hello. A beacon under this node's name is checked by the directory (a node at its
    /// endpoint must answer as its instance); one that holds up is a conflict. A crashed instance does not answer, so
    /// a restart starts at once.
    /// </summary>
    private async Task CheckNameAsync(CancellationToken cancellationToken)
    {
        // Real time, not the discovery clock: this waits for packets, and a test's fake clock must not stall start.
        await Task.Delay(_options.NameCheckWindow, cancellationToken).ConfigureAwait(false);
        // A check that began inside the window may still be connecting: give it up to a connect timeout.
        var checking = TimeProvider.System.GetTimestamp();
        var limit = _options.ConnectTimeout + TimeSpan.FromSeconds(1);
        while (Peers.IsCheckingClaimOn(Name) && Peers.ClaimsOn(Name).Length == 0 && TimeProvider.System.GetElapsedTime(checking) < limit)
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        var claim = Peers.ClaimsOn(Name).FirstOrDefault();
        if (claim is not null)
        {
            throw new NameConflictException(
                $"Node '{Name}' cannot start: a live node at {claim.EndPoint} (instance {claim.InstanceId}) already uses that name " +
                $"on protocol '{_options.Protocol}', discovery port {_options.DiscoveryPort}. Choose another name, stop the other node, " +
                "or set NodeOptions.AllowDuplicateName to start anyway (the older node keeps the name).") { PeerName = Name };
        }
    }

    private void Start()
    {
        var bindAddress = _options.Scope == DiscoveryScope.Loopback ? IPAddress.Loopback : IPAddress.Any;
        _listener = new ConnectionListener(new IPEndPoint(bindAddress, _options.ServicePort), this, _options.MaxFrameSize, _options.MaxIncomingConnections);
        _listener.Start();

        var targets = _options.Scope == DiscoveryScope.Loopback
            ? BeaconTargets.ForLoopback(_options.DiscoveryPort)
            : BeaconTargets.ForLan(BeaconTargets.SystemInterfaces(), _options.DiscoveryPort);
        if (targets.Count == 0 && _options.Seeds.Count == 0)
            _logger.NoBeaconTargets(Name);
        _discovery = new DiscoveryService(_options, Peers, () => ServiceEndPoint.Port, targets, _instanceId, _startedAt, _logger, _seal);
        _discovery.Start();

        // At most 250 ms, so outgoing connections close well inside a peer's shorter idle timeout too (see ReapConnections).
        var period = TimeSpan.FromMilliseconds(Math.Clamp(_options.IdleConnectionTimeout.TotalMilliseconds / 4, 50, 250));
        _reaper = _options.TimeProvider.CreateTimer(_ => ReapConnections(), null, period, period);
        _logger.NodeStarted(Name, ServiceEndPoint, _options.Scope, _options.DiscoveryPort);
        if (_options.Security.IsOpen && _options.Scope == DiscoveryScope.Lan)
            _logger.LogWarning("Node {Name} runs in open mode on the LAN: every host on the network can list it, call each of its functions and read every request and reply. Set NodeOptions.Security to NodeSecurity.SharedKey or NodeSecurity.Pinned to allow trusted nodes only", Name);
        else if (_tls is not null)
            _logger.LogInformation("Node {Name} is secure ({Mode}), id {Id}", Name, _options.Security.Mode, _tls.Identity.Id);
    }

    /// <summary>Registers a function that takes the kwargs dictionary and returns a result (or null).</summary>
    /// <exception cref="ArgumentException">The name is empty, starts with <c>$</c> (reserved), or is already registered.</exception>
    public Node Register(string function, Func<IReadOnlyDictionary<string, object?>, object?> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return Register(function, (kwargs, _) => new ValueTask<object?>(handler(kwargs)));
    }

    /// <summary>Registers an async function that takes the kwargs dictionary and the request's cancellation token.</summary>
    /// <exception cref="ArgumentException">The name is empty, starts with <c>$</c> (reserved), or is already registered.</exception>
    public Node Register(string function, Func<IReadOnlyDictionary<string, object?>, CancellationToken, ValueTask<object?>> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return Register(function, (kwargs, _, cancellationToken) => handler(kwargs, cancellationToken));
    }

    /// <summary>
    /// Registers an async function that also learns who is calling (<see cref="CallContext"/>: the caller's name,
    /// instance and address), to authorize or log by caller.
    /// </summary>
    /// <exception cref="ArgumentException">The name is empty, starts with <c>$</c> (reserved), or is already registered.</exception>
    public Node Register(string function, Func<IReadOnlyDictionary<string, object?>, CallContext, CancellationToken, ValueTask<object?>> handler)
    {
        ArgumentException.ThrowIfNullOrEmpty(function);
        ArgumentNullException.ThrowIfNull(handler);
        return Register(new DynamicFunction(function, handler));
    }

    /// <summary>Registers every function of a dispatcher (the source generator emits one per <c>[P2PService]</c>).</summary>
    /// <exception cref="ArgumentException">A function name is empty, reserved, or already registered; nothing is registered then.</exception>
    public Node Register(IServiceDispatcher dispatcher)
    {
        ArgumentNullException.ThrowIfNull(dispatcher);
        lock (_registrationGate)
        {
            var next = new Dictionary<string, IServiceDispatcher>(_functions, StringComparer.Ordinal);
            foreach (var function in dispatcher.Functions)
            {
                if (string.IsNullOrEmpty(function.Name) || function.Name.StartsWith('$'))
                    throw new ArgumentException($"'{function.Name}' is not a valid function name: names must be non-empty and must not start with '$'.", nameof(dispatcher));
                if (!next.TryAdd(function.Name, dispatcher))
                    throw new ArgumentException($"Node '{Name}' already has a function '{function.Name}'.", nameof(dispatcher));
            }

            Volatile.Write(ref _functions, next);
        }

        return this;
    }

    /// <summary>Stops serving a function. Requests already running finish.</summary>
    /// <returns>False when no function of that name was registered.</returns>
    public bool Unregister(string function)
    {
        lock (_registrationGate)
        {
            var next = new Dictionary<string, IServiceDispatcher>(_functions, StringComparer.Ordinal);
            if (!next.Remove(function))
                return false;
            Volatile.Write(ref _functions, next);
            return true;
        }
    }

    /// <summary>Calls <paramref name="function"/> on peer <paramref name="target"/> and returns its result as plain .NET values.</summary>
    /// <param name="target">The peer's name.</param>
    /// <param name="function">The function's name.</param>
    /// <param name="kwargs">The arguments by parameter name; values must be MessagePack-serializable.</param>
    /// <param name="cancellationToken">Cancels the call here and the handler's token there.</param>
    /// <returns>
    /// The result: integers as <see cref="long"/>, floats as <see cref="double"/>, maps as dictionaries, arrays as
    /// <c>object?[]</c> (see <see cref="KwargsCodec"/>).
    /// </returns>
    /// <exception cref="PeerNotFoundException">No peer of that name is known.</exception>
    /// <exception cref="NameConflictException">Two live nodes claim the target's name, or this node's own.</exception>
    /// <exception cref="MethodNotFoundException">The peer has no such function.</exception>
    /// <exception cref="InvalidKwargsException">The peer rejected the kwargs.</exception>
    /// <exception cref="RemoteException">The remote handler threw.</exception>
    /// <exception cref="PeerBusyException">The peer runs too many requests from this node already.</exception>
    /// <exception cref="FrameTooLargeException">The request or its reply is above a frame limit.</exception>
    /// <exception cref="PeerConnectionException">The peer cannot be reached, or the connection dropped mid-call.</exception>
    /// <exception cref="TimeoutException"><see cref="NodeOptions.RequestTimeout"/> passed; the remote handler was cancelled.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    /// <exception cref="ObjectDisposedException">The node was shut down.</exception>
    public Task<object?> RequestAsync(string target, string function, IReadOnlyDictionary<string, object?>? kwargs = null, CancellationToken cancellationToken = default) =>
        InvokeAsync(target, function, kwargs, s_writeKwargs, s_readDynamic, cancellationToken).AsTask();

    /// <summary>Calls a function and converts its result to <typeparamref name="T"/> with MessagePack.</summary>
    /// <inheritdoc cref="RequestAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/>
    public Task<T> RequestAsync<T>(string target, string function, IReadOnlyDictionary<string, object?>? kwargs = null, CancellationToken cancellationToken = default) =>
        InvokeAsync(target, function, kwargs, s_writeKwargs, TypedResult<T>.Read, cancellationToken).AsTask();

    /// <summary>
    /// The blocking form of <see cref="RequestAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/>,
    /// like the Python <c>request</c>. It blocks the calling thread (the library's one sync-over-async wrapper).
    /// </summary>
    /// <inheritdoc cref="RequestAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/>
    public object? Request(string target, string function, IReadOnlyDictionary<string, object?>? kwargs = null) =>
        RequestAsync(target, function, kwargs).GetAwaiter().GetResult();

    /// <summary>Lists the names of the functions peer <paramref name="target"/> serves.</summary>
    /// <inheritdoc cref="RequestAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/>
    public async Task<IReadOnlyList<string>> GetMethodsAsync(string target, CancellationToken cancellationToken = default) =>
        [.. (await GetFunctionsAsync(target, cancellationToken).ConfigureAwait(false)).Select(f => f.Name)];

    /// <summary>The blocking form of <see cref="GetMethodsAsync"/>, like the Python <c>getmethods</c>.</summary>
    /// <inheritdoc cref="RequestAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/>
    public IReadOnlyList<string> GetMethods(string target) => GetMethodsAsync(target).GetAwaiter().GetResult();

    /// <summary>Lists the functions peer <paramref name="target"/> serves, with their signatures where it has them.</summary>
    /// <inheritdoc cref="RequestAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/>
    public Task<IReadOnlyList<FunctionDescriptor>> GetFunctionsAsync(string target, CancellationToken cancellationToken = default) =>
        InvokeAsync(target, Messages.MethodsFunction, null, s_writeKwargs, s_readDescriptors, cancellationToken).AsTask();

    /// <summary>The one path every call takes: resolve the peer, reuse or open its connection, send, await the reply.</summary>
    internal ValueTask<TResult> InvokeAsync<TState, TResult>(string target, string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TResult> readResult, CancellationToken cancellationToken)
    {
        if (CallTelemetry.IsClientObserved)
            return ObserveCallAsync(target, function, state, writeKwargs, readResult, cancellationToken);
        return InvokeUnobservedAsync(target, function, state, writeKwargs, readResult, cancellationToken);
    }

    /// <summary><see cref="InvokeAsync"/> without spans or metrics (nobody listens, or the observer calls it).</summary>
    internal ValueTask<TResult> InvokeUnobservedAsync<TState, TResult>(string target, string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TResult> readResult, CancellationToken cancellationToken)
    {
        var peer = ResolveCallee(target, function);
        if (peer.IsLegacy)
            return InvokeLegacyAsync(peer, function, state, writeKwargs, readResult, cancellationToken); // Legacy/Node.Legacy.cs (issue 13)

        if (_pool.TryGetOpen(peer.InstanceId, out var connection))
            return connection.InvokeAsync(function, state, writeKwargs, readResult, _options.RequestTimeout, cancellationToken);
        return ConnectAndInvokeAsync(peer, function, state, writeKwargs, readResult, cancellationToken);
    }

    /// <summary>The checks every call makes before it goes out, and the peer it goes to.</summary>
    private PeerInfo ResolveCallee(string target, string function)
    {
        ArgumentException.ThrowIfNullOrEmpty(target);
        ArgumentException.ThrowIfNullOrEmpty(function);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (Volatile.Read(ref _started) == 0)
            throw new InvalidOperationException($"Node '{Name}' has not started: call StartAsync before calling peers.");
        if (string.Equals(target, Name, StringComparison.Ordinal))
            throw new PeerNotFoundException($"'{target}' is this node's own name: a node does not call itself over the network. Call the service object directly, or call another node.") { PeerName = target };
        ThrowIfOwnNameContested();
        return Peers.Resolve(target);
    }

    private async ValueTask<TResult> ConnectAndInvokeAsync<TState, TResult>(PeerInfo peer, string function, TState state,
        KwargsWriter<TState> writeKwargs, ResultReader<TResult> readResult, CancellationToken cancellationToken)
    {
        var connection = await _pool.GetAsync(AddressOf(peer), cancellationToken).ConfigureAwait(false);
        return await connection.InvokeAsync(function, state, writeKwargs, readResult, _options.RequestTimeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>What the connection pool needs of a peer table entry.</summary>
    private static PeerAddress AddressOf(PeerInfo peer) => new(peer.Name, peer.InstanceId, peer.EndPoint, peer.PeerId);

    /// <summary>Whether a peer instance still serves at its endpoint (used when another instance claims its name).</summary>
    internal async Task<bool> IsAliveAsync(PeerInfo peer)
    {
        if (IsDisposed)
            return false;
        if (peer.IsLegacy)
        {
            using var socket = new Socket(peer.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                await socket.ConnectAsync(peer.EndPoint, timeout.Token).ConfigureAwait(false);
                return true;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                return false;
            }
        }

        try
        {
            var connection = await _pool.GetAsync(AddressOf(peer), CancellationToken.None).ConfigureAwait(false);
            return !connection.IsClosed;
        }
        catch (Exception e) when (e is PeerConnectionException or PeerAuthenticationException)
        {
            return false;
        }
        catch (PeerBusyException)
        {
            return true; // it answered that it is full: something serves there
        }
    }

    /// <summary>
    /// Closes the pooled connection to a peer instance unless it goes to <paramref name="endPoint"/>: the peer was found
    /// at a new endpoint, and calls follow the peer table, never a connection opened before the move.
    /// </summary>
    internal void DropConnection(string instanceId, IPEndPoint endPoint) => _pool.Drop(instanceId, endPoint);

    private void ThrowIfOwnNameContested()
    {
        if (!Peers.AnyClaimOn(Name))
            return; // the usual case, checked on every call without allocating
        foreach (var claim in Peers.ClaimsOn(Name))
        {
            var claimIsOlder = claim.StartedAt < _startedAt
                || (claim.StartedAt == _startedAt && string.CompareOrdinal(claim.InstanceId, _instanceId) < 0);
            if (claimIsOlder)
                throw new NameConflictException($"Node '{Name}' shares its name with an older live node at {claim.EndPoint}; rename one of them. This node sends no requests until the name is its own.") { PeerName = Name };
        }
    }

    private void ReapConnections()
    {
        _listener?.Reap(_options.HandshakeTimeout, _options.IdleConnectionTimeout, _options.StalledConnectionTimeout);
        _pool.Reap();
    }

    /// <summary>The node's outgoing connections (for tests).</summary>
    internal ConnectionPool Pool => _pool;

    DateTimeOffset IPeerHost.Now => Now;

    bool IPeerHost.IsDisposed => IsDisposed;

    PeerInfo IPeerHost.SelfInfo => SelfInfo;

    Task<bool> IPeerHost.IsAliveAsync(PeerInfo peer) => IsAliveAsync(peer);

    void IPeerHost.DropConnection(string instanceId, IPEndPoint endPoint) => DropConnection(instanceId, endPoint);

    Task<bool> IPeerHost.AnswersAtAsync(PeerInfo peer, IPEndPoint endPoint, CancellationToken cancellationToken) =>
        _pool.AnswersAtAsync(AddressOf(peer), endPoint, cancellationToken);

    Hello IRequestHost.LocalHello => LocalHello;

    internal Hello LocalHello { get; }

    int IRequestHost.MaxConcurrentRequests => _options.MaxConcurrentRequestsPerConnection;

    ILogger IRequestHost.Logger => _logger;

    Security.TlsChannel? IRequestHost.Tls => _tls;

    WorkInFlight IRequestHost.WorkInFlight => _workInFlight;

    IServiceDispatcher? IRequestHost.FindFunction(string function) =>
        function == Messages.MethodsFunction ? _builtIns : Volatile.Read(ref _functions).GetValueOrDefault(function);

    /// <summary>
    /// Leaves the network: sends a goodbye (peers drop this node at once), stops taking requests, lets running ones
    /// finish for up to <see cref="NodeOptions.ShutdownGracePeriod"/>, then closes every connection. Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        if (_reaper is not null)
            await _reaper.DisposeAsync().ConfigureAwait(false);
        _eventHub?.Stop(); // Node.Events.cs
        // Stop accepting before the goodbye goes out (the listener closes its socket before its first await): peers
        // take a goodbye as a hint and check that this node is gone, so a connection accepted now would refute it.
        var draining = _listener?.DisposeAsync(_options.ShutdownGracePeriod) ?? Task.CompletedTask;
        if (_discovery is not null)
            await _discovery.DisposeAsync().ConfigureAwait(false);
        RpcMetrics.UntrackPeers(Peers);
        Peers.Close();
        await draining.ConfigureAwait(false);
        await _pool.DisposeAsync().ConfigureAwait(false);
        _tls?.Dispose();
        _logger.NodeStopped(Name);
    }

    /// <summary>Shuts the node down and waits for it (the Python <c>shutdown</c>). See <see cref="DisposeAsync"/>.</summary>
    public void Shutdown() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Same as <see cref="Shutdown"/>.</summary>
    public void Dispose() => Shutdown();

    private static class TypedResult<T>
    {
        public static readonly ResultReader<T> Read = static (ref MessagePackReader reader, MessagePackSerializerOptions options) =>
        {
            KwargsCodec.EnsureReadable(reader, options);
            return MessagePackSerializer.Deserialize<T>(ref reader, options);
        };
    }
}
