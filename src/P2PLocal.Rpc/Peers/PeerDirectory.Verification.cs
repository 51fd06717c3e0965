using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Diagnostics;

namespace P2PLocal.Rpc;

/// <summary>
/// Checking a beacon that claims a name another live peer holds. Anyone on the network can send a beacon, so a claim
/// counts as a <see cref="NameConflict"/> only once a node at the claimed endpoint answers with the claimed instance.
/// A claim that does not hold up is logged and ignored for a while; calls keep going to the holder.
/// </summary>
public sealed partial class PeerDirectory
{
    /// <summary>How long a claim that did not hold up is ignored, at most.</summary>
    private static readonly TimeSpan s_maxRejection = TimeSpan.FromSeconds(60);

    /// <summary>How many claims are checked at once: a flood of made-up claims must not become a flood of connects.</summary>
    private const int MaxConcurrentVerifications = 16;

    private readonly Dictionary<string, DateTimeOffset> _rejected = new(StringComparer.Ordinal);
    private readonly HashSet<string> _verifying = new(StringComparer.Ordinal);

    /// <summary>
    /// Starts checking each waiting claim on the holder's name, once per claim. Claims beyond the concurrency cap are
    /// dropped; a real node beacons again and is checked then.
    /// </summary>
    private void StartVerificationsLocked(PeerInfo holder, List<Action> events)
    {
        foreach (var contender in CandidatesOnLocked(holder.Name).ToList())
            StartVerificationLocked(holder, contender, events);
    }

    private void StartVerificationLocked(PeerInfo holder, PeerInfo contender, List<Action> events)
    {
        var key = Key(contender);
        if (_verifying.Contains(key))
            return;
        if (_verifying.Count >= MaxConcurrentVerifications)
        {
            _candidates.Remove(key);
            return;
        }

        _verifying.Add(key);
        events.Add(() => _ = VerifyContenderAsync(holder, contender));
    }

    /// <summary>
    /// Ignores <paramref name="key"/> (a claim, or a claimed move of a peer) for min(3.5 intervals of
    /// <paramref name="claimant"/>, 60 s). Bounded: a flood of fake instances costs probes, never memory.
    /// </summary>
    private void RejectLocked(string key, PeerInfo claimant)
    {
        if (_rejected.Count >= _maxPeers)
            _rejected.Clear();
        var interval = claimant.AdvertiseInterval > TimeSpan.Zero ? ExpiryOf(claimant) : s_maxRejection;
        _rejected[key] = _host.Now + (interval < s_maxRejection ? interval : s_maxRejection);
    }

    private bool IsRejectedLocked(string key, DateTimeOffset now)
    {
        if (!_rejected.TryGetValue(key, out var until))
            return false;
        if (now < until)
            return true;
        _rejected.Remove(key);
        return false;
    }

    private async Task VerifyContenderAsync(PeerInfo holder, PeerInfo contender)
    {
        var alive = await AnswersAsync(contender).ConfigureAwait(false);

        var events = new List<Action>();
        lock (_gate)
        {
            _verifying.Remove(Key(contender));
            if (!_candidates.Remove(Key(contender)))
                return; // expired, said goodbye, or was promoted meanwhile
            if (!alive)
            {
                RejectLocked(Key(contender), contender);
                _logger.SpoofedClaimIgnored(contender.Name, contender.EndPoint, contender.InstanceId, holder.EndPoint);
            }
            else if (holder.InstanceId == _host.InstanceId)
            {
                // Another live node answers under this node's own name.
                _peers[Key(contender)] = contender;
                events.Add(() => RaiseConflict(new NameConflict(holder.Name, holder, contender, InvolvesThisNode: true)));
            }
            else if (_peers.ContainsKey(Key(holder)))
            {
                _peers[Key(contender)] = contender;
                events.Add(() => RaiseConflict(new NameConflict(holder.Name, holder, contender, InvolvesThisNode: false)));
            }
            else
            {
                // The holder went while we checked: the contender takes the name.
                _candidates[Key(contender)] = contender;
                PromoteCandidatesLocked(contender.Name, events);
            }
        }

        Raise(events);
    }
}
