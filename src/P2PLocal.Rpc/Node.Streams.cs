using System.Runtime.CompilerServices;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc;

/// <summary>Streamed results (issue 14; PROTOCOL.md, "Streamed results").</summary>
public sealed partial class Node
{
    /// <summary>
    /// Calls a function that streams its results (a <c>[P2PService]</c> method returning <see cref="IAsyncEnumerable{T}"/>, or
    /// one registered with <see cref="RegisterStream(string, Func{IReadOnlyDictionary{string, object}, CancellationToken, IAsyncEnumerable{object}})"/>)
    /// and returns its items as they arrive, as plain .NET values (see
    /// <see cref="RequestAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/>).
    /// </summary>
    /// <remarks>
    /// Nothing is sent until the enumeration starts; each enumeration is a new call. The peer runs at most
    /// <see cref="NodeOptions.StreamWindow"/> items ahead of this node's reading. Leaving the loop early (or the token
    /// passed here or to <c>WithCancellation</c> firing) cancels the stream on the peer. Each wait for the next item is
    /// bounded by <see cref="NodeOptions.RequestTimeout"/>. One enumerator must not be read from two threads at once;
    /// any number of streams may run at once.
    /// </remarks>
    /// <param name="target">The peer's name.</param>
    /// <param name="function">The function's name.</param>
    /// <param name="kwargs">The arguments by parameter name; values must be MessagePack-serializable.</param>
    /// <param name="cancellationToken">Cancels the stream here and the producer's token there.</param>
    /// <returns>The items, in the order the producer yielded them.</returns>
    /// <exception cref="NotSupportedException">The peer does not take stream requests (an older version): nothing was sent.</exception>
    /// <exception cref="RemoteException">The producer threw, after the items it yielded before.</exception>
    /// <exception cref="PeerConnectionException">The peer cannot be reached, or the connection dropped mid-stream (after the items already received).</exception>
    /// <exception cref="MethodNotFoundException">The peer has no such function, or it returns one result, not a stream.</exception>
    /// <exception cref="PeerNotFoundException">No peer of that name is known.</exception>
    /// <exception cref="InvalidKwargsException">The peer rejected the kwargs.</exception>
    /// <exception cref="PeerBusyException">The peer runs too many requests from this node already.</exception>
    /// <exception cref="FrameTooLargeException">The request or an item is above a frame limit.</exception>
    /// <exception cref="TimeoutException">No item came within <see cref="NodeOptions.RequestTimeout"/>; the stream was cancelled there.</exception>
    /// <exception cref="OperationCanceledException">The token fired, or the producer stopped on its own token.</exception>
    /// <exception cref="ObjectDisposedException">The node was shut down.</exception>
    public IAsyncEnumerable<object?> RequestStreamAsync(string target, string function, IReadOnlyDictionary<string, object?>? kwargs = null,
        CancellationToken cancellationToken = default) =>
        InvokeStream(target, function, kwargs, s_writeKwargs, s_readDynamic, cancellationToken);

    /// <summary>Calls a streaming function and converts each item to <typeparamref name="T"/> with MessagePack.</summary>
    /// <inheritdoc cref="RequestStreamAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/>
    public IAsyncEnumerable<T> RequestStreamAsync<T>(string target, string function, IReadOnlyDictionary<string, object?>? kwargs = null,
        CancellationToken cancellationToken = default) =>
        InvokeStream(target, function, kwargs, s_writeKwargs, TypedResult<T>.Read, cancellationToken);

    /// <summary>
    /// Registers a function that streams its results: callers read its items with
    /// <see cref="RequestStreamAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/> (peers see
    /// its result type as <c>stream&lt;object&gt;</c>). The handler's enumerable is read only as fast as the caller
    /// reads (see <see cref="NodeOptions.StreamWindow"/>); the token fires when the caller cancels or leaves.
    /// </summary>
    /// <exception cref="ArgumentException">The name is empty, starts with <c>$</c> (reserved), or is already registered.</exception>
    public Node RegisterStream(string function, Func<IReadOnlyDictionary<string, object?>, CancellationToken, IAsyncEnumerable<object?>> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return RegisterStream(function, (kwargs, _, cancellationToken) => handler(kwargs, cancellationToken));
    }

    /// <summary>Registers a streaming function that also learns who is calling (<see cref="CallContext"/>).</summary>
    /// <inheritdoc cref="RegisterStream(string, Func{IReadOnlyDictionary{string, object}, CancellationToken, IAsyncEnumerable{object}})"/>
    public Node RegisterStream(string function, Func<IReadOnlyDictionary<string, object?>, CallContext, CancellationToken, IAsyncEnumerable<object?>> handler)
    {
        ArgumentException.ThrowIfNullOrEmpty(function);
        ArgumentNullException.ThrowIfNull(handler);
        return Register(new DynamicStreamFunction(function, handler));
    }

    /// <summary>The one path every stream takes; checks its arguments now, sends when the enumeration starts.</summary>
    internal IAsyncEnumerable<TItem> InvokeStream<TState, TItem>(string target, string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TItem> readItem, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(target);
        ArgumentException.ThrowIfNullOrEmpty(function);
        return StreamAsync(target, function, state, writeKwargs, readItem, cancellationToken);
    }

    private async IAsyncEnumerable<TItem> StreamAsync<TState, TItem>(string target, string function, TState state, KwargsWriter<TState> writeKwargs,
        ResultReader<TItem> readItem, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var peer = ResolveCallee(target, function);
        if (peer.IsLegacy)
            throw new NotSupportedException($"Peer '{peer.Name}' is a Python p2p-local node (XML-RPC), which cannot stream results; '{function}' was not sent.");

        // A stream is observed like a call (Node.Telemetry.cs): one client span from the request to the last item, its
        // duration recorded, and p2plocal.stream.items on the span. A reader that leaves early ends it as OK.
        ObservedClientCall? observed = CallTelemetry.IsClientObserved ? ObservedClientCall.Start(target, function, peer.EndPoint) : null;
        Exception? failure = null;
        var items = 0L;
        try
        {
            ClientConnection.ReceivingStream stream;
            try
            {
                var connection = await _pool.GetAsync(AddressOf(peer), cancellationToken).ConfigureAwait(false);
                stream = await connection.OpenStreamAsync(function, state, writeKwargs, _options.StreamWindow, _options.RequestTimeout, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                failure = e;
                throw;
            }

            using (stream)
            {
                while (true)
                {
                    TItem item;
                    try
                    {
                        if (await stream.NextAsync(_options.RequestTimeout, cancellationToken).ConfigureAwait(false) is not { } frame)
                            break;
                        item = stream.Read(frame, readItem);
                    }
                    catch (Exception e)
                    {
                        failure = e;
                        throw;
                    }

                    items++;
                    yield return item;
                }
            }
        }
        finally
        {
            if (observed is { } call)
            {
                call.SetTag("p2plocal.stream.items", items);
                call.Finish(failure);
            }
        }
    }
}
