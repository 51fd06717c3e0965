using System.ComponentModel;
using System.Text;
using MessagePack;
using MessagePack.Formatters;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// Helpers the formatters generated for <c>[MessagePackObject]</c> types use to check what arrives (arity, nil,
/// member types) and to word what is wrong. Errors are <see cref="MessagePackSerializationException"/>s naming the
/// type and member, which a dispatcher turns into <see cref="InvalidKwargsException"/>.
/// </summary>
/// <remarks>Thread-safe (stateless). Not meant to be called by hand: the source generator emits the calls.</remarks>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class GeneratedFormatters
{
    /// <summary>Reads the array header of an object written with integer keys.</summary>
    /// <exception cref="MessagePackSerializationException">The value is not an array.</exception>
    public static int ReadArrayHeader(ref MessagePackReader reader, string type)
    {
        if (reader.NextMessagePackType != MessagePackType.Array)
            throw new MessagePackSerializationException($"A {type} is sent as an array of its members, not {reader.NextMessagePackType}.");
        return reader.ReadArrayHeader();
    }

    /// <summary>Reads the map header of an object written with string keys.</summary>
    /// <exception cref="MessagePackSerializationException">The value is not a map.</exception>
    public static int ReadMapHeader(ref MessagePackReader reader, string type)
    {
        if (reader.NextMessagePackType != MessagePackType.Map)
            throw new MessagePackSerializationException($"A {type} is sent as a map of its members, not {reader.NextMessagePackType}.");
        return reader.ReadMapHeader();
    }

    /// <summary>Reads one member key of an object written with string keys.</summary>
    /// <exception cref="MessagePackSerializationException">The key is not a string.</exception>
    public static ReadOnlySpan<byte> ReadKey(ref MessagePackReader reader, string type)
    {
        if (reader.NextMessagePackType != MessagePackType.String)
            throw new MessagePackSerializationException($"The member keys of a {type} are strings, not {reader.NextMessagePackType}.");
        return GeneratedKwargs.ReadUtf8(ref reader);
    }

    /// <summary>The error for a member sent twice.</summary>
    public static MessagePackSerializationException Duplicate(string type, string member) =>
        new($"Member '{member}' of {type} appears twice.");

    /// <summary>The error for a non-nullable member that was not sent (a short array, or a map without it).</summary>
    /// <param name="type">The object's type.</param>
    /// <param name="member">The member's name.</param>
    /// <param name="key">Its integer key, or -1 for a map.</param>
    public static MessagePackSerializationException Missing(string type, string member, int key) =>
        new(key < 0
            ? $"Member '{member}' of {type} is missing; it cannot be null."
            : $"Member '{member}' of {type} (key {key}) is missing: the array is too short; it cannot be null.");

    /// <summary>The error for nil sent for a non-nullable member.</summary>
    public static MessagePackSerializationException NilMember(string type, string member) =>
        new($"Member '{member}' of {type} is nil; it cannot be null.");

    /// <summary>The error for nil sent for a struct.</summary>
    public static MessagePackSerializationException Nil(string type) =>
        new($"nil is not a valid {type}.");

    /// <summary>The error for a member whose value does not fit its type.</summary>
    public static MessagePackSerializationException BadMember(string type, string member, Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return new($"Member '{member}' of {type}: {error.Message}", error);
    }
}

/// <summary>The formatters generated for every assembly with <c>[P2PService]</c> contracts, asked in registration order.</summary>
internal sealed class GeneratedFormatterResolver : IFormatterResolver
{
    public static readonly GeneratedFormatterResolver Instance = new();

    private static IFormatterResolver[] s_resolvers = [];

    public static void Add(IFormatterResolver resolver)
    {
        IFormatterResolver[] before, after;
        do
        {
            before = Volatile.Read(ref s_resolvers);
            after = [.. before, resolver];
        }
        while (Interlocked.CompareExchange(ref s_resolvers, after, before) != before);
    }

    public IMessagePackFormatter<T>? GetFormatter<T>()
    {
        // Not cached: resolvers are few, and the node's options cache what they resolve (CompositeResolver).
        foreach (var resolver in Volatile.Read(ref s_resolvers))
        {
            if (resolver.GetFormatter<T>() is { } formatter)
                return formatter;
        }

        return null;
    }
}
