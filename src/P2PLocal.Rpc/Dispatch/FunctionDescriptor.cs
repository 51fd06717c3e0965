namespace P2PLocal.Rpc.Dispatch;

/// <summary>What a node tells callers about one of its functions (see <see cref="Node.GetFunctionsAsync"/>).</summary>
/// <param name="Name">The function's name on the wire.</param>
/// <param name="Parameters">Its kwargs, in declaration order; empty for a dynamic function, which takes any kwargs.</param>
/// <param name="ReturnType">The C# name of the result type, or <c>object</c> for a dynamic function.</param>
/// <param name="Fingerprint">A hash of the service contract the function belongs to, or <see langword="null"/>.</param>
/// <remarks>Immutable and thread-safe.</remarks>
public sealed record FunctionDescriptor(
    string Name,
    IReadOnlyList<ParameterDescriptor> Parameters,
    string ReturnType,
    string? Fingerprint = null)
{
    /// <summary>Describes a dynamic function: any kwargs, any result.</summary>
    public static FunctionDescriptor Dynamic(string name) => new(name, [], "object");

    /// <summary>The name of the contract (interface) the function belongs to, such as <c>Shop.IShop</c>; null for a dynamic function.</summary>
    public string? Contract { get; init; }

    /// <summary>
    /// The function's own text in the contract fingerprint, <c>name(kwarg:type,kwarg:type=,)-&gt;result;</c> (see
    /// PROTOCOL.md, "Contract fingerprints"); null for a dynamic function. Two sides that print the same signature
    /// serve the function alike.
    /// </summary>
    public string? Signature { get; init; }

    /// <summary>
    /// The <c>[MessagePackObject]</c> types its kwargs and result reach (members' types included), in ordinal order of
    /// name, so a caller can build them; empty for a dynamic function and for types a node cannot describe.
    /// </summary>
    public IReadOnlyList<ObjectTypeDescriptor> ObjectTypes { get; init; } = [];

    /// <summary>
    /// True when the function streams its results (a <c>[P2PService]</c> method returning <see cref="IAsyncEnumerable{T}"/>,
    /// or <see cref="Node.RegisterStream(string, Func{IReadOnlyDictionary{string, object}, CancellationToken, IAsyncEnumerable{object}})"/>):
    /// its <see cref="ReturnType"/> is <c>stream&lt;T&gt;</c>, and callers read it with <see cref="Node.RequestStreamAsync(string, string, IReadOnlyDictionary{string, object}, CancellationToken)"/>.
    /// </summary>
    public bool IsStream => ReturnType.StartsWith(GeneratedStreams.ResultPrefix, StringComparison.Ordinal) && ReturnType.EndsWith('>');

    /// <summary>
    /// True when the function runs on the connection's read loop (<see cref="P2PFunctionAttribute.Inline"/>), false
    /// when it runs on the thread pool (the default, and always for a dynamic function). Not sent to peers.
    /// </summary>
    public bool RunsInline { get; init; }

    /// <summary>
    /// Whether the function is marked <c>[P2PFunction(Idempotent = true)]</c> in this side's contract, so
    /// <see cref="PeerDirectory.Any{TService}"/> may send a call again after a lost connection. Not sent to peers.
    /// </summary>
    public bool IsIdempotent { get; init; }
}

/// <summary>One kwarg a function takes.</summary>
/// <param name="Name">The key in the kwargs map.</param>
/// <param name="Type">The C# name of its type.</param>
/// <param name="IsOptional">True when the function has a default for it, so callers may leave it out.</param>
public sealed record ParameterDescriptor(string Name, string Type, bool IsOptional)
{
    /// <summary>
    /// The value an optional kwarg takes when it is left out, when it is a constant a peer can be told (a number, string,
    /// bool, or an enum as its number); null otherwise.
    /// </summary>
    public object? DefaultValue { get; init; }
}
