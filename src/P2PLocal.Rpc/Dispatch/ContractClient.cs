using System.ComponentModel;
using System.Text;

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

    private string? _verifiedInstance;

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
    }

    /// <summary>The peer called.</summary>
    public PeerClient Client { get; }

    /// <summary>The contract's name.</summary>
    public string Contract { get; }

    /// <summary>The contract's fingerprint.</summary>
    public string Fingerprint { get; }

    /// <summary>The contract's functions.</summary>
    public IReadOnlyList<FunctionDescriptor> Functions { get; }

    /// <summary>Checks the contract (first call per peer instance), then calls like <see cref="PeerClient.InvokeAsync"/>.</summary>
    /// <exception cref="ContractMismatchException">The peer serves the contract differently.</exception>
    /// <exception cref="PeerNotFoundException">No peer of that name is known.</exception>
    /// <exception cref="MethodNotFoundException">The peer has no such function.</exception>
    /// <exception cref="InvalidKwargsException">The peer rejected the kwargs.</exception>
    /// <exception cref="RemoteException">The remote handler threw.</exception>
    /// <exception cref="PeerConnectionException">The peer could not be reached or the connection dropped.</exception>
    /// <exception cref="TimeoutException"><see cref="NodeOptions.RequestTimeout"/> passed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired; the remote handler's token fires too.</exception>
    public ValueTask<TResult> InvokeAsync<TState, TResult>(string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TResult> readResult, CancellationToken cancellationToken = default)
    {
        if (IsVerified())
            return Client.InvokeAsync(function, state, writeKwargs, readResult, cancellationToken);
        return VerifyThenInvokeAsync(function, state, writeKwargs, readResult, cancellationToken);
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

    private async ValueTask<TResult> VerifyThenInvokeAsync<TState, TResult>(string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TResult> readResult, CancellationToken cancellationToken)
    {
        await VerifyAsync(cancellationToken).ConfigureAwait(false);
        return await Client.InvokeAsync(function, state, writeKwargs, readResult, cancellationToken).ConfigureAwait(false);
    }

    private bool IsVerified()
    {
        var peers = Client.Node.Peers;
        if (!peers.TryGet(Client.PeerName, out var peer))
            return false; // the slow path raises the precise error
        return peer.InstanceId == Volatile.Read(ref _verifiedInstance) || peers.IsContractVerified(peer.InstanceId, Fingerprint);
    }

    private async Task VerifyAsync(CancellationToken cancellationToken)
    {
        var peers = Client.Node.Peers;
        var instance = peers.TryGet(Client.PeerName, out var peer) ? peer.InstanceId : null;
        var served = await Client.Node.GetFunctionsAsync(Client.PeerName, cancellationToken).ConfigureAwait(false);
        var problems = Compare(served);
        if (problems.Length > 0)
        {
            throw new ContractMismatchException(
                $"Peer '{Client.PeerName}' does not serve contract {Contract} (fingerprint {Fingerprint}) as this node knows it: {problems}. " +
                "Build both sides from the same contract.")
            {
                PeerName = Client.PeerName,
                Contract = Contract,
            };
        }

        if (instance is not null)
        {
            peers.MarkContractVerified(instance, Fingerprint);
            Volatile.Write(ref _verifiedInstance, instance);
        }
    }

    /// <summary>
    /// Every function of the contract must be served with the same signature. Equal fingerprints say so at once; a
    /// function without one (a dynamic function) is taken on trust; otherwise the signatures are compared, so a peer
    /// that serves a newer version with more functions still serves this one.
    /// </summary>
    private StringBuilder Compare(IReadOnlyList<FunctionDescriptor> served)
    {
        var byName = new Dictionary<string, FunctionDescriptor>(StringComparer.Ordinal);
        foreach (var function in served)
            byName.TryAdd(function.Name, function);
        var problems = new StringBuilder();
        foreach (var expected in Functions)
        {
            string? problem = null;
            if (!byName.TryGetValue(expected.Name, out var actual))
                problem = $"it has no function '{expected.Name}'";
            else if (actual.Fingerprint is not null && actual.Fingerprint != Fingerprint && !SameSignature(expected, actual))
                problem = $"'{expected.Name}' is {Describe(expected)} here but {Describe(actual)} there";
            if (problem is null)
                continue;
            if (problems.Length > 0)
                problems.Append("; ");
            problems.Append(problem);
        }

        return problems;
    }

    private static bool SameSignature(FunctionDescriptor a, FunctionDescriptor b) =>
        a.ReturnType == b.ReturnType && a.Parameters.SequenceEqual(b.Parameters);

    private static string Describe(FunctionDescriptor function) =>
        $"({string.Join(", ", function.Parameters.Select(p => $"{p.Name}: {p.Type}{(p.IsOptional ? " = ..." : "")}"))}) -> {function.ReturnType}";
}
