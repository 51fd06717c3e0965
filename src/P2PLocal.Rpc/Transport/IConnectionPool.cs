using System.Diagnostics.CodeAnalysis;
using System.Net;

namespace P2PLocal.Rpc.Transport;

/// <summary>
/// The outgoing connections of a node, one per peer instance: what the call path uses to reach a peer.
/// </summary>
/// <remarks>Thread-safe.</remarks>
internal interface IConnectionPool : IAsyncDisposable
{
    /// <summary>The open connection to the instance, if there is one (the call path's fast way: no allocation).</summary>
    bool TryGetOpen(string instanceId, [NotNullWhen(true)] out ClientConnection? connection);

    /// <summary>The open connection to the instance, opened once for all concurrent callers if needed; a closed one is replaced.</summary>
    /// <exception cref="PeerConnectionException">The peer cannot be reached, or it is another instance now (<see cref="PeerRestartedException"/>).</exception>
    /// <exception cref="PeerBusyException">The peer is full.</exception>
    /// <exception cref="PeerAuthenticationException">The peer is not trusted, or does not trust this node.</exception>
    /// <exception cref="ObjectDisposedException">The pool was disposed.</exception>
    Task<ClientConnection> GetAsync(PeerAddress peer, CancellationToken cancellationToken);

    /// <summary>Whether the instance answers at <paramref name="endPoint"/> now, on a connection of its own (not pooled).</summary>
    Task<bool> AnswersAtAsync(PeerAddress peer, IPEndPoint endPoint, CancellationToken cancellationToken);

    /// <summary>Closes the pooled connection to the instance unless it goes to <paramref name="endPoint"/> (the peer moved).</summary>
    void Drop(string instanceId, IPEndPoint endPoint);

    /// <summary>Closes connections that stalled or sat idle (on the pool's clock) for half the shorter idle timeout of the two sides.</summary>
    void Reap();
}
