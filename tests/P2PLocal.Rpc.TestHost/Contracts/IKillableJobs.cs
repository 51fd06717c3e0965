namespace P2PLocal.Rpc.TestHost.Contracts;

/// <summary>
/// A contract served by TestHost processes (<c>--functions jobs --ran-file PATH</c>) and called through
/// <c>Peers.Any&lt;IKillableJobs&gt;()</c> by the reliability tests, which compile this same file: the fingerprints match.
/// </summary>
[P2PService]
public interface IKillableJobs
{
    /// <summary>Not idempotent: must run at most once. Returns the serving node's name.</summary>
    Task<string> RunAsync(int job, CancellationToken cancellationToken = default);

    /// <summary>Idempotent: may be sent again to another peer after a lost connection.</summary>
    [P2PFunction(Idempotent = true)]
    Task<string> LookAsync(int job, CancellationToken cancellationToken = default);
}
