using System.Buffers;
using MessagePack;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>One incoming request, as handed to an <see cref="IServiceDispatcher"/>.</summary>
/// <remarks>
/// The <see cref="Kwargs"/> memory belongs to the node and is valid until the dispatcher's task completes.
/// A dispatcher writes exactly one MessagePack value, the result, to <see cref="Result"/>, and only on success.
/// </remarks>
public readonly struct FunctionCall
{
    internal FunctionCall(string function, ReadOnlyMemory<byte> kwargs, IBufferWriter<byte> result,
        MessagePackSerializerOptions options, CallContext context, CancellationToken cancellationToken, IStreamSink? stream = null)
    {
        Stream = stream;
        Function = function;
        Kwargs = kwargs;
        Result = result;
        Options = options;
        Context = context;
        CancellationToken = cancellationToken;
    }

    /// <summary>The function's wire name.</summary>
    public string Function { get; }

    /// <summary>The kwargs: one MessagePack map from parameter name to value.</summary>
    public ReadOnlyMemory<byte> Kwargs { get; }

    /// <summary>Where the result goes, as one MessagePack value.</summary>
    public IBufferWriter<byte> Result { get; }

    /// <summary>The serializer options of the node (untrusted-data security, no compression).</summary>
    public MessagePackSerializerOptions Options { get; }

    /// <summary>The name the calling node gave in its hello.</summary>
    public string CallerName => Context?.PeerName ?? "";

    /// <summary>Who is calling (the same instance for every call of one connection).</summary>
    public CallContext Context { get; }

    /// <summary>Fires when the caller cancels, its timeout passes, or the node shuts down.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>Where the items of a stream request go (see <see cref="GeneratedStreams"/>); null for a request of one result.</summary>
    internal IStreamSink? Stream { get; }

    /// <summary>True when the caller asked for a stream of items (a stream request), false when it waits for one result.</summary>
    public bool IsStream => Stream is not null;
}

/// <summary>
/// Serves a set of functions. The source generator emits one for every <c>[P2PService]</c> class; the dynamic
/// <see cref="Node.Register(string, Func{IReadOnlyDictionary{string, object}, object})"/> overloads wrap a delegate in one.
/// </summary>
/// <remarks>Implementations must be safe to call from many threads at once.</remarks>
public interface IServiceDispatcher
{
    /// <summary>The functions served, by wire name.</summary>
    IReadOnlyList<FunctionDescriptor> Functions { get; }

    /// <summary>
    /// Runs <see cref="FunctionCall.Function"/> (always one of <see cref="Functions"/>) and writes its result.
    /// Throw <see cref="InvalidKwargsException"/> for kwargs that do not fit; any other exception reaches the
    /// caller as a <see cref="RemoteException"/>.
    /// </summary>
    ValueTask InvokeAsync(FunctionCall request);
}
