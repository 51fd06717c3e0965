using System.Net;

namespace P2PLocal.Rpc;

/// <summary>A node seen on the network.</summary>
/// <param name="Name">The name the peer announced.</param>
/// <param name="Protocol">The discovery protocol the peer speaks (always this node's own).</param>
/// <param name="EndPoint">Where the peer serves requests.</param>
/// <param name="InstanceId">
/// A value unique to one run of the peer: a restarted peer has a new one. Empty for a legacy (Python p2p-local) peer.
/// </param>
/// <remarks>Immutable and thread-safe.</remarks>
public sealed record PeerInfo(string Name, string Protocol, IPEndPoint EndPoint, string InstanceId)
{
    /// <summary>When the peer's latest beacon arrived.</summary>
    public DateTimeOffset LastSeen { get; init; }

    /// <summary>When the peer started, as it announced (Unix time), or <see cref="DateTimeOffset.MinValue"/> for a legacy peer.</summary>
    public DateTimeOffset StartedAt { get; init; }

    /// <summary>
    /// True for a node of the Python p2p-local project (a beacon with only three fields). It speaks XML-RPC: requests
    /// to it need <see cref="NodeOptions.LegacyInterop"/>, and fail with <see cref="P2PException"/> without it.
    /// </summary>
    public bool IsLegacy => InstanceId.Length == 0;

    /// <summary>How often the peer beacons; it expires after about three missed intervals.</summary>
    public TimeSpan AdvertiseInterval { get; init; }

    /// <summary>
    /// The verified id of a secure peer (its key's <see cref="NodeIdentity.Id"/>, from its sealed beacon; calls check
    /// that the node answering at <see cref="EndPoint"/> proves it), or null for a peer of an open node.
    /// </summary>
    public string? PeerId { get; init; }
}
