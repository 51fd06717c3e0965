using System.ComponentModel;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// What a generated proxy calls through: a <see cref="PeerClient"/> plus the contract the proxy was generated from.
/// Before the first call to each peer instance it checks, once, that the peer serves every function of the contract
/// with the same signature (from <see cref="Node.GetFunctionsAsync"/>), and fails with
/// <see cref="ContractMismatchException"/> otherwise.
/// </summary>
/// <remarks>Thread-safe. Not meant to be used by hand: the source generator emits it.</remarks>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class ContractClient
{
    private static readonly ResultReader<bool> s_skipResult = static (ref MessagePack.MessagePackReader reader, MessagePack.MessagePackSerializerOptions _) =>
    {
        KwargsCodec.SkipValue(ref reader);
        return true;
    };

    private VerifiedPeer? _verified;

    /// <summary>Creates the client of one contract for one peer.</summary>
    /// <param name="client">The peer to call.</param>
    /// <param name="contract">The contract's name (the proxy's interface), for error messages.</param>
    /// <param name="fingerprint">The generated fingerprint of the contract.</param>
    /// <param name="functions">The contract's functions, with the same fingerprint.</param>
    public ContractClient(PeerClient client, string contract, string fingerprint, IReadOnlyList<FunctionDescriptor> functions)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(contract);
        ArgumentNullException.ThrowIfNull(fingerprint);
        ArgumentNullException.ThrowIfNull(functions);
        Client = client;
        Contract = contract;
        Fingerprint = fingerprint;
        Functions = functions;
        client.Router?.Attach(this);
    }

    /// <summary>The peer called.</summary>
    public PeerClient Client { get; }

    /// <summary>The contract's name.</summary>
    public string Contract { get; }

    /// <summary>The contract's fingerprint.</summary>
    public string Fingerprint { get; }

    /// <summary>The contract's functions.</summary>
    public IReadOnlyList<FunctionDescriptor> Functions { get; }

    /// <summary>
    /// Checks, on the first call per peer instance, how the peer serves the contract, then calls like
    /// <see cref="PeerClient.InvokeAsync"/>. Only calls to a function the peer serves differently fail.
    /// </summary>
    /// <exception cref="ContractMismatchException">The peer serves <paramref name="function"/> differently (or not at all).</exception>
    /// <inheritdoc cref="PeerClient.InvokeAsync" path="/exception"/>
    public ValueTask<TResult> InvokeAsync<TState, TResult>(string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TResult> readResult, CancellationToken cancellationToken = default)
    {
        if (Client.Router is { } router)
            return router.InvokeAsync(this, function, state, writeKwargs, readResult, cancellationToken); // PeerDirectory.Any (issue 14)
        var verdict = CurrentVerdict();
        if (verdict is { AllServed: true })
            return Client.InvokeAsync(function, state, writeKwargs, readResult, cancellationToken);
        return CheckThenInvokeAsync(function, verdict, state, writeKwargs, readResult, cancellationToken);
    }

    /// <summary>Checks the contract (first call per peer instance), then calls a function that returns nothing.</summary>
    /// <inheritdoc cref="InvokeAsync{TState, TResult}"/>
    public ValueTask InvokeAsync<TState>(string function, TState state, KwargsWriter<TState> writeKwargs, CancellationToken cancellationToken = default)
    {
        var pending = InvokeAsync(function, state, writeKwargs, s_skipResult, cancellationToken);
        return pending.IsCompletedSuccessfully ? default : new ValueTask(pending.AsTask());
    }

    /// <summary>
    /// The blocking form of <see cref="InvokeAsync{TState, TResult}"/>, for proxies of synchronous methods. It blocks the calling thread.
    /// </summary>
    /// <inheritdoc cref="InvokeAsync{TState, TResult}"/>
    public TResult Invoke<TState, TResult>(string function, TState state, KwargsWriter<TState> writeKwargs, ResultReader<TResult> readResult,
        CancellationToken cancellationToken = default)
    {
        var pending = InvokeAsync(function, state, writeKwargs, readResult, cancellationToken);
        return pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>The blocking form of <see cref="InvokeAsync{TState}"/>. It blocks the calling thread.</summary>
    /// <inheritdoc cref="InvokeAsync{TState, TResult}"/>
    public void Invoke<TState>(string function, TState state, KwargsWriter<TState> writeKwargs, CancellationToken cancellationToken = default) =>
        Invoke(function, state, writeKwargs, s_skipResult, cancellationToken);

    /// <summary>
    /// Checks the contract (first call per peer instance, when the enumeration starts), then streams like
    /// <see cref="PeerClient.InvokeStream"/>.
    /// </summary>
    /// <exception cref="ContractMismatchException">The peer serves <paramref name="function"/> differently (or not at all).</exception>
    /// <inheritdoc cref="PeerClient.InvokeStream"/>
    public IAsyncEnumerable<TItem> InvokeStream<TState, TItem>(string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TItem> readItem, CancellationToken cancellationToken = default)
    {
        var verdict = CurrentVerdict();
        if (verdict is { AllServed: true })
            return Client.InvokeStream(function, state, writeKwargs, readItem, cancellationToken);
        return CheckThenStreamAsync(function, verdict, state, writeKwargs, readItem, cancellationToken);
    }

    private async IAsyncEnumerable<TItem> CheckThenStreamAsync<TState, TItem>(string function, ContractVerdict? verdict, TState state,
        KwargsWriter<TState> writeKwargs, ResultReader<TItem> readItem, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var judged = verdict?.For(function);
        if (judged is null || judged.Problem is not null)
        {
            judged = (await VerifyAsync(cancellationToken).ConfigureAwait(false)).For(function);
            if (judged.Problem is not null)
                throw Mismatch(function, judged.Problem, null);
        }

        await foreach (var item in Client.InvokeStream(function, state, writeKwargs, readItem, cancellationToken).ConfigureAwait(false))
            yield return item;
    }

    private async ValueTask<TResult> CheckThenInvokeAsync<TState, TResult>(string function, ContractVerdict? verdict, TState state,
        KwargsWriter<TState> writeKwargs, ResultReader<TResult> readResult, CancellationToken cancellationToken)
    {
        var judged = verdict?.For(function);
        // Not checked yet, or judged a mismatch earlier: ask again, since the peer may have registered it since.
        if (judged is null || judged.Problem is not null)
        {
            judged = (await VerifyAsync(cancellationToken).ConfigureAwait(false)).For(function);
            if (judged.Problem is not null)
                throw Mismatch(function, judged.Problem, null);
        }

        if (judged.LackingKwargs.Length == 0)
            return await Client.InvokeAsync(function, state, writeKwargs, readResult, cancellationToken).ConfigureAwait(false);
        try
        {
            return await Client.InvokeAsync(function, state, writeKwargs, readResult, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidKwargsException e) when (e.RemoteMessage.Contains("unexpected kwarg", StringComparison.Ordinal))
        {
            throw Mismatch(function,
                $"its '{function}' is an older version without kwarg {string.Join(", ", judged.LackingKwargs.Select(k => $"'{k}'"))}, " +
                "so a call that sets it cannot be served there (leave it at its default, or upgrade the peer)", e);
        }
    }

    private ContractMismatchException Mismatch(string function, string problem, Exception? cause) =>
        new($"Peer '{Client.PeerName}' does not serve '{function}' of contract {Contract} (fingerprint {Fingerprint}) as this node knows it: {problem}. " +
            "Build both sides from compatible versions of the contract (docs/generator.md, \"Rolling upgrades\").", cause)
        {
            PeerName = Client.PeerName,
            Contract = Contract,
        };

    private ContractVerdict? CurrentVerdict()
    {
        var peers = Client.Node.Peers;
        if (!peers.TryGet(Client.PeerName, out var peer))
            return null; // the slow path raises the precise error
        var verified = Volatile.Read(ref _verified);
        if (verified is not null && verified.Instance == peer.InstanceId)
            return verified.Verdict;
        return peers.TryGetContractVerdict(peer.InstanceId, Fingerprint, out var verdict) ? verdict : null;
    }

    private async Task<ContractVerdict> VerifyAsync(CancellationToken cancellationToken)
    {
        var peers = Client.Node.Peers;
        var instance = peers.TryGet(Client.PeerName, out var peer) ? peer.InstanceId : null;
        var served = await Client.Node.GetFunctionsAsync(Client.PeerName, cancellationToken).ConfigureAwait(false);
        var verdict = ContractVerdict.Judge(Functions, Fingerprint, served);
        if (instance is not null)
        {
            peers.SetContractVerdict(instance, Fingerprint, verdict);
            Volatile.Write(ref _verified, new VerifiedPeer(instance, verdict));
        }

        return verdict;
    }

    private sealed record VerifiedPeer(string Instance, ContractVerdict Verdict);
}
