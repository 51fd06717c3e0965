using System.Buffers;
using MessagePack;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// Reads MessagePack into plain .NET values (the dynamic side of the API) and writes kwargs dictionaries.
/// Integers become <see cref="long"/> (or <see cref="ulong"/> above <see cref="long.MaxValue"/>), floats
/// <see cref="double"/>, maps with string keys <c>Dictionary&lt;string, object?&gt;</c>, other maps
/// <c>Dictionary&lt;object, object?&gt;</c>, arrays <c>object?[]</c>, binary <c>byte[]</c>, timestamps <see cref="DateTime"/>.
/// </summary>
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
    /// string or repeats, or a value cannot be read.
    /// </summary>
    public static Dictionary<string, object?> ReadKwargs(ReadOnlyMemory<byte> kwargs, MessagePackSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var reader = new MessagePackReader(kwargs);
        try
        {
            if (reader.NextMessagePackType != MessagePackType.Map)
                throw new InvalidKwargsException($"Kwargs must be a map from parameter name to value, not {reader.NextMessagePackType}.");
            var count = reader.ReadMapHeader();
            var result = new Dictionary<string, object?>(Math.Min(count, 64), StringComparer.Ordinal);
            for (var i = 0; i < count; i++)
            {
                if (reader.NextMessagePackType != MessagePackType.String)
                    throw new InvalidKwargsException($"Kwargs keys must be strings; key {i} is {reader.NextMessagePackType}.");
                var key = reader.ReadString()!;
                var value = ReadValue(ref reader, options);
                if (!result.TryAdd(key, value))
                    throw new InvalidKwargsException($"Kwarg '{key}' appears twice.");
            }

            return result;
        }
        catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException or InsufficientExecutionStackException or InvalidOperationException or OverflowException
            or ArgumentException) // a timestamp extension whose seconds or nanoseconds are out of DateTime's range
        {
            throw new InvalidKwargsException($"The kwargs are not valid MessagePack: {e.Message}", e);
        }
    }

    /// <summary>Reads one value as a plain .NET value (see the type remarks).</summary>
    /// <exception cref="MessagePackSerializationException">The data is malformed, too deep, or uses an unsupported extension type.</exception>
    public static object? ReadValue(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
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

    /// <summary>
    /// Skips one whole value without recursion, so hostile nesting cannot exhaust the stack.
    /// </summary>
    /// <exception cref="EndOfStreamException">The value is truncated.</exception>
    public static void SkipValue(ref MessagePackReader reader)
    {
        long left = 1;
        while (left-- > 0)
        {
            switch (reader.NextMessagePackType)
            {
                case MessagePackType.Array:
                    left += reader.ReadArrayHeader();
                    break;
                case MessagePackType.Map:
                    left += 2L * reader.ReadMapHeader();
                    break;
                default:
                    try
                    {
                        reader.Skip();
                    }
                    catch (ArgumentOutOfRangeException e)
                    {
                        // MessagePackReader reads a str32/bin32/ext32 length of 2^31 or more as negative (found by B7).
                        throw new EndOfStreamException("A length header claims more bytes than the data holds.", e);
                    }

                    break;
            }
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
                array[i] = ReadValue(ref reader, options);
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
            var keys = new object?[count];
            var values = new object?[count];
            var allStrings = true;
            for (var i = 0; i < count; i++)
            {
                keys[i] = ReadValue(ref reader, options);
                allStrings &= keys[i] is string;
                values[i] = ReadValue(ref reader, options);
            }

            return allStrings ? ToDictionary<string>(keys, values) : ToDictionary<object>(keys, values);
        }
        finally
        {
            reader.Depth--;
        }
    }

    private static Dictionary<TKey, object?> ToDictionary<TKey>(object?[] keys, object?[] values)
        where TKey : notnull
    {
        var map = new Dictionary<TKey, object?>(keys.Length);
        for (var i = 0; i < keys.Length; i++)
        {
            var key = keys[i] ?? throw new MessagePackSerializationException("A map key is nil.");
            if (!map.TryAdd((TKey)key, values[i]))
                throw new MessagePackSerializationException($"Map key '{key}' appears twice.");
        }

        return map;
    }
}
