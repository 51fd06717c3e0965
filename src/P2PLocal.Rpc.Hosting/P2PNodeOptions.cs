using System.Net;
using MessagePack;
using Microsoft.Extensions.Logging;

namespace P2PLocal.Rpc.Hosting;

/// <summary>
/// The settings of a hosted node, as bound from configuration (a section such as <c>"P2PLocal"</c>) or set in
/// <c>AddP2PNode(options => ...)</c>. Every property has the meaning and default of the <see cref="NodeOptions"/>
/// property of the same name; <see cref="ToNodeOptions"/> makes the immutable <see cref="NodeOptions"/> a node
/// starts with. Times bind from <c>"00:00:03"</c>, the scope from <c>"Loopback"</c> or <c>"Lan"</c>, seeds from
/// <c>"192.168.1.20:47474"</c>.
/// </summary>
/// <remarks>Not thread-safe: the options system builds and validates one instance before the node starts.</remarks>
public sealed class P2PNodeOptions
{
    private static readonly NodeOptions s_defaults = new() { Name = "defaults" };

    /// <inheritdoc cref="NodeOptions.Name"/>
    public string? Name { get; set; }

    /// <inheritdoc cref="NodeOptions.Protocol"/>
    public string Protocol { get; set; } = s_defaults.Protocol;

    /// <inheritdoc cref="NodeOptions.ServicePort"/>
    public int ServicePort { get; set; } = s_defaults.ServicePort;

    /// <inheritdoc cref="NodeOptions.DiscoveryPort"/>
    public int DiscoveryPort { get; set; } = s_defaults.DiscoveryPort;

    /// <inheritdoc cref="NodeOptions.AdvertiseInterval"/>
    public TimeSpan AdvertiseInterval { get; set; } = s_defaults.AdvertiseInterval;

    /// <inheritdoc cref="NodeOptions.Scope"/>
    public DiscoveryScope Scope { get; set; } = s_defaults.Scope;

    /// <inheritdoc cref="NodeOptions.RequestTimeout"/>
    public TimeSpan RequestTimeout { get; set; } = s_defaults.RequestTimeout;

    /// <inheritdoc cref="NodeOptions.MaxFrameSize"/>
    public int MaxFrameSize { get; set; } = s_defaults.MaxFrameSize;

    /// <inheritdoc cref="NodeOptions.MaxConcurrentRequestsPerConnection"/>
    public int MaxConcurrentRequestsPerConnection { get; set; } = s_defaults.MaxConcurrentRequestsPerConnection;

    /// <inheritdoc cref="NodeOptions.InlineCompletions"/>
    public bool InlineCompletions { get; set; } = s_defaults.InlineCompletions;

    /// <summary>
    /// The bounds of events (see <see cref="NodeOptions.Events"/>), bound from the <c>Events</c> subsection
    /// (<c>Events:MaxEventSize</c>, <c>Events:MaxTopicsPerPeer</c>, <c>Events:MaxQueuedEventsPerPeer</c>).
    /// </summary>
    public EventOptions Events { get; set; } = new();

    /// <inheritdoc cref="NodeOptions.StreamWindow"/>
    public int StreamWindow { get; set; } = s_defaults.StreamWindow;

    /// <inheritdoc cref="NodeOptions.MaxIncomingConnections"/>
    public int MaxIncomingConnections { get; set; } = s_defaults.MaxIncomingConnections;

    /// <inheritdoc cref="NodeOptions.IdleConnectionTimeout"/>
    public TimeSpan IdleConnectionTimeout { get; set; } = s_defaults.IdleConnectionTimeout;

    /// <inheritdoc cref="NodeOptions.HandshakeTimeout"/>
    public TimeSpan HandshakeTimeout { get; set; } = s_defaults.HandshakeTimeout;

    /// <summary>
    /// Discovery endpoints that also get every beacon by unicast (see <see cref="NodeOptions.Seeds"/>), each an IP
    /// address and port: <c>"192.168.1.20:47474"</c> or <c>"[fe80::1]:47474"</c>.
    /// </summary>
    public IList<string> Seeds { get; } = [];

    /// <summary>
    /// How long shutdown lets running requests finish (see <see cref="NodeOptions.ShutdownGracePeriod"/>). Keep it
    /// below the host's shutdown timeout (30 s by default), which bounds how long the host waits for the node.
    /// </summary>
    public TimeSpan ShutdownGracePeriod { get; set; } = s_defaults.ShutdownGracePeriod;

