using System.Collections.Concurrent;
using P2PLocal.Rpc.Dispatch;

namespace P2PLocal.Rpc;

// Calls addressed to a service instead of a node (issue 14, README "Calls to any peer that serves a contract").
//
// How a node learns what a peer serves: the first time a peer instance is considered for a contract, its `$methods`
// listing is judged against the contract (the same per-function rules as Get<T>, ContractVerdict) and the verdict is
// cached per (instance, fingerprint), so calls cost no extra round trip. A restarted peer is a new instance and is
// asked again. A verdict that the peer does not serve the contract, or a failed check, is asked again at most once per
// AdvertiseInterval, so a peer that registers the service later is found without a call per peer per use.
public sealed partial class PeerDirectory
{
    private static readonly ConcurrentDictionary<Type, ContractShape> s_contracts = new();
    private readonly ConcurrentDictionary<(string InstanceId, string Fingerprint), Task<ContractVerdict?>> _servingChecks = new();
    private readonly ConcurrentDictionary<(string InstanceId, string Fingerprint), (long Ticks, ContractVerdict? Verdict)> _servingChecked = new();
    private readonly ConcurrentDictionary<string, int> _anyInFlight = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _anyAvoidUntil = new(StringComparer.Ordinal);
    private int _anyTurn;

    internal Node Node => Owner;

    /// <summary>
    /// Returns a proxy of contract <typeparamref name="TService"/> whose calls go to <b>any</b> live peer that serves
    /// it: each call picks the serving peer with the fewest calls in flight from this node (ties in turn), so load
    /// spreads, and moves on to the next serving peer when the chosen one cannot be reached, has just left, is busy or
    /// is shutting down (the request was not run there). A call whose connection is lost after the request was sent
    /// is sent again only for a function marked <c>[P2PFunction(Idempotent = true)]</c>; others fail with
    /// <see cref="PeerConnectionException"/>, since they may have run.
    /// </summary>
    /// <remarks>
    /// Which peers serve the contract is learned from each peer instance's <c>$methods</c> once and cached (see
    /// <see cref="ServingAsync{TService}"/>); the first call may wait for those checks. Cheap to create; thread-safe.
    /// </remarks>
    /// <typeparam name="TService">A generated contract interface, as for <see cref="Get{TService}(string)"/>.</typeparam>
    /// <exception cref="InvalidOperationException">No proxy was generated for <typeparamref name="TService"/>.</exception>
    /// <remarks>Calls fail with <see cref="PeerNotFoundException"/> when no live peer serves the function, or with the last peer's error when every serving peer failed.</remarks>
    public TService Any<TService>()
        where TService : class
    {
        var client = new PeerClient(Owner, $"any peer serving {typeof(TService)}", new AnyPeerRouter(this));
        if (ServiceRegistry.TryCreateProxy<TService>(client, out var proxy))
            return proxy;
        throw NoProxy(typeof(TService));
    }

    /// <summary>
    /// The live peers known to serve every function of <typeparamref name="TService"/> alike (the same contract
    /// fingerprint, or a compatible version as <see cref="Get{TService}(string)"/> judges it), from what this node
    /// already checked: no network traffic. Use <see cref="ServingAsync{TService}"/> to check peers not checked yet.
    /// </summary>
    /// <remarks>Thread-safe; a snapshot, ordered by name.</remarks>
    /// <exception cref="InvalidOperationException">No proxy was generated for <typeparamref name="TService"/>.</exception>
    public IReadOnlyList<PeerInfo> Serving<TService>()
        where TService : class
    {
        var contract = ContractOf<TService>();
        return [.. this.Where(p => !p.IsLegacy && TryGetContractVerdict(p.InstanceId, contract.Fingerprint, out var v) && v.AllServed).OrderBy(p => p.Name, StringComparer.Ordinal)];
    }

