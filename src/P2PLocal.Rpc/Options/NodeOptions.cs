using System.Net;
using Microsoft.Extensions.Logging;

namespace P2PLocal.Rpc;

/// <summary>Where a node looks for peers and where it serves.</summary>
public enum DiscoveryScope
{
    /// <summary>
    /// The local network: the node serves on every interface and beacons on every up IPv4 interface that has
    /// a broadcast address, each beacon carrying that interface's own address. The default for real deployments.
    /// </summary>
    Lan,

    /// <summary>
    /// This host only: the node serves on 127.0.0.1 and beacons to 127.255.255.255. Use it for tests,
    /// samples and several nodes on one machine; no traffic leaves the host.
    /// </summary>
    Loopback,
}

/// <summary>Settings for <see cref="Node.StartAsync(NodeOptions, System.Threading.CancellationToken)"/>.</summary>
/// <remarks>Instances are immutable once built; one instance may start several nodes.</remarks>
public sealed class NodeOptions
{
    /// <summary>The default UDP port that beacons are sent to and listened for on.</summary>
    public const int DefaultDiscoveryPort = 47474;

    /// <summary>The default largest frame (4 MiB, as gRPC's default message limit).</summary>
    public const int DefaultMaxFrameSize = 4 * 1024 * 1024;

    /// <summary>The default of <see cref="MaxKwargsElements"/>: 1 Mi values.</summary>
    public const int DefaultMaxKwargsElements = 1024 * 1024;
    /// <summary>The default <see cref="MaxBufferedBytesPerConnection"/>: 8 MiB, two frames of the default size.</summary>
    public const long DefaultMaxBufferedBytesPerConnection = 8 * 1024 * 1024;

    /// <summary>Creates options with every default; set <see cref="Name"/> (required) and what else differs.</summary>
    public NodeOptions()
    {
    }

    /// <summary>
    /// Copies every option of <paramref name="other"/>, so one can be changed and the rest kept:
    /// <c>new NodeOptions(options) { RequestTimeout = TimeSpan.FromSeconds(5) }</c>.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="other"/> is null.</exception>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public NodeOptions(NodeOptions other)
    {
        ArgumentNullException.ThrowIfNull(other);
        Name = other.Name;
        Protocol = other.Protocol;
        ServicePort = other.ServicePort;
        DiscoveryPort = other.DiscoveryPort;
        AdvertiseInterval = other.AdvertiseInterval;
        Scope = other.Scope;
        RequestTimeout = other.RequestTimeout;
        MaxFrameSize = other.MaxFrameSize;
        MaxConcurrentRequestsPerConnection = other.MaxConcurrentRequestsPerConnection;
        StreamWindow = other.StreamWindow;
        MaxIncomingConnections = other.MaxIncomingConnections;
        MaxBufferedBytesPerConnection = other.MaxBufferedBytesPerConnection;
        StalledConnectionTimeout = other.StalledConnectionTimeout;
        MaxConnectionsPerAddress = other.MaxConnectionsPerAddress;
        IdleConnectionTimeout = other.IdleConnectionTimeout;
        HandshakeTimeout = other.HandshakeTimeout;
        Seeds = other.Seeds;
        ShutdownGracePeriod = other.ShutdownGracePeriod;
        ConnectTimeout = other.ConnectTimeout;
        SerializerOptions = other.SerializerOptions;
        MaxKwargsElements = other.MaxKwargsElements;
        MaxKwargsElementsInFlight = other.MaxKwargsElementsInFlight;
        MaxRequestBytesInFlight = other.MaxRequestBytesInFlight;
        MaxPeers = other.MaxPeers;
        MaxPeerAdvertiseInterval = other.MaxPeerAdvertiseInterval;
        Security = other.Security;
        LoggerFactory = other.LoggerFactory;
        TimeProvider = other.TimeProvider;
        AllowDuplicateName = other.AllowDuplicateName;
        NameCheckWindow = other.NameCheckWindow;
        LegacyInterop = other.LegacyInterop;
        InlineCompletions = other.InlineCompletions;
        Events = other.Events;
    }

    /// <summary>The name peers use to reach this node. Required; must not contain <c>|</c>.</summary>
    public required string Name { get; init; }

    /// <summary>The discovery protocol name: nodes of another protocol are invisible to each other. Default <c>itecnet</c>.</summary>
    public string Protocol { get; init; } = "itecnet";

    /// <summary>The TCP port requests are served on; 0 (the default) picks a free port.</summary>
    public int ServicePort { get; init; }

    /// <summary>The UDP port beacons go to. Every node of one group must use the same port.</summary>
    public int DiscoveryPort { get; init; } = DefaultDiscoveryPort;

