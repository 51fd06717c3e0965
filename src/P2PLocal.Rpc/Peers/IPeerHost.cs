using System.Net;

namespace P2PLocal.Rpc;

/// <summary>
/// What the peer table needs from the node that owns it (implemented by <see cref="Node"/>): who this node is, its
/// clock, and two questions only a connection can answer. The table never calls the node otherwise.
/// </summary>
internal interface IPeerHost
{
    /// <summary>This node's name.</summary>
    string Name { get; }

    /// <summary>This node's instance id.</summary>
    string InstanceId { get; }

    /// <summary>This node's options.</summary>
    NodeOptions Options { get; }

    /// <summary>Whether the node shut down.</summary>
    bool IsDisposed { get; }

    /// <summary>Now, on the node's <see cref="NodeOptions.TimeProvider"/>.</summary>
    DateTimeOffset Now { get; }

    /// <summary>This node as a peer sees it (to check claims on its own name).</summary>
    PeerInfo SelfInfo { get; }

    /// <summary>Whether the peer instance still serves at its endpoint (used when another instance claims its name).</summary>
    Task<bool> IsAliveAsync(PeerInfo peer);

    /// <summary>Whether a node of the peer's instance answers at <paramref name="endPoint"/> now, on a connection of its own.</summary>
    Task<bool> AnswersAtAsync(PeerInfo peer, IPEndPoint endPoint, CancellationToken cancellationToken);

    /// <summary>The peer instance moved to <paramref name="endPoint"/>: close a pooled connection that goes elsewhere.</summary>
    void DropConnection(string instanceId, IPEndPoint endPoint);
}