    /// <summary>
    /// The live peers that serve every function of <typeparamref name="TService"/> alike, asking each peer instance not
    /// checked yet for its functions (once per instance; the answer is cached, see <see cref="Any{TService}"/>).
    /// </summary>
    /// <remarks>Thread-safe. A peer that cannot be reached is left out.</remarks>
    /// <exception cref="InvalidOperationException">No proxy was generated for <typeparamref name="TService"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public async Task<IReadOnlyList<PeerInfo>> ServingAsync<TService>(CancellationToken cancellationToken = default)
        where TService : class
    {
        var contract = ContractOf<TService>();
        var live = this.Where(p => !p.IsLegacy).ToArray();
        var verdicts = await Task.WhenAll(live.Select(p => VerdictAsync(p, contract))).WaitAsync(cancellationToken).ConfigureAwait(false);
        return [.. live.Where((_, i) => verdicts[i] is { AllServed: true }).OrderBy(p => p.Name, StringComparer.Ordinal)];
    }

    private ContractShape ContractOf<TService>()
        where TService : class =>
        s_contracts.GetOrAdd(typeof(TService), static (type, directory) =>
        {
            var router = new AnyPeerRouter(directory);
            if (!ServiceRegistry.TryCreateProxy<TService>(new PeerClient(directory.Owner, $"any peer serving {type}", router), out _) || router.Contract is null)
                throw NoProxy(type);
            return ContractShape.Of(router.Contract);
        }, this);

    private static InvalidOperationException NoProxy(Type type) => new(
        $"No generated proxy for '{type}'. Proxies exist for the interface generated for a [P2PService] class " +
        "(IFoo for class Foo) and for interfaces marked [P2PService], in projects that reference the P2PLocal.Rpc generator.");

    /// <summary>
    /// The serving peer for one call of <paramref name="function"/>, not among <paramref name="tried"/>: the one with the
    /// fewest calls in flight through <see cref="Any{TService}"/>, ties taken in turn; peers that just failed come last.
    /// Waits for the checks of unchecked peers only when no checked peer serves it. Null when none does.
    /// </summary>
    internal async ValueTask<PeerInfo?> PickServingAsync(ContractShape contract, string function, HashSet<string>? tried, CancellationToken cancellationToken)
    {
        var live = this.Where(p => !p.IsLegacy && tried?.Contains(p.InstanceId) != true).ToArray();
        List<Task<ContractVerdict?>>? checks = null;
        foreach (var peer in live)
        {
            if (!IsFresh(peer.InstanceId, contract.Fingerprint, out _))
                (checks ??= []).Add(VerdictAsync(peer, contract));
        }

        var best = Best(live, contract, function);
        if (best is null && checks is not null)
        {
            await Task.WhenAll(checks).WaitAsync(cancellationToken).ConfigureAwait(false);
            best = Best(live, contract, function);
        }

        return best;
    }

    private PeerInfo? Best(PeerInfo[] live, ContractShape contract, string function)
    {
        var now = Owner.Options.TimeProvider.GetTimestamp();
        var turn = Interlocked.Increment(ref _anyTurn) & int.MaxValue;
        PeerInfo? best = null;
        (bool Avoided, int InFlight, int Order) bestKey = default;
        for (var i = 0; i < live.Length; i++)
        {
            var peer = live[i];
            if (!_servingChecked.TryGetValue((peer.InstanceId, contract.Fingerprint), out var checkedEntry)
                || checkedEntry.Verdict?.For(function).Problem is not null || checkedEntry.Verdict is null)
                continue;
            var key = (_anyAvoidUntil.TryGetValue(peer.InstanceId, out var until) && until > now, _anyInFlight.GetValueOrDefault(peer.InstanceId), (i + turn) % live.Length);
            if (best is null || key.CompareTo(bestKey) < 0)
                (best, bestKey) = (peer, key);
        }

        return best;
    }

