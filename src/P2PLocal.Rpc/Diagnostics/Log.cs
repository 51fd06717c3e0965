using System.Net;
using Microsoft.Extensions.Logging;

namespace P2PLocal.Rpc.Diagnostics;

/// <summary>
/// Every log message of the library, source-generated (<see cref="LoggerMessageAttribute"/>), each with its own
/// event id; docs/observability.md lists them. Events a stranger on the network can trigger at will pass through a
/// <see cref="LogLimiter"/> so a flood cannot fill the log; a MessagesSuppressed line (event 49) says how many were held back.
/// </summary>
internal static partial class Log
{
    // 1-9: the node.
    [LoggerMessage(EventId = 1, EventName = "NodeStarted", Level = LogLevel.Information,
        Message = "Node {Name} serves on {EndPoint} ({Scope}, discovery port {DiscoveryPort})")]
    public static partial void NodeStarted(this ILogger logger, string name, IPEndPoint endPoint, DiscoveryScope scope, int discoveryPort);

    [LoggerMessage(EventId = 2, EventName = "NodeStopped", Level = LogLevel.Information, Message = "Node {Name} shut down")]
    public static partial void NodeStopped(this ILogger logger, string name);

    [LoggerMessage(EventId = 3, EventName = "NoBeaconTargets", Level = LogLevel.Warning,
        Message = "No interface with a broadcast address is up and no seeds are set: node {Name} can be seen by nobody")]
    public static partial void NoBeaconTargets(this ILogger logger, string name);

    // 10-19: peers.
    public static void PeerJoined(this ILogger logger, string peer, IPEndPoint endPoint)
    {
        if (Passes(logger, LogLevel.Information, 10, nameof(PeerJoined)))
            PeerJoinedCore(logger, peer, endPoint);
    }

    [LoggerMessage(EventId = 10, EventName = "PeerJoined", Level = LogLevel.Information,
        Message = "Peer {Peer} joined at {EndPoint}")]
    private static partial void PeerJoinedCore(ILogger logger, string peer, IPEndPoint endPoint);

    public static void PeerLeft(this ILogger logger, string peer, IPEndPoint endPoint)
    {
        if (Passes(logger, LogLevel.Information, 11, nameof(PeerLeft)))
            PeerLeftCore(logger, peer, endPoint);
    }

    [LoggerMessage(EventId = 11, EventName = "PeerLeft", Level = LogLevel.Information,
        Message = "Peer {Peer} at {EndPoint} left")]
    private static partial void PeerLeftCore(ILogger logger, string peer, IPEndPoint endPoint);

    public static void PeerExpired(this ILogger logger, string peer, IPEndPoint endPoint, TimeSpan silence)
    {
        if (Passes(logger, LogLevel.Information, 12, nameof(PeerExpired)))
            PeerExpiredCore(logger, peer, endPoint, silence);
    }

    [LoggerMessage(EventId = 12, EventName = "PeerExpired", Level = LogLevel.Information,
        Message = "Peer {Peer} at {EndPoint} expired: no beacon for {Silence}")]
    private static partial void PeerExpiredCore(ILogger logger, string peer, IPEndPoint endPoint, TimeSpan silence);

    public static void PeerReplaced(this ILogger logger, string peer, IPEndPoint endPoint)
    {
        if (Passes(logger, LogLevel.Information, 13, nameof(PeerReplaced)))
            PeerReplacedCore(logger, peer, endPoint);
    }

    [LoggerMessage(EventId = 13, EventName = "PeerReplaced", Level = LogLevel.Information,
        Message = "Peer {Peer} at {EndPoint} is gone; a new instance replaces it")]
    private static partial void PeerReplacedCore(ILogger logger, string peer, IPEndPoint endPoint);

    public static void NameConflict(this ILogger logger, string name, IPEndPoint existing, IPEndPoint contender)
    {
        if (Passes(logger, LogLevel.Warning, 14, nameof(NameConflict)))
            NameConflictCore(logger, name, existing, contender);
    }

