using System.Buffers;
using System.Text.Unicode;
using MessagePack;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// Reads MessagePack into plain .NET values (the dynamic side of the API) and writes kwargs dictionaries.
/// Integers become <see cref="long"/> (or <see cref="ulong"/> above <see cref="long.MaxValue"/>), floats
/// <see cref="double"/>, maps with string keys <c>Dictionary&lt;string, object?&gt;</c>, other maps
/// <c>Dictionary&lt;object, object?&gt;</c>, arrays <c>object?[]</c>, binary <c>byte[]</c>, timestamps <see cref="DateTime"/>.
/// </summary>
/// <remarks>
/// Thread-safe (stateless). Reads are bounded for untrusted data (issue 8): a value may hold at most the budget of the
/// options' security (<see cref="NodeOptions.MaxKwargsElements"/> for a node's options, that default otherwise), its
/// strings must be valid UTF-8, and maps hash their keys with collision-resistant comparers.
/// </remarks>
public static class KwargsCodec
{
    /// <summary>Writes a kwargs dictionary as one MessagePack map; <see langword="null"/> writes an empty map.</summary>
    public static void WriteKwargs(ref MessagePackWriter writer, IReadOnlyDictionary<string, object?>? kwargs, MessagePackSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (kwargs is null)
        {
            writer.WriteMapHeader(0);
            return;
        }

        writer.WriteMapHeader(kwargs.Count);
        if (kwargs is Dictionary<string, object?> dictionary)
        {
            // The usual kwargs type: its struct enumerator spares the boxed one of the interface.
            foreach (var (key, value) in dictionary)
            {
                writer.Write(key);
                MessagePackSerializer.Serialize(ref writer, value, options);
            }

            return;
        }

        foreach (var (key, value) in kwargs)
        {
            writer.Write(key);
            MessagePackSerializer.Serialize(ref writer, value, options);
        }
    }

    /// <summary>
    /// Reads a kwargs map. Throws <see cref="InvalidKwargsException"/> when the value is not a map, a key is not a
    /// string or repeats, a value cannot be read, a string is not valid UTF-8, or the map holds more values than the
    /// budget of <paramref name="options"/> (<see cref="NodeOptions.MaxKwargsElements"/> for a node's options).
    /// </summary>
    public static Dictionary<string, object?> ReadKwargs(ReadOnlyMemory<byte> kwargs, MessagePackSerializerOptions options) =>
        ReadKwargs(kwargs, options, scanned: false);

    /// <summary>Reads a kwargs map; <paramref name="scanned"/> says the server already ran <see cref="Protocol.MessagePackValues.Scan"/> over it.</summary>
    internal static Dictionary<string, object?> ReadKwargs(ReadOnlyMemory<byte> kwargs, MessagePackSerializerOptions options, bool scanned)
    {
        ArgumentNullException.ThrowIfNull(options);
        var reader = new MessagePackReader(kwargs);
        try
        {
            var problem = scanned ? null : Check(reader, options);
            if (problem is not null)
                throw new InvalidKwargsException($"The kwargs are refused: {problem}.");
            if (reader.NextMessagePackType != MessagePackType.Map)
                throw new InvalidKwargsException($"Kwargs must be a map from parameter name to value, not {reader.NextMessagePackType}.");
            var count = reader.ReadMapHeader();
            var result = new Dictionary<string, object?>(Math.Min(count, 64), options.Security.GetEqualityComparer<string>());
            for (var i = 0; i < count; i++)
            {
                if (reader.NextMessagePackType != MessagePackType.String)
                    throw new InvalidKwargsException($"Kwargs keys must be strings; key {i} is {reader.NextMessagePackType}.");
                var key = reader.ReadString()!;
                var value = ReadValueCore(ref reader, options);
                if (!result.TryAdd(key, value))
                    throw new InvalidKwargsException($"Kwarg '{key}' appears twice.");
            }

            return result;
        }
        catch (Exception e) when (Protocol.MalformedInput.IsMalformed(e))
        {
            throw new InvalidKwargsException($"The kwargs are not valid MessagePack: {e.Message}", e);
        }
    }

    /// <summary>
    /// Reads one value as a plain .NET value (see the type remarks), after checking that it holds no more values than
    /// the budget of <paramref name="options"/> and that its strings are valid UTF-8.
    /// </summary>
    /// <exception cref="MessagePackSerializationException">
    /// The data is malformed, too deep, over the budget, not UTF-8, or uses an unsupported extension type.
    /// </exception>
    public static object? ReadValue(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        EnsureReadable(reader, options);
        return ReadValueCore(ref reader, options);
    }

