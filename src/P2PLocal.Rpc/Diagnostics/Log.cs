using System.Net;
using Microsoft.Extensions.Logging;

namespace P2PLocal.Rpc.Diagnostics;

/// <summary>
/// Every log message of the library, source-generated (<see cref="LoggerMessageAttribute"/>), each with its own
/// event id; docs/observability.md lists them. Events a stranger on the network can trigger at will pass through a
/// <see cref="LogLimiter"/> so a flood cannot fill the log; their messages end with the count suppressed before them.
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
        if (Passes(logger, LogLevel.Information, 10, out var suppressed))
            PeerJoinedCore(logger, peer, endPoint, suppressed);
    }

    [LoggerMessage(EventId = 10, EventName = "PeerJoined", Level = LogLevel.Information,
        Message = "Peer {Peer} joined at {EndPoint} ({Suppressed} similar messages suppressed before)")]
    private static partial void PeerJoinedCore(ILogger logger, string peer, IPEndPoint endPoint, int suppressed);

    public static void PeerLeft(this ILogger logger, string peer, IPEndPoint endPoint)
    {
        if (Passes(logger, LogLevel.Information, 11, out var suppressed))
            PeerLeftCore(logger, peer, endPoint, suppressed);
    }

    [LoggerMessage(EventId = 11, EventName = "PeerLeft", Level = LogLevel.Information,
        Message = "Peer {Peer} at {EndPoint} left ({Suppressed} similar messages suppressed before)")]
    private static partial void PeerLeftCore(ILogger logger, string peer, IPEndPoint endPoint, int suppressed);

    public static void PeerExpired(this ILogger logger, string peer, IPEndPoint endPoint, TimeSpan silence)
    {
        if (Passes(logger, LogLevel.Information, 12, out var suppressed))
            PeerExpiredCore(logger, peer, endPoint, silence, suppressed);
    }

    [LoggerMessage(EventId = 12, EventName = "PeerExpired", Level = LogLevel.Information,
        Message = "Peer {Peer} at {EndPoint} expired: no beacon for {Silence} ({Suppressed} similar messages suppressed before)")]
    private static partial void PeerExpiredCore(ILogger logger, string peer, IPEndPoint endPoint, TimeSpan silence, int suppressed);

    public static void PeerReplaced(this ILogger logger, string peer, IPEndPoint endPoint)
    {
        if (Passes(logger, LogLevel.Information, 13, out var suppressed))
            PeerReplacedCore(logger, peer, endPoint, suppressed);
    }

    [LoggerMessage(EventId = 13, EventName = "PeerReplaced", Level = LogLevel.Information,
        Message = "Peer {Peer} at {EndPoint} is gone; a new instance replaces it ({Suppressed} similar messages suppressed before)")]
    private static partial void PeerReplacedCore(ILogger logger, string peer, IPEndPoint endPoint, int suppressed);

    public static void NameConflict(this ILogger logger, string name, IPEndPoint existing, IPEndPoint contender)
    {
        if (Passes(logger, LogLevel.Warning, 14, out var suppressed))
            NameConflictCore(logger, name, existing, contender, suppressed);
    }

    [LoggerMessage(EventId = 14, EventName = "NameConflict", Level = LogLevel.Warning,
        Message = "Two live nodes claim the name {Name}: {Existing} and {Contender} ({Suppressed} similar messages suppressed before)")]
    private static partial void NameConflictCore(ILogger logger, string name, IPEndPoint existing, IPEndPoint contender, int suppressed);

    [LoggerMessage(EventId = 15, EventName = "PeerTableFull", Level = LogLevel.Warning,
        Message = "The peer table is full ({MaxPeers} peers); beacons of further instances are dropped")]
    public static partial void PeerTableFull(this ILogger logger, int maxPeers);

    [LoggerMessage(EventId = 16, EventName = "PeerEventHandlerFailed", Level = LogLevel.Error, Message = "A peer event handler threw")]
    public static partial void PeerEventHandlerFailed(this ILogger logger, Exception exception);

    // 20-29: connections.
    public static void ConnectionOpened(this ILogger logger, string direction, string remote)
    {
        if (Passes(logger, LogLevel.Debug, 20, out var suppressed))
            ConnectionOpenedCore(logger, direction, remote, suppressed);
    }

    [LoggerMessage(EventId = 20, EventName = "ConnectionOpened", Level = LogLevel.Debug,
        Message = "Opened {Direction} connection with {Remote} ({Suppressed} similar messages suppressed before)")]
    private static partial void ConnectionOpenedCore(ILogger logger, string direction, string remote, int suppressed);

    public static void ConnectionClosed(this ILogger logger, string direction, string remote, Exception? reason)
    {
        if (Passes(logger, LogLevel.Debug, 21, out var suppressed))
            ConnectionClosedCore(logger, direction, remote, reason?.Message ?? "closed in order", suppressed);
    }

    [LoggerMessage(EventId = 21, EventName = "ConnectionClosed", Level = LogLevel.Debug,
        Message = "Closed {Direction} connection with {Remote}: {Reason} ({Suppressed} similar messages suppressed before)")]
    private static partial void ConnectionClosedCore(ILogger logger, string direction, string remote, string reason, int suppressed);

    public static void ConnectionRefused(this ILogger logger, EndPoint? remote, int maxConnections)
    {
        if (Passes(logger, LogLevel.Warning, 22, out var suppressed))
            ConnectionRefusedCore(logger, remote, maxConnections, suppressed);
    }

    [LoggerMessage(EventId = 22, EventName = "ConnectionRefused", Level = LogLevel.Warning,
        Message = "Refused a connection from {Remote}: {MaxConnections} connections are open ({Suppressed} similar messages suppressed before)")]
    private static partial void ConnectionRefusedCore(ILogger logger, EndPoint? remote, int maxConnections, int suppressed);

    public static void ConnectionEvicted(this ILogger logger, string remote, int maxConnections)
    {
        if (Passes(logger, LogLevel.Warning, 23, out var suppressed))
            ConnectionEvictedCore(logger, maxConnections, remote, suppressed);
    }

    [LoggerMessage(EventId = 23, EventName = "ConnectionEvicted", Level = LogLevel.Warning,
        Message = "{MaxConnections} connections are open: closed the oldest one that never said hello ({Remote}) ({Suppressed} similar messages suppressed before)")]
    private static partial void ConnectionEvictedCore(ILogger logger, int maxConnections, string remote, int suppressed);

    public static void AcceptFailed(this ILogger logger, Exception exception)
    {
        if (Passes(logger, LogLevel.Warning, 24, out var suppressed))
            AcceptFailedCore(logger, suppressed, exception);
    }

    [LoggerMessage(EventId = 24, EventName = "AcceptFailed", Level = LogLevel.Warning,
        Message = "Accepting a connection failed ({Suppressed} similar messages suppressed before)")]
    private static partial void AcceptFailedCore(ILogger logger, int suppressed, Exception exception);

    // 30-39: requests.
    public static void RequestFailed(this ILogger logger, string function, string? caller, Exception exception)
    {
        if (Passes(logger, LogLevel.Warning, 30, out var suppressed))
            RequestFailedCore(logger, function, caller, suppressed, exception);
    }

    [LoggerMessage(EventId = 30, EventName = "RequestFailed", Level = LogLevel.Warning,
        Message = "Function {Function} failed for caller {Caller}; the caller gets a RemoteException ({Suppressed} similar messages suppressed before)")]
    private static partial void RequestFailedCore(ILogger logger, string function, string? caller, int suppressed, Exception exception);

    // 40-49: hostile or broken input.
    public static void HostileInputRejected(this ILogger logger, string remote, Exception reason)
    {
        if (Passes(logger, LogLevel.Warning, 40, out var suppressed))
            HostileInputRejectedCore(logger, remote, reason.Message, suppressed, reason);
    }

    [LoggerMessage(EventId = 40, EventName = "HostileInputRejected", Level = LogLevel.Warning,
        Message = "Closed the connection from {Remote} after input that breaks the protocol: {Reason} ({Suppressed} similar messages suppressed before)")]
    private static partial void HostileInputRejectedCore(ILogger logger, string remote, string reason, int suppressed, Exception exception);

    public static void BeaconDropped(this ILogger logger, Exception reason)
    {
        if (Passes(logger, LogLevel.Debug, 41, out var suppressed))
            BeaconDroppedCore(logger, suppressed, reason);
    }

    [LoggerMessage(EventId = 41, EventName = "BeaconDropped", Level = LogLevel.Debug,
        Message = "Dropped a beacon that could not be handled ({Suppressed} similar messages suppressed before)")]
    private static partial void BeaconDroppedCore(ILogger logger, int suppressed, Exception exception);

    public static void DiscoveryReceiveFailed(this ILogger logger, Exception exception)
    {
        if (Passes(logger, LogLevel.Warning, 42, out var suppressed))
            DiscoveryReceiveFailedCore(logger, suppressed, exception);
    }

    [LoggerMessage(EventId = 42, EventName = "DiscoveryReceiveFailed", Level = LogLevel.Warning,
        Message = "Discovery receive failed; retrying ({Suppressed} similar messages suppressed before)")]
    private static partial void DiscoveryReceiveFailedCore(ILogger logger, int suppressed, Exception exception);

    public static void BeaconSendFailed(this ILogger logger, IPEndPoint destination, Exception exception)
    {
        if (Passes(logger, LogLevel.Debug, 43, out var suppressed))
            BeaconSendFailedCore(logger, destination, suppressed, exception);
    }

    [LoggerMessage(EventId = 43, EventName = "BeaconSendFailed", Level = LogLevel.Debug,
        Message = "Could not send a beacon to {Destination} ({Suppressed} similar messages suppressed before)")]
    private static partial void BeaconSendFailedCore(ILogger logger, IPEndPoint destination, int suppressed, Exception exception);

    private static bool Passes(ILogger logger, LogLevel level, int eventId, out int suppressed)
    {
        suppressed = 0;
        return logger.IsEnabled(level) && LogLimiter.For(logger).TryPass(eventId, out suppressed);
    }
}
