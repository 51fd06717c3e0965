namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// How a <c>[MessagePackObject]</c> type that a function's kwargs or result reach travels, so a caller in any language
/// can build it (see PROTOCOL.md, "Object values"): an array indexed by integer keys, or a map of string keys.
/// </summary>
/// <param name="Name">The type's name as the fingerprint spells it, such as <c>Shop.Order</c>.</param>
/// <param name="IsMap">True when it travels as a map of string keys; false for an array whose element <i>n</i> is the member with key <i>n</i>.</param>
/// <param name="Members">Its serialized members: by integer key (array) or in declaration order (map).</param>
/// <remarks>Immutable and thread-safe.</remarks>
public sealed record ObjectTypeDescriptor(string Name, bool IsMap, IReadOnlyList<ObjectMemberDescriptor> Members);

/// <summary>One serialized member of a <c>[MessagePackObject]</c> type.</summary>
/// <param name="Name">The member's name in C# (for people; the wire uses its key).</param>
/// <param name="Type">Its type, spelled as in the contract fingerprint (<c>int</c>, <c>string</c>, <c>Shop.Point[]</c>).</param>
/// <param name="IsRequired">
/// True when a receiver refuses the object if the member is missing or nil (a non-nullable reference); false when it
/// takes its default instead.
/// </param>
/// <remarks>Immutable and thread-safe. Exactly one of <see cref="IntKey"/> and <see cref="StringKey"/> is set.</remarks>
public sealed record ObjectMemberDescriptor(string Name, string Type, bool IsRequired)
{
    /// <summary>Its integer key, the member's index in the array form; null in the map form.</summary>
    public int? IntKey { get; init; }

    /// <summary>Its string key in the map form; null in the array form.</summary>
    public string? StringKey { get; init; }
}
