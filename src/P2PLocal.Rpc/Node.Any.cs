using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc;

// Calls addressed to a service (issue 14): the call path of PeerDirectory.Any, to one peer instance.
public sealed partial class Node
{
    /// <summary>
    /// Calls <paramref name="function"/> on the peer instance <paramref name="peer"/> (not on whoever holds its name
    /// now). Says whether the request was sent: <see cref="PeerNotFoundException"/> (the instance left) and
    /// <see cref="PeerUnreachableException"/> (no connection) mean it was not.
    /// </summary>
    internal async Task<TResult> InvokeOnAsync<TState, TResult>(PeerInfo peer, string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TResult> readResult, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (Volatile.Read(ref _started) == 0)
            throw new InvalidOperationException($"Node '{Name}' has not started: call StartAsync before calling peers.");
        ThrowIfOwnNameContested();
        if (!Peers.TryGet(peer.Name, out var current) || current.InstanceId != peer.InstanceId)
            throw new PeerNotFoundException($"Peer '{peer.Name}' (instance {peer.InstanceId}) left before '{function}' was sent to it.") { PeerName = peer.Name };
        ClientConnection connection;
        try
        {
            connection = await _pool.GetAsync(AddressOf(peer), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is PeerConnectionException or PeerAuthenticationException && !cancellationToken.IsCancellationRequested)
        {
            throw new PeerUnreachableException($"Peer '{peer.Name}' could not be reached, so '{function}' was not sent to it: {e.Message}", e);
        }

        return await connection.InvokeAsync(function, state, writeKwargs, readResult, _options.RequestTimeout, cancellationToken).ConfigureAwait(false);
    }
}
