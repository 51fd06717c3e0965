namespace P2PLocal.Rpc;

public sealed partial class PeerDirectory
{
    /// <summary>
    /// Whether any live instance other than this node uses <paramref name="name"/>: the allocation-free check every
    /// call makes before <see cref="ClaimsOn"/> builds the list (which only a name conflict needs).
    /// </summary>
    internal bool AnyClaimOn(string name) => _peers.Named(name).Length > 0;

    /// <summary>The endpoints of every peer using <paramref name="name"/>, for the conflict message.</summary>
    private string ClaimantEndPoints(string name) => string.Join(" and ", _peers.Named(name).Select(p => p.EndPoint));
}