    /// <summary>
    /// Skips one whole value without recursion, so hostile nesting cannot exhaust the stack (generated formatters call
    /// it for members they do not know; see <see cref="Protocol.MessagePackValues"/>).
    /// </summary>
    /// <exception cref="EndOfStreamException">The value is truncated.</exception>
    public static void SkipValue(ref MessagePackReader reader) => Protocol.MessagePackValues.Skip(ref reader);

    /// <summary>
    /// Throws <see cref="MessagePackSerializationException"/> when the value at <paramref name="reader"/> (which is not
    /// advanced) is over the budget of <paramref name="options"/>, has a string that is not UTF-8, or is truncated; the
    /// result readers call it before a formatter builds anything (issue 8, item 6).
    /// </summary>
    internal static void EnsureReadable(in MessagePackReader reader, MessagePackSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problem = Check(reader, options);
        if (problem is not null)
            throw new MessagePackSerializationException($"The value is refused: {problem}.");
    }

    /// <summary>Scans a copy of <paramref name="reader"/> against the budget of <paramref name="options"/>.</summary>
    private static string? Check(MessagePackReader reader, MessagePackSerializerOptions options)
    {
        try
        {
            return Protocol.MessagePackValues.Scan(ref reader, UntrustedInputSecurity.MaxElementsOf(options), out _);
        }
        catch (EndOfStreamException e)
        {
            throw new MessagePackSerializationException($"The value is truncated: {e.Message}", e);
        }
    }

    private static object? ReadValueCore(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        switch (reader.NextMessagePackType)
        {
            case MessagePackType.Nil:
                reader.ReadNil();
                return null;
            case MessagePackType.Boolean:
                return reader.ReadBoolean();
            case MessagePackType.Integer:
                // uint64 values above long.MaxValue are the only ones that need ulong.
                if (reader.NextCode == MessagePackCode.UInt64)
                {
                    var unsigned = reader.ReadUInt64();
                    return unsigned <= long.MaxValue ? (long)unsigned : unsigned;
                }

                return reader.ReadInt64();
            case MessagePackType.Float:
                return reader.ReadDouble();
            case MessagePackType.String:
                return reader.ReadString();
            case MessagePackType.Binary:
                return reader.ReadBytes()?.ToArray();
            case MessagePackType.Array:
                return ReadArray(ref reader, options);
            case MessagePackType.Map:
                return ReadMap(ref reader, options);
            case MessagePackType.Extension:
                var header = reader.TryReadExtensionFormatHeader(out var ext) ? ext : default;
                if (header.TypeCode == ReservedMessagePackExtensionTypeCode.DateTime)
                    return reader.ReadDateTime(header);
                throw new MessagePackSerializationException($"MessagePack extension type {header.TypeCode} is not supported.");
            default:
                throw new MessagePackSerializationException($"Unexpected MessagePack code 0x{reader.NextCode:x2}.");
        }
    }

    private static object?[] ReadArray(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        var count = reader.ReadArrayHeader();
        options.Security.DepthStep(ref reader);
        try
        {
            var array = new object?[count];
            for (var i = 0; i < count; i++)
                array[i] = ReadValueCore(ref reader, options);
            return array;
        }
        finally
        {
            reader.Depth--;
        }
    }

    private static object ReadMap(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        var count = reader.ReadMapHeader();
        options.Security.DepthStep(ref reader);
        try
        {
            if (count == 0)
                return new Dictionary<string, object?>(options.Security.GetEqualityComparer<string>());
            var keys = new object?[count];
            var values = new object?[count];
            var allStrings = true;
            for (var i = 0; i < count; i++)
            {
                keys[i] = ReadValueCore(ref reader, options);
                allStrings &= keys[i] is string;
                values[i] = ReadValueCore(ref reader, options);
            }

            return allStrings
                ? ToDictionary(keys, values, options.Security.GetEqualityComparer<string>())
                : ToDictionary(keys, values, UntrustedInputSecurity.ObjectKeysOf(options.Security));
        }
        finally
        {
            reader.Depth--;
        }
    }

    /// <remarks>The comparer is collision-resistant for untrusted data, so chosen keys cannot make inserts quadratic (issue 8, item 5).</remarks>
    private static Dictionary<TKey, object?> ToDictionary<TKey>(object?[] keys, object?[] values, IEqualityComparer<TKey> comparer)
        where TKey : notnull
    {
        var map = new Dictionary<TKey, object?>(keys.Length, comparer);
        for (var i = 0; i < keys.Length; i++)
        {
            var key = keys[i] ?? throw new MessagePackSerializationException("A map key is nil.");
            if (!map.TryAdd((TKey)key, values[i]))
                throw new MessagePackSerializationException($"Map key '{key}' appears twice.");
        }

        return map;
    }
}
