using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using MessagePack;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.Server;

/// <summary>Accepts incoming TCP connections and owns the <see cref="ServerConnection"/>s made from them.</summary>
/// <remarks>
/// Slots are bounded twice: <see cref="NodeOptions.MaxIncomingConnections"/> in all, and
/// <see cref="NodeOptions.MaxConnectionsPerAddress"/> per remote address (loopback exempt). When every slot is taken,
/// the connection that has been useful least recently makes room; a caller that cannot get in is told why
/// (a NodeFull error) instead of seeing its connection drop (issue 8).
/// </remarks>
internal sealed class ConnectionListener
{
    /// <summary>Refusals that wait for the caller to read them; beyond this many at once, a refused socket just closes.</summary>
    private const int MaxLingeringRefusals = 32;
    private static readonly TimeSpan s_refusalLinger = TimeSpan.FromSeconds(1);

    private readonly Socket _socket;
    private readonly IRequestHost _host;
    private readonly int _maxFrameSize;
    private readonly int _maxConnections;
    private readonly ConcurrentDictionary<ServerConnection, byte> _connections = new();
    private readonly Dictionary<IPAddress, int> _perAddress = [];

    /// <summary>With <see cref="NodeOptions.LegacyInterop"/>: sniffs each accepted connection and serves HTTP ones as XML-RPC.</summary>
    private readonly Legacy.XmlRpcServer? _legacy;
    private Task _acceptLoop = Task.CompletedTask;
    private int _lingeringRefusals;

