using System.Net;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Diagnostics;

namespace P2PLocal.Rpc;

/// <summary>
/// Checking beacons that reuse a known peer's instance id (issue 8). Instance ids are public, since every beacon
/// carries one, so a goodbye for a known peer, or an alive beacon that names another endpoint for it, is a hint to
/// check, never proof. The endpoint a peer was verified at stays until a check says otherwise.
/// <list type="bullet">
/// <item>The check opens a connection of its own to that endpoint and reads the hello. If the peer still answers
/// there as that instance, the hint is ignored and a warning is logged.</item>
/// <item>If it does not, a goodbye removes the peer. A move is believed only if a node at the new endpoint answers as
/// that instance; the pooled connection to the old endpoint is then closed.</item>
/// </list>
/// </summary>
/// <remarks>
/// <para>What "verified" means in open mode: a node at that endpoint said that instance id in its hello. Anyone can say
/// any id, so the first endpoint seen for a new instance is taken on trust, and once a peer no longer answers at its
/// endpoint (it died, or its connection slots are full), an impostor that repeats its instance id can take its place.
/// While the real peer answers, no call and no pooled connection moves. Secure mode (signed beacons, a later issue)
/// removes these limits.</para>
/// <para>Bounded: one check per instance at a time, at most <see cref="MaxConcurrentChecks"/> at once (further hints
/// are dropped, and a peer whose real goodbye was dropped then expires), hints that arrive during a check are folded
/// into one re-check, and a peer found alive is checked again no sooner than <see cref="s_recheckSpacing"/> later.
/// A move that failed its check is ignored for min(3.5 intervals, 60 s).</para>
/// </remarks>
public sealed partial class PeerDirectory
{
    /// <summary>The least time between two checks of one peer that was found alive: a stream of spoofed hints costs at most one connection a second per peer.</summary>
    private static readonly TimeSpan s_recheckSpacing = TimeSpan.FromSeconds(1);

    /// <summary>How many peers are checked at once.</summary>
    private const int MaxConcurrentChecks = 16;

    /// <summary>The hints waiting for (or folded into) each peer's check, by peer key.</summary>
    private readonly Dictionary<string, Hints> _checks = new(StringComparer.Ordinal);

    /// <summary>When a check last found each peer alive at its endpoint (bounded by MaxPeers).</summary>
    private readonly Dictionary<string, DateTimeOffset> _foundAlive = new(StringComparer.Ordinal);

    /// <summary>Cancelled when the node shuts down: no check outlives it.</summary>
    private readonly CancellationTokenSource _closing = new();

    private sealed class Hints
    {
        public bool Bye;
        public IPEndPoint? MovedTo;

        public bool Any => Bye || MovedTo is not null;
    }

    private static string MoveKey(string key, IPEndPoint movedTo) => key + "|moved to|" + movedTo;

    /// <summary>Takes a goodbye or a new endpoint for a known peer as a hint, and makes sure a check will look at it.</summary>
    private void OfferHintLocked(PeerInfo peer, bool bye, IPEndPoint? movedTo, DateTimeOffset now, List<Action> events)
    {
        var key = Key(peer);
        if (movedTo is not null && IsRejectedLocked(MoveKey(key, movedTo), now))
            return;
        if (_checks.TryGetValue(key, out var waiting))
        {
            waiting.Bye |= bye;
            waiting.MovedTo = movedTo ?? waiting.MovedTo;
            return;
        }

        if (_checks.Count >= MaxConcurrentChecks)
        {
            _logger.BeaconHintDropped(peer.Name, MaxConcurrentChecks);
            return;
        }

        _checks[key] = new Hints { Bye = bye, MovedTo = movedTo };
        var wait = _foundAlive.TryGetValue(key, out var alive) ? alive + s_recheckSpacing - now : TimeSpan.Zero;
        events.Add(() => _ = CheckHintsAsync(key, wait));
    }

    private async Task CheckHintsAsync(string key, TimeSpan wait)
    {
        var closing = _closing.Token;
        while (true)
        {
            if (wait > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(wait, _host.Options.TimeProvider, closing).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            PeerInfo? peer;
            Hints hints;
            lock (_gate)
            {
                if (!_checks.TryGetValue(key, out var waiting) || !_peers.TryGetValue(key, out peer))
                {
                    _checks.Remove(key);
                    return;
                }

                hints = new Hints { Bye = waiting.Bye, MovedTo = waiting.MovedTo };
                waiting.Bye = false;
                waiting.MovedTo = null;
            }

            var there = await AnswersAtAsync(peer, peer.EndPoint, closing).ConfigureAwait(false);
            var moved = !there && !hints.Bye && hints.MovedTo is not null && await AnswersAtAsync(peer, hints.MovedTo, closing).ConfigureAwait(false);

            var events = new List<Action>();
            bool again;
            lock (_gate)
            {
                ApplyCheckLocked(key, peer, hints, there, moved, events);
                if (_checks.TryGetValue(key, out var waiting) && waiting.MovedTo is not null && IsRejectedLocked(MoveKey(key, waiting.MovedTo), _host.Now))
                    waiting.MovedTo = null; // just found wrong: not worth another connection
                again = waiting is { Any: true } && _peers.ContainsKey(key) && !closing.IsCancellationRequested;
                if (!again)
                    _checks.Remove(key);
            }

            Raise(events);
            if (!again)
                return;
            wait = there ? s_recheckSpacing : TimeSpan.Zero;
        }
    }

    private void ApplyCheckLocked(string key, PeerInfo checkedPeer, Hints hints, bool there, bool moved, List<Action> events)
    {
        if (!_peers.TryGetValue(key, out var current) || !current.EndPoint.Equals(checkedPeer.EndPoint))
            return; // it left, expired or moved while we checked
        var now = _host.Now;
        if (there)
        {
            if (_foundAlive.Count >= _maxPeers)
                _foundAlive.Clear();
            _foundAlive[key] = now;
            if (hints.MovedTo is not null)
                RejectLocked(MoveKey(key, hints.MovedTo), current);
            _logger.BeaconHintIgnored(hints.Bye ? "saying goodbye" : $"moving it to {hints.MovedTo}", current.Name, current.InstanceId, current.EndPoint);
        }
        else if (hints.Bye)
        {
            _peers.Remove(key);
            _foundAlive.Remove(key);
            events.Add(() => Left?.Invoke(this, current));
            PromoteCandidatesLocked(current.Name, events);
            _logger.PeerLeft(current.Name, current.EndPoint);
        }
        else if (moved && hints.MovedTo is { } to)
        {
            _peers[key] = current with { EndPoint = to, LastSeen = now };
            events.Add(() => _host.DropConnection(current.InstanceId, to));
            _logger.PeerMoved(current.Name, current.InstanceId, current.EndPoint, to);
        }
        else if (hints.MovedTo is { } nowhere)
        {
            RejectLocked(MoveKey(key, nowhere), current);
            _logger.MovedPeerUnreachable(current.Name, current.InstanceId, current.EndPoint, nowhere);
        }
    }

    /// <summary>
    /// Whether a node of the peer's instance answers at <paramref name="endPoint"/> now, on a connection of its own: the
    /// pooled one may predate the hint, and stays open while a leaving node drains.
    /// </summary>
    private Task<bool> AnswersAtAsync(PeerInfo peer, IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        return _host.AnswersAtAsync(peer, endPoint, cancellationToken);
    }
}
