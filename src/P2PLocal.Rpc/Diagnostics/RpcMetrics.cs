using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace P2PLocal.Rpc.Diagnostics;

/// <summary>
/// Every instrument of the <c>P2PLocal.Rpc</c> meter (docs/observability.md lists them). The two call-duration
/// histograms follow the OpenTelemetry RPC semantic conventions; the rest are this library's own, under
/// <c>p2plocal.</c>. Each record method checks <see cref="Instrument.Enabled"/> first, so a process that does not
/// listen pays one field read per call site.
/// </summary>
internal static class RpcMetrics
{
    private static readonly Meter s_meter = new(NodeTelemetry.MeterName, typeof(RpcMetrics).Assembly.GetName().Version?.ToString());

#if NET9_0_OR_GREATER
    // The bucket boundaries the conventions ask for (seconds); older runtimes have no advice API.
    private static readonly InstrumentAdvice<double> s_durationAdvice = new()
    {
        HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
    };

    public static readonly Histogram<double> ClientDuration = s_meter.CreateHistogram("rpc.client.call.duration", "s",
        "Duration of outgoing calls, from the call to its result or error.", tags: null, advice: s_durationAdvice);

    public static readonly Histogram<double> ServerDuration = s_meter.CreateHistogram("rpc.server.call.duration", "s",
        "Duration of incoming requests, from dispatch to the handler's result or error.", tags: null, advice: s_durationAdvice);
#else
    public static readonly Histogram<double> ClientDuration = s_meter.CreateHistogram<double>("rpc.client.call.duration", "s",
        "Duration of outgoing calls, from the call to its result or error.");

    public static readonly Histogram<double> ServerDuration = s_meter.CreateHistogram<double>("rpc.server.call.duration", "s",
        "Duration of incoming requests, from dispatch to the handler's result or error.");
#endif

    private static readonly UpDownCounter<long> s_activeConnections = s_meter.CreateUpDownCounter<long>("p2plocal.active_connections",
        "{connection}", "Open TCP connections, by direction (inbound: peers calling this node; outbound: this node calling peers).");

    private static readonly Counter<long> s_rejectedConnections = s_meter.CreateCounter<long>("p2plocal.rejected_connections",
        "{connection}", "Incoming connections closed at once because MaxIncomingConnections were open.");

    // A count per running node's peer table (keyed by the table), so this layer needs no peer table type.
    private static readonly ConcurrentDictionary<object, Func<int>> s_directories = new();

    // Observed, not counted: a directory's Count is the truth, whatever path a peer took in or out.
    internal static readonly ObservableUpDownCounter<long> KnownPeers = s_meter.CreateObservableUpDownCounter("p2plocal.known_peers",
        static () => s_directories.Values.Sum(static count => (long)count()), "{peer}", "Peers the running nodes of this process see (summed over nodes).");

    private static readonly Counter<long> s_beaconsSent = s_meter.CreateCounter<long>("p2plocal.beacons.sent",
        "{beacon}", "Beacons sent, by kind (hello, alive, bye); one per destination.");

    private static readonly Counter<long> s_beaconsReceived = s_meter.CreateCounter<long>("p2plocal.beacons.received",
        "{beacon}", "Beacons of this node's protocol received from other instances, by kind.");

    private static readonly Counter<long> s_beaconsRejected = s_meter.CreateCounter<long>("p2plocal.beacons.rejected",
        "{datagram}", "Datagrams on the discovery port that were dropped, by reason.");

    private static readonly Counter<long> s_networkIo = s_meter.CreateCounter<long>("p2plocal.network.io",
        "By", "Bytes of TCP frames (length prefix included) sent and received, by network.io.direction.");

    private static readonly Counter<long> s_refusedRequests = s_meter.CreateCounter<long>("p2plocal.refused_requests",
        "{request}", "Requests answered with a refusal instead of running, and frames refused for their size, by reason.");