    /// <inheritdoc cref="NodeOptions.ConnectTimeout"/>
    public TimeSpan ConnectTimeout { get; set; } = s_defaults.ConnectTimeout;

    /// <inheritdoc cref="NodeOptions.MaxPeers"/>
    public int MaxPeers { get; set; } = s_defaults.MaxPeers;

    /// <inheritdoc cref="NodeOptions.MaxBufferedBytesPerConnection"/>
    public long MaxBufferedBytesPerConnection { get; set; } = s_defaults.MaxBufferedBytesPerConnection;

    /// <inheritdoc cref="NodeOptions.StalledConnectionTimeout"/>
    public TimeSpan StalledConnectionTimeout { get; set; } = s_defaults.StalledConnectionTimeout;

    /// <inheritdoc cref="NodeOptions.MaxConnectionsPerAddress"/>
    public int MaxConnectionsPerAddress { get; set; } = s_defaults.MaxConnectionsPerAddress;

    /// <inheritdoc cref="NodeOptions.MaxKwargsElements"/>
    public int MaxKwargsElements { get; set; } = s_defaults.MaxKwargsElements;

    /// <inheritdoc cref="NodeOptions.MaxKwargsElementsInFlight"/>
    public int MaxKwargsElementsInFlight { get; set; } = s_defaults.MaxKwargsElementsInFlight;

    /// <inheritdoc cref="NodeOptions.MaxRequestBytesInFlight"/>
    public long MaxRequestBytesInFlight { get; set; } = s_defaults.MaxRequestBytesInFlight;

    /// <inheritdoc cref="NodeOptions.MaxPeerAdvertiseInterval"/>
    public TimeSpan MaxPeerAdvertiseInterval { get; set; } = s_defaults.MaxPeerAdvertiseInterval;

    /// <inheritdoc cref="NodeOptions.AllowDuplicateName"/>
    public bool AllowDuplicateName { get; set; } = s_defaults.AllowDuplicateName;

    /// <inheritdoc cref="NodeOptions.NameCheckWindow"/>
    public TimeSpan NameCheckWindow { get; set; } = s_defaults.NameCheckWindow;

    /// <inheritdoc cref="NodeOptions.LegacyInterop"/>
    public bool LegacyInterop { get; set; } = s_defaults.LegacyInterop;

    /// <summary>
    /// Secure mode with a shared network key (<see cref="NodeSecurity.SharedKey(string)"/>): the path of a file that holds
    /// the key as text (surrounding white space is ignored). Keep the file readable only by the service's user. Not with
    /// <see cref="IdentityFile"/> or <see cref="Security"/>.
    /// </summary>
    public string? NetworkKeyFile { get; set; }

    /// <summary>
    /// Pinned mode (<see cref="NodeSecurity.Pinned"/>): the path of this node's identity (PEM; created, readable only by
    /// its owner, when missing; see <see cref="NodeIdentity.LoadOrCreate"/>). The node trusts the ids in
    /// <see cref="TrustedPeerIds"/>. Not with <see cref="NetworkKeyFile"/> or <see cref="Security"/>.
    /// </summary>
    public string? IdentityFile { get; set; }

    /// <summary>Pinned mode: the <see cref="NodeIdentity.Id"/> of each node this one trusts (with <see cref="IdentityFile"/>).</summary>
    public IList<string> TrustedPeerIds { get; } = [];

    /// <summary>
    /// The node's security, set in code (not bound from configuration); when null, it comes from
    /// <see cref="NetworkKeyFile"/> or <see cref="IdentityFile"/>, and without either the node is open
    /// (<see cref="NodeSecurity.Open"/>). See <see cref="NodeOptions.Security"/>.
    /// </summary>
    public NodeSecurity? Security { get; set; }

    /// <summary>Custom MessagePack resolvers (set in code; not bound from configuration). See <see cref="NodeOptions.SerializerOptions"/>.</summary>
    public MessagePackSerializerOptions? SerializerOptions { get; set; }

