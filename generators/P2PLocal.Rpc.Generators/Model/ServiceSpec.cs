using P2PLocal.Rpc.Generators.Helpers;

namespace P2PLocal.Rpc.Generators.Model;

/// <summary>A set of functions with one fingerprint: an interface, generated or marked <c>[P2PService]</c>.</summary>
/// <param name="Name">The interface's name as peers are told it (<c>Shop.IOrders</c>).</param>
/// <param name="FullyQualifiedName">The interface's name in code.</param>
/// <param name="Fingerprint">The hash of wire names, parameter names and types, and result types.</param>
/// <param name="Functions">The functions, in declaration order.</param>
/// <param name="Receiver">The expression the dispatcher calls the functions on.</param>
/// <param name="EmitProxy">True when this service declares the contract, so its proxy is emitted here.</param>
internal sealed record ContractSpec(
    string Name,
    string FullyQualifiedName,
    string Fingerprint,
    EquatableArray<FunctionSpec> Functions,
    string Receiver,
    bool EmitProxy);

/// <summary>Everything the emitter needs for one <c>[P2PService]</c> type; compares by value so the pipeline can cache it.</summary>
/// <param name="Namespace">The namespace, or null for the global namespace.</param>
/// <param name="Name">The type's name.</param>
/// <param name="FullyQualifiedName">The type's name in code.</param>
/// <param name="Keyword">How the type is declared: <c>class</c>, <c>record</c> or <c>interface</c> (contract first).</param>
/// <param name="Accessibility"><c>public</c> or <c>internal</c>, given to the generated interface.</param>
/// <param name="GeneratedInterfaceName">The name of the interface to emit for a class (<c>IFoo</c>), or null.</param>
/// <param name="DispatcherServiceType">The type the dispatcher holds.</param>
/// <param name="DispatcherKeys">The types the dispatcher is registered under.</param>
/// <param name="Contracts">The contracts served.</param>
internal sealed record ServiceSpec(
    string? Namespace,
    string Name,
    string FullyQualifiedName,
    string Keyword,
    string Accessibility,
    string? GeneratedInterfaceName,
    string DispatcherServiceType,
    EquatableArray<string> DispatcherKeys,
    EquatableArray<ContractSpec> Contracts)
{
    public string HintName => (Namespace is null ? Name : Namespace + "." + Name) + ".P2P.g.cs";
}