    [LoggerMessage(EventId = 14, EventName = "NameConflict", Level = LogLevel.Warning,
        Message = "Two live nodes claim the name {Name}: {Existing} and {Contender}")]
    private static partial void NameConflictCore(ILogger logger, string name, IPEndPoint existing, IPEndPoint contender);

    public static void SpoofedClaimIgnored(this ILogger logger, string name, IPEndPoint endPoint, string instance, IPEndPoint holder)
    {
        if (Passes(logger, LogLevel.Warning, 17, nameof(SpoofedClaimIgnored)))
            SpoofedClaimIgnoredCore(logger, name, endPoint, instance, holder);
    }

    [LoggerMessage(EventId = 17, EventName = "SpoofedClaimIgnored", Level = LogLevel.Warning,
        Message = "Ignored a beacon claiming the name {Name} for {EndPoint}: no node of instance {Instance} answers there (spoofed or stale); {Holder} keeps the name")]
    private static partial void SpoofedClaimIgnoredCore(ILogger logger, string name, IPEndPoint endPoint, string instance, IPEndPoint holder);

    public static void PeerMoved(this ILogger logger, string name, string instance, IPEndPoint from, IPEndPoint to)
    {
        if (Passes(logger, LogLevel.Information, 18, nameof(PeerMoved)))
            PeerMovedCore(logger, name, instance, from, to);
    }

    [LoggerMessage(EventId = 18, EventName = "PeerMoved", Level = LogLevel.Information,
        Message = "Peer {Name} (instance {Instance}) moved from {Old} to {New}")]
    private static partial void PeerMovedCore(ILogger logger, string name, string instance, IPEndPoint old, IPEndPoint @new);

    public static void BeaconHintIgnored(this ILogger logger, string what, string name, string instance, IPEndPoint endPoint)
    {
        if (Passes(logger, LogLevel.Warning, 19, nameof(BeaconHintIgnored)))
            BeaconHintIgnoredCore(logger, what, name, instance, endPoint);
    }

    [LoggerMessage(EventId = 19, EventName = "BeaconHintIgnored", Level = LogLevel.Warning,
        Message = "Ignored a beacon {What} for peer {Name} (instance {Instance}): it still answers at {EndPoint} (spoofed or stale)")]
    private static partial void BeaconHintIgnoredCore(ILogger logger, string what, string name, string instance, IPEndPoint endPoint);

    [LoggerMessage(EventId = 15, EventName = "PeerTableFull", Level = LogLevel.Warning,
        Message = "The peer table is full ({MaxPeers} peers); beacons of further instances are dropped")]
    public static partial void PeerTableFull(this ILogger logger, int maxPeers);

    [LoggerMessage(EventId = 16, EventName = "PeerEventHandlerFailed", Level = LogLevel.Error, Message = "A peer event handler threw")]
    public static partial void PeerEventHandlerFailed(this ILogger logger, Exception exception);

    // 20-29: connections.
    public static void ConnectionOpened(this ILogger logger, string direction, string remote)
    {
        if (Passes(logger, LogLevel.Debug, 20, nameof(ConnectionOpened)))
            ConnectionOpenedCore(logger, direction, remote);
    }

    [LoggerMessage(EventId = 20, EventName = "ConnectionOpened", Level = LogLevel.Debug,
        Message = "Opened {Direction} connection with {Remote}")]
    private static partial void ConnectionOpenedCore(ILogger logger, string direction, string remote);

    public static void ConnectionClosed(this ILogger logger, string direction, string remote, Exception? reason)
    {
        if (Passes(logger, LogLevel.Debug, 21, nameof(ConnectionClosed)))
            ConnectionClosedCore(logger, direction, remote, reason?.Message ?? "closed in order");
    }

    [LoggerMessage(EventId = 21, EventName = "ConnectionClosed", Level = LogLevel.Debug,
        Message = "Closed {Direction} connection with {Remote}: {Reason}")]
    private static partial void ConnectionClosedCore(ILogger logger, string direction, string remote, string reason);

    public static void ConnectionRefused(this ILogger logger, EndPoint? remote, int maxConnections)
    {
        if (Passes(logger, LogLevel.Warning, 22, nameof(ConnectionRefused)))
            ConnectionRefusedCore(logger, remote, maxConnections);
    }