    public ConnectionListener(IPEndPoint bindTo, IRequestHost host, int maxFrameSize, int maxConnections)
    {
        _host = host;
        _maxFrameSize = maxFrameSize;
        _maxConnections = maxConnections;
        _legacy = host.Options.LegacyInterop ? new Legacy.XmlRpcServer(host, maxFrameSize) : null;
        _socket = new Socket(bindTo.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _socket.Bind(bindTo);
            _socket.Listen(512);
        }
        catch
        {
            _socket.Dispose();
            throw;
        }

        EndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    public IPEndPoint EndPoint { get; }

    public ICollection<ServerConnection> Connections => _connections.Keys;

    public void Start() => _acceptLoop = Task.Run(AcceptLoopAsync);

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket accepted;
            try
            {
                accepted = await _socket.AcceptAsync().ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.OperationAborted or SocketError.Interrupted or SocketError.Shutdown)
            {
                return;
            }
            catch (SocketException e)
            {
                // Out of descriptors and the like: keep serving the connections we have.
                _host.Logger.AcceptFailed(e);
                await Task.Delay(50).ConfigureAwait(false);
                continue;
            }

            var address = CountedAddress(accepted);
            if (address is not null && !TryTakeAddressSlot(address))
            {
                var limit = _host.Options.MaxConnectionsPerAddress;
                _host.Logger.ConnectionRefusedForAddress(accepted.RemoteEndPoint, limit);
                RpcMetrics.ConnectionRejected();
                Refuse(accepted, $"Node '{_host.LocalHello.Name}' already has {limit} connections from {address} open (MaxConnectionsPerAddress={limit}).");
                continue;
            }

            if (_connections.Count + (_legacy?.Count ?? 0) >= _maxConnections && !EvictLeastUseful())
            {
                _host.Logger.ConnectionRefused(accepted.RemoteEndPoint, _maxConnections);
                RpcMetrics.ConnectionRejected();
                ReleaseAddressSlot(address);
                Refuse(accepted, $"Node '{_host.LocalHello.Name}' is full (MaxIncomingConnections={_maxConnections}); try again later.");
                continue;
            }

            if (_legacy is not null)
                _legacy.Sniff(accepted, () => ServeFramed(accepted, address), () => ReleaseAddressSlot(address));
            else
                ServeFramed(accepted, address);
        }
    }

    private void ServeFramed(Socket accepted, IPAddress? address)
    {
        try
        {
            var connection = new ServerConnection(accepted, _host, _maxFrameSize);
            _connections[connection] = 0;
            _host.Logger.ConnectionOpened("inbound", connection.RemoteEndPoint);
            _ = connection.Closed.ContinueWith(closed =>
                {
                    _connections.TryRemove(connection, out var _);
                    ReleaseAddressSlot(address);
                    _host.Logger.ConnectionClosed("inbound", connection.RemoteEndPoint, closed.Result);
                }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            ReleaseAddressSlot(address);
            accepted.Dispose();
        }
    }

    /// <summary>The address whose connections are counted, or null when it is not limited (loopback).</summary>
    private IPAddress? CountedAddress(Socket accepted)
    {
        if (accepted.RemoteEndPoint is not IPEndPoint remote)
            return null;
        var address = remote.Address.IsIPv4MappedToIPv6 ? remote.Address.MapToIPv4() : remote.Address;
        return IPAddress.IsLoopback(address) && !_host.Options.LimitLoopbackPerAddress ? null : address;
    }

    private bool TryTakeAddressSlot(IPAddress address)
    {
        lock (_perAddress)
        {
            var open = _perAddress.GetValueOrDefault(address);
            if (open >= _host.Options.MaxConnectionsPerAddress)
                return false;
            _perAddress[address] = open + 1;
            return true;
        }
    }

    private void ReleaseAddressSlot(IPAddress? address)
    {
        if (address is null)
            return;
        lock (_perAddress)
        {
            if (_perAddress.TryGetValue(address, out var open) && open > 1)
                _perAddress[address] = open - 1;
            else
                _perAddress.Remove(address);
        }
    }

    /// <summary>
    /// Makes room when every slot is taken: first the oldest connection that has not said hello (slowloris), else the
    /// one with nothing running that was useful least recently (a request, not a cancel or a refused call, counts as
    /// useful), so squatters that send tiny frames cannot lock honest callers out. Connections with requests running
    /// are never evicted; when all are busy, the newcomer is refused.
    /// </summary>
    private bool EvictLeastUseful()
    {
        if (_legacy?.TryEvictWaiting() == true)
            return true; // an XML-RPC connection still sending its request, like a framed one without hello
        ServerConnection? withoutHello = null, leastUseful = null;
        foreach (var connection in _connections.Keys)
        {
            if (connection.IsClosed)
                continue;
            if (connection.Peer is null)
            {
                if (withoutHello is null || connection.OpenedTicks < withoutHello.OpenedTicks)
                    withoutHello = connection;
            }
            else if (connection.RunningCount == 0 && (leastUseful is null || connection.LastUsefulTicks < leastUseful.LastUsefulTicks))
            {
                leastUseful = connection;
            }
        }

        var evicted = withoutHello ?? leastUseful;
        if (evicted is null)
            return false;
        if (evicted == withoutHello)
        {
            _host.Logger.ConnectionEvicted(evicted.RemoteEndPoint, _maxConnections);
            evicted.Close(new TimeoutException("Evicted: no hello while the connection limit was reached."));
        }
        else
        {
            var idleMs = (long)evicted.Clock.GetElapsedTime(evicted.LastUsefulTicks).TotalMilliseconds;
            _host.Logger.LeastUsefulConnectionEvicted(evicted.RemoteEndPoint, evicted.Peer?.Name, idleMs, _maxConnections);
            evicted.Close(new TimeoutException($"Evicted: no request for {idleMs} ms while the connection limit was reached."));
        }

        _connections.TryRemove(evicted, out _);
        return true;
    }

    /// <summary>
    /// Tells a caller it cannot get in (PROTOCOL.md: an error with id 0 before any hello), then closes. The socket is
    /// read and drained for a moment after our FIN, so the caller's unread hello does not turn the close into a reset
    /// that would discard the reason.
    /// </summary>
    private void Refuse(Socket accepted, string reason)
    {
        try
        {
            using var frame = new FrameBuffer(128);
            var writer = new MessagePackWriter(frame);
            Messages.WriteRefusal(ref writer, ErrorCode.Busy, Messages.NodeFullType, reason);
            writer.Flush();
            frame.Complete(int.MaxValue);
            accepted.Blocking = false; // a fresh socket's send buffer is empty: this never waits
            accepted.Send(frame.Frame.Span, SocketFlags.None);
            accepted.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            accepted.Dispose();
            return;
        }

        if (Interlocked.Increment(ref _lingeringRefusals) > MaxLingeringRefusals)
        {
            Interlocked.Decrement(ref _lingeringRefusals);
            accepted.Dispose();
            return;
        }

        _ = LingerAsync(accepted);
    }

    private async Task LingerAsync(Socket accepted)
    {
        var sink = new byte[256];
        using var timeout = new CancellationTokenSource(s_refusalLinger);
        try
        {
            accepted.Blocking = true;
            while (await accepted.ReceiveAsync(sink, SocketFlags.None, timeout.Token).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
        finally
        {
            accepted.Dispose();
            Interlocked.Decrement(ref _lingeringRefusals);
        }
    }

    /// <summary>
    /// Closes connections that never said hello in time, that made no request for too long (tiny frames such as
    /// cancels do not count), or whose peer has not read its replies for <paramref name="stallTimeout"/>.
    /// </summary>
    public void Reap(TimeSpan handshakeTimeout, TimeSpan idleTimeout, TimeSpan stallTimeout)
    {
        foreach (var connection in _connections.Keys)
        {
            if (connection.Peer is null && connection.Clock.GetElapsedTime(connection.LastFrameTicks) > handshakeTimeout)
                connection.Close(new TimeoutException("No hello in time."));
            else if (connection.RunningCount == 0 && connection.Clock.GetElapsedTime(connection.LastUsefulTicks) > idleTimeout)
                connection.Close(new TimeoutException("Idle."));
            else
                connection.CloseIfStalled(stallTimeout);
        }
    }

    /// <summary>Stops accepting, then drains every connection.</summary>
    public async Task DisposeAsync(TimeSpan grace)
    {
        _socket.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        await Task.WhenAll(_connections.Keys.Select(c => c.DrainAsync(grace)).Append(_legacy?.DrainAsync(grace) ?? Task.CompletedTask)).ConfigureAwait(false);
    }
}
