using P2PLocal.Rpc.Generators.Helpers;

namespace P2PLocal.Rpc.Generators.Model;

/// <summary>
/// A formatter the generated resolver hands out for one type a contract reaches, so no MessagePack resolver has to
/// emit code at run time (Native AOT).
/// </summary>
/// <param name="TypeOfName">The type as <c>typeof</c> takes it: <c>global::</c>-qualified, no nullable reference marks.</param>
/// <param name="Creation">The expression that creates a library formatter (collections, enums, nullables), or null for <see cref="Shape"/>.</param>
/// <param name="Shape">The generated formatter of a <c>[MessagePackObject]</c> type, or null.</param>
internal sealed record FormatterSpec(string TypeOfName, string? Creation, ObjectShape? Shape);

/// <summary>How a <c>[MessagePackObject]</c> type is written: an array indexed by integer keys, or a map of string keys.</summary>
/// <param name="Name">The type's name in messages (<c>Shop.Order</c>).</param>
/// <param name="ClassName">The generated formatter's class name.</param>
/// <param name="IsValueType">True for a struct (nil is refused).</param>
/// <param name="IsMap">True for string keys (<c>keyAsPropertyName</c> or <c>[Key("name")]</c>).</param>
/// <param name="Length">The array length written: the highest integer key plus one.</param>
/// <param name="Members">The serialized members.</param>
/// <param name="ConstructorArguments">Indexes into <see cref="Members"/>, in the order the chosen constructor takes them.</param>
internal sealed record ObjectShape(
    string Name,
    string ClassName,
    bool IsValueType,
    bool IsMap,
    int Length,
    EquatableArray<MemberSpec> Members,
    EquatableArray<int> ConstructorArguments);

/// <summary>One serialized member of a <c>[MessagePackObject]</c> type.</summary>
/// <param name="Name">The member's name in C#.</param>
/// <param name="IntKey">Its integer key (array layout), or -1.</param>
/// <param name="StringKey">Its string key (map layout), or null.</param>
/// <param name="Type">Its type (<see cref="TypeRef.FullyQualifiedName"/> without nullable reference marks).</param>
/// <param name="MustNotBeNil">True for a non-nullable reference member: missing or nil is refused at the edge.</param>
/// <param name="IsInitOnly">True when only a constructor or an object initializer can set it.</param>
internal sealed record MemberSpec(string Name, int IntKey, string? StringKey, TypeRef Type, bool MustNotBeNil, bool IsInitOnly);
