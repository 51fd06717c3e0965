using System.Net;

namespace P2PLocal.Rpc;

/// <summary>
/// Who is calling: the caller's node name and instance as its connection's hello gave them, and where the call came
/// from. A <c>[P2PService]</c> method that declares a <see cref="CallContext"/> parameter gets it (it is not sent on
/// the wire, like a <see cref="CancellationToken"/>); dynamic handlers get it through the
/// <see cref="Node.Register(string, Func{IReadOnlyDictionary{string, object}, CallContext, CancellationToken, ValueTask{object}})"/>
/// overload.
/// </summary>
/// <remarks>
/// Immutable and thread-safe; one instance serves every call of one incoming connection. <see cref="PeerName"/> and
/// <see cref="InstanceId"/> are what the caller says it is: without secure mode nothing proves them, so authorize on
/// <see cref="PeerId"/> once it is set.
/// </remarks>
public sealed class CallContext
{
    /// <summary>Creates a context; the node builds one per incoming connection.</summary>
    /// <param name="peerName">The caller's node name.</param>
    /// <param name="instanceId">The caller's instance id.</param>
    /// <param name="remoteEndPoint">The caller's address and port, when known.</param>
    /// <param name="peerId">The caller's verified identity, or <see langword="null"/> when none was verified.</param>
    /// <exception cref="ArgumentNullException"><paramref name="peerName"/> or <paramref name="instanceId"/> is null.</exception>
    public CallContext(string peerName, string instanceId, IPEndPoint? remoteEndPoint, string? peerId = null)
    {
        ArgumentNullException.ThrowIfNull(peerName);
        ArgumentNullException.ThrowIfNull(instanceId);
        PeerName = peerName;
        InstanceId = instanceId;
        RemoteEndPoint = remoteEndPoint;
        PeerId = peerId;
    }

    /// <summary>The name the calling node gave in its hello (claimed, not proved).</summary>
    public string PeerName { get; }

    /// <summary>The instance id the calling node gave in its hello (claimed, not proved).</summary>
    public string InstanceId { get; }

    /// <summary>The address and port the call came from, or <see langword="null"/> when the transport has none.</summary>
    public IPEndPoint? RemoteEndPoint { get; }

    /// <summary>
    /// The caller's verified identity (the hash of its key, once secure mode exists); <see langword="null"/> when the
    /// connection is not authenticated, which is always the case today.
    /// </summary>
    public string? PeerId { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{PeerName} ({InstanceId}) at {RemoteEndPoint?.ToString() ?? "?"}";
}