    [LoggerMessage(EventId = 22, EventName = "ConnectionRefused", Level = LogLevel.Warning,
        Message = "Refused a connection from {Remote}: {MaxConnections} connections are open and all are busy")]
    private static partial void ConnectionRefusedCore(ILogger logger, EndPoint? remote, int maxConnections);

    public static void ConnectionEvicted(this ILogger logger, string remote, int maxConnections)
    {
        if (Passes(logger, LogLevel.Warning, 23, nameof(ConnectionEvicted)))
            ConnectionEvictedCore(logger, maxConnections, remote);
    }

    [LoggerMessage(EventId = 23, EventName = "ConnectionEvicted", Level = LogLevel.Warning,
        Message = "{MaxConnections} connections are open: closed the oldest one that never said hello ({Remote})")]
    private static partial void ConnectionEvictedCore(ILogger logger, int maxConnections, string remote);

    public static void ConnectionRefusedForAddress(this ILogger logger, EndPoint? remote, int maxPerAddress)
    {
        if (Passes(logger, LogLevel.Warning, 25, nameof(ConnectionRefusedForAddress)))
            ConnectionRefusedForAddressCore(logger, remote, maxPerAddress);
    }

    [LoggerMessage(EventId = 25, EventName = "ConnectionRefusedForAddress", Level = LogLevel.Warning,
        Message = "Refused a connection from {Remote}: it already has {Max} connections open")]
    private static partial void ConnectionRefusedForAddressCore(ILogger logger, EndPoint? remote, int max);

    public static void LeastUsefulConnectionEvicted(this ILogger logger, string remote, string? peer, long idleMs, int maxConnections)
    {
        if (Passes(logger, LogLevel.Warning, 26, nameof(LeastUsefulConnectionEvicted)))
            LeastUsefulConnectionEvictedCore(logger, maxConnections, remote, peer, idleMs);
    }

    [LoggerMessage(EventId = 26, EventName = "LeastUsefulConnectionEvicted", Level = LogLevel.Warning,
        Message = "{Max} connections are open: closed the one useful least recently ({Remote}, {Name}, no request for {IdleMs} ms)")]
    private static partial void LeastUsefulConnectionEvictedCore(ILogger logger, int max, string remote, string? name, long idleMs);

    public static void AcceptFailed(this ILogger logger, Exception exception)
    {
        if (Passes(logger, LogLevel.Warning, 24, nameof(AcceptFailed)))
            AcceptFailedCore(logger, exception);
    }

    [LoggerMessage(EventId = 24, EventName = "AcceptFailed", Level = LogLevel.Warning,
        Message = "Accepting a connection failed")]
    private static partial void AcceptFailedCore(ILogger logger, Exception exception);

    // 30-39: requests.
    public static void RequestFailed(this ILogger logger, string function, string? caller, Exception exception)
    {
        if (Passes(logger, LogLevel.Warning, 30, nameof(RequestFailed)))
            RequestFailedCore(logger, function, caller, exception);
    }

    [LoggerMessage(EventId = 30, EventName = "RequestFailed", Level = LogLevel.Warning,
        Message = "Function {Function} failed for caller {Caller}; the caller gets a RemoteException")]
    private static partial void RequestFailedCore(ILogger logger, string function, string? caller, Exception exception);

    // 40-49: hostile or broken input.
    public static void HelloRefused(this ILogger logger, string remote, string reason)
    {
        if (Passes(logger, LogLevel.Debug, 46, nameof(HelloRefused)))
            HelloRefusedCore(logger, remote, reason);
    }

    [LoggerMessage(EventId = 46, EventName = "HelloRefused", Level = LogLevel.Debug, Message = "Refused the hello from {Remote}: {Reason}")]
    private static partial void HelloRefusedCore(ILogger logger, string remote, string reason);

    public static void BeaconHintDropped(this ILogger logger, string name, int maxChecks)
    {
        if (Passes(logger, LogLevel.Debug, 44, nameof(BeaconHintDropped)))
            BeaconHintDroppedCore(logger, name, maxChecks);
    }

