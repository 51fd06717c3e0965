namespace P2PLocal.Rpc.Dispatch;

/// <summary>A streaming function registered as a delegate over a kwargs dictionary (see <see cref="Node.RegisterStream(string, Func{IReadOnlyDictionary{string, object}, CallContext, CancellationToken, IAsyncEnumerable{object}})"/>).</summary>
internal sealed class DynamicStreamFunction(string name, Func<IReadOnlyDictionary<string, object?>, CallContext, CancellationToken, IAsyncEnumerable<object?>> handler)
    : IServiceDispatcher
{
    public IReadOnlyList<FunctionDescriptor> Functions { get; } = [new FunctionDescriptor(name, [], GeneratedStreams.ResultType("object"))];

    public ValueTask InvokeAsync(FunctionCall call)
    {
        GeneratedStreams.EnsureStream(call);
        // Only the server makes a FunctionCall, after scanning its kwargs against the budget and for UTF-8.
        var kwargs = KwargsCodec.ReadKwargs(call.Kwargs, call.Options, scanned: true);
        return GeneratedStreams.WriteAsync(call, handler(kwargs, call.Context, call.CancellationToken));
    }
}
