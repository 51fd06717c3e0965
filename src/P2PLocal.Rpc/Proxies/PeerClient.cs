namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// A handle for calling one named peer through its node; generated proxies are built on it. Cheap to create,
/// holds no connection of its own: each call resolves the peer name, so a restarted peer is picked up.
/// </summary>
/// <remarks>Thread-safe.</remarks>
public sealed class PeerClient
{
    internal PeerClient(Node node, string peerName, AnyPeerRouter? router = null)
    {
        Node = node;
        PeerName = peerName;
        Router = router;
    }

    /// <summary>Set for the client of <see cref="PeerDirectory.Any{TService}"/>: calls go to any peer serving the contract (issue 14).</summary>
    internal AnyPeerRouter? Router { get; }

    /// <summary>The node the calls go out from.</summary>
    public Node Node { get; }

    /// <summary>The peer called.</summary>
    public string PeerName { get; }

    /// <summary>Calls <paramref name="function"/> on the peer with kwargs written by <paramref name="writeKwargs"/>.</summary>
    /// <inheritdoc cref="Node.RequestAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)" path="/exception"/>
    public ValueTask<TResult> InvokeAsync<TState, TResult>(string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TResult> readResult, CancellationToken cancellationToken = default) =>
        Node.InvokeAsync(PeerName, function, state, writeKwargs, readResult, cancellationToken);

    /// <summary>
    /// Calls a function of the peer that streams its results, with kwargs written by <paramref name="writeKwargs"/>; each
    /// item is read by <paramref name="readItem"/>. Nothing is sent until the enumeration starts (see
    /// <see cref="Node.RequestStreamAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/>).
    /// </summary>
    /// <inheritdoc cref="Node.RequestStreamAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/>
    public IAsyncEnumerable<TItem> InvokeStream<TState, TItem>(string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TItem> readItem, CancellationToken cancellationToken = default) =>
        Node.InvokeStream(PeerName, function, state, writeKwargs, readItem, cancellationToken);

    /// <summary>
    /// The blocking form of <see cref="InvokeAsync"/>, for proxies of synchronous methods. It blocks the calling
    /// thread; prefer the async form on UI or request threads.
    /// </summary>
    /// <inheritdoc cref="InvokeAsync" path="/exception"/>
    public TResult Invoke<TState, TResult>(string function, TState state, KwargsWriter<TState> writeKwargs, ResultReader<TResult> readResult)
    {
        var pending = InvokeAsync(function, state, writeKwargs, readResult);
        return pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();
    }
}
