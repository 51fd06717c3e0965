using System.Runtime.ExceptionServices;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// Routes the calls of a <see cref="PeerDirectory.Any{TService}"/> proxy (issue 14): each call goes to the live peer
/// serving the contract that has the fewest such calls in flight (ties taken in turn), and tries the next peer when the
/// request was not sent or not run there; after it was sent, only an idempotent function is sent again.
/// </summary>
/// <remarks>Thread-safe; one per proxy. The peers' contracts are judged once per instance and cached (see <see cref="PeerDirectory"/>).</remarks>
internal sealed class AnyPeerRouter(PeerDirectory peers)
{
    private ContractClient? _contract;

    /// <summary>The contract of the proxy built on this router (set when the proxy is built).</summary>
    public ContractClient? Contract => Volatile.Read(ref _contract);

    public void Attach(ContractClient contract) => Interlocked.CompareExchange(ref _contract, contract, null);

    public ValueTask<TResult> InvokeAsync<TState, TResult>(ContractClient contract, string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TResult> readResult, CancellationToken cancellationToken) =>
        new(InvokeCoreAsync(contract, function, state, writeKwargs, readResult, cancellationToken));

    private async Task<TResult> InvokeCoreAsync<TState, TResult>(ContractClient contract, string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TResult> readResult, CancellationToken cancellationToken)
    {
        var idempotent = false;
        foreach (var descriptor in contract.Functions)
            idempotent |= descriptor.Name == function && descriptor.IsIdempotent;
        var shape = ContractShape.Of(contract);
        HashSet<string>? tried = null;
        Exception? last = null;
        while (true)
        {
            var peer = await peers.PickServingAsync(shape, function, tried, cancellationToken).ConfigureAwait(false);
            if (peer is null)
            {
                if (last is not null)
                    ExceptionDispatchInfo.Throw(last);
                throw new PeerNotFoundException(
                    $"No live peer serves '{function}' of contract {contract.Contract} (fingerprint {contract.Fingerprint}). Start a node that registers it, or check Peers.ServingAsync<T>() for who serves what.")
                {
                    PeerName = contract.Client.PeerName,
                };
            }

            (tried ??= new HashSet<string>(StringComparer.Ordinal)).Add(peer.InstanceId);
            peers.BeginAnyCall(peer.InstanceId);
            try
            {
                return await peers.Node.InvokeOnAsync(peer, function, state, writeKwargs, readResult, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && MayTryAnother(e, idempotent))
            {
                if (e is PeerUnreachableException or PeerShuttingDownException or PeerNotFoundException)
                    peers.AvoidForAWhile(peer.InstanceId);
                last = e;
            }
            finally
            {
                peers.EndAnyCall(peer.InstanceId);
            }
        }
    }

    /// <summary>
    /// Whether a failed call may go to another peer: always when the request was not sent or not run (the peer could
    /// not be reached or left, was busy, or was shutting down); after it was sent (connection lost, cancelled by the peer's
    /// shutdown) only when the function is idempotent, since it may have run.
    /// </summary>
    internal static bool MayTryAnother(Exception e, bool idempotent) => e switch
    {
        PeerUnreachableException or PeerShuttingDownException or PeerNotFoundException or PeerBusyException => true,
        PeerConnectionException or OperationCanceledException => idempotent,
        _ => false,
    };
}

/// <summary>What the router needs of a contract: its name, fingerprint and functions.</summary>
internal sealed record ContractShape(string Name, string Fingerprint, IReadOnlyList<FunctionDescriptor> Functions)
{
    public static ContractShape Of(ContractClient contract) => new(contract.Contract, contract.Fingerprint, contract.Functions);
}