    private bool IsFresh(string instanceId, string fingerprint, out ContractVerdict? verdict)
    {
        verdict = null;
        if (!_servingChecked.TryGetValue((instanceId, fingerprint), out var entry))
            return false;
        verdict = entry.Verdict;
        // A peer that serves the contract stays judged for its instance's life; a "no" or a failed check is asked again later.
        return verdict is { AllServed: true } || Owner.Options.TimeProvider.GetElapsedTime(entry.Ticks) < Owner.Options.AdvertiseInterval;
    }

    /// <summary>How <paramref name="peer"/> serves <paramref name="contract"/>: cached, or asked once (concurrent askers share the answer).</summary>
    private Task<ContractVerdict?> VerdictAsync(PeerInfo peer, ContractShape contract)
    {
        if (IsFresh(peer.InstanceId, contract.Fingerprint, out var verdict))
            return Task.FromResult(verdict);
        var key = (peer.InstanceId, contract.Fingerprint);
        var opening = new TaskCompletionSource<ContractVerdict?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var check = _servingChecks.GetOrAdd(key, opening.Task);
        if (check == opening.Task)
            _ = CheckIntoAsync(peer, contract, opening);
        return check;
    }

    private async Task CheckIntoAsync(PeerInfo peer, ContractShape contract, TaskCompletionSource<ContractVerdict?> opening)
    {
        var key = (peer.InstanceId, contract.Fingerprint);
        ContractVerdict? verdict = null;
        try
        {
            var served = await Owner.GetFunctionsAsync(peer.Name, CancellationToken.None).ConfigureAwait(false);
            // The name may have moved to a new instance meanwhile: then this answer is not that instance's.
            if (TryGet(peer.Name, out var now) && now.InstanceId == peer.InstanceId)
            {
                verdict = ContractVerdict.Judge(contract.Functions, contract.Fingerprint, served);
                SetContractVerdict(peer.InstanceId, contract.Fingerprint, verdict);
            }
        }
        catch (Exception e) when (e is P2PException or TimeoutException or InvalidOperationException or ObjectDisposedException)
        {
            // Unreachable or gone: not serving, for now.
        }

        _servingChecked[key] = (Owner.Options.TimeProvider.GetTimestamp(), verdict);
        if (_servingChecked.Count > 4 * _maxPeers)
            ForgetGoneInstances(_servingChecked);
        _servingChecks.TryRemove(new KeyValuePair<(string, string), Task<ContractVerdict?>>(key, opening.Task));
        opening.TrySetResult(verdict);
    }

    private void ForgetGoneInstances<TValue>(ConcurrentDictionary<(string InstanceId, string Fingerprint), TValue> table)
    {
        HashSet<string> live;
        lock (_gate)
            live = [.. _peers.Values.Select(p => p.InstanceId)];
        foreach (var (key, _) in table)
        {
            if (!live.Contains(key.InstanceId))
                table.TryRemove(key, out _);
        }
    }

    internal void BeginAnyCall(string instanceId) => _anyInFlight.AddOrUpdate(instanceId, 1, static (_, n) => n + 1);

    internal void EndAnyCall(string instanceId)
    {
        if (_anyInFlight.AddOrUpdate(instanceId, 0, static (_, n) => n - 1) == 0 && _anyInFlight.Count > 4 * _maxPeers)
            _anyInFlight.TryRemove(new KeyValuePair<string, int>(instanceId, 0));
    }

    /// <summary>The peer could not take a call (unreachable, leaving): prefer others for one beacon interval.</summary>
    internal void AvoidForAWhile(string instanceId)
    {
        var clock = Owner.Options.TimeProvider;
        _anyAvoidUntil[instanceId] = clock.GetTimestamp() + (long)(Owner.Options.AdvertiseInterval.TotalSeconds * clock.TimestampFrequency);
        if (_anyAvoidUntil.Count > 4 * _maxPeers)
        {
            var now = clock.GetTimestamp();
            foreach (var (instance, until) in _anyAvoidUntil)
            {
                if (until <= now)
                    _anyAvoidUntil.TryRemove(new KeyValuePair<string, long>(instance, until));
            }
        }
    }
}
