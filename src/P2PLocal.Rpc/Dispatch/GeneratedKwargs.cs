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
        return ReadUtf8(ref reader);
    }

    /// <summary>Reads a string as UTF-8 bytes, without allocating when the data is contiguous.</summary>
    internal static ReadOnlySpan<byte> ReadUtf8(ref MessagePackReader reader)
    {
        if (reader.TryReadStringSpan(out var span))
            return span;
        var sequence = reader.ReadStringSequence();
        return sequence.HasValue ? System.Buffers.BuffersExtensions.ToArray(sequence.Value) : default;
    }

    /// <summary>Reads an <see cref="sbyte"/> kwarg; see <see cref="ReadInt64"/> for what binds.</summary>
    /// <exception cref="OverflowException">The value is out of range or not integral.</exception>
    public static sbyte ReadSByte(ref MessagePackReader reader) => checked((sbyte)ReadInteger(ref reader, sbyte.MinValue, sbyte.MaxValue));

    /// <summary>Reads a <see cref="byte"/> kwarg; see <see cref="ReadInt64"/> for what binds.</summary>
    /// <exception cref="OverflowException">The value is out of range or not integral.</exception>
    public static byte ReadByte(ref MessagePackReader reader) => checked((byte)ReadInteger(ref reader, byte.MinValue, byte.MaxValue));

    /// <summary>Reads a <see cref="short"/> kwarg; see <see cref="ReadInt64"/> for what binds.</summary>
    /// <exception cref="OverflowException">The value is out of range or not integral.</exception>
    public static short ReadInt16(ref MessagePackReader reader) => checked((short)ReadInteger(ref reader, short.MinValue, short.MaxValue));

    /// <summary>Reads a <see cref="ushort"/> kwarg; see <see cref="ReadInt64"/> for what binds.</summary>
    /// <exception cref="OverflowException">The value is out of range or not integral.</exception>
    public static ushort ReadUInt16(ref MessagePackReader reader) => checked((ushort)ReadInteger(ref reader, ushort.MinValue, ushort.MaxValue));

    /// <summary>Reads an <see cref="int"/> kwarg; see <see cref="ReadInt64"/> for what binds.</summary>
    /// <exception cref="OverflowException">The value is out of range or not integral.</exception>
    public static int ReadInt32(ref MessagePackReader reader) => checked((int)ReadInteger(ref reader, int.MinValue, int.MaxValue));

    /// <summary>Reads a <see cref="uint"/> kwarg; see <see cref="ReadInt64"/> for what binds.</summary>
    /// <exception cref="OverflowException">The value is out of range or not integral.</exception>
    public static uint ReadUInt32(ref MessagePackReader reader) => checked((uint)ReadInteger(ref reader, uint.MinValue, uint.MaxValue));

    /// <summary>
    /// Reads a <see cref="long"/> kwarg as other languages send numbers: any MessagePack integer in range, or a float
    /// with an integral value (<c>2.0</c>, as JSON and Python clients send). A fraction or a value out of range throws.
    /// </summary>
    /// <exception cref="OverflowException">The value is out of range or not integral.</exception>
    public static long ReadInt64(ref MessagePackReader reader) => ReadInteger(ref reader, long.MinValue, long.MaxValue);

    /// <summary>Reads a <see cref="ulong"/> kwarg; see <see cref="ReadInt64"/> for what binds.</summary>
    /// <exception cref="OverflowException">The value is out of range or not integral.</exception>
    public static ulong ReadUInt64(ref MessagePackReader reader)
    {
        if (reader.NextMessagePackType != MessagePackType.Float)
            return reader.ReadUInt64();
        var value = reader.ReadDouble();
        // 2^64 is exact as a double; every integral double below it fits.
        if (value != Math.Floor(value) || value < 0 || value >= 18446744073709551616.0)
            throw NotIntegral(value, "ulong");
        return (ulong)value;
    }

    /// <summary>
    /// Reads a <see cref="double"/> kwarg: a float, or an integer that a double holds exactly (beyond 2^53 most do
    /// not, and such a value throws rather than being rounded).
    /// </summary>
    /// <exception cref="OverflowException">The integer cannot be held exactly.</exception>
    public static double ReadDouble(ref MessagePackReader reader)
    {
        if (reader.NextMessagePackType != MessagePackType.Integer)
            return reader.ReadDouble();
        if (reader.NextCode == MessagePackCode.UInt64)
        {
            var unsigned = reader.ReadUInt64();
            var asDouble = (double)unsigned;
            if (asDouble >= 18446744073709551616.0 || (ulong)asDouble != unsigned)
                throw new OverflowException($"The integer {unsigned} cannot be held exactly by a double.");
            return asDouble;
        }

        var integer = reader.ReadInt64();
        var result = (double)integer;
        if (result >= 9223372036854775808.0 || (long)result != integer)
            throw new OverflowException($"The integer {integer} cannot be held exactly by a double.");
        return result;
    }

    /// <summary>
    /// Reads a <see cref="float"/> kwarg: a float (a float64 is rounded to the nearest float32, as a cast would; one
    /// beyond float32's range throws), or an integer that a float holds exactly.
    /// </summary>
    /// <exception cref="OverflowException">The value is out of float32's range, or an integer it cannot hold exactly.</exception>
    public static float ReadSingle(ref MessagePackReader reader)
    {
        if (reader.NextMessagePackType == MessagePackType.Integer)
        {
            var integer = ReadInteger(ref reader, long.MinValue, long.MaxValue);
            var asFloat = (float)integer;
            if (asFloat >= 9223372036854775808.0f || (long)asFloat != integer)
                throw new OverflowException($"The integer {integer} cannot be held exactly by a float.");
            return asFloat;
        }

        var value = reader.ReadDouble();
        var result = (float)value;
        if (float.IsInfinity(result) && !double.IsInfinity(value))
            throw new OverflowException($"{value} is beyond the range of a float.");
        return result;
    }

    private static long ReadInteger(ref MessagePackReader reader, long min, long max)
    {
        long value;
        if (reader.NextMessagePackType == MessagePackType.Float)
        {
            var number = reader.ReadDouble();
            // -2^63 and 2^63 are exact as doubles; the range check runs before the cast.
            if (number != Math.Floor(number) || number < -9223372036854775808.0 || number >= 9223372036854775808.0)
                throw NotIntegral(number, min == long.MinValue ? "long" : "integer");
            value = (long)number;
        }
        else
        {
            value = reader.ReadInt64();
        }

        if (value < min || value > max)
            throw new OverflowException($"{value} is out of range ({min} to {max}).");
        return value;
    }

    private static OverflowException NotIntegral(double value, string type) =>
        new(double.IsFinite(value) && value == Math.Floor(value)
            ? $"{value.ToString(System.Globalization.CultureInfo.InvariantCulture)} is out of the range of {type}."
            : $"{value.ToString(System.Globalization.CultureInfo.InvariantCulture)} is not an integer, so it does not bind to an integer parameter without loss.");

    /// <summary>Whether <paramref name="error"/> is one a <see cref="MessagePackReader"/> or formatter throws for data that does not fit.</summary>
    /// <remarks>
    /// <see cref="ArgumentException"/> counts: a dictionary formatter throws it for a key that repeats, and the timestamp
    /// reader for seconds or nanoseconds out of range (issue 8: a duplicate key is invalid kwargs, not a handler failure).
    /// </remarks>
    /// <seealso cref="Protocol.MalformedInput.IsMalformed"/>
    public static bool IsReadError(Exception error) => Protocol.MalformedInput.IsMalformed(error);

    /// <summary>
    /// Whether <paramref name="error"/> means this side has no working formatter for a type (none registered, one
    /// that failed to build, or dynamic code that the runtime does not allow), as opposed to data that does not fit.
    /// </summary>
    public static bool IsFormatterError(Exception error) =>
        error is FormatterNotRegisteredException or TypeInitializationException or NotSupportedException
            || (error is MessagePackSerializationException && error.InnerException is not null && IsFormatterError(error.InnerException));

    /// <summary>Whether <paramref name="error"/>, thrown while writing a value, is the value's serialization failing.</summary>
    public static bool IsWriteError(Exception error) =>
        error is not (OperationCanceledException or OutOfMemoryException or P2PException);

    /// <summary>The error for a value of <paramref name="type"/> that this side cannot serialize or deserialize.</summary>
    /// <param name="member">Where the value was, such as <c>kwarg 'point' of 'Move'</c>.</param>
    /// <param name="type">The C# name of the value's type.</param>
    /// <param name="error">What the serializer threw.</param>
    public static SerializationFailedException CannotSerialize(string member, string type, Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        var cause = error is TypeInitializationException or MessagePackSerializationException && error.InnerException is not null ? error.InnerException! : error;
        return new SerializationFailedException(
            $"The {member} has type {type}, which cannot be serialized here: {cause.Message} " +
            "Mark the type [MessagePackObject] with [Key] on each member (or [Union] on an interface), or register a formatter in NodeOptions.SerializerOptions.",
            error)
        {
            TypeName = type,
            Member = member,
        };
    }

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
