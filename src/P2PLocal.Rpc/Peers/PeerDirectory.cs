using System.Collections;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Discovery;

namespace P2PLocal.Rpc;

/// <summary>Two live nodes claim one name.</summary>
/// <param name="Name">The contested name.</param>
/// <param name="Existing">The instance that held the name first.</param>
/// <param name="Contender">The instance that claimed it while the first was still alive.</param>
/// <param name="InvolvesThisNode">True when one of the two is the node raising the event.</param>
public sealed record NameConflict(string Name, PeerInfo Existing, PeerInfo Contender, bool InvolvesThisNode);

/// <summary>
/// The peers a node currently sees, kept current by discovery: peers join when their first beacon arrives, leave on
/// their goodbye (once a connection attempt confirms they are gone), and expire after about three missed beacon
/// intervals (a claimed interval counts up to <see cref="NodeOptions.MaxPeerAdvertiseInterval"/>). A restarted peer (same name, new instance)
/// replaces the old one once the old one is found dead; two live instances of one name are a <see cref="NameConflict"/>,
/// and such a name resolves to no peer until one of them goes.
/// </summary>
/// <remarks>
/// Thread-safe. Enumeration works on a snapshot. Events are raised on a discovery thread, outside any lock;
/// an exception thrown by a handler is logged and otherwise ignored.
/// </remarks>
public sealed partial class PeerDirectory : IEnumerable<PeerInfo>
{
    private readonly object _gate = new();
    private readonly PeerTable _peers = new();
    private readonly Dictionary<string, PeerInfo> _candidates = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<TaskCompletionSource<PeerInfo>>> _waiters = new(StringComparer.Ordinal);
    private readonly IPeerHost _host;
    private readonly ILogger _logger;
    private readonly int _maxPeers;
    private bool _warnedFull;

    internal PeerDirectory(IPeerHost host, ILogger logger, int maxPeers)
    {
        _host = host;
        _logger = logger;
        _maxPeers = maxPeers;
    }

    /// <summary>Raised when a peer appears (first beacon, or a restart that replaced its old instance).</summary>
    public event EventHandler<PeerInfo>? Joined;

    /// <summary>Raised when a peer leaves (goodbye), expires, or is replaced by its restarted instance.</summary>
    public event EventHandler<PeerInfo>? Left;

    /// <summary>Raised when two live nodes claim one name; see <see cref="NameConflictException"/>.</summary>
    public event EventHandler<NameConflict>? NameConflict;

    /// <summary>How many peer instances are known (a contested name counts each instance).</summary>
    public int Count
    {
        get
        {
            lock (_gate)
                return _peers.Count;
        }
    }

    /// <summary>Finds the peer of that name. False when none is known or two live nodes claim the name.</summary>
    public bool TryGet(string name, [MaybeNullWhen(false)] out PeerInfo peer)
    {
        ArgumentNullException.ThrowIfNull(name);
        return TryGetNamed(name, out peer, out _);
    }

