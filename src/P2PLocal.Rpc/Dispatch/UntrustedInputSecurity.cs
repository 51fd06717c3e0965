using System.Collections;
using MessagePack;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// The security every node reads with: <see cref="MessagePackSecurity.UntrustedData"/> (depth limit, collision-resistant
/// hashing), plus the decode budget of <see cref="NodeOptions.MaxKwargsElements"/>, carried in the serializer options so
/// every reader of kwargs and results finds it.
/// </summary>
/// <remarks>
/// Immutable and thread-safe. Maps read as <c>object</c> (dynamic kwargs and results, typed <c>object</c> parameters) hash
/// their keys with <see cref="DynamicKeyComparer"/>, which MessagePack's own object comparer would do by reflection and
/// would refuse for binary or container keys (issue 8, item 5).
/// </remarks>
internal sealed class UntrustedInputSecurity : MessagePackSecurity
{
    private static readonly DynamicKeyComparer s_untrustedObjectKeys = new(UntrustedData);

    public UntrustedInputSecurity(int maxKwargsElements)
        : base(UntrustedData)
    {
        MaxKwargsElements = maxKwargsElements;
        ObjectKeys = new DynamicKeyComparer(this);
    }

    private UntrustedInputSecurity(UntrustedInputSecurity copyFrom)
        : base(copyFrom)
    {
        MaxKwargsElements = copyFrom.MaxKwargsElements;
        ObjectKeys = new DynamicKeyComparer(this);
    }

    /// <summary>The most MessagePack values one kwargs map or one result may hold.</summary>
    public int MaxKwargsElements { get; }

    /// <summary>The comparer for map keys read as <c>object</c>.</summary>
    public DynamicKeyComparer ObjectKeys { get; }

    /// <summary>The budget in force for <paramref name="options"/>: the node's, or the default for options built elsewhere.</summary>
    public static int MaxElementsOf(MessagePackSerializerOptions options) =>
        options.Security is UntrustedInputSecurity security ? security.MaxKwargsElements : NodeOptions.DefaultMaxKwargsElements;

    /// <summary>
    /// The comparer for <c>object</c> keys under <paramref name="security"/>: collision-resistant unless the data is
    /// trusted, and never one that refuses a key type (MessagePack's own refuses binary and container keys).
    /// </summary>
    public static IEqualityComparer<object> ObjectKeysOf(MessagePackSecurity security) => security switch
    {
        UntrustedInputSecurity node => node.ObjectKeys,
        { HashCollisionResistant: true } => s_untrustedObjectKeys,
        _ => EqualityComparer<object>.Default,
    };

    protected override IEqualityComparer<T> GetHashCollisionResistantEqualityComparer<T>() =>
        typeof(T) == typeof(object) ? (IEqualityComparer<T>)(object)ObjectKeys : base.GetHashCollisionResistantEqualityComparer<T>();

    protected override MessagePackSecurity Clone() => new UntrustedInputSecurity(this);
}

/// <summary>
/// Hashes map keys of any type that the readers produce so that a sender cannot choose keys that collide: wide values
/// (<see cref="long"/>, <see cref="ulong"/>, <see cref="double"/>, dates) go through MessagePack's collision-resistant
/// comparers, which hash every bit with a per-process seed; anything else through <see cref="HashCode.Combine{T1}(T1)"/>
/// over its own hash (seeded, and one-to-one on 32 bits, so only equal hashes collide). Strings hash with .NET's
/// randomized string hash; arrays, maps and binary keys by identity, as <see cref="object.Equals(object)"/> compares them.
/// </summary>
/// <remarks>Thread-safe (stateless apart from the comparers it delegates to).</remarks>
internal sealed class DynamicKeyComparer(MessagePackSecurity security) : IEqualityComparer<object>, IEqualityComparer
{
    private readonly IEqualityComparer<long> _int64 = security.GetEqualityComparer<long>();
    private readonly IEqualityComparer<ulong> _uint64 = security.GetEqualityComparer<ulong>();
    private readonly IEqualityComparer<double> _double = security.GetEqualityComparer<double>();
    private readonly IEqualityComparer<float> _single = security.GetEqualityComparer<float>();
    private readonly IEqualityComparer<DateTime> _dateTime = security.GetEqualityComparer<DateTime>();
    private readonly IEqualityComparer<DateTimeOffset> _dateTimeOffset = security.GetEqualityComparer<DateTimeOffset>();
    private readonly IEqualityComparer<Guid> _guid = security.GetEqualityComparer<Guid>();

    public new bool Equals(object? x, object? y) => object.Equals(x, y);

    public int GetHashCode(object obj) => obj switch
    {
        null => 0,
        string text => text.GetHashCode(StringComparison.Ordinal),
        long value => _int64.GetHashCode(value),
        ulong value => _uint64.GetHashCode(value),
        double value => _double.GetHashCode(value),
        // MessagePack's float comparer returns the raw bits; seed them like any other 32-bit value.
        float value => HashCode.Combine(_single.GetHashCode(value)),
        DateTime value => _dateTime.GetHashCode(value),
        DateTimeOffset value => _dateTimeOffset.GetHashCode(value),
        Guid value => _guid.GetHashCode(value),
        _ => HashCode.Combine(obj.GetHashCode()),
    };
}
