namespace P2PLocal.Rpc;

public sealed partial class PeerDirectory
{
    /// <summary>
    /// Whether any live instance other than this node uses <paramref name="name"/>: the allocation-free check every
    /// call makes before <see cref="ClaimsOn"/> builds the list (which only a name conflict needs).
    /// </summary>
    internal bool AnyClaimOn(string name)
    {
        lock (_gate)
        {
            foreach (var peer in _peers.Values)
            {
                if (peer.Name == name)
                    return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The endpoints of every peer using <paramref name="name"/>, for the conflict message. A method of its own so
    /// that <see cref="Resolve"/>, run on every call, does not allocate the lambda's closure on entry.
    /// </summary>
    private string ClaimantEndPoints(string name) =>
        string.Join(" and ", _peers.Values.Where(p => p.Name == name).Select(p => p.EndPoint));
}
