namespace P2PLocal.Rpc.Generators.Model;

/// <summary>A type as generated code needs it.</summary>
/// <param name="Name">The name peers see in function descriptors (no <c>global::</c>, no nullable reference marks): <c>int</c>, <c>Shop.Order</c>.</param>
/// <param name="FullyQualifiedName">The name to write in generated code: <c>global::Shop.Order?</c>.</param>
internal sealed record TypeRef(string Name, string FullyQualifiedName);