    /// <summary>
    /// Builds the options a node starts with. The host passes its own <see cref="ILoggerFactory"/> and
    /// <see cref="TimeProvider"/>.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// <see cref="Name"/> is missing, a seed is not an IP endpoint, or the security settings are not valid (more than one
    /// kind set, trusted ids without an identity file, a key file that is missing or holds too short a key, an identity
    /// file that holds no valid key).
    /// </exception>
    public NodeOptions ToNodeOptions(ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        // ParamName is the option at fault, as in NodeOptions.Validate, so the validator can name the configuration key.
#pragma warning disable CA2208
        if (string.IsNullOrWhiteSpace(Name))
            throw new ArgumentException("A node needs a name: set Name (configuration key 'Name' in the node's section).", nameof(Name));
        return new NodeOptions
        {
            Name = Name,
            Protocol = Protocol,
            ServicePort = ServicePort,
            DiscoveryPort = DiscoveryPort,
            AdvertiseInterval = AdvertiseInterval,
            Scope = Scope,
            RequestTimeout = RequestTimeout,
            MaxFrameSize = MaxFrameSize,
            MaxConcurrentRequestsPerConnection = MaxConcurrentRequestsPerConnection,
            StreamWindow = StreamWindow,
            InlineCompletions = InlineCompletions,
            Events = Events ?? s_defaults.Events,
            MaxIncomingConnections = MaxIncomingConnections,
            IdleConnectionTimeout = IdleConnectionTimeout,
            HandshakeTimeout = HandshakeTimeout,
            Seeds = [.. Seeds.Select(ParseSeed)],
            ShutdownGracePeriod = ShutdownGracePeriod,
            ConnectTimeout = ConnectTimeout,
            MaxPeers = MaxPeers,
            MaxBufferedBytesPerConnection = MaxBufferedBytesPerConnection,
            StalledConnectionTimeout = StalledConnectionTimeout,
            MaxConnectionsPerAddress = MaxConnectionsPerAddress,
            MaxKwargsElements = MaxKwargsElements,
            MaxKwargsElementsInFlight = MaxKwargsElementsInFlight,
            MaxRequestBytesInFlight = MaxRequestBytesInFlight,
            MaxPeerAdvertiseInterval = MaxPeerAdvertiseInterval,
            AllowDuplicateName = AllowDuplicateName,
            NameCheckWindow = NameCheckWindow,
            LegacyInterop = LegacyInterop,
            Security = BuildSecurity(),
            SerializerOptions = SerializerOptions ?? s_defaults.SerializerOptions,
            LoggerFactory = loggerFactory,
            TimeProvider = timeProvider ?? TimeProvider.System,
        };
    }

    private NodeSecurity BuildSecurity()
    {
        var kinds = (Security is null ? 0 : 1) + (NetworkKeyFile is null ? 0 : 1) + (IdentityFile is null ? 0 : 1);
        if (kinds > 1)
            throw new ArgumentException("Set one of Security (in code), NetworkKeyFile (shared key) and IdentityFile (pinned ids), not several: a node has one kind of security.", nameof(Security));
        if (TrustedPeerIds.Count > 0 && IdentityFile is null)
            throw new ArgumentException("TrustedPeerIds needs IdentityFile: pinned mode proves this node's own identity to the peers it trusts. Set IdentityFile to a path (the identity is created there when missing).", nameof(TrustedPeerIds));
        if (Security is not null)
            return Security;
        if (NetworkKeyFile is not null)
        {
            string key;
            try
            {
                key = File.ReadAllText(NetworkKeyFile).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ArgumentException($"The network key file '{NetworkKeyFile}' cannot be read ({e.Message}). Make one with 'openssl rand -base64 32 > {NetworkKeyFile}' and give the same key to every node of the group.", nameof(NetworkKeyFile), e);
            }

            try
            {
                return NodeSecurity.SharedKey(key);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"The network key file '{NetworkKeyFile}': {e.Message}", nameof(NetworkKeyFile), e);
            }
        }

        if (IdentityFile is not null)
        {
            NodeIdentity identity;
            try
            {
                identity = NodeIdentity.LoadOrCreate(IdentityFile);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
            {
                throw new ArgumentException($"The identity file '{IdentityFile}' cannot be used: {e.Message}", nameof(IdentityFile), e);
            }

            try
            {
                return NodeSecurity.Pinned(identity, TrustedPeerIds);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException(e.Message, nameof(TrustedPeerIds), e);
            }
        }

        return NodeSecurity.Open;
    }

    private static IPEndPoint ParseSeed(string seed) =>
        IPEndPoint.TryParse(seed, out var endPoint) && endPoint.Port != 0
            ? endPoint
            : throw new ArgumentException($"Seed '{seed}' is not an IP address and port such as '192.168.1.20:{NodeOptions.DefaultDiscoveryPort}'.", nameof(Seeds));
#pragma warning restore CA2208
}