    /// <summary>Completes as soon as a peer of that name is seen (at once if it already is).</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    /// <exception cref="ObjectDisposedException">The node shut down first.</exception>
    public Task<PeerInfo> WaitForAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        TaskCompletionSource<PeerInfo> waiter;
        lock (_gate)
        {
            if (TryGetNamed(name, out var peer, out _))
                return Task.FromResult(peer);
            if (_host.IsDisposed)
                return Task.FromException<PeerInfo>(new ObjectDisposedException("Node"));
            waiter = new TaskCompletionSource<PeerInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_waiters.TryGetValue(name, out var list))
                _waiters[name] = list = [];
            list.Add(waiter);
        }

        if (!cancellationToken.CanBeCanceled)
            return waiter.Task;
        var registration = cancellationToken.Register(() =>
        {
            lock (_gate)
            {
                if (_waiters.TryGetValue(name, out var list))
                    list.Remove(waiter);
            }

            waiter.TrySetCanceled(cancellationToken);
        });
        waiter.Task.ContinueWith(static (_, r) => ((CancellationTokenRegistration)r!).Dispose(), registration,
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return waiter.Task;
    }

    /// <summary>Returns a snapshot of the known peers.</summary>
    public IEnumerator<PeerInfo> GetEnumerator()
    {
        PeerInfo[] snapshot;
        lock (_gate)
            snapshot = [.. _peers.Values];
        return ((IEnumerable<PeerInfo>)snapshot).GetEnumerator();
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>The peer to call for <paramref name="name"/>.</summary>
    /// <exception cref="PeerNotFoundException">No such peer.</exception>
    /// <exception cref="NameConflictException">Two live peers claim the name.</exception>
    internal PeerInfo Resolve(string name)
    {
        // No lock and no scan: one read of the name index (PeerTable), which discovery keeps current.
        if (TryGetNamed(name, out var peer, out var claimants))
            return peer;
        if (claimants > 1)
        {
            var where = ClaimantEndPoints(name);
            throw new NameConflictException($"Two live nodes claim the name '{name}' ({where}); calls to it are refused until one leaves.") { PeerName = name };
        }

        throw new PeerNotFoundException($"No peer named '{name}' is known to node '{_host.Name}'. Wait for it with Peers.WaitForAsync, or check its protocol and discovery port.") { PeerName = name };
    }

    /// <summary>The live instances, other than this node, that use this node's own name.</summary>
    internal PeerInfo[] ClaimsOn(string name) => _peers.Named(name);

    /// <summary>The one live peer of that name; false with the number of claimants otherwise (lock-free).</summary>
    private bool TryGetNamed(string name, [MaybeNullWhen(false)] out PeerInfo peer, out int claimants)
    {
        var named = _peers.Named(name);
        claimants = named.Length;
        peer = claimants == 1 ? named[0] : null;
        return peer is not null;
    }

    /// <summary>The candidates (claims being checked) on <paramref name="name"/>; under the lock.</summary>
    private IEnumerable<PeerInfo> CandidatesOnLocked(string name) => _candidates.Values.Where(c => c.Name == name);

    /// <summary>Takes in one beacon of this node's protocol from another instance.</summary>
    internal void Observe(Beacon beacon, IPEndPoint serviceEndPoint, DateTimeOffset now, TimeSpan defaultInterval)
    {
        // '|' cannot occur in an instance id, so no beacon can name a legacy peer's key.
        var key = beacon.Kind == BeaconKind.Legacy ? "legacy|" + serviceEndPoint : beacon.InstanceId;
        var events = new List<Action>();
        PeerInfo? toProbe = null;
        lock (_gate)
        {
            if (beacon.Kind == BeaconKind.Bye)
            {
                // Instance ids are public, so a goodbye for a known peer is a hint to check, never proof (see CheckHints).
                if (!_candidates.Remove(key) && _peers.TryGetValue(key, out var leaving))
                    OfferHintLocked(leaving, bye: true, movedTo: null, now, events);
            }
            else if (_peers.TryGetValue(key, out var known))
            {
                if (known.EndPoint.Equals(serviceEndPoint))
                    _peers[key] = known with { LastSeen = now };
                else
                    OfferHintLocked(known, bye: false, serviceEndPoint, now, events);
            }
            else if (_candidates.TryGetValue(key, out var candidate))
            {
                // A claim is checked at the endpoint it was first seen at; beacons moving it elsewhere are not believed.
                if (candidate.EndPoint.Equals(serviceEndPoint))
                    _candidates[key] = candidate with { LastSeen = now };
            }
            else if (_peers.Count + _candidates.Count >= _maxPeers && !TryEvictSilentLocked(now, events))
            {
                if (!_warnedFull)
                    _logger.PeerTableFull(_maxPeers);
                _warnedFull = true;
            }
            else
            {
                var peer = new PeerInfo(beacon.Name, beacon.Protocol, serviceEndPoint, beacon.Kind == BeaconKind.Legacy ? "" : beacon.InstanceId)
                {
                    LastSeen = now,
                    StartedAt = beacon.Kind == BeaconKind.Legacy ? DateTimeOffset.MinValue : beacon.StartedAt,
                    AdvertiseInterval = beacon.Kind == BeaconKind.Legacy ? defaultInterval : BelievableInterval(beacon.Interval),
                    PeerId = beacon.PeerId,
                };
                var holder = _peers.Named(peer.Name).FirstOrDefault();
                if (peer.Name == _host.Name)
                {
                    // A claim on this node's own name: it counts (and may silence this node's calls) only once a node
                    // at the claimed endpoint answers as the claimed instance. This node is the holder, and it is alive.
                    if (!IsRejectedLocked(key, now))
                    {
                        _candidates[key] = peer;
                        StartVerificationLocked(_host.SelfInfo, peer, events);
                    }
                }
                else if (holder is null)
                {
                    AddLocked(key, peer, events);
                }
                else if (IsRejectedLocked(key, now))
                {
                    // Claimed this name lately and did not answer as that instance: not worth another probe yet.
                }
                else
                {
                    // A restart (on the same port or a new one), a second node with the name, or a spoof: ask the
                    // holder whether it is alive. Same endpoint is no proof the holder is gone: a beacon can lie.
                    _candidates[key] = peer;
                    toProbe = holder;
                }
            }
        }

        Raise(events);
        if (toProbe is not null)
            _ = ProbeAsync(toProbe);
    }

    private async Task ProbeAsync(PeerInfo holder)
    {
        var alive = await AnswersAsync(holder).ConfigureAwait(false);

        var events = new List<Action>();
        lock (_gate)
        {
            var stillHeld = _peers.TryGetValue(Key(holder), out var current);
            if (stillHeld && !alive)
            {
                _peers.Remove(Key(holder));
                events.Add(() => Left?.Invoke(this, current!));
                _logger.PeerReplaced(holder.Name, holder.EndPoint);
            }

            if (stillHeld && alive)
            {
                // Only a contender that answers as the instance it claims is a second live node (see VerifyContenderAsync).
                StartVerificationsLocked(holder, events);
            }
            else
            {
                PromoteCandidatesLocked(holder.Name, events);
            }
        }

        Raise(events);
    }

    /// <summary>Whether a node of that instance serves at the peer's endpoint; any failure to find out means no.</summary>
    private async Task<bool> AnswersAsync(PeerInfo peer)
    {
        try
        {
            return await _host.IsAliveAsync(peer).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return false;
        }
    }

    /// <summary>After the holder of a name went, the newest waiting candidate takes the name.</summary>
    private void PromoteCandidatesLocked(string name, List<Action> events)
    {
        if (name == _host.Name)
            return; // claims on this node's own name are each under verification against this node (see Observe)
        var waiting = CandidatesOnLocked(name).OrderByDescending(c => c.StartedAt).ToList();
        foreach (var candidate in waiting)
            _candidates.Remove(Key(candidate));
        if (waiting.Count > 0 && _peers.Named(name).Length == 0)
            AddLocked(Key(waiting[0]), waiting[0], events);
    }

    private void AddLocked(string key, PeerInfo peer, List<Action> events)
    {
        _peers[key] = peer;
        events.Add(() => Joined?.Invoke(this, peer));
        if (_waiters.Remove(peer.Name, out var waiters))
            events.Add(() => waiters.ForEach(w => w.TrySetResult(peer)));
        _logger.PeerJoined(peer.Name, peer.EndPoint);
    }

    private void RaiseConflict(NameConflict conflict)
    {
        _logger.NameConflict(conflict.Name, conflict.Existing.EndPoint, conflict.Contender.EndPoint);
        NameConflict?.Invoke(this, conflict);
    }

    /// <summary>Drops peers whose beacons stopped: about three missed intervals.</summary>
    internal void Expire(DateTimeOffset now)
    {
        var events = new List<Action>();
        lock (_gate)
        {
            foreach (var (key, peer) in _peers.ToList())
            {
                if (now - peer.LastSeen <= ExpiryOf(peer))
                    continue;
                _peers.Remove(key);
                events.Add(() => Left?.Invoke(this, peer));
                _logger.PeerExpired(peer.Name, peer.EndPoint, now - peer.LastSeen);
                PromoteCandidatesLocked(peer.Name, events);
            }

            foreach (var (key, candidate) in _candidates.ToList())
            {
                if (now - candidate.LastSeen > ExpiryOf(candidate))
                    _candidates.Remove(key);
            }
        }

        Raise(events);
    }

    internal static TimeSpan ExpiryOf(PeerInfo peer) => peer.AdvertiseInterval * 3.5;

    /// <summary>A beacon's claimed interval, cut to <see cref="NodeOptions.MaxPeerAdvertiseInterval"/> (or this node's own interval, if longer).</summary>
    private TimeSpan BelievableInterval(TimeSpan claimed)
    {
        var options = _host.Options;
        var cap = options.MaxPeerAdvertiseInterval > options.AdvertiseInterval ? options.MaxPeerAdvertiseInterval : options.AdvertiseInterval;
        return claimed < cap ? claimed : cap;
    }

    /// <summary>Forgets a peer at once (its connection proved it is another instance now).</summary>
    internal void Forget(PeerInfo peer) => Forget(Key(peer));

    /// <inheritdoc cref="Forget(PeerInfo)"/>
    /// <param name="key">The peer's key: its instance id (or <c>legacy|endpoint</c> for a legacy peer).</param>
    internal void Forget(string key)
    {
        var events = new List<Action>();
        lock (_gate)
        {
            if (_peers.Remove(key, out var gone))
            {
                events.Add(() => Left?.Invoke(this, gone));
                _logger.PeerLeft(gone.Name, gone.EndPoint);
                PromoteCandidatesLocked(gone.Name, events);
            }
        }

        Raise(events);
    }

    /// <summary>Fails every waiter: the node is shutting down.</summary>
    internal void Close()
    {
        List<TaskCompletionSource<PeerInfo>> waiters;
        lock (_gate)
        {
            waiters = _waiters.Values.SelectMany(w => w).ToList();
            _waiters.Clear();
            _checks.Clear();
            _peers.Clear();
            _candidates.Clear();
        }

        _closing.Cancel(); // outside the lock: the checks it stops take the lock as they end
        foreach (var waiter in waiters)
            waiter.TrySetException(new ObjectDisposedException("Node", "The node shut down before the peer was seen."));
    }

    private static string Key(PeerInfo peer) => peer.IsLegacy ? "legacy|" + peer.EndPoint : peer.InstanceId;

    private void Raise(List<Action> events)
    {
        foreach (var raise in events)
        {
            try
            {
                raise();
            }
            catch (Exception e)
            {
                _logger.PeerEventHandlerFailed(e);
            }
        }
    }
}
