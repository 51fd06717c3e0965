using System.Net;
using System.Net.Sockets;

namespace P2PLocal.Rpc.Cli;

/// <summary>One datagram heard on the discovery port.</summary>
/// <param name="Time">When it arrived.</param>
/// <param name="Source">The address and port it came from.</param>
/// <param name="Bytes">Its bytes (at most <see cref="DiscoveryProbe.MaxDatagram"/>).</param>
/// <param name="Length">Its length as received.</param>
/// <param name="Beacon">What it says, or null when it is not a beacon.</param>
internal sealed record HeardDatagram(DateTimeOffset Time, IPEndPoint Source, byte[] Bytes, int Length, BeaconMessage? Beacon);

/// <summary>
/// Hears every datagram on the discovery port, as a node's own socket does (bound to 0.0.0.0 with address reuse, so it
/// shares the port with the nodes on this host) but keeps them all, beacon or not, of any protocol. It never sends.
/// In loopback scope, datagrams from other hosts are ignored, as a loopback node ignores them.
/// </summary>
/// <remarks>
/// Thread-safe. Keeps at most <see cref="MaxKept"/> datagrams (a flood cannot grow the tool's memory past about
/// 20 MB); later ones are still raised through <see cref="Received"/>, not kept.
/// </remarks>
internal sealed class DiscoveryProbe : IAsyncDisposable
{
    /// <summary>Bytes kept of one datagram: a beacon is at most 1024; longer datagrams are shown cut.</summary>
    public const int MaxDatagram = 2048;

    /// <summary>Datagrams kept for <see cref="Heard"/>; a flood past it cannot grow the tool's memory.</summary>
    public const int MaxKept = 10_000;

    private readonly Socket _socket;
    private readonly DiscoveryScope _scope;
    private readonly int _maxKept;
    private readonly List<HeardDatagram> _heard = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly object _gate = new();
    private readonly List<(Func<HeardDatagram, bool> Match, TaskCompletionSource<HeardDatagram> Done)> _waiters = [];
    private Task _receiveLoop = Task.CompletedTask;
    private long _ignored;
    private long _notKept;

    private DiscoveryProbe(Socket socket, DiscoveryScope scope, int maxKept)
    {
        _socket = socket;
        _scope = scope;
        _maxKept = maxKept;
    }

    /// <summary>Raised on the receive loop for every datagram kept or not; handlers must be quick and must not throw.</summary>
    public event Action<HeardDatagram>? Received;

    /// <summary>Datagrams from other hosts ignored in loopback scope.</summary>
    public long Ignored => Interlocked.Read(ref _ignored);

    /// <summary>Datagrams heard but not kept because <see cref="Heard"/> was full.</summary>
    public long NotKept => Interlocked.Read(ref _notKept);

    /// <summary>Binds the discovery port with address reuse and starts hearing.</summary>
    /// <param name="port">The discovery port.</param>
    /// <param name="scope">In loopback scope, datagrams from other hosts are ignored.</param>
    /// <param name="maxKept">How many datagrams <see cref="Heard"/> keeps; 0 for none (<see cref="Received"/> still fires).</param>
    /// <exception cref="SocketException">The port cannot be bound (another program holds it without address reuse).</exception>
    public static DiscoveryProbe Open(int port, DiscoveryScope scope, int maxKept = MaxKept)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxKept);
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            // As DiscoveryService: on Linux SO_REUSEADDR + SO_REUSEPORT, so every socket on the port gets every broadcast.
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.ReceiveBufferSize = 1 << 20;
            socket.Bind(new IPEndPoint(IPAddress.Any, port));
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var probe = new DiscoveryProbe(socket, scope, maxKept);
        probe._receiveLoop = Task.Run(probe.ReceiveLoopAsync);
        return probe;
    }

    /// <summary>A snapshot of the datagrams kept so far, oldest first.</summary>
    public IReadOnlyList<HeardDatagram> Heard
    {
        get
        {
            lock (_gate)
                return [.. _heard];
        }
    }

    /// <summary>Completes with the first datagram (kept, or heard from now on) that matches; null when the wait ends first.</summary>
    public async Task<HeardDatagram?> WaitForAsync(Func<HeardDatagram, bool> match, TimeSpan wait, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<HeardDatagram>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            var found = _heard.Find(d => match(d));
            if (found is not null)
                return found;
            _waiters.Add((match, done));
        }

        try
        {
            return await done.Task.WaitAsync(wait, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return null;
        }
        finally
        {
            lock (_gate)
                _waiters.RemoveAll(w => w.Done == done);
        }
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = new byte[MaxDatagram];
        EndPoint any = new IPEndPoint(IPAddress.Any, 0);
        while (!_stop.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, any, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                break;
            }
            catch (SocketException)
            {
                // A datagram longer than the buffer on some systems, or an ICMP error: keep hearing.
                continue;
            }

            var source = (IPEndPoint)received.RemoteEndPoint;
            if (_scope == DiscoveryScope.Loopback && !IPAddress.IsLoopback(source.Address))
            {
                Interlocked.Increment(ref _ignored);
                continue;
            }

            var bytes = buffer.AsSpan(0, received.ReceivedBytes).ToArray();
            BeaconMessage.TryDecode(bytes, out var beacon);
            Add(new HeardDatagram(DateTimeOffset.UtcNow, source, bytes, received.ReceivedBytes, beacon));
        }
    }

    private void Add(HeardDatagram datagram)
    {
        List<TaskCompletionSource<HeardDatagram>>? matched = null;
        lock (_gate)
        {
            if (_heard.Count < _maxKept)
                _heard.Add(datagram);
            else
                Interlocked.Increment(ref _notKept);
            foreach (var (match, done) in _waiters)
            {
                if (match(datagram))
                    (matched ??= []).Add(done);
            }
        }

        matched?.ForEach(done => done.TrySetResult(datagram));
        Received?.Invoke(datagram);
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
            return;
        await _stop.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        await _receiveLoop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