    [LoggerMessage(EventId = 44, EventName = "BeaconHintDropped", Level = LogLevel.Debug,
        Message = "Dropped a beacon hint about peer {Name}: {Max} checks are running")]
    private static partial void BeaconHintDroppedCore(ILogger logger, string name, int max);

    public static void MovedPeerUnreachable(this ILogger logger, string name, string instance, IPEndPoint endPoint, IPEndPoint movedTo)
    {
        if (Passes(logger, LogLevel.Warning, 45, nameof(MovedPeerUnreachable)))
            MovedPeerUnreachableCore(logger, name, instance, endPoint, movedTo);
    }

    [LoggerMessage(EventId = 45, EventName = "MovedPeerUnreachable", Level = LogLevel.Warning,
        Message = "Peer {Name} (instance {Instance}) answers neither at {EndPoint} nor at {MovedTo}, where a beacon moved it; it keeps its endpoint until it answers or expires")]
    private static partial void MovedPeerUnreachableCore(ILogger logger, string name, string instance, IPEndPoint endPoint, IPEndPoint movedTo);

    public static void HostileInputRejected(this ILogger logger, string remote, Exception reason)
    {
        if (Passes(logger, LogLevel.Warning, 40, nameof(HostileInputRejected)))
            HostileInputRejectedCore(logger, remote, reason.Message, reason);
    }

    [LoggerMessage(EventId = 40, EventName = "HostileInputRejected", Level = LogLevel.Warning,
        Message = "Closed the connection from {Remote} after input that breaks the protocol: {Reason}")]
    private static partial void HostileInputRejectedCore(ILogger logger, string remote, string reason, Exception exception);

    public static void BeaconDropped(this ILogger logger, Exception reason)
    {
        if (Passes(logger, LogLevel.Debug, 41, nameof(BeaconDropped)))
            BeaconDroppedCore(logger, reason);
    }

    [LoggerMessage(EventId = 41, EventName = "BeaconDropped", Level = LogLevel.Debug,
        Message = "Dropped a beacon that could not be handled")]
    private static partial void BeaconDroppedCore(ILogger logger, Exception exception);

    public static void DiscoveryReceiveFailed(this ILogger logger, Exception exception)
    {
        if (Passes(logger, LogLevel.Warning, 42, nameof(DiscoveryReceiveFailed)))
            DiscoveryReceiveFailedCore(logger, exception);
    }

    [LoggerMessage(EventId = 42, EventName = "DiscoveryReceiveFailed", Level = LogLevel.Warning,
        Message = "Discovery receive failed; retrying")]
    private static partial void DiscoveryReceiveFailedCore(ILogger logger, Exception exception);

    public static void BeaconSendFailed(this ILogger logger, IPEndPoint destination, Exception exception)
    {
        if (Passes(logger, LogLevel.Debug, 43, nameof(BeaconSendFailed)))
            BeaconSendFailedCore(logger, destination, exception);
    }

    [LoggerMessage(EventId = 43, EventName = "BeaconSendFailed", Level = LogLevel.Debug,
        Message = "Could not send a beacon to {Destination}")]
    private static partial void BeaconSendFailedCore(ILogger logger, IPEndPoint destination, Exception exception);

    /// <summary>
    /// Whether a message of a rate-limited event is written now. The first one after some were held back is
    /// preceded by a <see cref="MessagesSuppressed"/> line that says how many.
    /// </summary>
    private static bool Passes(ILogger logger, LogLevel level, int eventId, string eventName)
    {
        if (!logger.IsEnabled(level) || !LogLimiter.For(logger).TryPass(eventId, out var suppressed))
            return false;
        if (suppressed > 0)
            MessagesSuppressed(logger, level, suppressed, eventName, LogLimiter.MaxPerWindow, LogLimiter.Window);
        return true;
    }

    [LoggerMessage(EventId = 49, EventName = "MessagesSuppressed",
        Message = "{Count} messages of event {EventName} were not logged: at most {MaxPerWindow} are logged per {Window}")]
    private static partial void MessagesSuppressed(ILogger logger, LogLevel level, int count, string eventName, int maxPerWindow, TimeSpan window);
}
