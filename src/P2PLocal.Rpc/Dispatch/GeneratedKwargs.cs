using System.ComponentModel;
using System.Text;
using MessagePack;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// Helpers the generated dispatchers use to read a kwargs map straight from a <see cref="MessagePackReader"/> and to
/// word the errors callers get back as <see cref="InvalidKwargsException"/>.
/// </summary>
/// <remarks>Thread-safe (stateless). Not meant to be called by hand: the source generator emits the calls.</remarks>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class GeneratedKwargs
{
    /// <summary>Reads the header of the kwargs map.</summary>
    /// <exception cref="InvalidKwargsException">The value is not a map.</exception>
    public static int ReadMapHeader(ref MessagePackReader reader, string function)
    {
        if (reader.NextMessagePackType != MessagePackType.Map)
            throw new InvalidKwargsException($"The kwargs of '{function}' must be a map from parameter name to value, not {reader.NextMessagePackType}.");
        return reader.ReadMapHeader();
    }

    /// <summary>Reads one key of the kwargs map as UTF-8 bytes, without allocating when the data is contiguous.</summary>
    /// <exception cref="InvalidKwargsException">The key is not a string.</exception>
    public static ReadOnlySpan<byte> ReadKey(ref MessagePackReader reader, string function)
    {
        if (reader.NextMessagePackType != MessagePackType.String)
            throw new InvalidKwargsException($"The kwargs keys of '{function}' must be strings, not {reader.NextMessagePackType}.");
        if (reader.TryReadStringSpan(out var span))
            return span;
        var sequence = reader.ReadStringSequence();
        return sequence.HasValue ? System.Buffers.BuffersExtensions.ToArray(sequence.Value) : default;
    }

    /// <summary>Whether <paramref name="error"/> is one a <see cref="MessagePackReader"/> or formatter throws for data that does not fit.</summary>
    /// <remarks>
    /// <see cref="ArgumentException"/> counts: a dictionary formatter throws it for a key that repeats, and the timestamp
    /// reader for seconds or nanoseconds out of range (issue 8: a duplicate key is invalid kwargs, not a handler failure).
    /// </remarks>
    public static bool IsReadError(Exception error) =>
        error is MessagePackSerializationException or EndOfStreamException or InvalidOperationException or OverflowException
            or InsufficientExecutionStackException or ArgumentException;

    /// <summary>The error for a kwarg the function does not take.</summary>
    public static InvalidKwargsException Unknown(string function, ReadOnlySpan<byte> key, string signature) =>
        new($"'{function}' got an unexpected kwarg '{Encoding.UTF8.GetString(key)}'; it takes {signature}.");

    /// <summary>The error for a kwarg that appears twice in the map.</summary>
    public static InvalidKwargsException Duplicate(string function, string name) =>
        new($"'{function}' got kwarg '{name}' twice.");

    /// <summary>The error for a required kwarg that is not in the map.</summary>
    public static InvalidKwargsException Missing(string function, string name, string signature) =>
        new($"'{function}' is missing the required kwarg '{name}'; it takes {signature}.");

    /// <summary>The error for a kwargs map that cannot be read at all (truncated or malformed).</summary>
    public static InvalidKwargsException Malformed(string function, Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return new($"The kwargs of '{function}' are not valid MessagePack: {error.Message}", error);
    }

    /// <summary>The error for a kwarg whose value cannot be read as the parameter's type.</summary>
    public static InvalidKwargsException BadValue(string function, string name, string type, Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return new($"Kwarg '{name}' of '{function}' is not a valid {type}: {error.Message}", error);
    }
}
