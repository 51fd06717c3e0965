using System.Collections.Concurrent;
using P2PLocal.Rpc.Dispatch;

namespace P2PLocal.Rpc;

public sealed partial class PeerDirectory
{
    // (peer instance, contract fingerprint) pairs a proxy has checked, so each peer instance is asked once per contract.
    private readonly ConcurrentDictionary<(string InstanceId, string Fingerprint), ContractVerdict> _verifiedContracts = new();

    /// <summary>The node whose peers these are: proxies call through it.</summary>
    private Node Owner => (Node)_host;

    /// <summary>Returns a handle for calling the peer <paramref name="name"/> (resolved at each call).</summary>
    public PeerClient Client(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new PeerClient(Owner, name);
    }


    /// <summary>
    /// Returns the generated typed proxy of contract <typeparamref name="TService"/> for the peer <paramref name="name"/>.
    /// Cheap: the peer is resolved at each call, so a restarted peer is picked up; the first call to each peer
    /// instance checks that it serves the same contract.
    /// </summary>
    /// <typeparam name="TService">
    /// The interface generated for a <c>[P2PService]</c> class (<c>IFoo</c> for <c>Foo</c>), or an interface marked <c>[P2PService]</c>.
    /// </typeparam>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="InvalidOperationException">No proxy was generated for <typeparamref name="TService"/>.</exception>
    public TService Get<TService>(string name)
        where TService : class
    {
        var client = Client(name);
        if (ServiceRegistry.TryCreateProxy<TService>(client, out var proxy))
            return proxy;
        throw new InvalidOperationException(
            $"No generated proxy for '{typeof(TService)}'. Proxies exist for the interface generated for a [P2PService] class " +
            "(IFoo for class Foo) and for interfaces marked [P2PService], in projects that reference the P2PLocal.Rpc generator.");
    }

    /// <summary>How the peer instance was found to serve a contract, if it was checked .</summary>
    internal bool TryGetContractVerdict(string instanceId, string fingerprint, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ContractVerdict? verdict) =>
        _verifiedContracts.TryGetValue((instanceId, fingerprint), out verdict);

    internal void SetContractVerdict(string instanceId, string fingerprint, ContractVerdict verdict)
    {
        var added = _verifiedContracts.TryAdd((instanceId, fingerprint), verdict);
        if (!added)
            _verifiedContracts[(instanceId, fingerprint)] = verdict;
        if (!added || _verifiedContracts.Count <= 4 * _maxPeers)
            return;
        // Peers come and go (restarts get new instances); forget the checks of instances no longer seen.
        ForgetGoneInstances(_verifiedContracts); // PeerDirectory.Any.cs
    }
}
