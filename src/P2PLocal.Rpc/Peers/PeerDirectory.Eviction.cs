namespace P2PLocal.Rpc;

/// <summary>
/// Making room in a full peer table. A beacon may claim an advertise interval of up to a day, so entries from a
/// burst of beacons (a flood of made-up instances) would otherwise hold every slot for days and keep newcomers out.
/// When the table is full, an entry that has been silent for as long as it may be (its expiry, but never more than
/// two minutes) gives way to the newcomer. A peer with a short interval is evicted no sooner than it would expire, so
/// a flood that delays its beacons costs it nothing it would not lose anyway; peers that keep beaconing stay.
/// </summary>
public sealed partial class PeerDirectory
{
    /// <summary>The longest silence that keeps a slot in a full table, whatever interval a beacon claims.</summary>
    private static readonly TimeSpan s_maxSilence = TimeSpan.FromMinutes(2);

    /// <summary>No entry can be evicted before this time (set by a scan that found none; reset when entries change).</summary>
    private DateTimeOffset _noEvictionBefore = DateTimeOffset.MinValue;

    private static TimeSpan SilenceAllowed(PeerInfo peer)
    {
        var expiry = ExpiryOf(peer);
        return expiry > TimeSpan.Zero && expiry < s_maxSilence ? expiry : s_maxSilence;
    }

    /// <summary>Evicts one entry silent for longer than it may be; false when there is none.</summary>
    private bool TryEvictSilentLocked(DateTimeOffset now, List<Action> events)
    {
        if (now < _noEvictionBefore)
            return false;

        var earliest = DateTimeOffset.MaxValue;
        foreach (var (key, candidate) in _candidates)
        {
            var evictableAt = candidate.LastSeen + SilenceAllowed(candidate);
            if (evictableAt <= now)
            {
                _candidates.Remove(key);
                _noEvictionBefore = DateTimeOffset.MinValue;
                return true;
            }

            earliest = evictableAt < earliest ? evictableAt : earliest;
        }

        foreach (var (key, peer) in _peers)
        {
            var evictableAt = peer.LastSeen + SilenceAllowed(peer);
            if (evictableAt <= now)
            {
                _peers.Remove(key);
                events.Add(() => Left?.Invoke(this, peer));
                PromoteCandidatesLocked(peer.Name, events);
                _noEvictionBefore = DateTimeOffset.MinValue;
                return true;
            }

            earliest = evictableAt < earliest ? evictableAt : earliest;
        }

        // Entries only get fresher or go while the table is full, so no scan can succeed before this. (An entry added
        // after a later expiry may become evictable sooner and then waits until this time: eviction is best effort.)
        _noEvictionBefore = earliest;
        return false;
    }
}
