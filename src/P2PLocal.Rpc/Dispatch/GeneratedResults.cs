using System.ComponentModel;
using MessagePack;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// Helpers the generated dispatchers use to write a method's result (awaiting it first when it is a task), and
/// the generated proxies use to read it.
/// </summary>
/// <remarks>Thread-safe (stateless). Not meant to be called by hand: the source generator emits the calls.</remarks>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class GeneratedResults
{
    /// <summary>Writes <paramref name="value"/> as the call's result with the formatter the options resolve for <typeparamref name="T"/>.</summary>
    /// <exception cref="SerializationFailedException">The value cannot be serialized; the caller is told so.</exception>
    public static ValueTask Write<T>(FunctionCall call, T value)
    {
        var writer = new MessagePackWriter(call.Result);
        try
        {
            call.Options.Resolver.GetFormatterWithVerify<T>().Serialize(ref writer, value, call.Options);
        }
        catch (Exception e) when (GeneratedKwargs.IsWriteError(e))
        {
            throw GeneratedKwargs.CannotSerialize($"result of '{call.Function}'", TypeNames.Of<T>(), e);
        }

        writer.Flush();
        return default;
    }

    /// <summary>Writes nil, the result of a method that returns nothing.</summary>
    public static ValueTask WriteNil(FunctionCall call)
    {
        var writer = new MessagePackWriter(call.Result);
        writer.WriteNil();
        writer.Flush();
        return default;
    }

    /// <summary>Writes the result of <paramref name="pending"/> once it completes.</summary>
    public static ValueTask WriteAsync<T>(FunctionCall call, Task<T> pending)
    {
        ArgumentNullException.ThrowIfNull(pending);
        return pending.IsCompletedSuccessfully ? Write(call, pending.Result) : AwaitThenWriteAsync(call, pending);

        static async ValueTask AwaitThenWriteAsync(FunctionCall call, Task<T> pending) =>
            await Write(call, await pending.ConfigureAwait(false)).ConfigureAwait(false);
    }

    /// <summary>Writes the result of <paramref name="pending"/> once it completes.</summary>
    public static ValueTask WriteAsync<T>(FunctionCall call, ValueTask<T> pending)
    {
        return pending.IsCompletedSuccessfully ? Write(call, pending.Result) : AwaitThenWriteAsync(call, pending);

        static async ValueTask AwaitThenWriteAsync(FunctionCall call, ValueTask<T> pending) =>
            await Write(call, await pending.ConfigureAwait(false)).ConfigureAwait(false);
    }

    /// <summary>Writes nil once <paramref name="pending"/> completes.</summary>
    public static ValueTask WriteNilAsync(FunctionCall call, Task pending)
    {
        ArgumentNullException.ThrowIfNull(pending);
        return pending.IsCompletedSuccessfully ? WriteNil(call) : AwaitThenWriteAsync(call, pending);

        static async ValueTask AwaitThenWriteAsync(FunctionCall call, Task pending)
        {
            await pending.ConfigureAwait(false);
            await WriteNil(call).ConfigureAwait(false);
        }
    }

    /// <summary>Writes nil once <paramref name="pending"/> completes.</summary>
    public static ValueTask WriteNilAsync(FunctionCall call, ValueTask pending)
    {
        return pending.IsCompletedSuccessfully ? WriteNil(call) : AwaitThenWriteAsync(call, pending);

        static async ValueTask AwaitThenWriteAsync(FunctionCall call, ValueTask pending)
        {
            await pending.ConfigureAwait(false);
            await WriteNil(call).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Reads a result of type <typeparamref name="T"/> with the formatter the options resolve for it, once the result is
    /// known to be within <see cref="NodeOptions.MaxKwargsElements"/> and its strings valid UTF-8
    /// (<see cref="MessagePackSerializationException"/> otherwise).
    /// </summary>
    public static ResultReader<T> Reader<T>() => Cache<T>.Read;

    private static class Cache<T>
    {
        public static readonly ResultReader<T> Read = static (ref MessagePackReader reader, MessagePackSerializerOptions options) =>
        {
            // The budget and UTF-8 check the server applies to kwargs, applied to what a peer answers (issue 8, item 6).
            KwargsCodec.EnsureReadable(reader, options);
            try
            {
                return options.Resolver.GetFormatterWithVerify<T>().Deserialize(ref reader, options);
            }
            catch (Exception e) when (GeneratedKwargs.IsFormatterError(e))
            {
                throw GeneratedKwargs.CannotSerialize("result", TypeNames.Of<T>(), e);
            }
        };
    }
}

/// <summary>C# names of types for error messages (<c>List&lt;Point&gt;</c>, not <c>List`1</c>).</summary>
internal static class TypeNames
{
    public static string Of<T>() => Of(typeof(T));

    public static string Of(Type type)
    {
        if (type.IsArray)
            return Of(type.GetElementType()!) + "[]";
        if (!type.IsGenericType)
            return type.FullName ?? type.Name;
        var name = type.GetGenericTypeDefinition().FullName ?? type.Name;
        var tick = name.IndexOf('`', StringComparison.Ordinal);
        return (tick < 0 ? name : name[..tick]) + "<" + string.Join(", ", type.GetGenericArguments().Select(Of)) + ">";
    }
}