    /// <summary>How often the node announces itself (the Python <c>timer</c>). A peer that misses about three intervals expires.</summary>
    public TimeSpan AdvertiseInterval { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Where the node serves and beacons. Default <see cref="DiscoveryScope.Lan"/>.</summary>
    public DiscoveryScope Scope { get; init; } = DiscoveryScope.Lan;

    /// <summary>How long a request may take before it fails with <see cref="TimeoutException"/>; the remote handler is cancelled then.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The largest frame this node sends or accepts, in bytes. Default 4 MiB.</summary>
    public int MaxFrameSize { get; init; } = DefaultMaxFrameSize;

    /// <summary>How many requests one incoming connection may have running at once; more are rejected with <see cref="PeerBusyException"/> on the caller. Default 1024.</summary>
    public int MaxConcurrentRequestsPerConnection { get; init; } = 1024;

    /// <summary>
    /// The flow-control window of streamed results (issue 14), in items: as a caller, how many items a peer may send
    /// ahead of this node's reading (they wait here, received); as a server, the most this node sends ahead of a
    /// caller's reading, whatever window the caller asks for. Default 64; 1 to 16384. A stream holds at most a window
    /// of items on each side, and every byte of them stays under <see cref="MaxBufferedBytesPerConnection"/>.
    /// </summary>
    public int StreamWindow { get; init; } = 64;

    /// <summary>The bounds of <see cref="StreamWindow"/>.</summary>
    internal const int MinStreamWindow = 1, MaxStreamWindow = 16384;

    /// <summary>How many incoming connections the node keeps open at once; further ones are refused. Default 1024.</summary>
    public int MaxIncomingConnections { get; init; } = 1024;

    /// <summary>
    /// How many bytes one connection may hold: requests being served plus replies (or, on the calling side, requests)
    /// not yet written to the socket. Above it the node stops reading that connection until its replies are written,
    /// so a caller that never reads its replies is slowed to a stop instead of growing the node's memory; callers
    /// wait to send while a peer does not read theirs. Default 8 MiB (<see cref="DefaultMaxBufferedBytesPerConnection"/>).
    /// </summary>
    public long MaxBufferedBytesPerConnection { get; init; } = DefaultMaxBufferedBytesPerConnection;

    /// <summary>
    /// A connection that stays above <see cref="MaxBufferedBytesPerConnection"/> this long, with bytes waiting to be
    /// sent all along (its peer is not reading), is closed; its requests are cancelled. Default 30 seconds.
    /// </summary>
    public TimeSpan StalledConnectionTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How many incoming connections one remote address may hold open at once; further ones are refused with a
    /// <see cref="PeerBusyException"/> on the caller. Loopback addresses are not limited. Default 64.
    /// </summary>
    public int MaxConnectionsPerAddress { get; init; } = 64;

    /// <summary>Tests only: apply <see cref="MaxConnectionsPerAddress"/> to loopback callers too (tests cannot leave loopback).</summary>
    internal bool LimitLoopbackPerAddress { get; init; }

    /// <summary>
    /// An incoming connection that makes no request for this long, with nothing running, is closed; cancels and
    /// refused requests do not keep it open. Default 2 minutes.
    /// </summary>
    public TimeSpan IdleConnectionTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>How long a connection may take to say who it is (its hello frame) before it is closed. Default 5 seconds.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Discovery endpoints (a peer's host and <see cref="DiscoveryPort"/>) that also get every beacon by unicast,
    /// for networks that drop broadcast.
    /// </summary>
    public IReadOnlyList<IPEndPoint> Seeds { get; init; } = [];

    /// <summary>How long shutdown lets running requests finish before it cancels them. Default 5 seconds.</summary>
    public TimeSpan ShutdownGracePeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long connecting to a peer (TCP connect and hello) may take. Default 5 seconds.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The MessagePack options for kwargs and results, for custom resolvers. The node always applies
    /// <see cref="MessagePack.MessagePackSecurity.UntrustedData"/> and no compression on top. Default: the standard resolver.
    /// </summary>
    public MessagePack.MessagePackSerializerOptions SerializerOptions { get; init; } = MessagePack.MessagePackSerializerOptions.Standard;

    /// <summary>
    /// The most MessagePack values one request's kwargs, or one result read by this node, may hold: every nil, number,
    /// string, binary, array and map counts one, and a map's keys and values each count. Default
    /// <see cref="DefaultMaxKwargsElements"/> (1 Mi). It bounds what decoding may build from one frame, since a 4 MiB
    /// frame of empty maps would otherwise decode into about 4 million dictionaries (some 400 MB). A request over it is
    /// refused with <see cref="InvalidKwargsException"/> before any handler runs; a result over it fails the call with
    /// <see cref="P2PException"/>.
    /// </summary>
    public int MaxKwargsElements { get; init; } = DefaultMaxKwargsElements;

    /// <summary>
    /// The most kwargs values (counted as for <see cref="MaxKwargsElements"/>) that the requests running on this node may
    /// hold together, across all connections. A request that would go over it is refused at once with
    /// <see cref="PeerBusyException"/> on the caller. Default 2 x <see cref="DefaultMaxKwargsElements"/>; at least
    /// <see cref="MaxKwargsElements"/>.
    /// </summary>
    public int MaxKwargsElementsInFlight { get; init; } = 2 * DefaultMaxKwargsElements;

    /// <summary>
    /// The most request bytes (frames) that the requests running on this node may hold together, across all
    /// connections; each running request keeps its frame until its handler finishes. A request that would go over it is
    /// refused at once with <see cref="PeerBusyException"/> on the caller. Default 64 MiB; at least <see cref="MaxFrameSize"/>.
    /// </summary>
    public long MaxRequestBytesInFlight { get; init; } = 64L * 1024 * 1024;

    /// <summary>The most peers the node keeps track of; beacons from further instances are dropped. Default 4096.</summary>
    public int MaxPeers { get; init; } = 4096;

    /// <summary>
    /// The longest beacon interval this node believes from a peer. A beacon may claim up to a day, and a peer is kept
    /// for about 3.5 of its intervals after its last beacon, so one forged datagram could otherwise pin an entry, or a
    /// claim on this node's own name, for days. A longer claim is cut to this (the node's own
    /// <see cref="AdvertiseInterval"/> if that is longer), and <see cref="PeerInfo.AdvertiseInterval"/> shows the cut
    /// value. Peers beaconing less often than 3.5 times this come and go between beacons. Default 1 minute.
    /// </summary>
    public TimeSpan MaxPeerAdvertiseInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Who the node trusts (issue 10): <see cref="NodeSecurity.Open"/> (the default: anyone, in clear text),
    /// <see cref="NodeSecurity.SharedKey(string)"/> or <see cref="NodeSecurity.Pinned"/>. Secure nodes see, call and
    /// answer only trusted nodes, over TLS 1.3. Every node of a group needs the same mode.
    /// </summary>
    public NodeSecurity Security { get; init; } = NodeSecurity.Open;

    /// <summary>Where the node logs joins, leaves, conflicts and dropped input. Default: no logging.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>The clock for beacons and expiry; tests pass a fake one. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// Whether the node may start while another live node holds its name (the check of <see cref="NameCheckWindow"/>
    /// is then skipped, and the older node keeps the name, as <see cref="NameConflictException"/> describes). Default
    /// false: <see cref="Node.StartAsync()"/> fails with <see cref="NameConflictException"/>.
    /// </summary>
    public bool AllowDuplicateName { get; init; }

    /// <summary>
    /// How long start waits for the answers to its hello before it decides that no live node holds its name. Every
    /// live node answers a hello at once, so this is a round trip plus scheduling delays, not a beacon interval; a
    /// holder found in it is probed, and only one that answers as itself is a conflict (a crashed instance is not).
    /// <see cref="TimeSpan.Zero"/> skips the check. Default 100 ms.
    /// </summary>
    public TimeSpan NameCheckWindow { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Mixed networks with the Python p2p-local (issue 13): the service port also serves XML-RPC over HTTP/1.x to Python
    /// callers, and requests to legacy peers (<see cref="PeerInfo.IsLegacy"/>) are sent as XML-RPC. Default false: it
    /// adds an XML parser to what a stranger can reach. Not allowed together with secure mode, since XML-RPC has no
    /// authentication. See the README's "Mixed networks" section for the types that can cross.
    /// </summary>
    public bool LegacyInterop { get; init; }

    /// <summary>Bounds of events to every peer (issue 14): event size, topics per peer, queued events per peer.</summary>
    public EventOptions Events { get; init; } = new();

    /// <summary>
    /// Whether a call's awaiting code resumes on the connection's read loop as its reply is read, instead of on a
    /// thread-pool thread (issue 16). Saves a thread hop per call; with many calls in flight on one connection, the
    /// requests their callers send next go out in one write. Default false.
    /// </summary>
    /// <remarks>
    /// Only for callers whose code after <c>await</c> returns at once or awaits again: code that blocks there (a
    /// synchronous wait, <c>Thread.Sleep</c>, long CPU work) stops every other reply on that connection, and a
    /// synchronous wait there for another call to the same peer never ends. Callers that captured a
    /// <see cref="SynchronizationContext"/> (a UI thread) resume there either way.
    /// </remarks>
    public bool InlineCompletions { get; init; }

    /// <summary>
    /// Checks the options as <see cref="Node.StartAsync(NodeOptions, CancellationToken)"/> does, so a host can refuse
    /// bad configuration before it starts anything.
    /// </summary>
    /// <exception cref="ArgumentException">A value is not valid; <see cref="ArgumentException.ParamName"/> names the option.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name) || Name.Contains('|', StringComparison.Ordinal))
            throw new ArgumentException("Name must be non-empty and must not contain '|'.", nameof(Name));
        if (string.IsNullOrWhiteSpace(Protocol) || Protocol.Contains('|', StringComparison.Ordinal))
            throw new ArgumentException("Protocol must be non-empty and must not contain '|'.", nameof(Protocol));
        if (ServicePort is < 0 or > 65535)
            throw new ArgumentOutOfRangeException(nameof(ServicePort), ServicePort, "A port is 0 to 65535.");
        if (DiscoveryPort is < 1 or > 65535)
            throw new ArgumentOutOfRangeException(nameof(DiscoveryPort), DiscoveryPort, "A discovery port is 1 to 65535.");
        if (AdvertiseInterval <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(AdvertiseInterval), AdvertiseInterval, "The interval must be positive.");
        if (RequestTimeout <= TimeSpan.Zero && RequestTimeout != Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(nameof(RequestTimeout), RequestTimeout, "The timeout must be positive or infinite.");
        if (MaxFrameSize < 1024)
            throw new ArgumentOutOfRangeException(nameof(MaxFrameSize), MaxFrameSize, "Frames of at least 1 KiB are needed.");
        if (MaxConcurrentRequestsPerConnection < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxConcurrentRequestsPerConnection), MaxConcurrentRequestsPerConnection, "At least one request must be allowed.");
        if (StreamWindow is < MinStreamWindow or > MaxStreamWindow)
            throw new ArgumentOutOfRangeException(nameof(StreamWindow), StreamWindow, $"A stream window is {MinStreamWindow} to {MaxStreamWindow} items.");
        if (NameCheckWindow < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(NameCheckWindow), NameCheckWindow, "The window must not be negative.");
        if (MaxKwargsElements < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxKwargsElements), MaxKwargsElements, "At least one kwargs value must be allowed.");
        if (MaxKwargsElementsInFlight < MaxKwargsElements)
            throw new ArgumentOutOfRangeException(nameof(MaxKwargsElementsInFlight), MaxKwargsElementsInFlight, $"Must be at least MaxKwargsElements ({MaxKwargsElements}), so one request of the largest allowed size can run.");
        if (MaxRequestBytesInFlight < MaxFrameSize)
            throw new ArgumentOutOfRangeException(nameof(MaxRequestBytesInFlight), MaxRequestBytesInFlight, $"Must be at least MaxFrameSize ({MaxFrameSize}), so one request of the largest allowed size can run.");
        if (MaxBufferedBytesPerConnection < 64 * 1024)
            throw new ArgumentOutOfRangeException(nameof(MaxBufferedBytesPerConnection), MaxBufferedBytesPerConnection, "At least 64 KiB must be allowed.");
        if (StalledConnectionTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(StalledConnectionTimeout), StalledConnectionTimeout, "The timeout must be positive.");
        if (MaxConnectionsPerAddress < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxConnectionsPerAddress), MaxConnectionsPerAddress, "At least one connection per address must be allowed.");
        ArgumentNullException.ThrowIfNull(Security, nameof(Security));
        if (MaxPeers < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxPeers), MaxPeers, "At least one peer must be allowed.");
        if (MaxPeerAdvertiseInterval <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(MaxPeerAdvertiseInterval), MaxPeerAdvertiseInterval, "The interval must be positive.");
        if (LegacyInterop && !Security.IsOpen)
            throw new ArgumentException("LegacyInterop cannot be used with secure mode: Python p2p-local nodes speak plain XML-RPC, which has no authentication, so anyone could call this node's functions around the secure channel. Run legacy interop on a node with NodeSecurity.Open.", nameof(LegacyInterop));
        ArgumentNullException.ThrowIfNull(Events, nameof(Events));
        Events.Validate();
        if (Events.MaxEventSize > MaxFrameSize)
            throw new ArgumentOutOfRangeException(nameof(Events), Events.MaxEventSize, $"Events.MaxEventSize must be at most MaxFrameSize ({MaxFrameSize}): no peer would take a larger event.");
        if (Scope == DiscoveryScope.Loopback && Seeds.FirstOrDefault(s => !IPAddress.IsLoopback(s.Address)) is { } remote)
            throw new ArgumentException($"Seed {remote} is not a loopback address, and a node in Loopback scope sends nothing off the host. Use DiscoveryScope.Lan to reach it.", nameof(Seeds));
    }
}
