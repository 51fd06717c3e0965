using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// Where generated code registers, from a module initializer, how to serve each <c>[P2PService]</c> type and how to
/// build the proxy of each contract interface. <see cref="Node.Register{TService}(TService)"/> and
/// <see cref="PeerDirectory.Get{TService}(string)"/> look them up here, so no reflection runs at call time.
/// </summary>
/// <remarks>Thread-safe. Not meant to be called by hand: the source generator emits the calls.</remarks>
[EditorBrowsable(EditorBrowsableState.Never)]
public static partial class ServiceRegistry
{
    private static readonly ConcurrentDictionary<Type, Func<object, IServiceDispatcher>> s_dispatchers = new();

    /// <summary>Registers how to serve instances of <typeparamref name="TService"/>. A later call for the same type wins.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="factory"/> is null.</exception>
    public static void AddDispatcher<TService>(Func<TService, IServiceDispatcher> factory)
        where TService : class
    {
        ArgumentNullException.ThrowIfNull(factory);
        s_dispatchers[typeof(TService)] = service => factory((TService)service);
    }

    /// <summary>
    /// Registers the resolver of the MessagePack formatters generated for one assembly's contract types. Nodes ask
    /// these before MessagePack's standard resolver, so typed calls run without code emitted at run time.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="resolver"/> is null.</exception>
    public static void AddResolver(MessagePack.IFormatterResolver resolver)
    {
        ArgumentNullException.ThrowIfNull(resolver);
        GeneratedFormatterResolver.Add(resolver);
    }

    /// <summary>
    /// The generated formatters of every loaded assembly, as one resolver. Nodes put it ahead of the standard resolver
    /// when <see cref="NodeOptions.SerializerOptions"/> is left at its default; put it in a custom resolver chain of your
    /// own to keep typed calls free of run-time code generation (Native AOT).
    /// </summary>
    public static MessagePack.IFormatterResolver GeneratedResolver => GeneratedFormatterResolver.Instance;

    /// <summary>
    /// Builds the dispatcher for <paramref name="service"/>: the one registered for <typeparamref name="TService"/>,
    /// else the one registered for the service's own class.
    /// </summary>
    public static bool TryCreateDispatcher<TService>(TService service, [NotNullWhen(true)] out IServiceDispatcher? dispatcher)
        where TService : class
    {
        ArgumentNullException.ThrowIfNull(service);
        if (TryFind(s_dispatchers, typeof(TService), out var factory) || TryFind(s_dispatchers, service.GetType(), out factory))
        {
            dispatcher = factory(service);
            return true;
        }

        dispatcher = null;
        return false;
    }

    private static bool TryFind<TFactory>(ConcurrentDictionary<Type, TFactory> factories, Type type, [MaybeNullWhen(false)] out TFactory factory)
    {
        if (factories.TryGetValue(type, out factory))
            return true;
        // A module initializer runs when code of its module first runs, which may not have happened yet for a
        // contract assembly only named in a type argument; run it now and look again.
        RuntimeHelpers.RunModuleConstructor(type.Module.ModuleHandle);
        return factories.TryGetValue(type, out factory);
    }
}