    /// <summary>Whether the client-call histogram has a listener.</summary>
    public static bool ClientDurationEnabled => ClientDuration.Enabled;

    /// <summary>Whether the server-call histogram has a listener.</summary>
    public static bool ServerDurationEnabled => ServerDuration.Enabled;

    /// <summary>A connection opened; <paramref name="inbound"/>: a peer calls this node (else this node calls a peer).</summary>
    public static void ConnectionOpened(bool inbound)
    {
        if (s_activeConnections.Enabled)
            s_activeConnections.Add(1, Direction(inbound));
    }

    /// <summary>A connection counted by <see cref="ConnectionOpened"/> closed.</summary>
    public static void ConnectionClosed(bool inbound)
    {
        if (s_activeConnections.Enabled)
            s_activeConnections.Add(-1, Direction(inbound));
    }

    public static void ConnectionRejected()
    {
        if (s_rejectedConnections.Enabled)
            s_rejectedConnections.Add(1);
    }

    /// <summary>Counts a running node's peers in <c>p2plocal.known_peers</c> until <see cref="UntrackPeers"/>.</summary>
    public static void TrackPeers(object peers, Func<int> count) => s_directories.TryAdd(peers, count);

    /// <summary>The node shut down: its peers no longer count.</summary>
    public static void UntrackPeers(object peers) => s_directories.TryRemove(peers, out _);

    /// <summary>A beacon sent, by kind: <c>hello</c>, <c>alive</c>, <c>bye</c>, <c>legacy</c>.</summary>
    public static void BeaconSent(string kind)
    {
        if (s_beaconsSent.Enabled)
            s_beaconsSent.Add(1, new KeyValuePair<string, object?>("p2plocal.beacon.kind", kind));
    }

    /// <summary>A beacon received, by kind (see <see cref="BeaconSent"/>).</summary>
    public static void BeaconReceived(string kind)
    {
        if (s_beaconsReceived.Enabled)
            s_beaconsReceived.Add(1, new KeyValuePair<string, object?>("p2plocal.beacon.kind", kind));
    }

    /// <summary>A datagram dropped: <c>not_loopback</c>, <c>invalid</c> (not a beacon of this protocol), <c>error</c>.</summary>
    public static void BeaconRejected(string reason)
    {
        if (s_beaconsRejected.Enabled)
            s_beaconsRejected.Add(1, new KeyValuePair<string, object?>("p2plocal.beacon.reject_reason", reason));
    }

    public static void BytesSent(int count)
    {
        if (s_networkIo.Enabled)
            s_networkIo.Add(count, new KeyValuePair<string, object?>("network.io.direction", "transmit"));
    }

    public static void BytesReceived(int count)
    {
        if (s_networkIo.Enabled)
            s_networkIo.Add(count, new KeyValuePair<string, object?>("network.io.direction", "receive"));
    }

    /// <summary>A request refused: <c>busy</c>, <c>too_large</c>, <c>shutting_down</c>, <c>method_not_found</c>.</summary>
    public static void RequestRefused(string reason)
    {
        if (s_refusedRequests.Enabled)
            s_refusedRequests.Add(1, new KeyValuePair<string, object?>("p2plocal.refusal.reason", reason));
    }

    private static readonly Counter<long> s_eventsDropped = s_meter.CreateCounter<long>("p2plocal.events.dropped",
        unit: "{event}", description: "Events dropped because a queue was full or a connection was lost (issue 14); tag side: publisher or subscriber.");

    /// <summary>An event dropped on the <c>publisher</c> or the <c>subscriber</c> side.</summary>
    public static void EventDropped(string side)
    {
        if (s_eventsDropped.Enabled)
            s_eventsDropped.Add(1, new KeyValuePair<string, object?>("p2plocal.event.side", side));
    }

    private static KeyValuePair<string, object?> Direction(bool inbound) =>
        new("p2plocal.connection.direction", inbound ? "inbound" : "outbound");
}
