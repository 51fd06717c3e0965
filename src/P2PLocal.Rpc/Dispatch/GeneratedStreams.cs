using System.ComponentModel;
using MessagePack;
using MessagePack.Formatters;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// Helpers the generated dispatchers (and <see cref="Node.RegisterStream(string, Func{IReadOnlyDictionary{string, object}, CancellationToken, IAsyncEnumerable{object}})"/>)
/// use to serve a function that returns <see cref="IAsyncEnumerable{T}"/>: its items go to the caller one frame each,
/// never more than the stream's window ahead of the caller's reading (issue 14; PROTOCOL.md, "Streamed results").
/// </summary>
/// <remarks>Thread-safe (stateless). Not meant to be called by hand: the source generator emits the calls.</remarks>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class GeneratedStreams
{
    /// <summary>The spelling of a streaming function's result type in descriptors and fingerprints: <c>stream&lt;T&gt;</c>.</summary>
    internal const string ResultPrefix = "stream<";

    /// <summary>The result type a descriptor gives a function that streams items of type <paramref name="itemType"/>.</summary>
    internal static string ResultType(string itemType) => ResultPrefix + itemType + ">";

    /// <summary>Refuses a request that waits for one result (not a stream request) before the function runs.</summary>
    /// <exception cref="MethodNotFoundException">The call is not a stream request; the caller is told to stream it.</exception>
    public static void EnsureStream(FunctionCall call)
    {
        if (!call.IsStream)
            throw new StreamShapeException($"'{call.Function}' returns a stream of items, not one result: call it with RequestStreamAsync or a typed proxy of this version.")
            {
                Function = call.Function,
            };
    }

    /// <summary>
    /// Sends the items of <paramref name="items"/> as the call's stream, then ends it. The enumerator gets the request's
    /// cancellation token (so an <c>[EnumeratorCancellation]</c> parameter sees the caller's cancel), and the next
    /// item is asked for only when the caller has room for it.
    /// </summary>
    /// <exception cref="MethodNotFoundException">The call is not a stream request.</exception>
    /// <exception cref="SerializationFailedException">An item cannot be serialized; the items before it were sent.</exception>
    /// <exception cref="FrameTooLargeException">An item is above the caller's frame limit; the items before it were sent.</exception>
    /// <exception cref="OperationCanceledException">The caller cancelled, or the connection closed.</exception>
    public static ValueTask WriteAsync<T>(FunctionCall call, IAsyncEnumerable<T> items)
    {
        ArgumentNullException.ThrowIfNull(items);
        EnsureStream(call);
        return WriteItemsAsync(call, call.Stream!, items);
    }

    private static async ValueTask WriteItemsAsync<T>(FunctionCall call, IStreamSink sink, IAsyncEnumerable<T> items)
    {
        IMessagePackFormatter<T> formatter;
        try
        {
            formatter = call.Options.Resolver.GetFormatterWithVerify<T>();
        }
        catch (Exception e) when (GeneratedKwargs.IsWriteError(e))
        {
            throw GeneratedKwargs.CannotSerialize($"items of '{call.Function}'", TypeNames.Of<T>(), e);
        }

        var enumerator = items.GetAsyncEnumerator(call.CancellationToken);
        try
        {
            while (true)
            {
                // Credit first, then the next item: the producer never runs more than the window ahead of the caller.
                // Items made without a wait between them go out together; anything that waits sends them first.
                var credit = sink.WaitForCreditAsync(call.CancellationToken);
                if (!credit.IsCompleted)
                    sink.Flush();
                await credit.ConfigureAwait(false);
                var next = enumerator.MoveNextAsync();
                if (!next.IsCompleted)
                    sink.Flush();
                if (!await next.ConfigureAwait(false))
                    break;
                var frame = sink.BeginItem();
                try
                {
                    var writer = new MessagePackWriter(frame);
                    formatter.Serialize(ref writer, enumerator.Current, call.Options);
                    writer.Flush();
                }
                catch (Exception e)
                {
                    frame.Dispose();
                    if (GeneratedKwargs.IsWriteError(e))
                        throw GeneratedKwargs.CannotSerialize($"item of '{call.Function}'", TypeNames.Of<T>(), e);
                    throw;
                }

                sink.Send(frame);
            }
        }
        finally
        {
            sink.Flush(); // the items made before an end, an error or a cancel go out before the reply
            await enumerator.DisposeAsync().ConfigureAwait(false);
        }

        await GeneratedResults.WriteNil(call).ConfigureAwait(false); // the end: the request's one reply, [1, id, nil]
    }
}
