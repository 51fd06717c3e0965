using P2PLocal.Rpc.Generators.Helpers;

namespace P2PLocal.Rpc.Generators.Model;

/// <summary>How a method hands back its result.</summary>
internal enum ReturnKind
{
    Void,
    Value,
    Task,
    TaskOfT,
    ValueTask,
    ValueTaskOfT,

    /// <summary><c>IAsyncEnumerable&lt;T&gt;</c>: items streamed to the caller (issue 14).</summary>
    Stream,
}

/// <summary>One method served as a function.</summary>
/// <param name="MethodName">The method's name as C# writes it.</param>
/// <param name="WireName">The function's name on the wire.</param>
/// <param name="Parameters">All parameters in declaration order, the cancellation token included.</param>
/// <param name="ReturnKind">Sync or async, with or without a value.</param>
/// <param name="ReturnType">The declared return type.</param>
/// <param name="ResultType">The type of the value sent back (the <c>T</c> of <c>Task&lt;T&gt;</c>; of a stream, the type of each item), or null when nothing is.</param>
/// <param name="ObjectTypes">The <c>[MessagePackObject]</c> types its kwargs and result reach, in ordinal order of name, described to callers in <c>$methods</c>.</param>
/// <param name="RunsInline">The method opted in to run on the read loop (<c>[P2PFunction(Inline = true)]</c>).</param>
/// <param name="IsIdempotent"><c>[P2PFunction(Idempotent = true)]</c>: a call to any peer may be sent again after a lost connection (issue 14).</param>
internal sealed record FunctionSpec(
    string MethodName,
    string WireName,
    EquatableArray<ParameterSpec> Parameters,
    ReturnKind ReturnKind,
    TypeRef ReturnType,
    TypeRef? ResultType,
    EquatableArray<ObjectShape> ObjectTypes = default,
    bool RunsInline = false,
    bool IsIdempotent = false)
{
    /// <summary>The result as peers see it in descriptors and the fingerprint: the type, <c>stream&lt;T&gt;</c> for a stream, or <c>void</c>.</summary>
    public string WireResult => ReturnKind == ReturnKind.Stream ? "stream<" + ResultType!.Name + ">" : ResultType?.Name ?? "void";
}
