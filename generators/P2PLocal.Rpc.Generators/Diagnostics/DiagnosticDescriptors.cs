using System.Collections.Generic;
using System.Reflection;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace P2PLocal.Rpc.Generators.Diagnostics;

/// <summary>Every diagnostic the generator reports. Keep AnalyzerReleases.Unshipped.md and docs/generator.md in step.</summary>
internal static class DiagnosticDescriptors
{
    private const string Category = "P2PLocal.Rpc";
    /// <summary>Each diagnostic's help: its anchor in docs/diagnostics.md under the RepositoryUrl of Directory.Build.props.</summary>
    private static readonly string s_helpRoot = RepositoryUrl() + "/blob/main/docs/diagnostics.md#";

    private static string RepositoryUrl() =>
        typeof(DiagnosticDescriptors).Assembly.GetCustomAttributes(typeof(AssemblyMetadataAttribute), inherit: false)
            .Cast<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "RepositoryUrl")?.Value?.TrimEnd('/') ?? "";

    public static readonly DiagnosticDescriptor NotPartial = Create(
        "P2P001", "Service class must be partial",
        "Make class '{0}' partial: the generator adds the contract interface to it",
        "A [P2PService] class gets its contract interface added by generated code, which needs the class to be declared partial. A class that implements a [P2PService] interface gets no interface and need not be partial.");

    public static readonly DiagnosticDescriptor Nested = Create(
        "P2P002", "Service must not be nested",
        "Move '{0}' out of '{1}' to namespace level: nested services are not supported",
        "Generated interfaces, dispatchers and proxies live at namespace level beside the service, so the service must be a top-level type.");

    public static readonly DiagnosticDescriptor Generic = Create(
        "P2P003", "Service must not be generic",
        "Make '{0}' non-generic, or derive a non-generic [P2PService] type from it: generic services are not supported",
        "A function's kwargs and result types must be known when the service is compiled, so a service type cannot have type parameters.");

    public static readonly DiagnosticDescriptor NotAccessible = Create(
        "P2P004", "Service must be public or internal",
        "Make '{0}' public or internal: a file-local service cannot be reached by the generated registration",
        "The generated dispatcher, proxy and interface sit in another file and must see the service type.");

    public static readonly DiagnosticDescriptor RefParameter = Create(
        "P2P005", "Function parameters must be passed by value",
        "Remove '{1}' from parameter '{0}' of '{2}': kwargs are sent by value, so ref, out and in parameters are not supported; return the value instead",
        "Kwargs travel one way, from caller to handler; a function hands data back only through its result.");

    public static readonly DiagnosticDescriptor UnsupportedParameterType = Create(
        "P2P006", "Parameter type cannot be sent",
        "Change the type of parameter '{0}' of '{1}': '{2}' cannot be serialized with MessagePack (pointers, ref structs such as Span<T>, delegates and type parameters cannot; declare a dynamic kwarg as object); use an array, a collection or a [MessagePackObject] type",
        "Every kwarg is sent as a MessagePack value, so its type must be one MessagePack can write and read.");

    public static readonly DiagnosticDescriptor UnsupportedReturnType = Create(
        "P2P007", "Return type cannot be sent",
        "Change the return type of '{0}': '{1}' cannot be sent back (use void, a serializable type, Task, Task<T>, ValueTask, ValueTask<T> or IAsyncEnumerable<T>; no ref returns, ref structs, pointers or delegates)",
        "A function's result is sent back as one MessagePack value once the method completes.");

    public static readonly DiagnosticDescriptor GenericMethod = Create(
        "P2P008", "Function must not be generic",
        "Make method '{0}' non-generic, or mark it [P2PIgnore]: generic functions are not supported",
        "A function's kwargs and result must have types fixed at compile time.");

    public static readonly DiagnosticDescriptor OverloadCollision = Create(
        "P2P009", "Overloads collide on the wire",
        "Overloads of '{0}' share the wire name '{1}'; give all but one a distinct name with [P2PFunction(Name = \"...\")] or mark them [P2PIgnore]",
        "Functions are called by name with kwargs, so overloads cannot be told apart on the wire.");

    public static readonly DiagnosticDescriptor DuplicateWireName = Create(
        "P2P010", "Two functions have one wire name",
        "Methods '{0}' and '{1}' both use the wire name '{2}'; rename one with [P2PFunction(Name = \"...\")]",
        "Each function of a service needs its own wire name.");

    public static readonly DiagnosticDescriptor InvalidWireName = Create(
        "P2P011", "Invalid wire name",
        "Give method '{0}' a wire name that is not empty and does not start with '$' (reserved for built-in functions like $methods)",
        "Function names starting with '$' are reserved for the protocol's built-in functions.");

    public static readonly DiagnosticDescriptor TooManyCancellationTokens = Create(
        "P2P012", "More than one CancellationToken",
        "Keep one CancellationToken parameter on '{0}': the request has a single cancellation token",
        "The CancellationToken parameter is not sent; it receives the request's own token, of which there is one.");

    public static readonly DiagnosticDescriptor UnsupportedMember = Create(
        "P2P013", "Contract interface member is not a method",
        "Remove '{0}' from [P2PService] interface '{1}' or make it a method: proxies can only implement instance methods",
        "A contract interface is implemented by a generated proxy that turns each method into a call; properties, events and static members have no such meaning.");

    public static readonly DiagnosticDescriptor UnserializableType = Create(
        "P2P014", "Type cannot be serialized",
        "The {0} cannot be serialized: {1}: {2}; {3}",
        "Kwargs and results travel as MessagePack; a type MessagePack's standard resolver cannot write would fail at call time, on the caller or after the handler ran. If NodeOptions.SerializerOptions registers a formatter for the type, lower this diagnostic's severity in .editorconfig.");

    public static readonly DiagnosticDescriptor MissingKey = Create(
        "P2P015", "[MessagePackObject] member has no [Key]",
        "Member '{0}' of [MessagePackObject] type '{1}' (reached by the {2}) has no [Key]; add [Key(n)] or [IgnoreMember], or declare [MessagePackObject(keyAsPropertyName: true)]",
        "A [MessagePackObject] type is written as an array indexed by [Key] (or a map keyed by member names with keyAsPropertyName: true); MessagePack refuses a public member without a key at call time.");

    public static readonly DiagnosticDescriptor StreamWithoutToken = Create(
        "P2P016", "Streaming function needs a cancellation token",
        "Give '{0}' a CancellationToken parameter{1}: the caller's cancel and its reading pace reach a stream only through its token",
        "A function returning IAsyncEnumerable<T> streams its items; when the caller stops reading or cancels, the producer is told through the request's token. An async iterator method must mark that parameter [EnumeratorCancellation] so the token also reaches the enumerator.");

    public static readonly DiagnosticDescriptor StreamParameter = Create(
        "P2P017", "Function parameters cannot be streams",
        "Change parameter '{0}' of '{1}': '{2}' is a stream, and only results can stream; pass an array or list, or call once per item",
        "Streams go one way, from the serving node to the caller, as the result of a function returning IAsyncEnumerable<T>. A caller cannot stream kwargs.");

    public static readonly DiagnosticDescriptor UnsupportedStream = Create(
        "P2P018", "Unsupported stream shape",
        "Change the return type of '{0}': '{1}' {2}; return IAsyncEnumerable<T> of a serializable T directly",
        "A streaming function returns IAsyncEnumerable<T> itself (not a task of one, not an IAsyncEnumerator<T>), and each item is one MessagePack value, so T cannot be a stream, a task or a type MessagePack cannot write.");

    public static IEnumerable<DiagnosticDescriptor> All => new[]
    {
        NotPartial, Nested, Generic, NotAccessible, RefParameter, UnsupportedParameterType, UnsupportedReturnType,
        GenericMethod, OverloadCollision, DuplicateWireName, InvalidWireName, TooManyCancellationTokens, UnsupportedMember,
        UnserializableType, MissingKey, StreamWithoutToken, StreamParameter, UnsupportedStream,
    };

    private static readonly Dictionary<string, DiagnosticDescriptor> s_byId = All.ToDictionary(d => d.Id);

    public static DiagnosticDescriptor ById(string id) => s_byId[id];

    private static DiagnosticDescriptor Create(string id, string title, string message, string description) =>
        new(id, title, message, Category, DiagnosticSeverity.Error, isEnabledByDefault: true, description: description,
            helpLinkUri: s_helpRoot + id.ToLowerInvariant());
}
