using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using MessagePack;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Transport;

/// <summary>
/// One connection per peer instance: opened once (concurrent callers share the attempt), replaced when it closed,
/// forgotten by its own close (never a successor's), reaped when idle or stalled, disposed at shutdown.
/// </summary>
/// <remarks>Thread-safe.</remarks>
internal sealed class ConnectionPool : IConnectionPool
{
    private readonly ConcurrentDictionary<string, Task<ClientConnection>> _connections = new(StringComparer.Ordinal);
    private readonly Hello _localHello;
    private readonly MessagePackSerializerOptions _serializerOptions;
    private readonly NodeOptions _options;
    private readonly Security.TlsChannel? _tls;
    private readonly ILogger _logger;
    private readonly Action<PeerAddress> _peerRestarted;
    private readonly PeerDialer? _dial;
    private int _disposed;

    /// <param name="localHello">This node's hello.</param>
    /// <param name="serializerOptions">The node's serializer options.</param>
    /// <param name="options">Timeouts, buffer limits and the clock (<see cref="NodeOptions.TimeProvider"/>).</param>
    /// <param name="tls">The node's TLS side in secure mode; null for an open node.</param>
    /// <param name="logger">Where opened and closed connections are logged.</param>
    /// <param name="peerRestarted">Told when an endpoint answers as another instance than the one expected.</param>
    /// <param name="dial">Opens connections (null: TCP; tests pass an in-memory peer, see <see cref="PeerDialer"/>).</param>
    public ConnectionPool(Hello localHello, MessagePackSerializerOptions serializerOptions, NodeOptions options, Security.TlsChannel? tls,
        ILogger logger, Action<PeerAddress> peerRestarted, PeerDialer? dial = null)
    {
        _dial = dial;
        _localHello = localHello;
        _serializerOptions = serializerOptions;
        _options = options;
        _tls = tls;
        _logger = logger;
        _peerRestarted = peerRestarted;
    }

    private bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The connections opened and not forgotten yet, some perhaps closing (a snapshot, for tests and diagnostics).</summary>
    public IReadOnlyList<ClientConnection> Connections =>
        [.. _connections.Values.Where(c => c.IsCompletedSuccessfully).Select(c => c.Result)];

    public bool TryGetOpen(string instanceId, [NotNullWhen(true)] out ClientConnection? connection)
    {
        if (_connections.TryGetValue(instanceId, out var ready) && ready.IsCompletedSuccessfully && !ready.Result.IsClosed)
        {
            connection = ready.Result;
            return true;
        }

        connection = null;
        return false;
    }

    public async Task<ClientConnection> GetAsync(PeerAddress peer, CancellationToken cancellationToken)
    {
        while (true)
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            // One connect per peer instance: a factory that lost a GetOrAdd race would open a connection nobody tracks.
            if (!_connections.TryGetValue(peer.InstanceId, out var connecting))
            {
                var opening = new TaskCompletionSource<ClientConnection>(TaskCreationOptions.RunContinuationsAsynchronously);
                connecting = _connections.GetOrAdd(peer.InstanceId, opening.Task);
                if (connecting == opening.Task)
                    _ = ConnectIntoAsync(peer, opening);
            }

            try
            {
                var connection = await connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
                if (!connection.IsClosed)
                    return connection;
            }
            catch (Exception e) when (e is PeerConnectionException or PeerBusyException or PeerAuthenticationException)
            {
                // Whether or not this caller's token fired too: a failed connect kept here would fail the next caller unheard.
                _connections.TryRemove(new KeyValuePair<string, Task<ClientConnection>>(peer.InstanceId, connecting));
                throw;
            }

            // The connection closed since it was opened: drop it and open another.
            _connections.TryRemove(new KeyValuePair<string, Task<ClientConnection>>(peer.InstanceId, connecting));
        }
    }

    private async Task ConnectIntoAsync(PeerAddress peer, TaskCompletionSource<ClientConnection> opening)
    {
        try
        {
            opening.TrySetResult(await ConnectAsync(peer).ConfigureAwait(false));
        }
        catch (Exception e)
        {
            opening.TrySetException(e);
        }
    }

    private async Task<ClientConnection> ConnectAsync(PeerAddress peer)
    {
        try
        {
            var connection = await ClientConnection.ConnectAsync(_dial, peer.EndPoint, peer.Name, peer.InstanceId, _localHello, _serializerOptions,
                _options.ConnectTimeout, _options.MaxBufferedBytesPerConnection, _tls, peer.PeerId, _options.TimeProvider, CancellationToken.None).ConfigureAwait(false);
            connection.InlineCompletions = _options.InlineCompletions;
            _logger.ConnectionOpened("outbound", connection.RemoteEndPoint);
            // Remove this connection's entry only: by key alone, a late continuation would delete the one that replaced it.
            _ = connection.Closed.ContinueWith(closed => { Forget(peer.InstanceId, connection); _logger.ConnectionClosed("outbound", connection.RemoteEndPoint, closed.Result); }, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            if (IsDisposed)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                throw new ObjectDisposedException(nameof(ConnectionPool));
            }

            return connection;
        }
        catch (PeerRestartedException)
        {
            _peerRestarted(peer);
            throw;
        }
    }

    private void Forget(string instanceId, ClientConnection connection)
    {
        if (_connections.TryGetValue(instanceId, out var entry) && entry.IsCompletedSuccessfully && entry.Result == connection)
            _connections.TryRemove(new KeyValuePair<string, Task<ClientConnection>>(instanceId, entry));
    }

    public async Task<bool> AnswersAtAsync(PeerAddress peer, IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        if (IsDisposed)
            return false;
        try
        {
            var connection = await ClientConnection.ConnectAsync(_dial, endPoint, peer.Name, peer.InstanceId, _localHello, _serializerOptions,
                _options.ConnectTimeout, NodeOptions.DefaultMaxBufferedBytesPerConnection, _tls, peer.PeerId, _options.TimeProvider, cancellationToken).ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return false;
        }
    }

    public void Drop(string instanceId, IPEndPoint endPoint)
    {
        if (_connections.TryGetValue(instanceId, out var connecting) && connecting.IsCompletedSuccessfully
            && connecting.Result.RemoteEndPoint != endPoint.ToString()
            && _connections.TryRemove(new KeyValuePair<string, Task<ClientConnection>>(instanceId, connecting)))
            connecting.Result.Close();
    }

    public void Reap()
    {
        // Close our idle outgoing connections before the peer's reaper does, so a call never races that close.
        // The peer's idle timeout (from its hello) counts when it is shorter than ours.
        var ownIdleMs = _options.IdleConnectionTimeout.TotalMilliseconds;
        foreach (var (_, connecting) in _connections)
        {
            if (!connecting.IsCompletedSuccessfully || connecting.Result.CloseIfStalled(_options.StalledConnectionTimeout)
                || connecting.Result is not { PendingCount: 0 } connection)
                continue;
            var peerIdleMs = connection.PeerHello.IdleTimeoutMs;
            var idleMs = (peerIdleMs > 0 ? Math.Min(ownIdleMs, peerIdleMs) : ownIdleMs) / 2;
            if (connection.Clock.GetElapsedTime(connection.LastUsedTicks).TotalMilliseconds > idleMs)
                connection.Close();
        }
    }

    /// <summary>Closes every connection (waiting for those still opening). Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        foreach (var (_, connecting) in _connections)
        {
            try
            {
                await (await connecting.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is P2PException or ObjectDisposedException or OperationCanceledException)
            {
            }
        }

        _connections.Clear();
    }
}
