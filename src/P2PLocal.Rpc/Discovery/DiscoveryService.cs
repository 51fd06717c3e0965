using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Diagnostics;

namespace P2PLocal.Rpc.Discovery;

/// <summary>
/// The UDP side of a node: one socket bound to the shared discovery port (address reuse, so many nodes share a
/// host), a receive loop that feeds the <see cref="PeerDirectory"/>, and an advertiser that sends a hello at once,
/// an alive beacon every interval, and a goodbye on shutdown. A hello from another node is answered at once, which
/// is what makes joining take milliseconds instead of an interval.
/// </summary>
internal sealed class DiscoveryService : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NodeOptions _options;
    private readonly PeerDirectory _peers;
    private readonly Func<int> _servicePort;
    private readonly IReadOnlyList<BeaconTarget> _targets;
    private readonly string _instanceId;
    private readonly DateTimeOffset _startedAt;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly TimeProvider _time;
    private Task _receiveLoop = Task.CompletedTask;
    private Task _advertiseLoop = Task.CompletedTask;
    private const int AnswerSpacingMs = 20;
    private long _lastAnswerTicks;
    private int _answerScheduled;
    private long _dropped;
    private readonly Security.BeaconSeal? _seal;

    public DiscoveryService(NodeOptions options, PeerDirectory peers, Func<int> servicePort, IReadOnlyList<BeaconTarget> targets,
        string instanceId, DateTimeOffset startedAt, ILogger logger, Security.BeaconSeal? seal = null)
    {
        _seal = seal;
        _options = options;
        _peers = peers;
        _servicePort = servicePort;
        _targets = targets;
        _instanceId = instanceId;
        _startedAt = startedAt;
        _logger = logger;
        _time = options.TimeProvider;
        Beacon.ThrowIfTooLong(options.Protocol, options.Name, instanceId, options.AdvertiseInterval, startedAt);
        if (seal is not null)
            ThrowIfSealedTooLong(seal, options, instanceId, startedAt);
        _socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            // On Linux this sets SO_REUSEADDR and SO_REUSEPORT: every node on the host gets every broadcast.
            _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            _socket.EnableBroadcast = true;
            _socket.ReceiveBufferSize = 1 << 20;
            _socket.Bind(new IPEndPoint(IPAddress.Any, options.DiscoveryPort));
        }
        catch
        {
            _socket.Dispose();
            throw;
        }
    }

    /// <summary>Secure beacons stay under <see cref="Security.BeaconSeal.MaxSealedLength"/> bytes (issue 10): checked once, at start.</summary>
    private static void ThrowIfSealedTooLong(Security.BeaconSeal seal, NodeOptions options, string instanceId, DateTimeOffset startedAt)
    {
        var longest = seal.Seal(new Beacon(options.Protocol, options.Name, new IPEndPoint(IPAddress.Broadcast, IPEndPoint.MaxPort),
            BeaconKind.Alive, instanceId, options.AdvertiseInterval, startedAt).ToBytes(), DateTimeOffset.UnixEpoch).Length;
        // The freshness of a real beacon has 13 digits, the sample's 1.
        longest += 12;
        if (longest > Security.BeaconSeal.MaxSealedLength)
            throw new ArgumentException(
                $"The name '{options.Name}' makes this node's secure beacon {longest} bytes, above the {Security.BeaconSeal.MaxSealedLength}-byte limit of secure beacons. " +
                $"Shorten the name (or the protocol) by {longest - Security.BeaconSeal.MaxSealedLength} bytes.", nameof(options));
    }

    /// <summary>Datagrams dropped as not being beacons (for tests and diagnostics).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public void Start()
    {
        _receiveLoop = Task.Run(ReceiveLoopAsync);
        Send(BeaconKind.Hello);
        // The timer starts now, not when the loop first runs, so expiry follows the clock from the node's start
        // even when the thread pool is slow to pick the loop up (and a fake clock advanced early is not missed).
        _advertiseLoop = AdvertiseLoopAsync(new PeriodicTimer(_options.AdvertiseInterval, _time));
    }

    private async Task AdvertiseLoopAsync(PeriodicTimer timer)
    {
        using var _ = timer;
        // The rest runs on the thread pool, never inside Start, and never on the starter's SynchronizationContext (a UI
        // thread blocked in a synchronous start would hold every beacon back): Task.Yield() alone posts there.
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                Send(BeaconKind.Alive);
                _peers.Expire(_time.GetUtcNow());
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = new byte[Beacon.MaxLength + 1];
        EndPoint any = new IPEndPoint(IPAddress.Any, 0);
        while (!_stop.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, any, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (ObjectDisposedException)
            {
                break;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.MessageSize)
            {
                Interlocked.Increment(ref _dropped);
                RpcMetrics.BeaconRejected("error");
                continue;
            }
            catch (SocketException e)
            {
                if (_stop.IsCancellationRequested)
                    break;
                _logger.DiscoveryReceiveFailed(e);
                continue;
            }

            try
            {
                Handle(buffer.AsSpan(0, received.ReceivedBytes), (IPEndPoint)received.RemoteEndPoint);
            }
            catch (Exception e)
            {
                // Nothing a datagram carries may stop discovery.
                Interlocked.Increment(ref _dropped);
                RpcMetrics.BeaconRejected("error");
                _logger.BeaconDropped(e);
            }
        }
    }

    internal void Handle(ReadOnlySpan<byte> datagram, IPEndPoint source)
    {
        if (_options.Scope == DiscoveryScope.Loopback && !IPAddress.IsLoopback(source.Address))
        {
            Interlocked.Increment(ref _dropped);
            RpcMetrics.BeaconRejected("not_loopback");
            return;
        }

        if (!Beacon.TryParse(datagram, out var beacon) || beacon!.Protocol != _options.Protocol)
        {
            if (beacon is not null)
                _peers.NoteOtherProtocol(beacon.Name, beacon.Protocol); // for WaitForAsync's near misses
            Interlocked.Increment(ref _dropped);
            RpcMetrics.BeaconRejected("invalid");
            return;
        }

        if (beacon.InstanceId == _instanceId)
            return;
        RpcMetrics.BeaconReceived(MetricName(beacon.Kind));

        // Open and secure nodes ignore each other; a secure node takes only beacons sealed for its group (issue 10).
        if (_seal is null ? Security.BeaconSeal.IsSealed(datagram) : beacon.Kind == BeaconKind.Legacy)
        {
            Interlocked.Increment(ref _dropped);
            return;
        }

        if (_seal is not null)
        {
            var peerId = _seal.TryOpen(datagram, beacon.InstanceId, _time.GetUtcNow());
            if (peerId is null)
            {
                Interlocked.Increment(ref _dropped);
                return;
            }

            beacon = beacon with { PeerId = peerId };
        }

        var serviceEndPoint = EffectiveEndPoint(beacon.EndPoint, source);
        if (_options.Scope == DiscoveryScope.Loopback && !IPAddress.IsLoopback(serviceEndPoint.Address))
        {
            // Loopback scope promises that no call or probe leaves the host, whatever a beacon names (issue 8).
            Interlocked.Increment(ref _dropped);
            return;
        }

        _peers.Observe(beacon, serviceEndPoint, _time.GetUtcNow(), _options.AdvertiseInterval);

        if (beacon.Kind == BeaconKind.Hello)
        {
            AnswerHello();
        }
    }

    /// <summary>
    /// Answers a newcomer at once. A burst of hellos (many nodes starting together) is answered at most once per
    /// <see cref="AnswerSpacingMs"/>: a hello inside that window gets one answer sent when it ends, so every newcomer
    /// hears from us within the window instead of at our next interval.
    /// </summary>
    private void AnswerHello()
    {
        var now = _time.GetTimestamp();
        var last = Interlocked.Read(ref _lastAnswerTicks);
        if ((last == 0 || _time.GetElapsedTime(last, now).TotalMilliseconds >= AnswerSpacingMs) && Interlocked.CompareExchange(ref _lastAnswerTicks, now, last) == last)
        {
            Send(BeaconKind.Alive);
            return;
        }

        if (Interlocked.Exchange(ref _answerScheduled, 1) != 0)
            return; // an answer is already on its way and will cover this hello too
        _ = Task.Delay(TimeSpan.FromMilliseconds(AnswerSpacingMs), _time, _stop.Token).ContinueWith(delay =>
        {
            Volatile.Write(ref _answerScheduled, 0);
            if (delay.IsCanceled)
                return;
            Interlocked.Exchange(ref _lastAnswerTicks, _time.GetTimestamp());
            Send(BeaconKind.Alive);
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>
    /// The address to call a peer on. A beacon that advertises a loopback or unspecified address from a remote
    /// source (the old p2p-local advertised 127.0.1.1 on Debian) is taken to mean the source's address.
    /// </summary>
    internal static IPEndPoint EffectiveEndPoint(IPEndPoint advertised, IPEndPoint source)
    {
        var unusable = IPAddress.IsLoopback(advertised.Address) || advertised.Address.Equals(IPAddress.Any);
        return unusable && !IPAddress.IsLoopback(source.Address) ? new IPEndPoint(source.Address, advertised.Port) : advertised;
    }

    /// <summary>Sends one beacon to every target and seed. Send errors are logged, never thrown.</summary>
    public void Send(BeaconKind kind)
    {
        var port = _servicePort();
        foreach (var target in _targets)
            SendTo(kind, target.Advertised, port, target.Destination);
        foreach (var seed in _options.Seeds)
        {
            // A seed learns our address from the datagram's source (see EffectiveEndPoint).
            var advertised = _options.Scope == DiscoveryScope.Loopback ? IPAddress.Loopback : IPAddress.Any;
            SendTo(kind, advertised, port, seed);
        }
    }

    private void SendTo(BeaconKind kind, IPAddress advertised, int port, IPEndPoint destination)
    {
        var beacon = new Beacon(_options.Protocol, _options.Name, new IPEndPoint(advertised, port), kind, _instanceId, _options.AdvertiseInterval, _startedAt);
        try
        {
            var bytes = beacon.ToBytes();
            _socket.SendTo(_seal is null ? bytes : _seal.Seal(bytes, _time.GetUtcNow()), destination);
            RpcMetrics.BeaconSent(MetricName(kind));
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            _logger.BeaconSendFailed(destination, e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
            return;
        Send(BeaconKind.Bye);
        await _stop.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        await Task.WhenAll(_receiveLoop, _advertiseLoop).ConfigureAwait(false);
        _stop.Dispose();
    }

    /// <summary>A beacon kind as the metrics name it.</summary>
    private static string MetricName(BeaconKind kind) => kind switch
    {
        BeaconKind.Hello => "hello",
        BeaconKind.Alive => "alive",
        BeaconKind.Bye => "bye",
        _ => "legacy",
    };
}
